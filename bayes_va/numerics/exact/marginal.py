"""Level 1: integrating each study's random effect out (adaptive Gauss-Hermite).

The per-study marginal likelihood ``log ∫ Binom(y_i | n_i, expit theta) N(theta | mu, tau)``
by mode-centred, curvature-scaled Gauss-Hermite quadrature (lme4's ``nAGQ``), checked against
a smaller rule and replaced, where they disagree, by a trapezoid rule refined to tolerance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from bayes_va.numerics.exact.common import FloatArray, _study_arrays, log_binom_coef

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
        log_const = log_binom_coef(y, n) - np.log(tau) - _LOG_SQRT_2PI
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
        """Return the elements where ``mask`` (shape ``B``) is true, as a flat integrand."""
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
    """Test ``|a - b| <= tol``, absolutely near 0 and relatively for large ``|a|`` (log scale)."""
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
        fixed = log_binom_coef(y_arr, n_arr) + _log_binom_kernel(mu_b[..., None], y_arr, n_arr)
        out = np.where(at_zero[..., None], fixed, out)
    return out
