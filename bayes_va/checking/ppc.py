"""Posterior predictive checks for study-level binomial outcomes.

Two kinds of replicate answer different questions:

``replicate``
    The *same* studies again: y_rep_i ~ Binomial(n_i, p_i) with the study's own posterior p_i
    (the ``posterior_predictive`` group of a fit). It checks the binomial sampling model, but a
    hierarchical model reproduces every large study almost by construction, so it is weak.
``new``
    A *new* study of the same size: θ_new ~ Normal(η_i, τ) (logit-normal) or
    p_new ~ Beta(p φ, (1 - p) φ) (beta-binomial), then y_new ~ Binomial(n_i, ·). It checks the
    random-effects distribution. Per study it is cross-validated: the draws are weighted by the
    marginal PSIS-LOO weights of that study, so p_loo asks "is study i surprising for a
    population fitted to the other studies?" (a LOO probability integral transform).

Per-study p-values are two-sided mid-p values, Rao-Blackwellised: for each draw the binomial
(or beta-binomial) CDF of the observed count is computed exactly instead of being sampled.
Spread statistics compare the observed dispersion of the study proportions with replicated
data sets. A p-value below :data:`PPC_FLAG_P` is flagged; with 14 studies a correct model still
flags some study at that level about 13 % of the time, so a flag asks for a look, not a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from scipy.special import expit

from bayes_va.checking.loo import marginal_loo
from bayes_va.core.rng import FitStream, stream_rng
from bayes_va.numerics.exact import empirical_logits

if TYPE_CHECKING:
    from bayes_va.fitting.results import FitResult

__all__ = [
    "PPC_FLAG_P",
    "PredictiveChecks",
    "posterior_predictive_checks",
    "replicate_pvalues",
    "spread",
]

#: Two-sided predictive p-values below this are flagged.
PPC_FLAG_P = 0.01
#: Stream of the config seed used for new-study draws (derived.py uses 1 and 2).
_SAMPLE = ("chain", "draw")


def empirical_logit(y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``log((y + 0.5) / (n - y + 0.5))``: finite for 0 and n events."""
    return empirical_logits(y, n)[0]


def spread(y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """SD over studies (last axis) of the empirical logits: the observed heterogeneity."""
    return np.std(empirical_logit(np.asarray(y, float), np.asarray(n, float)), axis=-1, ddof=1)


def _two_sided(p_below_mid: np.ndarray) -> np.ndarray:
    """Two-sided p-value from a mid-p ``P(Y < y) + P(Y = y) / 2``."""
    return np.minimum(1.0, 2.0 * np.minimum(p_below_mid, 1.0 - p_below_mid))


def replicate_pvalues(p: np.ndarray, y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided mid-p posterior predictive p-values of the observed counts, Rao-Blackwellised.

    Parameters
    ----------
    p : ndarray, shape (..., k)
        Draws of each study's event probability.
    y, n : ndarray, shape (k,)
        Observed events and sizes.

    Returns
    -------
    ndarray, shape (k,)
        ``2 min(P, 1 - P)`` with ``P = mean over draws of [Binom(Y < y) + Binom(Y = y) / 2]``,
        computed exactly per draw instead of from sampled replicates.
    """
    p = np.asarray(p, dtype=float).reshape(-1, np.size(y))
    below = stats.binom.cdf(y - 1, n, p) + 0.5 * stats.binom.pmf(y, n, p)
    return _two_sided(below.mean(axis=0))


@dataclass(frozen=True)
class PredictiveChecks:
    """Result of :func:`posterior_predictive_checks`.

    Attributes
    ----------
    studies : pandas.DataFrame
        One row per study: ``study``, ``n``, ``events``, ``observed`` (proportion), the
        replicate count's 2.5/50/97.5 % quantiles (``rep_lower``, ``rep_median``,
        ``rep_upper``), ``p_replicate``, the new-study quantiles (``new_lower``,
        ``new_upper``), ``p_loo`` (cross-validated new-study p-value), ``loo_k_ok`` (its PSIS
        weights are reliable) and ``flag``.
    statistics : pandas.DataFrame
        One row per (statistic, kind): ``observed``, ``rep_mean``, ``rep_lower``,
        ``rep_upper``, ``p_value``, ``flag``.
    draws : dict of str to ndarray
        Replicated statistics and proportions used by :func:`plot_ppc`.
    """

    studies: pd.DataFrame
    statistics: pd.DataFrame
    draws: dict[str, np.ndarray]

    @property
    def flagged_studies(self) -> tuple[str, ...]:
        """Studies with a flagged p-value (either kind)."""
        return tuple(self.studies.loc[self.studies["flag"], "study"].astype(str))

    @property
    def flagged_statistics(self) -> tuple[str, ...]:
        """``"statistic (kind)"`` for each flagged statistic."""
        s = self.statistics[self.statistics["flag"]]
        return tuple(f"{a} ({b})" for a, b in zip(s["statistic"], s["kind"], strict=True))

    @property
    def ok(self) -> bool:
        """No study and no statistic flagged."""
        return not self.flagged_studies and not self.flagged_statistics

    def to_dict(self) -> dict[str, Any]:
        """Unrounded, JSON-ready tables."""
        return {
            "flag_p": PPC_FLAG_P,
            "studies": self.studies.to_dict(orient="records"),
            "statistics": self.statistics.to_dict(orient="records"),
            "flagged_studies": list(self.flagged_studies),
            "flagged_statistics": list(self.flagged_statistics),
        }


def _linear_predictor(tree: xr.DataTree, k: int) -> np.ndarray:
    """η_s,i = μ_s + x_i'β_s, shape (chain, draw, study)."""
    post = tree["posterior"]
    mu = post["mu"].transpose(*_SAMPLE).values
    eta = np.broadcast_to(mu[..., None], (*mu.shape, k)).copy()
    if "beta" in post.data_vars and "constant_data" in tree.children:
        X = tree["constant_data"]["X"].transpose("study", "coef").values
        beta = post["beta"].transpose(*_SAMPLE, "coef").values
        eta += np.einsum("cdj,kj->cdk", beta, X)
    return eta


def _new_study_draws(
    tree: xr.DataTree, y: np.ndarray, n: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mid-p ``P(Y_new < y_i) + P(Y_new = y_i)/2`` per draw, and sampled new-study counts."""
    post = tree["posterior"]
    eta = _linear_predictor(tree, y.size)
    if "tau" in post.data_vars:
        tau = post["tau"].transpose(*_SAMPLE).values[..., None]
        p_new = expit(eta + tau * rng.standard_normal(eta.shape))
        below = stats.binom.cdf(y - 1, n, p_new) + 0.5 * stats.binom.pmf(y, n, p_new)
        counts = rng.binomial(n, p_new)
    elif "phi" in post.data_vars:
        phi = post["phi"].transpose(*_SAMPLE).values[..., None]
        a, b = expit(eta) * phi, (1.0 - expit(eta)) * phi
        below = stats.betabinom.cdf(y - 1, n, a, b) + 0.5 * stats.betabinom.pmf(y, n, a, b)
        counts = rng.binomial(n, rng.beta(a, b))
    else:
        raise ValueError("posterior has neither 'tau' (logit-normal) nor 'phi' (beta-binomial)")
    return below, counts


def _quantiles(draws: np.ndarray, ci_prob: float) -> np.ndarray:
    a = (1.0 - ci_prob) / 2.0
    return np.quantile(draws.reshape(-1, draws.shape[-1]), [a, 0.5, 1.0 - a], axis=0)


def _statistics(n: np.ndarray, study: list[str]) -> dict[str, Any]:
    """Compute the test statistics of counts (..., k).

    Spread, mean proportion and the contrast between the two largest studies (which dominate
    the pooled estimate).
    """
    a, b = (int(i) for i in np.argsort(-n, kind="stable")[:2])
    return {
        "sd of study logits": lambda c: spread(c, n),
        "mean study proportion": lambda c: np.mean(c / n, axis=-1),
        f"p[{study[a]}] - p[{study[b]}]": lambda c: c[..., a] / n[a] - c[..., b] / n[b],
    }


def posterior_predictive_checks(
    result: FitResult | xr.DataTree,
    *,
    seed: int | None = None,
    ci_prob: float = 0.95,
) -> PredictiveChecks:
    """Per-study predictive intervals and p-values, and spread statistics.

    Parameters
    ----------
    result : FitResult or xarray.DataTree
        A fit with ``posterior`` (``mu``, ``tau`` or ``phi``, ``p``), ``posterior_predictive``
        (``y``), ``log_likelihood`` (``y``, marginal) and ``observed_data`` (``y``, ``n``).
    seed : int, optional
        Seed of the new-study draws; default: the fit's seed (a DataTree needs one).
    ci_prob : float
        Probability of the predictive intervals.

    Returns
    -------
    PredictiveChecks
    """
    tree = result if isinstance(result, xr.DataTree) else result.tree
    if seed is None:
        if isinstance(result, xr.DataTree):
            raise ValueError("pass seed= with a DataTree (a FitResult uses its config's seed)")
        seed = result.config.sampler.seed
    rng = stream_rng(seed, FitStream.NEW_STUDY)
    obs = tree["observed_data"].dataset
    study = [str(s) for s in obs["study"].values]
    y = obs["y"].values.astype(np.int64)
    n = obs["n"].values.astype(np.int64)

    p_replicate = replicate_pvalues(
        tree["posterior"]["p"].transpose(*_SAMPLE, "study").values, y, n
    )
    rep = tree["posterior_predictive"]["y"].transpose(*_SAMPLE, "study").values
    below_new, new = _new_study_draws(tree, y, n, rng)

    loo = marginal_loo(tree, exact=False, warn=False)
    lw = loo.elpd_data.log_weights.transpose("study", *_SAMPLE).values
    w = np.exp(lw - lw.max(axis=(1, 2), keepdims=True))
    w /= w.sum(axis=(1, 2), keepdims=True)
    p_loo = _two_sided(np.einsum("icd,cdi->i", w, below_new))

    rq = _quantiles(rep, ci_prob)
    nq = _quantiles(new, ci_prob)
    table = pd.DataFrame(
        {
            "study": study,
            "n": n,
            "events": y,
            "observed": y / n,
            "rep_lower": rq[0],
            "rep_median": rq[1],
            "rep_upper": rq[2],
            "p_replicate": p_replicate,
            "new_lower": nq[0],
            "new_upper": nq[2],
            "p_loo": p_loo,
            "loo_k_ok": loo.studies["k_ok"].to_numpy(),
        }
    )
    table["flag"] = (table["p_replicate"] < PPC_FLAG_P) | (table["p_loo"] < PPC_FLAG_P)

    rows, draws = [], {}
    a = (1.0 - ci_prob) / 2.0
    for name, f in _statistics(n, study).items():
        t_obs = float(f(y))
        for kind, counts in (("replicate", rep), ("new", new)):
            t = np.asarray(f(counts), dtype=float).ravel()
            draws[f"{name} ({kind})"] = t
            below = np.mean(t < t_obs) + 0.5 * np.mean(t == t_obs)
            rows.append(
                {
                    "statistic": name,
                    "kind": kind,
                    "observed": t_obs,
                    "rep_mean": float(t.mean()),
                    "rep_lower": float(np.quantile(t, a)),
                    "rep_upper": float(np.quantile(t, 1 - a)),
                    "p_value": float(_two_sided(np.asarray(below))),
                }
            )
    statistics = pd.DataFrame(rows)
    statistics["flag"] = statistics["p_value"] < PPC_FLAG_P
    return PredictiveChecks(table, statistics, draws)


