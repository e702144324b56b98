"""Provenance of a result: what produced it, so a reviewer can reproduce it."""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bayes_va.data.schemas import TABLES

# The pinned install (see README, "Pinned installs"): exact versions and SHA-256 hashes of every
# package, at the root of a source checkout.
LOCK_FILE = "requirements.lock"

PACKAGES = ("bayes_va", "pymc", "pytensor", "nutpie", "arviz", "numpy", "scipy", "pandas", "xarray")


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape the numbers."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def lock_hash(root: Path | None = None) -> str | None:
    """Hash the checkout's lock file (SHA-256, as ``sha256sum requirements.lock`` prints it).

    ``make`` installs the environment from this file (and reinstalls when it changes).
    ``root`` is the source checkout (default: the one this package is imported from). ``None``
    when there is no lock, e.g. bayes_va installed from a wheel rather than from a checkout.
    """
    if root is None:
        root = Path(__file__).resolve().parents[2]
    f = Path(root) / LOCK_FILE
    if not (f.is_file() and (Path(root) / "pyproject.toml").is_file()):
        return None
    return hashlib.sha256(f.read_bytes()).hexdigest()


def data_files_hash(data_dir: Path) -> dict[str, str]:
    """Hash (SHA-256) each known table file present in ``data_dir``."""
    out = {}
    for schema in TABLES.values():
        f = Path(data_dir) / schema.filename
        if f.exists():
            out[schema.filename] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def data_folder_hash(data_dir: Path) -> str:
    """Return one SHA-256 over the hashes of every known table in ``data_dir``.

    The data hash ``results.json`` and the risk page report (sorted file hashes, concatenated).
    """
    return hashlib.sha256("".join(sorted(data_files_hash(data_dir).values())).encode()).hexdigest()


def provenance_record(
    cfg: Any, data: Any, overrides: Sequence[str] | None = None
) -> dict[str, Any]:
    """Record the config (resolved), hashes, versions and seed of one fit; no timestamps.

    Parameters
    ----------
    cfg : Config
        The resolved config (``config_hash`` is its hash, overrides applied).
    data : StudyData
        The counts the model saw.
    overrides : sequence of str, optional
        The ``"key=value"`` overrides the config was loaded with, as given; stored under
        ``overrides`` only when there are any, so a plain fit's record is unchanged.
    """
    record = {
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "data_hash": data.hash(),
        "lock_hash": lock_hash(),
        # a user's table (path or DataFrame) is hashed too; shipped fits record the folder only
        "data_files": {**data_files_hash(cfg.data_dir), **dict(getattr(data, "files", ()))},
        "data_steps": list(data.steps),
        "studies": list(data.study),
        "seed": cfg.sampler.seed,
        "versions": package_versions(),
        "platform": f"{platform.system()} {platform.machine()}",
        "argv_python": sys.executable.rsplit("/", 1)[-1],
    }
    if overrides:
        record["overrides"] = list(overrides)
    return record


def overrides_suffix(cfg: Any) -> str:
    """Return the suffix of a results folder written with overrides: ``+`` and 8 hex digits.

    The digits start the resolved config's hash, so the same overrides (the same resolved
    config) always reuse one folder and never another config's.
    """
    return f"+{cfg.hash()[:8]}"
