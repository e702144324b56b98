"""Shared figure plumbing: a headless backend, deterministic files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
matplotlib.rcParams["svg.hashsalt"] = "bayes_va"  # stable element ids: same figure, same bytes
matplotlib.rcParams["svg.fonttype"] = "none"

from matplotlib.figure import Figure  # noqa: E402

from . import atomic  # noqa: E402


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` atomically; the format comes from the suffix (png, svg, pdf).

    Creation dates are left out of SVG/PDF metadata so that rebuilding gives identical bytes.
    """
    path = Path(path)
    fmt = path.suffix[1:]
    meta = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format=fmt, metadata=meta, dpi=150))
    return path
