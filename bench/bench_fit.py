"""Benchmark of the base revision fit, measured side by side in one run.

Measures
--------
1. Process wall time of ``bayes-va fit models/base.toml``: cold (empty compile cache) and warm
   (second process, same cache), three warm repeats.
2. In-process compile vs sampling seconds and ESS(τ) per second of sampling, for each
   parametrisation (marginal, centred, non-centred) and backend (nutpie, pymc; numpyro if
   installed).
3. Wall time of the exact quadrature posterior (median of 20).

Writes ``bench/reports/fit.json`` and ``bench/reports/fit.md``. Run: ``make bench`` (or
``.venv/bin/python bench/bench_fit.py [--quick]``). Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
TARGETS = {"warm_fit_wall_s": 5.0, "ess_tau_per_s": 30000.0, "exact_s": 0.1}


def process_wall(cache: Path, out: Path, *extra: str) -> float:
    env = dict(os.environ, BAYES_VA_CACHE=str(cache))
    env.pop("PYTENSOR_FLAGS", None)
    cli = Path(sys.executable).with_name("bayes-va")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(cli), "fit", "models/base.toml", "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"fit failed:\n{proc.stdout}\n{proc.stderr}")
    return wall


def sampler_grid(backends: list[str]) -> list[dict]:
    import arviz as az

    from bayes_va.config.model import load_config
    from bayes_va.data.dataset import build_dataset
    from bayes_va.engine.sampling import clear_compiled_cache, run_sampler

    rows = []
    for backend in backends:
        for param in ("marginal", "centred", "noncentred"):
            if param == "marginal" and backend != "nutpie":
                continue  # the marginal likelihood Op has a numba implementation only
            cfg = load_config(
                ROOT / "models/base.toml",
                {"sampler.backend": backend, "model.parametrisation": param},
            )
            data = build_dataset(cfg.data, cfg.data_dir)
            clear_compiled_cache()
            first = run_sampler(cfg, data)
            second = run_sampler(cfg, data)  # warm: reuses the compiled model (nutpie)
            tree = second.tree
            ess_tau = float(az.ess(tree, var_names=["tau"], method="bulk")["tau"].values)
            ess_mu = float(az.ess(tree, var_names=["mu"], method="bulk")["mu"].values)
            names = ["mu", "tau", "theta"]
            rhat = max(float(v.max()) for v in az.rhat(tree, var_names=names).values())
            div = int(tree["sample_stats"]["diverging"].values.sum())
            rows.append(
                {
                    "backend": backend,
                    "parametrisation": param,
                    "compile_s": first.compile_seconds,
                    "first_sample_s": first.sample_seconds,
                    "sample_s": second.sample_seconds,
                    "ess_bulk_tau": ess_tau,
                    "ess_bulk_mu": ess_mu,
                    "ess_tau_per_s": ess_tau / second.sample_seconds,
                    "max_rhat": rhat,
                    "divergences": div,
                }
            )
            print(rows[-1], flush=True)
    return rows


def exact_time(repeats: int = 20) -> float:
    from bayes_va.config.model import load_config
    from bayes_va.data.dataset import build_dataset
    from bayes_va.numerics import exact

    cfg = load_config(ROOT / "models/base.toml")
    data = build_dataset(cfg.data, cfg.data_dir)
    exact.posterior_grid(data.y, data.n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        exact.posterior_grid(data.y, data.n)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="nutpie only, one warm repeat")
    args = parser.parse_args()

    backends = ["nutpie"] if args.quick else ["nutpie", "pymc"]
    if not args.quick and find_spec("numpyro") is not None:
        backends.append("numpyro")

    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "out"
        cold = process_wall(cache, out)
        warm = [process_wall(cache, out) for _ in range(1 if args.quick else 3)]
        # the same without report.md and its figures (what the fit itself costs)
        warm_nr = [process_wall(cache, out, "--no-report") for _ in range(1 if args.quick else 3)]
    grid = sampler_grid(backends)
    ex = exact_time()
    default = next(
        r for r in grid if r["backend"] == "nutpie" and r["parametrisation"] == "marginal"
    )
    nc = next(r for r in grid if r["backend"] == "nutpie" and r["parametrisation"] == "noncentred")
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "process_wall_s": {
            "cold": cold,
            "warm": warm,
            "warm_median": statistics.median(warm),
            "warm_no_report": warm_nr,
            "warm_no_report_median": statistics.median(warm_nr),
        },
        "samplers": grid,
        "exact_posterior_s": ex,
        "default_vs_noncentred_ess_tau_ratio": default["ess_bulk_tau"] / nc["ess_bulk_tau"],
        "targets": TARGETS,
        "met": {
            "warm_fit_wall_s": statistics.median(warm_nr) <= TARGETS["warm_fit_wall_s"],
            "ess_tau_per_s": default["ess_tau_per_s"] >= TARGETS["ess_tau_per_s"],
            "exact_s": ex <= TARGETS["exact_s"],
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fit.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Base-fit benchmark (`bench/bench_fit.py`)",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}",
        "",
        f"- `bayes-va fit models/base.toml` process wall: cold {cold:.1f} s, warm median "
        f"{statistics.median(warm):.1f} s with report.md, {statistics.median(warm_nr):.1f} s with "
        f"`--no-report` (target ≤ {TARGETS['warm_fit_wall_s']} s)",
        f"- exact quadrature posterior: {ex * 1000:.1f} ms (target ≤ 100 ms)",
        "",
        "| backend | parametrisation | compile s | sample s | ESS(τ) | ESS(τ)/s | max R̂ | div |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in grid:
        lines.append(
            f"| {r['backend']} | {r['parametrisation']} | {r['compile_s']:.2f} | "
            f"{r['sample_s']:.2f} | {r['ess_bulk_tau']:.0f} | {r['ess_tau_per_s']:.0f} | "
            f"{r['max_rhat']:.3f} | {r['divergences']} |"
        )
    (OUT / "fit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
