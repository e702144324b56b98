"""A posterior on a tensor grid in (mu, log spread): weights, marginal CDFs, summaries.

The base of :class:`~bayes_va.numerics.exact.ExactBetaBinomialPosterior` (``mu``, ``log phi``),
which adds its predictive distribution. (:class:`~bayes_va.numerics.exact.ExactPosterior` of the
logit-normal model lives on a whitened grid instead, see :mod:`bayes_va.numerics.exact.whitened`.)
"""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from bayes_va.numerics.exact.common import FloatArray
from bayes_va.numerics.exact.grid import _SplineCDF


class _GridPosterior:
    """Base of the grid posteriors of ``(mu, log spread)``.

    Subclasses are frozen dataclasses with fields ``mu``, ``log_<spread>``, ``log_weights``
    and ``log_evidence``. They set ``_SPREAD`` (the spread parameter's name, ``"tau"`` or
    ``"phi"``) and ``_PREDICTIVE_MEAN`` (whether :meth:`mean` accepts ``"predictive"``), and
    provide ``_log_spread`` (the ``log_<spread>`` nodes), ``_narrow`` (the ``log spread``
    slices too narrow for the trapezoid rule over ``mu`` in the predictive CDF) and
    ``_predictive_quantile``.
    """

    _SPREAD: ClassVar[str]
    _PREDICTIVE_MEAN: ClassVar[bool]

    mu: FloatArray
    log_weights: FloatArray
    log_evidence: float

    @property
    def _log_spread(self) -> FloatArray:
        raise NotImplementedError

    @property
    def _narrow(self) -> NDArray[np.bool_]:
        raise NotImplementedError

    def _predictive_quantile(self, q: float) -> float:
        raise NotImplementedError

    @cached_property
    def weights(self) -> FloatArray:
        """Normalised weights, shape ``(n_mu, n_log<spread>)``, summing to 1."""
        return np.exp(self.log_weights)

    @property
    def _spread(self) -> FloatArray:
        """The spread parameter (``tau`` or ``phi``) at the ``log`` nodes."""
        return np.exp(self._log_spread)

    @cached_property
    def _mu_cdf(self) -> _SplineCDF:
        return _SplineCDF.build(self.mu, special.logsumexp(self.log_weights, axis=1))

    @cached_property
    def _log_spread_cdf(self) -> _SplineCDF:
        return _SplineCDF.build(self._log_spread, special.logsumexp(self.log_weights, axis=0))

    @cached_property
    def _narrow_slices(self) -> tuple[FloatArray, FloatArray, _SplineCDF] | None:
        """Mass, spread and conditional ``mu`` density/CDF of each narrow slice; None if none."""
        if not self._narrow.any():
            return None
        cols = self._narrow
        mass = self.weights[:, cols].sum(axis=0)
        return mass, self._spread[cols], _SplineCDF.build(self.mu, self.log_weights[:, cols])

    def quantile(self, name: str, q: ArrayLike) -> float | FloatArray:
        """Posterior quantiles.

        Parameters
        ----------
        name : {"mu", "tau" or "phi", "pooled", "predictive"}
            ``pooled = expit(mu)``; ``predictive`` is the proportion in a new study:
            ``expit(mu + tau z)``, ``z ~ N(0, 1)``, for the logit-normal model and
            ``Beta(p phi, (1 - p) phi)`` for the beta-binomial (inverted mixture CDF).
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
        elif name == self._SPREAD:
            out = np.exp(self._log_spread_cdf.quantile(q_arr))
        elif name == "predictive":
            flat = [self._predictive_quantile(float(v)) for v in q_arr.ravel()]
            out = special.expit(np.reshape(flat, q_arr.shape))
        else:
            raise ValueError(
                f"unknown quantity {name!r}; use mu, {self._SPREAD}, pooled or predictive"
            )
        return float(out) if np.ndim(out) == 0 else out

    def mean(self, name: str) -> float:
        """Posterior mean of ``mu``, the spread (``tau`` or ``phi``) or ``pooled = expit(mu)``.

        The beta-binomial posterior also takes ``predictive``: ``E[predictive] = E[pooled]``
        (the Beta has mean ``p``).

        Parameters
        ----------
        name : {"mu", "tau" or "phi", "pooled", "predictive"}
            The quantity.

        Returns
        -------
        float
            The weighted mean over the grid (trapezoid rule).
        """
        values = {
            "mu": lambda: self.mu[:, None],
            self._SPREAD: lambda: self._spread[None, :],
            "pooled": lambda: special.expit(self.mu)[:, None],
        }
        if self._PREDICTIVE_MEAN:
            values["predictive"] = values["pooled"]
        if name not in values:
            *first, last = values
            raise ValueError(f"unknown quantity {name!r}; use {', '.join(first)} or {last}")
        return float(np.sum(self.weights * values[name]()))
