"""Outputs of an SBC run: coverage table, summary files, report, the rank figure and rank hash.

Used by :mod:`bayes_va.workflows.sbc`, which re-exports every name here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from bayes_va.checking.sbc_stats import BAND_PROB, ecdf_band
from bayes_va.core import atomic
from bayes_va.viz.figure import save_figure

if TYPE_CHECKING:
    from bayes_va.workflows.sbc import SBCResult, SBCSummary

#: Pointwise band of the rank histogram (binomial, per bin), as in Talts et al.'s figures.
HIST_BAND_PROB = 0.99


def coverage_markdown(coverage: pd.DataFrame) -> str:
    """The coverage table as Markdown (percent, 95 % Clopper–Pearson interval)."""
    lines = [
        "| quantity | nominal | covered % (95% CI) | n | nominal inside CI |",
        "|---|---|---|---|---|",
    ]
    for r in coverage.itertuples():
        lines.append(
            f"| {r.quantity} | {100 * r.level:g}% | {100 * r.covered:.1f} "
            f"({100 * r.lower:.1f}–{100 * r.upper:.1f}) | {r.n} | "
            f"{'yes' if r.ok else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def verdicts_markdown(summary: SBCSummary) -> str:
    """The verdict table, the run's verdict and its power statement, as Markdown."""
    s = summary
    lines = [
        "| quantity | n | ECDF test p | Holm-adjusted p | p (diagnostics ok only) | "
        "z(mean rank) | z(rank var) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in s.verdicts.itertuples():
        verdict = f"**{r.verdict}**" if r.miscalibrated else r.verdict.split(" (", 1)[0]
        lines.append(
            f"| {r.quantity} | {r.n} | {r.ecdf_p:.4f} | {r.ecdf_p_holm:.4f} | "
            f"{r.ecdf_p_diagnostics_ok:.4f} | {r.z_mean:+.2f} | {r.z_var:+.2f} | {verdict} |"
        )
    lines += ["", f"**Verdict**: {s.verdict()}", ""]
    if s.power is not None and s.miscalibrated:
        lines += [f"Power of this run: {s.power.text()}", ""]
    lines += [
        "Rule: a quantity is miscalibrated when its Holm-adjusted ECDF p-value is at most "
        f"alpha = {s.alpha:g} (family-wise over the {len(s.verdicts)} quantities); the exit code "
        "of `bayes-va sbc` is 3 then, 0 otherwise (docs/sbc.md). Not rejecting is not evidence "
        "of calibration: the power statement says what this N could have detected.",
        "",
    ]
    return "\n".join(lines)


def report_markdown(result: SBCResult) -> str:
    """``sbc_report.md``: the verdicts, the power statement and the coverage table."""
    s, spec = result.summary, result.spec
    head = (
        f"{len(s.ranks)} replications fitted ({len(s.errors)} raised, "
        f"{s.n_failed_diagnostics} failed their diagnostics and are kept), ranks among {s.thin} "
        "thinned posterior draws"
    )
    if spec.k:
        head += f", k = {spec.k} studies per dataset"
    head += "."
    if not result.report.complete:
        head += f" **Incomplete**: {len(result.report.lost)} task(s) lost, rerun with `--resume`."
    lines = [f"# SBC of {spec.config.name}", "", head, "", verdicts_markdown(s), "## Coverage", ""]
    return "\n".join(lines) + "\n" + coverage_markdown(s.coverage)


def _power_record(summary: SBCSummary) -> dict[str, Any] | None:
    if summary.power is None:
        return None
    rec = dataclasses.asdict(summary.power)
    rec["statement"] = summary.power.text()
    return rec


def write_outputs(result: SBCResult) -> Path:
    """Write the rank, coverage and summary tables, report and figure into the run folder."""
    out, s = result.out_dir, result.summary
    atomic.write_text(out / "sbc_ranks.csv", s.ranks.to_csv(index=False, float_format="%.10g"))
    atomic.write_text(out / "sbc_coverage.csv", s.coverage.to_csv(index=False, float_format="%.6g"))
    atomic.write_text(out / "sbc_coverage.md", coverage_markdown(s.coverage))
    atomic.write_text(out / "sbc_report.md", report_markdown(result))
    rep = result.report
    fit_s = s.ranks["fit_seconds"]
    summary = {
        "config": result.spec.config.name,
        "config_hash": result.spec.config.hash(),
        "k": result.spec.k,
        "thin": s.thin,
        "replications": int(len(s.ranks) + len(s.errors)),
        "fitted": len(s.ranks),
        "errors": len(s.errors),
        "failed_diagnostics": s.n_failed_diagnostics,
        "lost_this_call": len(rep.lost),
        "verdicts": s.verdicts.replace({np.nan: None}).to_dict(orient="records"),
        "coverage": s.coverage.replace({np.nan: None}).to_dict(orient="records"),
        "alpha": s.alpha,
        "miscalibrated": s.miscalibrated,
        "calibrated": s.calibrated,  # deprecated: = not miscalibrated (no claim of calibration)
        "verdict": s.verdict(),
        "power": _power_record(s),
        "wall_seconds_this_call": rep.wall_seconds,
        "fits_this_call": len(rep.ran),
        "median_fit_seconds": float(fit_s.median()) if len(fit_s) else None,
        "where": rep.where,
    }
    atomic.write_text(
        out / "sbc_summary.json",
        json.dumps(summary, indent=2, sort_keys=True, default=float) + "\n",
    )
    if len(s.ranks):
        plot(s, out / "sbc.png")
        plot(s, out / "sbc.svg")
    return out


def plot(summary: SBCSummary, path: str | Path, bins: int | None = None) -> None:
    """Rank histograms (top) and ECDF differences with simultaneous bands (bottom).

    Fits that failed their diagnostics are stacked in red on the histograms, so they are seen,
    not dropped; the grey band is the 99 % range of a bin count under uniform ranks. Below, the
    grey band is the exact simultaneous 95 % band of one quantity, the dashed lines the band at
    ``1 - alpha / m`` (a curve outside them is rejected at Holm's first step, family-wise).
    """
    import matplotlib.pyplot as plt


    quantities = [c.removeprefix("rank_") for c in summary.ranks.columns if c.startswith("rank_")]
    values = summary.thin + 1
    if bins is None:
        bins = next((b for b in (20, 25, 10, 5) if values % b == 0 and values // b >= 2), values)
    n = len(summary.ranks)
    fig, axes = plt.subplots(
        2, len(quantities), figsize=(2.9 * len(quantities), 5.2), squeeze=False
    )
    edges = np.linspace(0, values, bins + 1)
    lo, hi = stats.binom.ppf([(1 - HIST_BAND_PROB) / 2, (1 + HIST_BAND_PROB) / 2], n, 1 / bins)
    ok = summary.ranks["diagnostics_ok"].to_numpy()
    verdicts = summary.verdicts.set_index("quantity")
    fw_prob = 1.0 - summary.alpha / len(quantities)
    fw_lo, fw_hi = ecdf_band(n, summary.thin, fw_prob) if n else (None, None)
    for col, q in enumerate(quantities):
        r = summary.ranks[f"rank_{q}"].to_numpy()
        ax = axes[0, col]
        ax.axhspan(lo, hi, color="0.88", zorder=0)
        ax.axhline(n / bins, color="0.5", lw=0.8)
        ax.hist(
            [r[ok], r[~ok]],
            bins=edges,
            stacked=True,
            color=["C0", "C3"],
            label=["diagnostics ok", "failed diagnostics"],
        )
        ax.set_title(q, fontsize=10)
        ax.set_xlabel(f"rank (0–{summary.thin})", fontsize=8)
        t = summary.tests[q]
        ax = axes[1, col]
        ax.fill_between(t.z, t.lower, t.upper, step="mid", color="0.85", zorder=0)
        if fw_lo is not None:
            for b in (fw_lo, fw_hi):
                ax.step(t.z, b, where="mid", color="0.45", lw=0.7, ls="--")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.step(t.z, t.diff, where="mid", color="C0")
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
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def hash_ranks(summary: SBCSummary) -> str:
    """SHA-256 of the rank table's ranks and truths (equal runs give equal hashes)."""
    cols = [c for c in summary.ranks.columns if c != "fit_seconds"]
    blob = summary.ranks[cols].to_csv(index=False, float_format="%.17g").encode()
    return hashlib.sha256(blob).hexdigest()
