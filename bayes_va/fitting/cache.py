"""Content-addressed cache of fits: same config, data and code → the stored result is reused.

The key hashes the resolved config, the counts the model sees, the bayes_va source files and
the versions of the numerical stack, so any change that could move a number refits.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from bayes_va.config.model import Config, is_table_path
from bayes_va.data.dataset import build_dataset
from bayes_va.data.schemas import schema_path
from bayes_va.fitting.provenance import data_folder_hash, package_versions

if TYPE_CHECKING:
    from bayes_va.fitting.results import FitResult

#: Modules whose code can change a fit's numbers (figures, reports and the CLI cannot).
FIT_MODULES = (
    "core",
    "config",
    "data",
    "numerics/exact",
    "numerics/glmm",
    "engine",
    "fitting/run",
    "fitting/diagnostics",
    "fitting/estimates",
    "fitting/results",
    "fitting/provenance",
)


@cache
def code_hash() -> str:
    """Hash (SHA-256) the fitting modules' source and the numerical stack's versions."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]  # the bayes_va package
    files = []
    for m in FIT_MODULES:  # a module is a file or a package folder
        if (root / f"{m}.py").exists():
            files.append(root / f"{m}.py")
        elif (root / m / "__init__.py").exists():
            files += sorted((root / m).rglob("*.py"))
        else:  # a renamed module must not silently drop out of the cache key
            raise FileNotFoundError(
                f"bayes_va.fitting.cache.FIT_MODULES names a missing module {m!r}"
            )
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    h.update(repr(sorted(package_versions().items())).encode())
    return h.hexdigest()


def _inputs_digest(cfg: Config) -> str:
    """Digest what a config's data set is read from: the folder's tables and a user table.

    The folder's known tables through :func:`~bayes_va.fitting.provenance.data_folder_hash`
    (the project's one data hash); a user table with the schema file beside it, if any.
    """
    parts = [data_folder_hash(Path(cfg.data_dir))]
    if is_table_path(cfg.data.table):
        for f in (Path(cfg.data.table), schema_path(cfg.data.table)):
            parts.append(hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "-")
    return "".join(parts)


#: fit_key by (config hash, digest of its input files): a paper build asks for the key of each
#: fit several times (its plan, its up-to-date check, the cache), and building the data set is
#: what costs; a changed file is a new digest, so a stale key cannot be returned.
_KEYS: dict[tuple[str, str], str] = {}


def fit_key(cfg: Config) -> str:
    """Cache key of a config's fit."""
    memo = (cfg.hash(), _inputs_digest(cfg))
    if (known := _KEYS.get(memo)) is not None:
        return known
    data = build_dataset(cfg.data, cfg.data_dir)
    h = hashlib.sha256()
    for part in (cfg.hash(), data.hash(), code_hash()):
        h.update(part.encode())
    for name, digest in data.files:  # a user's table: its moderators and labels count too
        h.update(f"{name}:{digest}".encode())
    _KEYS[memo] = key = h.hexdigest()[:20]
    return key


def cached_fit(cfg: Config, cache_dir: str | Path, refresh: bool = False) -> tuple[FitResult, bool]:
    """Fit ``cfg`` or load its cached result.

    Returns
    -------
    result : FitResult
    hit : bool
        Whether the result came from the cache.
    """
    # lazy: fit_key alone (bayes-va paper's up-to-date check) must not import the sampler
    from bayes_va.fitting.results import load_result
    from bayes_va.fitting.run import fit

    folder = Path(cache_dir) / f"{cfg.name}-{fit_key(cfg)}"
    if not refresh and (folder / "estimates.json").exists():
        return load_result(folder), True
    result = fit(cfg, out_dir=folder)
    return result, False
