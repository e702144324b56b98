"""Load and validate the evidence tables in ``data/``.

Every loader parses cells exactly as written (no rounding, clipping, stripping or type
coercion) and raises :class:`~bayes_va.core.errors.DataValidationError` listing *every* problem with
file, line and column. Zero-event studies are valid and kept.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bayes_va.core.errors import DataValidationError, Problem
from bayes_va.data.schemas import BY_FILENAME, TABLES, Column, TableSchema

# Canonical ASCII integers only, so that str(value) == cell text (no "+5", "007", "-0", "١٤").
_INT = re.compile(r"0|-?[1-9][0-9]*")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
#: Counts are stored as int64; longer integers are rejected rather than overflowing.
_MAX_INT_DIGITS = 18


def default_data_dir() -> Path:
    """Return the data folder: ``BAYES_VA_DATA`` if set, else the project's ``data/``."""
    env = os.environ.get("BAYES_VA_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


def _parse_cell(text: str, col: Column) -> tuple[object, str | None]:
    """Parse one cell; return (value, error message or None)."""
    if text == "":
        return (None, "missing value (empty cell)") if col.required else (None, None)
    if text != text.strip():
        return None, f"{text!r} has leading or trailing whitespace"
    if col.kind == "str":
        return text, None
    if col.kind == "enum":
        if text not in col.choices:
            return None, f"{text!r} is not one of {', '.join(col.choices)}"
        return text, None
    if col.kind == "int":
        if not _INT.fullmatch(text):
            if _FLOAT.fullmatch(text):
                return None, f"{text!r} is a non-integer number; an integer is required"
            if re.fullmatch(r"[+-]?\d+", text):
                return (
                    None,
                    f"{text!r} is not a plain integer (no sign, leading zeros or non-ASCII digits)",
                )
            return None, f"{text!r} is not a number; an integer is required"
        if len(text.lstrip("-")) > _MAX_INT_DIGITS:
            return None, f"{text[:20]}... is too large (more than {_MAX_INT_DIGITS} digits)"
        value: float = int(text)
    else:
        if not _FLOAT.fullmatch(text):
            return None, f"{text!r} is not a finite number"
        value = float(text)
        if not math.isfinite(value):  # e.g. 1e999 overflows to inf
            return None, f"{text!r} is not a finite number"
    if col.minimum is not None and value < col.minimum:
        return None, f"{text} is below the minimum {col.minimum:g}"
    if col.maximum is not None and value > col.maximum:
        return None, f"{text} is above the maximum {col.maximum:g}"
    return value, None


def parse_table(text: str, schema: TableSchema, file: str = "<string>") -> pd.DataFrame:
    """Parse CSV text against a schema.

    Parameters
    ----------
    text : str
        The CSV content (header line first).
    schema : TableSchema
        What the table must hold.
    file : str
        Name used in error messages.

    Returns
    -------
    pandas.DataFrame
        Integer columns as ``Int64``, float columns as ``Float64``, text as ``object``; missing
        cells are ``pd.NA``. Row order is the file's.

    Raises
    ------
    DataValidationError
        With every problem found.
    """
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataValidationError([Problem(file, None, None, "the file is empty")]) from None
    except csv.Error as exc:
        raise DataValidationError([Problem(file, 1, None, f"unreadable CSV: {exc}")]) from None
    expected = list(schema.names)
    if header != expected:
        missing = [c for c in expected if c not in header]
        unexpected = [c for c in header if c not in expected]
        dupes = sorted({c for c in header if header.count(c) > 1})
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if unexpected:
            detail.append(f"unexpected {unexpected}")
        if dupes:
            detail.append(f"duplicated {dupes}")
        if not detail:
            detail.append("columns out of order")
        raise DataValidationError(
            [
                Problem(
                    file,
                    1,
                    None,
                    f"wrong header for table '{schema.name}' ({'; '.join(detail)}); "
                    f"expected: {','.join(expected)}",
                )
            ]
        )

    records: list[dict[str, object]] = []
    lines: list[int] = []
    try:
        for raw in reader:
            line = reader.line_num
            if len(raw) != len(expected):
                problems.append(
                    Problem(file, line, None, f"{len(raw)} fields, expected {len(expected)}")
                )
                continue
            rec: dict[str, object] = {}
            for col, cell in zip(schema.columns, raw, strict=True):
                value, err = _parse_cell(cell, col)
                if err:
                    problems.append(Problem(file, line, col.name, err))
                rec[col.name] = value
            records.append(rec)
            lines.append(line)
    except csv.Error as exc:
        problems.append(Problem(file, reader.line_num, None, f"unreadable CSV: {exc}"))

    if not records and not problems:
        problems.append(Problem(file, None, None, "the table has no data rows"))
    problems.extend(_row_checks(records, lines, schema, file))
    if problems:
        raise DataValidationError(problems)

    # Build column by column from the parsed Python values: going through a record frame
    # would let pandas pass ints through float64 and turn missing text into nan.
    columns: dict[str, object] = {}
    for col in schema.columns:
        values = [rec[col.name] for rec in records]
        if col.kind == "int":
            columns[col.name] = pd.array(values, dtype="Int64")
        elif col.kind == "float":
            columns[col.name] = pd.array(values, dtype="Float64")
        else:
            columns[col.name] = pd.Series([pd.NA if v is None else v for v in values], dtype=object)
    frame = pd.DataFrame(columns)
    frame.attrs["source_file"] = file
    frame.attrs["lines"] = lines
    return frame


def _row_checks(
    records: list[dict[str, object]], lines: list[int], schema: TableSchema, file: str
) -> list[Problem]:
    """Check across cells: uniqueness, events <= n, table-specific rules."""
    problems: list[Problem] = []
    for col in schema.columns:
        if col.unique:
            seen: dict[object, int] = {}
            for rec, line in zip(records, lines, strict=True):
                v = rec[col.name]
                if v is None:
                    continue
                if v in seen:
                    problems.append(
                        Problem(file, line, col.name, f"duplicate {v!r} (first on line {seen[v]})")
                    )
                else:
                    seen[v] = line
    if schema.unique_together:
        seen_key: dict[tuple[object, ...], int] = {}
        for rec, line in zip(records, lines, strict=True):
            key = tuple(rec[c] for c in schema.unique_together)
            if key in seen_key:
                problems.append(
                    Problem(
                        file,
                        line,
                        "+".join(schema.unique_together),
                        f"duplicate {key!r} (first on line {seen_key[key]})",
                    )
                )
            else:
                seen_key[key] = line
    names = schema.names
    for rec, line in zip(records, lines, strict=True):
        if "events" in names and "n" in names:
            e, n = rec["events"], rec["n"]
            if isinstance(e, int) and isinstance(n, int) and e > n:
                problems.append(Problem(file, line, "events", f"events {e} exceed n {n}"))
        if schema.name == "revision_variants":
            if rec["action"] == "events" and rec["events"] is None:
                problems.append(Problem(file, line, "events", "action 'events' needs a count"))
            if rec["action"] == "exclude" and rec["events"] is not None:
                problems.append(Problem(file, line, "events", "action 'exclude' takes no count"))
        if schema.name == "an2021_table1" and rec["statistic"] == "count":
            for c in ("recompression_value", "noncompression_value"):
                v = rec[c]
                if isinstance(v, float) and not v.is_integer():
                    problems.append(Problem(file, line, c, f"count {v} is not an integer"))
    return problems


def read_table(
    path: str | os.PathLike[str], schema: TableSchema | str | None = None
) -> pd.DataFrame:
    """Read and validate one CSV file.

    Parameters
    ----------
    path : path-like
        The CSV file.
    schema : TableSchema or str, optional
        The table's schema or its name; inferred from the file name when omitted.
    """
    path = Path(path)
    if schema is None:
        if path.name not in BY_FILENAME:
            known = ", ".join(sorted(BY_FILENAME))
            raise DataValidationError(
                [Problem(str(path), None, None, f"not a known table file (known: {known})")]
            )
        schema = BY_FILENAME[path.name]
    elif isinstance(schema, str):
        schema = TABLES[schema]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataValidationError([Problem(str(path), None, None, "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise DataValidationError([Problem(str(path), None, None, f"not UTF-8: {exc}")]) from None
    return parse_table(text, schema, file=str(path))


def load_table(name: str, data_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load one of the known tables (see :data:`bayes_va.data.schemas.TABLES`) by name."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}")
    schema = TABLES[name]
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    return read_table(folder / schema.filename, schema)


def load_revision(data_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load the 14 revision studies (``revision_studies.csv``), validated."""
    return load_table("revision", data_dir)


def cross_table_problems(tables: dict[str, pd.DataFrame]) -> list[Problem]:
    """Consistency checks between tables of one data folder."""
    problems: list[Problem] = []
    rev = tables.get("revision")
    if rev is None:
        return problems
    studies = rev.set_index("study_id")
    study_line = dict(zip(rev["study_id"], rev.attrs["lines"], strict=True))
    for name in ("revision_arms", "revision_variants"):
        t = tables.get(name)
        if t is None:
            continue
        for sid, line in zip(t["study_id"], t.attrs["lines"], strict=True):
            if sid not in studies.index:
                problems.append(
                    Problem(t.attrs["source_file"], line, "study_id", f"unknown study {sid!r}")
                )
    variants = tables.get("revision_variants")
    if variants is not None:
        for sid, ev, line in zip(
            variants["study_id"], variants["events"], variants.attrs["lines"], strict=True
        ):
            if sid in studies.index and not pd.isna(ev) and ev > studies.loc[sid, "n"]:
                problems.append(
                    Problem(
                        variants.attrs["source_file"],
                        line,
                        "events",
                        f"events {ev} exceed n {studies.loc[sid, 'n']} of study {sid!r} "
                        f"({rev.attrs['source_file']}, line {study_line[sid]})",
                    )
                )
    arms = tables.get("revision_arms")
    if arms is not None:
        arm_lines = arms.attrs["lines"]
        for sid, grp in arms.groupby("study_id", sort=False):
            if sid not in studies.index:
                continue
            lines = [arm_lines[i] for i in grp.index]
            for col in ("n", "events"):
                total, row_value = int(grp[col].sum()), int(studies.loc[sid, col])
                if total != row_value:
                    problems.append(
                        Problem(
                            arms.attrs["source_file"],
                            lines[0],
                            col,
                            f"arms of {sid!r} sum to {total}, but the study row has "
                            f"{row_value} (arms on lines {', '.join(map(str, lines))}; study "
                            f"row: {rev.attrs['source_file']}, line {study_line[sid]})",
                        )
                    )
    contrasts = tables.get("avf_contrasts")
    if contrasts is not None:
        for name, grp in contrasts.groupby("contrast", sort=False):
            refs = int((grp["is_reference"] == "yes").sum())
            if refs != 1 or len(grp) < 2:
                problems.append(
                    Problem(
                        contrasts.attrs["source_file"],
                        None,
                        "is_reference",
                        f"contrast {name!r} needs >= 2 groups and exactly one reference "
                        f"(has {len(grp)} groups, {refs} references)",
                    )
                )
    return problems


def check_data(path: str | os.PathLike[str] | None = None) -> tuple[list[str], list[Problem]]:
    """Validate a data folder (every known table file in it) or a single table file.

    Returns
    -------
    checked : list of str
        The files that were checked.
    problems : list of Problem
        Every problem found (empty when the data are valid).
    """
    target = Path(path) if path is not None else default_data_dir()
    if target.is_file():
        files: Iterable[Path] = [target]
    elif target.is_dir():
        files = [target / s.filename for s in TABLES.values() if (target / s.filename).exists()]
        if not files:
            return [], [Problem(str(target), None, None, "no known table files in this folder")]
    else:
        return [], [Problem(str(target), None, None, "no such file or folder")]
    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame] = {}
    checked = []
    for f in files:
        checked.append(str(f))
        try:
            frame = read_table(f)
        except DataValidationError as exc:
            problems.extend(exc.problems)
            continue
        tables[BY_FILENAME[f.name].name] = frame
    problems.extend(cross_table_problems(tables))
    return checked, problems
