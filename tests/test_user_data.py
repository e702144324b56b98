"""A user's own proportions table: by config path, column map, ``--data``, DataFrame, and the
errors a bad table gives (every problem with file, line and column; exit 2; no results)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from seeds import seed

from bayes_va.cli.main import main
from bayes_va.config.model import load_config
from bayes_va.core.errors import ConfigError, DataValidationError
from bayes_va.data.dataset import build_dataset
from bayes_va.data.tables import read_user_table
from bayes_va.fitting.cache import fit_key
from bayes_va.fitting.run import fit

BASE = str(Path(__file__).resolve().parents[1] / "models" / "base.toml")
FAST = ["sampler.draws=200", "sampler.tune=200", "sampler.chains=2"]
SETS = [x for o in FAST for x in ("--set", o)]

MAPPED = """author_year,cases,total,region
smith2001,3,120,EU
jones2005,0,45,US
lee2010,7,300,Asia
kim2012,2,80,Asia
"""
PLAIN = MAPPED.replace("author_year,cases,total", "study,events,n")
MAP_TOML = """
[data.columns]
study = "author_year"
events = "cases"
n = "total"
"""


def _config(folder: Path, table: str = "studies.csv", extra: str = "", name: str = "my") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'[data]\ntable = "{table}"\n{extra}')
    return path


@pytest.fixture
def mapped(tmp_path: Path) -> Path:
    """A config with a column map and a moderator, beside its CSV."""
    (tmp_path / "studies.csv").write_text(MAPPED)
    return _config(tmp_path, extra=MAP_TOML + '[model]\nmoderators = ["region"]\n')


# --------------------------------------------------------------------------- good input


def test_a_config_names_a_csv_relative_to_itself_with_a_column_map(mapped):
    cfg = load_config(mapped)
    assert Path(cfg.data.table) == mapped.parent / "studies.csv"
    data = build_dataset(cfg.data, cfg.data_dir)
    assert data.study == ("smith2001", "jones2005", "lee2010", "kim2012")
    assert data.y.tolist() == [3, 0, 7, 2] and data.n.tolist() == [120, 45, 300, 80]
    assert list(data.table["region"]) == ["EU", "US", "Asia", "Asia"]
    assert data.files[0][0] == str(mapped.parent / "studies.csv")


def test_a_csv_without_map_keep_and_exclude_work_on_any_column(tmp_path):
    (tmp_path / "t.csv").write_text(PLAIN)
    keep = '[data.keep]\nregion = ["Asia", "EU"]\n'
    cfg = load_config(_config(tmp_path, "t.csv", 'exclude = ["lee2010"]\n' + keep))
    data = build_dataset(cfg.data, cfg.data_dir)
    assert data.study == ("smith2001", "kim2012")
    bad = load_config(_config(tmp_path, "t.csv", 'exclude = ["nobody"]\n', name="bad"))
    with pytest.raises(ConfigError, match="unknown study id 'nobody'"):
        build_dataset(bad.data, bad.data_dir)


def test_a_schema_file_beside_the_csv_declares_the_roles(tmp_path):
    (tmp_path / "t.csv").write_text(MAPPED)
    schema = {
        "fields": [
            {"name": "author_year", "type": "string", "constraints": {"required": True}},
            {"name": "cases", "type": "integer", "constraints": {"minimum": 0}},
            {"name": "total", "type": "integer", "constraints": {"minimum": 1}},
            {"name": "region", "type": "string", "constraints": {"enum": ["EU", "US", "Asia"]}},
        ],
        "primaryKey": ["author_year"],
        "bayes_va": {"roles": {"study": "author_year", "events": "cases", "n": "total"}},
    }
    (tmp_path / "t.schema.json").write_text(json.dumps(schema))
    frame = read_user_table(tmp_path / "t.csv")
    assert list(frame.columns) == ["study_id", "events", "n", "region"]
    (tmp_path / "t.csv").write_text(MAPPED.replace("Asia\nkim", "Mars\nkim"))
    with pytest.raises(DataValidationError, match="'Mars' is not one of EU, US, Asia"):
        read_user_table(tmp_path / "t.csv")


def test_cli_fit_of_a_user_table_carries_labels_and_hashes_the_file(mapped, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "fit",
            str(mapped),
            *SETS,
            "--set",
            f"sampler.seed={seed(1)}",
            "--out",
            str(out),
            "--no-report",
        ]
    )
    assert code in (0, 1)  # 1: a short run may miss the ESS thresholds; the fit ran
    studies = pd.read_csv(out / "studies.csv")
    assert list(studies["study"]) == ["smith2001", "jones2005", "lee2010", "kim2012"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["studies"] == list(studies["study"])
    digest = read_user_table(
        mapped.parent / "studies.csv", {"study": "author_year", "events": "cases", "n": "total"}
    ).attrs["sha256"]
    assert prov["data_files"][str(mapped.parent / "studies.csv")] == digest
    est = json.loads((out / "estimates.json").read_text())
    assert [s["study"] for s in est["studies"]] == list(studies["study"])
    assert "region[EU]" in json.dumps(est["moderators"])


def test_python_api_takes_a_path_or_a_dataframe_and_cli_takes_data(tmp_path):
    (tmp_path / "t.csv").write_text(PLAIN)
    base = _config(tmp_path, "t.csv", name="base")
    over = [*FAST, f"sampler.seed={seed(2)}"]
    from_path = fit(base, overrides=over, reference=False)
    frame = pd.read_csv(tmp_path / "t.csv")
    from_frame = fit(BASE, overrides=over, data=frame, reference=False)
    assert from_frame.data.study == from_path.data.study
    assert from_frame.data.y.tolist() == from_path.data.y.tolist()
    assert from_frame.config.data.table == "<DataFrame>"
    assert from_frame.provenance["data_files"]["<DataFrame>"]
    # the shipped base config, swapped to the CSV (path): same data, same posterior
    swapped = fit(BASE, overrides=over, data=tmp_path / "t.csv", reference=False)
    assert swapped.data.study == from_path.data.study
    assert swapped.estimates.pooled == from_frame.estimates.pooled
    # --data on the CLI: a folder of its own, the user's labels
    root = tmp_path / "results"
    code = main(
        [
            "fit",
            BASE,
            "--data",
            str(tmp_path / "t.csv"),
            *SETS,
            "--set",
            f"sampler.seed={seed(2)}",
            "--results-root",
            str(root),
            "--no-report",
        ]
    )
    assert code in (0, 1)
    (folder,) = root.iterdir()
    assert folder.name.startswith("base+")
    assert list(pd.read_csv(folder / "studies.csv")["study"])[:2] == ["smith2001", "jones2005"]


def test_the_cache_key_covers_the_user_table(tmp_path):
    (tmp_path / "t.csv").write_text(PLAIN)
    cfg = load_config(_config(tmp_path, "t.csv"))
    before = fit_key(cfg)
    (tmp_path / "t.csv").write_text(PLAIN.replace(",EU", ",Europe"))  # same counts, new moderator
    assert fit_key(cfg) != before


def test_data_check_file_with_and_without_a_column_map(tmp_path, capsys):
    (tmp_path / "plain.csv").write_text(PLAIN)
    (tmp_path / "mapped.csv").write_text(MAPPED)
    assert main(["data", "check", str(tmp_path / "plain.csv")]) == 0
    cols = ["--column", "study=author_year", "--column", "events=cases", "--column", "n=total"]
    assert main(["data", "check", str(tmp_path / "mapped.csv"), *cols]) == 0
    assert main(["data", "check", str(tmp_path / "mapped.csv")]) == 2
    assert "missing required column 'study'" in capsys.readouterr().err
    assert main(["data", "check"]) == 0  # the shipped folder still


# --------------------------------------------------------------------------- bad input

BAD = {
    "events_exceed_n": ("study,events,n\na,5,4\nb,1,10\n", [(2, "events", "exceed n 4")]),
    "negative_count": ("study,events,n\na,-1,4\nb,1,10\n", [(2, "events", "below the minimum")]),
    "non_integer": (
        "study,events,n\na,1.5,4\nb,1,10.0\n",
        [(2, "events", "non-integer"), (3, "n", "non-integer")],
    ),
    "duplicate_study": ("study,events,n\na,1,4\na,1,10\n", [(3, "study", "duplicate 'a'")]),
    "missing_column": (
        "study,n\na,4\nb,x\n",
        [(1, "events", "missing required column 'events'"), (3, "n", "'x' is not a number")],
    ),
    "empty_table": ("study,events,n\n", [(None, None, "no data rows")]),
    "empty_file": ("", [(None, None, "the file is empty")]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_problem_of_a_bad_table_is_listed_with_file_line_and_column(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataValidationError) as exc:
        read_user_table(path)
    got = exc.value.problems
    assert len(got) == len(expected), got
    for p, (line, column, message) in zip(got, expected, strict=True):
        assert (p.file, p.line, p.column) == (str(path), line, column) and message in p.message


def test_a_column_map_naming_missing_columns_lists_each(tmp_path):
    (tmp_path / "t.csv").write_text(MAPPED)
    with pytest.raises(DataValidationError) as exc:
        read_user_table(tmp_path / "t.csv", {"study": "author", "events": "cases", "n": "size"})
    assert [(p.line, p.column) for p in exc.value.problems] == [(1, "author"), (1, "size")]
    assert "named by data.columns.study" in exc.value.problems[0].message


def _fit_exits_2_without_results(config: Path, tmp_path: Path, capsys, *extra: str) -> str:
    root = tmp_path / "results"
    assert main(["fit", str(config), *SETS, "--results-root", str(root), *extra]) == 2
    assert not root.exists()  # no fit started, no results folder written
    return capsys.readouterr().err


@pytest.mark.parametrize("case", ["events_exceed_n", "duplicate_study", "non_integer"])
def test_cli_fit_of_a_bad_table_exits_2_and_writes_nothing(tmp_path, capsys, case):
    (tmp_path / "studies.csv").write_text(BAD[case][0])
    err = _fit_exits_2_without_results(_config(tmp_path), tmp_path, capsys)
    assert f"{tmp_path / 'studies.csv'}, line " in err


def test_an_unknown_moderator_or_a_bad_map_exits_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "studies.csv").write_text(PLAIN.replace("EU", "12 months"))
    cfg = _config(tmp_path, extra='[model]\nmoderators = ["age", "log_followup"]\n')
    err = _fit_exits_2_without_results(cfg, tmp_path, capsys)
    assert "'age', which is not a moderator column" in err
    assert "'followup'" in err
    (tmp_path / "studies.csv").write_text(MAPPED)
    bad_map = _config(tmp_path, extra=MAP_TOML.replace('"total"', '"size"'), name="m")
    err = _fit_exits_2_without_results(bad_map, tmp_path, capsys)
    assert "column 'size'" in err and "data.columns.n" in err
    err = _fit_exits_2_without_results(
        Path(BASE), tmp_path, capsys, "--data", str(tmp_path / "nope.csv")
    )
    assert "file not found" in err


def test_a_mixed_numeric_moderator_names_its_text_cells(tmp_path):
    (tmp_path / "t.csv").write_text("study,events,n,age\na,1,10,70\nb,2,10,old\nc,1,9,65\n")
    cfg = load_config(_config(tmp_path, "t.csv", '[model]\nmoderators = ["age"]\n'))
    with pytest.raises(DataValidationError) as exc:
        fit(cfg)
    (p,) = exc.value.problems
    assert (p.line, p.column) == (3, "age") and "'old' is text" in p.message


def test_an_unknown_table_name_lists_the_shipped_ones(tmp_path):
    cfg = load_config(_config(tmp_path, "nope"))
    with pytest.raises(ConfigError, match=r"unknown table 'nope'.*revision"):
        build_dataset(cfg.data, cfg.data_dir)


def test_a_user_table_config_hash_does_not_depend_on_where_the_project_lives(tmp_path):
    # the resolved config stores a table inside the project relative to its root, so two
    # checkouts in different folders give the same hash (cache keys, provenance)
    hashes = []
    for where in ("one", "two/deeper"):
        root = tmp_path / where
        (root / "study").mkdir(parents=True)
        (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
        (root / "study" / "mine.csv").write_text("study,events,n\na,1,10\nb,2,20\n")
        (root / "study" / "mine.toml").write_text('name = "mine"\n[data]\ntable = "mine.csv"\n')
        cfg = load_config(root / "study" / "mine.toml")
        assert Path(cfg.data.table) == (root / "study" / "mine.csv").absolute()
        assert cfg.to_dict()["data"]["table"] == "study/mine.csv"
        assert cfg.replace(**{"sampler.seed": 3}).data.table == cfg.data.table
        hashes.append(cfg.hash())
    assert hashes[0] == hashes[1]


def test_the_cache_key_follows_a_changed_data_folder(tmp_data_dir, edit_csv):
    # fit_key is memoised in the process; the memo is keyed by the folder's content, so an
    # edited count (same config) gives a new key, and restoring it gives the old one back
    cfg = load_config(BASE, [f'data.dir="{tmp_data_dir.as_posix()}"'])
    before = fit_key(cfg)
    assert fit_key(cfg) == before
    original = edit_csv.rows("revision_studies.csv")
    edit_csv.set_cell("revision_studies.csv", "robinson2008", "events", "0")
    assert fit_key(cfg) != before
    edit_csv.write("revision_studies.csv", original)
    assert fit_key(cfg) == before
