"""The engine: the only layer that imports PyMC, PyTensor and nutpie.

:mod:`~bayes_va.engine.model` builds the PyMC model of a config, :mod:`~bayes_va.engine.marginal`
is the Op that integrates each study's theta out, :mod:`~bayes_va.engine.sampling` runs nutpie,
PyMC or NumPyro, and :mod:`~bayes_va.engine.derived` adds the derived quantities (pooled and
predictive proportions, per-study log-likelihoods, exact theta draws) to the posterior. May
import :mod:`bayes_va.core`, :mod:`bayes_va.config`, :mod:`bayes_va.data` and
:mod:`bayes_va.numerics`; draws no figures.

Importing this package first points PyTensor's and Numba's compile caches at a persistent
per-user folder (:func:`cache_dir`) and turns PyTensor's Numba ``fastmath`` off, because both
read their settings when first imported.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "sampler_cores"]


def cache_dir() -> Path:
    """Where compiled artefacts persist (``BAYES_VA_CACHE`` or ``~/.cache/bayes_va``)."""
    root = os.environ.get("BAYES_VA_CACHE") or Path.home() / ".cache" / "bayes_va"
    return Path(root)


def sampler_cores() -> int:
    """Threads one fit may use (chains, Numba loops): ``BAYES_VA_SAMPLER_CORES`` or every core.

    The dask executor sets it to 1 in its workers (one single-threaded worker per core), so
    that parallel fits do not oversubscribe the machine.
    """
    value = os.environ.get("BAYES_VA_SAMPLER_CORES")
    return max(1, int(value)) if value else os.cpu_count() or 1


def _configure_compile_cache() -> None:
    """Point PyTensor and Numba at the persistent cache, unless the user already chose."""
    base = cache_dir()
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f]
    if not any(f.startswith("base_compiledir") for f in flags):
        flags.append(f"base_compiledir={base / 'pytensor'}")
    # IEEE arithmetic in PyTensor's Numba code: the two nutpie kernels (engine.kernel) then
    # give bitwise-equal draws, and results do not depend on how LLVM inlined a function.
    if not any(f.startswith("numba__fastmath") for f in flags):
        flags.append("numba__fastmath=False")
    os.environ["PYTENSOR_FLAGS"] = ",".join(flags)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(base / "numba"))


_configure_compile_cache()
