"""Benchmark of the paper build: cold serial vs cold parallel, and rebuilds (issue 16).

Copies ``data/``, ``models/`` and ``paper/`` (sources only) into two temporary projects (so each
starts with an empty ``results/cache``; the machine's compile cache is used as it is) and times:

* a cold serial build (``workers=1``: every fit in this process, one after another);
* a cold parallel build (the default: missing fits on a local dask cluster, one worker a core);
* whether the two ``results.json`` are byte-identical;
* a rebuild with nothing changed, and a rebuild after changing one prior (one refit).

``--mini`` declares the small analyses of ``tests/test_paper.py`` (plus the changed config)
instead of the paper's own and skips the PDF, for a machine where the full build takes too long.
Writes ``bench/reports/paper_build.json`` and ``paper_build.md``.
Run: ``.venv/bin/python bench/bench_paper.py [--mini]``. Not part of CI.
"""

from __future__ import annotations

import argparse
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
TARGETS = {"cold_parallel_s": 90.0, "rebuild_after_change_s": 10.0, "rebuild_unchanged_s": 5.0}
CHANGED = Path("models/sensitivity/tau_halfnormal_2.toml")
#: Before issue 16 (its text; bench/reports/paper.md of 2026-11-23 for the rebuilds).
BEFORE = {
    "cold_serial_s": "193 s (109.5 s after later fixes)",
    "cold_parallel_s": "– (serial only)",
    "rebuild_unchanged_s": "13.9 s",
    "rebuild_after_change_s": "19.7 s",
}
MINI = (
    'base = "models/base.toml"\n'
    'sensitivity = ["models/sensitivity/lin_low.toml",'
    ' "models/sensitivity/tau_halfnormal_2.toml"]\n'
    "leave_one_out = false\n"
    'subgroups = ["models/subgroups/procedure.toml"]\n'
    'avf = ["models/avf/base.toml"]\n'
    "avf_horizons_months = [3.0, 12.0]\n"
)


def project(tmp: Path, name: str, mini: bool) -> Path:
    root = tmp / name
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root)
    for d in ("data", "models"):
        shutil.copytree(ROOT / d, root / d)
    shutil.copytree(ROOT / "paper", root / "paper", ignore=shutil.ignore_patterns("build"))
    if mini:
        (root / "paper" / "analyses.toml").write_text(MINI)
    return root


def build(root: Path, mini: bool, clean: bool = False, workers: int | None = None) -> float:
    """Time one build in a fresh interpreter (imports included, as for ``bayes-va paper``)."""
    if mini:  # no PDF: the API (the CLI always builds one)
        code = (
            "import sys; from bayes_va.workflows.paper import build_paper; "
            f"sys.exit(build_paper(clean={clean}, root={str(root)!r}, "
            f"compile_pdf=False, workers={workers}))"
        )
    else:  # what `bayes-va paper` runs, including its up-to-date check before the imports
        args = ["paper"] + (["--clean"] if clean else [])
        args += [] if workers is None else ["--workers", str(workers)]
        code = f"import sys; from bayes_va.cli.main import main; sys.exit(main({args!r}))"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mini", action="store_true", help="the small analyses of tests/test_paper.py")
    mini = ap.parse_args().mini
    with tempfile.TemporaryDirectory() as tmp:
        ser = project(Path(tmp), "serial", mini)
        par = project(Path(tmp), "parallel", mini)
        cold_serial = build(ser, mini, clean=True, workers=1)
        cold_parallel = build(par, mini, clean=True)
        rj = "paper/build/results.json"
        identical = (ser / rj).read_bytes() == (par / rj).read_bytes()
        n_fits = len(json.loads((par / "paper/build/timings.json").read_text())["fits"])
        unchanged = build(par, mini)
        cfg = par / CHANGED
        cfg.write_text(re.sub(r"sigma = 2\.0", "sigma = 2.5", cfg.read_text()))
        changed = build(par, mini)
        timings = json.loads((par / "paper/build/timings.json").read_text())
    refitted = [k for k, v in timings["fits"].items() if not v["cached"]]
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "project": "mini (tests/test_paper.py analyses, no PDF)" if mini else "full paper",
        "n_fits": n_fits,
        "cold_serial_s": cold_serial,
        "cold_parallel_s": cold_parallel,
        "results_json_byte_identical": identical,
        "rebuild_unchanged_s": unchanged,
        "rebuild_after_change_s": changed,
        "refitted_after_change": refitted,
        "targets": TARGETS,
        "met": {
            "cold_parallel_s": cold_parallel <= TARGETS["cold_parallel_s"],
            "rebuild_after_change_s": changed <= TARGETS["rebuild_after_change_s"],
            "rebuild_unchanged_s": unchanged <= TARGETS["rebuild_unchanged_s"],
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "paper_build.json").write_text(json.dumps(out, indent=2) + "\n")
    def met(key: str, value: float) -> str:
        return "met" if value <= TARGETS[key] else "missed"

    before = BEFORE if not mini else {k: "–" for k in BEFORE}
    md = (
        "# Paper build benchmark (`bench/bench_paper.py`)\n\n"
        f"Project: {out['project']}, {n_fits} fits; {os.cpu_count()} CPUs. "
        "Wall times of a fresh interpreter each (imports included; the full paper through "
        "`bayes-va paper`), compile caches warm.\n\n"
        "| | before (issue 16) | now | target |\n|---|---|---|---|\n"
        f"| cold build, serial (`--serial`) | {before['cold_serial_s']} | {cold_serial:.1f} s "
        "| |\n"
        f"| cold build, parallel (default: dask, one worker a core) | "
        f"{before['cold_parallel_s']} | {cold_parallel:.1f} s | ≤ "
        f"{TARGETS['cold_parallel_s']:.0f} s: {met('cold_parallel_s', cold_parallel)} |\n"
        f"| rebuild, nothing changed | {before['rebuild_unchanged_s']} | {unchanged:.1f} s "
        f"| ≤ {TARGETS['rebuild_unchanged_s']:.0f} s: {met('rebuild_unchanged_s', unchanged)} "
        "|\n"
        f"| rebuild after changing `{CHANGED}` | {before['rebuild_after_change_s']} | "
        f"{changed:.1f} s | ≤ {TARGETS['rebuild_after_change_s']:.0f} s: "
        f"{met('rebuild_after_change_s', changed)} |\n\n"
        f"- results.json byte-identical, serial vs parallel: {identical}\n"
        f"- refitted after the change: {refitted}\n"
    )
    (OUT / "paper_build.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
