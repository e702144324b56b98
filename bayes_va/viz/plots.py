"""Figures of a fit: forest plot, follow-up curves, subgroup proportions (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter
from scipy.special import expit
from scipy.stats import beta

from bayes_va.fitting.results import FitResult
from bayes_va.viz.figure import save_figure, subplots


def _percent_axis(ax: Any, log: bool = True) -> None:
    if log:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(axis="x", color="0.9")


def forest(result: FitResult, path: str | Path, labels: dict[str, str] | None = None) -> Path:
    """Draw a forest plot: observed and shrunken study proportions, pooled and predictive ones.

    Each study's observed proportion (exact binomial 95 % CI) is drawn beside its shrunken
    posterior one; below them the pooled and predictive proportions and the classical GLMM.

    Parameters
    ----------
    result : FitResult
        The fit; its estimates give the pooled, predictive and (if present) GLMM rows.
    path : str or Path
        Target file; its suffix picks the format, none writes PNG and SVG
        (:func:`~bayes_va.viz.figure.save_figure`).
    labels : dict of str to str, optional
        Display names of studies by study id (default: the ids).

    Returns
    -------
    Path
        ``path``.
    """
    st = result.studies()
    est = result.estimates
    k = len(st)
    fig, ax = subplots(figsize=(7.2, 0.32 * (k + 4) + 0.9), layout=None)
    y0 = k + 3
    for i, r in enumerate(st.itertuples()):
        y = y0 - i
        lo = beta.ppf(0.025, r.events, r.n - r.events + 1) if r.events > 0 else 0.0
        hi = beta.ppf(0.975, r.events + 1, r.n - r.events) if r.events < r.n else 1.0
        ax.plot([100 * max(lo, 1e-4), 100 * hi], [y + 0.15] * 2, color="0.55", lw=1)
        ax.plot(100 * max(r.observed, 1e-4), y + 0.15, "s", color="0.55", ms=3.5)
        ax.plot([100 * r.shrunken_lower, 100 * r.shrunken_upper], [y - 0.15] * 2, color="C0", lw=2)
        ax.plot(100 * r.shrunken_median, y - 0.15, "o", color="C0", ms=3.5)
    names = [
        (labels or {}).get(s, s) + f"  {e}/{n}"
        for s, e, n in zip(st.study, st.events, st.n, strict=True)
    ]
    rows = [
        (2, "pooled (posterior)", est.pooled, "C3"),
        (1, "predictive (new study)", est.predictive, "C1"),
    ]
    for y, _, s, c in rows:
        ax.plot([100 * s.lower, 100 * s.upper], [y, y], color=c, lw=3 if y == 2 else 1.5)
        ax.plot(100 * s.median, y, "D", color=c, ms=5)
    ticks = [y0 - i for i in range(k)] + [2, 1]
    ticklabels = names + [r[1] for r in rows]
    g = est.glmm
    if g is not None:
        ax.plot([100 * g.pooled_ci[0], 100 * g.pooled_ci[1]], [0, 0], color="k", lw=2)
        ax.plot(100 * g.pooled, 0, "D", color="k", ms=5)
        ticks.append(0)
        ticklabels.append("classical GLMM (ML, Wald)")
    ax.set_yticks(ticks)
    ax.set_yticklabels(ticklabels, fontsize=7)
    _percent_axis(ax)
    ax.set_xlabel(
        "proportion, % (log scale); grey: observed with exact 95% CI, blue: shrunken 95% CrI",
        fontsize=8,
    )
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def followup_curve(
    result: FitResult,
    path: str | Path,
    moderator: str = "log_followup_months",
    months: tuple[float, float] = (1.0, 36.0),
    outcome: str = "risk",
) -> Path:
    """Pooled cumulative risk against follow-up with a 95 % band and the observed studies."""
    grid = np.geomspace(*months, 60)
    draws = np.stack([expit(result.linear_predictor({moderator: m}).values.ravel()) for m in grid])
    lo, med, hi = np.quantile(draws, [0.025, 0.5, 0.975], axis=1)
    fig, ax = subplots(figsize=(6.0, 3.6), layout=None)
    ax.fill_between(grid, 100 * lo, 100 * hi, color="C0", alpha=0.25, lw=0)
    ax.plot(grid, 100 * med, color="C0")
    table = result.data.table
    if "followup_months" in table:
        fu = table["followup_months"].astype(float).to_numpy()
        ax.scatter(
            fu,
            100 * result.data.y / result.data.n,
            s=8 + 40 * result.data.n / result.data.n.max(),
            color="0.3",
            zorder=3,
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("follow-up, months (log scale)")
    ax.set_ylabel(f"cumulative {outcome}, %")
    ax.grid(color="0.92")
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def subgroups(results: dict[str, FitResult], path: str | Path) -> Path:
    """Posterior proportion per subgroup level, one panel row per categorical moderator."""
    entries = []
    for name, res in results.items():
        for s in res.estimates.moderators.subgroups:
            entries.append((f"{s.moderator}: {s.level}", s, name))
    fig, ax = subplots(figsize=(6.0, 0.3 * len(entries) + 1.0), layout=None)
    for i, (_, s, _) in enumerate(entries):
        y = len(entries) - i
        ax.plot([100 * s.lower, 100 * s.upper], [y, y], color="C0", lw=2.5)
        ax.plot(100 * s.median, y, "o", color="C0", ms=4)
    ax.set_yticks([len(entries) - i for i in range(len(entries))])
    ax.set_yticklabels([e[0] for e in entries], fontsize=8)
    _percent_axis(ax)
    ax.set_xlabel("population-mean revision proportion, % (95% CrI; log scale)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def plot_sensitivity(
    table: pd.DataFrame, path: str | Path, formats: Sequence[str] | None = None
) -> list[Path]:
    """Forest-style figure: pooled (dot, thick) and predictive (thin) intervals per scenario.

    ``table`` is :func:`bayes_va.workflows.sensitivity.run_sensitivity`'s; ``path`` and
    ``formats`` as in :func:`bayes_va.viz.figure.save_figure`.
    """
    n = len(table)
    fig, ax = subplots(figsize=(7.5, 0.28 * n + 1.2), layout=None)
    ys = list(range(n))[::-1]
    base = table.iloc[0]
    ax.axvline(100 * base.pooled_median, color="0.6", lw=0.8, ls="--", zorder=0)
    for y, r in zip(ys, table.itertuples(), strict=True):
        if pd.isna(r.pooled_median):
            ax.text(100 * base.pooled_median, y, "fit failed", color="C3", fontsize=7, va="center")
            continue
        colour = "C0" if r.kind != "leave-one-out" else "C2"
        if not r.diagnostics_ok:
            colour = "C3"
        ax.plot(
            [100 * r.predictive_lower, 100 * r.predictive_upper],
            [y, y],
            color=colour,
            lw=0.8,
            alpha=0.6,
        )
        ax.plot([100 * r.pooled_lower, 100 * r.pooled_upper], [y, y], color=colour, lw=3)
        ax.plot(100 * r.pooled_median, y, "o", color="white", mec=colour, ms=4)
        if pd.notna(r.glmm_pooled):
            ax.plot(100 * r.glmm_pooled, y, "|", color="k", ms=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r.scenario} (k={r.k})" for r in table.itertuples()], fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(
        "revision proportion, % (log scale): thick = pooled 95% CrI, "
        "thin = predictive 95% PI, | = GLMM"
    )
    ax.xaxis.label.set_size(8)
    ax.grid(axis="x", color="0.9")
    fig.tight_layout()
    return save_figure(fig, path, formats)
