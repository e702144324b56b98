"""Does the default config hold on the proportions data users bring? (issue 13)

Measures, with ``models/base.toml`` and only the data swapped:

1. **Simulation grid** of rare-event proportion meta-analyses, on the dask executor: designs
   k in {3, 5, 10, 30, 100} with study sizes log-uniform on [10, 100,000] (drawn per dataset),
   plus the 14 real revision sizes; true pooled proportion in {0.005, 0.04, 0.3}; tau in
   {0.05, 0.5, 1.5}; theta_i ~ N(logit p, tau), y_i ~ Binomial(n_i, expit theta_i), zero-event
   studies as they fall. ``--reps`` datasets per cell for the default parametrisation (19 -> 1,026
   datasets) and ``--compare-reps`` per cell for the other two parametrisations (side by side,
   same datasets: dataset seeds depend on the cell and replicate only). Targets for the default:
   >= 99.5 % of fits pass every diagnostic and none has a divergent transition; the
   2.5/50/97.5 % quantiles of the pooled proportion and tau lie within 3 MCSE of the exact
   quadrature posterior (:mod:`bayes_va.numerics.exact`) in >= 99 % of fits.
2. **Public proportion datasets** (``bench/data/metadat/*.csv``, exported from the R package
   metadat; each file names its source): every default fit passes its checks.
3. **The 14 revision studies**: ESS(tau) per second of sampling for each parametrisation over
   ``--seeds`` seeds in one process (warm compiled models). Target: the default within 2x of
   the former centred default.

SBC of the base model with N >= 1,000 is ``bench/bench_sbc.py --replications 1000``.

Writes ``bench/reports/robustness.json`` and ``bench/reports/robustness.md``; the grid's task
records go to ``results/robustness/`` (git-ignored; ``--resume`` completes an interrupted run).
Run: ``.venv/bin/python bench/bench_robustness.py [--reps 19] [--compare-reps 5] [--resume]``.
Not part of CI (about 20-30 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
RUNS = ROOT / "results" / "robustness"
METADAT = ROOT / "bench" / "data" / "metadat"
BASE = ROOT / "models" / "base.toml"

#: The 14 revision studies' sizes (data/revision_studies.csv, base case).
REVISION_SIZES = (843, 1395, 80864, 1932, 86, 827, 79225, 1646, 102, 2465, 109, 173, 14527, 1523)
DESIGNS = ("k3", "k5", "k10", "k30", "k100", "real14")
POOLED = (0.005, 0.04, 0.3)
TAUS = (0.05, 0.5, 1.5)
PARAMETRISATIONS = ("marginal", "centred", "noncentred")
N_MIN, N_MAX = 10, 100_000
#: A quantile within this many MCSEs of the exact one counts as agreeing (issue 13's target).
Z_MAX = 3.0
TARGET_PASS = 0.995
TARGET_AGREE = 0.99
TARGET_ESS_RATIO = 0.5
BASE_SEED = 20261130
#: Words that name each kind of failed check in bayes_va.fitting.diagnostics' messages.
FAILURE_KINDS = ("R-hat", "bulk ESS", "tail ESS", "divergent", "E-BFMI")

CELLS = list(itertools.product(DESIGNS, POOLED, TAUS))


def simulate(design: str, pooled: float, tau: float, rng: np.random.Generator):
    """Counts of one simulated dataset of a grid cell."""
    if design == "real14":
        n = np.asarray(REVISION_SIZES, dtype=np.int64)
    else:
        k = int(design[1:])
        n = np.exp(rng.uniform(np.log(N_MIN), np.log(N_MAX), size=k)).round().astype(np.int64)
    theta = rng.normal(np.log(pooled / (1 - pooled)), tau, size=n.size)
    y = rng.binomial(n, 1.0 / (1.0 + np.exp(-theta)))
    return y, n


@functools.cache
def _base_config():
    from bayes_va.config.model import load_config

    return load_config(BASE)


QUANTILES = (("lower", "q2.5", 0.025), ("median", "q50", 0.5), ("upper", "q97.5", 0.975))


def _mcmc_quantiles(est: Any, diag: Any) -> dict[str, Any]:
    """MCMC 2.5/50/97.5 % quantiles of the pooled proportion and tau, with their MCSEs."""
    return {
        name: {
            q: {
                "value": getattr(getattr(est, name), key),
                "mcse": diag.mcse[name].to_dict()[q],
            }
            for key, q, _ in QUANTILES
        }
        for name in ("pooled", "tau")
    }


def exact_z(y, n, mcmc: dict[str, Any]) -> dict[str, float] | str:
    """(MCMC - exact) / MCSE per quantile, or the reason the exact reference failed."""
    from bayes_va.fitting.run import exact_posterior

    try:
        ex = exact_posterior(_base_config(), _data(y, n))
    except Exception as exc:  # recorded and counted as a disagreement, never dropped
        return f"{type(exc).__name__}: {exc}"
    with np.errstate(divide="ignore", invalid="ignore"):
        return _z(ex, mcmc)


def _z(ex, mcmc: dict[str, Any]) -> dict[str, float]:
    return {
        # a zero MCSE (a stuck chain) gives inf/nan: counted as a disagreement
        f"{name}_{q}": float(
            np.divide(np.float64(v["value"]) - float(ex.quantile(name, prob)), v["mcse"])
        )
        for name in ("pooled", "tau")
        for (_, q, prob), v in zip(QUANTILES, mcmc[name].values(), strict=True)
    }


def _data(y, n):
    from bayes_va.data.dataset import from_counts

    return from_counts(np.asarray(y), np.asarray(n))


def grid_task(parametrisation: str, reps: int, index: int, seed: int) -> dict[str, Any]:
    """Fit one simulated dataset (module-level: a dask task).

    The dataset depends on the cell and replicate only (not on the parametrisation), so every
    parametrisation sees the same data; ``seed`` drives the sampler. The counts and the MCMC
    quantiles are stored, so the exact reference is computed (and can be recomputed) apart.
    """
    from bayes_va.fitting.run import fit

    cell, rep = divmod(index, reps)
    design, pooled, tau = CELLS[cell]
    rng = np.random.default_rng([BASE_SEED, cell, rep])
    y, n = simulate(design, pooled, tau, rng)
    cfg = _base_config().replace(
        **{"model.parametrisation": parametrisation, "sampler.seed": seed % 2**32}
    )
    t0 = time.perf_counter()
    result = fit(cfg, data=_data(y, n), reference=False)
    wall = time.perf_counter() - t0
    d, est = result.diagnostics, result.estimates
    return {
        "parametrisation": parametrisation,
        "design": design,
        "pooled": pooled,
        "tau": tau,
        "rep": rep,
        "k": int(n.size),
        "y": y.tolist(),
        "n": n.tolist(),
        "zero_event_studies": int(np.sum(y == 0)),
        "ok": bool(d.ok),
        "failures": list(d.failures),
        "divergences": int(d.divergences),
        "max_rhat": d.max_rhat,
        "min_ess_bulk": d.min_ess_bulk,
        "mcmc": _mcmc_quantiles(est, d),
        "fit_seconds": wall,
    }


def _exact_task(row: dict[str, Any]) -> dict[str, float] | str:
    return exact_z(row["y"], row["n"], row["mcmc"])


def add_exact(rows: list[dict], client) -> list[dict]:
    """Attach ``z`` (or ``exact_error``) to every row; the quadrature runs on the cluster."""
    import bench_robustness as me

    out = client.gather(client.map(me._exact_task, rows, pure=False))
    for row, z in zip(rows, out, strict=True):
        if isinstance(z, str):
            row["z"], row["exact_error"] = None, z
        else:
            row["z"] = z
    return rows


def run_grid(parametrisation: str, reps: int, workers: int | None, resume: bool) -> list[dict]:
    """Every cell x ``reps`` datasets for one parametrisation, on a local dask cluster."""
    from bayes_va.workflows.executor import ClusterSpec, TaskStore, run_tasks

    out = RUNS / f"{parametrisation}_r{reps}"
    report = run_tasks(
        functools.partial(grid_task, parametrisation, reps),
        len(CELLS) * reps,
        out,
        base_seed=BASE_SEED,
        manifest={"parametrisation": parametrisation, "reps": reps, "bench": "robustness"},
        cluster=ClusterSpec(n_workers=workers),
        resume=resume or out.exists(),
        desc=parametrisation,
    )
    print(f"{parametrisation}: {report.n_tasks} fits in {report.wall_seconds:.0f} s")
    records = TaskStore(out).records()
    errors = [r for r in records if r["status"] != "ok"]
    if errors:
        raise SystemExit(f"{len(errors)} grid fits raised; first: {errors[0].get('error')}")
    return [r["result"] for r in records]


def load_grid(parametrisation: str, reps: int) -> list[dict]:
    """The stored grid fits of an earlier run (``--skip-grid``)."""
    from bayes_va.workflows.executor import TaskStore

    records = TaskStore(RUNS / f"{parametrisation}_r{reps}").records()
    if len(records) != len(CELLS) * reps or any(r["status"] != "ok" for r in records):
        raise SystemExit(f"incomplete grid run for {parametrisation}: rerun without --skip-grid")
    return [r["result"] for r in records]


def summarise_grid(rows: list[dict]) -> dict[str, Any]:
    """Pass rates, divergences and agreement with the exact posterior, overall and by cell."""
    n = len(rows)
    keys = sorted(next(r["z"] for r in rows if r["z"] is not None))
    # an exact reference that failed counts as a disagreement (never dropped)
    z = np.array([[r["z"][key] for key in keys] if r["z"] else [np.inf] * len(keys) for r in rows])
    agree = np.all(np.abs(z) <= Z_MAX, axis=1)
    by_cell = {}
    for (design, pooled, tau), group in itertools.groupby(
        sorted(rows, key=lambda r: (DESIGNS.index(r["design"]), r["pooled"], r["tau"])),
        key=lambda r: (r["design"], r["pooled"], r["tau"]),
    ):
        g = list(group)
        gz = np.array(
            [[r["z"][key] for key in keys] if r["z"] else [np.inf] * len(keys) for r in g]
        )
        by_cell[f"{design}|{pooled}|{tau}"] = {
            "fits": len(g),
            "failed": sum(not r["ok"] for r in g),
            "with_divergences": sum(r["divergences"] > 0 for r in g),
            "disagree": int(np.sum(~np.all(np.abs(gz) <= Z_MAX, axis=1))),
        }
    failures: dict[str, int] = {}
    for r in rows:
        for f in r["failures"]:
            kind = next((c for c in FAILURE_KINDS if c in f), "other")
            failures[kind] = failures.get(kind, 0) + 1
    finite = np.all(np.isfinite(z), axis=1)
    return {
        "fits": n,
        "pass_rate": float(np.mean([r["ok"] for r in rows])),
        "fits_with_divergences": int(sum(r["divergences"] > 0 for r in rows)),
        "total_divergences": int(sum(r["divergences"] for r in rows)),
        "agree_rate": float(np.mean(agree)),
        "zero_event_datasets": int(sum(r["zero_event_studies"] > 0 for r in rows)),
        "exact_failed": int(sum(r["z"] is None for r in rows)),
        "exact_errors": sorted({r["exact_error"] for r in rows if r["z"] is None})[:5],
        "median_fit_seconds": float(np.median([r["fit_seconds"] for r in rows])),
        "z_quantiles": {
            key: dict(
                zip(
                    ("q0.5", "q2.5", "q50", "q97.5", "q99.5"),
                    np.quantile(z[finite, j], [0.005, 0.025, 0.5, 0.975, 0.995]).round(3).tolist(),
                    strict=True,
                )
            )
            for j, key in enumerate(keys)
        },
        "share_abs_z_above_3": {
            key: float(np.mean(np.abs(z[:, j]) > Z_MAX)) for j, key in enumerate(keys)
        },
        "failure_kinds": failures,
        "by_cell": by_cell,
    }


def public_datasets() -> list[dict]:
    """Default fits of the exported metadat proportion datasets."""
    import pandas as pd

    from bayes_va.data.dataset import from_counts
    from bayes_va.fitting.run import fit

    rows = []
    for path in sorted(METADAT.glob("*.csv")):
        table = pd.read_csv(path)
        source = (path.with_suffix(".txt").read_text().strip().splitlines() or [""])[0]
        data = from_counts(table["events"].to_numpy(), table["n"].to_numpy(), table["study"])
        for par in PARAMETRISATIONS:
            cfg = _base_config().replace(**{"model.parametrisation": par})
            r = fit(cfg, data=data, reference=False)
            d, est = r.diagnostics, r.estimates
            z = exact_z(data.y, data.n, _mcmc_quantiles(est, d))
            row = {
                "dataset": path.stem,
                "source": source,
                "parametrisation": par,
                "k": data.k,
                "zero_event_studies": int(np.sum(data.y == 0)),
                "ok": bool(d.ok),
                "failures": list(d.failures),
                "divergences": int(d.divergences),
                "pooled_median": est.pooled.median,
                "max_abs_z": max(abs(v) for v in z.values()) if isinstance(z, dict) else None,
                "exact_error": z if isinstance(z, str) else None,
            }
            rows.append(row)
            print(f"  {path.stem} [{par}]: ok={row['ok']} div={row['divergences']}")
    return rows


def revision_efficiency(seeds: int) -> list[dict]:
    """ESS(tau) per second of sampling on the 14 revision studies, per parametrisation."""
    import arviz as az

    from bayes_va.fitting.run import fit

    rows = []
    for par in PARAMETRISATIONS:
        fit(BASE, overrides={"model.parametrisation": par}, reference=False)  # compile once
    for seed, par in itertools.product(range(seeds), PARAMETRISATIONS):
        r = fit(
            BASE,
            overrides={"model.parametrisation": par, "sampler.seed": 1000 + seed},
            reference=False,
        )
        ess = float(az.ess(r.tree, var_names=["tau"])["tau"])
        t = r.diagnostics.timings
        assert t is not None
        rows.append(
            {
                "parametrisation": par,
                "seed": 1000 + seed,
                "ess_tau": ess,
                "sample_seconds": t.sample_seconds,
                "fit_seconds": t.fit_seconds,
                "ess_tau_per_sample_second": ess / t.sample_seconds,
                "ess_tau_per_fit_second": ess / t.fit_seconds,
                "divergences": int(r.diagnostics.divergences),
            }
        )
    return rows


def _median_by(rows: list[dict], key: str) -> dict[str, float]:
    return {
        p: float(np.median([r[key] for r in rows if r["parametrisation"] == p]))
        for p in PARAMETRISATIONS
    }


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def write_report(report: dict[str, Any]) -> None:
    """``robustness.json`` and a readable ``robustness.md``."""
    from bayes_va.core.atomic import write_json, write_text

    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "robustness.json", report)
    default = report["default"]
    g = report["grid"][default]
    lines = [
        "# Robustness of the default config (`bench/bench_robustness.py`)",
        "",
        f"Machine: {report['machine']}; {report['date']}. Default parametrisation: "
        f"`{default}` (models/base.toml).",
        "",
        "## 1. Simulation grid",
        "",
        f"{len(DESIGNS)} designs x {len(POOLED)} pooled proportions x {len(TAUS)} tau = "
        f"{len(CELLS)} cells; study sizes log-uniform on [{N_MIN}, {N_MAX:,}] (or the 14 real "
        "sizes); zero-event studies as they fall. Each fit: 4 chains x 1,000 draws after 500 "
        "tuning steps; agreement = every one of the 2.5/50/97.5 % quantiles of the pooled "
        f"proportion and tau within {Z_MAX:g} MCSE of the exact quadrature posterior.",
        "",
        "| parametrisation | fits | pass every diagnostic | fits with divergences | "
        "quantiles agree | datasets with a zero-event study | median fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for par, s in report["grid"].items():
        lines.append(
            f"| {par} | {s['fits']} | {100 * s['pass_rate']:.1f} % | "
            f"{s['fits_with_divergences']} ({s['total_divergences']} transitions) | "
            f"{100 * s['agree_rate']:.1f} % | {s['zero_event_datasets']} | "
            f"{s['median_fit_seconds']:.2f} |"
        )
    t = report["targets"]
    lines += [
        "",
        f"Targets for the default (`{default}`): pass >= {100 * TARGET_PASS:.1f} %: "
        f"{_verdict(t['pass'])} ({100 * g['pass_rate']:.2f} %); no divergent transition: "
        f"{_verdict(t['no_divergences'])} ({g['fits_with_divergences']} fits); quantiles "
        f"within {Z_MAX:g} MCSE in >= {100 * TARGET_AGREE:.0f} %: {_verdict(t['agree'])} "
        f"({100 * g['agree_rate']:.2f} %: all six quantiles of a fit at once). Per quantile, "
        f"{100 * (1 - max(g['share_abs_z_above_3'].values())):.1f}-"
        f"{100 * (1 - min(g['share_abs_z_above_3'].values())):.1f} % of fits lie within "
        f"{Z_MAX:g} MCSE (99.73 % if z were exactly standard normal); exact reference failures: "
        f"{g['exact_failed']}.",
        "",
        f"Distribution of z = (MCMC - exact) / MCSE for the default ({g['fits']} fits):",
        "",
        "| quantity | 0.5 % | 2.5 % | 50 % | 97.5 % | 99.5 % | share |z| > 3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, q in g["z_quantiles"].items():
        lines.append(
            f"| {key} | {q['q0.5']:+.2f} | {q['q2.5']:+.2f} | {q['q50']:+.2f} | "
            f"{q['q97.5']:+.2f} | {q['q99.5']:+.2f} | "
            f"{100 * g['share_abs_z_above_3'][key]:.2f} % |"
        )
    lines += [
        "",
        "Cells with any failed fit, divergence or disagreement (fits / failed / with "
        "divergences / disagree), per parametrisation:",
        "",
        "| cell (design, p, tau) | " + " | ".join(report["grid"]) + " |",
        "|---|" + "---|" * len(report["grid"]),
    ]
    cells = sorted(
        {
            c
            for s in report["grid"].values()
            for c, v in s["by_cell"].items()
            if v["failed"] or v["with_divergences"] or v["disagree"]
        },
        key=lambda c: (DESIGNS.index(c.split("|")[0]), c),
    )
    for c in cells:
        vals = []
        for s in report["grid"].values():
            v = s["by_cell"].get(c)
            vals.append(
                f"{v['fits']}/{v['failed']}/{v['with_divergences']}/{v['disagree']}" if v else "-"
            )
        lines.append(f"| {c.replace('|', ', ')} | " + " | ".join(vals) + " |")
    if not cells:
        lines.append("| (none) |" + " |" * len(report["grid"]))
    lines += ["", "Failed checks by kind:", ""]
    for par, s in report["grid"].items():
        lines.append(f"- {par}: {s['failure_kinds'] or 'none'}")

    lines += [
        "",
        "## 2. Public proportion datasets (metadat)",
        "",
        "| dataset | k | zero-event studies | parametrisation | passes checks | divergences "
        "| pooled median | max abs z vs exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["public"]:
        z = f"{r['max_abs_z']:.2f}" if r["max_abs_z"] is not None else r["exact_error"]
        lines.append(
            f"| {r['dataset']} | {r['k']} | {r['zero_event_studies']} | {r['parametrisation']} "
            f"| {'yes' if r['ok'] else 'NO: ' + '; '.join(r['failures'])} | {r['divergences']} "
            f"| {r['pooled_median']:.4f} | {z} |"
        )
    lines += [
        "",
        f"Every default fit passes its checks: {_verdict(t['public'])}.",
        "",
        "## 3. The 14 revision studies: ESS(tau) per second",
        "",
        f"{report['revision_seeds']} seeds per parametrisation in one process (models compiled "
        "before timing). Medians:",
        "",
        "| parametrisation | ESS(tau) | sampling s | ESS(tau)/s of sampling | "
        "ESS(tau)/s of the whole fit |",
        "|---|---|---|---|---|",
    ]
    rev = report["revision"]
    med = {
        k: _median_by(rev, k)
        for k in (
            "ess_tau",
            "sample_seconds",
            "ess_tau_per_sample_second",
            "ess_tau_per_fit_second",
        )
    }
    for p in PARAMETRISATIONS:
        lines.append(
            f"| {p} | {med['ess_tau'][p]:.0f} | {med['sample_seconds'][p]:.3f} | "
            f"{med['ess_tau_per_sample_second'][p]:.0f} | {med['ess_tau_per_fit_second'][p]:.0f} |"
        )
    ratio = report["revision_ratio"]
    lines += [
        "",
        f"Default / centred, ESS(tau) per second of sampling: {ratio['sampling']:.2f} "
        f"(per second of the whole fit: {ratio['whole_fit']:.2f}); target >= "
        f"{TARGET_ESS_RATIO:g}: {_verdict(t['revision'])}.",
        "",
    ]
    write_text(OUT / "robustness.md", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=19, help="datasets per cell, default route")
    ap.add_argument("--compare-reps", type=int, default=5, help="datasets per cell, others")
    ap.add_argument("--seeds", type=int, default=5, help="revision-data seeds per route")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--skip-grid", action="store_true", help="reuse the stored grid fits")
    ap.add_argument("--grid-only", action="store_true", help="run the grid fits and stop")
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite robustness.md from robustness.json"
    )
    args = ap.parse_args()
    if args.report_only:
        write_report(json.loads((OUT / "robustness.json").read_text()))
        return
    # dask workers import this module by name to run grid_task
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    )
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_robustness as me  # the importable copy of this module (for pickling tasks)

    default = _base_config().model.parametrisation
    t0 = time.perf_counter()
    runs = {}
    for par in (default, *[p for p in PARAMETRISATIONS if p != default]):
        reps = args.reps if par == default else args.compare_reps
        if reps:
            runs[par] = (
                me.load_grid(par, reps)
                if args.skip_grid
                else me.run_grid(par, reps, args.workers, args.resume)
            )
    if args.grid_only:
        return
    from bayes_va.workflows.executor import ClusterSpec, dask_client

    with dask_client(ClusterSpec(n_workers=args.workers)) as client:
        grid = {par: me.summarise_grid(me.add_exact(rows, client)) for par, rows in runs.items()}
    print("public datasets")
    public = me.public_datasets()
    print("revision efficiency")
    rev = me.revision_efficiency(args.seeds)
    med = _median_by(rev, "ess_tau_per_sample_second")
    med_fit = _median_by(rev, "ess_tau_per_fit_second")
    g = grid[default]
    targets = {
        "pass": g["pass_rate"] >= TARGET_PASS,
        "no_divergences": g["fits_with_divergences"] == 0,
        "agree": g["agree_rate"] >= TARGET_AGREE,
        "public": all(r["ok"] for r in public if r["parametrisation"] == default),
        "revision": med[default] / med["centred"] >= TARGET_ESS_RATIO,
    }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "default": default,
        "design": {
            "designs": list(DESIGNS),
            "revision_k": len(REVISION_SIZES),
            "n_range": [N_MIN, N_MAX],
            "pooled": list(POOLED),
            "tau": list(TAUS),
            "z_max": Z_MAX,
            "target_pass": TARGET_PASS,
            "target_agree": TARGET_AGREE,
            "target_ess_ratio": TARGET_ESS_RATIO,
        },
        "grid": grid,
        "public": public,
        "revision": rev,
        "revision_seeds": args.seeds,
        "revision_ratio": {
            "sampling": med[default] / med["centred"],
            "whole_fit": med_fit[default] / med_fit["centred"],
        },
        "targets": targets,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_report(report)
    print((OUT / "robustness.md").read_text())


if __name__ == "__main__":
    main()
