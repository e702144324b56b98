"""Convergence diagnostics of a fit, checked against the config's thresholds (ArviZ 1.x)."""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from bayes_va.config.model import DiagnosticsConfig

#: Variables whose convergence decides whether a fit is trusted.
CHECKED_VARS = ("mu", "tau", "theta", "phi", "beta")
#: Headline quantities whose Monte-Carlo standard errors are reported.
HEADLINE = ("pooled", "predictive", "tau")
HEADLINE_PROBS = (0.025, 0.5, 0.975)


def _max(tree: xr.DataTree) -> float:
    return float(max(np.nanmax(tree[v].values) for v in tree.data_vars))


def _min(tree: xr.DataTree) -> float:
    return float(min(np.nanmin(tree[v].values) for v in tree.data_vars))


def mcse_table(tree: xr.DataTree) -> dict[str, dict[str, float]]:
    """MCSE of the mean and of the 2.5/50/97.5 % quantiles of the headline quantities."""
    names = [v for v in HEADLINE if v in tree["posterior"].data_vars]
    # one ArviZ call per statistic over all variables (not one per variable): same numbers,
    # a third of the time
    means = az.mcse(tree, var_names=names, method="mean")
    quantiles = {
        q: az.mcse(tree, var_names=names, method="quantile", prob=q) for q in HEADLINE_PROBS
    }
    return {
        v: {"mean": float(means[v].values)}
        | {f"q{q * 100:g}": float(quantiles[q][v].values) for q in HEADLINE_PROBS}
        for v in names
    }


def compute_diagnostics(
    tree: xr.DataTree, thresholds: DiagnosticsConfig, sampled_theta: bool = True
) -> dict[str, Any]:
    """Summarise convergence and compare it with ``thresholds``.

    With ``sampled_theta=False`` (the ``marginal`` parametrisation) the study effects are exact
    draws from their conditionals given the sampled hyperparameters, so only the sampled
    parameters are checked; this keeps the check fast for thousands of studies.

    Returns
    -------
    dict
        ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``, ``min_bfmi``,
        ``mcse`` (headline quantities), ``failures`` (list of plain-language reasons) and
        ``ok`` (no failures).
    """
    names = [
        v
        for v in CHECKED_VARS
        if v in tree["posterior"].data_vars and (sampled_theta or v != "theta")
    ]
    rhat = _max(az.rhat(tree, var_names=names))
    ess_bulk = _min(az.ess(tree, var_names=names, method="bulk"))
    ess_tail = _min(az.ess(tree, var_names=names, method="tail"))
    stats = tree["sample_stats"]
    divergences = int(stats["diverging"].values.sum()) if "diverging" in stats else 0
    bfmi = float(np.min(az.bfmi(tree)["energy"].values)) if "energy" in stats else float("nan")

    t = thresholds
    failures = []
    if not rhat <= t.max_rhat:
        failures.append(f"max R-hat {rhat:.4f} > {t.max_rhat} (chains disagree: run longer)")
    if not ess_bulk >= t.min_ess_bulk:
        failures.append(f"min bulk ESS {ess_bulk:.0f} < {t.min_ess_bulk:g} (increase draws)")
    if not ess_tail >= t.min_ess_tail:
        failures.append(f"min tail ESS {ess_tail:.0f} < {t.min_ess_tail:g} (increase draws)")
    if divergences > t.max_divergences:
        failures.append(
            f"{divergences} divergent transitions > {t.max_divergences} (raise "
            "sampler.target_accept or change model.parametrisation)"
        )
    if not bfmi >= t.min_bfmi:
        failures.append(f"min E-BFMI {bfmi:.3f} < {t.min_bfmi} (poor energy exploration)")
    return {
        "max_rhat": rhat,
        "min_ess_bulk": ess_bulk,
        "min_ess_tail": ess_tail,
        "divergences": divergences,
        "min_bfmi": bfmi,
        "mcse": mcse_table(tree),
        "thresholds": {
            "max_rhat": t.max_rhat,
            "min_ess_bulk": t.min_ess_bulk,
            "min_ess_tail": t.min_ess_tail,
            "max_divergences": t.max_divergences,
            "min_bfmi": t.min_bfmi,
        },
        "failures": failures,
        "ok": not failures,
    }
