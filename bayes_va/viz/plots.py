"""Figures of a fit: forest plot, follow-up curves, subgroup proportions (matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory
from scipy.special import expit
from scipy.stats import beta

from bayes_va.fitting.results import FitResult
from bayes_va.viz.figure import save_figure, subplots


def _percent_axis(ax: Any, log: bool = True) -> None:
    if log:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(axis="x", color="0.9")


def study_label(row: Mapping[str, Any], study: str) -> str:
    """Name a study as a reader knows it: 'Author Year' where the table has both, else its id."""
    author, year = row.get("author"), row.get("year")
    if isinstance(author, str) and author and year is not None and not pd.isna(year):
        return f"{author} {int(year)}"
    return study


def study_labels(result: FitResult) -> dict[str, str]:
    """Return :func:`study_label` of every study of a fit, by study id."""
    table = result.data.table
    rows = (
        {str(r["study_id"]): r for r in table.to_dict(orient="records")}
        if "study_id" in table
        else {}
    )
    return {s: study_label(rows.get(s, {}), s) for s in result.studies()["study"]}


def _exact_ci(events: int, n: int) -> tuple[float, float]:
    """Return the exact (Clopper–Pearson) 95 % interval of a binomial proportion."""
    lo = beta.ppf(0.025, events, n - events + 1) if events > 0 else 0.0
    hi = beta.ppf(0.975, events + 1, n - events) if events < n else 1.0
    return float(lo), float(hi)


def _weights(st: pd.DataFrame, tau: float | None) -> np.ndarray:
    """Random-effects weights in %: 1 / (v_i + tau^2) with v_i the logit's variance (+0.5)."""
    y, n = st.events.to_numpy(float), st.n.to_numpy(float)
    v = 1 / (y + 0.5) + 1 / (n - y + 0.5)
    w = 1 / (v + (tau or 0.0) ** 2)
    return 100 * w / w.sum()


def _pct_ci(m: float, lo: float, hi: float) -> str:
    digits = 2 if hi < 0.1 else 1
    return f"{100 * m:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


#: Smallest text in any figure, in points at printed size (figures are placed at their width).
MIN_FONT_PT = 7.0


def forest(
    result: FitResult,
    path: str | Path,
    labels: Mapping[str, str] | None = None,
    width_in: float = 6.5,
) -> Path:
    """Draw a forest plot in the form of ``meta::forest``: text columns beside the intervals.

    One row per study: its label ("Author Year" from the table's ``author``/``year`` columns,
    else the study id), events / n, the observed proportion with its exact binomial 95 % CI
    (grey square), the shrunken posterior proportion with its 95 % CrI (blue dot) and the
    random-effects weight. Below: the pooled posterior (diamond), the prediction interval, the
    classical GLMM (open diamond) and a line with the spread (95 % interval) and k. Log-scale
    axis; all text at least :data:`MIN_FONT_PT` when the figure is placed at ``width_in``.

    Parameters
    ----------
    result : FitResult
        The fit (any table): its studies and estimates.
    path : str or Path
        Target file; its suffix picks the format (SVG/PDF are vector), none writes PNG and SVG
        (:func:`~bayes_va.viz.figure.save_figure`).
    labels : mapping of str to str, optional
        Display names by study id (default: :func:`study_labels`).
    width_in : float
        Figure width in inches: the width it is printed at (the paper's text width).

    Returns
    -------
    Path
        ``path``.
    """
    st = result.studies()
    est = result.estimates
    names = dict(study_labels(result), **(labels or {}))
    k = len(st)
    fs = MIN_FONT_PT
    tau = est.tau.median if est.tau is not None else None
    weights = _weights(st, tau)
    # rows from the top: header, studies, gap, pooled, prediction, GLMM, heterogeneity
    n_rows = k + 6 + (est.glmm is not None)
    row_in = 0.17
    fig, ax = subplots(figsize=(width_in, row_in * n_rows + 0.55), layout=None)
    bottom_in = 0.42
    fig.subplots_adjust(
        left=0.46,
        right=0.70,
        top=1 - 0.04 / (row_in * n_rows + 0.55),
        bottom=bottom_in / (row_in * n_rows + 0.55),
    )
    ax.set_ylim(0.5, n_rows + 0.5)
    txt = blended_transform_factory(fig.transFigure, ax.transData)
    cols = {
        "label": (0.005, "left"),
        "en": (0.275, "right"),
        "obs": (0.445, "right"),
        "post": (0.715, "left"),
        "w": (0.995, "right"),
    }

    def put(y: float, col: str, s: str, **kw: Any) -> None:
        x, ha = cols[col]
        ax.text(x, y, s, transform=txt, ha=ha, va="center", fontsize=fs, clip_on=False, **kw)

    y = float(n_rows)
    for col, head in [
        ("label", "Study"),
        ("en", "Events/n"),
        ("obs", "Observed [95% CI]"),
        ("post", "Posterior [95% CrI]"),
        ("w", "Weight %"),
    ]:
        put(y, col, head, fontweight="bold")
    xs: list[float] = []
    for i, r in enumerate(st.itertuples()):
        y = n_rows - 1 - i
        lo, hi = _exact_ci(int(r.events), int(r.n))
        ax.plot([100 * max(lo, 1e-3), 100 * hi], [y + 0.17] * 2, color="0.5", lw=0.9)
        ax.plot(100 * max(r.observed, 1e-3), y + 0.17, "s", color="0.5", ms=3)
        ax.plot(
            [100 * r.shrunken_lower, 100 * r.shrunken_upper], [y - 0.17] * 2, color="C0", lw=1.6
        )
        ax.plot(100 * r.shrunken_median, y - 0.17, "o", color="C0", ms=3)
        xs += [100 * max(lo, 1e-3), 100 * hi]
        put(y, "label", names.get(r.study, r.study))
        put(y, "en", f"{int(r.events):,} / {int(r.n):,}")
        put(y, "obs", _pct_ci(r.observed, lo, hi))
        put(y, "post", _pct_ci(r.shrunken_median, r.shrunken_lower, r.shrunken_upper))
        put(y, "w", f"{weights[i]:.1f}")
    y = n_rows - k - 2
    p = est.pooled
    _diamond(ax, y, 100 * p.lower, 100 * p.median, 100 * p.upper, "C3", filled=True)
    put(y, "label", "Pooled", fontweight="bold")
    put(y, "en", f"{int(st.events.sum()):,} / {int(st.n.sum()):,}")
    put(y, "post", _pct_ci(p.median, p.lower, p.upper), fontweight="bold")
    put(y, "w", "100")
    y -= 1
    q = est.predictive
    ax.plot([100 * q.lower, 100 * q.upper], [y, y], color="C1", lw=1.6)
    ax.plot([100 * q.lower, 100 * q.upper], [y, y], "|", color="C1", ms=5)
    put(y, "label", "Prediction (new study)")
    put(y, "post", _pct_ci(q.median, q.lower, q.upper))
    if (g := est.glmm) is not None:
        y -= 1
        _diamond(ax, y, 100 * g.pooled_ci[0], 100 * g.pooled, 100 * g.pooled_ci[1], "k", False)
        put(y, "label", "Classical GLMM (ML, Wald CI)")
        put(y, "obs", _pct_ci(g.pooled, *g.pooled_ci))
    s = est.spread
    sym = "τ" if est.tau is not None else "φ"
    het = f"Heterogeneity: {sym} = {s.median:.2f} [{s.lower:.2f}, {s.upper:.2f}]"
    if g is not None:
        het += f"; GLMM τ̂ = {g.tau:.2f}"
    put(y - 1, "label", het + f"; k = {k} studies")
    ax.axvline(100 * p.median, color="C3", lw=0.6, ls=":", zorder=0)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xscale("log")
    xs += [100 * q.lower, 100 * q.upper]
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.tick_params(labelsize=fs)
    ax.set_xlabel("Proportion, % (log scale)", fontsize=fs)
    ax.grid(axis="x", color="0.92")
    save_figure(fig, path)
    return Path(path)


def _diamond(ax: Any, y: float, lo: float, m: float, hi: float, colour: str, filled: bool) -> None:
    h = 0.32
    ax.fill(
        [lo, m, hi, m],
        [y, y + h, y, y - h],
        facecolor=colour if filled else "white",
        edgecolor=colour,
        lw=0.9,
        zorder=3,
    )


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
    fig, ax = subplots(figsize=(5.0, 3.0), layout=None)
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
    fig, ax = subplots(figsize=(6.5, 0.28 * n + 1.2), layout=None)  # the paper's text width
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
