"""Exact (quadrature) posterior of the logit-normal random-effects model, numpy/scipy only.

Model, per study ``i = 1..k``::

    y_i     ~ Binomial(n_i, expit(theta_i))
    theta_i ~ Normal(mu, tau)
    mu      ~ log_prior_mu   (default Normal(0, 2.5))
    tau     ~ log_prior_tau  (default HalfNormal(1))

Two levels of quadrature, no sampling:

1. ``theta_i`` is integrated out study by study with *adaptive* Gauss-Hermite quadrature
   (:func:`log_marginal_likelihood`): the nodes are centred at the mode of the integrand and
   scaled by its curvature, as in lme4's ``nAGQ``. Plain Gauss-Hermite centred at ``mu`` with
   scale ``tau`` cannot work for the studies with n ≈ 80,000, whose likelihood in ``theta`` is
   ~0.01 wide while ``tau`` ≈ 0.9: every node misses it. Each value is checked against a
   smaller rule; where they disagree (zero-event or very small studies at large ``tau``, where
   the integrand is far from Gaussian) a trapezoid rule refined to tolerance takes over.
2. ``(mu, log tau)`` is integrated on an automatically placed tensor-product grid with the
   trapezoid rule (:func:`posterior_grid`), giving an :class:`ExactPosterior` with quantiles,
   means and the log evidence.

These are the references that the MCMC fits (and PSIS-LOO, via :func:`leave_one_out_elpd`) are
checked against.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special, stats
from scipy.interpolate import CubicSpline

__all__ = [
    "ExactPosterior",
    "LogDensity",
    "default_log_prior_mu",
    "default_log_prior_tau",
    "leave_one_out_elpd",
    "log_marginal_likelihood",
    "posterior_grid",
    "random_effect_nodes",
]

FloatArray = NDArray[np.float64]
LogDensity = Callable[[FloatArray], FloatArray]
"""A vectorised log density: maps an array of parameter values to an array of log densities."""

QuantityName = Literal["mu", "tau", "pooled", "predictive"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_LN2 = np.log(2.0)
_MODE_MAX_ITER = 60  # safeguarded Newton: ~5 steps from our start; the cap only guards bisection
_MODE_TOL = 1e-11  # on theta - mu; the quadrature is insensitive to far smaller centre shifts
_TAU_NUMERICALLY_ZERO = 1e-100  # below this tau = 0 to ~1e-200 (and 1/tau^2 would overflow)
# Fallback trapezoid (_refined_trapezoid): span where log f is within 40 of its maximum (the
# mass cut off is < e^-40 relative), start with 17 nodes, halve the spacing up to 4097 nodes.
_TRAP_DROP = 40.0
_TRAP_NEWTON = 8
_TRAP_START = 17
_TRAP_MAX = 4096

# Grid placement (see _locate_bulk): keep every node whose log density is within _DROP of the
# maximum (exp(-22) ~ 3e-10), padded by a coarse cell. With the final edges at least _EDGE_DROP
# below the maximum, the mass left outside is < ~1e-7 even for the exponential lower tail of
# log tau (density ~ tau as tau -> 0): far below the 1e-4 accuracy target for quantiles.
_DROP = 22.0
_EDGE_DROP = 15.0  # the final grid's edges must be this far below the maximum, else widen
_N_COARSE = 17
# Resolution check (see _max_marginal_step): refine an axis whose marginal log density steps by
# more than 2.5 between nodes within 12 of its peak, aiming at steps of 1.5.
_BULK_DROP = 12.0
_MAX_STEP = 2.5
_TARGET_STEP = 1.5
_MAX_NODES = 401
_MAX_PASSES = 20
_CDF_REFINE = 8  # sub-intervals per grid cell when integrating the marginal density for the CDF
_SPLINE_DROP = 60.0  # marginal CDFs ignore nodes this far below the peak (see _SplineCDF.build)

_PRIOR_MU = stats.norm(loc=0.0, scale=2.5)
_PRIOR_TAU = stats.halfnorm(scale=1.0)


def default_log_prior_mu(mu: FloatArray) -> FloatArray:
    """Log density of the default prior on ``mu``: Normal(0, 2.5).

    Parameters
    ----------
    mu : ndarray
        Values of the mean log-odds.

    Returns
    -------
    ndarray
        ``log N(mu | 0, 2.5)``, same shape as ``mu``.
    """
    return _PRIOR_MU.logpdf(mu)


def default_log_prior_tau(tau: FloatArray) -> FloatArray:
    """Log density of the default prior on ``tau``: HalfNormal(sigma=1).

    Parameters
    ----------
    tau : ndarray
        Values of the between-study standard deviation (``tau > 0``).

    Returns
    -------
    ndarray
        ``log HalfNormal(tau | 1)``, same shape as ``tau``.
    """
    return _PRIOR_TAU.logpdf(tau)


# ---------------------------------------------------------------------------------------------
# Level 1: integrating theta_i out (adaptive Gauss-Hermite, with a checked fallback)
# ---------------------------------------------------------------------------------------------


def _study_arrays(y: ArrayLike, n: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate event counts and sizes; return them as float arrays of shape ``(k,)``."""
    y_arr = np.atleast_1d(np.asarray(y, dtype=float))
    n_arr = np.atleast_1d(np.asarray(n, dtype=float))
    if y_arr.ndim != 1 or y_arr.shape != n_arr.shape:
        raise ValueError(f"y and n must be 1-D of equal length, got {y_arr.shape}, {n_arr.shape}")
    if np.any(n_arr <= 0) or np.any(y_arr < 0) or np.any(y_arr > n_arr):
        raise ValueError("need n > 0 and 0 <= y <= n for every study")
    if np.any(y_arr != np.round(y_arr)) or np.any(n_arr != np.round(n_arr)):
        raise ValueError("y and n must be whole numbers")
    return y_arr, n_arr


@lru_cache(maxsize=16)
def _hermite_rule(n_nodes: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Hermite nodes ``x`` and ``log(w) + x**2`` (the rule for an un-weighted integrand)."""
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    with np.errstate(divide="ignore"):  # far nodes of huge rules underflow to w = 0: harmless
        log_w = np.log(w) + x**2
    x.setflags(write=False)
    log_w.setflags(write=False)
    return x, log_w


def _log_binom_coef(y: FloatArray, n: FloatArray) -> FloatArray:
    """``log C(n, y)`` via log-gamma (exact enough for n ~ 1e5)."""
    return special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)


def _log_binom_kernel(theta: FloatArray, y: FloatArray, n: FloatArray) -> FloatArray:
    """``y log expit(theta) + (n - y) log expit(-theta)``, stably.

    Uses ``log expit(-t) = log expit(t) - t``, so there is one transcendental call per element.
    """
    return n * special.log_expit(theta) - (n - y) * theta


def _logsumexp_last(a: FloatArray) -> FloatArray:
    """``logsumexp`` over the last axis; ~3x faster than scipy's on this hot path."""
    top = a.max(axis=-1)
    return top + np.log(np.exp(a - top[..., None]).sum(axis=-1))


def _conditional_mode(
    y: FloatArray, n: FloatArray, mu: FloatArray, tau: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Mode ``delta = theta - mu`` of the integrand and the curvature there.

    The log integrand ``h(delta)`` is strictly concave, and its mode lies between 0 and
    ``tau**2 * (y - n expit(mu))`` (the Gaussian pulls towards ``mu``, the binomial towards its
    MLE), which brackets it. Newton steps from a precision-weighted start converge in a few
    iterations; a step that would leave the (shrinking) bracket is replaced by bisection.

    Working in ``delta`` rather than ``theta`` keeps tiny offsets exact when ``tau`` -> 0.

    Returns
    -------
    delta : ndarray
        The mode of ``theta - mu``, broadcast shape of the inputs.
    curvature : ndarray
        ``-h''(delta) = n p (1 - p) + 1 / tau**2`` at the mode.
    """
    inv_var = 1.0 / tau**2
    # Start: combine the data's logit (continuity-corrected) and mu by their precisions.
    p_data = (y + 0.5) / (n + 1.0)
    info_data = n * p_data * (1.0 - p_data)
    delta = (special.logit(p_data) - mu) * info_data / (info_data + inv_var)
    far_end = tau**2 * (y - n * special.expit(mu))
    lo = np.minimum(0.0, far_end)
    hi = np.maximum(0.0, far_end)
    delta = np.clip(delta, lo, hi)
    for _ in range(_MODE_MAX_ITER):
        p = special.expit(mu + delta)
        grad = y - n * p - delta * inv_var
        curvature = n * p * (1.0 - p) + inv_var
        lo = np.where(grad > 0.0, delta, lo)
        hi = np.where(grad > 0.0, hi, delta)
        step_to = delta + grad / curvature
        # The current point is now a bracket end, so a Newton step may land on it (converged).
        step_to = np.where((step_to >= lo) & (step_to <= hi), step_to, 0.5 * (lo + hi))
        converged = np.all(np.abs(step_to - delta) <= _MODE_TOL * (1.0 + np.abs(delta)))
        delta = step_to
        if converged:
            break
    p = special.expit(mu + delta)
    return delta, n * p * (1.0 - p) + inv_var


@dataclass(frozen=True)
class _Integrand:
    """``log f(delta)``: the log integrand in ``delta = theta - mu``, for many (study, mu, tau).

    All arrays broadcast to one shape ``B``; ``log_f`` takes nodes of shape ``B + (m,)``.
    """

    y: FloatArray
    n: FloatArray
    mu: FloatArray
    tau: FloatArray
    log_const: FloatArray  # log C(n, y) - log tau - log sqrt(2 pi)
    mode: FloatArray
    curvature: FloatArray

    @classmethod
    def build(cls, y: FloatArray, n: FloatArray, mu: FloatArray, tau: FloatArray) -> _Integrand:
        """Integrand for studies ``(y, n)`` of shape (k,) and ``mu, tau`` of shape ``S + (1,)``."""
        mode, curvature = _conditional_mode(y, n, mu, tau)
        log_const = _log_binom_coef(y, n) - np.log(tau) - _LOG_SQRT_2PI
        return cls(y, n, mu, tau, log_const, mode, curvature)

    def log_f(self, delta: FloatArray) -> FloatArray:
        """Log integrand at nodes ``delta`` (shape ``B + (m,)``)."""
        theta = self.mu[..., None] + delta
        return (
            self.log_const[..., None]
            + _log_binom_kernel(theta, self.y[..., None], self.n[..., None])
            - 0.5 * (delta / self.tau[..., None]) ** 2
        )

    def subset(self, mask: NDArray[np.bool_]) -> _Integrand:
        """The elements where ``mask`` (shape ``B``) is true, as a flat integrand."""
        fields = (self.y, self.n, self.mu, self.tau, self.log_const, self.mode, self.curvature)
        return _Integrand(*(np.broadcast_to(a, mask.shape)[mask] for a in fields))


def _adaptive_gauss_hermite(f: _Integrand, n_nodes: int) -> tuple[FloatArray, FloatArray]:
    """Nodes (as ``delta``) and log terms of the mode-centred, Laplace-scaled rule."""
    x, log_w = _hermite_rule(n_nodes)
    scale = np.sqrt(2.0 / f.curvature)  # sqrt(2) * Laplace SD: the Hermite weight is exp(-x^2)
    delta = f.mode[..., None] + scale[..., None] * x
    return delta, f.log_f(delta) + log_w + np.log(scale)[..., None]


def _drop_point(f: _Integrand, top: FloatArray, side: float) -> FloatArray:
    """Where ``log f`` has fallen ``_TRAP_DROP`` below its maximum ``top``, on one side.

    Newton from the Laplace guess. For a concave function every Newton iterate after the first
    lies at or beyond the root (the tangent lies above the function), so the interval is never
    too short, only converging towards tight.
    """
    delta = f.mode + side * np.sqrt(2.0 * _TRAP_DROP / f.curvature)
    target = top - _TRAP_DROP
    for _ in range(_TRAP_NEWTON):
        excess = f.log_f(delta[..., None])[..., 0] - target
        slope = f.y - f.n * special.expit(f.mu + delta) - delta / f.tau**2
        delta = delta - excess / slope
    return delta


def _within(a: FloatArray, b: FloatArray, tol: float) -> NDArray[np.bool_]:
    """``|a - b| <= tol`` absolutely near 0 and relatively for large ``|a|`` (log scale)."""
    return np.abs(a - b) <= tol * np.maximum(1.0, np.abs(a))


def _refined_trapezoid(f: _Integrand, tol: float) -> FloatArray:
    """Log integral by a trapezoid rule in ``t``, ``delta = mode + s sinh(t)``, refined to ``tol``.

    The trapezoid rule converges geometrically for a smooth integrand that vanishes at both
    ends, whatever its shape; the sinh map makes the node spacing ~``s`` near the mode and
    geometric in the tails, so one rule resolves a narrow side (``s`` is the narrow side's
    SD-equivalent) and a side many times wider. The rules are nested: each halving of the
    spacing reuses every node, and the change estimates the error. Elements refine
    independently until converged.
    """
    top = f.log_f(f.mode[..., None])[..., 0]
    below = f.mode - _drop_point(f, top, -1.0)
    above = _drop_point(f, top, 1.0) - f.mode
    scale = np.minimum(below, above) / np.sqrt(2.0 * _TRAP_DROP)
    t_lo = -np.arcsinh(below / scale)
    h = (np.arcsinh(above / scale) - t_lo) / (_TRAP_START - 1)

    def log_terms(active: NDArray[np.bool_], t: FloatArray) -> FloatArray:
        """Log of ``f(delta(t)) * ddelta/dt`` summed over the nodes ``t`` (per element)."""
        sub, s = f.subset(active), scale[active, None]
        log_jacobian = np.log(s * np.cosh(t))
        return _logsumexp_last(sub.log_f(sub.mode[:, None] + s * np.sinh(t)) + log_jacobian)

    everyone = np.ones(top.size, dtype=bool)
    out = log_terms(everyone, t_lo[:, None] + h[:, None] * np.arange(_TRAP_START)) + np.log(h)
    active = everyone.copy()
    n_intervals = _TRAP_START - 1
    while active.any() and n_intervals < _TRAP_MAX:
        mids = t_lo[active, None] + h[active, None] * (np.arange(n_intervals) + 0.5)
        mid_sum = log_terms(active, mids) + np.log(h[active])
        finer = np.logaddexp(out[active], mid_sum) - _LN2  # T(h/2) = (T(h) + h * sum_mid) / 2
        converged = _within(finer, out[active], tol)
        out[active] = finer
        h[active] *= 0.5
        active[np.flatnonzero(active)[converged]] = False
        n_intervals *= 2
    if active.any():
        warnings.warn(
            f"{active.sum()} marginal likelihood(s) did not reach tol={tol:g} with "
            f"{_TRAP_MAX + 1} nodes",
            RuntimeWarning,
            stacklevel=3,
        )
    return out


def random_effect_nodes(
    y: ArrayLike, n: ArrayLike, mu: ArrayLike, tau: ArrayLike, n_nodes: int = 15
) -> tuple[FloatArray, FloatArray]:
    """Adaptive Gauss-Hermite nodes for integrating each study's ``theta_i`` out.

    The nodes are centred at the mode of ``Binom(y_i | n_i, expit theta) N(theta | mu, tau)``
    and scaled by its curvature there (the rule of lme4's ``nAGQ``).

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes.
    mu, tau : array_like
        Random-effects mean and SD (``tau > 0``); broadcast together to a shape ``S``.
    n_nodes : int, optional
        Number of quadrature nodes.

    Returns
    -------
    delta : ndarray, shape S + (k, n_nodes)
        Node positions as ``theta - mu``.
    log_weight : ndarray, shape S + (k, n_nodes)
        Log of each node's contribution; ``logsumexp(log_weight, axis=-1)`` is the log marginal
        likelihood and ``softmax(log_weight)`` the posterior weights of the nodes for ``theta_i``.
    """
    y_arr, n_arr = _study_arrays(y, n)
    mu_b, tau_b = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(tau, dtype=float))
    if np.any(~(tau_b > 0.0)):
        raise ValueError("random_effect_nodes needs tau > 0 (tau = 0 has no random effect)")
    f = _Integrand.build(y_arr, n_arr, mu_b[..., None], tau_b[..., None])
    return _adaptive_gauss_hermite(f, n_nodes)


def log_marginal_likelihood(
    y: ArrayLike,
    n: ArrayLike,
    mu: ArrayLike,
    tau: ArrayLike,
    n_nodes: int = 15,
    *,
    tol: float | None = 1e-9,
) -> FloatArray:
    """Per-study log marginal likelihood with the random effect integrated out.

    Computes ``log ∫ Binom(y_i | n_i, expit(theta)) N(theta | mu, tau) dtheta`` (binomial
    coefficient included) by adaptive Gauss-Hermite quadrature: nodes centred at the mode of
    the integrand and scaled by its curvature (Laplace scale). ``tau = 0`` gives the plain
    binomial log likelihood at ``expit(mu)``.

    Adaptive Gauss-Hermite is exact for a Gaussian integrand, and with 15 nodes it is accurate
    to ~1e-8 for studies with >= 10 events and >= 10 non-events at any ``tau`` up to 3, and to
    ~1e-7 for any study when ``tau <= 1``. It is poor when the likelihood is one-sided
    (``y = 0`` or ``y = n``) or very weak and ``tau`` is large: the integrand is then a wide
    Gaussian cut off by a logistic cliff (error ~1e-3 at ``y = 0``, ``tau = 3``; still ~1e-4
    with 31 nodes). So, with ``tol`` set, each value is checked against an ``n_nodes - 4``
    node rule, and those that disagree by more than ``tol`` are recomputed by a trapezoid rule
    in a sinh-stretched variable, halving its spacing until converged (``_refined_trapezoid``).
    Against QUADPACK this is within 1e-9 on a grid of zero-event, all-event, tiny and
    80,000-patient studies with ``tau`` from 0.05 to 3 (``tests/test_exact.py``).

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes, ``0 <= y <= n``.
    mu, tau : array_like
        Random-effects mean (log-odds) and SD (``tau >= 0``); broadcast together to shape ``S``.
    n_nodes : int, optional
        Gauss-Hermite nodes per study.
    tol : float or None, optional
        Accuracy wanted on each log marginal likelihood: absolute where ``|log p| <= 1``,
        relative beyond. ``None`` skips the check (plain adaptive Gauss-Hermite; about twice
        as fast on large grids).

    Returns
    -------
    ndarray, shape S + (k,)
        ``log p(y_i | n_i, mu, tau)``.

    Examples
    --------
    >>> log_marginal_likelihood([14, 12130], [843, 80864], mu=-3.2, tau=0.89).round(4)
    array([ -3.9523, -11.3987])
    """
    y_arr, n_arr = _study_arrays(y, n)
    mu_b, tau_b = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(tau, dtype=float))
    if np.any(~(tau_b >= 0.0)):
        raise ValueError("tau must be >= 0")
    at_zero = tau_b < _TAU_NUMERICALLY_ZERO
    # Quadrature on a dummy tau where tau == 0, then overwrite with the closed form.
    safe_tau = np.where(at_zero, 1.0, tau_b)
    f = _Integrand.build(y_arr, n_arr, mu_b[..., None], safe_tau[..., None])
    out = _logsumexp_last(_adaptive_gauss_hermite(f, n_nodes)[1])
    if tol is not None:
        check = _logsumexp_last(_adaptive_gauss_hermite(f, max(n_nodes - 4, 1))[1])
        suspect = ~_within(out, check, tol)
        if np.any(suspect):
            out[suspect] = _refined_trapezoid(f.subset(suspect), tol)
    if np.any(at_zero):
        fixed = _log_binom_coef(y_arr, n_arr) + _log_binom_kernel(mu_b[..., None], y_arr, n_arr)
        out = np.where(at_zero[..., None], fixed, out)
    return out


# ---------------------------------------------------------------------------------------------
# Level 2: the (mu, log tau) grid
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    """A rectangle in (mu, log tau)."""

    mu_lo: float
    mu_hi: float
    rho_lo: float
    rho_hi: float


def _log_joint_factory(
    y: FloatArray,
    n: FloatArray,
    log_prior_mu: LogDensity,
    log_prior_tau: LogDensity,
    n_nodes: int,
    tol: float | None,
) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """Return ``f(mu, rho) -> log p(y, mu, rho)`` on the tensor grid ``mu x rho``.

    ``rho = log tau``; the ``+ rho`` term is the Jacobian ``dtau / drho = tau``.
    """

    def log_joint(mu: FloatArray, rho: FloatArray) -> FloatArray:
        tau = np.exp(rho)
        prior = log_prior_mu(mu)[:, None] + (log_prior_tau(tau) + rho)[None, :]
        if y.size == 0:
            return prior
        loglik = log_marginal_likelihood(y, n, mu[:, None], tau[None, :], n_nodes, tol=tol)
        return loglik.sum(axis=-1) + prior

    return log_joint


def _initial_box(y: FloatArray, n: FloatArray) -> _Box:
    """A first guess: around the pooled log-odds, tau from 0.02 to 5 (widened as needed)."""
    centre = special.logit((y.sum() + 0.5) / (n.sum() + 1.0)) if y.size else 0.0
    return _Box(centre - 3.0, centre + 3.0, np.log(0.02), np.log(5.0))


def _axis_extent(
    nodes: FloatArray, keep: NDArray[np.bool_], lo: float, hi: float
) -> tuple[float, float, bool]:
    """New (lo, hi) along one axis: kept nodes padded by one cell; widen where they hit an edge.

    Returns the new bounds and whether the axis had to be widened.
    """
    idx = np.flatnonzero(keep)
    width = hi - lo
    widened = idx[0] == 0 or idx[-1] == nodes.size - 1
    new_lo = lo - width if idx[0] == 0 else nodes[idx[0] - 1]
    new_hi = hi + width if idx[-1] == nodes.size - 1 else nodes[idx[-1] + 1]
    return float(new_lo), float(new_hi), widened


def _zoomed_in(new: _Box, old: _Box) -> bool:
    """Whether either side of the box shrank below half its width (bulk not yet resolved)."""
    return (new.mu_hi - new.mu_lo) < 0.5 * (old.mu_hi - old.mu_lo) or (
        new.rho_hi - new.rho_lo
    ) < 0.5 * (old.rho_hi - old.rho_lo)


def _locate_bulk(log_joint: Callable[[FloatArray, FloatArray], FloatArray], box: _Box) -> _Box:
    """Find a box holding all the posterior mass (log density within ``_DROP`` of the maximum).

    Repeated passes of a coarse grid: widen a side whose edge is still inside the bulk, and zoom
    in while the bulk covers less than half the box (so a narrow posterior is resolved by
    several coarse nodes before its extent is trusted). Each pass is one vectorised evaluation.
    """
    for _ in range(_MAX_PASSES):
        mu = np.linspace(box.mu_lo, box.mu_hi, _N_COARSE)
        rho = np.linspace(box.rho_lo, box.rho_hi, _N_COARSE)
        lp = log_joint(mu, rho)
        if not np.isfinite(lp.max()):
            raise ValueError("the log posterior is not finite anywhere on the search grid")
        keep = lp >= lp.max() - _DROP
        mu_lo, mu_hi, wide_mu = _axis_extent(mu, keep.any(axis=1), box.mu_lo, box.mu_hi)
        rho_lo, rho_hi, wide_rho = _axis_extent(rho, keep.any(axis=0), box.rho_lo, box.rho_hi)
        new = _Box(mu_lo, mu_hi, rho_lo, rho_hi)
        if not (wide_mu or wide_rho or _zoomed_in(new, box)):
            return new
        box = new
    raise RuntimeError("could not locate the posterior bulk; is the posterior proper?")


def _edges_negligible(lp: FloatArray) -> tuple[bool, bool, bool, bool]:
    """Whether each edge (mu low, mu high, rho low, rho high) is ``_EDGE_DROP`` below the max."""
    cut = lp.max() - _EDGE_DROP
    return (
        bool(lp[0, :].max() < cut),
        bool(lp[-1, :].max() < cut),
        bool(lp[:, 0].max() < cut),
        bool(lp[:, -1].max() < cut),
    )


def _max_marginal_step(lp: FloatArray, axis: int) -> float:
    """Largest change of a marginal log density between neighbouring nodes, within its bulk.

    A proxy for resolution: a near-Gaussian marginal with SD ``s`` on spacing ``h`` steps by
    about ``5 h / s`` at 12 below its peak.
    """
    marginal = special.logsumexp(lp, axis=1 - axis)
    marginal = np.maximum(marginal, marginal.max() - 700.0)  # -inf (zero prior) -> finite
    bulk = marginal >= marginal.max() - _BULK_DROP
    steps = np.abs(np.diff(marginal))[bulk[1:] & bulk[:-1]]
    return float(steps.max()) if steps.size else 0.0


def _fine_grid(
    log_joint: Callable[[FloatArray, FloatArray], FloatArray], box: _Box, n_mu: int, n_rho: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Evaluate the log joint on the final grid.

    Widens any edge that still carries mass, and adds nodes along an axis whose marginal is
    under-resolved (e.g. the steep upper side of log tau for homogeneous studies).
    """
    for _ in range(_MAX_PASSES):
        mu = np.linspace(box.mu_lo, box.mu_hi, n_mu)
        rho = np.linspace(box.rho_lo, box.rho_hi, n_rho)
        lp = log_joint(mu, rho)
        ok = _edges_negligible(lp)
        refine_mu = _max_marginal_step(lp, 0) / _TARGET_STEP
        refine_rho = _max_marginal_step(lp, 1) / _TARGET_STEP
        more_mu = refine_mu > _MAX_STEP / _TARGET_STEP and n_mu < _MAX_NODES
        more_rho = refine_rho > _MAX_STEP / _TARGET_STEP and n_rho < _MAX_NODES
        if all(ok) and not (more_mu or more_rho):
            return mu, rho, lp
        if more_mu:
            n_mu = min(int(np.ceil(n_mu * refine_mu)), _MAX_NODES)
        if more_rho:
            n_rho = min(int(np.ceil(n_rho * refine_rho)), _MAX_NODES)
        pad_mu = 0.25 * (box.mu_hi - box.mu_lo)
        pad_rho = 0.25 * (box.rho_hi - box.rho_lo)
        box = _Box(
            box.mu_lo - (0.0 if ok[0] else pad_mu),
            box.mu_hi + (0.0 if ok[1] else pad_mu),
            box.rho_lo - (0.0 if ok[2] else pad_rho),
            box.rho_hi + (0.0 if ok[3] else pad_rho),
        )
    raise RuntimeError("posterior mass keeps reaching the grid edge; is the posterior proper?")


def posterior_grid(
    y: ArrayLike,
    n: ArrayLike,
    *,
    log_prior_mu: LogDensity | None = None,
    log_prior_tau: LogDensity | None = None,
    n_mu: int = 61,
    n_logtau: int = 41,
    n_nodes: int = 15,
    tol: float | None = None,
) -> ExactPosterior:
    """Joint posterior of ``(mu, log tau)`` on an automatically placed grid.

    The grid is placed in two steps: coarse 17 x 17 passes widen or zoom a box until it holds
    every point whose log density is within 22 of the maximum (padded by a coarse cell); then
    the final grid spans that box. It is widened if an edge is not at least 15 below the
    maximum (the mass left outside is then < ~1e-7), and refined along an axis whose marginal
    log density changes by more than 2.5 between neighbouring nodes within 12 of its peak
    (e.g. ``log tau`` for homogeneous studies, whose posterior has a long exponential lower
    tail and a steep upper side). ``n_mu`` and ``n_logtau`` are thus minimum sizes.

    Quadrature rule: the trapezoid rule on the uniform grid. For a smooth integrand that has
    decayed to ~0 at both ends it converges geometrically (it is then the discrete analogue of
    integrating over the whole line; Trefethen & Weideman, SIAM Rev. 2014), faster than a
    Gauss-Legendre rule of the same size here, and the equispaced nodes let the marginal
    densities be interpolated for accurate CDFs. Defaults: on the 14 revision studies the
    quantiles of mu, pooled, tau and predictive agree with a 121 x 81 grid to < 5e-6
    (relative) and the grid takes ~0.03 s.

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes. ``k = 0`` gives the prior.
    log_prior_mu : callable, optional
        Vectorised log density of ``mu``; default Normal(0, 2.5). Must be smooth where the
        posterior has mass.
    log_prior_tau : callable, optional
        Vectorised log density of ``tau`` on the ``tau`` scale (the grid adds the Jacobian);
        default HalfNormal(1).
    n_mu, n_logtau : int, optional
        Final grid sizes along ``mu`` and ``log tau``.
    n_nodes : int, optional
        Gauss-Hermite nodes per study (see :func:`log_marginal_likelihood`).
    tol : float or None, optional
        Passed to :func:`log_marginal_likelihood`. The default ``None`` (plain adaptive
        Gauss-Hermite) keeps the grid fast; its error exceeds ~1e-6 per study only for
        one-sided or very weak studies at ``tau`` >~ 2, where the posterior mass usually is
        negligible. Set e.g. ``1e-9`` for data with many zero-event studies and large ``tau``.

    Returns
    -------
    ExactPosterior
        Grid nodes, normalised weights and the log evidence.
    """
    y_arr, n_arr = (np.zeros(0), np.zeros(0)) if np.size(y) == 0 else _study_arrays(y, n)
    if min(n_mu, n_logtau) < 5:
        raise ValueError("n_mu and n_logtau must be >= 5")
    log_joint = _log_joint_factory(
        y_arr,
        n_arr,
        log_prior_mu or default_log_prior_mu,
        log_prior_tau or default_log_prior_tau,
        n_nodes,
        tol,
    )
    box = _locate_bulk(log_joint, _initial_box(y_arr, n_arr))
    mu, rho, lp = _fine_grid(log_joint, box, n_mu, n_logtau)
    cell = (mu[1] - mu[0]) * (rho[1] - rho[0])
    log_z = special.logsumexp(lp) + np.log(cell)  # trapezoid: edge half-weights are ~0 anyway
    return ExactPosterior(
        mu=mu, log_tau=rho, log_weights=lp + np.log(cell) - log_z, log_evidence=float(log_z)
    )


# ---------------------------------------------------------------------------------------------
# The posterior object
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SplineCDF:
    """CDFs of one or more densities known by their logs at common equispaced nodes.

    Each column's log density is interpolated by a cubic spline (near-quadratic for
    near-Gaussian densities, so the spline is very accurate) and its exponential integrated
    per sub-interval with 3-point Gauss-Legendre. Evaluations take points of shape ``(P,)``
    and return ``(P, m)``, one column per density.
    """

    nodes: FloatArray
    spline: CubicSpline
    edges: FloatArray  # sub-interval edges, _CDF_REFINE per node interval
    cdf: FloatArray  # (n_edges, m), normalised
    total: FloatArray  # (m,), integral of exp(spline)

    @classmethod
    def build(cls, nodes: FloatArray, log_density: FloatArray) -> _SplineCDF:
        """From log densities (unnormalised is fine), shape ``(n,)`` or ``(n, m)``."""
        log_d = np.asarray(log_density, dtype=float).reshape(nodes.size, -1)
        log_d = log_d - log_d.max(axis=0)  # each column peaks at 0
        # Keep the nodes where some column is within _SPLINE_DROP of its peak (the rest holds
        # < e^-60 of the mass): a hard prior bound (log density -> -inf) would make the spline
        # ring. A floor keeps any remaining -inf out of the spline.
        inside = np.flatnonzero((log_d >= -_SPLINE_DROP).any(axis=1))
        keep = slice(inside[0], inside[-1] + 1)
        nodes, log_d = nodes[keep], np.maximum(log_d[keep], -700.0)
        spline = CubicSpline(nodes, log_d, axis=0)
        edges = np.linspace(nodes[0], nodes[-1], (nodes.size - 1) * _CDF_REFINE + 1)
        pieces = _gauss_legendre_pieces(spline, edges[:-1], edges[1:])
        cum = np.vstack([np.zeros((1, log_d.shape[1])), np.cumsum(pieces, axis=0)])
        return cls(nodes, spline, edges, cum / cum[-1], cum[-1])

    def density(self, x: FloatArray) -> FloatArray:
        """Normalised densities at ``x``, shape ``(P, m)``."""
        return np.exp(self.spline(x)) / self.total

    def __call__(self, x: FloatArray) -> FloatArray:
        """CDFs at ``x``, shape ``(P, m)``; 0 below and 1 above the node range."""
        x = np.clip(x, self.nodes[0], self.nodes[-1])
        i = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, self.edges.size - 2)
        return self.cdf[i] + _gauss_legendre_pieces(self.spline, self.edges[i], x) / self.total

    def quantile(self, q: FloatArray) -> FloatArray:
        """Inverse of the first column's CDF: interpolation, then Newton steps on the CDF."""
        q_flat = np.ravel(q)
        x = np.interp(q_flat, self.cdf[:, 0], self.edges)
        for _ in range(3):
            resid, dens = self(x)[:, 0] - q_flat, self.density(x)[:, 0]
            # No step where the density vanishes (beyond a hard prior bound): x is already there.
            step = np.divide(resid, dens, out=np.zeros_like(resid), where=dens > 1e-280)
            x = np.clip(x - step, self.nodes[0], self.nodes[-1])
        return x.reshape(np.shape(q))


_GL_X, _GL_W = np.polynomial.legendre.leggauss(3)
_Z_NODES, _Z_LOG_W = _hermite_rule(16)  # for E over z ~ N(0, 1) in the predictive CDF
_Z_WEIGHTS = np.exp(_Z_LOG_W - _Z_NODES**2) / np.sqrt(np.pi)


def _gauss_legendre_pieces(spline: CubicSpline, a: FloatArray, b: FloatArray) -> FloatArray:
    """``∫_a^b exp(spline(x)) dx`` per interval (shape ``(P,)``) by 3-point Gauss-Legendre."""
    half = 0.5 * (np.asarray(b) - np.asarray(a))
    mid = 0.5 * (np.asarray(b) + np.asarray(a))
    values = np.exp(spline(mid[:, None] + half[:, None] * _GL_X))  # (P, 3, m)
    return half[:, None] * np.einsum("pgm,g->pm", values, _GL_W)


@dataclass(frozen=True, eq=False)
class ExactPosterior:
    """Posterior of ``(mu, log tau)`` on a tensor-product grid (from :func:`posterior_grid`).

    Attributes
    ----------
    mu : ndarray, shape (n_mu,)
        Equispaced ``mu`` nodes.
    log_tau : ndarray, shape (n_logtau,)
        Equispaced ``log tau`` nodes.
    log_weights : ndarray, shape (n_mu, n_logtau)
        Log of the normalised quadrature weights (``logsumexp == 0``): the posterior mass of
        each node's cell.
    log_evidence : float
        ``log p(y)``, the log marginal likelihood of the data under the prior.
    """

    mu: FloatArray
    log_tau: FloatArray
    log_weights: FloatArray
    log_evidence: float

    @cached_property
    def weights(self) -> FloatArray:
        """Normalised weights, shape ``(n_mu, n_logtau)``, summing to 1."""
        return np.exp(self.log_weights)

    @property
    def tau(self) -> FloatArray:
        """``tau`` at the ``log_tau`` nodes."""
        return np.exp(self.log_tau)

    @cached_property
    def _mu_cdf(self) -> _SplineCDF:
        return _SplineCDF.build(self.mu, special.logsumexp(self.log_weights, axis=1))

    @cached_property
    def _log_tau_cdf(self) -> _SplineCDF:
        return _SplineCDF.build(self.log_tau, special.logsumexp(self.log_weights, axis=0))

    @cached_property
    def _narrow(self) -> NDArray[np.bool_]:
        """``log tau`` slices with ``tau`` below the ``mu`` spacing.

        There ``Phi((x - mu) / tau)`` is too sharp for the trapezoid rule over the ``mu`` nodes
        (a staircase in ``x``), so those slices are handled through their own ``mu`` CDFs.
        """
        return self.tau < self.mu[1] - self.mu[0]

    @cached_property
    def _mixture(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Non-negligible (weight, mu, tau) of the wide slices, for the Gaussian mixture."""
        w = np.where(self._narrow[None, :], 0.0, self.weights)
        keep = w > 1e-17 * self.weights.max()
        mu, tau = np.meshgrid(self.mu, self.tau, indexing="ij")
        return w[keep], mu[keep], tau[keep]

    @cached_property
    def _narrow_slices(self) -> tuple[FloatArray, FloatArray, _SplineCDF] | None:
        """Mass, ``tau`` and conditional ``mu`` CDF of each narrow slice; None if none."""
        if not self._narrow.any():
            return None
        cols = self._narrow
        mass = self.weights[:, cols].sum(axis=0)
        return mass, self.tau[cols], _SplineCDF.build(self.mu, self.log_weights[:, cols])

    def predictive_cdf(self, logit_p: ArrayLike) -> FloatArray:
        """CDF of a new study's log-odds ``theta_new = mu + tau z``.

        For a ``log tau`` slice with ``tau`` at least the ``mu`` spacing this is the trapezoid
        sum ``sum_i w_i Phi((x - mu_i) / tau)``; for narrower slices it is
        ``E_z[G(x - tau z)]`` with ``G`` the slice's conditional CDF of ``mu`` (Gauss-Hermite
        over ``z``), which stays exact as ``tau -> 0``.

        Parameters
        ----------
        logit_p : array_like
            Log-odds at which to evaluate the CDF.

        Returns
        -------
        ndarray
            Same shape as ``logit_p``.
        """
        x = np.atleast_1d(np.asarray(logit_p, dtype=float)).ravel()
        w, mu, tau = self._mixture
        out = special.ndtr((x[:, None] - mu) / tau) @ w
        if self._narrow_slices is not None:
            mass, tau_n, cdf = self._narrow_slices
            m = tau_n.size
            points = x[:, None, None] - np.sqrt(2.0) * tau_n[:, None] * _Z_NODES  # (P, m, K)
            at = cdf(points.ravel()).reshape(x.size, m, _Z_NODES.size, m)
            own = at[:, np.arange(m), :, np.arange(m)]  # slice j at its own points: (m, P, K)
            out = out + np.einsum("jpk,k,j->p", own, _Z_WEIGHTS, mass)
        return out.reshape(np.shape(logit_p))

    def _predictive_quantile(self, q: float) -> float:
        """Root of ``predictive_cdf(x) = q`` (log-odds scale), bracketed then Brent."""
        mu, tau = np.meshgrid(self.mu, self.tau, indexing="ij")
        centre = float(np.sum(self.weights * mu))
        spread = float(np.sqrt(np.sum(self.weights * ((mu - centre) ** 2 + tau**2))))
        lo, hi = centre - 5.0 * spread, centre + 5.0 * spread
        while self.predictive_cdf(lo) > q:
            lo -= 5.0 * spread
        while self.predictive_cdf(hi) < q:
            hi += 5.0 * spread
        return optimize.brentq(lambda x: float(self.predictive_cdf(x)) - q, lo, hi, xtol=1e-13)

    def quantile(self, name: QuantityName, q: ArrayLike) -> float | FloatArray:
        """Posterior quantiles.

        Parameters
        ----------
        name : {"mu", "tau", "pooled", "predictive"}
            ``pooled = expit(mu)``; ``predictive = expit(mu + tau z)``, ``z ~ N(0, 1)``: the
            proportion in a new study.
        q : float or array_like
            Probabilities in (0, 1).

        Returns
        -------
        float or ndarray
            A float for scalar ``q``, else an array of ``q``'s shape.
        """
        q_arr = np.asarray(q, dtype=float)
        if np.any((q_arr <= 0.0) | (q_arr >= 1.0)):
            raise ValueError("quantile probabilities must lie strictly between 0 and 1")
        if name in ("mu", "pooled"):
            out = self._mu_cdf.quantile(q_arr)
            out = special.expit(out) if name == "pooled" else out
        elif name == "tau":
            out = np.exp(self._log_tau_cdf.quantile(q_arr))
        elif name == "predictive":
            flat = [self._predictive_quantile(float(v)) for v in q_arr.ravel()]
            out = special.expit(np.reshape(flat, q_arr.shape))
        else:
            raise ValueError(f"unknown quantity {name!r}; use mu, tau, pooled or predictive")
        return float(out) if np.ndim(out) == 0 else out

    def mean(self, name: Literal["mu", "tau", "pooled"]) -> float:
        """Posterior mean of ``mu``, ``tau`` or ``pooled = expit(mu)``.

        Parameters
        ----------
        name : {"mu", "tau", "pooled"}
            The quantity.

        Returns
        -------
        float
            The weighted mean over the grid (trapezoid rule).
        """
        values = {
            "mu": lambda: self.mu[:, None],
            "tau": lambda: self.tau[None, :],
            "pooled": lambda: special.expit(self.mu)[:, None],
        }
        if name not in values:
            raise ValueError(f"unknown quantity {name!r}; use mu, tau or pooled")
        return float(np.sum(self.weights * values[name]()))


# ---------------------------------------------------------------------------------------------
# Leave-one-study-out
# ---------------------------------------------------------------------------------------------


def leave_one_out_elpd(
    y: ArrayLike,
    n: ArrayLike,
    *,
    log_prior_mu: LogDensity | None = None,
    log_prior_tau: LogDensity | None = None,
    n_mu: int = 61,
    n_logtau: int = 41,
    n_nodes: int = 15,
    tol: float | None = None,
) -> FloatArray:
    """Exact leave-one-study-out log predictive densities.

    For each study ``i``, ``log p(y_i | y_{-i}) = log ∫ p(y_i | mu, tau) p(mu, tau | y_{-i})``,
    with ``theta_i`` integrated out of ``p(y_i | mu, tau)`` (checked to 1e-9, see
    :func:`log_marginal_likelihood`) and the posterior given the other studies on its own
    :func:`posterior_grid`. Equals ``log p(y) - log p(y_{-i})``, which the tests use as a check.

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes.
    log_prior_mu, log_prior_tau, n_mu, n_logtau, n_nodes, tol
        Passed to :func:`posterior_grid`.

    Returns
    -------
    ndarray, shape (k,)
        ``log p(y_i | y_{-i})``; their sum is the exact LOO elpd.
    """
    y_arr, n_arr = _study_arrays(y, n)
    out = np.empty(y_arr.size)
    for i in range(y_arr.size):
        rest = np.arange(y_arr.size) != i
        post = posterior_grid(
            y_arr[rest],
            n_arr[rest],
            log_prior_mu=log_prior_mu,
            log_prior_tau=log_prior_tau,
            n_mu=n_mu,
            n_logtau=n_logtau,
            n_nodes=n_nodes,
            tol=tol,
        )
        loglik_i = log_marginal_likelihood(
            y_arr[i : i + 1], n_arr[i : i + 1], post.mu[:, None], post.tau[None, :], n_nodes
        )[..., 0]
        out[i] = special.logsumexp(post.log_weights + loglik_i)
    return out


# ---------------------------------------------------------------------------------------------
# Beta-binomial: closed-form marginal on the same (mu, log phi) grid machinery
# ---------------------------------------------------------------------------------------------
#
#   y_i ~ BetaBinomial(n_i, p phi, (1 - p) phi),  logit p = mu ~ log_prior_mu,
#   phi ~ log_prior_phi (default Exponential(lam=0.01), as in bayes_va.config)
#
# There is no random effect to integrate out: p_i ~ Beta(p phi, (1 - p) phi) integrates in
# closed form, so level 1 above is replaced by log-beta-function ratios (differenced through
# Stirling's series, exact as phi -> inf). The grid placement, trapezoid rule and spline CDFs
# are those of the logit-normal model (``_grid_posterior``); the predictive CDF is a mixture
# of Beta CDFs (``ExactBetaBinomialPosterior.predictive_cdf``).

__all__ += [  # extended here so that the beta-binomial block stays self-contained
    "ExactBetaBinomialPosterior",
    "default_log_prior_phi",
    "log_marginal_likelihood_beta_binomial",
    "posterior_grid_beta_binomial",
]

_PRIOR_PHI = stats.expon(scale=1.0 / 0.01)
_BB_NARROW = 2.0  # predictive: slices whose logit-scale SD is below 2 mu spacings are "narrow"
_BB_WINDOW = 10.0  # half-width of the narrow-slice window, in logit-scale SDs
_GL6_X, _GL6_W = np.polynomial.legendre.leggauss(6)
_BB_PANELS = 16  # Gauss-Legendre panels across a narrow-slice window


def default_log_prior_phi(phi: FloatArray) -> FloatArray:
    """Log density of the default prior on ``phi``: Exponential(lam=0.01) (mean 100).

    Parameters
    ----------
    phi : ndarray
        Values of the beta-binomial concentration (``phi > 0``).

    Returns
    -------
    ndarray
        ``log Exponential(phi | 0.01)``, same shape as ``phi``.
    """
    return _PRIOR_PHI.logpdf(phi)


def _beta_shapes(mu: FloatArray, phi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(p phi, (1 - p) phi)`` with ``p = expit(mu)``; ``expit(-mu)`` keeps ``1 - p`` exact."""
    return special.expit(mu) * phi, special.expit(-mu) * phi


def _log_rising(x: FloatArray, k: FloatArray) -> FloatArray:
    """``log Γ(x + k) - log Γ(x)`` for ``x > 0``, ``k >= 0``, without cancellation at large ``x``.

    For ``x >= 10`` Stirling's series is differenced analytically,
    ``(x - 1/2) log1p(k/x) + k log(x + k) - k + c(x + k) - c(x)`` with
    ``c(z) = 1/(12 z) - 1/(360 z^3) + 1/(1260 z^5) - 1/(1680 z^7)`` (truncation < 1e-12), so the
    rounding error stays ~``k log(x) * 1e-16`` instead of growing like ``x * 1e-16`` as the
    plain ``gammaln`` difference does. Below 10 the plain difference is exact enough.
    """
    big = x >= 10.0
    xb = np.where(big, x, 10.0)

    def c(z: FloatArray) -> FloatArray:
        r = 1.0 / (z * z)
        return (1.0 / 12.0 - r * (1.0 / 360.0 - r * (1.0 / 1260.0 - r / 1680.0))) / z

    stirling = (xb - 0.5) * np.log1p(k / xb) + k * np.log(xb + k) - k + (c(xb + k) - c(xb))
    xs = np.where(big, 1.0, x)
    plain = special.gammaln(xs + k) - special.gammaln(xs)
    return np.where(big, stirling, plain)


def _log_bb_kernel(
    a: FloatArray, b: FloatArray, phi: FloatArray, y: FloatArray, n: FloatArray
) -> FloatArray:
    """``log B(y + a, n - y + b) - log B(a, b)`` (the beta-binomial likelihood less log C).

    ``phi = a + b`` is passed separately: on a grid it need not be broadcast over ``mu``.
    """
    return _log_rising(a, y) + _log_rising(b, n - y) - _log_rising(phi, n)


def log_marginal_likelihood_beta_binomial(
    y: ArrayLike, n: ArrayLike, mu: ArrayLike, phi: ArrayLike
) -> FloatArray:
    """Per-study beta-binomial log likelihood (the study proportion integrated out exactly).

    ``log C(n_i, y_i) + log B(y_i + a, n_i - y_i + b) - log B(a, b)`` with
    ``a = expit(mu) phi`` and ``b = expit(-mu) phi``: equal to
    ``scipy.stats.betabinom.logpmf(y, n, a, b)``. The two ``log B`` terms are differenced
    through Stirling's series (``_log_rising``), so the result stays accurate to ~1e-9 as
    ``phi -> inf`` (where it tends to the binomial log likelihood), whereas the plain
    difference loses ~``phi * 1e-14`` (1e-4 at ``phi = 1e10``).

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes, ``0 <= y <= n``.
    mu, phi : array_like
        Logit of the mean proportion and the concentration (``phi > 0``); broadcast together
        to shape ``S``.

    Returns
    -------
    ndarray, shape S + (k,)
        ``log p(y_i | n_i, mu, phi)``.

    Examples
    --------
    >>> log_marginal_likelihood_beta_binomial([14, 12130], [843, 80864], -2.85, 29.0).round(4)
    array([ -4.21  , -11.3229])
    """
    y_arr, n_arr = _study_arrays(y, n)
    mu_b, phi_b = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(phi, dtype=float))
    if np.any(~(phi_b > 0.0)):
        raise ValueError("phi must be > 0")
    a, b = _beta_shapes(mu_b[..., None], phi_b[..., None])
    kernel = _log_bb_kernel(a, b, phi_b[..., None], y_arr, n_arr)
    return _log_binom_coef(y_arr, n_arr) + kernel


def _log_joint_beta_binomial(
    y: FloatArray, n: FloatArray, log_prior_mu: LogDensity, log_prior_phi: LogDensity
) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """Return ``f(mu, rho) -> log p(y, mu, rho)`` on the tensor grid, ``rho = log phi``.

    The ``+ rho`` term is the Jacobian ``dphi / drho = phi``.
    """
    log_coef = float(_log_binom_coef(y, n).sum())

    def log_joint(mu: FloatArray, rho: FloatArray) -> FloatArray:
        phi = np.exp(rho)
        prior = log_prior_mu(mu)[:, None] + (log_prior_phi(phi) + rho)[None, :]
        if y.size == 0:
            return prior
        a, b = _beta_shapes(mu[:, None, None], phi[None, :, None])
        kernel = _log_bb_kernel(a, b, phi[None, :, None], y, n)
        return log_coef + kernel.sum(axis=-1) + prior

    return log_joint


def _grid_posterior(
    log_joint: Callable[[FloatArray, FloatArray], FloatArray], box: _Box, n_mu: int, n_rho: int
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Place the grid for any 2-D log joint of ``(mu, rho)`` and normalise it.

    The generic part of :func:`posterior_grid`: locate the bulk from ``box``, evaluate on the
    final (widened, refined) grid, and apply the trapezoid rule.

    Parameters
    ----------
    log_joint : callable
        ``f(mu, rho) -> log p(y, mu, rho)`` of shape ``(mu.size, rho.size)``.
    box : _Box
        A first guess of where the mass lies (widened or zoomed as needed).
    n_mu, n_rho : int
        Minimum final grid sizes.

    Returns
    -------
    mu, rho : ndarray
        Equispaced nodes.
    log_weights : ndarray, shape (mu.size, rho.size)
        Log normalised cell masses (``logsumexp == 0``).
    log_evidence : float
        Log of the integral of ``exp(log_joint)``.
    """
    if min(n_mu, n_rho) < 5:
        raise ValueError("grid sizes must be >= 5")
    box = _locate_bulk(log_joint, box)
    mu, rho, lp = _fine_grid(log_joint, box, n_mu, n_rho)
    log_cell = np.log((mu[1] - mu[0]) * (rho[1] - rho[0]))
    log_z = float(special.logsumexp(lp) + log_cell)
    return mu, rho, lp + log_cell - log_z, log_z


def posterior_grid_beta_binomial(
    y: ArrayLike,
    n: ArrayLike,
    *,
    log_prior_mu: LogDensity | None = None,
    log_prior_phi: LogDensity | None = None,
    n_mu: int = 61,
    n_logphi: int = 41,
) -> ExactBetaBinomialPosterior:
    """Joint posterior of ``(mu, log phi)`` of the beta-binomial model on an automatic grid.

    Model: ``y_i ~ BetaBinomial(n_i, p phi, (1 - p) phi)``, ``logit p = mu``. The marginal
    likelihood is closed form (:func:`log_marginal_likelihood_beta_binomial`); the grid is
    placed, widened and refined exactly as in :func:`posterior_grid` (``log phi`` takes the
    place of ``log tau``), starting from ``mu`` = pooled logit ± 3 and ``phi`` in (1, 1000).

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes. ``k = 0`` gives the prior.
    log_prior_mu : callable, optional
        Vectorised log density of ``mu``; default Normal(0, 2.5).
    log_prior_phi : callable, optional
        Vectorised log density of ``phi`` on the ``phi`` scale (the grid adds the Jacobian);
        default Exponential(lam=0.01), the config default.
    n_mu, n_logphi : int, optional
        Minimum final grid sizes along ``mu`` and ``log phi``.

    Returns
    -------
    ExactBetaBinomialPosterior
        Grid nodes, normalised weights and the log evidence.

    Examples
    --------
    >>> post = posterior_grid_beta_binomial([14, 142, 62], [843, 1395, 1932])
    >>> round(post.quantile("pooled", 0.5), 3)
    0.052
    """
    y_arr, n_arr = (np.zeros(0), np.zeros(0)) if np.size(y) == 0 else _study_arrays(y, n)
    log_joint = _log_joint_beta_binomial(
        y_arr, n_arr, log_prior_mu or default_log_prior_mu, log_prior_phi or default_log_prior_phi
    )
    centre = float(_initial_box(y_arr, n_arr).mu_lo + 3.0)
    box = _Box(centre - 3.0, centre + 3.0, 0.0, np.log(1000.0))
    mu, rho, log_w, log_z = _grid_posterior(log_joint, box, n_mu, n_logphi)
    return ExactBetaBinomialPosterior(mu=mu, log_phi=rho, log_weights=log_w, log_evidence=log_z)


def _logit_beta_sd(a: FloatArray, b: FloatArray) -> FloatArray:
    """SD of ``logit X`` for ``X ~ Beta(a, b)``: ``sqrt(trigamma(a) + trigamma(b))``."""
    return np.sqrt(special.polygamma(1, a) + special.polygamma(1, b))


@dataclass(frozen=True, eq=False)
class ExactBetaBinomialPosterior:
    """Posterior of ``(mu, log phi)`` of the beta-binomial model on a tensor-product grid.

    From :func:`posterior_grid_beta_binomial`; the counterpart of :class:`ExactPosterior`.

    Attributes
    ----------
    mu : ndarray, shape (n_mu,)
        Equispaced ``mu`` (logit mean proportion) nodes.
    log_phi : ndarray, shape (n_logphi,)
        Equispaced ``log phi`` nodes.
    log_weights : ndarray, shape (n_mu, n_logphi)
        Log of the normalised quadrature weights (``logsumexp == 0``).
    log_evidence : float
        ``log p(y)``, the log marginal likelihood of the data under the prior.
    """

    mu: FloatArray
    log_phi: FloatArray
    log_weights: FloatArray
    log_evidence: float

    @cached_property
    def weights(self) -> FloatArray:
        """Normalised weights, shape ``(n_mu, n_logphi)``, summing to 1."""
        return np.exp(self.log_weights)

    @property
    def phi(self) -> FloatArray:
        """``phi`` at the ``log_phi`` nodes."""
        return np.exp(self.log_phi)

    @cached_property
    def _mu_cdf(self) -> _SplineCDF:
        return _SplineCDF.build(self.mu, special.logsumexp(self.log_weights, axis=1))

    @cached_property
    def _log_phi_cdf(self) -> _SplineCDF:
        return _SplineCDF.build(self.log_phi, special.logsumexp(self.log_weights, axis=0))

    @cached_property
    def _kept(self) -> NDArray[np.bool_]:
        """Nodes carrying non-negligible mass (the rest hold < 1e-13 of it in all)."""
        return self.weights > 1e-17 * self.weights.max()

    @cached_property
    def _narrow(self) -> NDArray[np.bool_]:
        """``log phi`` slices where ``p_new | mu, phi`` is too narrow for the ``mu`` spacing.

        For large ``phi`` the logit-scale SD of ``p_new`` given ``(mu, phi)`` falls below the
        spacing of the ``mu`` nodes, and the trapezoid sum of its CDF over them becomes a
        staircase; those slices are integrated through their own ``mu`` density instead.
        """
        a, b = _beta_shapes(self.mu[:, None], self.phi[None, :])
        sd = np.where(self._kept, _logit_beta_sd(a, b), np.inf)
        return sd.min(axis=0) < _BB_NARROW * (self.mu[1] - self.mu[0])

    @cached_property
    def _mixture(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Weights and Beta shapes ``(w, a, b)`` of the kept nodes of the wide slices."""
        keep = self._kept & ~self._narrow[None, :]
        a, b = _beta_shapes(self.mu[:, None], self.phi[None, :])
        return self.weights[keep], a[keep], b[keep]

    @cached_property
    def _narrow_slices(self) -> tuple[FloatArray, FloatArray, _SplineCDF] | None:
        """Mass, ``phi`` and conditional ``mu`` density/CDF of each narrow slice; None if none."""
        if not self._narrow.any():
            return None
        cols = self._narrow
        mass = self.weights[:, cols].sum(axis=0)
        return mass, self.phi[cols], _SplineCDF.build(self.mu, self.log_weights[:, cols])

    def _narrow_cdf(self, t: FloatArray) -> FloatArray:
        """Sum over the narrow slices of ``mass_j ∫ p(mu | phi_j) F(expit t | mu, phi_j) dmu``.

        ``F(x | mu, phi)``, the Beta CDF, falls from 1 to 0 as ``mu`` crosses ``t`` within a
        few logit-scale SDs ``s``: below the window ``t ± 10 s`` (clipped to the slice's
        nodes) it is 1, which contributes the slice's ``mu`` CDF at the window's lower end;
        inside, a composite Gauss-Legendre rule (16 panels of 6 nodes) integrates the spline
        density times ``F``.
        """
        assert self._narrow_slices is not None
        mass, phi, cdf = self._narrow_slices
        m = phi.size
        a_t, b_t = _beta_shapes(t[:, None], phi[None, :])
        half = _BB_WINDOW * _logit_beta_sd(np.maximum(a_t, 1e-300), np.maximum(b_t, 1e-300))
        # Clipped to the slice's nodes: beyond them its mu density is 0, so below the window
        # F = 1 still holds or there is no mass (G = 0), above it F = 0 or no mass.
        lo = np.clip(t[:, None] - half, cdf.nodes[0], cdf.nodes[-1])  # (P, m)
        hi = np.clip(t[:, None] + half, cdf.nodes[0], cdf.nodes[-1])
        width = (hi - lo) / _BB_PANELS
        offsets = (np.arange(_BB_PANELS)[:, None] + 0.5 * (1.0 + _GL6_X)).ravel()  # (G,)
        nodes = lo[..., None] + width[..., None] * offsets  # (P, m, G)
        weights = np.tile(0.5 * _GL6_W, _BB_PANELS)  # (G,), per unit panel width
        cols = np.arange(m)
        below = cdf(lo.ravel()).reshape(t.size, m, m)[:, cols, cols]  # own column: (P, m)
        dens = cdf.density(nodes.ravel()).reshape(t.size, m, -1, m)
        dens = np.moveaxis(dens, -1, 1)[:, cols, cols, :]  # (P, m, G)
        a, b = _beta_shapes(nodes, phi[None, :, None])
        f = special.betainc(a, b, special.expit(t)[:, None, None])
        window = width * np.einsum("pmg,g->pm", dens * f, weights)
        return (below + window) @ mass

    def predictive_cdf(self, proportion: ArrayLike) -> FloatArray:
        """CDF of a new study's proportion ``p_new ~ Beta(p phi, (1 - p) phi)``.

        The trapezoid sum ``sum_ij w_ij I_x(a_ij, b_ij)`` (regularised incomplete beta) over
        the grid, except for ``log phi`` slices where ``p_new`` given ``(mu, phi)`` is narrower
        than two ``mu`` spacings on the logit scale; those go through their conditional ``mu``
        density (see ``_narrow_cdf``), which stays exact as ``phi -> inf``.

        Parameters
        ----------
        proportion : array_like
            Values in [0, 1].

        Returns
        -------
        ndarray
            Same shape as ``proportion``.
        """
        x = np.atleast_1d(np.asarray(proportion, dtype=float)).ravel()
        if np.any((x < 0.0) | (x > 1.0)):
            raise ValueError("proportions must lie in [0, 1]")
        w, a, b = self._mixture
        out = special.betainc(a, b, x[:, None]) @ w
        if self._narrow_slices is not None:
            inner = (x > 0.0) & (x < 1.0)
            if inner.any():
                out[inner] += self._narrow_cdf(special.logit(x[inner]))
            out[x >= 1.0] += self._narrow_slices[0].sum()
        return out.reshape(np.shape(proportion))

    def _predictive_quantile(self, q: float) -> float:
        """Root of ``predictive_cdf(expit t) = q`` in ``t`` (log-odds), bracketed then Brent."""
        mu, phi = np.meshgrid(self.mu, self.phi, indexing="ij")
        a, b = _beta_shapes(mu, phi)
        centre = float(np.sum(self.weights * mu))
        sd = np.minimum(_logit_beta_sd(a, b), 5.0)  # huge for tiny a or b; the bracket grows
        var = np.where(self._kept, (mu - centre) ** 2 + sd**2, 0.0)
        spread = float(np.sqrt(np.sum(self.weights * var)))

        def excess(t: float) -> float:
            return float(self.predictive_cdf(special.expit(t))) - q

        lo, hi = centre - 5.0 * spread, centre + 5.0 * spread
        while excess(lo) > 0.0:
            lo -= 5.0 * spread
        while excess(hi) < 0.0:
            hi += 5.0 * spread
        return optimize.brentq(excess, lo, hi, xtol=1e-12)

    def quantile(
        self, name: Literal["mu", "phi", "pooled", "predictive"], q: ArrayLike
    ) -> float | FloatArray:
        """Posterior quantiles.

        Parameters
        ----------
        name : {"mu", "phi", "pooled", "predictive"}
            ``pooled = expit(mu)``; ``predictive`` is ``p_new ~ Beta(p phi, (1 - p) phi)``,
            the proportion in a new study (inverted mixture CDF).
        q : float or array_like
            Probabilities in (0, 1).

        Returns
        -------
        float or ndarray
            A float for scalar ``q``, else an array of ``q``'s shape.
        """
        q_arr = np.asarray(q, dtype=float)
        if np.any((q_arr <= 0.0) | (q_arr >= 1.0)):
            raise ValueError("quantile probabilities must lie strictly between 0 and 1")
        if name in ("mu", "pooled"):
            out = self._mu_cdf.quantile(q_arr)
            out = special.expit(out) if name == "pooled" else out
        elif name == "phi":
            out = np.exp(self._log_phi_cdf.quantile(q_arr))
        elif name == "predictive":
            flat = [self._predictive_quantile(float(v)) for v in q_arr.ravel()]
            out = special.expit(np.reshape(flat, q_arr.shape))
        else:
            raise ValueError(f"unknown quantity {name!r}; use mu, phi, pooled or predictive")
        return float(out) if np.ndim(out) == 0 else out

    def mean(self, name: Literal["mu", "phi", "pooled", "predictive"]) -> float:
        """Posterior mean of ``mu``, ``phi``, ``pooled`` or ``predictive``.

        Parameters
        ----------
        name : {"mu", "phi", "pooled", "predictive"}
            The quantity; ``E[predictive] = E[pooled]`` (the Beta has mean ``p``).

        Returns
        -------
        float
            The weighted mean over the grid (trapezoid rule).
        """
        values = {
            "mu": lambda: self.mu[:, None],
            "phi": lambda: self.phi[None, :],
            "pooled": lambda: special.expit(self.mu)[:, None],
            "predictive": lambda: special.expit(self.mu)[:, None],
        }
        if name not in values:
            raise ValueError(f"unknown quantity {name!r}; use mu, phi, pooled or predictive")
        return float(np.sum(self.weights * values[name]()))
