"""The paper's generic further outcomes: an ``[[outcomes]]`` entry is a config, not code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_va.config.model import Config, load_config
from bayes_va.config.paper import PaperConfig, PaperOutcome, load_paper_config
from bayes_va.core.errors import ConfigError
from bayes_va.data.dataset import build_dataset
from bayes_va.fitting.results import FitResult
from bayes_va.fitting.run import fit
from bayes_va.workflows.paper import outcomes_sections
from bayes_va.workflows.paper_sections import round_floats

ROOT = Path(__file__).resolve().parent.parent


def _analyses(tmp_path: Path, text: str) -> PaperConfig:
    path = tmp_path / "analyses.toml"
    path.write_text('base = "models/base.toml"\n' + text)
    return load_paper_config(path)


def test_an_outcomes_entry_is_validated(tmp_path):
    spec = _analyses(
        tmp_path,
        '[[outcomes]]\nkey = "x_1"\ntitle = "X"\nconfig = "models/x.toml"\n',
    )
    assert spec.outcomes == (PaperOutcome(key="x_1", title="X", config="models/x.toml"),)
    assert _analyses(tmp_path, "").outcomes == ()
    with pytest.raises(ConfigError, match="key"):
        _analyses(tmp_path, '[[outcomes]]\nkey = "Bad Key"\ntitle = "X"\nconfig = "a.toml"\n')
    with pytest.raises(ConfigError, match="config"):
        _analyses(tmp_path, '[[outcomes]]\nkey = "x"\ntitle = "X"\n')
    with pytest.raises(ConfigError, match=r"unknown key outcomes\.foo"):
        _analyses(tmp_path, '[[outcomes]]\nkey = "x"\ntitle = "X"\nconfig = "a"\nfoo = 1\n')
    entry = '[[outcomes]]\nkey = "x"\ntitle = "X"\nconfig = "a.toml"\n'
    with pytest.raises(ConfigError, match="duplicate"):
        _analyses(tmp_path, entry + entry)


def test_the_paper_declares_the_salvage_outcome_by_config():
    spec = load_paper_config(ROOT / "paper" / "analyses.toml")
    (salvage,) = [o for o in spec.outcomes if o.key == "salvage"]
    assert salvage.config == "models/salvage/base.toml"
    for path in (salvage.config, *salvage.sensitivity):
        assert (ROOT / path).is_file()


def test_the_salvage_config_selects_its_table():
    """The third outcome's data, as its configs select them (no code names this table)."""
    table = pd.read_csv(ROOT / "data" / "salvage_studies.csv")
    cfg = load_config(ROOT / "models" / "salvage" / "base.toml")
    data = build_dataset(cfg.data, cfg.data_dir)
    assert data.study == tuple(table["study_id"])
    assert (data.y.sum(), data.n.sum()) == (table["events"].sum(), table["n"].sum())
    review = load_config(ROOT / "models" / "salvage" / "review_only.toml")
    assert build_dataset(review.data, review.data_dir).study == ("korovessis2013", "walter2012")


def _project(tmp_path: Path) -> Path:
    """A project root with the real data and two outcome configs written by a user."""
    root = tmp_path / "proj"
    (root / "models" / "mine").mkdir(parents=True)
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (root / "data").symlink_to(ROOT / "data")
    (root / "models" / "base.toml").write_text((ROOT / "models" / "base.toml").read_text())
    # an outcome the paper has never heard of: the review's two salvage and three repeat rows
    (root / "models" / "mine" / "base.toml").write_text(
        'extends = "../base.toml"\nname = "mine"\ndescription = "salvage or repeat"\n'
        '[data]\nkeep = { outcome = ["salvage_cement_leakage", "repeat_augmentation"] }\n'
    )
    (root / "models" / "mine" / "no_lin.toml").write_text(
        'extends = "base.toml"\nname = "mine_no_lin"\ndescription = "without Lin"\n'
        '[data]\nexclude = ["lin2016"]\n'
    )
    return root


@pytest.mark.sampling
def test_an_outcome_entry_writes_its_results_section_from_configs(tmp_path):
    root = _project(tmp_path)
    fits: dict[str, FitResult] = {}

    def run(cfg: Config) -> FitResult:
        fits[cfg.name] = fit(cfg)
        return fits[cfg.name]

    entry = PaperOutcome(
        key="mine",
        title="Mine",
        config="models/mine/base.toml",
        sensitivity=("models/mine/no_*.toml",),
    )
    figures = tmp_path / "figures"
    figures.mkdir()
    (sec,) = outcomes_sections(root, [entry], run, figures)
    assert list(fits) == ["mine", "mine_no_lin"]

    rev = pd.read_csv(ROOT / "data" / "revision_studies.csv")
    rows = rev[rev["outcome"].isin(["salvage_cement_leakage", "repeat_augmentation"])]
    main = fits["mine"]
    assert (sec["key"], sec["title"], sec["description"]) == ("mine", "Mine", "salvage or repeat")
    assert sec["k"] == len(rows) == 5
    assert sec["n_total"] == rows["n"].sum() and sec["events_total"] == rows["events"].sum()
    assert sec["crude"] == pytest.approx(rows["events"].sum() / rows["n"].sum())
    assert sec["bayes"]["pooled"]["median"] == main.estimates.pooled.median
    assert sec["diagnostics"]["ok"] == main.diagnostics.ok
    assert sec["fmt"]["spread"].startswith("τ ")
    assert [s["study"] for s in sec["studies"]] == list(rows["study_id"])
    assert [s["label"] for s in sec["studies"]] == [
        f"{a} {y}" for a, y in zip(rows["author"], rows["year"], strict=True)
    ]
    assert [s["events"] for s in sec["studies"]] == list(rows["events"])
    # the sensitivity fit is the declared config, and it moved the data as declared
    (sens,) = sec["sensitivity"]
    assert (sens["name"], sens["k"], sens["description"]) == ("mine_no_lin", 4, "without Lin")
    assert sec["figure"] == "figures/outcome_mine.svg"
    assert (figures / "outcome_mine.svg").stat().st_size > 0
    # the MCMC pooled median lies inside the exact quadrature posterior's interval
    ex = sec["exact"]["pooled"]
    assert ex["lower"] < sec["bayes"]["pooled"]["median"] < ex["upper"]
    # results.json-ready: plain JSON after rounding, no NaN
    text = json.dumps(round_floats(sec), allow_nan=False)
    assert np.isfinite(json.loads(text)["bayes"]["tau"]["median"])
