"""Pseudo-cohorts matching Table 1 marginals, and calibration of the intercept over them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import special, stats

from bayes_va.core.rng import stream_rng
from bayes_va.data.tables import load_table
from bayes_va.risk.constants import (
    _CALIBRATION_MAX_ITER,
    CALIBRATION_TOL,
    DEFAULT_SEED,
    EXTRAPOLATION_SDS,
    PSEUDO_COHORT_MIN_ROWS,
    STREAM_PSEUDO_COHORT,
    FloatArray,
)
from bayes_va.risk.errors import RiskInputError
from bayes_va.risk.numerics import _expit_into
from bayes_va.risk.profiles import _COVARIATE_OF_COLUMN


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
class CohortDesign:
    """The points a calibration integrates over: ``C`` cohort draws x ``R`` replicates x ``M``.

    Posterior draw ``s`` is calibrated over cohort draw ``c(s)``, once per replicate ``r``,
    with the points ``points[c, r]`` and the shared ``weights``; the spread over replicates is
    the integration error (:mod:`bayes_va.risk.calibration`).

    Attributes
    ----------
    columns : tuple of str
        Design columns.
    points : ndarray, shape (C, R, M, K)
        Coded covariates.
    weights : ndarray, shape (M,)
        Non-negative, summing to 1.
    description : str
        How it was built.
    exact : bool
        The weighted points *are* the population (a discrete composition): no integration
        error. Otherwise one replicate (``R = 1``) leaves the error unknown (NaN).
    """

    columns: tuple[str, ...]
    points: FloatArray
    weights: FloatArray
    description: str
    exact: bool = False

    @classmethod
    def from_cohort(cls, cohort: PseudoCohort, *, exact: bool = False) -> CohortDesign:
        """Wrap one :class:`PseudoCohort` (one cohort draw, one replicate)."""
        return cls(cohort.columns, cohort.X[None, None], cohort.weights, cohort.description, exact)

    @property
    def n_cohorts(self) -> int:
        """Number of cohort draws ``C``."""
        return int(self.points.shape[0])

    @property
    def n_replicates(self) -> int:
        """Number of replicates ``R``."""
        return int(self.points.shape[1])


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

    Parameters
    ----------
    group_sizes : sequence of int
        Patients per outcome group, in the order of each :attr:`Marginal.by_group`.
    marginals : sequence of Marginal
        One per covariate column, in column order.
    replicates : int, optional
        Copies of each group (default: enough for :data:`PSEUDO_COHORT_MIN_ROWS` rows).
    seed : int
        Seed of the within-group permutations.
    description : str
        Stored with the cohort (how it was built).

    Returns
    -------
    PseudoCohort
        Equally weighted rows, groups stacked in order.

    Raises
    ------
    RiskInputError
        When ``replicates < 1`` or a binary count lies outside ``[0, group size]``.
    """
    replicates = _replicates(replicates, sum(group_sizes))
    rng = stream_rng(seed, STREAM_PSEUDO_COHORT)
    blocks: list[FloatArray] = []
    for g, n_g in enumerate(group_sizes):
        size = int(n_g) * replicates
        cols: list[FloatArray] = []
        for m in marginals:
            first, second = m.by_group[g]
            x: FloatArray
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


def _an_table1(data_dir: str | Path | None) -> tuple[tuple[int, int], list[Marginal]]:
    """Group sizes (recompression, non-compression) and marginals from Table 1."""
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
    """Build a pseudo-cohort matching An 2021 Table 1 in each group (82 recompression, 175 not).

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
    """Return covariate → (mean - 3 SD, mean + 3 SD) of the whole An cohort (Table 1 by group).

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
    return solve_intercepts(eta, cohort.weights, special.logit(target))


def solve_intercepts(eta: FloatArray, w: FloatArray, goal: FloatArray) -> FloatArray:
    """Solve ``logit(sum_m w_m expit(alpha_i + eta_im)) = goal_i`` for every row ``i``.

    The kernel of :func:`calibrate_intercept` and of the per-draw copula calibration
    (:mod:`bayes_va.risk.calibration`): safeguarded Newton (the left side increases in
    ``alpha`` with slope in (0, 1]) inside the bracket ``goal - max eta <= alpha <= goal -
    min eta``, to :data:`CALIBRATION_TOL`.

    Parameters
    ----------
    eta : ndarray, shape (N, M)
        Linear predictors (without intercept) of the ``M`` points, per row.
    w : ndarray, shape (M,)
        Point weights, summing to 1.
    goal : ndarray, shape (N,)
        Target mean risk per row, on the logit scale.

    Returns
    -------
    ndarray, shape (N,)
    """
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
