"""The SBC figure: rank histograms and rank-ECDF differences with the exact test's bands.

Top row: rank histograms, fits that failed their diagnostics stacked in red (seen, not
dropped), the grey band the 99 % range of a bin count under uniform ranks. Bottom row:
:func:`arviz_plots.plot_ecdf_pit` of the fractional ranks ``(rank + 1/2) / (thin + 1)`` (the
ECDF minus the uniform CDF), with the bands of the *exact* discrete test of
:mod:`bayes_va.checking.sbc_stats` drawn over it: grey, the simultaneous 95 % band of one
quantity; dashed, the band at ``1 - alpha / m`` through the points ``z_j = j / (thin + 1)``
(leaving it is a rejection at Holm's first step, family-wise). ArviZ's own p-value and
highlighted points come from its ``pot_c`` test of continuous PIT values, which over-rejects
tied ranks (see :mod:`bayes_va.checking.sbc_stats`), so they are turned off; the titles carry
the exact p-values and the verdict.

Between two ranks the ECDF of the fractional ranks is flat, so in ECDF-minus-uniform space both
the curve and the exact band fall with slope -1 there; the grey band is drawn that way, so that
the curve leaves it exactly where the count ``#(rank < j)`` leaves the test's interval. ArviZ
evaluates the curve at ``N`` evenly spaced points; with ``N > thin + 1`` every rank interval
holds one of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from arviz_plots import PlotCollection, plot_ecdf_pit
from matplotlib.axes import Axes
from scipy import stats

from bayes_va.checking.sbc import SBCSummary
from bayes_va.checking.sbc_stats import BAND_PROB, ecdf_band
from bayes_va.viz.figure import save_figure, subplots

__all__ = ["HIST_BAND_PROB", "plot_sbc"]

#: Pointwise band of the rank histogram (binomial, per bin), as in Talts et al.'s figures.
HIST_BAND_PROB = 0.99


def _object(x: object) -> np.ndarray:
    """Wrap ``x`` in a 0-d object array (how a PlotCollection stores figures and axes)."""
    out = np.empty((), dtype=object)
    out[()] = x
    return out


def _band_in_delta_space(
    lower: np.ndarray, upper: np.ndarray, thin: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the band of ``ECDF - x`` (given at ``z_j = j / (thin + 1)``) over all of [0, 1].

    ``#(rank < j) / N`` is the ECDF of the fractional ranks on ``[j - 1/2, j + 1/2) / (thin + 1)``,
    so the test's interval for it, ``[lower_j + z_j, upper_j + z_j]``, holds there; below the
    first and above the last fractional rank the ECDF is 0 and 1.
    """
    step = 1.0 / (thin + 1)
    z = np.arange(1, thin + 1) * step
    mid = (np.arange(thin + 1) + 0.5) * step  # the fractional ranks
    starts, ends = np.r_[0.0, mid], np.r_[mid, 1.0]
    x = np.column_stack([starts, ends]).ravel()
    lo = np.repeat(np.r_[0.0, lower + z, 1.0], 2)
    hi = np.repeat(np.r_[0.0, upper + z, 1.0], 2)
    return x, lo - x, hi - x


def _rank_ecdfs(summary: SBCSummary, quantities: list[str], axes: np.ndarray) -> None:
    """Draw :func:`arviz_plots.plot_ecdf_pit` of each quantity's fractional ranks on ``axes``."""
    frac = xr.Dataset(
        {
            q: ("replication", (summary.ranks[f"rank_{q}"].to_numpy() + 0.5) / (summary.thin + 1))
            for q in quantities
        }
    )
    fig = axes[0].get_figure()
    # a PlotCollection over axes of our own figure (the histograms share it)
    viz = xr.DataTree.from_dict(
        {
            "/": xr.Dataset({"figure": _object(fig)}),
            "plot": xr.Dataset({q: _object(ax) for q, ax in zip(quantities, axes, strict=True)}),
            "row_index": xr.Dataset(dict.fromkeys(quantities, 1)),
            "col_index": xr.Dataset({q: j for j, q in enumerate(quantities)}),
        }
    )
    plot_ecdf_pit(
        xr.DataTree.from_dict({"prior_sbc": frac}),
        sample_dims=["replication"],
        plot_collection=PlotCollection(frac, viz, backend="matplotlib"),
        visuals={"p_value_text": False, "suspicious_points": False, "title": False},
    )


def plot_sbc(summary: SBCSummary, path: str | Path, bins: int | None = None) -> list[Path]:
    """Draw rank histograms (top) and rank-ECDF differences with the exact bands (bottom).

    Parameters
    ----------
    summary : SBCSummary
        A run with at least one replication.
    path : path
        Target file (its suffix picks the format, see :func:`bayes_va.viz.figure.save_figure`).
    bins : int, optional
        Histogram bins (default: 20, 25, 10 or 5, whichever divides ``thin + 1``).

    Returns
    -------
    list of Path
        The files written.
    """
    quantities = [c.removeprefix("rank_") for c in summary.ranks.columns if c.startswith("rank_")]
    values = summary.thin + 1
    if bins is None:
        bins = next((b for b in (20, 25, 10, 5) if values % b == 0 and values // b >= 2), values)
    n = len(summary.ranks)
    fig, axes = subplots(2, len(quantities), figsize=(2.9 * len(quantities), 5.6), squeeze=False)
    edges = np.linspace(0, values, bins + 1)
    lo, hi = stats.binom.ppf([(1 - HIST_BAND_PROB) / 2, (1 + HIST_BAND_PROB) / 2], n, 1 / bins)
    ok = summary.ranks["diagnostics_ok"].to_numpy()
    for col, q in enumerate(quantities):
        r = summary.ranks[f"rank_{q}"].to_numpy()
        ax: Axes = axes[0, col]
        ax.axhspan(lo, hi, color="0.88", zorder=0)
        ax.axhline(n / bins, color="0.5", lw=0.8)
        ax.hist(
            [r[ok], r[~ok]],
            bins=list(edges),
            stacked=True,
            color=["C0", "C3"],
            label=["diagnostics ok", "failed diagnostics"],
        )
        ax.set_title(q, fontsize=10)
        ax.set_xlabel(f"rank (0–{summary.thin})", fontsize=8)

    _rank_ecdfs(summary, quantities, axes[1])
    verdicts = summary.verdicts.set_index("quantity")
    fw_prob = 1.0 - summary.alpha / len(quantities)
    fw_lo, fw_hi = ecdf_band(n, summary.thin, fw_prob)
    grid = np.arange(summary.thin + 2) / (summary.thin + 1)  # 0, the points z_j, 1
    fw = (grid, np.r_[0.0, fw_lo, 0.0], np.r_[0.0, fw_hi, 0.0])
    for col, q in enumerate(quantities):
        t = summary.tests[q]
        ax = axes[1, col]
        x, band_lo, band_hi = _band_in_delta_space(t.lower, t.upper, summary.thin)
        ax.fill_between(x, band_lo, band_hi, color="0.85", lw=0, zorder=0)
        for b in fw[1:]:
            ax.plot(fw[0], b, color="0.45", lw=0.7, ls="--")
        reach = max(np.abs(fw[1]).max(), np.abs(fw[2]).max(), np.abs(t.diff).max()) * 1.1
        ax.set_ylim(-reach, reach)
        bad = bool(verdicts.loc[q, "miscalibrated"])
        ax.set_title(
            f"p = {t.p_value:.3f} (Holm {verdicts.loc[q, 'ecdf_p_holm']:.3f}): "
            f"{'MISCAL.' if bad else 'no evidence'}",
            fontsize=8,
            color="C3" if bad else "k",
        )
        ax.set_xlabel("fractional rank", fontsize=8)
    axes[0, 0].set_ylabel("replications")
    axes[1, 0].set_ylabel(
        f"ECDF − uniform ({100 * BAND_PROB:g}% band;\n--: {100 * fw_prob:g}%, family-wise)",
        fontsize=8,
    )
    axes[0, -1].legend(fontsize=7, loc="upper right")
    n_fail = summary.n_failed_diagnostics
    power = f"\n{summary.power.short()}" if summary.power is not None else ""
    fig.suptitle(
        f"SBC: {n} replications ({n_fail} failed diagnostics, shown in red; "
        f"{len(summary.errors)} raised); Holm, family-wise alpha = {summary.alpha:g}{power}",
        fontsize=9,
    )
    return save_figure(fig, path)
