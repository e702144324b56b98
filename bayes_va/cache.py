"""Content-addressed cache of fits: same config, data and code → the stored result is reused.

The key hashes the resolved config, the counts the model sees, the bayes_va source files and
the versions of the numerical stack, so any change that could move a number refits.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from .config import Config
from .dataset import build_dataset
from .fitting import fit
from .provenance import package_versions
from .results import FitResult, load_result

#: Modules whose code can change a fit's numbers (figures, reports and the CLI cannot).
FIT_MODULES = (
    "config",
    "data",
    "schemas",
    "dataset",
    "model",
    "moderators",
    "sampling",
    "derived",
    "diagnostics",
    "estimates",
    "exact",
    "glmm",
    "fitting",
    "priors",
    "results",
    "provenance",
)


@cache
def code_hash() -> str:
    """SHA-256 over the fitting modules' source and the numerical stack's versions."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for f in (root / f"{m}.py" for m in FIT_MODULES):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    h.update(repr(sorted(package_versions().items())).encode())
    return h.hexdigest()


def fit_key(cfg: Config) -> str:
    """Cache key of a config's fit."""
    data = build_dataset(cfg.data, cfg.data_dir)
    h = hashlib.sha256()
    for part in (cfg.hash(), data.hash(), code_hash()):
        h.update(part.encode())
    return h.hexdigest()[:20]


def cached_fit(cfg: Config, cache_dir: str | Path, refresh: bool = False) -> tuple[FitResult, bool]:
    """Fit ``cfg`` or load its cached result.

    Returns
    -------
    result : FitResult
    hit : bool
        Whether the result came from the cache.
    """
    folder = Path(cache_dir) / f"{cfg.name}-{fit_key(cfg)}"
    if not refresh and (folder / "estimates.json").exists():
        return load_result(folder), True
    result = fit(cfg, out_dir=folder)
    return result, False
