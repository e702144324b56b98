"""Beta-binomial: closed-form marginal on the same (mu, log phi) grid machinery.

Model::

    y_i ~ BetaBinomial(n_i, p phi, (1 - p) phi),  logit p = mu ~ log_prior_mu,
    phi ~ log_prior_phi (default Exponential(lam=0.01), as in bayes_va.config.model)

There is no random effect to integrate out: p_i ~ Beta(p phi, (1 - p) phi) integrates in
closed form, so level 1 of the logit-normal model is replaced by log-beta-function ratios
(differenced through Stirling's series, exact as phi -> inf). The grid is the generic tensor
grid in ``(mu, log phi)`` of :mod:`.grid` (``_grid_posterior``: coarse passes, trapezoid rule,
spline CDFs); the predictive CDF is a mixture of Beta CDFs
(``ExactBetaBinomialPosterior.predictive_cdf``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special, stats

from bayes_va.numerics.exact.common import (
    FloatArray,
    LogDensity,
    _study_arrays,
    default_log_prior_mu,
    log_binom_coef,
)
from bayes_va.numerics.exact.grid import _Box, _grid_posterior, _initial_box
from bayes_va.numerics.exact.posterior import _GridPosterior

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
    return log_binom_coef(y_arr, n_arr) + kernel


def _log_joint_beta_binomial(
    y: FloatArray, n: FloatArray, log_prior_mu: LogDensity, log_prior_phi: LogDensity
) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """Return ``f(mu, rho) -> log p(y, mu, rho)`` on the tensor grid, ``rho = log phi``.

    The ``+ rho`` term is the Jacobian ``dphi / drho = phi``.
    """
    log_coef = float(log_binom_coef(y, n).sum())

    def log_joint(mu: FloatArray, rho: FloatArray) -> FloatArray:
        phi = np.exp(rho)
        prior = log_prior_mu(mu)[:, None] + (log_prior_phi(phi) + rho)[None, :]
        if y.size == 0:
            return prior
        a, b = _beta_shapes(mu[:, None, None], phi[None, :, None])
        kernel = _log_bb_kernel(a, b, phi[None, :, None], y, n)
        return log_coef + kernel.sum(axis=-1) + prior

    return log_joint


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
    likelihood is closed form (:func:`log_marginal_likelihood_beta_binomial`); the tensor grid
    in ``(mu, log phi)`` is placed by coarse passes, then widened and refined along an axis whose
    marginal log density steps by more than 2.5 (``bayes_va.numerics.exact.grid._grid_posterior``),
    starting from ``mu`` = pooled logit ± 3 and ``phi`` in (1, 1000).

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
class ExactBetaBinomialPosterior(_GridPosterior):
    """Posterior of ``(mu, log phi)`` of the beta-binomial model on a tensor-product grid.

    From :func:`posterior_grid_beta_binomial`; the counterpart of
    :class:`~bayes_va.numerics.exact.ExactPosterior`. Weights, quantiles (of ``mu``, ``phi``,
    ``pooled = expit(mu)`` and ``predictive``, ``p_new ~ Beta(p phi, (1 - p) phi)``: the
    proportion in a new study) and means (of the same; ``E[predictive] = E[pooled]``) come from
    :class:`~bayes_va.numerics.exact.posterior._GridPosterior`.

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

    _SPREAD = "phi"
    _PREDICTIVE_MEAN = True

    @property
    def _log_spread(self) -> FloatArray:
        return self.log_phi

    @property
    def phi(self) -> FloatArray:
        """``phi`` at the ``log_phi`` nodes."""
        return self._spread

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
