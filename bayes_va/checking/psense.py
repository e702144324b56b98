"""Prior sensitivity: power-scaling diagnostics and prior predictive checks.

Power-scaling (Kallioinen et al., *Stat Comput* 34, 57, 2024) perturbs the prior to p(θ)^α or
the likelihood to p(y | θ)^α for α near 1, reweights the posterior draws by Pareto-smoothed
importance sampling, and measures how far each quantity's distribution moves (cumulative
Jensen–Shannon distance per unit log₂ α). ArviZ 1.x implements it
(:func:`arviz_stats.psense_summary`: the values and the diagnosis); it needs ``log_prior`` and
``log_likelihood`` groups.

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
threshold. ArviZ has no such error, so it is computed here from ArviZ's per-chain values.

:func:`prior_predictive_check` draws parameters and data sets from the prior
(:func:`bayes_va.engine.prior.prior_draws`, the draws a fit stores as its ``prior`` and
``prior_predictive`` groups) and reports where the observed data fall in it: a statistic in the
outer 1 % of its prior predictive distribution is a prior-data conflict.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from arviz_base import dataset_to_dataframe
from arviz_stats import psense, psense_summary

from bayes_va.checking.ppc import spread
from bayes_va.config.model import Config
from bayes_va.config.priors import frozen, used_priors
from bayes_va.engine.prior import prior_draws

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
#: ArviZ's word for "no issue", and ours (kept: it is what report.json has always said).
_ARVIZ_OK, _OK = "✓", "ok"
_SAMPLE = ("chain", "draw")


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
    for name, prior in used_priors(result.config).items():
        da = post[name]
        out[name] = (da.dims, frozen(prior).logpdf(da.values))
    return xr.Dataset(out, coords={d: post[d] for d in post.dims if d in _SAMPLE or d == "coef"})


def with_log_prior(result: FitResult) -> xr.DataTree:
    """Return a copy of the fit's tree with a ``log_prior`` group (see :func:`log_prior`)."""
    tree = result.tree.copy()
    tree["log_prior"] = xr.DataTree(log_prior(result))
    return tree


@contextlib.contextmanager
def _quiet_arviz() -> Iterator[None]:
    """Silence ArviZ's logged "We detected potential issues" (the report words its own)."""
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _summary(tree: xr.DataTree, names: list[str], lik: str) -> pd.DataFrame:
    """ArviZ's sensitivity table: ``prior``, ``likelihood``, ``diagnosis``, one row a label."""
    with _quiet_arviz():
        # round_to={}: DataFrame.round with an empty dict rounds no column, so no digit is lost
        return psense_summary(
            tree, var_names=names, alphas=ALPHAS, likelihood_var_names=lik, round_to={}
        )


def _chain_psense(
    tree: xr.DataTree, chain: int, names: list[str], group: str, lik: str, labels: pd.Index
) -> pd.Series:
    """One chain's sensitivities (for the between-chain MCSE), NaN where it cannot be had.

    Per group (prior, likelihood) so that a failure of one leaves the other's MCSE known. A
    stuck chain (every draw equal, as in a badly diverging run) has no tail for ArviZ's Pareto
    smoothing, which raises; its MCSE is then unknown, not the run's report lost. ArviZ has no
    per-chain or MCSE option for psense, hence this loop.
    """
    kwargs: dict[str, Any] = {"group_var_names": lik} if group == "likelihood" else {}
    with warnings.catch_warnings():
        # ArviZ warns (invalid divide, too few tail draws) or raises on such a chain
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        try:
            ds = psense(
                tree.isel(chain=[chain]), var_names=names, group=group, alphas=ALPHAS, **kwargs
            )
        except (ValueError, RuntimeWarning, UserWarning):
            return pd.Series(np.nan, index=labels)
    # labelled as psense_summary labels its rows (same ArviZ helper)
    table = dataset_to_dataframe(ds.expand_dims(component=[group]), sample_dims=["component"])
    return table.T[group].reindex(labels)


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
        ``borderline`` and ``diagnosis`` (ArviZ's :func:`~arviz_stats.psense_summary`:
        "potential prior-data conflict", "potential strong prior / weak likelihood", or "ok"
        where ArviZ writes "✓"; its "strong prior" needs prior > threshold, so a prior exactly
        at the threshold is ``prior_sensitive`` but "ok"). Numbers are not rounded.
    """
    lik = {"marginal": "y", "conditional": "y_conditional"}[likelihood]
    tree = with_log_prior(result)
    if lik not in tree["log_likelihood"].data_vars:
        raise ValueError(f"{result.config.name}: no {likelihood} log-likelihood ({lik!r})")
    post = tree["posterior"]
    names = var_names or [q for q in QUANTITIES if q in post.data_vars]
    n_chains = post.sizes["chain"]
    table = _summary(tree, names, lik)
    thr = SENSITIVITY_THRESHOLD
    out = pd.DataFrame({"quantity": table.index.astype(str)})
    for g in ("prior", "likelihood"):
        out[g] = table[g].to_numpy(dtype=float)
        chains = np.stack(
            [_chain_psense(tree, c, names, g, lik, table.index).to_numpy() for c in range(n_chains)]
        )
        # batch means with chains as batches: each holds 1/n of the draws; NaN when a chain
        # was stuck (see _chain_psense): the MCSE is then unknown
        out[f"{g}_mcse"] = [
            float(chains[:, j].std(ddof=1) / np.sqrt(n_chains)) if n_chains > 1 else np.nan
            for j in range(len(table))
        ]
    out = out[["quantity", "prior", "prior_mcse", "likelihood", "likelihood_mcse"]]
    out["prior_sensitive"] = out["prior"] >= thr
    out["borderline"] = (out["prior"] - thr).abs() < 2.0 * out["prior_mcse"]
    out["diagnosis"] = table["diagnosis"].replace(_ARVIZ_OK, _OK).to_numpy()
    return out


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
        Default: the config's sampler seed (on its own stream,
        :data:`bayes_va.engine.prior.STREAM_PRIOR`).

    Returns
    -------
    PriorPredictive
    """
    y = np.asarray(y, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    prior = prior_draws(config, n, X, draws=draws, seed=seed)
    quantities, counts = prior.quantities, prior.y

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
