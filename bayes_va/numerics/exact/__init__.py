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
2. ``(mu, log tau)`` is integrated with the trapezoid rule on an automatically placed grid
   (:func:`posterior_grid`), giving an :class:`ExactPosterior` with quantiles, means and the
   log evidence. The grid is whitened along ``mu`` in each ``log tau`` slice,
   ``mu = m(tau) + s(tau) z`` with ``m`` and ``s`` the conditional mean and SD of ``mu``
   (normal approximation, corrected on a coarse pass): at small ``tau`` a few studies with
   n ~ 1e5 pin ``mu`` to a ridge ~100 times narrower than at ``tau`` ~ 1, which a tensor grid
   in ``(mu, log tau)`` under-resolves, while in ``(z, log tau)`` every slice is O(1) wide.

These are the references that the MCMC fits (and PSIS-LOO, via :func:`leave_one_out_elpd`) are
checked against. The beta-binomial model, whose study proportions integrate out in closed
form, has its own tensor grid in ``(mu, log phi)`` (:func:`posterior_grid_beta_binomial`,
:class:`ExactBetaBinomialPosterior`).

Modules:

- :mod:`.common`: shared types, the default priors on ``mu`` and ``tau``, input checks.
- :mod:`.marginal`: level 1, adaptive Gauss-Hermite per-study marginal likelihood, its nodes
  and the refined-trapezoid fallback.
- :mod:`.grid`: level 2, grid placement, the generic (tensor) grid posterior and spline CDFs.
- :mod:`.whitened`: level 2 for the logit-normal model, the whitened ``(z, log tau)`` grid.
- :mod:`.posterior`: the base class of the beta-binomial grid posterior (weights, marginal
  CDFs, quantiles, means).
- :mod:`.logit_normal`: :class:`ExactPosterior`, :func:`posterior_grid`,
  :func:`leave_one_out_elpd`.
- :mod:`.beta_binomial`: the beta-binomial marginal likelihood, posterior and grid.
"""

from bayes_va.numerics.exact.beta_binomial import (
    ExactBetaBinomialPosterior,
    default_log_prior_phi,
    log_marginal_likelihood_beta_binomial,
    posterior_grid_beta_binomial,
)
from bayes_va.numerics.exact.common import (
    LogDensity,
    default_log_prior_mu,
    default_log_prior_tau,
    empirical_logits,
    log_binom_coef,
)
from bayes_va.numerics.exact.logit_normal import ExactPosterior, leave_one_out_elpd, posterior_grid
from bayes_va.numerics.exact.marginal import (  # named in marginal docs
    _conditional_mode as _conditional_mode,
)
from bayes_va.numerics.exact.marginal import log_marginal_likelihood, random_effect_nodes

__all__ = [
    "ExactBetaBinomialPosterior",
    "ExactPosterior",
    "LogDensity",
    "default_log_prior_mu",
    "default_log_prior_phi",
    "default_log_prior_tau",
    "empirical_logits",
    "leave_one_out_elpd",
    "log_binom_coef",
    "log_marginal_likelihood",
    "log_marginal_likelihood_beta_binomial",
    "posterior_grid",
    "posterior_grid_beta_binomial",
    "random_effect_nodes",
]
