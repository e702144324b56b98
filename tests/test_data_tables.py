"""The shipped evidence tables say what the review (Takahashi et al. 2023, Table 1) prints.

Seed: shared/seeds/000_401e57407b85057a.txt; Table 1 is on lines 86-99 of that file.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from bayes_va.config.model import DataConfig
from bayes_va.core.errors import DataValidationError
from bayes_va.data.dataset import build_dataset
from bayes_va.data.schemas import BY_FILENAME, TABLES
from bayes_va.data.tables import check_data, load_revision, load_table

SEED = "000_401e57407b85057a.txt"

#: Sample sizes as printed in Table 1 of the review (seed file line numbers in the comments).
TABLE1_N = {
    "chou2014": 843,  # l.86  'Chou et al. [42] ... VP 843 75 > 2 Years Revision 1.70%'
    "hazzard2014": 699 + 696,  # l.87  'Hazzard et al. [43] ... KP (n = 696), VP (n = 699)'
    "hogan2022": 80864,  # l.88  'Hogan et al. [44] ... VP/KP 80,864 73 1–5 Years'
    "kim2022": 1932,  # l.89  'Kim et al. [45] ... VP/KP 1,932 74.9 < 30 Days'
    "korovessis2013": 86,  # l.90  'Korovessis et al. [34] ... KP 86 72.3 14 Months'
    "li2016": 827,  # l.91  'Li et al. [35] ... VP 827 74.1 3 Months'
    "liang2015": 79225,  # l.92  'Liang et al. [36] ... VP/KP 79,225 > 40 4–7 Years'
    "lin2016": 1646,  # l.93  'Lin et al. [37] ... VP 1,646 76.7 1.16 Years'
    "robinson2008": 102,  # l.94  'Robinson et al. [33] ... KP 102 69 6 Months'
    "segal2018": 2465,  # l.95  'Segal et al. [38] ... KP 2,465 74 30 Days'
    "takahashi2019": 109,  # l.96  'Takahashi et al. [39] ... KP 109 74.0 6 Months'
    "walter2012": 173,  # l.97  'Walter et al. [40] ... KP 173 Male, 70.1; Female, 77.8'
    "yang2020": 14527,  # l.98  'Yang et al. [41] ... VP/KP 14,527 75 2 Years'
    "yang2008": 1523,  # l.99  'Yang et al. [31] ... VP 1,523 69.2 NA'
}

#: Rows whose printed rate no integer count reproduces at the printed precision.
IRREPRODUCIBLE = {"chou2014", "takahashi2019"}  # 1.70 % of 843, 3.8 % of 109

_PRINTED_RATE = re.compile(r"(\d+(?:\.(\d+))?)%")


def printed_rate(rate_text: str) -> tuple[float, int]:
    """The single percentage in a rate text, and its number of printed decimals."""
    found = _PRINTED_RATE.findall(rate_text)
    assert len(found) == 1, f"expected one percentage in {rate_text!r}"
    number, decimals = found[0]
    return float(number), len(decimals)


def nearest_count(rate_pct: float, n: int) -> int:
    """The integer k in [0, n] minimising |k/n - rate_pct/100| (unique for the shipped data)."""
    k = np.arange(n + 1)
    dist = np.abs(k / n - rate_pct / 100)
    best = np.flatnonzero(dist == dist.min())
    assert len(best) == 1, f"{rate_pct}% of {n}: tie between counts {best.tolist()}"
    return int(best[0])


def reproduces(k: int, n: int, rate_pct: float, decimals: int) -> bool:
    return math.isclose(round(100 * k / n, decimals), rate_pct, abs_tol=1e-9)


@pytest.fixture(scope="module")
def revision(data_dir):
    return load_revision(data_dir)


@pytest.fixture(scope="module")
def arms(data_dir):
    return load_table("revision_arms", data_dir)


@pytest.fixture(scope="module")
def variants(data_dir):
    return load_table("revision_variants", data_dir)


# --------------------------------------------------------------------------- the 14 studies


def test_the_revision_table_has_exactly_the_fourteen_studies_of_table_1(revision):
    assert len(revision) == 14
    assert revision["study_id"].is_unique
    assert list(revision["study_id"]) == list(TABLE1_N)  # Table 1's order


def test_sample_sizes_equal_the_reviews_table_1(revision):
    assert dict(zip(revision["study_id"], revision["n"].astype(int), strict=True)) == TABLE1_N


def test_every_revision_row_cites_its_table_1_row_in_the_seed(revision):
    for _, row in revision.iterrows():
        cite = f"Table 1 row '{row['author']} et al. [{row['review_ref']}]'"
        assert SEED in row["source"] and cite in row["source"], row["study_id"]


def test_rates_are_given_as_one_number_except_for_hazzards_arms_and_lins_range(revision):
    without = set(revision.loc[revision["rate_pct"].isna(), "study_id"])
    assert without == {"hazzard2014", "lin2016"}


def test_each_rate_pct_is_the_percentage_printed_in_its_rate_text(revision):
    for _, row in revision.dropna(subset=["rate_pct"]).iterrows():
        number, _ = printed_rate(row["rate_text"])
        assert number == row["rate_pct"], row["study_id"]


def test_each_rows_events_are_the_count_nearest_to_its_printed_rate(revision):
    for _, row in revision.dropna(subset=["rate_pct"]).iterrows():
        n, events, rate = int(row["n"]), int(row["events"]), float(row["rate_pct"])
        assert 0 <= events <= n
        assert events == nearest_count(rate, n), row["study_id"]


def test_each_rows_events_reproduce_the_printed_rate_or_the_row_says_none_can(revision):
    irreproducible = set()
    for _, row in revision.dropna(subset=["rate_pct"]).iterrows():
        n, events = int(row["n"]), int(row["events"])
        rate, decimals = printed_rate(row["rate_text"])
        if reproduces(events, n, rate, decimals):
            continue
        irreproducible.add(row["study_id"])
        # then truly no integer count reproduces it, and the row says so
        assert not any(reproduces(k, n, rate, decimals) for k in range(n + 1)), row["study_id"]
        assert "no integer count" in row["events_derivation"], row["study_id"]
        assert "nearest integer is used" in row["events_derivation"], row["study_id"]
    assert irreproducible == IRREPRODUCIBLE


def test_hazzards_events_are_the_sum_of_its_arms(revision, arms):
    hazzard = revision.set_index("study_id").loc["hazzard2014"]
    mine = arms[arms["study_id"] == "hazzard2014"].set_index("arm")
    assert sorted(mine.index) == ["KP", "VP"]
    assert int(mine["n"].sum()) == int(hazzard["n"]) == 1395
    assert int(mine["events"].sum()) == int(hazzard["events"]) == 142
    assert hazzard["rate_text"] == "VP 11.4%, KP 8.9%"  # l.87, as printed


def test_each_hazzard_arm_matches_its_printed_rate_and_sample_size(arms):
    expected = {"VP": (699, 11.4, 80), "KP": (696, 8.9, 62)}  # l.87
    for _, arm in arms.iterrows():
        n, rate_pct, events = expected[arm["arm"]]
        assert (int(arm["n"]), float(arm["rate_pct"]), int(arm["events"])) == (n, rate_pct, events)
        assert arm["procedure"] == arm["arm"]
        number, decimals = printed_rate(arm["rate_text"])
        assert number == rate_pct
        assert events == nearest_count(rate_pct, n)
        assert reproduces(events, n, rate_pct, decimals)


def test_lins_base_count_is_the_midpoint_rate_of_its_printed_range(revision):
    lin = revision.set_index("study_id").loc["lin2016"]
    assert lin["rate_text"] == "4%–13%"  # l.93, as printed
    assert int(lin["n"]) == 1646
    assert int(lin["events"]) == 140 == nearest_count(8.5, 1646)


def test_lins_variants_are_the_low_mid_and_high_readings_and_exclusion(variants):
    lin = variants[variants["study_id"] == "lin2016"].set_index("variant_id")
    assert set(lin.index) == {"lin2016_low", "lin2016_mid", "lin2016_high", "lin2016_excluded"}
    counts = {v: lin.loc[v, "events"] for v in lin.index}
    assert counts["lin2016_low"] == 66 == nearest_count(4, 1646)
    assert counts["lin2016_mid"] == 140 == nearest_count(8.5, 1646)
    assert counts["lin2016_high"] == 214 == nearest_count(13, 1646)
    assert counts["lin2016_excluded"] is pd.NA
    assert lin.loc["lin2016_excluded", "action"] == "exclude"
    assert set(lin.loc[["lin2016_low", "lin2016_mid", "lin2016_high"], "action"]) == {"events"}


# --------------------------------------------------------------------------- zero events


def test_zero_event_studies_are_kept_by_the_loader_and_the_dataset(edit_csv, tmp_data_dir):
    edit_csv.set_cell("revision_studies.csv", "robinson2008", "events", "0")
    edit_csv.set_cell("revision_studies.csv", "walter2012", "events", "0")
    frame = load_revision(tmp_data_dir)
    assert len(frame) == 14
    by_id = frame.set_index("study_id")["events"]
    assert by_id["robinson2008"] == 0 and by_id["walter2012"] == 0
    data = build_dataset(DataConfig(), tmp_data_dir)
    assert data.k == 14
    assert dict(zip(data.study, data.y.tolist(), strict=True))["robinson2008"] == 0
    assert int((data.y == 0).sum()) == 2


# --------------------------------------------------------------------------- every table


def test_every_csv_in_the_data_folder_is_a_known_table(data_dir):
    assert {p.name for p in data_dir.glob("*.csv")} == set(BY_FILENAME)


@pytest.mark.parametrize("name", list(TABLES))
def test_every_shipped_table_loads_and_every_row_has_a_source(name, data_dir):
    frame = load_table(name, data_dir)
    assert len(frame) > 0
    sources = frame["source"]
    assert not sources.isna().any()
    assert all(s.strip() == s and len(s) > 10 for s in sources)


def test_check_data_finds_no_problem_in_the_shipped_folder(data_dir):
    checked, problems = check_data(data_dir)
    assert problems == []
    assert sorted(checked) == sorted(str(data_dir / f) for f in BY_FILENAME)


_DTYPE = {"int": "Int64", "float": "Float64", "str": "object", "enum": "object"}


@pytest.mark.parametrize("name", list(TABLES))
def test_loaded_tables_have_exact_dtypes_and_every_cell_equals_its_csv_text(
    name, data_dir, csv_rows
):
    schema = TABLES[name]
    frame = load_table(name, data_dir)
    header, *rows = csv_rows(data_dir / schema.filename)
    assert header == list(schema.names)
    assert list(frame.columns) == header
    assert len(frame) == len(rows)
    for j, col in enumerate(schema.columns):
        assert str(frame[col.name].dtype) == _DTYPE[col.kind], col.name
        for i, (value, text) in enumerate(
            zip(frame[col.name].tolist(), (r[j] for r in rows), strict=True)
        ):
            where = f"{schema.filename} line {i + 2} column {col.name}"
            if text == "":
                assert pd.isna(value), where
            elif col.kind == "int":
                assert str(value) == text, where
            elif col.kind == "float":
                assert value == float(text), where
            else:
                assert value == text, where


def test_counts_load_as_nullable_integers(revision):
    for col in ("n", "events", "year", "review_ref"):
        assert revision[col].dtype == pd.Int64Dtype(), col


def test_empty_text_cells_load_as_pd_na(revision):
    chou = revision.set_index("study_id").loc["chou2014"]
    assert chou["age_note"] is pd.NA  # empty in the file


def test_every_table_is_declared_by_a_schema_file_listed_in_the_data_package(data_dir):
    import json

    package = json.loads((data_dir / "datapackage.json").read_text())
    listed = {r["path"]: r["schema"] for r in package["resources"]}
    assert set(listed) == set(BY_FILENAME), "add the table's resource to data/datapackage.json"
    for csv_name, schema_file in listed.items():
        assert schema_file == csv_name.removesuffix(".csv") + ".schema.json"
        assert (data_dir / schema_file).is_file()


def test_a_table_dropped_in_with_its_schema_is_found_without_python(tmp_path):
    import json

    from bayes_va.data.schemas import load_schemas
    from bayes_va.data.tables import read_table

    fields = [
        {"name": "study_id", "type": "string", "constraints": {"required": True}},
        {"name": "events", "type": "integer", "constraints": {"required": True, "minimum": 0}},
        {"name": "n", "type": "integer", "constraints": {"required": True, "minimum": 1}},
    ]
    roles = {"study": "study_id", "events": "events", "n": "n"}
    schema = {"fields": fields, "primaryKey": ["study_id"], "bayes_va": {"roles": roles}}
    (tmp_path / "leak.schema.json").write_text(json.dumps(schema))
    (tmp_path / "leak.csv").write_text("study_id,events,n\na,1,10\na,11,10\n")
    (found,) = load_schemas(tmp_path).values()
    assert found.name == "leak" and found.is_outcome and found.columns[0].unique
    with pytest.raises(DataValidationError) as exc:
        read_table(tmp_path / "leak.csv", found)
    assert [(p.line, p.column) for p in exc.value.problems] == [(3, "study_id"), (3, "events")]
