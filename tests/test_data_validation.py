"""Bad data is refused, every problem named by file, line and column, by loader and CLI alike."""

from __future__ import annotations

import csv
import io
import re
import string
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bayes_va.cli.main import main
from bayes_va.config.model import DataConfig
from bayes_va.core.errors import DataValidationError
from bayes_va.data.dataset import build_dataset
from bayes_va.data.schemas import BY_FILENAME, TABLES
from bayes_va.data.tables import check_data, default_data_dir, parse_table, read_table

REVISION = TABLES["revision"]
REVISION_VARIANTS = TABLES["revision_variants"]
REV = "revision_studies.csv"
ARMS = "revision_arms.csv"
VARIANTS = "revision_variants.csv"
NCOLS = len(REVISION.columns)  # 25

#: (filename, line, column or None, fragment of the message)
Expected = tuple[str, int, str | None, str]


# --------------------------------------------------------------------------- bad inputs


def _events_exceed_n(ed) -> Expected:
    return REV, ed.set_cell(REV, "robinson2008", "events", "103"), "events", "exceed n 102"


def _negative_count(ed) -> Expected:
    return REV, ed.set_cell(REV, "li2016", "events", "-1"), "events", "below the minimum 0"


def _negative_sample_size(ed) -> Expected:
    return REV, ed.set_cell(REV, "li2016", "n", "-827"), "n", "below the minimum 1"


def _non_integer_count(ed) -> Expected:
    line = ed.set_cell(REV, "kim2022", "events", "12.5")
    return REV, line, "events", "'12.5' is a non-integer number"


def _integer_valued_float_count(ed) -> Expected:
    line = ed.set_cell(REV, "kim2022", "n", "1932.0")
    return REV, line, "n", "'1932.0' is a non-integer number"


def _non_numeric_count(ed) -> Expected:
    line = ed.set_cell(REV, "kim2022", "events", "twelve")
    return REV, line, "events", "'twelve' is not a number"


def _empty_count(ed) -> Expected:
    return REV, ed.set_cell(REV, "segal2018", "n", ""), "n", "missing value (empty cell)"


def _nan_count(ed) -> Expected:
    return REV, ed.set_cell(REV, "segal2018", "events", "nan"), "events", "'nan' is not a number"


def _nan_rate(ed) -> Expected:
    line = ed.set_cell(REV, "segal2018", "rate_pct", "nan")
    return REV, line, "rate_pct", "'nan' is not a finite number"


def _overflowing_float(ed) -> Expected:
    line = ed.set_cell(REV, "segal2018", "followup_months", "1e999")
    return REV, line, "followup_months", "'1e999' is not a finite number"


def _duplicate_study_id(ed) -> Expected:
    line = ed.set_cell(REV, "hogan2022", "study_id", "chou2014")
    return REV, line, "study_id", "duplicate 'chou2014' (first on line 2)"


def _unknown_procedure(ed) -> Expected:
    line = ed.set_cell(REV, "yang2008", "procedure", "VPX")
    return REV, line, "procedure", "'VPX' is not one of VP, KP, VP/KP"


def _row_without_source(ed) -> Expected:
    return REV, ed.set_cell(REV, "walter2012", "source", ""), "source", "missing value"


def _leading_whitespace(ed) -> Expected:
    line = ed.set_cell(REV, "chou2014", "events", " 14")
    return REV, line, "events", "' 14' has leading or trailing whitespace"


def _trailing_whitespace(ed) -> Expected:
    line = ed.set_cell(REV, "chou2014", "study_id", "chou2014 ")
    return REV, line, "study_id", "'chou2014 ' has leading or trailing whitespace"


def _whitespace_in_enum(ed) -> Expected:
    line = ed.set_cell(REV, "chou2014", "procedure", "VP\t")
    return REV, line, "procedure", "has leading or trailing whitespace"


def _too_few_fields(ed) -> Expected:
    row = ed.get_row(REV, "korovessis2013")
    line = ed.set_row(REV, "korovessis2013", row[:-1])
    return REV, line, None, f"{NCOLS - 1} fields, expected {NCOLS}"


def _too_many_fields(ed) -> Expected:
    row = ed.get_row(REV, "korovessis2013")
    line = ed.set_row(REV, "korovessis2013", [*row, "extra"])
    return REV, line, None, f"{NCOLS + 1} fields, expected {NCOLS}"


def _rewrite_columns(ed, change: Callable[[list[str]], list[str]]) -> None:
    ed.write(REV, [change(list(r)) for r in ed.rows(REV)])


def _renamed_column(ed) -> Expected:
    rows = ed.rows(REV)
    rows[0][rows[0].index("events")] = "event_count"
    ed.write(REV, rows)
    return REV, 1, None, "missing ['events']; unexpected ['event_count']"


def _missing_column(ed) -> Expected:
    j = REVISION.names.index("source")
    _rewrite_columns(ed, lambda r: r[:j] + r[j + 1 :])
    return REV, 1, None, "missing ['source']"


def _extra_column(ed) -> Expected:
    rows = ed.rows(REV)
    ed.write(REV, [[*rows[0], "notes"]] + [[*r, "x"] for r in rows[1:]])
    return REV, 1, None, "unexpected ['notes']"


def _reordered_columns(ed) -> Expected:
    _rewrite_columns(ed, lambda r: [r[1], r[0], *r[2:]])
    return REV, 1, None, "columns out of order"


def _arm_with_bad_count(ed) -> Expected:
    return ARMS, ed.set_cell(ARMS, 1, "events", "sixty-two"), "events", "not a number"


def _variant_with_count_for_exclusion(ed) -> Expected:
    line = ed.set_cell(VARIANTS, "lin2016_excluded", "events", "3")
    return VARIANTS, line, "events", "action 'exclude' takes no count"


def _variant_without_count(ed) -> Expected:
    line = ed.set_cell(VARIANTS, "lin2016_low", "events", "")
    return VARIANTS, line, "events", "action 'events' needs a count"


BAD_INPUTS = {
    "events_exceed_n": _events_exceed_n,
    "negative_count": _negative_count,
    "negative_sample_size": _negative_sample_size,
    "non_integer_count": _non_integer_count,
    "integer_valued_float_count": _integer_valued_float_count,
    "non_numeric_count": _non_numeric_count,
    "empty_count": _empty_count,
    "nan_count": _nan_count,
    "nan_rate": _nan_rate,
    "overflowing_float": _overflowing_float,
    "duplicate_study_id": _duplicate_study_id,
    "unknown_procedure": _unknown_procedure,
    "row_without_source": _row_without_source,
    "leading_whitespace": _leading_whitespace,
    "trailing_whitespace": _trailing_whitespace,
    "whitespace_in_enum": _whitespace_in_enum,
    "too_few_fields": _too_few_fields,
    "too_many_fields": _too_many_fields,
    "renamed_column": _renamed_column,
    "missing_column": _missing_column,
    "extra_column": _extra_column,
    "reordered_columns": _reordered_columns,
    "arm_with_bad_count": _arm_with_bad_count,
    "variant_with_count_for_exclusion": _variant_with_count_for_exclusion,
    "variant_without_count": _variant_without_count,
}


def location(path: Path, line: int | None, column: str | None) -> str:
    """How a problem's place is written (``Problem.__str__``)."""
    where = str(path)
    if line is not None:
        where += f", line {line}"
    if column is not None:
        where += f", column '{column}'"
    return where + ": "


def stderr_line_naming(err: str, where: str) -> str:
    lines = [ln for ln in err.splitlines() if where in ln]
    assert lines, f"no stderr line names {where!r}:\n{err}"
    return "\n".join(lines)


@pytest.mark.parametrize("mutate", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_the_loader_rejects_bad_input_naming_file_line_and_column(mutate, edit_csv):
    filename, line, column, fragment = mutate(edit_csv)
    path = edit_csv.path(filename)
    with pytest.raises(DataValidationError) as exc:
        read_table(path)
    hits = [
        p
        for p in exc.value.problems
        if (p.file, p.line, p.column) == (str(path), line, column) and fragment in p.message
    ]
    assert hits, exc.value.problems
    assert str(hits[0]).startswith(location(path, line, column))


@pytest.mark.parametrize("with_table_option", [False, True], ids=["inferred", "table_option"])
@pytest.mark.parametrize("mutate", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_data_check_exits_2_naming_file_line_and_column_of_bad_input(
    mutate, with_table_option, edit_csv, capsys
):
    filename, line, column, fragment = mutate(edit_csv)
    path = edit_csv.path(filename)
    argv = ["data", "check", str(path)]
    if with_table_option:
        argv += ["--table", BY_FILENAME[filename].name]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert "FAILED" in err and "OK" not in out
    assert fragment in stderr_line_naming(err, location(path, line, column))


def test_data_check_of_a_folder_also_names_the_bad_file_line_and_column(
    edit_csv, tmp_data_dir, capsys
):
    filename, line, column, fragment = _events_exceed_n(edit_csv)
    assert main(["data", "check", str(tmp_data_dir)]) == 2
    err = capsys.readouterr().err
    assert "FAILED: 1 problem(s)" in err
    where = location(edit_csv.path(filename), line, column)
    assert fragment in stderr_line_naming(err, where)


# --------------------------------------------------------------------------- many at once


def _several_problems(ed) -> list[Expected]:
    return [
        (REV, ed.set_cell(REV, "chou2014", "events", "900"), "events", "exceed n 843"),
        (REV, ed.set_cell(REV, "kim2022", "procedure", "VPX"), "procedure", "not one of"),
        (REV, ed.set_cell(REV, "li2016", "n", "twelve"), "n", "not a number"),
        (REV, ed.set_cell(REV, "li2016", "source", ""), "source", "missing value"),
        (REV, ed.set_cell(REV, "yang2008", "study_id", "chou2014"), "study_id", "duplicate"),
        (REV, ed.set_row(REV, "walter2012", ["walter2012", "Walter"]), None, "2 fields"),
    ]


def test_the_loader_reports_every_problem_not_just_the_first(edit_csv):
    expected = _several_problems(edit_csv)
    path = edit_csv.path(REV)
    with pytest.raises(DataValidationError) as exc:
        read_table(path)
    problems = exc.value.problems
    assert len(problems) == len(expected)
    for _, line, column, fragment in expected:
        assert any(
            (p.line, p.column) == (line, column) and fragment in p.message for p in problems
        ), (line, column)
    assert f"{len(expected)} data problem(s)" in str(exc.value)


def test_data_check_reports_every_problem_not_just_the_first(edit_csv, capsys):
    expected = _several_problems(edit_csv)
    path = edit_csv.path(REV)
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"FAILED: {len(expected)} problem(s)" in err
    for _, line, column, fragment in expected:
        assert fragment in stderr_line_naming(err, location(path, line, column))


# --------------------------------------------------------------------------- across tables


def test_arms_that_do_not_sum_to_their_study_row_are_reported(edit_csv, tmp_data_dir):
    edit_csv.set_cell(ARMS, 1, "events", "61")  # KP arm: 80 + 61 = 141, study row says 142
    _, problems = check_data(tmp_data_dir)
    assert [(p.file, p.column) for p in problems] == [(str(edit_csv.path(ARMS)), "events")]
    assert "arms of 'hazzard2014' sum to 141, but the study row has 142" in problems[0].message
    with pytest.raises(DataValidationError, match="sum to 141"):
        build_dataset(DataConfig(split_arms=True), tmp_data_dir)


def test_arm_sample_sizes_that_do_not_sum_to_the_study_row_are_reported(edit_csv, tmp_data_dir):
    edit_csv.set_cell(REV, "hazzard2014", "n", "1396")
    _, problems = check_data(tmp_data_dir)
    assert [p.column for p in problems] == ["n"]
    assert "sum to 1395, but the study row has 1396" in problems[0].message


def test_data_check_exits_2_naming_the_arms_file_and_column_when_arms_do_not_sum(
    edit_csv, tmp_data_dir, capsys
):
    edit_csv.set_cell(ARMS, 1, "events", "61")
    assert main(["data", "check", str(tmp_data_dir)]) == 2
    err = capsys.readouterr().err
    where = f"{edit_csv.path(ARMS)}"
    assert "column 'events'" in stderr_line_naming(err, where)
    assert "sum to 141" in err


def test_arms_that_do_not_sum_are_reported_with_a_line(edit_csv, tmp_data_dir):
    edit_csv.set_cell(ARMS, 1, "events", "61")
    _, problems = check_data(tmp_data_dir)
    assert problems and all(p.line is not None for p in problems)


def test_a_variant_naming_an_unknown_study_is_reported(edit_csv, tmp_data_dir, capsys):
    line = edit_csv.set_cell(VARIANTS, "lin2016_high", "study_id", "lin2061")
    path = edit_csv.path(VARIANTS)
    _, problems = check_data(tmp_data_dir)
    assert [(p.file, p.line, p.column) for p in problems] == [(str(path), line, "study_id")]
    assert "unknown study 'lin2061'" in problems[0].message
    with pytest.raises(DataValidationError, match="lin2061"):
        build_dataset(DataConfig(), tmp_data_dir)
    assert main(["data", "check", str(tmp_data_dir)]) == 2
    err = capsys.readouterr().err
    assert "unknown study 'lin2061'" in stderr_line_naming(err, location(path, line, "study_id"))


def test_an_arm_naming_an_unknown_study_is_reported(edit_csv, tmp_data_dir):
    line = edit_csv.set_cell(ARMS, 0, "study_id", "hazard2014")
    _, problems = check_data(tmp_data_dir)
    assert (str(edit_csv.path(ARMS)), line, "study_id") in [
        (p.file, p.line, p.column) for p in problems
    ]


def test_a_variant_with_more_events_than_its_studys_n_is_reported(edit_csv, tmp_data_dir):
    edit_csv.set_cell(VARIANTS, "lin2016_high", "events", "5000")  # lin2016 has n = 1646
    _, problems = check_data(tmp_data_dir)
    assert problems


# --------------------------------------------------------------------------- valid input


def test_data_check_exits_0_on_a_valid_folder(tmp_data_dir, capsys):
    assert main(["data", "check", str(tmp_data_dir)]) == 0
    out, err = capsys.readouterr()
    assert f"OK: {len(TABLES)} table(s) valid" in out and err == ""


def test_data_check_exits_0_on_the_shipped_data_by_default(monkeypatch, capsys):
    monkeypatch.delenv("BAYES_VA_DATA", raising=False)
    assert main(["data", "check"]) == 0
    out = capsys.readouterr().out
    assert (
        f"checked {default_data_dir() / REV}" in out and f"OK: {len(TABLES)} table(s) valid" in out
    )


def test_data_check_exits_0_on_a_valid_single_table(tmp_data_dir, capsys):
    path = tmp_data_dir / REV
    assert main(["data", "check", str(path), "--table", "revision"]) == 0
    assert f"OK: {path} is a valid 'revision' table" in capsys.readouterr().out
    assert main(["data", "check", str(path)]) == 0
    assert "OK: 1 table(s) valid" in capsys.readouterr().out


def test_data_check_of_a_missing_path_exits_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_data_show_revision_prints_all_fourteen_ids_and_the_totals(data_dir, capsys):
    assert main(["data", "show", "revision", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    ids = [
        "chou2014", "hazzard2014", "hogan2022", "kim2022", "korovessis2013", "li2016",
        "liang2015", "lin2016", "robinson2008", "segal2018", "takahashi2019", "walter2012",
        "yang2020", "yang2008",
    ]  # fmt: skip
    for sid in ids:
        assert re.search(rf"^\s*{sid}\s", out, re.MULTILINE), sid
    # n: Table 1's sample sizes (Hazzard 699 + 696); events: the rows' counts
    assert "k = 14 studies, 185717 patients, 22713 events" in out


# --------------------------------------------------------------------------- known bugs


@pytest.mark.parametrize("value", [str(2**63), str(10**30)])
def test_a_count_too_large_for_int64_is_a_validation_error(value, edit_csv):
    edit_csv.set_cell(REV, "chou2014", "n", value)
    with pytest.raises(DataValidationError):
        read_table(edit_csv.path(REV))


def test_data_check_exits_2_on_a_count_too_large_for_int64(edit_csv, capsys):
    edit_csv.set_cell(REV, "chou2014", "n", str(2**64))
    assert main(["data", "check", str(edit_csv.path(REV))]) == 2


def test_an_integer_with_thousands_of_digits_is_a_validation_error(edit_csv):
    edit_csv.set_cell(REV, "chou2014", "year", "9" * 5000)
    with pytest.raises(DataValidationError):
        read_table(edit_csv.path(REV))


@pytest.mark.parametrize("text", ["+14", "014", "-0", "١٤"])
def test_a_count_not_written_in_canonical_ascii_digits_is_rejected(text, edit_csv):
    edit_csv.set_cell(REV, "chou2014", "events", text)
    with pytest.raises(DataValidationError):
        read_table(edit_csv.path(REV))


def test_a_large_count_beside_an_empty_cell_loads_unaltered():
    big = 2**53 + 1
    text = ",".join(REVISION_VARIANTS.names) + f"\na,s,events,{big},r,src\nb,s,exclude,,r,src\n"
    frame = parse_table(text, REVISION_VARIANTS)
    assert frame["events"].tolist()[0] == big


# --------------------------------------------------------------------------- property


def _shipped_rows() -> list[list[str]]:
    with (default_data_dir().parent / "data" / REV).open(encoding="utf-8", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == list(REVISION.names)
    return rows


BASE_ROWS = _shipped_rows()
COLUMN_VALUES = [sorted({r[j] for r in BASE_ROWS}) for j in range(NCOLS)]
FILE = "random.csv"

_PAD = st.sampled_from([" ", "\t", "  ", "\xa0"])
_SPECIAL = st.sampled_from(
    ["", "nan", "NaN", "inf", "-inf", "1e999", "-1e999", "1e5", "0", "-1", "-0.5", "12.5",
     "twelve", "VPX", "yes", "KP", "Low", "revision", "3.0", ".5", "5.", "1_000", "0x1A"]
)  # fmt: skip
_ASCII_TEXT = st.text(alphabet=string.printable + "–é%", max_size=12)
_NON_CANONICAL_INT = re.compile(r"[+-]?\d+")


def _canonical(s: str) -> bool:
    """False for integer-looking text that int() would renormalise (a known package bug)."""
    return not (_NON_CANONICAL_INT.fullmatch(s) and str(int(s)) != s)


def _cells(full: bool) -> st.SearchStrategy[str]:
    base = st.one_of(
        st.integers(-1000, 10**6).map(str),
        st.integers(-(2**63) + 1, 2**63 - 1).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(0, 150).map(str),
        _SPECIAL,
        st.sampled_from(sorted({c for r in BASE_ROWS for c in r})),
        _ASCII_TEXT.filter(_canonical),
    )
    if full:
        base = st.one_of(
            base,
            st.integers(2**63, 10**40).map(str),
            st.just("9" * 5000),
            st.sampled_from(["+5", "007", "-0", "٣", "١٤"]),
            st.text(max_size=12),
        )
    padded = st.tuples(_PAD | st.just(""), base, _PAD).map("".join)
    return st.one_of(base, padded)


OPERATIONS = ["cell", "cell", "cell", "same_column", "drop", "dup", "shuffle"]


@st.composite
def mutated_tables(draw, full: bool = False) -> list[list[str]]:
    cells = _cells(full)
    rows = [list(r) for r in BASE_ROWS]
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(OPERATIONS))
        if op in ("cell", "same_column") and rows:
            i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, NCOLS - 1))
            rows[i][j] = draw(cells if op == "cell" else st.sampled_from(COLUMN_VALUES[j]))
        elif op == "drop" and rows:
            del rows[draw(st.integers(0, len(rows) - 1))]
        elif op == "dup" and rows:
            copy = list(rows[draw(st.integers(0, len(rows) - 1))])
            rows.insert(draw(st.integers(0, len(rows))), copy)
        elif op == "shuffle":
            rows = [list(r) for r in draw(st.permutations(rows))]
    return rows


def _to_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([list(REVISION.names), *rows])
    return buf.getvalue()


def assert_rejected_or_exact(rows: list[list[str]]) -> None:
    """parse_table either raises naming the file, or returns exactly the cells it was given."""
    try:
        frame = parse_table(_to_csv(rows), REVISION, file=FILE)
    except DataValidationError as exc:
        assert exc.problems
        assert all(p.file == FILE for p in exc.problems)
        return
    assert list(frame.columns) == list(REVISION.names)
    assert len(frame) == len(rows)
    for j, col in enumerate(REVISION.columns):
        for i, value in enumerate(frame[col.name].tolist()):
            text = rows[i][j]
            where = (i, col.name, text, value)
            if text == "":
                assert pd.isna(value), where
            elif col.kind == "int":
                assert isinstance(value, int) and str(value) == text, where
            elif col.kind == "float":
                assert isinstance(value, float) and float(text) == value, where
            else:
                assert value == text, where


_PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_PROPERTY
@given(rows=mutated_tables())
def test_random_tables_are_rejected_or_loaded_exactly_as_written(rows):
    assert_rejected_or_exact(rows)


def _with_cell(column: str, text: str) -> list[list[str]]:
    rows = [list(r) for r in BASE_ROWS]
    rows[0][REVISION.names.index(column)] = text
    return rows


@_PROPERTY
@given(rows=mutated_tables(full=True))
@example(rows=_with_cell("n", str(2**63)))
@example(rows=_with_cell("events", "+5"))
def test_random_tables_with_any_integer_text_are_rejected_or_loaded_exactly(rows):
    assert_rejected_or_exact(rows)
