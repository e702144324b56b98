"""Per-fit model-checking report: Markdown + PNG/SVG figures, readable without Python.

:func:`write_report` adds to a results folder::

    report.md          convergence (R̂, bulk/tail ESS, MCSE), sampler (divergences, E-BFMI,
                       tree depth), posterior predictive checks, leave-one-study-out with Pareto
                       k per study, prior sensitivity and prior predictive checks, and a verdict
                       in plain words on whether the run can be trusted
    report.json        every number behind it, unrounded
    figures/*.png|svg  trace, rank, energy, PPC, Pareto k, prior predictive, power-scaled
                       posteriors (psense), prior against posterior (fits that store a prior)

Figures are drawn by :mod:`bayes_va.viz` (no display needed). Each file is written atomically.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayes_va.checking.loo import CONDITIONAL, LooReliabilityWarning, marginal_loo, pareto_k_counts
from bayes_va.checking.ppc import PPC_FLAG_P, posterior_predictive_checks
from bayes_va.checking.psense import (
    PRIOR_CONFLICT_P,
    SENSITIVITY_THRESHOLD,
    power_scaling_sensitivity,
    prior_predictive_of,
)
from bayes_va.core import atomic
from bayes_va.core.serialize import json_safe, markdown_table
from bayes_va.viz.checks import plot_comparison, plot_ppc, plot_prior_predictive
from bayes_va.viz.figure import FIGURE_FORMATS, save_plot_collection
from bayes_va.viz.psense import has_prior, plot_power_scaling, plot_prior_vs_posterior

if TYPE_CHECKING:
    from bayes_va.checking.compare import Comparison
    from bayes_va.checking.loo import LooResult
    from bayes_va.checking.ppc import PredictiveChecks
    from bayes_va.fitting.results import FitResult

__all__ = ["FIGURE_FORMATS", "trust_verdict", "write_comparison", "write_report"]

#: Parameters whose convergence the report tabulates (those present).
_TABLE_VARS = ("mu", "tau", "phi", "beta", "theta", "pooled", "predictive")
#: Parameters shown in trace and rank plots (hyperparameters; θ_i are in the table).
_PLOT_VARS = ("mu", "tau", "phi", "beta")


# --------------------------------------------------------------------------- tables




def convergence_table(result: FitResult) -> pd.DataFrame:
    """ArviZ summary (mean, SD, 95 % ETI, bulk/tail ESS, R̂, MCSE of mean and SD), unrounded."""
    # lazy: ArviZ (about 1 s to import) only when a report is made
    import arviz as az

    post = result.tree["posterior"]
    names = [v for v in _TABLE_VARS if v in post.data_vars]
    table = az.summary(
        result.tree, var_names=names, kind="all", round_to="none", ci_prob=0.95, ci_kind="eti"
    )
    return table.reset_index(names="parameter")


def sampler_table(result: FitResult) -> pd.DataFrame:
    """Per chain: divergences, E-BFMI, share of draws at the maximum tree depth, step size."""
    # lazy: ArviZ (about 1 s to import) only when a report is made
    import arviz as az

    stats = result.tree["sample_stats"].dataset
    chains = stats["chain"].values
    frame = pd.DataFrame({"chain": chains})
    if "diverging" in stats:
        frame["divergences"] = stats["diverging"].sum("draw").values.astype(int)
    if "energy" in stats:
        frame["e_bfmi"] = az.bfmi(result.tree)["energy"].values
    if "maxdepth_reached" in stats:
        frame["at_max_depth"] = stats["maxdepth_reached"].mean("draw").values
    elif "reached_max_treedepth" in stats:
        frame["at_max_depth"] = stats["reached_max_treedepth"].mean("draw").values
    if "step_size" in stats:
        frame["step_size"] = stats["step_size"].mean("draw").values
    return frame


# --------------------------------------------------------------------------- verdict


def trust_verdict(result: FitResult) -> tuple[bool, list[str]]:
    """Whether the sampler's output can be trusted, with the reasons in plain words.

    Uses the fit's stored diagnostics against its config's thresholds (R̂, bulk and tail ESS,
    divergences, E-BFMI). Problems with the *model* (predictive checks, LOO) do not make the
    *run* untrustworthy; the report states them separately.
    """
    d = result.diagnostics
    t = d.thresholds
    if not d.failures:
        return True, [
            f"the {result.config.sampler.chains} chains agree (max R-hat {d.max_rhat:.4f} "
            f"<= {t.max_rhat})",
            f"effective sample sizes are large enough (min bulk {d.min_ess_bulk:.0f}, min "
            f"tail {d.min_ess_tail:.0f}; need >= {t.min_ess_bulk:.0f} and "
            f"{t.min_ess_tail:.0f})",
            f"no divergent transitions beyond the {t.max_divergences} allowed "
            f"({d.divergences})",
            f"energy exploration is adequate (min E-BFMI {d.min_bfmi:.2f} >= {t.min_bfmi})",
        ]
    reasons = list(d.failures)
    if d.divergences > t.max_divergences:
        reasons.append(
            "divergent transitions mean the sampler missed part of the posterior: estimates "
            "may be biased even where R-hat and ESS look fine"
        )
    return False, reasons


# --------------------------------------------------------------------------- sections


def _loo_section(loo: LooResult, conditional: LooResult | None) -> list[str]:

    lines = [
        "## Leave-one-study-out cross-validation",
        "",
        f"PSIS-LOO on the **marginal** log-likelihood log p(y_i | mu, tau) (theta_i integrated "
        f"out): elpd = {loo.elpd:.2f} (SE {loo.se:.2f} over studies, Monte-Carlo SE "
        f"{loo.mcse:.3f}), p_loo = {loo.p:.2f}.",
    ]
    if loo.exact_elpd is not None:
        lines.append(
            f"Exact leave-one-study-out by quadrature: elpd = {loo.exact_elpd:.2f} "
            f"(PSIS - exact = {loo.elpd - loo.exact_elpd:+.3f})."
        )
    c = pareto_k_counts(loo.studies["pareto_k"].to_numpy(), loo.good_k)
    lines.append(
        f"Pareto k: {c['good']} of {len(loo.studies)} studies good (<= {loo.good_k:.2f}), "
        f"{c['bad']} bad, {c['very_bad']} very bad (> 1); max {loo.max_k:.2f}."
    )
    lines.append("")
    lines.append(
        f"> **Warning.** {loo.caveat()}"
        if loo.caveat()
        else "All Pareto k values are good: the PSIS-LOO estimate can be used to compare models."
    )
    cols = ["study", "elpd_psis", "mcse", "pareto_k", "k_ok"]
    if "elpd_exact" in loo.studies:
        cols += ["elpd_exact", "psis_minus_exact"]
    lines += ["", markdown_table(loo.studies[cols]), "", "![Pareto k](figures/pareto_k.png)"]
    if conditional is not None:
        cc = pareto_k_counts(conditional.studies["pareto_k"].to_numpy(), conditional.good_k)
        lines += [
            "",
            "For contrast, PSIS-LOO on the *conditional* log-likelihood log Binom(y_i | theta_i) "
            f"gives elpd = {conditional.elpd:.2f} with Pareto k > {conditional.good_k:.2f} for "
            f"{cc['bad'] + cc['very_bad']} of {len(conditional.studies)} studies (max "
            f"{conditional.max_k:.2f}): leaving a study out moves its own theta_i from a "
            "data-pinned posterior back to the population distribution, too far for importance "
            "sampling. It is not used.",
        ]
    return lines


def _ppc_section(ppc: PredictiveChecks) -> list[str]:

    s = ppc.studies
    lines = [
        "## Posterior predictive checks",
        "",
        "Per study: the observed count against replicates of the same study (its own theta_i) "
        "and against a new study of the same size drawn from the fitted population, "
        "cross-validated (p_loo: the population fitted without that study, by PSIS weights). "
        f"Two-sided mid-p values; flagged below {PPC_FLAG_P}.",
        "",
        "![Posterior predictive check](figures/ppc.png)",
        "",
        markdown_table(
            s[
                [
                    "study",
                    "n",
                    "events",
                    "rep_lower",
                    "rep_upper",
                    "p_replicate",
                    "new_lower",
                    "new_upper",
                    "p_loo",
                    "flag",
                ]
            ]
        ),
        "",
        markdown_table(ppc.statistics),
        "",
    ]
    if ppc.ok:
        lines.append("No study and no statistic is flagged: the model reproduces the data.")
    else:
        parts = []
        if ppc.flagged_studies:
            parts.append(f"studies {', '.join(ppc.flagged_studies)}")
        if ppc.flagged_statistics:
            parts.append(f"statistics {', '.join(ppc.flagged_statistics)}")
        lines.append(
            f"**Flagged:** {'; '.join(parts)}. The model does not reproduce these features of "
            "the data; read its estimates with that in mind."
        )
    return lines


def _psense_section(table: pd.DataFrame, prior_pred: Any, prior_posterior: bool) -> list[str]:

    sensitive = table.loc[table["prior_sensitive"], "quantity"].tolist()
    lines = [
        "## Prior sensitivity",
        "",
        "Power-scaling sensitivity (Kallioinen et al. 2024) of each quantity to the top-level "
        "priors and to the marginal likelihood; >= "
        f"{SENSITIVITY_THRESHOLD} flags a quantity (MCSE: between-chain).",
        "",
        markdown_table(table),
        "",
        "![Power-scaled posteriors](figures/psense.png)",
        "",
    ]
    if sensitive:
        border = table.loc[table["prior_sensitive"] & table["borderline"], "quantity"].tolist()
        lines.append(
            f"**Prior-sensitive:** {', '.join(sensitive)}"
            + (f" (borderline: {', '.join(border)})" if border else "")
            + ". Their posteriors depend noticeably on the prior; report the prior with them "
            "and see the sensitivity configs in models/sensitivity/."
        )
    else:
        lines.append("No quantity is prior-sensitive.")
    lines += [
        "",
        *(
            [
                "### Prior and posterior",
                "",
                "![Prior and posterior](figures/prior_posterior.png)",
                "",
            ]
            if prior_posterior
            else []
        ),
        "### Prior predictive check",
        "",
        "Data sets drawn from the prior (same study sizes); the observed statistics should not "
        f"sit in the outer {100 * PRIOR_CONFLICT_P:g} % of them.",
        "",
        "![Prior predictive check](figures/prior_predictive.png)",
        "",
        markdown_table(prior_pred.quantities),
        "",
        markdown_table(prior_pred.statistics),
        "",
        (
            f"**Prior-data conflict** in: {', '.join(prior_pred.conflicts)}."
            if prior_pred.conflicts
            else "No prior-data conflict: the observed data are plausible under the prior."
        ),
    ]
    return lines


# --------------------------------------------------------------------------- the report


def write_report(
    result: FitResult,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = FIGURE_FORMATS,
) -> Path:
    """Write ``report.md``, ``report.json`` and ``figures/`` into ``out_dir``.

    Parameters
    ----------
    result : FitResult
        A fit (fresh, or loaded with :func:`bayes_va.load_result`).
    out_dir : path
        The results folder (usually the one the fit was saved to).
    formats : sequence of str
        Figure formats; PNG is always written (the Markdown links it).

    Returns
    -------
    Path
        The path of ``report.md``.
    """
    # lazy: ArviZ (about 1 s to import) only when a report is made
    import arviz as az


    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    formats = tuple(dict.fromkeys(("png", *formats)))
    name = result.config.name
    tree = result.tree
    post = tree["posterior"]
    plot_vars = [v for v in _PLOT_VARS if v in post.data_vars]

    trusted, reasons = trust_verdict(result)
    conv = convergence_table(result)
    sampler = sampler_table(result)
    with warnings.catch_warnings():
        # the report states unreliable LOO in words; do not also raise it as a warning
        warnings.simplefilter("ignore", LooReliabilityWarning)
        loo = marginal_loo(result)
        conditional = (
            marginal_loo(result, var_name=CONDITIONAL, exact=False)
            if CONDITIONAL in tree["log_likelihood"].data_vars
            else None
        )
    ppc = posterior_predictive_checks(result)
    sens = power_scaling_sensitivity(result)
    prior_pred = prior_predictive_of(result)

    figures: list[Path] = []
    figures += save_plot_collection(
        az.plot_trace_dist(tree, var_names=plot_vars, backend="matplotlib"),
        fig_dir / "trace",
        formats,
    )
    figures += save_plot_collection(
        az.plot_rank(tree, var_names=plot_vars, backend="matplotlib"), fig_dir / "rank", formats
    )
    if "energy" in tree["sample_stats"].data_vars:
        figures += save_plot_collection(
            az.plot_energy(tree, backend="matplotlib"), fig_dir / "energy", formats
        )
    figures += save_plot_collection(
        az.plot_khat(loo.elpd_data, backend="matplotlib"), fig_dir / "pareto_k", formats
    )
    figures += plot_ppc(ppc, fig_dir / "ppc", title=name)
    figures += plot_prior_predictive(prior_pred, fig_dir / "prior_predictive", title=name)
    figures += plot_power_scaling(result, fig_dir / "psense", formats)
    if has_prior(result):  # results saved before fits stored their prior have none
        figures += plot_prior_vs_posterior(result, fig_dir / "prior_posterior", formats)

    d = result.diagnostics
    cfg = result.config
    lines = [
        f"# Model checking report: {name}",
        "",
        f"{cfg.description}".strip(),
        "",
        f"Family `{cfg.model.family}` ({cfg.model.parametrisation}), "
        f"moderators: {', '.join(cfg.model.moderators) or 'none'}; k = {result.data.k} "
        f"studies; {cfg.sampler.chains} chains x {cfg.sampler.draws} draws after "
        f"{cfg.sampler.tune} tuning steps ({cfg.sampler.backend}), seed {cfg.sampler.seed}.",
        "",
        "## Can this run be trusted?",
        "",
        (
            "**Yes.** The sampler's output can be trusted: "
            if trusted
            else "**No. Do not use these estimates.** "
        )
        + "; ".join(reasons)
        + ".",
        "",
        "Model adequacy (separate from the sampler): "
        + (
            "the posterior predictive checks flag nothing"
            if ppc.ok
            else f"the posterior predictive checks flag {len(ppc.flagged_studies)} "
            f"stud{'y' if len(ppc.flagged_studies) == 1 else 'ies'} and "
            f"{len(ppc.flagged_statistics)} statistic(s)"
        )
        + "; leave-one-study-out is "
        + ("reliable" if loo.reliable else "NOT reliable (bad Pareto k)")
        + "; prior-sensitive quantities: "
        + (", ".join(sens.loc[sens["prior_sensitive"], "quantity"]) or "none")
        + ".",
        "",
        "## Convergence",
        "",
        f"Max R-hat {d.max_rhat:.4f}, min bulk ESS {d.min_ess_bulk:.0f}, min tail ESS "
        f"{d.min_ess_tail:.0f}, divergences {d.divergences}, min E-BFMI "
        f"{d.min_bfmi:.3f}.",
        "",
        markdown_table(conv),
        "",
        "### Sampler, per chain",
        "",
        markdown_table(sampler),
        "",
        "![Trace](figures/trace.png)",
        "",
        "![Rank (ECDF difference)](figures/rank.png)",
        "",
    ]
    if "energy" in tree["sample_stats"].data_vars:
        lines += ["![Energy](figures/energy.png)", ""]
    lines += [*_ppc_section(ppc), ""]
    lines += [*_loo_section(loo, conditional), ""]
    lines += [*_psense_section(sens, prior_pred, has_prior(result)), ""]
    lines += [
        "---",
        "All numbers behind this report, unrounded: `report.json`. Figures also as SVG in "
        "`figures/`.",
        "",
    ]
    record = {
        "name": name,
        "trustworthy": trusted,
        "reasons": reasons,
        "diagnostics": {k: v for k, v in d.to_dict().items() if k != "timings"},
        "convergence": conv.to_dict(orient="records"),
        "sampler": sampler.to_dict(orient="records"),
        "loo": loo.to_dict(),
        "loo_conditional": None if conditional is None else conditional.to_dict(),
        "ppc": ppc.to_dict(),
        "prior_sensitivity": sens.to_dict(orient="records"),
        "prior_predictive": prior_pred.to_dict(),
        "figures": sorted(str(p.relative_to(out_dir)) for p in figures),
    }
    atomic.write_json(out_dir / "report.json", json_safe(record))
    report = out_dir / "report.md"
    atomic.write_text(report, "\n".join(lines))
    return report


def write_comparison(cmp: Comparison, out_dir: str | Path) -> Path:
    """Write a model comparison's files and its figure into ``out_dir``.

    Parameters
    ----------
    cmp
        The comparison (:func:`bayes_va.checking.compare.compare_models`).
    out_dir
        Folder for ``compare.md``, ``compare.json``, ``compare.csv`` and ``figures/compare.*``.

    Returns
    -------
    Path
        The path of ``compare.md``.
    """
    plot_comparison(cmp, Path(out_dir) / "figures" / "compare")
    return cmp.save(out_dir)
