"""Level 2: the automatically placed (mu, log spread) grid, its trapezoid rule and spline CDFs.

Generic over the model: :func:`_grid_posterior` places, widens and refines a tensor-product
grid for any 2-D log joint of ``(mu, rho)`` and normalises it; :class:`_SplineCDF` gives
accurate marginal CDFs and quantiles from log densities at the equispaced nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special
from scipy.interpolate import CubicSpline

from bayes_va.numerics.exact.common import FloatArray

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


@dataclass(frozen=True)
class _Box:
    """A rectangle in (mu, rho), ``rho`` the log spread (``log tau`` or ``log phi``)."""

    mu_lo: float
    mu_hi: float
    rho_lo: float
    rho_hi: float


def _initial_box(y: FloatArray, n: FloatArray) -> _Box:
    """Guess a first box: around the pooled log-odds, tau from 0.02 to 5 (widened as needed)."""
    centre = special.logit((y.sum() + 0.5) / (n.sum() + 1.0)) if y.size else 0.0
    return _Box(centre - 3.0, centre + 3.0, np.log(0.02), np.log(5.0))


def _axis_extent(
    nodes: FloatArray, keep: NDArray[np.bool_], lo: float, hi: float
) -> tuple[float, float, bool]:
    """Place one axis anew: kept nodes padded by one cell, widened where they hit an edge.

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
    return _locate(log_joint, box)[0]


def _locate(
    log_joint: Callable[[FloatArray, FloatArray], FloatArray], box: _Box
) -> tuple[_Box, FloatArray, FloatArray, FloatArray]:
    """:func:`_locate_bulk`, also returning the last coarse pass's nodes and log densities."""
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
            return new, mu, rho, lp
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
    log_z = float(special.logsumexp(lp) + log_cell)  # trapezoid: edge half-weights are ~0
    return mu, rho, lp + log_cell - log_z, log_z


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

    def _column_log_density(self, x: FloatArray, col: NDArray[np.intp]) -> FloatArray:
        """Column ``col[p]``'s spline (log density, unnormalised) at ``x[p]``; same shapes."""
        knots, c = self.spline.x, self.spline.c  # c: (4, n - 1, m), local cubic per interval
        i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, knots.size - 2)
        t = x - knots[i]
        return ((c[0, i, col] * t + c[1, i, col]) * t + c[2, i, col]) * t + c[3, i, col]

    def column_cdf(self, x: FloatArray, col: NDArray[np.intp]) -> FloatArray:
        """CDF of column ``col[p]`` at ``x[p]`` (any broadcastable shapes); 0 below, 1 above.

        The per-column counterpart of :meth:`__call__`, for when each point belongs to one
        density only (a mixture of shifted and scaled columns).
        """
        x, col = np.broadcast_arrays(np.asarray(x, dtype=float), col)
        x = np.clip(x, self.nodes[0], self.nodes[-1])
        i = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, self.edges.size - 2)
        a = self.edges[i]
        half, mid = 0.5 * (x - a), 0.5 * (x + a)
        pts = mid[..., None] + half[..., None] * _GL_X
        values = np.exp(self._column_log_density(pts, col[..., None]))
        piece = half * (values @ _GL_W)
        return self.cdf[i, col] + piece / self.total[col]

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


def _gauss_legendre_pieces(spline: CubicSpline, a: FloatArray, b: FloatArray) -> FloatArray:
    """``∫_a^b exp(spline(x)) dx`` per interval (shape ``(P,)``) by 3-point Gauss-Legendre."""
    half = 0.5 * (np.asarray(b) - np.asarray(a))
    mid = 0.5 * (np.asarray(b) + np.asarray(a))
    values = np.exp(spline(mid[:, None] + half[:, None] * _GL_X))  # (P, 3, m)
    return half[:, None] * np.einsum("pgm,g->pm", values, _GL_W)
