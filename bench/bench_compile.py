"""Benchmark: a new dataset of another k in a process that already fitted one (issue 16, target 1).

In one Python process: fit ``models/base.toml`` (k = 14, compiles the model), then five public
datasets of different k from ``bench/data/metadat`` one after another. Two such processes: one
with the references (the quadrature posterior and the classical GLMM, as ``bayes-va fit``
does), one without the quadrature one (``fit(..., reference=False)``; the GLMM still runs).
Reports per fit the whole-``fit`` wall time, the compile seconds, whether the compiled model was
reused, sampling and quadrature-reference seconds. Target: whole fit <= 0.5 s for a new k
after the first fit.

``--old-key`` restores the structure key of before issue 16 (k always part of it), so the
"before" figures can be measured again on the same machine and commit.

Writes ``bench/reports/compile.json`` and ``bench/reports/compile.md``; ``--label before`` or
``--label after`` (default) names the column it fills, keeping the other one. Run:
``.venv/bin/python bench/bench_compile.py --label after``. Not part of CI.
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
from typing import Any

import bayes_va

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "reports"
DATA = ROOT / "bench" / "data" / "metadat"
#: Five public datasets of different k (13, 14, 18, 33, 35).
DATASETS = ("debruin2009", "pritz1997", "nielweise2007_control", "axfors2021_control", "hannum2020")
TARGET_S = 0.5


def one(label: str, data: Path | None, reference: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    res = bayes_va.fit(ROOT / "models" / "base.toml", data=data, reference=reference)
    wall = time.perf_counter() - t0
    t = res.diagnostics.timings
    assert t is not None
    return {
        "dataset": label,
        "k": res.data.k,
        "reference": reference,
        "fit_wall_s": round(wall, 3),
        "compile_s": round(t.compile_seconds, 3),
        "reused_compiled": t.reused_compiled_model,
        "sample_s": round(t.sample_seconds, 3),
        "exact_s": round(t.exact_seconds, 3),
        "ok": res.ok,
    }


LABELS = ("before", "after", "default")
HEADINGS = {
    "before": "k in every structure key, compiled kernel",
    "after": "one compiled model per structure, compiled kernel",
    "default": "one model per structure, the kernel a process picks (BAYES_VA_KERNEL=auto)",
}


def child(reference: bool, old_key: bool) -> None:
    """Fit base, then every dataset, in this process; print the rows as JSON."""
    if old_key:
        from bayes_va.engine import model, sampling

        def key_with_k(cfg, data, design):  # type: ignore[no-untyped-def]
            return (*model.structure_key(cfg, data, design), data.k)

        sampling.structure_key = key_with_k  # type: ignore[assignment]
    rows = [one("base", None, True)]
    rows += [one(name, DATA / f"{name}.csv", reference) for name in DATASETS]
    print(json.dumps(rows))


def run(old_key: bool, kernel: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    env = dict(os.environ, BAYES_VA_KERNEL=kernel)
    for reference in (True, False):
        cmd = [sys.executable, __file__, "--child", "yes" if reference else "no"]
        out = subprocess.run(
            cmd + (["--old-key"] if old_key else []),
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        ).stdout
        got = json.loads(out.strip().splitlines()[-1])
        rows += got if reference else got[1:]  # the second base fit repeats the first
    return rows


def table(rows: list[dict[str, object]]) -> list[str]:
    lines = [
        "| dataset | k | references | whole fit (s) | compile (s) | reused | sample (s) "
        "| exact (s) |",
        "|---|---:|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['k']} | {'yes' if r['reference'] else 'GLMM only'} "
            f"| {r['fit_wall_s']:.3f} | {r['compile_s']:.3f} | {r['reused_compiled']} "
            f"| {r['sample_s']:.3f} | {r['exact_s']:.3f} |"
        )
    return lines


def summary(rows: list[dict[str, object]]) -> dict[str, float]:
    new = [r for r in rows[1:] if r["dataset"] != "pritz1997"]  # pritz1997 has the base's k
    out = {}
    for reference in (True, False):
        walls = [float(r["fit_wall_s"]) for r in new if r["reference"] is reference]
        key = "with_references" if reference else "without_exact_reference"
        out[f"max_new_k_fit_s_{key}"] = max(walls)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    # before: k in every key; after: one key per structure, nutpie's compiled kernel (what a
    # process that has paid the compile, or an SBC worker, uses); default: the same with the
    # kernel a process picks itself (the disk-cached one for its first 16 fits of a structure)
    ap.add_argument("--label", choices=LABELS, default="default")
    ap.add_argument("--old-key", action="store_true", help="k in every structure key")
    ap.add_argument("--render", action="store_true", help="only rewrite compile.md")
    ap.add_argument("--child", choices=("yes", "no"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child == "yes", args.old_key)
        return
    if args.render:
        render(json.loads((OUT / "compile.json").read_text()))
        return
    rows = run(args.old_key, "auto" if args.label == "default" else "compiled")
    path = OUT / "compile.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["target_new_k_fit_s"] = TARGET_S
    report[args.label] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "structure_key": "k always in the key" if args.old_key else "k only where theta is sampled",
        "rows": rows,
        **summary(rows),
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    render(report)


def render(report: dict[str, Any]) -> None:
    """Write ``compile.md`` from the JSON report (both columns and the notes)."""
    md = [
        "# A new dataset of another k in a process that already fitted one",
        "",
        "`bench/bench_compile.py`: one process fits `models/base.toml` (k = 14), then five "
        "public datasets (`bench/data/metadat`); one such process with the references "
        "(quadrature posterior and GLMM, as `bayes-va fit`), one with `reference=False` (GLMM "
        f"only). Target (issue 16, 1): whole `fit` <= {TARGET_S} s for a new k after the first "
        "fit. pritz1997 has the base's k (14), so it reused the compiled model even before.",
        "",
    ]
    for label in LABELS:
        if label not in report:
            continue
        rep = report[label]
        md += [f"## {label}: {HEADINGS[label]} ({rep['machine']})", "", *table(rep["rows"]), ""]
        for key in ("with_references", "without_exact_reference"):
            v = rep[f"max_new_k_fit_s_{key}"]
            met = "met" if v <= TARGET_S else "not met"
            md.append(f"- slowest new-k fit, {key.replace('_', ' ')}: {v:.3f} s ({met})")
        md.append("")
    if "notes" in report:
        md += ["## Notes", "", *report["notes"], ""]
    (OUT / "compile.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
