"""Quantities derived from posterior draws, computed in numpy so they are cheap and seeded.

Added to the posterior: ``pooled`` = logit⁻¹ μ, ``predictive`` = logit⁻¹(μ + τ z) with
z ~ N(0, 1) (the proportion in a new study: the Bayesian prediction interval) and ``p`` =
logit⁻¹ θ_i (shrunken study proportions). Posterior predictive: ``y`` ~ Binomial(n_i, p_i).
Log-likelihood: ``y`` is the *marginal* log p(y_i | μ, τ) with θ_i integrated out by adaptive
Gauss–Hermite (the one PSIS-LOO over studies needs), ``y_conditional`` is log p(y_i | θ_i).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import expit, gammaln, log_expit

from .dataset import StudyData
from .exact import log_marginal_likelihood

#: Independent streams derived from the config seed (the sampler uses the seed itself).
_STREAM_PREDICTIVE = 1
_STREAM_PPC = 2


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def conditional_loglik(theta: np.ndarray, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """log Binomial(y | n, logit⁻¹ θ), broadcasting θ (..., k) against y, n (k,)."""
    coef = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    return coef + y * log_expit(theta) + (n - y) * log_expit(-theta)


def add_derived(tree: xr.DataTree, data: StudyData, seed: int) -> xr.DataTree:
    """Return a new tree with derived quantities and the predictive/likelihood groups.

    Parameters
    ----------
    tree : xarray.DataTree
        Sampler output with ``posterior`` variables ``mu``, ``tau``, ``theta``.
    data : StudyData
        The counts the model was fitted to (sets the ``study`` coordinate).
    seed : int
        Seed of the fit; the random parts (predictive draws, replicated counts) use their own
        streams of it, so the same seed gives the same numbers.
    """
    post = tree["posterior"].to_dataset()
    post = post.assign_coords(study=list(data.study))
    mu, tau, theta = post["mu"], post["tau"], post["theta"]
    shape = mu.shape
    z = _rng(seed, _STREAM_PREDICTIVE).standard_normal(shape)
    post["pooled"] = xr.apply_ufunc(expit, mu)
    post["predictive"] = (("chain", "draw"), expit(mu.values + tau.values * z))
    post["p"] = xr.apply_ufunc(expit, theta)

    y, n = data.y.astype(float), data.n.astype(float)
    dims = ("chain", "draw", "study")
    p_values = post["p"].transpose(*dims).values
    y_rep = _rng(seed, _STREAM_PPC).binomial(data.n, p_values)
    ll_marg = log_marginal_likelihood(y, n, mu.values, tau.values)
    ll_cond = conditional_loglik(theta.transpose(*dims).values, y, n)

    coords = {"chain": post["chain"], "draw": post["draw"], "study": list(data.study)}
    groups = {
        "posterior": post,
        "posterior_predictive": xr.Dataset({"y": (dims, y_rep)}, coords=coords),
        "log_likelihood": xr.Dataset(
            {"y": (dims, ll_marg), "y_conditional": (dims, ll_cond)}, coords=coords
        ),
        "observed_data": xr.Dataset(
            {"y": ("study", data.y), "n": ("study", data.n)},
            coords={"study": list(data.study)},
        ),
        "sample_stats": tree["sample_stats"].to_dataset(),
    }
    for ds in groups.values():
        ds.attrs.pop("created_at", None)  # keep stored results free of wall-clock time
    return xr.DataTree.from_dict(groups)
