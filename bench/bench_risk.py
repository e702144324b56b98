"""Benchmark of the patient-level risk layer: scoring 10,000 profiles.

Measures, for the recompression and revision models (4,000 draws each):

1. building the model (coefficient draws, pseudo-cohort, per-draw intercept calibration);
2. ``RiskModel.summarise`` on 10,000 random profiles (validation, design matrix, 4,000 x 10,000
   logit draws in blocks, median / 95 % interval / P(risk > 0.1) / per 1,000): the headline,
   target <= 2 s, median of 5 repeats;
3. ``RiskModel.risk`` returning the full ``(sample, patient)`` DataArray (320 MB of float64).

The revision baseline comes from ``results/base`` when that folder exists, else from the exact
quadrature posterior of ``models/base.toml`` (no MCMC). Writes ``bench/reports/risk.json``.
Run: ``.venv/bin/python bench/bench_risk.py [--profiles N] [--repeats R]``. Not part of CI.
"""

from __future__ import annotations

import argparse
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
TARGET_S = 2.0
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


def bench_model(name: str, build, profiles: pd.DataFrame, repeats: int) -> dict:
    build_s, _, model = timed(build, 1)
    summ_s, summ_all, table = timed(lambda: model.summarise(profiles, warn=False), repeats)
    risk_s, _, arr = timed(lambda: model.risk(profiles, warn=False), 1)
    row = {
        "draws": model.n_draws,
        "build_s": round(build_s, 4),
        "summarise_s": round(summ_s, 4),
        "summarise_all_s": [round(t, 4) for t in summ_all],
        "risk_array_s": round(risk_s, 4),
        "risk_array_mb": round(arr.nbytes / 2**20, 1),
        "median_risk_quartiles": [
            round(float(q), 4) for q in table["median"].quantile([0.25, 0.5, 0.75])
        ],
        "meets_target": summ_s <= TARGET_S,
    }
    print(
        f"{name:<14} build {build_s:6.2f} s   summarise {len(profiles):,} profiles "
        f"{summ_s:6.2f} s (target <= {TARGET_S:g})   full array {risk_s:6.2f} s"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
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
            "recompression", risk.recompression_model, profiles, args.repeats
        ),
        "revision": bench_model(
            "revision", lambda: risk.revision_model(source), profiles, args.repeats
        ),
    }
    record = {
        "what": "RiskModel.summarise on random profiles: validation, design, logit draws, "
        "median / 95% interval / P(risk > 0.1) / per 1,000",
        "profiles": args.profiles,
        "repeats": args.repeats,
        "target_s": TARGET_S,
        "revision_baseline": source.replace(str(ROOT) + "/", ""),
        "models": results,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    atomic.write_json(OUT / "risk.json", record)
    print(f"wrote {OUT / 'risk.json'}")
    return 0 if all(r["meets_target"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
