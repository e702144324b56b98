"""A whole fit at k = 10,000: wall time by step and peak memory (issue 16, target 4).

One fresh process per run fits a simulated registry of k studies (sizes drawn from the revision
studies, mu = -3.2, tau = 0.9: the generator of ``bench/bench_scaling.py``) with
``bayes_va.fit(models/base.toml, data=...)``, as the CLI would, and reports the wall time of each
step (sampler, derived quantities, prior draws, diagnostics, estimates, GLMM, the rest), the
peak resident memory (``ru_maxrss``) and the posterior of mu and tau. Two runs side by side:
the fit's threads as configured (every core), and ``BAYES_VA_SAMPLER_CORES=1`` (one thread:
what the parallel Numba loops buy). Targets: whole fit <= 15 s, peak RSS <= 2 GiB.

Writes ``bench/reports/big_k.json`` and ``big_k.md``. Run: ``.venv/bin/python bench/bench_big_k.py
[--k 10000]``. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
SIZES = (843, 1395, 80864, 1932, 86, 827, 79225, 1646, 102, 2465, 109, 173, 14527, 1523)
TARGET_S, TARGET_GIB = 15.0, 2.0
#: Before issue 16's work (its text, and bench/reports/scaling.md of 2026-11-23).
BEFORE = {
    "whole_fit_s": "38-47",
    "sampler_s": "16.0 cold (6.6 compile), 8.9 warm",
    "derived_s": "30.1 (stored marginal log-likelihood ~14, theta draws ~8)",
    "peak_rss_gib": "not measured",
}
STEPS = {
    "sampler": ("bayes_va.fitting.run", "run_sampler"),
    "derived": ("bayes_va.fitting.run", "add_derived"),
    "prior draws": ("bayes_va.fitting.run", "add_prior"),
    "diagnostics": ("bayes_va.fitting.run", "compute_diagnostics"),
    "study rows": ("bayes_va.fitting.run", "study_rows"),
    "headline": ("bayes_va.fitting.run", "headline"),
    "GLMM": ("bayes_va.numerics.glmm", "fit_glmm"),
    "log_marginal (in derived)": ("bayes_va.engine.derived", "log_marginal"),
    "draw_theta (in derived)": ("bayes_va.engine.derived", "draw_theta"),
}


def child(k: int) -> dict:
    """Fit once in this process; time each step by wrapping the functions fit calls."""
    import importlib
    import resource

    import numpy as np

    import bayes_va
    from bayes_va.data.dataset import from_counts

    seconds: dict[str, float] = {}
    for label, (module, name) in STEPS.items():
        mod = importlib.import_module(module)
        inner = getattr(mod, name)

        def timed(*a, _f=inner, _label=label, **kw):
            t = time.perf_counter()
            try:
                return _f(*a, **kw)
            finally:
                seconds[_label] = seconds.get(_label, 0.0) + time.perf_counter() - t

        setattr(mod, name, timed)
    rng = np.random.default_rng(k)
    n = rng.choice(np.array(SIZES), k)
    y = rng.binomial(n, 1.0 / (1.0 + np.exp(-rng.normal(-3.2, 0.9, k))))
    t0 = time.perf_counter()
    res = bayes_va.fit(ROOT / "models/base.toml", data=from_counts(y, n))
    wall = time.perf_counter() - t0
    t = res.diagnostics.timings
    post = res.tree["posterior"]
    return {
        "k": k,
        "whole_fit_s": wall,
        "compile_s": t.compile_seconds,
        "sample_s": t.sample_seconds,
        "steps_s": seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "mu_mean": float(post["mu"].mean()),
        "tau_mean": float(post["tau"].mean()),
        "diagnostics_ok": res.ok,
        "exact_reference": res.estimates.exact is not None,
    }


def run(k: int, cores: str | None) -> dict:
    env = dict(os.environ)
    if cores is not None:
        env["BAYES_VA_SAMPLER_CORES"] = cores
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(k)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    run(args.k, None)  # warm the compile caches (a user's second fit of this structure)
    rows = {"every core": run(args.k, None), "one thread": run(args.k, "1")}
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
        "k": args.k,
        "before": BEFORE,
        "runs": rows,
        "targets": {"whole_fit_s": TARGET_S, "peak_rss_gib": TARGET_GIB},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "big_k.json").write_text(json.dumps(out, indent=2) + "\n")
    steps = sorted({s for r in rows.values() for s in r["steps_s"]})
    lines = [
        f"# A whole fit at k = {args.k:,} (`bench/bench_big_k.py`)",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}; {out['date']}. "
        "Fresh process per run, compile caches warm (one untimed run first); "
        "`bayes_va.fit(models/base.toml, data=...)` as the CLI calls it (the quadrature "
        "reference is skipped above its k limit).",
        "",
        "| | before (issue 16) | " + " | ".join(rows) + " |",
        "|---|---|" + "---|" * len(rows),
        f"| whole fit s (target <= {TARGET_S:g}) | {BEFORE['whole_fit_s']} | "
        + " | ".join(f"{r['whole_fit_s']:.1f}" for r in rows.values())
        + " |",
        f"| peak RSS GiB (target <= {TARGET_GIB:g}) | {BEFORE['peak_rss_gib']} | "
        + " | ".join(f"{r['peak_rss_gib']:.2f}" for r in rows.values())
        + " |",
        f"| sampler s | {BEFORE['sampler_s']} | "
        + " | ".join(
            f"{r['steps_s'].get('sampler', float('nan')):.1f} "
            f"(compile {r['compile_s']:.1f})"
            for r in rows.values()
        )
        + " |",
    ]
    for s in steps:
        if s == "sampler":
            continue
        before = BEFORE["derived_s"] if s == "derived" else ""
        lines.append(
            f"| {s} s | {before} | "
            + " | ".join(f"{r['steps_s'].get(s, float('nan')):.2f}" for r in rows.values())
            + " |"
        )
    best = rows["every core"]
    lines += [
        "| mean mu, tau | | "
        + " | ".join(f"{r['mu_mean']:.3f}, {r['tau_mean']:.3f}" for r in rows.values())
        + " |",
        "",
        f"- whole fit <= {TARGET_S:g} s: "
        f"**{'met' if best['whole_fit_s'] <= TARGET_S else 'missed'}**"
        f" ({best['whole_fit_s']:.1f} s); peak RSS <= {TARGET_GIB:g} GiB: "
        f"**{'met' if best['peak_rss_gib'] <= TARGET_GIB else 'missed'}** "
        f"({best['peak_rss_gib']:.2f} GiB).",
        "",
    ]
    (OUT / "big_k.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
