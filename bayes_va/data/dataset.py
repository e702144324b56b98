"""Assemble the model-ready study data a config asks for (variants, exclusions, arm splits)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from bayes_va.config.model import DataConfig, is_table_path
from bayes_va.core.errors import ConfigError, DataValidationError
from bayes_va.data.schemas import OUTCOME_TABLES
from bayes_va.data.tables import CANONICAL, cross_table_problems, load_table, read_user_table


@dataclass(frozen=True)
class StudyData:
    """Binomial counts per study, in a fixed order.

    Attributes
    ----------
    study : tuple of str
        Study (or study-arm) labels.
    y, n : numpy.ndarray
        Events and sample sizes (int64).
    table : pandas.DataFrame
        The rows used, with their study-level moderators.
    steps : tuple of str
        What was done to the shipped table, in words (for the provenance record).
    files : tuple of (str, str)
        A user table's file (or ``<DataFrame>``) and the SHA-256 of its CSV text, for the
        provenance record and the fit cache key; empty for the shipped tables.
    """

    study: tuple[str, ...]
    y: np.ndarray
    n: np.ndarray
    table: pd.DataFrame = field(repr=False)
    steps: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()

    @property
    def k(self) -> int:
        """Number of studies (or study arms)."""
        return len(self.study)

    def hash(self) -> str:
        """SHA-256 of the study labels and counts (what the model actually sees)."""
        h = hashlib.sha256()
        for s, y, n in zip(self.study, self.y, self.n, strict=True):
            h.update(f"{s},{int(y)},{int(n)}\n".encode())
        return h.hexdigest()


def from_counts(y: ArrayLike, n: ArrayLike, study: Iterable[str] | None = None) -> StudyData:
    """Build :class:`StudyData` from plain arrays (simulations, user data).

    Parameters
    ----------
    y, n : array_like of int
        Events and sample sizes, 1-d and of equal length, with ``0 <= y <= n`` and ``n >= 1``.
    study : iterable of str, optional
        Study labels; default ``s1, s2, ...``.

    Returns
    -------
    StudyData
        The counts as int64, with a table of just ``study_id``, ``events`` and ``n``.

    Raises
    ------
    ValueError
        If the shapes differ, the arrays are not 1-d, or a count is out of range.
    """
    y = np.asarray(y, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    if y.shape != n.shape or y.ndim != 1:
        raise ValueError("y and n must be 1-d arrays of equal length")
    if np.any(y < 0) or np.any(y > n) or np.any(n < 1):
        raise ValueError("counts must satisfy 0 <= y <= n and n >= 1")
    study = tuple(study) if study is not None else tuple(f"s{i + 1}" for i in range(len(y)))
    table = pd.DataFrame({"study_id": study, "events": y, "n": n})
    return StudyData(study, y, n, table, ("from arrays",))


def build_dataset(
    cfg: DataConfig, data_dir: str | os.PathLike[str], frame: pd.DataFrame | None = None
) -> StudyData:
    """Load the outcome table and apply the config's variants, splits, filters and exclusions.

    The table is a shipped one (``data.table = "revision"``), a user's CSV (a path; relative
    paths were made absolute from the config file's folder when it was loaded, otherwise
    they are relative to the working directory), or ``frame``. Order: variants and arm splits
    (revision table), then ``keep`` filters, then exclusions.

    Parameters
    ----------
    cfg : DataConfig
        The selection.
    data_dir : path-like
        The folder of the shipped tables.
    frame : pandas.DataFrame, optional
        A user's table to use instead of ``cfg.table`` (its column map still applies).

    Raises
    ------
    ConfigError
        If a variant, filter column or value, or excluded study id does not exist (a typo must
        not pass silently), or the selection leaves no studies.
    DataValidationError
        If a user's table is invalid (every problem, with file, line and column).
    """
    files: tuple[tuple[str, str], ...] = ()
    touched: dict[str, str] = {}
    steps: list[str] = []
    if frame is None and cfg.table == "revision":
        table, steps, touched = _revision_table(cfg, data_dir)
    elif cfg.variants or cfg.split_arms:
        raise ConfigError("data.variants and data.split_arms apply to the revision table only")
    elif frame is not None or is_table_path(cfg.table):
        source = frame if frame is not None else Path(cfg.table)
        table = read_user_table(source, {str(k): v for k, v in cfg.columns.items()})
        files = ((table.attrs["source_file"], table.attrs["sha256"]),)
    elif cfg.table in OUTCOME_TABLES:
        schema = OUTCOME_TABLES[cfg.table]
        table = load_table(schema.name, data_dir).copy()
        rename = {schema.roles[r]: c for r, c in CANONICAL.items() if schema.roles[r] != c}
        table = table.rename(columns=rename)
    else:
        raise ConfigError(
            f"data.table: unknown table {cfg.table!r}; shipped outcome tables: "
            f"{', '.join(OUTCOME_TABLES)}; or give the path of a .csv file"
        )
    if cfg.columns and frame is None and not is_table_path(cfg.table):
        raise ConfigError("data.columns applies to a user's table (a path), not a shipped one")
    known = set(table["study_id"]) | set(touched)  # variants may have dropped a study

    for column, allowed in cfg.keep.items():
        if column not in table.columns:
            raise ConfigError(f"data.keep: the table has no column {column!r}")
        present = set(table[column].astype(str))
        unknown = [v for v in allowed if v not in present]
        if unknown:
            raise ConfigError(
                f"data.keep.{column}: {unknown} never occur; values present: {sorted(present)}"
            )
        before = len(table)
        table = table[table[column].astype(str).isin(allowed)]
        steps.append(f"kept {column} in {list(allowed)}: {before} -> {len(table)} rows")

    remaining = set(table["study_id"])
    for sid in cfg.exclude:
        if sid not in known:
            raise ConfigError(
                f"data.exclude: unknown study id {sid!r}; known: {', '.join(sorted(known))}"
            )
        if sid in touched:
            raise ConfigError(
                f"data.exclude: {sid!r} is also changed by variant {touched[sid]!r}; choose one"
            )
        if sid not in remaining:
            raise ConfigError(f"data.exclude: {sid!r} was already removed by data.keep")
        table = table[table["study_id"] != sid]
        steps.append(f"excluded {sid}")

    table = table.reset_index(drop=True)
    if table.empty:
        raise ConfigError("the data selection leaves no studies")
    return StudyData(
        study=tuple(table["study_id"]),
        y=table["events"].to_numpy(dtype=np.int64),
        n=table["n"].to_numpy(dtype=np.int64),
        table=table,
        steps=tuple(steps),
        files=files,
    )


def _revision_table(
    cfg: DataConfig, data_dir: str | os.PathLike[str]
) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Apply the config's variants to the revision table and (optionally) split its arms."""
    table = load_table("revision", data_dir).copy()
    variants = load_table("revision_variants", data_dir)
    arms = load_table("revision_arms", data_dir)
    problems = cross_table_problems(
        {"revision": table, "revision_variants": variants, "revision_arms": arms}
    )
    if problems:
        raise DataValidationError(problems)
    steps: list[str] = []
    by_id = variants.set_index("variant_id")
    touched: dict[str, str] = {}
    for vid in cfg.variants:
        if vid not in by_id.index:
            raise ConfigError(
                f"data.variants: unknown variant {vid!r}; known: {', '.join(by_id.index)}"
            )
        row = by_id.loc[vid]
        sid = row["study_id"]
        if sid in touched:
            raise ConfigError(
                f"data.variants: {vid!r} and {touched[sid]!r} both change study {sid!r}"
            )
        touched[sid] = vid
        if row["action"] == "exclude":
            table = table[table["study_id"] != sid]
            steps.append(f"variant {vid}: excluded {sid}")
        else:
            mask = table["study_id"] == sid
            old = int(table.loc[mask, "events"].iloc[0])
            table.loc[mask, "events"] = int(row["events"])
            steps.append(f"variant {vid}: {sid} events {old} -> {int(row['events'])}")

    if cfg.split_arms:
        rows = []
        for _, r in table.iterrows():
            sub = arms[arms["study_id"] == r["study_id"]]
            if sub.empty:
                rows.append(r.to_dict())
                continue
            if r["study_id"] in touched:
                raise ConfigError(
                    f"data.split_arms: study {r['study_id']!r} is also changed by a variant"
                )
            for _, a in sub.iterrows():
                d = r.to_dict()
                d.update(
                    study_id=f"{r['study_id']}_{a['arm']}",
                    procedure=a["procedure"],
                    n=a["n"],
                    events=a["events"],
                    rate_text=a["rate_text"],
                    rate_pct=a["rate_pct"],
                )
                rows.append(d)
            steps.append(f"split {r['study_id']} into arms {', '.join(sub['arm'])}")
        table = pd.DataFrame(rows)
        for col in ("n", "events"):
            table[col] = table[col].astype("Int64")
    return table, steps, touched
