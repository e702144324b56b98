"""Outputs of an SBC run: coverage table, summary files, report, the rank figure and rank hash.

Used by :mod:`bayes_va.workflows.sbc`, which re-exports every name here. The figure is drawn by
:func:`bayes_va.viz.sbc.plot_sbc` (``plot`` here, the old name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_va.checking.sbc import SBCSummary
from bayes_va.core import atomic
from bayes_va.viz.sbc import HIST_BAND_PROB as HIST_BAND_PROB
from bayes_va.viz.sbc import plot_sbc

if TYPE_CHECKING:
    from bayes_va.workflows.sbc import SBCResult

#: The figure's old name (callers and ``bayes_va.workflows.sbc`` re-export it).
plot = plot_sbc


def coverage_markdown(coverage: pd.DataFrame) -> str:
    """Format the coverage table as Markdown (percent, 95 % Clopper–Pearson interval)."""
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
    """Format the verdict table, the run's verdict and its power statement as Markdown."""
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
        plot_sbc(s, out / "sbc")  # sbc.png and sbc.svg
    return out


def hash_ranks(summary: SBCSummary) -> str:
    """SHA-256 of the rank table's ranks and truths (equal runs give equal hashes)."""
    cols = [c for c in summary.ranks.columns if c != "fit_seconds"]
    blob = summary.ranks[cols].to_csv(index=False, float_format="%.17g").encode()
    return hashlib.sha256(blob).hexdigest()
