"""Study-level moderators for meta-regression and subgroup analyses.

A moderator is a column of the outcome table:

* a text column (``procedure``, ``database``, ``rob_selection``, ``design``, ``outcome``) is
  categorical and coded as indicator columns against a reference level;
* a numeric column (``followup_months``, ``age_years``) is continuous and centred; prefix the
  name with ``log_`` (``log_followup_months``) to use its natural log.

The linear predictor of study i is ``mu + X[i] @ beta``, so ``mu`` is the logit proportion at the
reference levels and centres. Studies with a missing moderator value are an error that names
them: the analyst decides whether to exclude them, nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from bayes_va.core.errors import ConfigError


@dataclass(frozen=True)
class Term:
    """One moderator: how it maps onto columns of the design matrix."""

    name: str
    column: str
    kind: Literal["categorical", "continuous"]
    log: bool
    reference: str | float  # level (categorical) or centre on the model scale (continuous)
    levels: tuple[str, ...] = ()  # non-reference levels (categorical)

    @property
    def coef_names(self) -> tuple[str, ...]:
        """Names of this term's coefficients: its name, or ``name[level]`` per level."""
        if self.kind == "continuous":
            return (self.name,)
        return tuple(f"{self.name}[{lvl}]" for lvl in self.levels)


@dataclass(frozen=True)
class Design:
    """Design matrix of a meta-regression and the recipe that built it."""

    terms: tuple[Term, ...]
    X: np.ndarray

    @property
    def coef_names(self) -> tuple[str, ...]:
        """Names of the coefficients, in the order of the columns of ``X``."""
        return tuple(c for t in self.terms for c in t.coef_names)

    def row(self, values: dict[str, str | float]) -> np.ndarray:
        """Return the design row of a new study with the given moderator values.

        Parameters
        ----------
        values : dict of str to str or float
            Moderator name to value; a moderator left out takes its reference level (or its
            centre). For a ``log_`` moderator pass the raw value (e.g.
            ``{"log_followup_months": 12}`` for 12 months); it is logged here.

        Returns
        -------
        numpy.ndarray
            The row, shape ``(len(coef_names),)``, coded and centred like the rows of ``X``.

        Raises
        ------
        ConfigError
            If a name is not a moderator of this design, a categorical value is not one of
            its levels, or a ``log_`` value is not positive.
        """
        unknown = set(values) - {t.name for t in self.terms}
        if unknown:
            raise ConfigError(
                f"unknown moderator(s) {sorted(unknown)}; this model has "
                f"{[t.name for t in self.terms]}"
            )
        out: list[float] = []
        for t in self.terms:
            v = values.get(t.name)
            if t.kind == "continuous":
                if v is None:
                    out.append(0.0)
                    continue
                x = float(v)
                if t.log:
                    if x <= 0:
                        raise ConfigError(f"moderator {t.name}: {x} must be > 0 to take its log")
                    x = float(np.log(x))
                out.append(x - float(t.reference))
            else:
                level = t.reference if v is None else str(v)
                allowed = (str(t.reference), *t.levels)
                if level not in allowed:
                    raise ConfigError(f"moderator {t.name}: {level!r} is not one of {allowed}")
                out.extend(1.0 if level == lvl else 0.0 for lvl in t.levels)
        return np.asarray(out)

    def to_json(self) -> str:
        """Serialise the terms (not ``X``) to JSON; :meth:`from_json` reads it back."""
        return json.dumps([asdict(t) for t in self.terms])

    @classmethod
    def from_json(cls, text: str, X: np.ndarray) -> Design:
        """Rebuild a design from the JSON of :meth:`to_json` and its matrix ``X``."""
        terms = []
        for d in json.loads(text):
            d["levels"] = tuple(d["levels"])
            terms.append(Term(**d))
        return cls(tuple(terms), X)


def build_design(
    table: pd.DataFrame, moderators: tuple[str, ...], reference: dict[str, str | float]
) -> Design:
    """Build the design matrix of ``moderators`` on ``table`` (one row per study).

    Raises
    ------
    ConfigError
        For an unknown column, a missing value (naming the studies), a categorical moderator
        with a single level, or a reference that is not a level.
    """
    unknown_ref = set(reference) - set(moderators)
    if unknown_ref:
        raise ConfigError(
            f"model.reference names moderators not in model.moderators: {sorted(unknown_ref)}"
        )
    terms: list[Term] = []
    columns: list[np.ndarray] = []
    ids = table["study_id"].astype(str).tolist()
    for name in moderators:
        log = name.startswith("log_")
        column = name[4:] if log else name
        if column not in table.columns or column in ("study_id", "n", "events", "source"):
            raise ConfigError(f"model.moderators: {name!r} is not a usable column of the table")
        values = table[column]
        missing = [i for i, v in zip(ids, values, strict=True) if pd.isna(v)]
        if missing:
            raise ConfigError(
                f"model.moderators: {column!r} is missing for {', '.join(missing)}; exclude "
                "these studies (data.exclude) or drop the moderator"
            )
        numeric = pd.api.types.is_numeric_dtype(values)
        if numeric:
            x = values.to_numpy(dtype=float)
            if log:
                if np.any(x <= 0):
                    raise ConfigError(f"model.moderators: {name!r} needs positive values")
                x = np.log(x)
            ref = reference.get(name)
            if isinstance(ref, str):
                raise ConfigError(f"model.reference.{name} must be a number")
            if ref is not None and log and ref <= 0:
                raise ConfigError(f"model.reference.{name} must be > 0 (it is logged)")
            # the reference is given on the raw scale (12 months), the centre is its log
            centre = float(np.median(x)) if ref is None else float(np.log(ref) if log else ref)
            terms.append(Term(name, column, "continuous", log, centre))
            columns.append((x - centre)[:, None])
        else:
            if log:
                raise ConfigError(f"model.moderators: {name!r}: cannot take the log of text")
            text = values.astype(str)
            counts = text.value_counts(sort=False)
            levels = list(counts.index)
            if len(levels) < 2:
                raise ConfigError(f"model.moderators: {name!r} has a single level {levels}")
            ref = reference.get(name)
            if ref is None:
                ref = max(levels, key=lambda lv: (counts[lv], -levels.index(lv)))
            ref = str(ref)
            if ref not in levels:
                raise ConfigError(f"model.reference.{name}: {ref!r} is not one of {levels}")
            others = tuple(lv for lv in levels if lv != ref)
            terms.append(Term(name, column, "categorical", False, ref, others))
            columns.append(np.stack([(text == lv).to_numpy(float) for lv in others], axis=1))
    X = np.concatenate(columns, axis=1) if columns else np.zeros((len(table), 0))
    return Design(tuple(terms), X)
