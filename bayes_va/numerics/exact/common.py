"""Types, default priors and input checks shared by the exact (quadrature) references."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

FloatArray = NDArray[np.float64]
LogDensity = Callable[[FloatArray], FloatArray]
"""A vectorised log density: maps an array of parameter values to an array of log densities."""

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


def empirical_logits(y: ArrayLike, n: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Empirical logits ``log((y + 1/2) / (n - y + 1/2))`` and their approximate variances.

    ``1 / (y + 1/2) + 1 / (n - y + 1/2)``: finite for 0 and n events. The normal approximation
    that places grids, whitens the sampler's mu and starts the GLMM; never a result itself.
    """
    y = np.asarray(y, dtype=float)
    n = np.asarray(n, dtype=float)
    return np.log((y + 0.5) / (n - y + 0.5)), 1.0 / (y + 0.5) + 1.0 / (n - y + 0.5)


def log_binom_coef(y: ArrayLike, n: ArrayLike) -> FloatArray:
    """Return ``log C(n, y)`` via log-gamma (exact enough for n ~ 1e5).

    The project's one NumPy definition of the binomial constant (the model takes it as data;
    the numba kernels of :mod:`bayes_va.engine.marginal` have a scalar twin, as numba cannot
    call SciPy).
    """
    y = np.asarray(y, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    return special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)
