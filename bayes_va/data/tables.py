"""Load and validate the evidence tables in ``data/``.

Every loader parses cells exactly as written (no rounding, clipping, stripping or type
coercion) and raises :class:`~bayes_va.core.errors.DataValidationError` listing *every* problem with
file, line and column. Zero-event studies are valid and kept.

The tables are declared by Frictionless Table Schemas (:mod:`bayes_va.data.schemas`), but they are
parsed here rather than by the ``frictionless`` library: it is not a dependency, and it coerces
("3.0" is a valid integer, "+5" too, "NaN" a number) and stops at a first batch of errors, where
this parser accepts canonical integers only, keeps missing cells as NA and lists every problem.
A user's own table (:func:`read_user_table`) goes through the same parser.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bayes_va.core.errors import DataValidationError, Problem
from bayes_va.data.schemas import (
    BY_FILENAME,
    TABLES,
    Column,
    TableSchema,
    read_schema,
    schema_path,
)

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


def _parse_cell(
    text: str, col: Column, missing: tuple[str, ...] = ("",)
) -> tuple[object, str | None]:
    """Parse one cell; return (value, error message or None)."""
    if text in missing:
        what = "empty cell" if text == "" else f"missing value {text!r}"
        return (None, f"missing value ({what})") if col.required else (None, None)
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
                value, err = _parse_cell(cell, col, schema.missing_values)
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
    ev_col, n_col = schema.roles.get("events", "events"), schema.roles.get("n", "n")
    for rec, line in zip(records, lines, strict=True):
        if ev_col in names and n_col in names:
            e, n = rec[ev_col], rec[n_col]
            if isinstance(e, int) and isinstance(n, int) and e > n:
                problems.append(Problem(file, line, ev_col, f"{ev_col} {e} exceed {n_col} {n}"))
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
    # A paper build reads the same few tables hundreds of times (each fit's cache key builds
    # its data set) and parsing is what costs: keep parsed frames by file, schema and content
    # (a changed file is a new key); callers get a copy, so the kept frame cannot be altered.
    key = (str(path), repr(schema), hashlib.sha256(text.encode()).hexdigest())
    if (frame := _PARSED.get(key)) is None:
        frame = parse_table(text, schema, file=str(path))
        if len(_PARSED) >= 128:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = frame
    return frame.copy()


_PARSED: dict[tuple[str, str, str], pd.DataFrame] = {}


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


def foreign_key_problems(
    tables: dict[str, pd.DataFrame], schemas: dict[str, TableSchema] | None = None
) -> list[Problem]:
    """Check the declared foreign keys between the given tables (both ends must be present)."""
    schemas = TABLES if schemas is None else schemas
    problems: list[Problem] = []
    for name, frame in tables.items():
        schema = schemas.get(name)
        for fk in schema.foreign_keys if schema else ():
            target = tables.get(fk.resource)
            if target is None:
                continue
            allowed = set(zip(*(target[c] for c in fk.ref_fields), strict=True))
            rows = zip(*(frame[c] for c in fk.fields), strict=True)
            for key, line in zip(rows, frame.attrs["lines"], strict=True):
                if any(pd.isna(v) for v in key) or key in allowed:
                    continue
                value = key[0] if len(key) == 1 else key
                what = "study" if fk.fields == ("study_id",) else "+".join(fk.fields)
                problems.append(
                    Problem(
                        frame.attrs["source_file"],
                        line,
                        "+".join(fk.fields),
                        f"unknown {what} {value!r} (not in table '{fk.resource}')",
                    )
                )
    return problems


def cross_table_problems(tables: dict[str, pd.DataFrame]) -> list[Problem]:
    """Consistency checks between tables of one data folder."""
    problems = foreign_key_problems(tables)
    rev = tables.get("revision")
    if rev is None:
        return problems + _contrast_problems(tables)
    studies = rev.set_index("study_id")
    study_line = dict(zip(rev["study_id"], rev.attrs["lines"], strict=True))
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
    return problems + _contrast_problems(tables)


def _contrast_problems(tables: dict[str, pd.DataFrame]) -> list[Problem]:
    problems: list[Problem] = []
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
    if target.is_file() and target.name not in BY_FILENAME:
        try:
            read_user_table(target)
        except DataValidationError as exc:
            return [str(target)], list(exc.problems)
        return [str(target)], []
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


#: Default column names of a user's outcome table (``[data.columns]`` renames them).
DEFAULT_COLUMNS = {"study": "study", "events": "events", "n": "n"}
#: The names the model code uses for the three roles.
CANONICAL = {"study": "study_id", "events": "events", "n": "n"}


def read_user_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    columns: dict[str, str] | None = None,
    *,
    file: str | None = None,
) -> pd.DataFrame:
    """Read and validate a user's outcome table: one row per study with its events and n.

    The table's schema is ``<stem>.schema.json`` beside the CSV when there is one (its
    ``bayes_va.roles`` name the columns); otherwise the columns ``study``, ``events`` and ``n``
    (renamed by ``columns``, a config's ``[data.columns]``) are required, and every other
    column is a possible moderator: numeric when every cell is a number, else text.

    Parameters
    ----------
    source : path-like or pandas.DataFrame
        The CSV file, or a frame (written as CSV and parsed the same way, so ``3.0`` in a
        count column is an error as in a file; line numbers count the header as line 1).
    columns : dict, optional
        Role (``study``, ``events``, ``n``) to column name.
    file : str, optional
        Name used in error messages (default: the path, or ``<DataFrame>``).

    Returns
    -------
    pandas.DataFrame
        The study label, events and n as ``study_id``, ``events`` and ``n`` (Int64), the other
        columns as parsed, in file order; ``attrs`` hold ``source_file``, ``lines`` and
        ``sha256`` (of the CSV text).

    Raises
    ------
    DataValidationError
        Listing every problem with file, line and column.
    """
    schema: TableSchema | None = None
    if isinstance(source, pd.DataFrame):
        file = file or "<DataFrame>"
        text = source.to_csv(index=False, lineterminator="\n")
    else:
        path = Path(source)
        file = file or str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise DataValidationError([Problem(file, None, None, "file not found")]) from None
        except UnicodeDecodeError as exc:
            raise DataValidationError([Problem(file, None, None, f"not UTF-8: {exc}")]) from None
        if schema_path(path).is_file():
            schema = read_schema(schema_path(path), path.name)
    if schema is not None:
        roles = {r: schema.roles[r] for r in CANONICAL if r in schema.roles}
        roles.update(columns or {})
        schema = replace(schema, roles={**schema.roles, **roles})
    else:
        roles = {**DEFAULT_COLUMNS, **(columns or {})}
    problems: list[Problem] = []
    try:
        header = next(csv.reader(io.StringIO(text, newline="")))
    except StopIteration:
        raise DataValidationError([Problem(file, None, None, "the file is empty")]) from None
    except csv.Error as exc:
        raise DataValidationError([Problem(file, 1, None, f"unreadable CSV: {exc}")]) from None
    for role, col in roles.items():
        if col not in header:
            how = (
                f"named by data.columns.{role}"
                if columns and role in columns
                else f"the {role} column"
            )
            problems.append(
                Problem(
                    file,
                    1,
                    col,
                    f"missing required column {col!r} ({how}); the header has {', '.join(header)}",
                )
            )
    for col in sorted({c for c in header if header.count(c) > 1}):
        problems.append(Problem(file, 1, col, "duplicated column name"))
    for role, canonical in CANONICAL.items():
        if canonical in header and roles.get(role) != canonical and canonical not in roles.values():
            problems.append(
                Problem(
                    file,
                    1,
                    canonical,
                    f"column {canonical!r} would clash with the "
                    f"{role} column {roles[role]!r}; rename one of them",
                )
            )
    if schema is None:
        # infer from the columns present, so that cell problems are listed with header ones
        present = {r: c for r, c in roles.items() if c in header}
        if len(set(header)) == len(header):
            schema = _infer_schema(text, header, present, file)
    if schema is not None:
        try:
            frame = parse_table(text, schema, file=file)
        except DataValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DataValidationError(problems)
    frame = frame.rename(columns={roles[r]: CANONICAL[r] for r in CANONICAL})
    frame.attrs["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return frame


def _infer_schema(text: str, header: list[str], roles: dict[str, str], file: str) -> TableSchema:
    """Infer the schema of a CSV without one: roles' columns strict, the rest numbers or text."""
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    by_role = {v: k for k, v in roles.items()}
    cols = []
    for j, name in enumerate(header):
        role = by_role.get(name)
        if role == "study":
            cols.append(Column(name, "str", unique=True))
        elif role == "events":
            cols.append(Column(name, "int", minimum=0))
        elif role == "n":
            cols.append(Column(name, "int", minimum=1))
        else:
            cells = [r[j] for r in rows if len(r) == len(header) and r[j] != ""]
            numeric = bool(cells) and all(_FLOAT.fullmatch(c) for c in cells)
            cols.append(Column(name, "float" if numeric else "str", required=False))
    return TableSchema(
        name=Path(file).stem, filename=Path(file).name, columns=tuple(cols), roles=dict(roles)
    )


def moderator_problems(frame: pd.DataFrame, moderators: Iterable[str]) -> list[Problem]:
    """Check that a user table has every moderator a config names (``log_x`` needs ``x``).

    A column that mixes numbers and text is reported too (it would silently become
    categorical), naming the lines of its text cells.
    """
    file = frame.attrs.get("source_file", "<table>")
    lines = frame.attrs.get("lines", list(range(2, len(frame) + 2)))
    usable = [c for c in frame.columns if c not in (*CANONICAL.values(), "source")]
    problems: list[Problem] = []
    for name in moderators:
        col = name[4:] if name.startswith("log_") and name not in frame.columns else name
        if col not in usable:
            problems.append(
                Problem(
                    file,
                    1,
                    col,
                    f"model.moderators names {name!r}, which is not a "
                    f"moderator column of this table (columns: {', '.join(usable) or 'none'})",
                )
            )
            continue
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values):
            continue
        numeric = [bool(_FLOAT.fullmatch(str(v))) for v in values if not pd.isna(v)]
        if any(numeric) and not all(numeric):
            for v, line in zip(values, lines, strict=True):
                if not pd.isna(v) and not _FLOAT.fullmatch(str(v)):
                    problems.append(
                        Problem(
                            file,
                            line,
                            col,
                            f"{v!r} is text in a column of numbers; "
                            "write a number (or leave it empty), or make every cell text",
                        )
                    )
    return problems
