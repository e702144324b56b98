"""Figures of the model checks: posterior and prior predictive checks, model comparison."""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np

from bayes_va.checking.compare import Comparison
from bayes_va.checking.ppc import PPC_FLAG_P, PredictiveChecks
from bayes_va.checking.psense import PriorPredictive
from bayes_va.viz.figure import save_figure, subplots

__all__ = ["plot_comparison", "plot_ppc", "plot_prior_predictive"]


def plot_ppc(checks: PredictiveChecks, path: str | Path, title: str = "") -> list[Path]:
    """Plot per-study predictive intervals beside the observed values, and the spread.

    Left: per-study predictive intervals (as proportions, log scale) beside the observed
    values; right: the observed spread against its new-study predictive distribution.

    Writes ``path`` with suffixes ``.png`` and ``.svg``; returns the files written.
    """
    s = checks.studies.sort_values("n").reset_index(drop=True)
    fig, (ax, ax2) = subplots(1, 2, figsize=(11, 0.38 * len(s) + 1.8), width_ratios=(2.2, 1))
    pos = np.arange(len(s))
    lo_new, hi_new = s["new_lower"] / s["n"], s["new_upper"] / s["n"]
    lo_rep, hi_rep = s["rep_lower"] / s["n"], s["rep_upper"] / s["n"]
    floor = 0.5 / s["n"].max()
    ax.hlines(
        pos + 0.18,
        np.maximum(lo_new, floor),
        hi_new,
        color="0.65",
        lw=2,
        label="new study of this size (95%)",
    )
    ax.hlines(
        pos - 0.05,
        np.maximum(lo_rep, floor),
        hi_rep,
        color="C0",
        lw=5,
        alpha=0.7,
        label="replicate of this study (95%)",
    )
    colours = np.where(s["flag"], "C3", "k")
    ax.scatter(np.maximum(s["observed"], floor), pos, c=colours, zorder=3, s=22, label="observed")
    ax.set_xscale("log")
    ax.set_yticks(pos, [f"{st} (n={n})" for st, n in zip(s["study"], s["n"], strict=True)])
    ax.set_xlabel("proportion with the event")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_title(f"per-study posterior predictive (red: p < {PPC_FLAG_P:g})", fontsize=9)

    key = "sd of study logits (new)"
    t = checks.draws[key]
    row = checks.statistics[
        (checks.statistics["statistic"] == "sd of study logits")
        & (checks.statistics["kind"] == "new")
    ].iloc[0]
    ax2.hist(t, bins=40, color="0.7")
    ax2.axvline(row["observed"], color="C3" if row["flag"] else "k", lw=2)
    ax2.set_xlabel("SD of study logits")
    ax2.set_title(f"spread: observed vs new studies (p = {row['p_value']:.3f})", fontsize=9)
    ax2.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_prior_predictive(pp: PriorPredictive, path: str | Path, title: str = "") -> list[Path]:
    """Histograms of the prior predictive statistics with the observed values marked."""
    stats_ = pp.statistics
    fig, axes = subplots(1, len(stats_), figsize=(4.0 * len(stats_), 3.0))
    for ax, row in zip(np.atleast_1d(axes), stats_.itertuples(index=False), strict=True):
        t = pp.draws[row.statistic]
        lo, hi = np.quantile(t, [0.005, 0.995])
        ax.hist(np.clip(t, lo, hi), bins=50, color="0.7")
        ax.axvline(row.observed, color="C3" if row.conflict else "k", lw=2)
        ax.set_title(
            f"{row.statistic}\nobserved at percentile {100 * row.percentile:.1f}", fontsize=8
        )
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_comparison(cmp: Comparison, path: str | Path) -> list[Path]:
    """ArviZ's comparison plot (elpd difference from the best model, ± its SE), PNG and SVG.

    Models whose LOO is unreliable are marked with "(k!)" in their label.
    """
    table = cmp.table.rename(
        index={m: f"{m} (k!)" for m in cmp.table.index if not cmp.loos[m].reliable}
    )
    pc = az.plot_compare(table, backend="matplotlib")
    fig = pc.get_viz("figure")
    if not cmp.reliable:
        fig.text(
            0.01,
            0.01,
            "(k!) = Pareto k too high: that model's PSIS elpd is unreliable",
            fontsize=8,
            color="C3",
        )
    return save_figure(fig, path)
