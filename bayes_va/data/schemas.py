"""Schemas of the evidence tables: what each column must hold, read from ``data/*.schema.json``.

Each table in ``data/`` is declared by a Frictionless Table Schema beside its CSV
(``revision_studies.csv`` -> ``revision_studies.schema.json``), and ``data/datapackage.json``
lists them as one Data Package, so other tools (Python or R ``frictionless``) read the folder
too. The JSON files are the single source of truth: adding a table is adding a CSV and its
schema, no Python. What the model needs of a table (which column is the study label, the
events, the sample size, ...) is a custom property, ``"bayes_va": {"name": ..., "roles": ...}``.

The codebook (``data/README.md``) explains the columns in words; these schemas enforce them
(:mod:`bayes_va.data.tables`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bayes_va.core.errors import DataValidationError, Problem

Kind = Literal["str", "int", "float", "enum"]

#: Table Schema field types this loader parses (strictly; see :mod:`bayes_va.data.tables`).
_KINDS: dict[str, Kind] = {"string": "str", "integer": "int", "number": "float"}
#: The roles a table may declare; study, events and n make it an outcome table.
ROLES = ("study", "events", "n", "followup", "source", "moderators")
SCHEMA_SUFFIX = ".schema.json"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes
    ----------
    name : str
        Header name.
    kind : {"str", "int", "float", "enum"}
        How the text of a cell is parsed. Parsing is exact: ``"3.0"`` is not an int and
        ``"nan"`` is not a float.
    required : bool
        Whether an empty cell is an error.
    choices : tuple of str
        Allowed values of an ``enum`` column.
    minimum, maximum : float or None
        Inclusive bounds of numeric columns.
    unique : bool
        Whether values must be unique within the table.
    """

    name: str
    kind: Kind = "str"
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unique: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """Values of ``fields`` must occur in ``ref_fields`` of table ``resource``."""

    fields: tuple[str, ...]
    resource: str
    ref_fields: tuple[str, ...]


@dataclass(frozen=True)
class TableSchema:
    """A table: its file name, columns, keys and the roles of its columns.

    ``roles`` maps ``study``, ``events``, ``n``, ``followup`` and ``source`` to column names
    (and ``moderators`` to a tuple of them); ``aliases`` are other names a config may use
    (``avf`` for ``avf_cohorts``).
    """

    name: str
    filename: str
    columns: tuple[Column, ...]
    unique_together: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    missing_values: tuple[str, ...] = ("",)
    foreign_keys: tuple[ForeignKey, ...] = ()
    roles: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in file order."""
        return tuple(c.name for c in self.columns)

    @property
    def is_outcome(self) -> bool:
        """Whether the table declares the study, events and n columns a model needs."""
        return all(r in self.roles for r in ("study", "events", "n"))


def schema_from_dict(raw: Any, filename: str, file: str = "<schema>") -> TableSchema:
    """Build a :class:`TableSchema` from a Table Schema descriptor (parsed JSON).

    Parameters
    ----------
    raw : dict
        The descriptor: ``fields`` (``name``, ``type``, ``constraints``), ``missingValues``,
        ``primaryKey``, ``uniqueKeys``, ``foreignKeys`` and the custom ``bayes_va`` property.
    filename : str
        The CSV file the schema describes.
    file : str
        Name used in error messages (the schema file).

    Raises
    ------
    DataValidationError
        Listing every unsupported or malformed part of the descriptor.
    """
    problems: list[Problem] = []

    def bad(message: str, column: str | None = None) -> None:
        problems.append(Problem(file, None, column, message))

    if not isinstance(raw, dict) or not isinstance(raw.get("fields"), list) or not raw["fields"]:
        raise DataValidationError([Problem(file, None, None, "needs a non-empty 'fields' list")])
    columns: list[Column] = []
    for f in raw["fields"]:
        name = f.get("name") if isinstance(f, dict) else None
        if not isinstance(name, str) or not name:
            bad(f"a field without a name: {f!r}")
            continue
        cons = f.get("constraints", {})
        ftype = f.get("type", "string")
        if ftype not in _KINDS:
            bad(f"type {ftype!r} is not supported (use {', '.join(_KINDS)})", name)
            continue
        unknown = set(cons) - {"required", "unique", "minimum", "maximum", "enum"}
        if unknown:
            bad(f"unsupported constraint(s) {sorted(unknown)}", name)
        kind = _KINDS[ftype]
        choices: tuple[str, ...] = ()
        if "enum" in cons:
            if kind != "str":
                bad("an 'enum' constraint is supported on string fields only", name)
            kind, choices = "enum", tuple(str(c) for c in cons["enum"])
        columns.append(
            Column(
                name,
                kind,
                required=bool(cons.get("required", False)),
                choices=choices,
                minimum=cons.get("minimum"),
                maximum=cons.get("maximum"),
                unique=bool(cons.get("unique", False)),
            )
        )
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        bad(f"duplicated field name(s) {dupes}")

    def keys(value: Any, what: str) -> tuple[str, ...]:
        fields = (value,) if isinstance(value, str) else tuple(value)
        missing = [k for k in fields if k not in names]
        if missing:
            bad(f"{what} names unknown field(s) {missing}")
        return fields

    unique_together: tuple[str, ...] = ()
    primary = keys(raw.get("primaryKey", ()), "primaryKey")
    if len(primary) == 1:
        columns = [
            Column(**{**c.__dict__, "unique": True}) if c.name == primary[0] else c for c in columns
        ]
    elif primary:
        unique_together = primary
    unique_keys = raw.get("uniqueKeys", [])
    if unique_keys:
        if unique_together or len(unique_keys) > 1:
            bad("only one composite key (primaryKey or uniqueKeys) is supported")
        unique_together = keys(unique_keys[0], "uniqueKeys")
    foreign = []
    for fk in raw.get("foreignKeys", []):
        ref = fk.get("reference", {})
        foreign.append(
            ForeignKey(
                keys(fk.get("fields", ()), "foreignKeys"),
                str(ref.get("resource", "")),
                tuple([ref["fields"]] if isinstance(ref.get("fields"), str) else ref["fields"]),
            )
        )
    custom = raw.get("bayes_va", {})
    roles = dict(custom.get("roles", {}))
    for role, col in roles.items():
        if role not in ROLES:
            bad(f"bayes_va.roles: unknown role {role!r} (roles: {', '.join(ROLES)})")
        for c in col if isinstance(col, list) else [col]:
            if c not in names:
                bad(f"bayes_va.roles.{role} names unknown field {c!r}")
    if "moderators" in roles:
        roles["moderators"] = tuple(roles["moderators"])
    if problems:
        raise DataValidationError(problems)
    return TableSchema(
        name=str(custom.get("name", Path(filename).stem)),
        filename=filename,
        columns=tuple(columns),
        unique_together=unique_together,
        description=str(raw.get("description", "")),
        missing_values=tuple(raw.get("missingValues", [""])),
        foreign_keys=tuple(foreign),
        roles=roles,
        aliases=tuple(custom.get("aliases", ())),
    )


def schema_path(csv: str | Path) -> Path:
    """Return where the schema of a CSV file lives: ``x.csv`` -> ``x.schema.json`` beside it."""
    csv = Path(csv)
    return csv.with_name(csv.name.removesuffix(".csv") + SCHEMA_SUFFIX)


def read_schema(path: str | Path, filename: str | None = None) -> TableSchema:
    """Read one Table Schema JSON file (the CSV it describes defaults to ``<stem>.csv``)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataValidationError([Problem(str(path), None, None, "file not found")]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataValidationError([Problem(str(path), None, None, f"not JSON: {exc}")]) from None
    if filename is None:
        filename = path.name.removesuffix(SCHEMA_SUFFIX) + ".csv"
    return schema_from_dict(raw, filename, str(path))


def load_schemas(folder: str | Path = SHIPPED_DIR) -> dict[str, TableSchema]:
    """Read the schemas of a data folder, by table name.

    The order is ``datapackage.json``'s, then any ``*.schema.json`` it does not list (sorted),
    so a table dropped in with its schema is found without further changes.
    """
    folder = Path(folder)
    files: list[tuple[Path, str]] = []
    package = folder / "datapackage.json"
    if package.is_file():
        for res in json.loads(package.read_text(encoding="utf-8")).get("resources", []):
            if isinstance(res.get("schema"), str):
                files.append((folder / res["schema"], res["path"]))
    listed = {p.name for p, _ in files}
    for p in sorted(folder.glob(f"*{SCHEMA_SUFFIX}")):
        if p.name not in listed:
            files.append((p, p.name.removesuffix(SCHEMA_SUFFIX) + ".csv"))
    out: dict[str, TableSchema] = {}
    for p, csv_name in files:
        s = read_schema(p, csv_name)
        out[s.name] = s
    return out


TABLES: dict[str, TableSchema] = load_schemas() if SHIPPED_DIR.is_dir() else {}
"""Every table bayes_va ships, by name (read from ``data/*.schema.json``)."""

BY_FILENAME: dict[str, TableSchema] = {s.filename: s for s in TABLES.values()}

#: Names a config's ``data.table`` may use for a shipped outcome table (name or alias).
OUTCOME_TABLES: dict[str, TableSchema] = {
    alias: s for s in TABLES.values() if s.is_outcome for alias in (s.name, *s.aliases)
}
