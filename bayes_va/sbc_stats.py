"""ECDF test of SBC ranks against uniformity, its simultaneous band, and the verdicts.

The simulation method of Säilynoja, Bürkner & Vehtari (2022); used by :mod:`bayes_va.sbc`,
which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

#: Level of the simultaneous ECDF band; a quantity whose ECDF leaves it is miscalibrated.
BAND_PROB = 0.95
#: Uniform rank samples simulated to place the band and compute the test's p-value.
N_BAND_SIMULATIONS = 4000
#: |z| above which a mean or spread deviation of the ranks is named in a verdict.
SHAPE_Z = 2.0


@dataclass(frozen=True)
class ECDFTest:
    """The rank ECDF of one quantity against uniformity, with its simultaneous band.

    Attributes
    ----------
    z : numpy.ndarray
        Evaluation points ``j / (thin + 1)``, ``j = 1..thin`` (where the uniform CDF of the
        fractional rank is exactly ``z``).
    diff : numpy.ndarray
        ECDF minus ``z``.
    lower, upper : numpy.ndarray
        The simultaneous band for ``diff`` at level :data:`BAND_PROB`.
    p_value : float
        Monte-Carlo p-value of the band test (small: the ECDF leaves the band).
    """

    z: np.ndarray
    diff: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_value: float


def _pointwise_tail_table(n: int, z: np.ndarray) -> np.ndarray:
    """Two-sided binomial tail probability of every count ``0..n`` at every point ``z``.

    Shape ``(z.size, n + 1)``: ``min(1, 2 min(P(X <= c), P(X >= c)))``, ``X ~ Bin(n, z_j)``.
    """
    c = np.arange(n + 1)[None, :]
    zz = z[:, None]
    lower = special.bdtr(c, n, zz)
    upper = np.where(c <= 0, 1.0, 1.0 - special.bdtr(c - 1, n, zz))
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def _min_tail_prob(table: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Smallest pointwise tail probability over the points (last axis of ``counts``)."""
    return table[np.arange(table.shape[0]), counts].min(axis=-1)


def ecdf_test(
    ranks: np.ndarray,
    thin: int,
    prob: float = BAND_PROB,
    n_simulations: int = N_BAND_SIMULATIONS,
    seed: int = 0,
) -> ECDFTest:
    """ECDF of ranks on ``0..thin`` against the discrete uniform, with a simultaneous band.

    The band is the simulation method of Säilynoja, Bürkner & Vehtari (2022, Stat. Comput.
    32:32): for uniform rank samples of the same size, take the smallest two-sided pointwise
    binomial tail probability over the evaluation points; the band is the pointwise binomial
    band whose level is that statistic's ``1 - prob`` quantile. The same statistic of the
    observed ranks gives the test's p-value. Ranks are discrete, so the ECDF is evaluated at
    ``j / (thin + 1)``, where the uniform CDF of ``(rank + 1) / (thin + 1)`` is exact.

    Parameters
    ----------
    ranks : array_like of int
        Ranks in ``0..thin``.
    thin : int
        Largest possible rank.
    prob : float
        Band level.
    n_simulations : int
        Uniform samples simulated.
    seed : int
        Seed of the simulation (the band is reproducible).

    Returns
    -------
    ECDFTest
    """
    r = np.asarray(ranks, dtype=np.int64)
    n = r.size
    j = np.arange(1, thin + 1)
    z = j / (thin + 1.0)
    if n == 0:
        nan = np.full(thin, np.nan)
        return ECDFTest(z, nan, nan, nan, float("nan"))
    counts = np.cumsum(np.bincount(r, minlength=thin + 1))[:-1]  # #(rank < j), j = 1..thin
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, thin + 1, size=(n_simulations, n))
    offsets = (np.arange(n_simulations) * (thin + 1))[:, None]
    sim_counts = np.bincount((sims + offsets).ravel(), minlength=n_simulations * (thin + 1))
    sim_counts = np.cumsum(sim_counts.reshape(n_simulations, thin + 1), axis=1)[:, :-1]
    table = _pointwise_tail_table(n, z)
    t_sim = _min_tail_prob(table, sim_counts)
    t_obs = float(_min_tail_prob(table, counts))
    p_value = (1.0 + np.sum(t_sim <= t_obs)) / (n_simulations + 1.0)
    gamma = float(np.quantile(t_sim, 1.0 - prob))
    lo = stats.binom.ppf(gamma / 2.0, n, z) / n
    hi = stats.binom.ppf(1.0 - gamma / 2.0, n, z) / n
    return ECDFTest(z, counts / n - z, lo - z, hi - z, float(p_value))


def _shape(ranks: np.ndarray, thin: int) -> tuple[float, float]:
    """z-scores of the ranks' mean (bias) and variance (spread) against the uniform."""
    u = (np.asarray(ranks) + 0.5) / (thin + 1.0)
    n = u.size
    z_mean = (u.mean() - 0.5) / np.sqrt(1.0 / 12.0 / n)
    z_var = (u.var() - 1.0 / 12.0) / np.sqrt(1.0 / 180.0 / n)
    return float(z_mean), float(z_var)


def _verdict(p_value: float, z_mean: float, z_var: float, alpha: float) -> str:
    if not np.isfinite(p_value):
        return "no replications"
    if p_value >= alpha:
        return "calibrated (ranks consistent with uniform)"
    why = []
    if z_mean > SHAPE_Z:
        why.append("truth tends above the posterior: posterior biased low")
    elif z_mean < -SHAPE_Z:
        why.append("truth tends below the posterior: posterior biased high")
    if z_var > SHAPE_Z:
        why.append("U-shaped ranks: posterior too narrow (overconfident)")
    elif z_var < -SHAPE_Z:
        why.append("hump-shaped ranks: posterior too wide (underconfident)")
    return "MISCALIBRATED" + (": " + "; ".join(why) if why else "")
