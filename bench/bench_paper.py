"""Benchmark of the paper build: cold full build and warm rebuild after one config change.

Copies ``data/``, ``models/`` and ``paper/`` (sources only) into a temporary project, then times
``bayes-va paper --clean`` (every fit runs; the persistent compile cache of the machine is used
as it is) and, after changing one prior value in one sensitivity config, ``bayes-va paper``
(only that scenario refits). Writes ``bench/reports/paper.json`` and ``paper.md``.
Run: ``.venv/bin/python bench/bench_paper.py``. Not part of CI.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
TARGETS = {"cold_s": 300.0, "warm_after_change_s": 20.0}
CHANGED = Path("models/sensitivity/tau_halfnormal_2.toml")


def build(root: Path, *args: str) -> tuple[float, str]:
    cli = Path(sys.executable).with_name("bayes-va")
    t0 = time.perf_counter()
    proc = subprocess.run([str(cli), "paper", *args], cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return wall, proc.stderr


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        shutil.copy(ROOT / "pyproject.toml", root)
        for d in ("data", "models"):
            shutil.copytree(ROOT / d, root / d)
        shutil.copytree(ROOT / "paper", root / "paper", ignore=shutil.ignore_patterns("build"))
        cold, log_cold = build(root, "--clean")
        unchanged, _ = build(root)
        cfg = root / CHANGED
        text = cfg.read_text()
        cfg.write_text(re.sub(r"sigma = 2\.0", "sigma = 2.5", text))
        warm, log_warm = build(root)
        results = json.loads((root / "paper/build/timings.json").read_text())
    refitted = [k for k, v in results["fits"].items() if not v["cached"]]
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cold_full_build_s": cold,
        "rebuild_unchanged_s": unchanged,
        "rebuild_after_one_config_change_s": warm,
        "refitted_after_change": refitted,
        "n_fits": len(results["fits"]),
        "targets": TARGETS,
        "met": {
            "cold_s": cold <= TARGETS["cold_s"],
            "warm_after_change_s": warm <= TARGETS["warm_after_change_s"],
        },
        "last_lines": {
            "cold": log_cold.strip().splitlines()[-1],
            "warm": log_warm.strip().splitlines()[-1],
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "paper.json").write_text(json.dumps(out, indent=2) + "\n")
    md = (
        "# Paper build benchmark (`bench/bench_paper.py`)\n\n"
        f"- cold full build (`bayes-va paper --clean`, {out['n_fits']} fits): {cold:.1f} s "
        f"(target ≤ {TARGETS['cold_s']:.0f} s)\n"
        f"- rebuild, nothing changed: {unchanged:.1f} s\n"
        f"- rebuild after changing `{CHANGED}`: {warm:.1f} s, refitted {refitted} "
        f"(target ≤ {TARGETS['warm_after_change_s']:.0f} s)\n"
    )
    (OUT / "paper.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
