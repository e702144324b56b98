"""Level 2 for the logit-normal model: a (z, log tau) grid whitened along mu in each tau slice.

On a tensor grid in ``(mu, log tau)`` the conditional posterior of ``mu`` given ``tau`` can be
far narrower at small ``tau`` than the marginal of ``mu`` (a few studies with n ~ 1e5 pin
``mu`` to ±0.005 when ``tau`` -> 0, while at ``tau`` ~ 1 it is ±1 wide): a grid fine enough
for the narrow ridge needs thousands of ``mu`` nodes, and a coarser one under-resolves it, or
misses it altogether while the grid is being placed. Here each ``log tau`` slice gets its own
affine map ``mu = m(rho) + s(rho) z`` (``rho = log tau``), with ``m`` and ``s`` a cheap
normal approximation to the slice's conditional mean and SD (see
:func:`bayes_va.numerics.exact.logit_normal._whitening`), corrected by the moments measured on a
coarse pass (:func:`_measured_whitening`), so that the conditional of ``z`` is O(1) wide in every
slice and one tensor grid in ``(z, rho)`` resolves them all. The Jacobian ``s(rho)`` enters the
log density.

The integral over ``mu`` is then done slice by slice (each slice's trapezoid sum over ``z``
is the exact slice mass ``∫ p(mu, rho | y) dmu`` whatever ``m`` and ``s`` are), and the
``rho`` integral by the trapezoid rule over the slices, equispaced in a variable ``u`` with
``rho = rho(u)`` thinning out a long exponential lower tail (:class:`_TailMap`). Resolution
checks:

- along ``z``, on each slice's *conditional* log density (not a marginal);
- along ``u``, on the marginal log density of ``u``; on the marginal CDF of ``u`` (the full
  grid against every other node, :func:`_cdf_change`); and on how far the conditional of
  ``mu`` moves between neighbouring slices (in units of its SD), which the trapezoid sum of
  the slices' conditional CDFs (the marginal CDF of ``mu``) must resolve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

from bayes_va.numerics.exact.common import FloatArray
from bayes_va.numerics.exact.grid import (
    _BULK_DROP,
    _DROP,
    _MAX_PASSES,
    _MAX_STEP,
    _TARGET_STEP,
    _Box,
    _edges_negligible,
    _locate,
    _max_marginal_step,
    _SplineCDF,
)

Whitening = Callable[[FloatArray], tuple[FloatArray, FloatArray]]
"""``rho -> (m, s)``: the centre and scale of ``mu`` in each slice, ``mu = m + s z``."""

# Conditional movement (see _max_shift): refine log tau where the conditional of mu moves by
# more than 1 SD between neighbouring slices, aiming at 0.6 SD. For a conditional CDF moving
# through x at a steady rate the trapezoid error in rho is then ~2 exp(-2 pi^2 / 0.6^2) (~0).
_MAX_SHIFT = 1.0
_TARGET_SHIFT = 0.6
# Marginal of u: steps of its log density as along z (see grid._max_marginal_step), and the
# CDF may change by at most 1e-5 when every other node is dropped (see _cdf_change; the full
# grid's error is then ~1e-5 / 16).
_MAX_STEP_U = _MAX_STEP
_TARGET_STEP_U = _TARGET_STEP
_MAX_CDF_CHANGE = 1e-5
_MAX_NODES_Z = 401
_MAX_NODES_RHO = 801
# The lower tail of log tau (see _TailMap): thinned out below the point 4 under the peak of
# the marginal, with lam = 1, if the grid reaches more than 4 below that point.
_TAIL_LAM = 1.0
_TAIL_DROP = 4.0
_TAIL_MIN = 4.0
_Z_BOX = 6.0  # initial z range: ±6 (the whitened conditional is ~N(0, 1) when m, s are good)


@dataclass(frozen=True)
class _TailMap:
    """``rho = c + u - lam exp(-u / lam)``: a log tau axis that thins out in the lower tail.

    The grid is equispaced in ``u``. Above ``c`` (for ``u`` >> ``lam``) ``rho`` ~ ``c + u``;
    below, the spacing in ``rho`` grows by ``e`` every ``lam`` of ``u``. Where ``tau`` is far
    below every study's sampling SD the likelihood no longer depends on ``tau``, and the
    posterior density of ``log tau`` falls only like ``tau`` (from a prior with a density at 0):
    an exponential tail often 20 long that a uniform grid must cover at the resolution of the
    bulk (hundreds of nodes for large k). Here it takes a few ``lam`` of ``u``. ``lam = 0`` is
    the identity (``rho = u``), used when there is no long tail. The map is smooth, so the
    trapezoid rule in ``u`` keeps its geometric convergence; the Jacobian ``1 + exp(-u / lam)``
    enters the log density.
    """

    c: float = 0.0
    lam: float = 0.0

    def rho(self, u: FloatArray | float) -> FloatArray:
        """Map grid coordinates ``u`` to ``log tau`` (a 0-d array for a scalar ``u``)."""
        u = np.asarray(u, dtype=float)
        return u if self.lam == 0.0 else self.c + u - self.lam * np.exp(-u / self.lam)

    def log_jacobian(self, u: FloatArray) -> FloatArray:
        """Return ``log(d rho / d u)`` at ``u``."""
        u = np.asarray(u, dtype=float)
        return np.zeros_like(u) if self.lam == 0.0 else np.logaddexp(0.0, -u / self.lam)

    def u(self, rho: float) -> float:
        """Invert :meth:`rho` for a scalar (bracketed root: ``rho(u)`` is increasing)."""
        if self.lam == 0.0:
            return float(rho)
        lo, hi = min(rho - self.c, 0.0) - self.lam, max(rho - self.c, 0.0) + self.lam
        while float(self.rho(lo)) > rho:  # rho(u) <= c + u, so this ends at once
            lo -= self.lam
        return float(optimize.brentq(lambda v: float(self.rho(v)) - rho, lo, hi, xtol=1e-14))


def _tail_map(rho: FloatArray, lp: FloatArray, rho_lo: float) -> _TailMap:
    """Build the :class:`_TailMap` for a coarse evaluation ``lp`` on ``z x rho`` (or the identity).

    ``c`` is the lowest coarse ``rho`` whose marginal log density is within ``_TAIL_DROP`` of
    the peak (scanning down from the peak), and the map is used only if the grid reaches more
    than ``_TAIL_MIN`` below it. The conditional of ``mu`` may still move below ``c`` (as
    ``tau`` falls through the big studies' sampling SDs); the resolution checks in ``u`` see
    that like any other feature.
    """
    marginal = special.logsumexp(_floored(lp), axis=0)
    peak = int(np.argmax(marginal))
    low = peak
    while low > 0 and marginal[low - 1] >= marginal[peak] - _TAIL_DROP:
        low -= 1
    c = float(rho[low])
    return _TailMap(c, _TAIL_LAM) if c - rho_lo > _TAIL_MIN else _TailMap()


def _whitened_log_joint(
    log_joint: Callable[[FloatArray, FloatArray], FloatArray], whiten: Whitening
) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """``g(z, rho) = log p(y, m(rho) + s(rho) z, rho) + log s(rho)`` on the tensor grid.

    ``log_joint(mu, rho)`` takes ``mu`` of shape ``(z.size, rho.size)`` and ``rho`` of shape
    ``(rho.size,)``.
    """

    def log_joint_z(z: FloatArray, rho: FloatArray) -> FloatArray:
        m, s = whiten(rho)
        return log_joint(m[None, :] + s[None, :] * z[:, None], rho) + np.log(s)[None, :]

    return log_joint_z


def _floored(lp: FloatArray) -> FloatArray:
    """``lp`` with -inf (and anything 700 below the maximum) raised to ``max - 700``."""
    return np.maximum(lp, lp.max() - 700.0)


def _bulk_slices(lp: FloatArray) -> NDArray[np.bool_]:
    """Slices whose log mass is within ``_BULK_DROP`` of the largest (a boolean mask)."""
    mass = special.logsumexp(_floored(lp), axis=0)
    return mass >= mass.max() - _BULK_DROP


def _max_conditional_step(lp: FloatArray) -> float:
    """Largest step of a slice's conditional log density in ``z`` within 12 of its own peak.

    Only slices that carry mass (:func:`_bulk_slices`) count.
    """
    cols = _bulk_slices(lp)
    rel = _floored(lp)[:, cols]
    rel = rel - rel.max(axis=0)
    bulk = rel >= -_BULK_DROP
    steps = np.abs(np.diff(rel, axis=0))[bulk[1:] & bulk[:-1]]
    return float(steps.max()) if steps.size else 0.0


def _conditional_moments(z: FloatArray, lp: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and SD of ``z`` in each slice (trapezoid rule); slices of zero mass give NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        w = np.exp(lp - lp.max(axis=0))
        w = w / w.sum(axis=0)
        mean = z @ w
        var = (z**2) @ w - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def _max_shift(z: FloatArray, lp: FloatArray, m: FloatArray, s: FloatArray) -> float:
    """How far the conditional of ``mu`` moves between neighbouring slices, in SDs.

    ``|mean_{j+1} - mean_j| / min(sd) + 3 |log(sd_{j+1} / sd_j)|`` (the second term: how far a
    point 3 SDs out moves when the SD changes), maximised over pairs of slices that both carry
    mass. The trapezoid rule in ``rho`` resolves the marginal CDF of ``mu`` (a sum of the
    slices' conditional CDFs) only if this is O(1).
    """
    cols = _bulk_slices(lp)
    mean_z, sd_z = _conditional_moments(z, lp)
    mean, sd = m + s * mean_z, s * sd_z
    pair = cols[1:] & cols[:-1] & (sd[1:] > 0.0) & (sd[:-1] > 0.0)
    if not pair.any():
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.abs(np.diff(mean)) / np.minimum(sd[1:], sd[:-1])
        shift = shift + 3.0 * np.abs(np.diff(np.log(sd)))
    return float(shift[pair].max())


def _cdf_change(u: FloatArray, lp: FloatArray) -> float:
    """Largest change of the marginal CDF of ``u`` when every other node is dropped.

    An error estimate for the spline CDF that gives the ``tau`` quantiles: its error is
    ~``h^4``, so the full grid's is ~1/16 of this.
    """
    log_m = special.logsumexp(_floored(lp), axis=0)
    full = _SplineCDF.build(u, log_m)
    half = _SplineCDF.build(u[::2], log_m[::2])
    x = full.nodes
    return float(np.abs(full(x)[:, 0] - half(x)[:, 0]).max())


def _measured_whitening(
    whiten: Whitening, z: FloatArray, rho: FloatArray, lp: FloatArray
) -> Whitening:
    """``whiten`` corrected by the conditional mean and SD of ``z`` measured in each slice.

    ``lp`` is a coarse evaluation of the whitened log density on ``z x rho`` (the last pass of
    :func:`~bayes_va.numerics.exact.grid._locate`). The corrections are interpolated linearly in
    ``rho`` between the slices holding mass (held constant beyond them), so the new map follows
    the real conditional where the normal approximation is off (zero-event studies, a dominant
    prior). An SD below half the ``z`` spacing is not trusted and is raised to it.
    """
    mean_z, sd_z = _conditional_moments(z, lp)
    mass = special.logsumexp(_floored(lp), axis=0)
    ok = (mass >= mass.max() - _DROP) & np.isfinite(mean_z) & np.isfinite(sd_z)
    if not ok.any():
        return whiten
    at, shift = rho[ok], mean_z[ok]
    log_sd = np.log(np.maximum(sd_z[ok], 0.5 * (z[1] - z[0])))

    def measured(r: FloatArray) -> tuple[FloatArray, FloatArray]:
        m, s = whiten(r)
        return m + s * np.interp(r, at, shift), s * np.exp(np.interp(r, at, log_sd))

    return measured


def _whitened_grid(
    log_joint: Callable[[FloatArray, FloatArray], FloatArray],
    whiten: Whitening,
    rho_lo: float,
    rho_hi: float,
    n_z: int,
    n_rho: int,
) -> tuple[FloatArray, FloatArray, _TailMap, FloatArray, FloatArray, FloatArray, float]:
    """Place the whitened grid, evaluate it and apply the trapezoid rule.

    Steps: coarse passes locate the bulk with ``whiten``; the conditional moments measured on
    the last one correct it (:func:`_measured_whitening`); coarse passes locate the bulk again
    and choose the ``log tau`` axis (:func:`_tail_map`); then the final grid, equispaced in
    ``(z, u)``, is widened and refined until its edges are negligible and it resolves every
    slice's conditional (in ``z``), the marginal of ``u`` and the movement of the conditional
    between slices (in ``u``).

    Parameters
    ----------
    log_joint : callable
        ``f(mu, rho) -> log p(y, mu, rho)`` for ``mu`` of shape ``(P, rho.size)``.
    whiten : callable
        ``rho -> (m, s)``, each of shape ``rho.shape``, ``s > 0``.
    rho_lo, rho_hi : float
        A first guess of the ``rho`` range (widened or narrowed as needed).
    n_z, n_rho : int
        Minimum grid sizes.

    Returns
    -------
    z, u : ndarray
        Equispaced nodes; the ``log tau`` nodes are ``tail_map.rho(u)``.
    tail_map : _TailMap
        The map from ``u`` to ``log tau``.
    centre, scale : ndarray, shape (u.size,)
        The map ``mu = centre + scale * z`` in each slice.
    log_weights : ndarray, shape (z.size, u.size)
        Log normalised trapezoid weights of the nodes (``logsumexp == 0``): node ``(i, j)``
        stands for ``mu = centre_j + scale_j z_i`` and ``log tau = rho(u_j)``.
    log_evidence : float
        Log of the integral of ``exp(log_joint)`` over ``(mu, rho)``.
    """
    log_joint_z = _whitened_log_joint(log_joint, whiten)
    box, z, rho, lp = _locate(log_joint_z, _Box(-_Z_BOX, _Z_BOX, rho_lo, rho_hi))
    whiten = _measured_whitening(whiten, z, rho, lp)
    log_joint_z = _whitened_log_joint(log_joint, whiten)
    box, _, rho, lp = _locate(log_joint_z, _Box(-_Z_BOX, _Z_BOX, box.rho_lo, box.rho_hi))
    tail = _tail_map(rho, lp, box.rho_lo)

    def log_joint_u(z: FloatArray, u: FloatArray) -> FloatArray:
        return log_joint_z(z, tail.rho(u)) + tail.log_jacobian(u)[None, :]

    box = _Box(box.mu_lo, box.mu_hi, tail.u(box.rho_lo), tail.u(box.rho_hi))
    for _ in range(_MAX_PASSES):
        z = np.linspace(box.mu_lo, box.mu_hi, n_z)
        u = np.linspace(box.rho_lo, box.rho_hi, n_rho)
        lp = log_joint_u(z, u)
        ok = _edges_negligible(lp)
        step_z = _max_conditional_step(lp)
        step_u = _max_marginal_step(lp, 1)
        shift = _max_shift(z, lp, *whiten(tail.rho(u)))
        more_z = step_z > _MAX_STEP and n_z < _MAX_NODES_Z
        change = _cdf_change(u, lp)
        more_u = (
            step_u > _MAX_STEP_U or shift > _MAX_SHIFT or change > _MAX_CDF_CHANGE
        ) and n_rho < _MAX_NODES_RHO
        if all(ok) and not (more_z or more_u):
            log_cell = np.log((z[1] - z[0]) * (u[1] - u[0]))
            log_z = float(special.logsumexp(lp) + log_cell)  # edge half-weights are ~0
            return z, u, tail, *whiten(tail.rho(u)), lp + log_cell - log_z, log_z
        if more_z:
            n_z = min(int(np.ceil(n_z * step_z / _TARGET_STEP)), _MAX_NODES_Z)
        if more_u:
            factor = max(
                step_u / _TARGET_STEP_U,
                shift / _TARGET_SHIFT,
                1.25 * (change / _MAX_CDF_CHANGE) ** 0.25,
            )
            n_rho = min(int(np.ceil(n_rho * factor)), _MAX_NODES_RHO)
        pad_z = 0.25 * (box.mu_hi - box.mu_lo)
        pad_u = 0.25 * (box.rho_hi - box.rho_lo)
        box = _Box(
            box.mu_lo - (0.0 if ok[0] else pad_z),
            box.mu_hi + (0.0 if ok[1] else pad_z),
            box.rho_lo - (0.0 if ok[2] else pad_u),
            box.rho_hi + (0.0 if ok[3] else pad_u),
        )
    raise RuntimeError("posterior mass keeps reaching the grid edge; is the posterior proper?")
