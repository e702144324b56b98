"""Draws from the prior of a config's model: its parameters and a prior predictive of ``y``.

The draws are SciPy draws from the config's priors (:func:`bayes_va.config.priors.frozen`), not
``pm.sample_prior_predictive``: the ``marginal`` parametrisation samples flat ``mu_z``/``tau_u``
with the priors as potentials, which PyMC cannot draw from. The model is followed as
:mod:`bayes_va.engine.model` writes it::

    mu ~ priors.mu,  beta_j ~ priors.beta (with moderators),  tau ~ priors.tau | phi ~ priors.phi
    logit-normal:   p_i = expit(mu + x_i' beta + tau z_i)
    beta-binomial:  p_i ~ Beta(m_i phi, (1 - m_i) phi),  m_i = expit(mu + x_i' beta)
    y_i ~ Binomial(n_i, p_i)

plus the headline quantities ``pooled`` = expit(mu) and ``predictive`` (a new study's
proportion at the reference levels). Randomness comes from the fit's seed through its own stream
(:data:`STREAM_PRIOR`), so adding the prior to a fit changes none of its posterior draws.
:func:`prior_draws` is also the draw behind the prior predictive check
(:func:`bayes_va.checking.psense.prior_predictive_check`): with as many draws as the fit has, the
stored ``prior_predictive`` group is the check's replicated data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.special import expit

from bayes_va.config.model import Config
from bayes_va.config.priors import frozen, used_priors
from bayes_va.core.rng import FitStream, stream_rng
from bayes_va.data.dataset import StudyData
from bayes_va.data.moderators import Design

__all__ = ["STREAM_PRIOR", "PriorDraws", "add_prior", "prior_draws"]

#: Stream of the config seed for prior draws (the sampler uses the seed itself, the derived
#: quantities streams 1-3 of :mod:`bayes_va.engine.derived`).
STREAM_PRIOR = FitStream.PRIOR


@dataclass(frozen=True)
class PriorDraws:
    """Independent draws from a model's prior.

    Attributes
    ----------
    quantities : dict of str to ndarray
        Shape ``(draws,)`` each, in report order: ``pooled``, ``mu``, ``predictive`` and
        ``tau`` (logit-normal) or ``phi`` (beta-binomial).
    beta : ndarray or None
        Moderator coefficients, shape ``(draws, n_coef)``; None without moderators.
    y : ndarray
        Prior predictive counts, shape ``(draws, k)``, with the studies' sizes.
    """

    quantities: dict[str, np.ndarray]
    beta: np.ndarray | None
    y: np.ndarray


def prior_draws(
    config: Config,
    n: np.ndarray,
    X: np.ndarray | None = None,
    *,
    draws: int = 4000,
    seed: int | None = None,
) -> PriorDraws:
    """Draw parameters and data sets from the prior of ``config``'s model.

    Parameters
    ----------
    config : Config
        Family and priors.
    n : ndarray, shape (k,)
        Study sizes (the replicated studies keep them).
    X : ndarray, shape (k, p), optional
        Moderator design; none (or no columns) for intercept-only models.
    draws : int
        Number of draws.
    seed : int, optional
        Default: the config's sampler seed; the draws use its stream :data:`STREAM_PRIOR`.

    Returns
    -------
    PriorDraws
    """
    seed = config.sampler.seed if seed is None else seed
    rng = stream_rng(seed, STREAM_PRIOR)
    n = np.asarray(n, dtype=np.int64)
    priors = used_priors(config)
    # the order of the draws below fixes every stored prior draw: do not reorder
    mu = frozen(priors["mu"]).rvs(size=draws, random_state=rng)
    eta = np.repeat(mu[:, None], n.size, axis=1)
    beta = None
    if X is not None and X.shape[1]:
        beta = frozen(priors["beta"]).rvs(size=(draws, X.shape[1]), random_state=rng)
        eta = eta + beta @ X.T
    quantities = {"pooled": expit(mu), "mu": mu}
    if config.model.family == "logit_normal":
        tau = frozen(priors["tau"]).rvs(size=draws, random_state=rng)
        p = expit(eta + tau[:, None] * rng.standard_normal(eta.shape))
        quantities["predictive"] = expit(mu + tau * rng.standard_normal(draws))
        quantities["tau"] = tau
    else:
        phi = frozen(priors["phi"]).rvs(size=draws, random_state=rng)
        m = expit(eta)
        with warnings.catch_warnings():  # Beta(a, b) with a or b ~ 1e-300 underflows: harmless
            warnings.simplefilter("ignore", RuntimeWarning)
            p = rng.beta(m * phi[:, None], (1.0 - m) * phi[:, None])
            quantities["predictive"] = rng.beta(expit(mu) * phi, (1.0 - expit(mu)) * phi)
        p = np.nan_to_num(p, nan=0.5)
        quantities["phi"] = phi
    return PriorDraws(quantities, beta, rng.binomial(n, p))


def add_prior(tree: xr.DataTree, config: Config, data: StudyData, design: Design) -> xr.DataTree:
    """Return ``tree`` with ``prior`` and ``prior_predictive`` groups (the fit's own groups kept).

    As many draws as the posterior has, from the fit's seed on :data:`STREAM_PRIOR`, laid out
    in the posterior's ``chain`` x ``draw`` shape (chain-major; the draws are independent), so
    that selections over the whole tree (``tree.isel(chain=...)``) apply to every group.
    ``prior`` holds ``mu``, ``tau`` or ``phi``, ``beta`` (dim ``coef``, with moderators),
    ``pooled`` and ``predictive``; ``prior_predictive`` holds ``y`` (dims ``chain``, ``draw``,
    ``study``).
    """
    post = tree["posterior"]
    shape = (post.sizes["chain"], post.sizes["draw"])
    X = design.X if design.X.shape[1] else None
    d = prior_draws(config, data.n, X, draws=shape[0] * shape[1])
    sample = ("chain", "draw")
    coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    prior = xr.Dataset(
        {name: (sample, v.reshape(shape)) for name, v in d.quantities.items()}, coords=coords
    )
    if d.beta is not None:
        prior["beta"] = ((*sample, "coef"), d.beta.reshape(*shape, -1))
        prior = prior.assign_coords(coef=list(design.coef_names))
    predictive = xr.Dataset(
        {"y": ((*sample, "study"), d.y.reshape(*shape, -1))},
        coords={**coords, "study": list(data.study)},
    )
    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    groups.update(prior=prior, prior_predictive=predictive)
    return xr.DataTree.from_dict(groups)
