"""The default command against importing PyMC and against brms, in one run (issue 16, target 2).

Side by side, on this machine, in this run:

* ``python -c "import pymc"`` (median of 3): the floor any PyMC-based tool pays;
* ``bayes-va fit models/base.toml`` with warm caches (median of 3), with its report and with
  ``--no-report``, for each nutpie kernel: ``cached`` (the default for a first fit: PyTensor's
  disk-cached Numba function through ``from_pyfunc``) and ``compiled`` (nutpie's cfunc, what
  every process paid before: ``BAYES_VA_KERNEL=compiled``);
* the same command's own split (``-X importtime`` is not used: the CLI prints compile and
  sampling seconds, and the report's share is the difference of the two runs);
* brms: ``bench/r/brms_fit.R`` on the same 14 studies, compile + sample (serial chains), when R
  and brms are installed (``make bench-r`` installs them).

Targets: warm ``bayes-va fit`` (report included) <= 3x ``import pymc``; >= 10x faster than
brms's compile + sample. Writes ``bench/reports/cli.json`` and ``cli.md``. Run:
``.venv/bin/python bench/bench_cli.py [--no-brms]``. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
R_DIR = ROOT / "bench" / "r"
#: Before issue 16 (its text, measured on a quiet machine of this kind).
BEFORE = {
    "import_pymc_s": 1.5,
    "fit_report_s": "23-25",
    "fit_no_report_s": 18.8,
    "ratio": "about 15x",
}


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def median_wall(cmd: list[str], env: dict[str, str] | None = None, repeats: int = 3) -> float:
    return statistics.median(wall(cmd, env) for _ in range(repeats))


def brms_seconds() -> dict[str, float] | None:
    """brms compile + serial sampling of the base data, or None without R and brms."""
    if shutil.which("Rscript") is None:
        return None
    from bayes_va.config.model import load_config
    from bayes_va.data.dataset import build_dataset

    cfg = load_config(ROOT / "models/base.toml")
    data = build_dataset(cfg.data, cfg.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "revision_base.csv"
        counts = zip(data.study, data.y, data.n, strict=True)
        rows = [f"{s},{int(y)},{int(n)}" for s, y, n in counts]
        csv.write_text("study,events,n\n" + "\n".join(rows) + "\n")
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps([{"id": "revision_base", "csv": str(csv)}]))
        out = Path(tmp) / "brms.json"
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["Rscript", str(R_DIR / "brms_fit.R"), str(manifest), str(out), str(Path(tmp) / "d")],
            capture_output=True,
            text=True,
        )
        process = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"brms failed, left out:\n{proc.stderr[-1500:]}", file=sys.stderr)
            return None
        res = json.loads(out.read_text())
    r = res["results"]["revision_base"]
    return {
        "compile_s": float(res["compile_s"]),
        "sample_serial_s": float(r["wall_serial_s"]),
        "compile_plus_sample_s": float(res["compile_s"]) + float(r["wall_serial_s"]),
        "process_s": process,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-brms", action="store_true")
    args = ap.parse_args()
    py = sys.executable
    cli = str(Path(py).with_name("bayes-va"))
    base = dict(os.environ)
    base.pop("BAYES_VA_KERNEL", None)
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = ["--out", str(Path(tmp) / "r")]
        for kernel in ("cached", "compiled"):
            env = dict(base, BAYES_VA_KERNEL=kernel)
            wall([cli, "fit", "models/base.toml", *out], env)  # warm every cache
            rows[f"{kernel}_report_s"] = median_wall([cli, "fit", "models/base.toml", *out], env)
            rows[f"{kernel}_no_report_s"] = median_wall(
                [cli, "fit", "models/base.toml", "--no-report", *out], env
            )
        rows["import_pymc_s"] = median_wall([py, "-c", "import pymc"], base)
    brms = None if args.no_brms else brms_seconds()
    pymc_s = rows["import_pymc_s"]
    default = rows["cached_report_s"]
    res = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
        "before": BEFORE,
        "seconds": rows,
        "brms": brms,
        "ratio_to_import_pymc": default / pymc_s,
        "brms_over_bayes_va": None if brms is None else brms["compile_plus_sample_s"] / default,
        "targets": {"ratio_to_import_pymc": 3.0, "brms_over_bayes_va": 10.0},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cli.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        "# `bayes-va fit models/base.toml` (`bench/bench_cli.py`)",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}; {res['date']}. "
        "Process wall times, warm caches, median of 3, all in one run.",
        "",
        "| | before (issue 16) | compiled kernel (the old route) | cached kernel (default) |",
        "|---|---|---|---|",
        f"| `bayes-va fit` with report, s | {BEFORE['fit_report_s']} | "
        f"{rows['compiled_report_s']:.1f} | {default:.1f} |",
        f"| `bayes-va fit --no-report`, s | {BEFORE['fit_no_report_s']} | "
        f"{rows['compiled_no_report_s']:.1f} | {rows['cached_no_report_s']:.1f} |",
        f"| `python -c \"import pymc\"`, s | {BEFORE['import_pymc_s']} | {pymc_s:.2f} | "
        f"{pymc_s:.2f} |",
        f"| fit with report / import pymc | {BEFORE['ratio']} | "
        f"{rows['compiled_report_s'] / pymc_s:.1f}x | {default / pymc_s:.1f}x |",
    ]
    if brms is not None:
        lines.append(
            f"| brms compile + sample (serial chains), s | 52.4 (r_anchors.md) | "
            f"{brms['compile_plus_sample_s']:.1f} | {brms['compile_plus_sample_s']:.1f} |"
        )
        lines.append(
            f"| brms / bayes-va fit | | "
            f"{brms['compile_plus_sample_s'] / rows['compiled_report_s']:.1f}x | "
            f"{res['brms_over_bayes_va']:.1f}x |"
        )
    met = lambda ok: "met" if ok else "missed"  # noqa: E731
    lines += [
        "",
        f"- <= 3x `import pymc`: **{met(res['ratio_to_import_pymc'] <= 3.0)}** "
        f"({res['ratio_to_import_pymc']:.1f}x).",
    ]
    if brms is not None:
        lines.append(
            f"- >= 10x faster than brms compile + sample: "
            f"**{met(res['brms_over_bayes_va'] >= 10.0)}** ({res['brms_over_bayes_va']:.1f}x)."
        )
    else:
        lines.append("- brms: not measured in this run (R or brms missing, or --no-brms).")
    lines.append("")
    (OUT / "cli.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
