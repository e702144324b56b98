"""The SBC rank test, its family-wise verdict and its power.

Used by :mod:`bayes_va.checking.sbc` (a run's verdicts) and :mod:`bayes_va.viz.sbc` (the bands);
:mod:`bayes_va.workflows.sbc` re-exports the public names.

The test
    For each checked quantity, the ECDF of its ranks (on ``0..thin``) is compared with the
    discrete uniform by the statistic of Säilynoja, Bürkner & Vehtari (2022, Stat. Comput.
    32:32): ``T`` = the smallest two-sided pointwise binomial tail probability of the ECDF over
    the evaluation points ``j / (thin + 1)``. Small ``T``: the ECDF strays far from uniform
    somewhere. The paper places the band and the p-value by simulating uniform samples; here
    ``P(T <= t)`` under uniform ranks is computed *exactly* (:func:`_prob_inside`: the counts
    ``#(rank < j)`` are a Markov chain in ``j``), so the p-value has no Monte-Carlo error and
    does not depend on a random stream, and the same recursion gives exact power.

Why not ``arviz_stats``' ``uniformity_test`` (``pot_c``), which ArviZ 1.x offers for this
    It tests continuous PIT values. SBC ranks are discrete (``thin + 1`` values), so they must
    be turned into PIT values either at cell midpoints (ties; what ``plot_ecdf_pit`` does with
    ranks) or by uniform jitter, and the Cauchy combination of its pointwise tests is an
    approximation. Re-checked with arviz_stats 1.3.3 on 4,000 uniform rank sets per N
    (``thin = 99``): with midpoints its rejection rate at 0.05 was 0.059 / 0.069 / 0.14-0.15 at
    N = 16 / 100 / 1000, and at 0.002 (Holm's first step at alpha = 0.01 over five quantities)
    it was 0.021 at N = 1000, ten times the level, so the published N = 1000 run would raise
    false alarms; with jitter the level is near nominal (0.064-0.067 at 0.05), but the p-value
    and so the verdict move with the jitter's random seed. The exact discrete test below holds
    its level by construction, has no random stream, and its power is computed exactly
    (:func:`detectable`); ArviZ has neither. The figure (:mod:`bayes_va.viz.sbc`) is
    ``arviz_plots.plot_ecdf_pit`` with this test's exact bands drawn over it (ArviZ's ``pot_c``
    p-value and highlights turned off). Everything in this module is what ArviZ lacks: the
    exact p-value, band and power, Holm's family-wise adjustment and the power statement.

The verdict (family-wise)
    The p-values of the checked quantities are adjusted by Holm's step-down method (valid under
    any dependence: ``mu`` and ``pooled`` have identical ranks, and the others are correlated).
    A quantity is *miscalibrated* when its Holm-adjusted p-value is at most
    :data:`FAMILY_ALPHA`; otherwise there is *no evidence of miscalibration*, which is not a
    proof of calibration: :func:`detectable` says how large a miscalibration the run's
    ``N`` would catch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

#: Level of the simultaneous ECDF band drawn in the figure (one quantity at a time; a curve
#: leaving it is a hint, not the verdict: the verdict uses :data:`FAMILY_ALPHA` with Holm).
BAND_PROB = 0.95
#: Family-wise error rate of the verdict (and of the ``bayes-va sbc`` exit code) over the checked
#: quantities. 0.01 rather than 0.05: an SBC run is repeated for every config, ``--k`` and code
#: change, and a false alarm fails the command and sends someone hunting a bug that is not there;
#: at 0.05 one correct run in twenty would fail. The price in power is small and is reported with
#: every verdict (:func:`detectable`): at N = 100 the smallest miscalibration detected with 80 %
#: power is 1.52x too narrow / 1.70x too wide / a 0.47 SD shift, against 1.44x / 1.55x / 0.41 SD
#: at 0.05 (see docs/sbc.md).
FAMILY_ALPHA = 0.01
#: Power at which :func:`detectable` reports the smallest detectable miscalibration.
POWER_TARGET = 0.8
#: Uniform rank samples simulated by ``ecdf_test(..., method="simulate")`` (cross-check only).
N_BAND_SIMULATIONS = 4000
#: |z| above which a mean or spread deviation of the ranks is named in a verdict.
SHAPE_Z = 2.0
#: Words of a verdict (the start of :func:`_verdict`'s text).
MISCALIBRATED = "MISCALIBRATED"
NO_EVIDENCE = "no evidence of miscalibration"


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
        P-value of the test (small: the ECDF strays from uniform); exact by default.
    """

    z: np.ndarray
    diff: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_value: float


# --------------------------------------------------------------------------- exact machinery


def _pointwise_tail_table(n: int, z: np.ndarray) -> np.ndarray:
    """Two-sided binomial tail probability of every count ``0..n`` at every point ``z``.

    Shape ``(z.size, n + 1)``: ``min(1, 2 min(P(X <= c), P(X >= c)))``, ``X ~ Bin(n, z_j)``.
    """
    c = np.arange(n + 1)[None, :]
    zz = z[:, None]
    lower = special.bdtr(c, n, zz)
    upper = np.where(c <= 0, 1.0, 1.0 - special.bdtr(c - 1, n, zz))
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


@functools.lru_cache(maxsize=32)
def _table(n: int, thin: int) -> np.ndarray:
    """:func:`_pointwise_tail_table` at the rank grid (cached: shared by every quantity)."""
    t = _pointwise_tail_table(n, np.arange(1, thin + 1) / (thin + 1.0))
    t.flags.writeable = False
    return t


def _min_tail_prob(table: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Smallest pointwise tail probability over the points (last axis of ``counts``)."""
    return table[np.arange(table.shape[0]), counts].min(axis=-1)


def _counts(ranks: np.ndarray, thin: int) -> np.ndarray:
    """``#(rank < j)`` for ``j = 1..thin``."""
    return np.cumsum(np.bincount(ranks, minlength=thin + 1))[:-1]


def _allowed(table: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the counts ``[lo, hi]`` whose tail probability exceeds ``t``.

    The tail probability is unimodal in the count, so the set is an interval; an empty one has
    ``lo > hi``.
    """
    ok = table > t
    any_ok = ok.any(axis=1)
    lo = np.where(any_ok, ok.argmax(axis=1), 1)
    hi = np.where(any_ok, table.shape[1] - 1 - ok[:, ::-1].argmax(axis=1), 0)
    return lo, hi


@functools.lru_cache(maxsize=4)
def _log_factorials(n: int) -> np.ndarray:
    return special.gammaln(np.arange(n + 1) + 1.0)


def _prob_inside(n: int, probs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """``P(lo_j <= #(rank < j) <= hi_j`` for every ``j = 1..thin)``, ranks iid with ``probs``.

    ``probs`` are the probabilities of ranks ``0..thin``. The counts ``C_j = #(rank < j)`` are a
    Markov chain: ``C_1 ~ Bin(n, p_0)`` and ``C_{j+1} - C_j ~ Bin(n - C_j, p_j / sum_{k>=j} p_k)``
    (of the ranks ``>= j``, those equal to ``j``); the probability of staying in the intervals is
    propagated forward, one ``(width x width)`` binomial transition per point.
    """
    thin = probs.size - 1
    if np.any(lo > hi):
        return 0.0
    lf = _log_factorials(n)
    tail = np.cumsum(probs[::-1])[::-1]  # P(rank >= j)
    states = np.arange(lo[0], hi[0] + 1)
    v = stats.binom.pmf(states, n, min(1.0, probs[0]))
    for j in range(1, thin):
        q = 0.0 if tail[j] <= 0 else min(1.0, probs[j] / tail[j])
        nxt = np.arange(lo[j], hi[j] + 1)
        m = n - states[:, None]
        k = nxt[None, :] - states[:, None]
        valid = (k >= 0) & (k <= m)
        kk, mm = np.where(valid, k, 0), np.where(valid, m, 0)
        logp = lf[mm] - lf[kk] - lf[mm - kk] + special.xlogy(kk, q) + special.xlog1py(mm - kk, -q)
        v = v @ np.where(valid, np.exp(logp), 0.0)
        states = nxt
        total = v.sum()
        if total <= 0.0:
            return 0.0
    return float(min(1.0, v.sum()))


def _uniform(thin: int) -> np.ndarray:
    return np.full(thin + 1, 1.0 / (thin + 1))


def _null_cdf(n: int, thin: int, t: float) -> float:
    """``P(T <= t)`` for ``n`` uniform ranks on ``0..thin`` (exact)."""
    lo, hi = _allowed(_table(n, thin), t)
    return max(0.0, 1.0 - _prob_inside(n, _uniform(thin), lo, hi))


@functools.lru_cache(maxsize=64)
def _critical_value(n: int, thin: int, level: float) -> float:
    """Return the largest attainable ``t`` with ``P(T <= t) <= level`` (``-inf`` if none).

    ``T <= critical value`` is then exactly ``p-value <= level``: the test rejects at
    ``level``. With too few ranks no attainable ``t`` is that rare and nothing is rejectable.
    The search is a bisection over the attainable values of ``T`` above ``level / thin`` (below
    it, ``P(T <= t) <= thin * t <= level`` by the union bound over the points).
    """
    support = np.unique(_table(n, thin))
    floor = level / thin
    below = support[support <= floor]
    cand = support[support > floor]
    if below.size:
        best = float(below[-1])
    elif _null_cdf(n, thin, float(cand[0])) <= level:
        best, cand = float(cand[0]), cand[1:]
    else:
        return -math.inf
    # cand is ascending and F(cand[-1]) = F(1) = 1 > level: find the last cand with F <= level
    lo, hi = -1, cand.size - 1  # F(cand[lo]) <= level (or lo = -1: best), F(cand[hi]) > level
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _null_cdf(n, thin, float(cand[mid])) <= level:
            lo = mid
        else:
            hi = mid
    return best if lo < 0 else float(cand[lo])


def ecdf_band(n: int, thin: int, prob: float = BAND_PROB) -> tuple[np.ndarray, np.ndarray]:
    """Exact simultaneous band of ``ECDF - z`` at level ``prob`` for ``n`` ranks on ``0..thin``.

    An ECDF leaves the band exactly when the test's p-value is at most ``1 - prob``.
    """
    z = np.arange(1, thin + 1) / (thin + 1.0)
    gamma = _critical_value(n, thin, round(1.0 - prob, 12))
    if not np.isfinite(gamma):  # too few ranks: no ECDF is rare enough to leave any band
        return -z, 1.0 - z
    lo, hi = _allowed(_table(n, thin), gamma)
    return lo / n - z, hi / n - z


# --------------------------------------------------------------------------- the test


def ecdf_test(
    ranks: np.ndarray,
    thin: int,
    prob: float = BAND_PROB,
    n_simulations: int = N_BAND_SIMULATIONS,
    seed: int = 0,
    method: str = "exact",
) -> ECDFTest:
    """ECDF of ranks on ``0..thin`` against the discrete uniform, with a simultaneous band.

    The statistic is that of Säilynoja, Bürkner & Vehtari (2022, Stat. Comput. 32:32): the
    smallest two-sided pointwise binomial tail probability of the ECDF over the evaluation points
    ``j / (thin + 1)`` (where the uniform CDF of ``(rank + 1) / (thin + 1)`` is exact). Its null
    distribution is computed exactly (``method="exact"``, the default) or, as in the paper, by
    simulating ``n_simulations`` uniform rank samples (``method="simulate"``; kept as a
    cross-check). The band is the pointwise binomial band whose level is the statistic's
    ``1 - prob`` quantile.

    Parameters
    ----------
    ranks : array_like of int
        Ranks in ``0..thin``.
    thin : int
        Largest possible rank.
    prob : float
        Band level.
    n_simulations, seed : int
        Uniform samples simulated and their seed (``method="simulate"`` only).
    method : {"exact", "simulate"}

    Returns
    -------
    ECDFTest
    """
    r = np.asarray(ranks, dtype=np.int64)
    n = r.size
    z = np.arange(1, thin + 1) / (thin + 1.0)
    if n == 0:
        nan = np.full(thin, np.nan)
        return ECDFTest(z, nan, nan, nan, float("nan"))
    if r.min() < 0 or r.max() > thin:
        raise ValueError(f"ranks must lie in 0..{thin}")
    counts = _counts(r, thin)
    table = _table(n, thin)
    t_obs = float(_min_tail_prob(table, counts))
    if method == "exact":
        lower, upper = ecdf_band(n, thin, prob)
        return ECDFTest(z, counts / n - z, lower, upper, _null_cdf(n, thin, t_obs))
    if method != "simulate":
        raise ValueError(f"method must be 'exact' or 'simulate', got {method!r}")
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, thin + 1, size=(n_simulations, n))
    offsets = (np.arange(n_simulations) * (thin + 1))[:, None]
    sim_counts = np.bincount((sims + offsets).ravel(), minlength=n_simulations * (thin + 1))
    sim_counts = np.cumsum(sim_counts.reshape(n_simulations, thin + 1), axis=1)[:, :-1]
    t_sim = _min_tail_prob(table, sim_counts)
    p_value = (1.0 + np.sum(t_sim <= t_obs)) / (n_simulations + 1.0)
    gamma = float(np.quantile(t_sim, 1.0 - prob))
    lo = stats.binom.ppf(gamma / 2.0, n, z) / n
    hi = stats.binom.ppf(1.0 - gamma / 2.0, n, z) / n
    return ECDFTest(z, counts / n - z, lo - z, hi - z, float(p_value))


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries are left out of the family, kept NaN).

    The ``i``-th smallest of ``m`` p-values becomes ``max_{k <= i} min(1, (m - k + 1) p_(k))``;
    rejecting the hypotheses with adjusted p-value ``<= alpha`` controls the family-wise error
    rate at ``alpha`` under any dependence between the tests (Holm 1979).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def family_verdict(
    p_values: np.ndarray | list[float], alpha: float = FAMILY_ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and which quantities are miscalibrated (adjusted p <= ``alpha``).

    The verdict rule of an SBC run: the family-wise error rate over the quantities is at most
    ``alpha`` whatever their dependence. A NaN p-value (no ranks) is never miscalibrated.
    """
    adjusted = holm(p_values)
    return adjusted, np.where(np.isfinite(adjusted), adjusted <= alpha, False)


# --------------------------------------------------------------------------- power


def rank_probabilities(
    thin: int, scale: float = 1.0, shift: float = 0.0, n_nodes: int = 8192
) -> np.ndarray:
    """Probabilities of ranks ``0..thin`` when the fitted posterior is wrong by scale or shift.

    In units of the correct posterior (the truth is one of its draws, ``theta ~ N(0, 1)``), the
    fitted posterior is ``N(shift, scale**2)``: ``scale < 1`` too narrow (``1 / scale`` times),
    ``scale > 1`` too wide, ``shift`` its bias in correct-posterior SDs. The rank of the truth
    among ``thin`` independent fitted draws is ``Bin(thin, Phi((theta - shift) / scale))``;
    ``theta`` is integrated by ``n_nodes`` equal-probability nodes (robust for any scale).
    """
    theta = special.ndtri((np.arange(n_nodes) + 0.5) / n_nodes)
    u = special.ndtr((theta - shift) / scale)
    k = np.arange(thin + 1)[:, None]
    log_choose = (
        special.gammaln(thin + 1.0) - special.gammaln(k + 1.0) - special.gammaln(thin - k + 1.0)
    )
    probs = np.exp(log_choose + special.xlogy(k, u) + special.xlog1py(thin - k, -u)).mean(axis=1)
    return probs / probs.sum()


def power(n: int, thin: int, probs: np.ndarray, level: float) -> float:
    """Exact probability that ``n`` ranks drawn with ``probs`` give an ECDF p-value ``<= level``."""
    t_crit = _critical_value(n, thin, level)
    if not np.isfinite(t_crit):
        return 0.0
    lo, hi = _allowed(_table(n, thin), t_crit)
    return max(0.0, 1.0 - _prob_inside(n, np.asarray(probs, dtype=float), lo, hi))


@dataclass(frozen=True)
class SBCPower:
    """The smallest miscalibration of one quantity an SBC run detects with the target power.

    Detection means a family-wise rejection: a p-value at most ``alpha / n_tests`` (Holm's first
    step, so the figures are a slight understatement of Holm's power). Each figure is the
    boundary of one kind of miscalibration (others held right); ``None``: not detectable at
    that power with this ``n`` however large.

    Attributes
    ----------
    n, thin, n_tests : int
        Replications, largest rank, quantities tested.
    alpha, target : float
        Family-wise level and power.
    too_narrow : float or None
        Posterior SD this many times too small.
    too_wide : float or None
        Posterior SD this many times too large.
    shift : float or None
        Posterior mean off by this many (correct) posterior SDs.
    """

    n: int
    thin: int
    n_tests: int
    alpha: float
    target: float
    too_narrow: float | None
    too_wide: float | None
    shift: float | None

    @property
    def rejectable(self) -> bool:
        """Whether any rank set of this size can be rejected at the family-wise level."""
        return bool(np.isfinite(_critical_value(self.n, self.thin, self.alpha / self.n_tests)))

    def short(self) -> str:
        """E.g. ``80 % power only beyond 2.9x too narrow, 7.5x too wide or a 1.4 SD shift``."""
        if not self.rejectable:
            return f"power 0: N={self.n} is too small to reject anything"
        parts = [
            f"{_fmt(self.too_narrow)}x too narrow" if self.too_narrow else None,
            f"{_fmt(self.too_wide)}x too wide" if self.too_wide else None,
            f"a {_fmt(self.shift)} SD shift" if self.shift else None,
        ]
        found = [p for p in parts if p]
        if not found:
            return f"power < {100 * self.target:g} % against any scale or shift error"
        return f"{100 * self.target:g} % power only beyond " + _join(found)

    def text(self) -> str:
        """Return the power sentence printed with every verdict."""
        head = f"With N={self.n} replications"
        level = (
            f"(one quantity wrong; family-wise alpha = {self.alpha:g} over {self.n_tests} "
            "quantities)"
        )
        if not self.rejectable:
            return f"{head}, no rank set could be rejected at all: the run cannot detect anything."
        kinds = []
        if self.too_narrow:
            kinds.append(f"more than {_fmt(self.too_narrow)}x too narrow")
        if self.too_wide:
            kinds.append(f"more than {_fmt(self.too_wide)}x too wide")
        if self.shift:
            kinds.append(f"shifted by more than {_fmt(self.shift)} posterior SDs")
        if not kinds:
            return (
                f"{head}, no posterior too narrow, too wide or shifted would be detected with "
                f"{100 * self.target:g} % power {level}."
            )
        out = (
            f"{head}, only a posterior {_join(kinds, 'or')} would be detected with "
            f"{100 * self.target:g} % power {level}."
        )
        missed = [
            name
            for name, v in (("too narrow", self.too_narrow), ("too wide", self.too_wide))
            if v is None
        ]
        if missed:
            out += f" A posterior {' or '.join(missed)} by any factor would not."
        return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def _join(parts: list[str], word: str = "or") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def _boundary(f: Callable[[float], float], hi: float, target: float) -> float | None:
    """Smallest ``x`` in ``(1, hi]`` with ``f(x) >= target`` (None if ``f(hi)`` is not)."""
    if f(hi) < target:
        return None
    return float(
        np.exp(optimize.brentq(lambda lx: f(np.exp(lx)) - target, 0.0, np.log(hi), xtol=1e-3))
    )


@functools.lru_cache(maxsize=32)
def detectable(
    n: int,
    thin: int,
    n_tests: int,
    alpha: float = FAMILY_ALPHA,
    target: float = POWER_TARGET,
) -> SBCPower:
    """Find the smallest posterior scale error and shift detected with power ``target`` at ``n``.

    One quantity miscalibrated, detected when its exact ECDF p-value is at most
    ``alpha / n_tests`` (what Holm needs at its first step). Deterministic (no simulation):
    rank probabilities by :func:`rank_probabilities`, power by :func:`power`. Takes 1-3 s for
    N <= 2000 and ~6 s at N = 5000 (``thin = 99``), and is cached per process.
    """
    level = alpha / n_tests
    if n < 1 or not np.isfinite(_critical_value(n, thin, level)):
        return SBCPower(n, thin, n_tests, alpha, target, None, None, None)

    def pw(scale: float = 1.0, shift: float = 0.0) -> float:
        return power(n, thin, rank_probabilities(thin, scale, shift), level)

    narrow = _boundary(lambda f: pw(scale=1.0 / f), 1000.0, target)
    wide = _boundary(lambda f: pw(scale=f), 1000.0, target)
    # shift: boundary of 1 + shift on the log scale (shift 0 is the null)
    s = _boundary(lambda x: pw(shift=x - 1.0), 41.0, target)
    return SBCPower(n, thin, n_tests, alpha, target, narrow, wide, None if s is None else s - 1.0)


# --------------------------------------------------------------------------- verdicts


def _shape(ranks: np.ndarray, thin: int) -> tuple[float, float]:
    """z-scores of the ranks' mean (bias) and variance (spread) against the uniform."""
    u = (np.asarray(ranks) + 0.5) / (thin + 1.0)
    n = u.size
    z_mean = (u.mean() - 0.5) / np.sqrt(1.0 / 12.0 / n)
    z_var = (u.var() - 1.0 / 12.0) / np.sqrt(1.0 / 180.0 / n)
    return float(z_mean), float(z_var)


def _verdict(p_holm: float, z_mean: float, z_var: float, alpha: float, power_note: str = "") -> str:
    """Word a quantity's verdict from its Holm-adjusted p-value (family-wise level ``alpha``)."""
    if not np.isfinite(p_holm):
        return "no replications"
    if p_holm > alpha:
        return NO_EVIDENCE + (f" ({power_note})" if power_note else "")
    why = []
    if z_mean > SHAPE_Z:
        why.append("truth tends above the posterior: posterior biased low")
    elif z_mean < -SHAPE_Z:
        why.append("truth tends below the posterior: posterior biased high")
    if z_var > SHAPE_Z:
        why.append("U-shaped ranks: posterior too narrow (overconfident)")
    elif z_var < -SHAPE_Z:
        why.append("hump-shaped ranks: posterior too wide (underconfident)")
    head = f"{MISCALIBRATED} at family-wise alpha = {alpha:g}"
    return head + (": " + "; ".join(why) if why else "")
