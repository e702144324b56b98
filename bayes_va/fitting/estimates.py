"""Plain-number summaries of a fit: headline estimates and the per-study table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_va.data.dataset import StudyData

#: Posterior summaries use equal-tailed intervals of this probability.
CI_PROB = 0.95
HEADLINE_VARS = ("pooled", "predictive", "tau", "phi", "mu")


def summarise_draws(values: np.ndarray, ci_prob: float = CI_PROB) -> dict[str, float]:
    """Mean, SD, median and equal-tailed interval of a draws array (any shape)."""
    v = np.asarray(values, dtype=float).ravel()
    a = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(v, [a, 0.5, 1.0 - a])
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)),
        "median": float(med),
        "lower": float(lo),
        "upper": float(hi),
    }


def headline(tree: xr.DataTree, ci_prob: float = CI_PROB) -> dict[str, dict[str, float]]:
    """Summaries of the pooled and predictive proportions, τ or φ, and μ."""
    post = tree["posterior"]
    return {v: summarise_draws(post[v].values, ci_prob) for v in HEADLINE_VARS if v in post}


def moderator_effects(tree: xr.DataTree, ci_prob: float = CI_PROB) -> dict[str, Any]:
    """Log odds ratios per moderator coefficient and proportions per subgroup level.

    Lists (not dicts keyed by name) so that the order -- reference level first -- survives the
    JSON round trip, whose keys are sorted.
    """
    post = tree["posterior"]
    out: dict[str, Any] = {"coefficients": [], "subgroups": []}
    if "beta" not in post:
        return out
    for coef in post["coef"].values:
        draws = post["beta"].sel(coef=coef).values
        row = summarise_draws(draws, ci_prob)
        row["or_median"] = float(np.exp(row["median"]))
        row["or_lower"] = float(np.exp(row["lower"]))
        row["or_upper"] = float(np.exp(row["upper"]))
        row["p_positive"] = float((draws > 0).mean())
        out["coefficients"].append({"coef": str(coef), **row})
    for var in post.data_vars:
        if str(var).startswith("prop_"):
            dim = next(d for d in post[var].dims if d not in ("chain", "draw"))
            for level in post[dim].values:
                summary = summarise_draws(post[var].sel({dim: level}).values, ci_prob)
                out["subgroups"].append({"moderator": str(var)[5:], "level": str(level), **summary})
    return out


def study_table(tree: xr.DataTree, data: StudyData, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Observed and shrunken proportion of each study, with posterior predictive intervals."""
    p = tree["posterior"]["p"].transpose("chain", "draw", "study").values
    y_rep = tree["posterior_predictive"]["y"].transpose("chain", "draw", "study").values
    a = (1.0 - ci_prob) / 2.0
    rows = []
    for i, sid in enumerate(data.study):
        draws = p[..., i].ravel()
        rep = y_rep[..., i].ravel()
        lo, med, hi = np.quantile(draws, [a, 0.5, 1 - a])
        rlo, rhi = np.quantile(rep, [a, 1 - a])
        y = int(data.y[i])
        rows.append(
            {
                "study": sid,
                "n": int(data.n[i]),
                "events": y,
                "observed": y / int(data.n[i]),
                "shrunken_median": float(med),
                "shrunken_lower": float(lo),
                "shrunken_upper": float(hi),
                "y_rep_lower": float(rlo),
                "y_rep_upper": float(rhi),
                # two-sided posterior predictive p-value of the observed count (mid-p)
                "ppc_p": float(
                    min(
                        1.0,
                        2
                        * min(
                            (rep < y).mean() + 0.5 * (rep == y).mean(),
                            (rep > y).mean() + 0.5 * (rep == y).mean(),
                        ),
                    )
                ),
            }
        )
    return pd.DataFrame(rows)


def exact_reference(exact: Any, ci_prob: float = CI_PROB) -> dict[str, dict[str, float]]:
    """Quantiles from the quadrature posterior, in the same layout as :func:`headline`."""
    a = (1.0 - ci_prob) / 2.0
    out = {}
    spread = "phi" if type(exact).__name__ == "ExactBetaBinomialPosterior" else "tau"
    for name in ("pooled", "predictive", spread, "mu"):
        lo, med, hi = (float(exact.quantile(name, q)) for q in (a, 0.5, 1 - a))
        out[name] = {"median": med, "lower": lo, "upper": hi}
    return out
