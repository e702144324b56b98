"""Scale-out and scaling in k: fits per second on dask, and time per fit for k = 14 .. 10,000.

Measures
--------
1. **Fits per second with 1 and 2 warm workers** (``LocalCluster``, one process per worker, one
   thread each): SBC replications of ``models/base.toml`` (full sampler settings), each worker
   first warmed with one fit (its model compiled), then ``--tasks`` replications timed.
   Target: >= 1.7x from 1 to 2 workers.
2. **Time per fit against k** for the ``centred`` and ``marginal`` parametrisations (nutpie,
   numba backend): simulated registries of k studies (sizes drawn from the revision studies,
   mu = -3.2, tau = 0.9), each k in a fresh process so compile time is counted once (cold) and
   then a second fit on new data of the same k (warm: compiled model reused). Reported:
   compile, sampling, and the sampler's wall time; the posterior of mu/tau; divergences.
   Target: k = 10,000 in <= 30 s. The rest of :func:`bayes_va.fit` (derived quantities,
   diagnostics, the exact quadrature reference, the GLMM) is timed separately for k <= 1,000:
   see the notes in the report.

Writes ``bench/reports/scaling.json`` and ``bench/reports/scaling.md``. Run:
``.venv/bin/python bench/bench_scaling.py [--quick] [--skip-workers] [--skip-k]``. Not part of CI.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
SIZES = (843, 1395, 80864, 1932, 86, 827, 79225, 1646, 102, 2465, 109, 173, 14527, 1523)
TARGET_SPEEDUP = 1.7
TARGET_K10000_S = 30.0


def _warm(config_path: str) -> int:
    """Worker warm-up: one fit of the base config (compiles the model in this process)."""
    import os

    from bayes_va.engine.kernel import kernel_policy
    from bayes_va.fitting.run import fit

    with kernel_policy("compiled"):  # the kernel SBC replications use (workflows/sbc.py)
        fit(config_path)
    return os.getpid()


def workers_benchmark(n_tasks: int, worker_counts: tuple[int, ...]) -> list[dict]:
    """Fits per second of SBC replications on warm local clusters of each size."""
    from bayes_va.config.model import load_config
    from bayes_va.workflows.executor import ClusterSpec, dask_client, run_tasks
    from bayes_va.workflows.sbc import SBCSpec, replicate

    cfg = load_config(ROOT / "models/base.toml")
    spec = SBCSpec(cfg, SIZES)
    rows = []
    for w in worker_counts:
        with dask_client(ClusterSpec(n_workers=w)) as client, tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            client.run(_warm, str(ROOT / "models/base.toml"))
            warm_s = time.perf_counter() - t0
            report = run_tasks(
                functools.partial(replicate, spec),
                n_tasks,
                tmp,
                base_seed=1,
                client=client,
                progress=False,
            )
        rows.append(
            {
                "workers": w,
                "tasks": n_tasks,
                "wall_s": report.wall_seconds,
                "fits_per_s": n_tasks / report.wall_seconds,
                "warmup_s": warm_s,
            }
        )
        print(
            f"  {w} worker(s): {rows[-1]['fits_per_s']:.2f} fits/s "
            f"({n_tasks} fits in {report.wall_seconds:.1f} s)",
            flush=True,
        )
    return rows


def _k_child(param: str, k: int, full_fit: bool, warm: bool) -> dict:
    """One k and parametrisation, in this (fresh) process: cold then warm sampler runs.

    The warm run (and the derived quantities) are skipped where they would take minutes:
    the centred route at k = 10,000 (~2 min per run; its derived log-likelihood with
    bayes_va.numerics.exact another ~3 min).
    """
    import numpy as np

    from bayes_va.config.model import load_config
    from bayes_va.data.dataset import from_counts
    from bayes_va.engine.derived import add_derived
    from bayes_va.engine.sampling import run_sampler

    cfg = load_config(ROOT / "models/base.toml", {"model.parametrisation": param})
    out = {"parametrisation": param, "k": k}
    for label, seed in (("cold", k), ("warm", k + 1))[: 2 if warm else 1]:
        rng = np.random.default_rng(seed)
        n = rng.choice(np.array(SIZES), k)
        y = rng.binomial(n, 1.0 / (1.0 + np.exp(-rng.normal(-3.2, 0.9, k))))
        data = from_counts(y, n)
        t0 = time.perf_counter()
        run = run_sampler(cfg, data)
        wall = time.perf_counter() - t0
        st, post = run.tree["sample_stats"], run.tree["posterior"]
        out[label] = {
            "sampler_wall_s": wall,
            "compile_s": run.compile_seconds,
            "sample_s": run.sample_seconds,
            "grad_evals_draws": int(st["n_steps"].sum()),
            "divergences": int(st["diverging"].sum()),
            "mu_mean": float(post["mu"].mean()),
            "tau_mean": float(post["tau"].mean()),
        }
        if label == "warm":
            t0 = time.perf_counter()
            add_derived(run.tree, data, cfg.sampler.seed)
            out[label]["derived_s"] = time.perf_counter() - t0
            if full_fit:
                from bayes_va.fitting.run import fit

                t0 = time.perf_counter()
                res = fit(cfg, data=data)
                out[label]["fit_s"] = time.perf_counter() - t0
                out[label]["fit_timings"] = res.diagnostics.timings.to_dict()
    return out


def k_benchmark(ks: tuple[int, ...], params: tuple[str, ...], save=None) -> list[dict]:
    rows = []
    for k in ks:
        for param in params:
            cmd = [sys.executable, __file__, "--child", param, str(k)]
            if k <= 1000:
                cmd.append("--full-fit")
            if k <= 1000 or param == "marginal":
                cmd.append("--warm")
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-3000:])
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            if save is not None:
                save(rows)
            c, w = row["cold"], row["warm"]
            print(
                f"  k={k:>6} {param:<10} cold {c['sampler_wall_s']:6.1f} s "
                f"(compile {c['compile_s']:.1f}) warm {w['sampler_wall_s']:6.1f} s; derived "
                f"{w['derived_s']:.1f} s"
                + (f"; whole fit {w['fit_s']:.1f} s" if "fit_s" in w else ""),
                flush=True,
            )
    return rows


def report(result: dict) -> str:
    lines = [
        "# Scale-out (dask) and scaling in k",
        "",
        f"Machine: {result['machine']}; {result['date']}.",
        "",
    ]
    if result.get("workers"):
        lines += [
            "## Fits per second, warm workers (SBC replications of models/base.toml)",
            "",
            "| workers | fits | wall s | fits/s | speed-up |",
            "|---|---|---|---|---|",
        ]
        base = result["workers"][0]["fits_per_s"]
        for r in result["workers"]:
            lines.append(
                f"| {r['workers']} | {r['tasks']} | {r['wall_s']:.1f} | "
                f"{r['fits_per_s']:.2f} | {r['fits_per_s'] / base:.2f}x |"
            )
        if before := result.get("workers_before"):
            lines += [
                "",
                f"Before (measured {before['date']}, before issue 16's kernels): "
                + ", ".join(
                    f"{r['workers']} worker(s) {r['fits_per_s']:.2f} fits/s"
                    for r in before["rows"]
                )
                + ". Target (issue 16, 5): >= 3 fits/s on 2 workers: **"
                + ("met" if result["workers"][-1]["fits_per_s"] >= 3.0 else "missed")
                + f"** ({result['workers'][-1]['fits_per_s']:.2f}).",
            ]
        sp = result["workers"][-1]["fits_per_s"] / base
        lines += [
            "",
            f"Target >= {TARGET_SPEEDUP}x: **{'met' if sp >= TARGET_SPEEDUP else 'missed'}**"
            f" ({sp:.2f}x).",
            "",
        ]
    if result.get("k"):
        lines += [
            "## Time per fit against k (nutpie, numba backend, 4 chains x (1000 + 1000))",
            "",
            "Sampler wall = compile (cold only) + sampling. *warm*: a second dataset "
            "of the same k, compiled model reused.",
            "",
            "| k | route | cold sampler s (compile) | warm sampler s | grad evals "
            "(draws) | divergences | mean mu, tau | derived s | whole fit s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]

        def num(d: dict, key: str) -> str:
            return f"{d[key]:.1f}" if key in d else "–"

        for r in result["k"]:
            c = r["cold"]
            w = r.get("warm", {})
            last = w or c
            lines.append(
                f"| {r['k']} | {r['parametrisation']} | {c['sampler_wall_s']:.1f} "
                f"({c['compile_s']:.1f}) | {num(w, 'sampler_wall_s')} | "
                f"{last['grad_evals_draws']} | {last['divergences']} | {last['mu_mean']:.3f}, "
                f"{last['tau_mean']:.3f} | {num(w, 'derived_s')} | {num(w, 'fit_s')} |"
            )
        big = [r for r in result["k"] if r["k"] == 10000]
        for r in big:
            ok = r["cold"]["sampler_wall_s"] <= TARGET_K10000_S
            lines.append("")
            lines.append(
                f"k = 10,000, {r['parametrisation']}: cold sampler "
                f"{r['cold']['sampler_wall_s']:.1f} s -> target <= {TARGET_K10000_S:g} s "
                f"**{'met' if ok else 'missed'}**."
            )
    lines += ["", "Notes are in bench/README.md (section *Scale-out (dask) and SBC*).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tasks, k up to 1,000")
    ap.add_argument("--tasks", type=int, default=60)
    ap.add_argument("--skip-workers", action="store_true")
    ap.add_argument("--skip-k", action="store_true")
    ap.add_argument("--ks", help="comma-separated k values (default: 14,100,1000,10000)")
    ap.add_argument("--child", nargs=2, metavar=("PARAM", "K"), help=argparse.SUPPRESS)
    ap.add_argument("--full-fit", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_k_child(args.child[0], int(args.child[1]), args.full_fit, args.warm)))
        return
    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    if not args.skip_workers:
        print("fits per second, 1 and 2 warm workers:", flush=True)
        result["workers"] = workers_benchmark(20 if args.quick else args.tasks, (1, 2))
    OUT.mkdir(parents=True, exist_ok=True)
    old = json.loads((OUT / "scaling.json").read_text()) if (OUT / "scaling.json").exists() else {}

    if "workers" in result and "workers" in old and "workers_before" not in old:
        # issue 16 asks for each figure beside the one it replaced: keep the first measurement
        old["workers_before"] = {"date": old.get("date"), "rows": old["workers"]}

    def save(k_rows: list[dict] | None = None) -> None:
        merged = {**old, **result}
        if k_rows is not None:  # replace the rows of the (k, route) pairs measured now
            done = {(r["k"], r["parametrisation"]) for r in k_rows}
            kept = [r for r in old.get("k", []) if (r["k"], r["parametrisation"]) not in done]
            merged["k"] = sorted(kept + k_rows, key=lambda r: (r["k"], r["parametrisation"]))
        (OUT / "scaling.json").write_text(json.dumps(merged, indent=2) + "\n")
        (OUT / "scaling.md").write_text(report(merged))

    if not args.skip_k:
        print("time per fit against k:", flush=True)
        ks = (14, 100, 1000) if args.quick else (14, 100, 1000, 10000)
        if args.ks:
            ks = tuple(int(v) for v in args.ks.split(","))
        save(k_benchmark(ks, ("marginal", "centred"), save=save))
    else:
        save()
    print(f"wrote {OUT / 'scaling.md'}")


if __name__ == "__main__":
    main()
