"""Prior sensitivity: power-scaling diagnostics and prior predictive checks.

Power-scaling (Kallioinen et al., *Stat Comput* 34, 57, 2024) perturbs the prior to p(θ)^α or
the likelihood to p(y | θ)^α for α near 1, reweights the posterior draws by Pareto-smoothed
importance sampling, and measures how far each quantity's distribution moves (cumulative
Jensen–Shannon distance per unit log₂ α). ArviZ 1.x implements it (:func:`arviz.psense`); it
needs ``log_prior`` and ``log_likelihood`` groups.

* The ``log_prior`` group holds the log density of the top-level priors only, μ, τ or φ and β,
  computed here in numpy from the config (the population distribution of θ_i is part of the
  model, not a prior to perturb; Kallioinen et al. sec. 5).
* The likelihood perturbed is the *marginal* one, p(y_i | μ, τ) with θ_i integrated out (``y``):
  the headline quantities are functions of (μ, τ), whose posterior is that of the marginal
  model, and the beta-binomial has no other. Power-scaling the conditional Binom(y_i | θ_i)
  instead mostly moves the data-pinned θ_i and reports the hyperparameters as driven by a
  "weak likelihood", which is misleading here.

A quantity is flagged prior-sensitive when its prior sensitivity is >= 0.05 (the published
threshold). The sensitivity is itself a Monte-Carlo estimate: the table carries a between-chain
standard error and calls a flag *borderline* when the value is within 2 such SEs of the
threshold.

:func:`prior_predictive_check` draws parameters and data sets from the prior (numpy, no PyMC)
and reports where the observed data fall in it: a statistic in the outer 1 % of its prior
predictive distribution is a prior-data conflict.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from scipy.special import expit

from bayes_va.checking.ppc import spread
from bayes_va.config.model import Config, Prior
from bayes_va.config.priors import frozen

if TYPE_CHECKING:
    from bayes_va.fitting.results import FitResult

__all__ = [
    "PRIOR_CONFLICT_P",
    "SENSITIVITY_THRESHOLD",
    "PriorPredictive",
    "log_prior",
    "power_scaling_sensitivity",
    "prior_predictive_check",
    "with_log_prior",
]

#: Power-scaling sensitivity at or above this is flagged (Kallioinen et al. 2024, sec. 4).
SENSITIVITY_THRESHOLD = 0.05
#: Power-scaling perturbations (ArviZ's default).
ALPHAS = (0.99, 1.01)
#: Observed statistics with a two-sided prior predictive p-value below this: prior-data conflict.
PRIOR_CONFLICT_P = 0.01
#: Headline quantities examined, in report order (those present in the posterior).
QUANTITIES = ("pooled", "predictive", "tau", "phi", "mu", "beta")
#: Stream of the config seed for prior predictive draws.
_STREAM_PRIOR = 12
_SAMPLE = ("chain", "draw")


def prior_distribution(prior: Prior) -> Any:
    """The frozen scipy distribution of a config prior (adds Gamma to :func:`priors.frozen`)."""
    if prior.dist == "Gamma":
        return stats.gamma(a=prior.params["alpha"], scale=1.0 / prior.params["beta"])
    return frozen(prior)


def _used_priors(config: Config, posterior: xr.Dataset) -> dict[str, Prior]:
    out = {"mu": config.priors.mu}
    if "tau" in posterior.data_vars:
        out["tau"] = config.priors.tau
    if "phi" in posterior.data_vars:
        out["phi"] = config.priors.phi
    if "beta" in posterior.data_vars:
        out["beta"] = config.priors.beta
    return out


def log_prior(result: FitResult) -> xr.Dataset:
    """Per-draw log density of each top-level prior (μ, τ or φ, and β with its ``coef`` dim).

    Parameters
    ----------
    result : FitResult
        A fit; its config gives the priors.

    Returns
    -------
    xarray.Dataset
        Dims ``chain``, ``draw`` (and ``coef`` for β); densities on the parameters' natural
        scale (no Jacobian: power-scaling perturbs the prior as a density of the parameters).
    """
    post = result.tree["posterior"]
    out = {}
    for name, prior in _used_priors(result.config, post).items():
        da = post[name]
        out[name] = (da.dims, prior_distribution(prior).logpdf(da.values))
    return xr.Dataset(out, coords={d: post[d] for d in post.dims if d in _SAMPLE or d == "coef"})


def with_log_prior(result: FitResult) -> xr.DataTree:
    """A copy of the fit's tree with a ``log_prior`` group (see :func:`log_prior`)."""
    tree = result.tree.copy()
    tree["log_prior"] = xr.DataTree(log_prior(result))
    return tree


def _rows(ds: xr.Dataset) -> dict[str, float]:
    """Flatten psense output into ``{"beta[procedure[VP]]": value, "tau": value, ...}``."""
    out: dict[str, float] = {}
    for var in ds.data_vars:
        da = ds[var]
        if da.ndim == 0:
            out[str(var)] = float(da)
            continue
        flat = da.stack(_i=da.dims)
        for idx, value in zip(flat["_i"].values, flat.values, strict=True):
            label = ",".join(str(v) for v in np.atleast_1d(idx))
            out[f"{var}[{label}]"] = float(value)
    return out


def _psense(tree: xr.DataTree, names: list[str], group: str, lik: str) -> dict[str, float]:
    kwargs: dict[str, Any] = {"group_var_names": lik} if group == "likelihood" else {}
    return _rows(az.psense(tree, var_names=names, group=group, alphas=ALPHAS, **kwargs))


def _chain_psense(
    tree: xr.DataTree, chain: int, names: list[str], group: str, lik: str, keys: dict
) -> dict[str, float]:
    """One chain's sensitivities (for the between-chain MCSE), NaN where it cannot be had.

    A stuck chain (every draw equal, as in a badly diverging run) has no tail for ArviZ's
    Pareto smoothing, which raises; its MCSE is then unknown, not the run's report lost.
    """
    with warnings.catch_warnings():
        # ArviZ warns (invalid divide, too few tail draws) or raises on such a chain
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        try:
            return _psense(tree.isel(chain=[chain]), names, group, lik)
        except (ValueError, RuntimeWarning, UserWarning):
            return dict.fromkeys(keys, float("nan"))


def power_scaling_sensitivity(
    result: FitResult,
    *,
    var_names: list[str] | None = None,
    likelihood: str = "marginal",
) -> pd.DataFrame:
    """Power-scaling prior and likelihood sensitivity of the headline quantities.

    Parameters
    ----------
    result : FitResult
        A fit.
    var_names : list of str, optional
        Posterior quantities; default those of :data:`QUANTITIES` present.
    likelihood : {"marginal", "conditional"}
        Which log-likelihood to power-scale (see the module docstring; ``"conditional"`` only
        exists for logit-normal models and is not recommended).

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``quantity``, ``prior``, ``prior_mcse``, ``likelihood``,
        ``likelihood_mcse`` (between-chain SEs), ``prior_sensitive`` (prior >= threshold),
        ``borderline`` and ``diagnosis`` (ArviZ's wording: "potential prior-data conflict",
        "potential strong prior / weak likelihood", or "ok"). Numbers are not rounded.
    """
    lik = {"marginal": "y", "conditional": "y_conditional"}[likelihood]
    tree = with_log_prior(result)
    if lik not in tree["log_likelihood"].data_vars:
        raise ValueError(f"{result.config.name}: no {likelihood} log-likelihood ({lik!r})")
    post = tree["posterior"]
    names = var_names or [q for q in QUANTITIES if q in post.data_vars]
    n_chains = post.sizes["chain"]
    values = {g: _psense(tree, names, g, lik) for g in ("prior", "likelihood")}
    per_chain = {
        g: [_chain_psense(tree, c, names, g, lik, values[g]) for c in range(n_chains)]
        for g in ("prior", "likelihood")
    }
    rows = []
    thr = SENSITIVITY_THRESHOLD
    for q in values["prior"]:
        row: dict[str, Any] = {"quantity": q}
        for g in ("prior", "likelihood"):
            row[g] = values[g][q]
            chains = np.array([pc[q] for pc in per_chain[g]])
            # batch means with chains as batches: each holds 1/n of the draws
            # NaN when a chain was stuck (see _chain_psense): the MCSE is then unknown
            row[f"{g}_mcse"] = (
                float(chains.std(ddof=1) / np.sqrt(n_chains)) if n_chains > 1 else float("nan")
            )
        row["prior_sensitive"] = bool(row["prior"] >= thr)
        row["borderline"] = bool(abs(row["prior"] - thr) < 2.0 * row["prior_mcse"])
        if row["prior"] >= thr and row["likelihood"] >= thr:
            row["diagnosis"] = "potential prior-data conflict"
        elif row["prior"] >= thr:
            row["diagnosis"] = "potential strong prior / weak likelihood"
        else:
            row["diagnosis"] = "ok"
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- prior predictive


@dataclass(frozen=True)
class PriorPredictive:
    """Result of :func:`prior_predictive_check`.

    Attributes
    ----------
    quantities : pandas.DataFrame
        Prior quantiles (2.5, 50, 97.5 %) of the headline quantities.
    statistics : pandas.DataFrame
        Per statistic: ``observed``, prior predictive quantiles, ``percentile`` (where the
        observed value falls), ``p_value`` (two-sided) and ``conflict``.
    draws : dict of str to ndarray
        Prior predictive draws of each statistic (for plotting).
    """

    quantities: pd.DataFrame
    statistics: pd.DataFrame
    draws: dict[str, np.ndarray]

    @property
    def conflicts(self) -> tuple[str, ...]:
        """Statistics whose observed value is in the outer 1 % of the prior predictive."""
        return tuple(self.statistics.loc[self.statistics["conflict"], "statistic"])

    def to_dict(self) -> dict[str, Any]:
        """Unrounded, JSON-ready tables."""
        return {
            "conflict_p": PRIOR_CONFLICT_P,
            "quantities": self.quantities.to_dict(orient="records"),
            "statistics": self.statistics.to_dict(orient="records"),
            "conflicts": list(self.conflicts),
        }


def _prior_statistics(n: np.ndarray) -> dict[str, Any]:
    return {
        "pooled proportion (sum y / sum n)": lambda c: c.sum(-1) / n.sum(),
        "median study proportion": lambda c: np.median(c / n, axis=-1),
        "sd of study logits": lambda c: spread(c, n),
    }


def prior_predictive_check(
    config: Config,
    y: np.ndarray,
    n: np.ndarray,
    *,
    X: np.ndarray | None = None,
    draws: int = 4000,
    seed: int | None = None,
) -> PriorPredictive:
    """Draw data sets from the prior and locate the observed data in them.

    Parameters
    ----------
    config : Config
        Family and priors.
    y, n : ndarray, shape (k,)
        Observed events and sizes (the replicated studies keep the sizes).
    X : ndarray, shape (k, p), optional
        Moderator design (β ~ ``priors.beta``); none for intercept-only models.
    draws : int
        Prior draws.
    seed : int, optional
        Default: the config's sampler seed (on its own stream).

    Returns
    -------
    PriorPredictive
    """
    seed = config.sampler.seed if seed is None else seed
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PRIOR]))
    y = np.asarray(y, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    mu = prior_distribution(config.priors.mu).rvs(size=draws, random_state=rng)
    eta = np.repeat(mu[:, None], n.size, axis=1)
    if X is not None and X.shape[1]:
        beta = prior_distribution(config.priors.beta).rvs(
            size=(draws, X.shape[1]), random_state=rng
        )
        eta = eta + beta @ X.T
    quantities = {"pooled": expit(mu), "mu": mu}
    if config.model.family == "logit_normal":
        tau = prior_distribution(config.priors.tau).rvs(size=draws, random_state=rng)
        p = expit(eta + tau[:, None] * rng.standard_normal(eta.shape))
        quantities["predictive"] = expit(mu + tau * rng.standard_normal(draws))
        quantities["tau"] = tau
    else:
        phi = prior_distribution(config.priors.phi).rvs(size=draws, random_state=rng)
        pm_ = expit(eta)
        with warnings.catch_warnings():  # Beta(a, b) with a or b ~ 1e-300 underflows: harmless
            warnings.simplefilter("ignore", RuntimeWarning)
            p = rng.beta(pm_ * phi[:, None], (1.0 - pm_) * phi[:, None])
            quantities["predictive"] = rng.beta(expit(mu) * phi, (1.0 - expit(mu)) * phi)
        p = np.nan_to_num(p, nan=0.5)
        quantities["phi"] = phi
    counts = rng.binomial(n, p)

    q_rows = []
    for name, d in quantities.items():
        lo, med, hi = np.quantile(d, [0.025, 0.5, 0.975])
        q_rows.append({"quantity": name, "q2.5": lo, "q50": med, "q97.5": hi})
    rows, out_draws = [], {}
    for name, f in _prior_statistics(n).items():
        t = np.asarray(f(counts), dtype=float)
        t_obs = float(f(y))
        out_draws[name] = t
        below = np.mean(t < t_obs) + 0.5 * np.mean(t == t_obs)
        lo, med, hi = np.quantile(t, [0.025, 0.5, 0.975])
        rows.append(
            {
                "statistic": name,
                "observed": t_obs,
                "prior_q2.5": lo,
                "prior_q50": med,
                "prior_q97.5": hi,
                "percentile": float(below),
                "p_value": float(min(1.0, 2.0 * min(below, 1.0 - below))),
            }
        )
    statistics = pd.DataFrame(rows)
    statistics["conflict"] = statistics["p_value"] < PRIOR_CONFLICT_P
    return PriorPredictive(pd.DataFrame(q_rows), statistics, out_draws)


def prior_predictive_of(result: FitResult, *, draws: int = 4000) -> PriorPredictive:
    """:func:`prior_predictive_check` for a fit (its config, data and moderator design)."""
    X = None
    if "constant_data" in result.tree.children:
        X = result.tree["constant_data"]["X"].transpose("study", "coef").values
    return prior_predictive_check(result.config, result.data.y, result.data.n, X=X, draws=draws)


