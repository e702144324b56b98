r"""Per-draw calibration of the intercept over a cohort design, and its integration error.

For posterior draw ``s`` (effects ``b_s = lambda_s beta_s``, target mean risk ``t_s``, cohort
draw ``c(s)``) and each replicate ``r`` of the integration points, ``alpha_sr`` solves

    sum_m w_m expit(alpha_sr + b_s (x_{c(s) r m} - x_ref)) = t_s

(:func:`~bayes_va.risk.cohort.solve_intercepts`). The layer's intercept is the replicate
mean ``alpha_s = mean_r alpha_sr`` (the randomised-QMC estimate) and its integration error the
Monte-Carlo standard error ``MCSE_s = sd_r(alpha_sr) / sqrt(R)``: the replicates are
independent scrambles, so their spread is an honest error estimate whatever the integrand's
smoothness (binary margins make it discontinuous). On the logit scale every profile's risk
shares the intercept's MCSE (the effects do not depend on the replicate); on the risk scale it
is ``p (1 - p) MCSE_s`` to first order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from bayes_va.risk.cohort import CohortDesign, solve_intercepts
from bayes_va.risk.constants import CALIBRATION_BLOCK, FloatArray
from bayes_va.risk.copula import CopulaSpec
from bayes_va.risk.errors import RiskInputError

IntArray = NDArray[np.intp]


def blocks_of_draws(n_draws: int, n_cohorts: int) -> IntArray:
    """Assign posterior draws to cohort draws in contiguous, near-equal blocks."""
    return (np.arange(n_draws) * n_cohorts // n_draws).astype(np.intp)


def calibrate_design(
    design: CohortDesign,
    effects: FloatArray,
    target: FloatArray,
    cohort_of_draw: IntArray,
    x_ref: FloatArray,
    mode: str = "marginal",
) -> FloatArray:
    """Solve the calibration of every draw over every replicate of its cohort draw.

    Parameters
    ----------
    design : CohortDesign
        ``C`` cohort draws x ``R`` replicates x ``M`` weighted points.
    effects : ndarray, shape (S, K)
        Effects (transported ones already multiplied by ``lambda``).
    target : ndarray, shape (S,)
        Mean risk per draw, in (0, 1).
    cohort_of_draw : ndarray of int, shape (S,)
        Cohort draw of each posterior draw.
    x_ref : ndarray, shape (K,)
        Centre of the covariates.
    mode : {"marginal", "mean_profile"}
        ``mean_profile``: ``alpha = logit(target)`` (no cohort).

    Returns
    -------
    ndarray, shape (S, R)
        ``alpha_sr``.
    """
    target = np.asarray(target, dtype=float)
    if np.any((target <= 0) | (target >= 1)):
        raise RiskInputError("calibration targets must lie strictly between 0 and 1")
    goal = special.logit(target)
    R = design.n_replicates
    if mode == "mean_profile":
        return np.repeat(goal[:, None], R, axis=1)
    if mode != "marginal":
        raise RiskInputError(f"calibration is {mode!r}; allowed: marginal, mean_profile")
    effects = np.asarray(effects, dtype=float)
    out = np.empty((len(goal), R))
    M, K = design.points.shape[2:]
    per_block = max(1, CALIBRATION_BLOCK // (R * M))
    order = np.argsort(cohort_of_draw, kind="stable")
    bounds = np.searchsorted(cohort_of_draw[order], np.arange(design.n_cohorts + 1))
    etas: list[FloatArray] = []
    idx: list[IntArray] = []

    def flush() -> None:
        rows = np.concatenate(idx)
        alpha = solve_intercepts(np.vstack(etas), design.weights, np.repeat(goal[rows], R))
        out[rows] = alpha.reshape(len(rows), R)
        etas.clear()
        idx.clear()

    for c in range(design.n_cohorts):
        draws = order[bounds[c] : bounds[c + 1]]
        if len(draws) == 0:
            continue
        centred = (design.points[c] - x_ref).reshape(R * M, K)
        for start in range(0, len(draws), per_block):
            part = draws[start : start + per_block]
            etas.append((effects[part] @ centred.T).reshape(len(part) * R, M))
            idx.append(part)
            if sum(len(i) for i in idx) >= per_block:
                flush()
    if idx:
        flush()
    return out


@dataclass(frozen=True)
class Calibration:
    """What a model's intercepts were calibrated from.

    Kept for the integration error and the variance split (:mod:`bayes_va.risk.explain`).

    Attributes
    ----------
    design : CohortDesign
        The integration points.
    cohort_of_draw : ndarray of int, shape (S,)
        Cohort draw of each posterior draw.
    x_ref : ndarray, shape (K,)
        Centre of the covariates.
    target : ndarray, shape (S,)
        Mean risk over the reference population per draw (the baseline).
    beta : ndarray, shape (S, K)
        Published effects, before transport.
    lam : ndarray, shape (S,), or None
        Transport factor (revision only).
    mode : str
        ``marginal`` or ``mean_profile``.
    alpha_replicates : ndarray, shape (S, R)
        Intercept per draw and replicate.
    mcse_fraction : float
        Warn when the integration MCSE exceeds this fraction of the posterior SD.
    seed : int
        Seed of the variance split's permutations.
    spec : CopulaSpec or None
        The copula's drawn parameters (copula cohorts only: the integration-error figure).
    points_log2 : int
        ``m`` of the copula's ``2^m`` points per group (0 for other designs).
    """

    design: CohortDesign
    cohort_of_draw: IntArray
    x_ref: FloatArray
    target: FloatArray
    beta: FloatArray
    lam: FloatArray | None
    mode: str
    alpha_replicates: FloatArray
    mcse_fraction: float
    seed: int
    spec: CopulaSpec | None = None
    points_log2: int = 0

    @property
    def effects(self) -> FloatArray:
        """Effects used by the layer: ``lambda_s beta_s`` (``beta_s`` without transport)."""
        return self.beta if self.lam is None else self.lam[:, None] * self.beta

    @property
    def alpha(self) -> FloatArray:
        """The layer's intercept: the replicate mean, shape (S,)."""
        return np.asarray(self.alpha_replicates.mean(axis=1))

    @property
    def alpha_mcse(self) -> FloatArray:
        """Integration MCSE of each draw's intercept, shape (S,).

        Zero for an exact design or ``mean_profile``; NaN with one inexact replicate.
        """
        S, R = self.alpha_replicates.shape
        if self.mode == "mean_profile" or self.design.exact:
            return np.zeros(S)
        if R < 2:
            return np.full(S, np.nan)
        return np.asarray(self.alpha_replicates.std(axis=1, ddof=1) / math.sqrt(R))

    def integration(self) -> dict[str, Any]:
        """Summarise the intercept's integration error against its posterior SD.

        Returns
        -------
        dict
            ``mcse`` (root mean square over draws of the per-draw MCSE, logit scale),
            ``posterior_sd`` (of the intercept), ``ratio``, ``fraction`` (the warning level),
            ``exceeds``, ``replicates``, ``points`` (per replicate) and ``exact``.
        """
        mcse = float(np.sqrt(np.mean(np.square(self.alpha_mcse))))
        sd = float(self.alpha.std())
        ratio = mcse / sd if sd > 0 else (0.0 if mcse == 0 else math.inf)
        return {
            "mcse": mcse,
            "posterior_sd": sd,
            "ratio": ratio,
            "fraction": self.mcse_fraction,
            "exceeds": bool(ratio > self.mcse_fraction),
            "replicates": self.design.n_replicates,
            "points": int(self.design.points.shape[2]),
            "exact": self.design.exact or self.mode == "mean_profile",
        }


def calibrate(
    design: CohortDesign,
    *,
    beta: FloatArray,
    target: FloatArray,
    x_ref: FloatArray,
    mode: str,
    lam: FloatArray | None = None,
    mcse_fraction: float = 0.1,
    seed: int = 0,
    spec: CopulaSpec | None = None,
    points_log2: int = 0,
) -> Calibration:
    """Calibrate every draw over ``design`` (posterior draws split into its cohort draws).

    Returns
    -------
    Calibration
        Its :attr:`~Calibration.alpha` is the layer's intercept.
    """
    S = len(target)
    cohorts = blocks_of_draws(S, design.n_cohorts)
    effects = beta if lam is None else lam[:, None] * beta
    alpha = calibrate_design(design, effects, target, cohorts, x_ref, mode)
    return Calibration(
        design,
        cohorts,
        np.asarray(x_ref, dtype=float),
        np.asarray(target, dtype=float),
        np.asarray(beta, dtype=float),
        lam,
        mode,
        alpha,
        mcse_fraction,
        seed,
        spec,
        points_log2,
    )


def integration_error_curve(
    cal: Calibration,
    log2_points: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9),
    *,
    max_draws: int = 64,
) -> list[dict[str, Any]]:
    """Integration MCSE of the intercept against the number of points, Sobol' and plain MC.

    Recalibrates ``max_draws`` draws (every k-th, all cohort draws represented) with the
    copula's parameters at each ``2^m`` points per group, with the same number of replicates,
    once with scrambled Sobol' points and once with iid normal points (plain Monte Carlo, the
    reference rate ``1/sqrt(n)``).

    Returns
    -------
    list of dict
        Per ``m`` and method: ``points`` (per replicate, all groups), ``method``
        (``sobol``/``plain``), ``mcse`` (RMS over the draws, logit scale) and ``ratio`` (to
        the intercept's posterior SD).

    Raises
    ------
    RiskInputError
        For a model whose cohort is not a copula.
    """
    if cal.spec is None or cal.mode != "marginal":
        raise RiskInputError("the integration-error curve needs a copula cohort (marginal mode)")
    S = len(cal.target)
    pick = np.unique(np.linspace(0, S - 1, min(max_draws, S)).round().astype(np.intp))
    cohorts = cal.cohort_of_draw[pick]
    used = np.unique(cohorts)
    remap = np.searchsorted(used, cohorts).astype(np.intp)
    sd = float(cal.alpha.std())
    R = cal.design.n_replicates
    out = []
    for m in log2_points:
        for plain in (False, True):
            z = cal.spec.base_normals(m, R, plain=plain)
            design = CohortDesign(
                cal.design.columns, cal.spec.transform(z, used), cal.spec.weights(m), ""
            )
            a = calibrate_design(
                design, cal.effects[pick], cal.target[pick], remap, cal.x_ref, cal.mode
            )
            mcse = float(np.sqrt(np.mean(a.var(axis=1, ddof=1) / R)))
            out.append(
                {
                    "points": float(design.points.shape[2]),
                    "method": "plain" if plain else "sobol",
                    "mcse": mcse,
                    "ratio": mcse / sd if sd > 0 else math.inf,
                }
            )
    return out
