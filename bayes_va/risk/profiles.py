"""Patient covariates: their definitions and codings, and validation of patient profiles."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bayes_va.risk.constants import EXTRAPOLATION_SDS, FloatArray
from bayes_va.risk.errors import ExtrapolationWarning, ProfileError


@dataclass(frozen=True)
class Covariate:
    """A patient covariate as a user gives it, and how it is coded.

    Attributes
    ----------
    name : str
        Key in a profile (``cement_volume``) and CSV column; the CLI flag is ``--cement-volume``.
    label : str
        Plain-language name with its unit.
    kind : {"continuous", "categorical"}
        Continuous values enter as they are (one column); a categorical covariate is coded as
        one indicator column per non-reference level (``levels[0]`` is the reference, coded 0).
    columns : tuple of str
        Design columns (coefficient names).
    levels : tuple of str
        Canonical levels (categorical only).
    aliases : mapping
        Accepted lower-case spellings → canonical level.
    limits : (float, float) or None
        Values outside are rejected (not physiological, or a unit mix-up).
    required : bool
        Whether a profile must give it; optional covariates default to the cohort mean.
    hint : str
        Extra words for error messages (accepted spellings).
    """

    name: str
    label: str
    kind: Literal["continuous", "categorical"]
    columns: tuple[str, ...]
    levels: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    limits: tuple[float, float] | None = None
    required: bool = True
    hint: str = ""

    def allowed(self) -> str:
        """Describe the allowed values in words."""
        if self.kind == "continuous":
            assert self.limits is not None
            return f"a number in [{self.limits[0]:g}, {self.limits[1]:g}]"
        return f"one of {', '.join(self.levels)}" + (f" ({self.hint})" if self.hint else "")


_YES = {"yes": "yes", "y": "yes", "true": "yes", "1": "yes", "1.0": "yes"}
_NO = {"no": "no", "n": "no", "false": "no", "0": "no", "0.0": "no"}

#: Every covariate any outcome knows (profile key → Covariate).
COVARIATES: dict[str, Covariate] = {
    c.name: c
    for c in (
        Covariate("bmd", "BMD T-score", "continuous", ("bmd",), limits=(-6.0, 4.0)),
        Covariate(
            "ivc",
            "intravertebral cleft before surgery (yes/no)",
            "categorical",
            ("ivc",),
            ("no", "yes"),
            {**_NO, **_YES},
        ),
        Covariate(
            "procedure",
            "procedure (PKP = balloon kyphoplasty, PVP = vertebroplasty)",
            "categorical",
            ("pvp_vs_pkp",),
            ("PKP", "PVP"),
            {"pkp": "PKP", "kp": "PKP", "pvp": "PVP", "vp": "PVP"},
            hint="KP and VP are also accepted",
        ),
        Covariate(
            "endplate_contact",
            "cement in contact with the upper or lower endplate (yes/no)",
            "categorical",
            ("no_endplate_contact",),
            ("yes", "no"),
            {**_YES, **_NO},
        ),
        Covariate(
            "cement_volume",
            "injected cement volume (ml)",
            "continuous",
            ("cement_volume_ml",),
            limits=(0.1, 20.0),
        ),
        Covariate(
            "anterior_height_recovery",
            "recovery of anterior column height (%)",
            "continuous",
            ("anterior_height_recovery_pct",),
            limits=(-100.0, 100.0),
            required=False,
        ),
        Covariate(
            "brace",
            "brace for one month after surgery (yes/no)",
            "categorical",
            ("braced",),
            ("no", "yes"),
            {**_NO, **_YES},
        ),
        Covariate(
            "intradiscal_leakage",
            "intradiscal cement leakage",
            "categorical",
            ("leakage_spike", "leakage_round", "leakage_any"),
            ("none", "spike", "round", "any"),
            {
                "none": "none",
                "no": "none",
                "spike": "spike",
                "round": "round",
                "any": "any",
                "yes": "any",
            },
            hint="any = leakage of unknown type; no = none, yes = any",
        ),
    )
}
_AN_COVARIATES = (
    "bmd",
    "ivc",
    "procedure",
    "endplate_contact",
    "cement_volume",
    "anterior_height_recovery",
)
_AVF_COVARIATES = ("brace", "intradiscal_leakage")
_COVARIATE_OF_COLUMN = {c: name for name in COVARIATES for c in COVARIATES[name].columns}

#: Plain-language names of the design columns (figures and effect tables).
COLUMN_LABELS = {
    "bmd": "BMD, +1 T-score",
    "ivc": "intravertebral cleft vs none",
    "pvp_vs_pkp": "PVP vs PKP",
    "no_endplate_contact": "no endplate contact vs contact",
    "cement_volume_ml": "cement volume, +1 ml",
    "anterior_height_recovery_pct": "anterior height recovery, +1 %",
    "braced": "brace vs none",
    "leakage_spike": "spike-type leakage vs none",
    "leakage_round": "round-type leakage vs none",
    "leakage_any": "intradiscal leakage (any) vs none",
}

#: Worked examples (low, typical, high risk). "typical" uses the An cohort's pooled means and
#: most frequent levels (BMD -2.07, 4.2 ml, PKP, no IVC, no endplate contact); AVF keys are used
#: only by the AVF model.
EXAMPLE_PROFILES: dict[str, dict[str, float | str]] = {
    "low": {
        "bmd": -1.2,
        "ivc": "no",
        "procedure": "PVP",
        "endplate_contact": "yes",
        "cement_volume": 5.5,
        "brace": "yes",
        "intradiscal_leakage": "none",
    },
    "typical": {
        "bmd": -2.1,
        "ivc": "no",
        "procedure": "PKP",
        "endplate_contact": "no",
        "cement_volume": 4.2,
        "brace": "no",
        "intradiscal_leakage": "none",
    },
    "high": {
        "bmd": -3.2,
        "ivc": "yes",
        "procedure": "PKP",
        "endplate_contact": "no",
        "cement_volume": 2.5,
        "brace": "no",
        "intradiscal_leakage": "spike",
    },
}


# words a clinician reads for each covariate's value (one definition: the paper and reports)
_PROFILE_WORDS: dict[str, dict[str, str]] = {
    "ivc": {"yes": "intravertebral cleft", "no": "no intravertebral cleft"},
    "procedure": {"PVP": "vertebroplasty", "PKP": "kyphoplasty"},
    "endplate_contact": {"yes": "endplate contact", "no": "no endplate contact"},
    "brace": {"yes": "brace", "no": "no brace"},
    "intradiscal_leakage": {
        "none": "no intradiscal leakage",
        "spike": "spike-type intradiscal leakage",
        "round": "round-type intradiscal leakage",
        "any": "intradiscal leakage",
    },
}


def describe_profile(profile: Mapping[str, Any]) -> str:
    """Describe a patient profile in words a clinician reads.

    Parameters
    ----------
    profile : mapping
        Covariate name → value, as in :data:`EXAMPLE_PROFILES` (an ``id`` key is skipped).

    Returns
    -------
    str
        E.g. "BMD T-score −2.8, intravertebral cleft, kyphoplasty, 3.0 mL cement, no endplate
        contact". A covariate without words here is printed as "name value".
    """
    parts = []
    for key, value in profile.items():
        if key == "id":
            continue
        if key == "bmd":
            parts.append("BMD T-score " + f"{float(value):.1f}".replace("-", "\u2212"))
        elif key == "cement_volume":
            parts.append(f"{float(value):.1f} mL cement")
        elif key in _PROFILE_WORDS and str(value) in _PROFILE_WORDS[key]:
            parts.append(_PROFILE_WORDS[key][str(value)])
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


@dataclass(frozen=True)
class EncodedProfiles:
    """Profiles after validation: the design matrix and what was assumed or ignored."""

    ids: tuple[str, ...]
    values: pd.DataFrame  # canonical covariate values, one row per profile
    X: FloatArray  # (P, K)
    extrapolated: NDArray[np.bool_]  # (P,)
    ignored: tuple[str, ...]  # known covariates this outcome does not use
    defaulted: tuple[str, ...]  # optional covariates filled with their default


def _as_frame(profiles: Any) -> pd.DataFrame:
    if isinstance(profiles, pd.DataFrame):
        frame = profiles.copy()
    elif isinstance(profiles, Mapping):
        frame = pd.DataFrame([dict(profiles)])
    elif isinstance(profiles, Sequence) and not isinstance(profiles, str):
        if not all(isinstance(p, Mapping) for p in profiles):
            raise ProfileError("profiles must be a mapping, a list of mappings or a DataFrame")
        frame = pd.DataFrame([dict(p) for p in profiles])
    else:
        raise ProfileError("profiles must be a mapping, a list of mappings or a DataFrame")
    frame.columns = [str(c).strip().replace("-", "_").lower() for c in frame.columns]
    if len(frame) == 0:
        raise ProfileError("no profiles given")
    return frame


def _problem_text(problems: list[str], limit: int = 20) -> str:
    shown = problems[:limit]
    more = len(problems) - len(shown)
    return "\n".join(f"  - {p}" for p in shown) + (f"\n  - ... and {more} more" if more else "")


def encode_profiles(
    profiles: Any,
    used: Sequence[str],
    defaults: Mapping[str, float],
    cohort_ranges: Mapping[str, tuple[float, float]],
    *,
    warn: bool = True,
) -> EncodedProfiles:
    """Validate profiles and build their design matrix.

    Parameters
    ----------
    profiles : mapping, list of mappings or DataFrame
        One patient per mapping/row; keys are :data:`COVARIATES` names (``-`` and ``_`` are the
        same) plus an optional ``id``.
    used : sequence of str
        The covariates the outcome uses (their columns form the design, in this order).
    defaults : mapping
        Values of optional covariates a profile leaves out.
    cohort_ranges : mapping
        Covariate → (low, high) range the source cohort covered; values outside warn.
    warn : bool, optional
        Emit :class:`ExtrapolationWarning` (figures scan ranges and pass False).

    Raises
    ------
    ProfileError
        Listing every unknown covariate, missing required covariate, unknown level, non-number
        or value outside the allowed limits, with the allowed range or levels.
    """
    frame = _as_frame(profiles)
    n = len(frame)
    ids = (
        tuple(str(v) for v in frame["id"])
        if "id" in frame.columns
        else tuple(str(i + 1) for i in range(n))
    )
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ProfileError(f"profile ids must be unique; repeated: {', '.join(dupes)}")
    unknown = [c for c in frame.columns if c not in COVARIATES and c != "id"]
    if unknown:
        raise ProfileError(
            f"unknown covariate(s) {', '.join(map(repr, unknown))}; known covariates: "
            f"{', '.join(COVARIATES)} (and an optional 'id')"
        )
    missing = [c for c in used if COVARIATES[c].required and c not in frame.columns]
    if missing:
        need = "; ".join(f"{c} ({COVARIATES[c].allowed()})" for c in missing)
        raise ProfileError(f"missing required covariate(s) for this outcome: {need}")
    ignored = tuple(c for c in frame.columns if c in COVARIATES and c not in used)
    problems: list[str] = []
    defaulted: list[str] = []
    values: dict[str, pd.Series] = {}
    cols: list[FloatArray] = []
    extrapolated = np.zeros(n, dtype=bool)
    far: list[str] = []
    for name in used:
        cov = COVARIATES[name]
        raw = frame[name] if name in frame.columns else pd.Series([None] * n)
        raw = raw.reset_index(drop=True)
        absent = raw.isna().to_numpy()
        if absent.any() and not cov.required:
            defaulted.append(name)
            raw = raw.astype(object).where(~absent, defaults[name])
            absent = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(absent):
            problems.append(f"profile {ids[i]}: {name} is missing ({cov.allowed()})")
        if cov.kind == "continuous":
            assert cov.limits is not None
            x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
            bad = ~np.isfinite(x) & ~absent
            for i in np.flatnonzero(bad):
                problems.append(
                    f"profile {ids[i]}: {name} = {raw[i]!r} is not a number ({cov.allowed()})"
                )
            lo, hi = cov.limits
            out = np.isfinite(x) & ((x < lo) | (x > hi))
            for i in np.flatnonzero(out):
                problems.append(
                    f"profile {ids[i]}: {name} = {x[i]:g} is outside the allowed range "
                    f"[{lo:g}, {hi:g}] ({cov.label})"
                )
            if name in cohort_ranges:
                clo, chi = cohort_ranges[name]
                beyond = np.isfinite(x) & ~out & ((x < clo) | (x > chi))
                if beyond.any():
                    extrapolated |= beyond
                    far.append(
                        f"{name} outside the source cohort's range [{clo:.2f}, {chi:.2f}] "
                        f"(Table 1 mean +- {EXTRAPOLATION_SDS:g} SD) for "
                        f"{int(beyond.sum())} profile(s) (e.g. profile {ids[np.argmax(beyond)]}"
                        f": {x[np.argmax(beyond)]:g}); the risk there is an extrapolation"
                    )
            values[name] = pd.Series(x)
            cols.append(x[:, None])
        else:
            text = raw.astype(str).str.strip().str.lower()
            canon = text.map(lambda t, c=cov: c.aliases.get(t))
            bad = canon.isna().to_numpy() & ~absent
            for i in np.flatnonzero(bad):
                problems.append(
                    f"profile {ids[i]}: {name} = {raw[i]!r} is not allowed ({cov.allowed()})"
                )
            values[name] = canon
            cols.append(
                np.column_stack([(canon == lv).to_numpy(dtype=float) for lv in cov.levels[1:]])
            )
    if problems:
        raise ProfileError(
            f"{len(problems)} problem(s) in the profiles:\n" + _problem_text(problems)
        )
    if warn:
        for text in far:
            warnings.warn(text, ExtrapolationWarning, stacklevel=3)
    return EncodedProfiles(
        ids,
        pd.DataFrame(values),
        np.hstack(cols) if cols else np.zeros((n, 0)),
        extrapolated,
        ignored,
        tuple(defaulted),
    )
