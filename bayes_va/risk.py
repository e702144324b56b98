r"""Patient-level risk: a logistic layer in which every term is a posterior draw.

For draw ``s`` and a patient with coded covariates ``x``::

    logit p_s(x) = alpha_s + sum_k lambda_s * beta_sk * (x_k - x_ref,k)

so a patient's risk is a distribution (an ``xarray.DataArray`` with dims ``sample, patient``).

Outcomes
--------
``recompression`` (An et al. 2021, 82 of 257 patients, 12-24 months)
    ``beta_k ~ Normal(B_k, SE_k)`` independently for the six covariates of Table 2 (the paper
    gives no covariance matrix, so correlations between estimates, e.g. of procedure and cement
    volume, are ignored). ``lambda = 1``. The paper prints no intercept. ``alpha_s`` is
    *calibrated*: for each draw it solves ``mean_m expit(alpha_s + beta_s (x_m - x_ref)) =
    pbar_s`` over a pseudo-cohort ``x_1..x_M`` that matches Table 1's marginals in each outcome
    group (:func:`an2021_pseudo_cohort`), with ``pbar_s ~ Beta(82 + 1/2, 175 + 1/2)`` carrying the
    binomial uncertainty of 82/257. Averaging risks over a cohort instead of plugging in mean
    covariates is what non-collapsibility of the odds ratio requires: the risk at the mean
    profile is not the mean risk. ``x_ref`` = the pseudo-cohort's mean covariate vector.
``revision``
    Baseline ``b_s`` from a fit of the revision studies: ``pooled`` (logit^-1 mu, the fit's
    pooled proportion) or ``predictive`` (a new centre's proportion). The recompression effects are
    *transported* with a factor ``lambda_s`` (``lambda = 1`` full transport, ``0`` none,
    ``Beta(a, b)`` partial; default Beta(2, 2)). ``alpha_s`` is calibrated so that the mean risk
    over the An pseudo-cohort equals ``b_s``: the reference population of the revision
    baseline is stated to be *a population with the An cohort's covariate distribution*, and
    ``x_ref`` is that pseudo-cohort's mean. With ``lambda = 0`` every profile's risk is ``b_s``.
``avf`` (adjacent vertebral fracture by a horizon of ``h`` months)
    Baseline ``b_s = logit^-1`` of the AVF meta-regression's linear predictor at follow-up ``h``
    (``result.linear_predictor({"log_followup_months": h})``; ``predictive`` adds ``tau * z``).
    Effects: brace (braced vs unbraced) and intradiscal leakage (spike, round or any type vs
    none) log odds ratios of Reyhani Yassavoly 2025 from exact binomials with Jeffreys priors
    (:mod:`bayes_va.outcomes`), unadjusted and assumed additive on the logit scale. ``alpha_s``
    is calibrated over Reyhani's composition (31/251 braced; leakage 9 spike, 2 round of 251,
    independent of bracing) or, with ``reference="unexposed"``, set so that an unbraced patient
    without leakage has risk ``b_s``.

``calibration="mean_profile"`` replaces the cohort average by ``alpha_s = logit b_s`` (the
baseline is the risk at the mean profile), for comparison only.

Every random number comes from ``np.random.default_rng(np.random.SeedSequence([seed, stream]))``
with the streams named below; the same seed gives the same numbers.
"""

from __future__ import annotations

import math
import re
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy import special, stats

from . import atomic, outcomes
from .errors import BayesVAError, ConfigError

__all__ = [
    "COLUMN_LABELS",
    "COVARIATES",
    "EXAMPLE_PROFILES",
    "OUTCOMES",
    "Coefficients",
    "Covariate",
    "EncodedProfiles",
    "ExtrapolationWarning",
    "LogisticLayer",
    "Marginal",
    "ProfileError",
    "PseudoCohort",
    "RiskConfig",
    "RiskInputError",
    "RiskModel",
    "TransportPrior",
    "an2021_coefficients",
    "an2021_pseudo_cohort",
    "avf_baseline",
    "avf_model",
    "build_model",
    "calibrate_intercept",
    "encode_profiles",
    "figure_effects",
    "figure_risk_distributions",
    "figure_risk_vs_covariate",
    "load_risk_config",
    "load_source",
    "pseudo_cohort_from_marginals",
    "recompression_model",
    "revision_baseline",
    "revision_model",
    "row_quantiles",
    "transport_table",
    "write_figures",
]

FloatArray = NDArray[np.float64]
Outcome = Literal["recompression", "revision", "avf"]
OUTCOMES: tuple[str, ...] = ("recompression", "revision", "avf")

DEFAULT_DRAWS = 4000
DEFAULT_SEED = 20231123
CI_PROB = 0.95
#: A pseudo-cohort holds enough copies of the cohort for at least this many rows (An 2021:
#: 8 x 257 = 2,056). Between pseudo-cohort seeds a draw's calibrated intercept then moves by
#: ~0.003 on the logit scale (at most ~0.02 over 4,000 draws x 6 seeds); calibration costs
#: ~0.1 s per 1,000 draws.
PSEUDO_COHORT_MIN_ROWS = 2000
#: BMD and other continuous covariates outside Table 1's pooled mean +- this many SDs warn.
EXTRAPOLATION_SDS = 3.0
#: Newton iterations solve the calibration to this tolerance on the logit scale.
CALIBRATION_TOL = 1e-12
_CALIBRATION_MAX_ITER = 100
#: Patients scored per block in :meth:`RiskModel.summarise` (bounds memory at ~65 MB).
SUMMARY_CHUNK = 2048

# Random streams (one per kind of draw): SeedSequence([seed, stream]).
STREAM_COEFFICIENTS = 1
STREAM_CALIBRATION_TARGET = 2
STREAM_PSEUDO_COHORT = 3
STREAM_TRANSPORT = 4
STREAM_BASELINE = 5
STREAM_PREDICTIVE = 6
STREAM_AVF_EFFECTS = 7


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _expit_into(x: FloatArray) -> FloatArray:
    """``expit(x)`` computed in place (about 4x faster than ``scipy.special.expit`` here)."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709 gives exactly 0
        np.negative(x, out=x)
        np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


class ProfileError(BayesVAError, ValueError):
    """A patient profile has an unknown covariate, a bad level or an out-of-range value."""


class RiskInputError(BayesVAError, ValueError):
    """A risk model cannot be built from what it was given (baseline source, options)."""


class ExtrapolationWarning(UserWarning):
    """A profile lies outside the covariate range the source cohort covered."""


# ------------------------------------------------------------------------------ covariates


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
        """The allowed values in words."""
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


# ------------------------------------------------------------------------- coefficients


@dataclass(frozen=True)
class Coefficients:
    """Published log-odds coefficients: estimate, standard error, optional covariance.

    ``draws`` samples ``beta ~ Normal(mean, cov)``; without ``cov`` the coefficients are
    independent with SD ``se`` (all An 2021 reports).
    """

    columns: tuple[str, ...]
    mean: FloatArray
    se: FloatArray
    cov: FloatArray | None = None

    def draws(self, n_draws: int, rng: np.random.Generator) -> FloatArray:
        """Draws, shape ``(n_draws, K)``."""
        if self.cov is not None:
            return rng.multivariate_normal(self.mean, self.cov, size=n_draws, method="cholesky")
        return self.mean + self.se * rng.standard_normal((n_draws, len(self.columns)))


def an2021_coefficients(
    endplate_reading: Literal["text", "table"] = "text", data_dir: str | Path | None = None
) -> Coefficients:
    """Table 2 of An et al. 2021 in the codebook's coding.

    Parameters
    ----------
    endplate_reading : {"text", "table"}
        ``text`` (the codebook's reading): ``no_endplate_contact`` = 1 when the cement touches
        neither endplate, B = +0.918 (the authors' prose: no contact is the risk level).
        ``table``: contact is the risk level (Table 1's counts and the Table 2 label read
        literally), i.e. B = -0.918 on the same column.
    """
    if endplate_reading not in ("text", "table"):
        raise RiskInputError(f"endplate_reading is {endplate_reading!r}; allowed: text, table")
    from .data import load_table

    table = load_table("an2021_coefficients", data_dir)
    want = [c for name in _AN_COVARIATES for c in COVARIATES[name].columns]
    got = table["covariate"].tolist()
    if sorted(got) != sorted(want):
        raise RiskInputError(f"an2021_coefficients.csv has covariates {got}; expected {want}")
    t = table.set_index("covariate").loc[want]
    mean = t["B"].to_numpy(dtype=float)
    if endplate_reading == "table":
        mean[want.index("no_endplate_contact")] *= -1.0
    return Coefficients(tuple(want), mean, t["SE"].to_numpy(dtype=float))


# -------------------------------------------------------------------------- pseudo-cohort


@dataclass(frozen=True)
class PseudoCohort:
    """A weighted set of covariate vectors standing in for a cohort's patients.

    Attributes
    ----------
    columns : tuple of str
        Design columns.
    X : ndarray, shape (M, K)
        Coded covariates.
    weights : ndarray, shape (M,)
        Non-negative, summing to 1.
    description : str
        How it was built.
    """

    columns: tuple[str, ...]
    X: FloatArray
    weights: FloatArray
    description: str

    @property
    def mean(self) -> FloatArray:
        """Weighted mean covariate vector (the layer's ``x_ref``)."""
        return self.weights @ self.X


@dataclass(frozen=True)
class Marginal:
    """One covariate's distribution in each outcome group of a Table-1-style summary.

    ``kind`` ``binary``: ``by_group[g] = (count of 1s, nan)``; ``normal`` or ``gamma``:
    ``(mean, sd)`` (gamma for positive quantities such as cement volume).
    """

    column: str
    kind: Literal["binary", "normal", "gamma"]
    by_group: tuple[tuple[float, float], ...]


def _continuous_sample(kind: str, mean: float, sd: float, size: int) -> FloatArray:
    """``size`` stratified quantiles of the distribution, rescaled to the exact mean and SD."""
    u = (np.arange(size) + 0.5) / size
    if kind == "normal":
        x = stats.norm.ppf(u)
    else:
        shape = (mean / sd) ** 2
        x = stats.gamma.ppf(u, shape, scale=sd**2 / mean)
    if size < 2 or x.std() == 0:
        return np.full(size, mean)
    return mean + sd * (x - x.mean()) / x.std()


def _replicates(replicates: int | None, n: int) -> int:
    if replicates is None:
        return max(1, math.ceil(PSEUDO_COHORT_MIN_ROWS / n))
    if replicates < 1:
        raise RiskInputError(f"replicates must be >= 1, got {replicates}")
    return int(replicates)


def pseudo_cohort_from_marginals(
    group_sizes: Sequence[int],
    marginals: Sequence[Marginal],
    *,
    replicates: int | None = None,
    seed: int = DEFAULT_SEED,
    description: str = "",
) -> PseudoCohort:
    """Build a pseudo-cohort that matches per-group marginals exactly.

    Each group ``g`` gets ``replicates * group_sizes[g]`` rows (default: enough replicates for
    :data:`PSEUDO_COHORT_MIN_ROWS` rows in all). Binary covariates take exactly
    ``replicates * count`` ones; continuous ones take stratified quantiles of a normal or gamma
    distribution with the group's mean and SD (rescaled so the sample mean and SD are exact).
    Each column is then permuted independently within the group (stream
    ``STREAM_PSEUDO_COHORT``): covariates are independent *within* an outcome group, so their
    association with each other runs only through the outcome, the most Table 1 supports.
    """
    replicates = _replicates(replicates, sum(group_sizes))
    rng = _rng(seed, STREAM_PSEUDO_COHORT)
    blocks = []
    for g, n_g in enumerate(group_sizes):
        size = int(n_g) * replicates
        cols = []
        for m in marginals:
            first, second = m.by_group[g]
            if m.kind == "binary":
                ones = round(first * replicates)
                if not 0 <= ones <= size:
                    raise RiskInputError(f"{m.column}: count {first} outside [0, {n_g}]")
                x = np.r_[np.ones(ones), np.zeros(size - ones)]
            else:
                x = _continuous_sample(m.kind, first, second, size)
            cols.append(rng.permutation(x))
        blocks.append(np.column_stack(cols))
    X = np.vstack(blocks)
    return PseudoCohort(
        tuple(m.column for m in marginals), X, np.full(len(X), 1.0 / len(X)), description
    )


#: Table 1 rows of An 2021 behind each design column: (variable, level or None, kind).
_AN_TABLE1: dict[str, tuple[str, str | None, Literal["binary", "normal", "gamma"]]] = {
    "bmd": ("BMD", None, "normal"),
    "ivc": ("IVC", "Yes", "binary"),
    "pvp_vs_pkp": ("Surgical methods", "PVP", "binary"),
    "no_endplate_contact": (
        "The bone cement was in contact with the upper or lower endplates",
        "No",
        "binary",
    ),
    "cement_volume_ml": ("Volume of bone cement injected (ml)", None, "gamma"),
    "anterior_height_recovery_pct": ("Recovery of anterior column height (%)", None, "normal"),
}
_COVARIATE_OF_COLUMN = {c: name for name in COVARIATES for c in COVARIATES[name].columns}


def _an_table1(data_dir: str | Path | None) -> tuple[tuple[int, int], list[Marginal]]:
    """Group sizes (recompression, non-compression) and marginals from Table 1."""
    from .data import load_table

    t = load_table("an2021_table1", data_dir)
    sizes = t[t["variable"] == "IVC"][["recompression_value", "noncompression_value"]].sum()
    groups = (int(sizes.iloc[0]), int(sizes.iloc[1]))
    marginals = []
    for column, (variable, level, kind) in _AN_TABLE1.items():
        sel = t[
            (t["variable"] == variable)
            & (t["level"].isna() if level is None else t["level"] == level)
        ]
        if len(sel) != 1:
            raise RiskInputError(f"an2021_table1.csv: no unique row {variable!r} / {level!r}")
        r = sel.iloc[0]
        if kind == "binary":
            by = (
                (float(r["recompression_value"]), math.nan),
                (float(r["noncompression_value"]), math.nan),
            )
        else:
            by = (
                (float(r["recompression_value"]), float(r["recompression_sd"])),
                (float(r["noncompression_value"]), float(r["noncompression_sd"])),
            )
        marginals.append(Marginal(column, kind, by))
    return groups, marginals


def an2021_pseudo_cohort(
    *,
    replicates: int | None = None,
    seed: int = DEFAULT_SEED,
    data_dir: str | Path | None = None,
) -> PseudoCohort:
    """A pseudo-cohort matching An 2021 Table 1 in each group (82 recompression, 175 not).

    BMD and anterior height recovery: normal; cement volume: gamma (positive); IVC, PVP and
    no endplate contact: exact counts. Table 1's counts are used as printed (endplate contact
    "No" = 29 / 111) under either endplate reading.
    """
    groups, marginals = _an_table1(data_dir)
    replicates = _replicates(replicates, sum(groups))
    return pseudo_cohort_from_marginals(
        groups,
        marginals,
        replicates=replicates,
        seed=seed,
        description=(
            f"An 2021 Table 1 pseudo-cohort: {replicates} x ({groups[0]} recompression + "
            f"{groups[1]} non-compression) = {replicates * sum(groups)} patients; exact "
            "marginals per group, covariates independent within a group"
        ),
    )


def an2021_cohort_ranges(data_dir: str | Path | None = None) -> dict[str, tuple[float, float]]:
    """Covariate → (mean - 3 SD, mean + 3 SD) of the whole An cohort (from Table 1 by group).

    The pooled mean and SD combine the two groups exactly (law of total variance). The range
    of cement volume is floored at 0.
    """
    groups, marginals = _an_table1(data_dir)
    n = np.asarray(groups, dtype=float)
    out = {}
    for m in marginals:
        if m.kind == "binary":
            continue
        mu = np.array([g[0] for g in m.by_group])
        sd = np.array([g[1] for g in m.by_group])
        mean = float(n @ mu / n.sum())
        var = float((((n - 1) * sd**2).sum() + (n * (mu - mean) ** 2).sum()) / (n.sum() - 1))
        lo, hi = (
            mean - EXTRAPOLATION_SDS * math.sqrt(var),
            mean + EXTRAPOLATION_SDS * math.sqrt(var),
        )
        out[_COVARIATE_OF_COLUMN[m.column]] = (max(lo, 0.0) if m.kind == "gamma" else lo, hi)
    return out


# ---------------------------------------------------------------------------- calibration


def calibrate_intercept(
    beta: FloatArray,
    cohort: PseudoCohort,
    target: FloatArray,
    *,
    x_ref: FloatArray | None = None,
) -> FloatArray:
    """Solve ``sum_m w_m expit(alpha_s + (x_m - x_ref) @ beta_s) = target_s`` for every draw.

    Safeguarded Newton on ``logit(mean risk) - logit(target)`` (increasing in ``alpha``, slope
    in (0, 1]) inside the bracket ``logit t - max eta <= alpha <= logit t - min eta``;
    vectorised over draws.

    Parameters
    ----------
    beta : ndarray, shape (S, K)
        Effect draws.
    cohort : PseudoCohort
        The population whose mean risk must equal ``target``.
    target : ndarray, shape (S,)
        Mean risk per draw, in (0, 1).
    x_ref : ndarray, shape (K,), optional
        Centre of the covariates (default: the cohort's mean).

    Returns
    -------
    ndarray, shape (S,)
        ``alpha``: the logit risk at ``x_ref``.
    """
    target = np.asarray(target, dtype=float)
    if np.any((target <= 0) | (target >= 1)):
        raise RiskInputError("calibration targets must lie strictly between 0 and 1")
    centre = cohort.mean if x_ref is None else np.asarray(x_ref, dtype=float)
    eta = np.asarray(beta, dtype=float) @ (cohort.X - centre).T  # (S, M)
    w = cohort.weights
    goal = special.logit(target)
    lo, hi = goal - eta.max(axis=1), goal - eta.min(axis=1)
    alpha = np.clip(goal - eta @ w, lo, hi)
    p, p2 = np.empty_like(eta), np.empty_like(eta)
    for _ in range(_CALIBRATION_MAX_ITER):
        _expit_into(np.add(alpha[:, None], eta, out=p))
        m = p @ w
        h = special.logit(m) - goal
        lo = np.where(h < 0, alpha, lo)
        hi = np.where(h > 0, alpha, hi)
        slope = (m - np.square(p, out=p2) @ w) / (m * (1.0 - m))
        step = alpha - h / slope
        alpha_new = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
        done = np.abs(alpha_new - alpha) < CALIBRATION_TOL
        alpha = alpha_new
        if done.all():
            return alpha
    raise RiskInputError("intercept calibration did not converge")  # pragma: no cover


# ---------------------------------------------------------------------------------- layer


@dataclass(frozen=True)
class LogisticLayer:
    """``logit p_s(x) = alpha_s + beta_s @ (x - x_ref)``, vectorised over draws and patients.

    Attributes
    ----------
    columns : tuple of str
        Design columns.
    alpha : ndarray, shape (S,)
        Logit risk at ``x_ref``.
    beta : ndarray, shape (S, K)
        Effects (transported ones already multiplied by ``lambda``).
    x_ref : ndarray, shape (K,)
        Reference covariate vector.
    """

    columns: tuple[str, ...]
    alpha: FloatArray
    beta: FloatArray
    x_ref: FloatArray

    def logit(self, X: FloatArray) -> FloatArray:
        """Logit risk draws, shape ``(S, P)``, for a design matrix ``X`` of shape ``(P, K)``."""
        return self.logit_by_patient(X).T

    def logit_by_patient(self, X: FloatArray) -> FloatArray:
        """The same draws as a C-contiguous ``(P, S)`` array (fast per-patient summaries)."""
        Xc = np.asarray(X, dtype=float) - self.x_ref
        out = np.empty((Xc.shape[0], self.alpha.shape[0]))
        np.matmul(Xc, self.beta.T, out=out)
        out += self.alpha
        return out


def row_quantiles(x: FloatArray, probs: Sequence[float]) -> FloatArray:
    """Quantiles of each row of ``x`` (numpy's default ``linear`` method); reorders ``x``.

    About 3x faster than ``np.quantile(x, probs, axis=1)`` for a few probabilities: numpy's
    multi-``kth`` partition rescans the whole row for every order statistic, whereas here each
    single-``kth`` partition works only on the part of the row right of the previous one and the
    neighbouring order statistic is a minimum.

    Returns
    -------
    ndarray, shape (len(probs), rows)
    """
    n = x.shape[1]
    h = (n - 1) * np.asarray(probs, dtype=float)
    base = np.floor(h).astype(int)
    order: dict[int, FloatArray] = {}
    start = 0
    for k in sorted(set(base.tolist())):
        x[:, start:].partition(k - start, axis=1)
        order[k] = x[:, k].copy()
        order[k + 1] = x[:, k + 1 :].min(axis=1) if k + 1 < n else order[k]
        start = k + 1
    out = []
    for k, hk in zip(base, h, strict=True):
        a, b, t = order[k], order[k + 1], hk - k  # numpy's lerp, exactly
        out.append(b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t)
    return np.array(out)


def _draw_summary(values: FloatArray, ci_prob: float) -> dict[str, float]:
    a = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(values, [a, 0.5, 1.0 - a])
    return {"median": float(med), "lower": float(lo), "upper": float(hi)}


@dataclass(frozen=True)
class RiskModel:
    """A patient-level risk model for one outcome; every term is a posterior draw.

    Build with :func:`recompression_model`, :func:`revision_model`, :func:`avf_model` or
    :func:`build_model`.

    Attributes
    ----------
    outcome : str
        ``recompression``, ``revision`` or ``avf``.
    description : str
        The outcome in words.
    used : tuple of str
        Covariates (profile keys) the model uses.
    layer : LogisticLayer
        The draws.
    defaults : dict
        Values of optional covariates a profile leaves out.
    cohort_ranges : dict
        Covariate → range covered by the source cohort (outside: a warning).
    notes : tuple of str
        Where each term came from (baseline, calibration, reference, transport).
    components : dict
        Named draws behind the layer (``baseline``, ``lambda``, ...), shape (S,).
    """

    outcome: str
    description: str
    used: tuple[str, ...]
    layer: LogisticLayer
    defaults: dict[str, float] = field(default_factory=dict)
    cohort_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    components: dict[str, FloatArray] = field(default_factory=dict, repr=False)

    @property
    def n_draws(self) -> int:
        """Number of posterior draws ``S``."""
        return int(self.layer.alpha.shape[0])

    def encode(self, profiles: Any, *, warn: bool = True) -> EncodedProfiles:
        """Validate ``profiles`` (see :func:`encode_profiles`)."""
        return encode_profiles(profiles, self.used, self.defaults, self.cohort_ranges, warn=warn)

    def _array(self, enc: EncodedProfiles, values: FloatArray, name: str) -> xr.DataArray:
        return xr.DataArray(
            values,
            dims=("sample", "patient"),
            coords={"sample": np.arange(self.n_draws), "patient": list(enc.ids)},
            name=name,
            attrs={"outcome": self.outcome},
        )

    def logit(self, profiles: Any, *, warn: bool = True) -> xr.DataArray:
        """Draws of each patient's logit risk (dims ``sample``, ``patient``)."""
        enc = self.encode(profiles, warn=warn)
        return self._array(enc, self.layer.logit(enc.X), "logit_risk")

    def risk(self, profiles: Any, *, warn: bool = True) -> xr.DataArray:
        """Draws of each patient's risk (dims ``sample``, ``patient``).

        Parameters
        ----------
        profiles : mapping, list of mappings or DataFrame
            See :func:`encode_profiles`.
        warn : bool, optional
            Warn (:class:`ExtrapolationWarning`) about values outside the cohort's range.
        """
        enc = self.encode(profiles, warn=warn)
        return self._array(enc, _expit_into(self.layer.logit(enc.X)), "risk")

    def summarise(
        self,
        profiles: Any,
        *,
        threshold: float = 0.1,
        ci_prob: float = CI_PROB,
        warn: bool = True,
    ) -> pd.DataFrame:
        """One row per patient: inputs, median risk, interval, P(risk > threshold), per 1,000.

        Columns: ``id``, the covariates used, ``median``, ``lower``, ``upper`` (equal-tailed
        ``ci_prob`` interval), ``mean`` (posterior mean = predictive probability),
        ``p_above_threshold``, ``per_1000`` (expected events per 1,000 such patients,
        1000 x mean) with ``per_1000_lower``/``upper`` (1000 x the interval) and
        ``extrapolated``. Scored in blocks of :data:`SUMMARY_CHUNK` patients.
        """
        if not 0.0 < threshold < 1.0:
            raise RiskInputError(f"threshold must lie in (0, 1), got {threshold}")
        enc = self.encode(profiles, warn=warn)
        a = (1.0 - ci_prob) / 2.0
        cut = special.logit(threshold)
        parts = []
        for start in range(0, len(enc.ids), SUMMARY_CHUNK):
            eta = self.layer.logit_by_patient(enc.X[start : start + SUMMARY_CHUNK])
            above = (eta > cut).mean(axis=1)
            r = _expit_into(eta)
            mean = r.mean(axis=1)
            q = row_quantiles(r, [a, 0.5, 1.0 - a])
            parts.append(np.column_stack([q[1], q[0], q[2], mean, above]))
        s = np.vstack(parts)
        out = pd.DataFrame({"id": list(enc.ids)})
        for name in self.used:
            out[name] = enc.values[name].to_numpy()
        out["median"], out["lower"], out["upper"] = s[:, 0], s[:, 1], s[:, 2]
        out["mean"], out["p_above_threshold"] = s[:, 3], s[:, 4]
        out["per_1000"] = 1000.0 * s[:, 3]
        out["per_1000_lower"], out["per_1000_upper"] = 1000.0 * s[:, 1], 1000.0 * s[:, 2]
        out["extrapolated"] = enc.extrapolated
        out.attrs.update(
            threshold=threshold, ci_prob=ci_prob, ignored=enc.ignored, defaulted=enc.defaulted
        )
        return out

    def effects(self, ci_prob: float = CI_PROB) -> pd.DataFrame:
        """Odds ratio per design column (unit step or level vs reference): median, interval."""
        rows = []
        for k, col in enumerate(self.layer.columns):
            s = _draw_summary(self.layer.beta[:, k], ci_prob)
            rows.append(
                {
                    "column": col,
                    "covariate": _COVARIATE_OF_COLUMN[col],
                    "label": COLUMN_LABELS[col],
                    "log_or_median": s["median"],
                    "log_or_lower": s["lower"],
                    "log_or_upper": s["upper"],
                    "or_median": math.exp(s["median"]),
                    "or_lower": math.exp(s["lower"]),
                    "or_upper": math.exp(s["upper"]),
                    "x_ref": float(self.layer.x_ref[k]),
                }
            )
        return pd.DataFrame(rows)


# ------------------------------------------------------------------------ baseline sources


class _HasTree(Protocol):
    tree: xr.DataTree


class AVFSource(Protocol):
    """What the AVF baseline needs from a fit: the meta-regression's linear predictor."""

    tree: xr.DataTree

    def linear_predictor(self, moderators: dict[str, str | float] | None = None) -> xr.DataArray:
        """Draws (dims ``chain``, ``draw``) of a new study's logit proportion."""
        ...


def _check_table(source: Any, table: str) -> None:
    """A fit's outcome table must be ``table`` (a revision baseline from an AVF fit is an error)."""
    cfg = getattr(source, "config", None)
    got = getattr(getattr(cfg, "data", None), "table", None)
    if got is not None and got != table:
        raise RiskInputError(
            f"fit '{getattr(cfg, 'name', '?')}' models the {got!r} table; this baseline needs a "
            f"fit of the {table!r} table"
        )


def _flat(da: xr.DataArray) -> FloatArray:
    if {"chain", "draw"} <= set(da.dims):
        return np.asarray(da.transpose("chain", "draw", ...).values, dtype=float).ravel()
    return np.asarray(da.values, dtype=float).ravel()


def _resample(values: FloatArray, n_draws: int, seed: int) -> FloatArray:
    """``values`` as ``n_draws`` draws (as they are when the counts match)."""
    if len(values) == n_draws:
        return values
    idx = _rng(seed, STREAM_BASELINE).choice(len(values), n_draws, replace=len(values) < n_draws)
    return values[idx]


def load_source(spec: Any) -> Any:
    """A baseline source ready for reuse: a results folder is loaded once (a FitResult);
    ``"exact:CONFIG"`` strings and objects pass through unchanged.

    Raises
    ------
    RiskInputError
        When a path is not a results folder.
    """
    if not isinstance(spec, str | Path) or str(spec).startswith("exact:"):
        return spec
    from .results import load_result

    path = Path(spec)
    if not (path / "posterior.nc").is_file():
        raise RiskInputError(
            f"no results folder at {path} (posterior.nc missing): run `bayes-va fit <config>` "
            "first, point --results at a results folder, or for revision use "
            "--results exact:models/base.toml (exact quadrature, no MCMC)"
        )
    return load_result(path)


def _exact_draws(config: str | Path, kind: str, n_draws: int, seed: int) -> FloatArray:
    """Draws of the pooled or predictive proportion from the exact quadrature posterior."""
    from . import exact
    from .config import load_config
    from .dataset import build_dataset
    from .priors import log_density

    cfg = load_config(config)
    if cfg.data.table != "revision" or cfg.model.family != "logit_normal" or cfg.model.moderators:
        raise RiskInputError(
            f"exact:{config}: the quadrature reference covers the logit-normal revision model "
            "without moderators only"
        )
    data = build_dataset(cfg.data, cfg.data_dir)
    post = exact.posterior_grid(
        data.y,
        data.n,
        log_prior_mu=log_density(cfg.priors.mu),
        log_prior_tau=log_density(cfg.priors.tau),
    )
    rng = _rng(seed, STREAM_BASELINE)
    w = post.weights.ravel()
    cell = rng.choice(w.size, n_draws, p=w / w.sum())
    i, j = np.unravel_index(cell, post.weights.shape)
    dmu, drho = post.mu[1] - post.mu[0], post.log_tau[1] - post.log_tau[0]
    mu = post.mu[i] + dmu * (rng.random(n_draws) - 0.5)
    tau = np.exp(post.log_tau[j] + drho * (rng.random(n_draws) - 0.5))
    if kind == "pooled":
        return special.expit(mu)
    z = _rng(seed, STREAM_PREDICTIVE).standard_normal(n_draws)
    return special.expit(mu + tau * z)


def revision_baseline(
    source: Any,
    *,
    kind: Literal["pooled", "predictive"] = "pooled",
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
) -> FloatArray:
    """Draws of the revision baseline proportion.

    Parameters
    ----------
    source : FitResult, DataTree, DataArray, ndarray, results folder or ``"exact:CONFIG"``
        A fit (``tree["posterior"][kind]``), a results folder (loaded with
        :func:`bayes_va.load_result`), probability draws, or ``"exact:models/base.toml"`` for
        draws from the config's exact quadrature posterior (no MCMC; grid cells drawn by weight
        and jittered uniformly within the cell).
    kind : {"pooled", "predictive"}
        Population mean proportion or a new centre's proportion.
    n_draws, seed : int
        Draws are resampled to ``n_draws`` (stream ``STREAM_BASELINE``) when counts differ.
    """
    if kind not in ("pooled", "predictive"):
        raise RiskInputError(f"baseline is {kind!r}; allowed: pooled, predictive")
    if isinstance(source, str) and source.startswith("exact:"):
        return _exact_draws(source.removeprefix("exact:"), kind, n_draws, seed)
    source = load_source(source)
    _check_table(source, "revision")
    if hasattr(source, "tree"):
        source = source.tree
    if isinstance(source, xr.DataTree):
        post = source["posterior"]
        if kind not in post.data_vars:
            raise RiskInputError(f"the posterior has no {kind!r} variable")
        values = _flat(post[kind])
    elif isinstance(source, xr.DataArray):
        values = _flat(source)
    else:
        values = np.asarray(source, dtype=float).ravel()
    if values.size == 0 or np.any((values <= 0) | (values >= 1) | ~np.isfinite(values)):
        raise RiskInputError("baseline draws must be proportions strictly between 0 and 1")
    return _resample(values, n_draws, seed)


def avf_baseline(
    source: AVFSource | str | Path,
    *,
    horizon_months: float = 12.0,
    kind: Literal["pooled", "predictive"] = "pooled",
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    moderator: str = "log_followup_months",
) -> FloatArray:
    """Draws of the AVF risk by ``horizon_months`` from the AVF meta-regression.

    Calls ``source.linear_predictor({moderator: horizon_months})`` (the fit takes the raw
    months and logs them itself) for ``pooled``; ``predictive`` adds ``tau * z``, ``z ~ N(0, 1)``
    (stream ``STREAM_PREDICTIVE``), the spread of a new cohort. The follow-up moderator is each
    cohort's mean follow-up, so "risk by h months" reads the between-cohort trend as a
    within-patient cumulative incidence: an approximation.
    """
    if kind not in ("pooled", "predictive"):
        raise RiskInputError(f"baseline is {kind!r}; allowed: pooled, predictive")
    if not 0 < horizon_months <= 120:
        raise RiskInputError(f"horizon_months must lie in (0, 120], got {horizon_months}")
    source = load_source(source)
    _check_table(source, "avf")
    if not hasattr(source, "linear_predictor"):
        raise RiskInputError("the AVF baseline needs a fit with a linear_predictor method")
    lp = source.linear_predictor({moderator: float(horizon_months)})
    eta = _flat(lp)
    if kind == "predictive":
        post = source.tree["posterior"]
        if "tau" not in post.data_vars:
            raise RiskInputError("this AVF fit has no tau; use the pooled baseline")
        eta = eta + _flat(post["tau"]) * _rng(seed, STREAM_PREDICTIVE).standard_normal(eta.size)
    return _resample(special.expit(eta), n_draws, seed)


# ------------------------------------------------------------------------------- transport


@dataclass(frozen=True)
class TransportPrior:
    """Prior of the transport factor ``lambda``: ``Fixed(value)`` or ``Beta(alpha, beta)``."""

    dist: Literal["Fixed", "Beta"] = "Beta"
    value: float = 1.0
    alpha: float = 2.0
    beta: float = 2.0

    def __post_init__(self) -> None:
        if self.dist == "Fixed" and not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"transport: a fixed lambda must lie in [0, 1], got {self.value}")
        if self.dist == "Beta" and not (self.alpha > 0 and self.beta > 0):
            raise ConfigError(
                f"transport: Beta needs alpha > 0 and beta > 0, got {self.alpha}, {self.beta}"
            )
        if self.dist not in ("Fixed", "Beta"):
            raise ConfigError(f"transport.dist is {self.dist!r}; allowed: Fixed, Beta")

    def __str__(self) -> str:
        if self.dist == "Fixed":
            what = {0.0: " (no transport)", 1.0: " (full transport)"}.get(self.value, "")
            return f"lambda = {self.value:g}{what}"
        return f"lambda ~ Beta({self.alpha:g}, {self.beta:g})"

    def draws(self, n_draws: int, seed: int) -> FloatArray:
        """Draws of ``lambda`` (stream ``STREAM_TRANSPORT``)."""
        if self.dist == "Fixed":
            return np.full(n_draws, self.value)
        return _rng(seed, STREAM_TRANSPORT).beta(self.alpha, self.beta, n_draws)

    @classmethod
    def parse(cls, text: str) -> TransportPrior:
        """``"1"``, ``"0.5"`` (fixed) or ``"beta:2,2"`` / ``"Beta(2, 2)"``."""
        t = text.strip()
        m = re.fullmatch(r"(?i)beta\s*(?::|\()\s*([^,\s]+)\s*,\s*([^)\s]+)\s*\)?", t)
        try:
            if m:
                return cls("Beta", alpha=float(m.group(1)), beta=float(m.group(2)))
            return cls("Fixed", value=float(t))
        except ValueError:
            raise ConfigError(
                f"lambda {text!r}: give a number in [0, 1] (1 = full transport, 0 = none) or "
                "beta:A,B (e.g. beta:2,2)"
            ) from None


# -------------------------------------------------------------------------------- builders

_OUTCOME_TEXT = {
    "recompression": "recompression of the augmented vertebra (An 2021: height loss >= 15 % or "
    "kyphosis +10 degrees at 12-24 months)",
    "revision": "revision at the treated level (Takahashi 2023 cohorts)",
    "avf": "adjacent vertebral fracture",
}


def _an_parts(
    n_draws: int,
    seed: int,
    endplate_reading: Literal["text", "table"],
    replicates: int | None,
    data_dir: str | Path | None,
) -> tuple[Coefficients, FloatArray, PseudoCohort, dict[str, tuple[float, float]]]:
    coefs = an2021_coefficients(endplate_reading, data_dir)
    beta = coefs.draws(n_draws, _rng(seed, STREAM_COEFFICIENTS))
    cohort = an2021_pseudo_cohort(replicates=replicates, seed=seed, data_dir=data_dir)
    return coefs, beta, cohort, an2021_cohort_ranges(data_dir)


def _alpha(
    beta: FloatArray, cohort: PseudoCohort, target: FloatArray, calibration: str
) -> FloatArray:
    if calibration == "marginal":
        return calibrate_intercept(beta, cohort, target)
    if calibration == "mean_profile":
        return special.logit(target)
    raise RiskInputError(f"calibration is {calibration!r}; allowed: marginal, mean_profile")


def _an_defaults(cohort: PseudoCohort) -> dict[str, float]:
    k = cohort.columns.index("anterior_height_recovery_pct")
    return {"anterior_height_recovery": round(float(cohort.mean[k]), 2)}


def recompression_model(
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    endplate_reading: Literal["text", "table"] = "text",
    calibration: Literal["marginal", "mean_profile"] = "marginal",
    target_prior: outcomes.BetaPrior = outcomes.JEFFREYS,
    replicates: int | None = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """Recompression risk (An 2021) with the baseline calibrated to 82/257.

    Parameters
    ----------
    n_draws, seed : int
        Number of draws and the seed of every stream.
    endplate_reading : {"text", "table"}
        Direction of the endplate-contact effect (see :func:`an2021_coefficients`).
    calibration : {"marginal", "mean_profile"}
        Mean risk over the pseudo-cohort = target (default), or risk at the mean profile.
    target_prior : BetaPrior
        The target is ``pbar ~ Beta(82 + a, 175 + b)`` (default Jeffreys a = b = 1/2).
    replicates : int, optional
        Copies of the cohort in the pseudo-cohort (default: enough for
        :data:`PSEUDO_COHORT_MIN_ROWS` rows; 8 for An's 257 patients).
    data_dir : path, optional
        Data folder (default: the shipped ``data/``).
    """
    coefs, beta, cohort, ranges = _an_parts(n_draws, seed, endplate_reading, replicates, data_dir)
    groups, _ = _an_table1(data_dir)
    a, b = target_prior.posterior(groups[0], sum(groups))
    target = _rng(seed, STREAM_CALIBRATION_TARGET).beta(a, b, n_draws)
    alpha = _alpha(beta, cohort, target, calibration)
    notes = (
        f"effects: An 2021 Table 2, beta ~ Normal(B, SE) independently; endplate reading "
        f"'{endplate_reading}' (no_endplate_contact B = {coefs.mean[3]:+.3f})",
        f"baseline: mean risk over the pseudo-cohort = pbar ~ Beta({a:g}, {b:g}) "
        f"({groups[0]}/{sum(groups)} events, {target_prior.label} prior); calibration "
        f"'{calibration}'",
        f"reference population: {cohort.description}",
    )
    return RiskModel(
        "recompression",
        _OUTCOME_TEXT["recompression"],
        _AN_COVARIATES,
        LogisticLayer(coefs.columns, alpha, beta, cohort.mean),
        _an_defaults(cohort),
        ranges,
        notes,
        {"baseline": target},
    )


def revision_model(
    baseline_source: Any,
    *,
    baseline: Literal["pooled", "predictive"] = "pooled",
    transport: TransportPrior | None = None,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    endplate_reading: Literal["text", "table"] = "text",
    calibration: Literal["marginal", "mean_profile"] = "marginal",
    replicates: int | None = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """Revision risk: pooled revision baseline plus transported recompression effects.

    ``alpha_s`` is calibrated so the mean risk over the An pseudo-cohort equals the baseline
    draw ``b_s``; effects are ``lambda_s * beta_s`` with the same ``beta_s`` draws as
    :func:`recompression_model` (same seed). See the module docstring.

    Parameters
    ----------
    baseline_source
        See :func:`revision_baseline`.
    baseline : {"pooled", "predictive"}
        Population mean proportion or a new centre's proportion.
    transport : TransportPrior, optional
        Prior of ``lambda`` (default Beta(2, 2)).
    """
    transport = transport or TransportPrior()
    coefs, beta, cohort, ranges = _an_parts(n_draws, seed, endplate_reading, replicates, data_dir)
    base = revision_baseline(baseline_source, kind=baseline, n_draws=n_draws, seed=seed)
    lam = transport.draws(n_draws, seed)
    eff = lam[:, None] * beta
    alpha = _alpha(eff, cohort, base, calibration)
    notes = (
        f"baseline: revision {baseline} proportion ({_describe(baseline_source)})",
        f"effects: An 2021 recompression effects transported to revision, {transport}",
        f"reference population: {cohort.description}; x_ref = its mean "
        f"(calibration '{calibration}')",
    )
    return RiskModel(
        "revision",
        _OUTCOME_TEXT["revision"],
        _AN_COVARIATES,
        LogisticLayer(coefs.columns, alpha, eff, cohort.mean),
        _an_defaults(cohort),
        ranges,
        notes,
        {"baseline": base, "lambda": lam},
    )


def _describe(source: Any) -> str:
    if isinstance(source, str | Path):
        return str(source)
    cfg = getattr(source, "config", None)
    return f"fit '{cfg.name}'" if cfg is not None else type(source).__name__


def _avf_groups(data_dir: str | Path | None) -> dict[str, tuple[int, int]]:
    """(events, n) of each AVF group: braced, unbraced, none, spike, round, any."""
    from .data import load_table

    t = load_table("avf_contrasts", data_dir)

    def grp(contrast: str, reference: bool) -> tuple[int, int]:
        r = t[(t["contrast"] == contrast) & (t["is_reference"] == ("yes" if reference else "no"))]
        if len(r) != 1:
            raise RiskInputError(f"avf_contrasts.csv: contrast {contrast!r} is incomplete")
        return int(r.iloc[0]["events"]), int(r.iloc[0]["n"])

    return {
        "braced": grp("brace_avf", False),
        "unbraced": grp("brace_avf", True),
        "spike": grp("leakage_type_avf", False),
        "round": grp("leakage_type_avf", True),
        "any": grp("intradiscal_leakage_avf", False),
        "none": grp("intradiscal_leakage_avf", True),
    }


def avf_model(
    baseline_source: AVFSource | str | Path,
    *,
    horizon_months: float = 12.0,
    baseline: Literal["pooled", "predictive"] = "pooled",
    reference: Literal["reyhani", "unexposed"] = "reyhani",
    contrast_prior: outcomes.BetaPrior = outcomes.JEFFREYS,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """AVF risk by a horizon: meta-regression baseline plus brace and leakage effects.

    Effects are log odds ratios from exact binomials per group (stream ``STREAM_AVF_EFFECTS``):
    braced (1/31) vs unbraced (17/220); spike (7/9), round (0/2) and any-type (7/11) intradiscal
    leakage vs none (11/240). They are crude (unadjusted) within-study contrasts; the braced group
    was followed about half as long as the unbraced one.

    Parameters
    ----------
    baseline_source : fit with ``linear_predictor`` or a results folder
        The AVF meta-regression (``bayes_va.fit("models/avf/base.toml")``).
    horizon_months : float
        Follow-up horizon (3 or 12 months are the reported ones).
    reference : {"reyhani", "unexposed"}
        Population the baseline describes: Reyhani's brace/leakage mix (default) or unbraced
        patients without leakage.
    """
    if reference not in ("reyhani", "unexposed"):
        raise RiskInputError(f"reference is {reference!r}; allowed: reyhani, unexposed")
    base = avf_baseline(
        baseline_source, horizon_months=horizon_months, kind=baseline, n_draws=n_draws, seed=seed
    )
    g = _avf_groups(data_dir)
    rng = _rng(seed, STREAM_AVF_EFFECTS)
    lp = {
        k: special.logit(outcomes.proportion_draws(*g[k], contrast_prior, n_draws, rng))
        for k in ("braced", "unbraced", "none", "spike", "round", "any")
    }
    beta = np.column_stack(
        [
            lp["braced"] - lp["unbraced"],
            lp["spike"] - lp["none"],
            lp["round"] - lp["none"],
            lp["any"] - lp["none"],
        ]
    )
    columns = (*COVARIATES["brace"].columns, *COVARIATES["intradiscal_leakage"].columns)
    if reference == "reyhani":
        total = g["braced"][1] + g["unbraced"][1]
        p_brace = g["braced"][1] / total
        leak = {"spike": g["spike"][1] / total, "round": g["round"][1] / total}
        leak["none"] = 1.0 - leak["spike"] - leak["round"]
        X, w = [], []
        for braced, pb in ((1.0, p_brace), (0.0, 1.0 - p_brace)):
            for lv, pl in leak.items():
                X.append([braced, float(lv == "spike"), float(lv == "round"), 0.0])
                w.append(pb * pl)
        cohort = PseudoCohort(
            columns,
            np.array(X),
            np.array(w),
            f"Reyhani 2025 composition: {g['braced'][1]}/{total} braced; "
            f"intradiscal leakage {g['spike'][1]} spike + {g['round'][1]} round "
            f"of {total}, independent of bracing",
        )
    else:
        cohort = PseudoCohort(
            columns, np.zeros((1, 4)), np.ones(1), "unbraced patients without intradiscal leakage"
        )
    alpha = calibrate_intercept(beta, cohort, base)
    notes = (
        f"baseline: AVF {baseline} risk by {horizon_months:g} months "
        f"({_describe(baseline_source)})",
        f"effects: Reyhani 2025 crude log ORs, exact binomials with {contrast_prior.label} priors",
        f"reference population: {cohort.description}",
    )
    return RiskModel(
        "avf",
        f"{_OUTCOME_TEXT['avf']} by {horizon_months:g} months",
        _AVF_COVARIATES,
        LogisticLayer(columns, alpha, beta, cohort.mean),
        {},
        {},
        notes,
        {"baseline": base},
    )


def transport_table(
    baseline_source: Any,
    profiles: Any,
    *,
    priors: Sequence[TransportPrior] = (
        TransportPrior("Fixed", value=0.0),
        TransportPrior("Beta", alpha=2.0, beta=2.0),
        TransportPrior("Fixed", value=1.0),
    ),
    threshold: float = 0.1,
    **kwargs: Any,
) -> pd.DataFrame:
    """Revision risk of ``profiles`` under each transport prior (the effect of ``lambda``).

    ``kwargs`` go to :func:`revision_model`. Returns the :meth:`RiskModel.summarise` rows with a
    ``transport`` column.
    """
    frames = []
    for prior in priors:
        model = revision_model(baseline_source, transport=prior, **kwargs)
        s = model.summarise(profiles, threshold=threshold, warn=False)
        s.insert(1, "transport", str(prior))
        frames.append(s)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RiskConfig:
    """Settings of the risk layer (``models/risk/default.toml``).

    Attributes
    ----------
    name : str
        Config name.
    draws, seed : int
        Posterior draws per term, and the seed of every stream.
    threshold : float
        Default risk threshold for P(risk > threshold).
    endplate_reading : {"text", "table"}
        Direction of the endplate-contact effect.
    calibration : {"marginal", "mean_profile"}
        How the baseline is attached to the reference population.
    replicates : int
        Pseudo-cohort size in copies of the An cohort (0 = automatic, 8 for An).
    revision_results : str
        Revision fit (results folder, or ``exact:models/base.toml``).
    baseline : {"pooled", "predictive"}
        Revision/AVF baseline: population mean or a new centre.
    transport : TransportPrior
        Prior of lambda.
    avf_results : str
        AVF meta-regression results folder.
    horizon_months : float
        AVF horizon.
    avf_reference : {"reyhani", "unexposed"}
        Population the AVF baseline describes.
    contrast_prior : {"jeffreys", "uniform"}
        Prior of each group proportion of the AVF contrasts.
    """

    name: str = "default"
    description: str = ""
    draws: int = DEFAULT_DRAWS
    seed: int = DEFAULT_SEED
    threshold: float = 0.1
    endplate_reading: Literal["text", "table"] = "text"
    calibration: Literal["marginal", "mean_profile"] = "marginal"
    replicates: int = 0
    revision_results: str = "results/base"
    baseline: Literal["pooled", "predictive"] = "pooled"
    transport: TransportPrior = field(default_factory=TransportPrior)
    avf_results: str = "results/avf"
    horizon_months: float = 12.0
    avf_reference: Literal["reyhani", "unexposed"] = "reyhani"
    contrast_prior: Literal["jeffreys", "uniform"] = "jeffreys"

    def __post_init__(self) -> None:
        checks = {
            "draws": self.draws >= 100,
            "replicates": self.replicates >= 0,
            "threshold": 0.0 < self.threshold < 1.0,
            "horizon_months": 0.0 < self.horizon_months <= 120.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"risk config: '{key}' = {getattr(self, key)!r} is out of range")
        for key in (
            "endplate_reading",
            "calibration",
            "baseline",
            "avf_reference",
            "contrast_prior",
        ):
            allowed = _LITERALS[key]
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"risk config: '{key}' is {getattr(self, key)!r}; allowed: {', '.join(allowed)}"
                )


_LITERALS = {
    "endplate_reading": ("text", "table"),
    "calibration": ("marginal", "mean_profile"),
    "baseline": ("pooled", "predictive"),
    "avf_reference": ("reyhani", "unexposed"),
    "contrast_prior": tuple(outcomes.PRIORS),
}
_TOML_KEYS = {  # TOML key -> field name, per table
    "draws": {"n": "draws", "seed": "seed", "threshold": "threshold", "calibration": "calibration"},
    "recompression": {"endplate_reading": "endplate_reading", "replicates": "replicates"},
    "revision": {"results": "revision_results", "baseline": "baseline"},
    "avf": {
        "results": "avf_results",
        "horizon_months": "horizon_months",
        "reference": "avf_reference",
        "contrast_prior": "contrast_prior",
    },
}


def _typed(value: Any, like: Any, key: str, source: str) -> Any:
    if isinstance(like, bool) or isinstance(value, bool):
        raise ConfigError(f"{source}: '{key}' has the wrong type: {value!r}")
    if isinstance(like, int) and isinstance(value, int):
        return value
    if isinstance(like, float) and isinstance(value, int | float):
        return float(value)
    if isinstance(like, str) and isinstance(value, str):
        return value
    raise ConfigError(f"{source}: '{key}' must be a {type(like).__name__}, got {value!r}")


def risk_config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> RiskConfig:
    """Build a :class:`RiskConfig` from TOML-shaped data; unknown keys are errors."""
    defaults = RiskConfig()
    kwargs: dict[str, Any] = {}
    allowed_top = {"name", "description", *_TOML_KEYS}
    unknown = sorted(set(raw) - allowed_top)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(allowed_top)}")
    for key in ("name", "description"):
        if key in raw:
            kwargs[key] = _typed(raw[key], getattr(defaults, key), key, source)
    for table, keys in _TOML_KEYS.items():
        sub = dict(raw.get(table, {}))
        if not isinstance(raw.get(table, {}), Mapping):
            raise ConfigError(f"{source}: '{table}' must be a table")
        transport = sub.pop("transport", None) if table == "revision" else None
        bad = sorted(set(sub) - set(keys))
        if bad:
            extra = ", transport" if table == "revision" else ""
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(f'{table}.{b}' for b in bad)}; allowed "
                f"here: {', '.join(keys)}{extra}"
            )
        for k, v in sub.items():
            kwargs[keys[k]] = _typed(v, getattr(defaults, keys[k]), f"{table}.{k}", source)
        if transport is not None:
            kwargs["transport"] = _transport_from_dict(transport, source)
    return RiskConfig(**kwargs)


def _transport_from_dict(raw: Any, source: str) -> TransportPrior:
    if not isinstance(raw, Mapping) or "dist" not in raw:
        raise ConfigError(f"{source}: 'revision.transport' must be a table with a 'dist' key")
    params = {"Fixed": ("value",), "Beta": ("alpha", "beta")}
    dist = raw["dist"]
    if dist not in params:
        raise ConfigError(f"{source}: 'revision.transport.dist' is {dist!r}; allowed: Fixed, Beta")
    given = {k: v for k, v in raw.items() if k != "dist"}
    if sorted(given) != sorted(params[dist]):
        raise ConfigError(
            f"{source}: 'revision.transport' ({dist}) takes exactly: {', '.join(params[dist])}"
        )
    vals = {k: _typed(v, 1.0, f"revision.transport.{k}", source) for k, v in given.items()}
    return TransportPrior(dist, **vals)


def load_risk_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RiskConfig:
    """Read a risk config (default ``models/risk/default.toml``) and apply field overrides.

    ``overrides`` are :class:`RiskConfig` field names (``{"transport": TransportPrior(...)}``).
    """
    if path is None:
        path = Path(__file__).resolve().parent.parent / "models" / "risk" / "default.toml"
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"risk config not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw.setdefault("name", path.stem)
    cfg = risk_config_from_dict(raw, str(path))
    if overrides:
        names = {f.name for f in fields(RiskConfig)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"unknown risk config override(s) {bad}; allowed: {sorted(names)}")
        cfg = replace(cfg, **dict(overrides))
    return cfg


def build_model(
    outcome: str,
    config: RiskConfig | None = None,
    *,
    source: Any = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """The risk model of ``outcome`` under ``config``.

    ``source`` overrides the config's results folder for revision and AVF (a fit object, a
    folder, or ``exact:CONFIG`` for revision).
    """
    cfg = config or RiskConfig()
    common = {"n_draws": cfg.draws, "seed": cfg.seed, "data_dir": data_dir}
    an = {
        "endplate_reading": cfg.endplate_reading,
        "calibration": cfg.calibration,
        "replicates": cfg.replicates or None,
    }
    if outcome == "recompression":
        return recompression_model(**common, **an)
    if outcome == "revision":
        src = cfg.revision_results if source is None else source
        return revision_model(src, baseline=cfg.baseline, transport=cfg.transport, **common, **an)
    if outcome == "avf":
        src = cfg.avf_results if source is None else source
        return avf_model(
            src,
            horizon_months=cfg.horizon_months,
            baseline=cfg.baseline,
            reference=cfg.avf_reference,
            contrast_prior=outcomes.PRIORS[cfg.contrast_prior],
            **common,
        )
    raise RiskInputError(f"outcome is {outcome!r}; allowed: {', '.join(OUTCOMES)}")


# --------------------------------------------------------------------------------- figures


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    from matplotlib.figure import Figure  # object API: no pyplot, no global backend (Agg canvas)

    return Figure(figsize=(width, height), layout="constrained")


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))


def _ratio_axis(axis: Any, low: float, high: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fine = [0.1, 0.2, 0.5, 1, 2, 5, 10]
    ticks = fine if low >= 0.1 and high <= 10 else [10.0**k for k in range(-4, 5)]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


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


def figure_risk_distributions(
    models: Mapping[str, RiskModel],
    profiles: Mapping[str, Mapping[str, Any]],
    *,
    threshold: float | None = None,
) -> Any:
    """Histograms of each profile's risk draws (log risk axis), one panel per model."""
    fig = _figure(4.2 * len(models), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(models), squeeze=False)[0])
    names = list(profiles)
    bins = np.logspace(-4, 0, 81)
    for ax, (label, model) in zip(axes, models.items(), strict=True):
        risk = model.risk([{"id": n, **profiles[n]} for n in names], warn=False)
        for n in names:
            r = np.clip(risk.sel(patient=n).values, bins[0], 1.0)
            ax.hist(
                r,
                bins=bins,
                weights=np.full(r.size, 1.0 / r.size),
                histtype="stepfilled",
                alpha=0.45,
                label=f"{n} (median {100 * np.median(r):.1f}%)",
            )
        if threshold is not None:
            ax.axvline(threshold, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        _percent_axis(ax.xaxis)
        ax.set_title(model.description, fontsize=8, wrap=True)
        ax.set_xlabel(f"{label} risk")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of posterior draws")
    return fig


def figure_risk_vs_covariate(
    model: RiskModel,
    profile: Mapping[str, Any],
    covariate: str = "cement_volume",
    values: Sequence[float] | None = None,
    *,
    ci_prob: float = CI_PROB,
) -> Any:
    """Median risk with 50 % and ``ci_prob`` bands as one covariate varies (default 1-8 ml).

    Dotted lines mark the source cohort's range (Table 1 mean +- 3 SD) when it falls inside.
    """
    xs = np.asarray(values if values is not None else np.linspace(1.0, 8.0, 29), dtype=float)
    risk = model.risk([{**profile, covariate: float(x)} for x in xs], warn=False).values
    a = (1.0 - ci_prob) / 2.0
    lo, q1, med, q3, hi = np.quantile(risk, [a, 0.25, 0.5, 0.75, 1 - a], axis=0)
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    ax.fill_between(xs, lo, hi, alpha=0.25, color="C0", label=f"{ci_prob:.0%} interval")
    ax.fill_between(xs, q1, q3, alpha=0.35, color="C0", label="50% interval")
    ax.plot(xs, med, lw=2, color="C0", label="median")
    if covariate in model.cohort_ranges:
        for edge in model.cohort_ranges[covariate]:
            if xs.min() < edge < xs.max():
                ax.axvline(edge, color="grey", ls=":", lw=1)
    others = ", ".join(f"{k} {profile[k]}" for k in model.used if k in profile and k != covariate)
    ax.set_title(f"{model.outcome}; {others}", fontsize=8)
    ax.set_xlabel(COVARIATES[covariate].label)
    ax.set_ylabel(f"{model.outcome} risk")
    ax.set_ylim(0, min(1.0, 1.1 * float(hi.max())))
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return fig


def figure_effects(model: RiskModel, *, ci_prob: float = CI_PROB) -> Any:
    """Forest plot of the odds ratio of each covariate step (median, interval; log scale)."""
    eff = model.effects(ci_prob)
    fig = _figure(6.0, 0.45 * len(eff) + 1.3)
    ax = fig.subplots()
    y = np.arange(len(eff))[::-1]
    ax.errorbar(
        eff["or_median"],
        y,
        fmt="o",
        color="C0",
        xerr=[eff["or_median"] - eff["or_lower"], eff["or_upper"] - eff["or_median"]],
    )
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    _ratio_axis(ax.xaxis, float(eff["or_lower"].min()), float(eff["or_upper"].max()))
    ax.set_yticks(y, [COLUMN_LABELS[c] for c in eff["column"]])
    ax.set_xlabel(f"odds ratio (median, {ci_prob:.0%} interval)")
    ax.set_title(model.description, fontsize=8)
    return fig


def write_figures(
    folder: str | Path,
    models: Mapping[str, RiskModel],
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    threshold: float | None = None,
) -> list[Path]:
    """Write the risk figures as PNG files into ``folder``; returns their paths.

    ``risk_distributions.png`` (every model, every profile), ``risk_vs_cement_volume_<m>.png``
    (typical profile, 1-8 ml, for models that use cement volume) and ``effects_<m>.png``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    profiles = profiles or EXAMPLE_PROFILES
    figs = {"risk_distributions": figure_risk_distributions(models, profiles, threshold=threshold)}
    middle = profiles[list(profiles)[len(profiles) // 2]]
    for label, model in models.items():
        if "cement_volume" in model.used:
            figs[f"risk_vs_cement_volume_{label}"] = figure_risk_vs_covariate(model, middle)
        figs[f"effects_{label}"] = figure_effects(model)
    paths = []
    for name, fig in figs.items():
        path = folder / f"{name}.png"
        atomic.write_with(path, lambda tmp, f=fig: f.savefig(tmp, format="png", dpi=120))
        paths.append(path)
    return paths
