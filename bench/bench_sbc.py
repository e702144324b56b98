"""Simulation-based calibration of the base model at N >= 500 replications, on dask.

Runs ``bayes_va.workflows.sbc.run_sbc("models/base.toml", N)`` (full sampler settings, the 14
revision studies' sizes) on a local cluster with one worker per core, resumable: the run folder
is ``results/sbc/base_bench/`` (git-ignored; rerun with ``--resume`` after an interruption), and
the summary, coverage table and figure are copied to ``bench/reports/sbc_base.*``.

Run: ``.venv/bin/python bench/bench_sbc.py [--replications 500] [--resume] [--workers N]``
(about 6 minutes for 500 on 2 cores). Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
RUN = ROOT / "results" / "sbc" / "base_bench"
KINDS = ("R-hat", "bulk ESS", "tail ESS", "divergent", "E-BFMI")


def main() -> None:
    from bayes_va.workflows.executor import ClusterSpec
    from bayes_va.workflows.sbc import coverage_markdown, run_sbc
    from bayes_va.workflows.sbc_outputs import verdicts_markdown

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=500)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run-dir", default=str(RUN))
    args = ap.parse_args()
    result = run_sbc(
        ROOT / "models/base.toml",
        args.replications,
        args.run_dir,
        overrides=args.set,
        cluster=ClusterSpec(scheduler=args.scheduler, n_workers=args.workers),
        resume=args.resume,
    )
    print(result.text())
    OUT.mkdir(parents=True, exist_ok=True)
    run = Path(args.run_dir)
    summary = json.loads((run / "sbc_summary.json").read_text())
    shutil.copyfile(run / "sbc.png", OUT / "sbc_base.png")
    s = result.summary
    lines = [
        "# SBC of models/base.toml",
        "",
        f"{summary['fitted']} replications fitted ({summary['errors']} raised), "
        f"{summary['failed_diagnostics']} failed their diagnostics (kept in every statistic); "
        f"ranks among {s.thin} thinned draws; exact ECDF test per quantity (Säilynoja et al. "
        f"2022), Holm-adjusted over the quantities, family-wise alpha = {s.alpha:g} "
        "(docs/sbc.md). Figure: `sbc_base.png`.",
        "",
        verdicts_markdown(s),
    ]
    from bayes_va.core import atomic
    from bayes_va.workflows.executor import TaskStore

    fails: dict[str, int] = {}
    div_fits = 0
    for rec in TaskStore(run).records():
        if rec["status"] == "ok":
            div_fits += rec["result"]["diagnostics"]["divergences"] > 0
            for f in rec["result"]["diagnostics"]["failures"]:
                kind = next((c for c in KINDS if c in f), "other")
                fails[kind] = fails.get(kind, 0) + 1
    lines += [
        "## Coverage",
        "",
        coverage_markdown(s.coverage),
        "## Failed diagnostics",
        "",
        "| failed check | fits |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(fails.items(), key=lambda kv: -kv[1])]
    share = div_fits / max(summary["fitted"], 1)
    lines += [
        "",
        f"Fits with any divergent transition: {div_fits} of {summary['fitted']} "
        f"({100 * share:.2f} %; target <= 0.5 %: {'met' if share <= 0.005 else 'missed'}).",
    ]
    summary["fits_with_divergences"] = div_fits
    atomic.write_json(OUT / "sbc_base.json", summary)
    lines += [
        "",
        "(A fit can fail several checks.) Median fit "
        f"{summary['median_fit_seconds']:.2f} s (inside a worker, compile excluded); "
        f"this call ran {summary['fits_this_call']} fits in "
        f"{summary['wall_seconds_this_call']:.0f} s on {summary['where']}.",
        "",
    ]
    (OUT / "sbc_base.md").write_text("\n".join(lines))
    print(f"wrote {OUT / 'sbc_base.md'}")


if __name__ == "__main__":
    main()
