"""Provenance of a result: what produced it, so a reviewer can reproduce it."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .schemas import TABLES

PACKAGES = ("bayes_va", "pymc", "pytensor", "nutpie", "arviz", "numpy", "scipy", "pandas", "xarray")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_files_hash(data_dir: Path) -> dict[str, str]:
    """SHA-256 of each known table file present in ``data_dir``."""
    out = {}
    for schema in TABLES.values():
        f = Path(data_dir) / schema.filename
        if f.exists():
            out[schema.filename] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def provenance_record(cfg: Any, data: Any) -> dict[str, Any]:
    """Config (resolved), hashes, versions and seed of one fit. Contains no timestamps."""
    return {
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "data_hash": data.hash(),
        "data_files": data_files_hash(cfg.data_dir),
        "data_steps": list(data.steps),
        "studies": list(data.study),
        "seed": cfg.sampler.seed,
        "versions": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}",
        "argv_python": sys.executable.rsplit("/", 1)[-1],
    }
