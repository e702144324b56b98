"""Benchmark of the patient-level risk layer: scoring 10,000 profiles.

Measures, for the recompression and revision models (4,000 draws each):

1. building the model (coefficient draws, the copula cohort's Sobol' points, per-draw and
   per-replicate intercept calibration);
2. ``RiskModel.summarise`` on 10,000 random profiles (validation, design matrix, 4,000 x 10,000
   logit draws in blocks, median / 95 % interval / P(risk > 0.1) / per 1,000, posterior SD and
   integration MCSE): the headline, target >= 10,000 profiles per second, median of 5 repeats;
3. ``RiskModel.risk`` returning the full ``(sample, patient)`` DataArray (320 MB of float64);
4. the cost of ``--explain``: the pick-freeze designs (one recalibration per source, once per
   model) and the variance split of ``--explain-profiles`` profiles;
5. the calibration's integration error (MCSE of the intercept against its posterior SD).

The revision baseline comes from ``results/base`` when that folder exists, else from the exact
quadrature posterior of ``models/base.toml`` (no MCMC). Writes ``bench/reports/risk.json`` and
``bench/reports/risk.md``; the figures of the previous ``risk.json`` (its ``before`` block, or
the whole file when it has none) are kept as the "before" column.
Run: ``.venv/bin/python bench/bench_risk.py [--profiles N] [--repeats R]``. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
TARGET_PROFILES_PER_S = 10_000
SEED = 20231123


def random_profiles(n: int, seed: int = SEED) -> pd.DataFrame:
    """Profiles spread over the An cohort's range (values as a clinician would type them)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "bmd": rng.uniform(-4.3, 0.2, n).round(1),
            "ivc": rng.choice(["yes", "no"], n),
            "procedure": rng.choice(["PKP", "PVP"], n),
            "endplate_contact": rng.choice(["yes", "no"], n),
            "cement_volume": rng.uniform(1.0, 8.0, n).round(1),
            "anterior_height_recovery": rng.uniform(0.0, 40.0, n).round(1),
        }
    )


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def bench_model(
    name: str, build, profiles: pd.DataFrame, repeats: int, explain_profiles: int
) -> dict:
    build_s, _, model = timed(build, 1)
    summ_s, summ_all, table = timed(lambda: model.summarise(profiles, warn=False), repeats)
    risk_s, _, arr = timed(lambda: model.risk(profiles, warn=False), 1)
    designs_s, _, _ = timed(lambda: model.explainer, 1)
    some = profiles.iloc[:explain_profiles]
    split_s, _, split = timed(lambda: model.explain(some, warn=False), 1)
    per_s = len(profiles) / summ_s
    integ = model.integration()
    row = {
        "draws": model.n_draws,
        "build_s": round(build_s, 4),
        "summarise_s": round(summ_s, 4),
        "summarise_all_s": [round(t, 4) for t in summ_all],
        "profiles_per_s": round(per_s),
        "risk_array_s": round(risk_s, 4),
        "risk_array_mb": round(arr.nbytes / 2**20, 1),
        "explain_designs_s": round(designs_s, 4),
        "explain_profiles": len(some),
        "explain_split_s": round(split_s, 4),
        "explain_profiles_per_s": round(len(some) / split_s),
        "integration_mcse_intercept": round(integ["mcse"], 5),
        "integration_ratio": round(integ["ratio"], 4),
        "integration_points": integ["points"],
        "integration_replicates": integ["replicates"],
        "median_risk_quartiles": [
            round(float(q), 4) for q in table["median"].quantile([0.25, 0.5, 0.75])
        ],
        "meets_target": per_s >= TARGET_PROFILES_PER_S,
    }
    assert len(split) > 0
    print(
        f"{name:<14} build {build_s:6.2f} s   summarise {len(profiles):,} profiles "
        f"{summ_s:6.2f} s = {per_s:,.0f}/s (target >= {TARGET_PROFILES_PER_S:,})   full array "
        f"{risk_s:6.2f} s   --explain: designs {designs_s:5.2f} s + {len(some):,} profiles "
        f"{split_s:5.2f} s   integration MCSE {integ['ratio']:.3f} of the posterior SD"
    )
    return row


#: Rows of risk.md: (label, key, format).
_ROWS = (
    ("build the model (s)", "build_s", "{:.2f}"),
    ("summarise 10,000 profiles (s, median)", "summarise_s", "{:.2f}"),
    ("profiles per second", "profiles_per_s", "{:,.0f}"),
    ("full (sample, patient) array (s)", "risk_array_s", "{:.2f}"),
    ("--explain: pick-freeze designs, once per model (s)", "explain_designs_s", "{:.2f}"),
    ("--explain: variance split per 1,000 profiles (s)", "explain_split_s", "{:.2f}"),
    ("integration MCSE of the intercept (logit)", "integration_mcse_intercept", "{:.4f}"),
    ("integration MCSE / posterior SD", "integration_ratio", "{:.3f}"),
    ("median risk, quartiles over profiles", "median_risk_quartiles", "{}"),
)


def _before(path: Path) -> dict | None:
    """The previous report's figures: its ``before`` block, else the whole (older) file."""
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    keep = ("models", "profiles", "machine", "revision_baseline")
    return old.get("before") or {k: old[k] for k in keep if k in old}


def _cell(model: dict | None, key: str, fmt: str) -> str:
    if model is None:
        return "–"
    value = model.get(key)
    if value is None and key == "profiles_per_s" and model.get("summarise_s"):
        value = 10_000 / model["summarise_s"]  # the old report timed 10,000 profiles
    return "–" if value is None else fmt.format(value)


def markdown(record: dict) -> str:
    """The report as Markdown: each figure beside the one it replaced."""
    before = record.get("before") or {}
    lines = [
        "# Risk layer benchmark (`bench/bench_risk.py`)",
        "",
        f"{record['profiles']:,} random profiles, {record['repeats']} repeats (median), 4,000 "
        f"draws; revision baseline `{record['revision_baseline']}`. Target: >= "
        f"{TARGET_PROFILES_PER_S:,} profiles per second without `--explain`. \"Before\": the "
        "independent-permutation cohort (one calibration per draw over 2,056 rows); \"after\": "
        "the Gaussian-copula cohort (LKJ(2) correlations, Table 1 sampling error, 200 cohort "
        "draws, 8 scrambled Sobol' replicates x 256 points per draw), with the posterior SD and "
        "integration MCSE added to every summary.",
        "",
        f"Machine: {record['machine']['platform']}, {record['machine']['cpu_count']} CPUs, "
        f"Python {record['machine']['python']}, NumPy {record['machine']['numpy']}.",
        "",
    ]
    if before.get("revision_baseline", record["revision_baseline"]) != record["revision_baseline"]:
        lines += [
            f"The \"before\" revision run took its baseline from `{before['revision_baseline']}`.",
            "",
        ]
    for name, after in record["models"].items():
        old = (before.get("models") or {}).get(name)
        lines += [f"## {name}", "", "| | before | after |", "|---|---:|---:|"]
        for label, key, fmt in _ROWS:
            lines.append(f"| {label} | {_cell(old, key, fmt)} | {_cell(after, key, fmt)} |")
        lines.append("")
    lines += [
        "`--explain` cost: the designs recalibrate the intercept once per source (3 for "
        "recompression, 4 for revision), once per model; each profile then costs one matrix "
        "product per source (timed here on "
        f"{next(iter(record['models'].values()))['explain_profiles']:,} profiles).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--explain-profiles", type=int, default=1000)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from bayes_va import risk
    from bayes_va.core import atomic

    profiles = random_profiles(args.profiles)
    base = ROOT / "results" / "base"
    source = (
        str(base) if (base / "posterior.nc").is_file() else f"exact:{ROOT / 'models/base.toml'}"
    )
    results = {
        "recompression": bench_model(
            "recompression",
            risk.recompression_model,
            profiles,
            args.repeats,
            args.explain_profiles,
        ),
        "revision": bench_model(
            "revision",
            lambda: risk.revision_model(source),
            profiles,
            args.repeats,
            args.explain_profiles,
        ),
    }
    record = {
        "what": "RiskModel.summarise on random profiles: validation, design, logit draws, "
        "median / 95% interval / P(risk > 0.1) / per 1,000 / posterior SD / integration MCSE; "
        "the cost of --explain; the calibration's integration error",
        "profiles": args.profiles,
        "repeats": args.repeats,
        "target_profiles_per_s": TARGET_PROFILES_PER_S,
        "revision_baseline": source.replace(str(ROOT) + "/", ""),
        "models": results,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
        },
    }
    record["before"] = _before(OUT / "risk.json")
    OUT.mkdir(parents=True, exist_ok=True)
    atomic.write_json(OUT / "risk.json", record)
    atomic.write_text(OUT / "risk.md", markdown(record))
    print(f"wrote {OUT / 'risk.json'} and {OUT / 'risk.md'}")
    return 0 if all(r["meets_target"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
