"""The logit-normal random-effects model: its exact grid posterior and leave-one-study-out.

See the package docstring (:mod:`bayes_va.exact`) for the model and the two quadrature levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from .common import (
    FloatArray,
    LogDensity,
    _study_arrays,
    default_log_prior_mu,
    default_log_prior_tau,
)
from .grid import _grid_posterior, _initial_box
from .marginal import _hermite_rule, log_marginal_likelihood
from .posterior import _GridPosterior

_Z_NODES, _Z_LOG_W = _hermite_rule(16)  # for E over z ~ N(0, 1) in the predictive CDF
_Z_WEIGHTS = np.exp(_Z_LOG_W - _Z_NODES**2) / np.sqrt(np.pi)


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
    mu, rho, log_w, log_z = _grid_posterior(log_joint, _initial_box(y_arr, n_arr), n_mu, n_logtau)
    return ExactPosterior(mu=mu, log_tau=rho, log_weights=log_w, log_evidence=log_z)


@dataclass(frozen=True, eq=False)
class ExactPosterior(_GridPosterior):
    """Posterior of ``(mu, log tau)`` on a tensor-product grid (from :func:`posterior_grid`).

    Weights, quantiles (of ``mu``, ``tau``, ``pooled = expit(mu)`` and ``predictive =
    expit(mu + tau z)``, ``z ~ N(0, 1)``: the proportion in a new study) and means (of ``mu``,
    ``tau``, ``pooled``) come from :class:`~bayes_va.exact.posterior._GridPosterior`.

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

    _SPREAD = "tau"
    _PREDICTIVE_MEAN = False

    @property
    def _log_spread(self) -> FloatArray:
        return self.log_tau

    @property
    def tau(self) -> FloatArray:
        """``tau`` at the ``log_tau`` nodes."""
        return self._spread

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
