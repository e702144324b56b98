"""Run MCMC for a config: nutpie (default), PyMC's own NUTS, or NumPyro.

Compiling the model costs seconds while sampling the 14-study model takes a fraction of one,
so compiled nutpie models are kept per *structure* (family, parametrisation, prior families,
moderator columns, and k only where θ is sampled: :func:`~bayes_va.engine.model.structure_key`)
and reused across data or prior-value swaps in one process (``CompiledModel.with_data``, which
takes per-study arrays of any length).
PyTensor's and Numba's compile directories are a persistent per-user cache (set by
:mod:`bayes_va.engine` before either is imported), so later processes reuse what earlier ones
compiled.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bayes_va.config.model import Config
    from bayes_va.data.dataset import StudyData


import pymc as pm
import xarray as xr

from bayes_va.data.moderators import Design, build_design
from bayes_va.engine.model import build_model, data_values, structure_key

_COMPILED: dict[tuple, Any] = {}


@dataclass(frozen=True)
class SamplerRun:
    """Raw sampler output with timings.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` and ``sample_stats`` groups.
    compile_seconds : float
        Time spent compiling (0 when a cached model was reused).
    sample_seconds : float
        Time spent sampling (tuning included).
    reused_compiled : bool
        Whether an in-process compiled model was reused.
    """

    tree: xr.DataTree
    compile_seconds: float
    sample_seconds: float
    reused_compiled: bool


def sampler_cores() -> int:
    """Threads a fit may use for its chains: ``BAYES_VA_SAMPLER_CORES`` or every core.

    The dask executor sets it to 1 in its workers (one single-threaded worker per core), so
    that parallel fits do not oversubscribe the machine.
    """
    value = os.environ.get("BAYES_VA_SAMPLER_CORES")
    return max(1, int(value)) if value else os.cpu_count() or 1


def clear_compiled_cache() -> None:
    """Forget every compiled model held by this process."""
    _COMPILED.clear()


def _nutpie(cfg: Config, data: StudyData, design: Design) -> SamplerRun:
    # lazy: nutpie (a compiled extension) only for the nutpie backend
    import nutpie

    key = structure_key(cfg, data, design)
    t0 = time.perf_counter()
    reused = key in _COMPILED
    if not reused:
        _COMPILED[key] = nutpie.compile_pymc_model(build_model(cfg, data, design))
    compiled = _COMPILED[key].with_data(**data_values(cfg, data, design))
    t1 = time.perf_counter()
    s = cfg.sampler
    tree = nutpie.sample(
        compiled,
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        cores=min(s.chains, sampler_cores()),
        seed=s.seed,
        target_accept=s.target_accept,
        progress_bar=False,
        save_warmup=False,
    )
    t2 = time.perf_counter()
    return SamplerRun(tree, 0.0 if reused else t1 - t0, t2 - t1, reused)


def _pymc(cfg: Config, data: StudyData, design: Design, nuts_sampler: str) -> SamplerRun:
    model = build_model(cfg, data, design)
    s = cfg.sampler
    if nuts_sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "sampler.backend = 'numpyro' needs JAX and NumPyro: pip install 'bayes_va[jax]'"
            ) from None
    t0 = time.perf_counter()
    with model:
        tree = pm.sample(
            draws=s.draws,
            tune=s.tune,
            chains=s.chains,
            cores=1 if nuts_sampler == "pymc" else None,
            random_seed=s.seed,
            target_accept=s.target_accept,
            nuts_sampler=nuts_sampler,
            progressbar=False,
            compute_convergence_checks=False,
        )
    t1 = time.perf_counter()
    # PyMC compiles inside pm.sample; its own split is not exposed, so all time counts as sampling.
    keep = {g: tree[g] for g in ("posterior", "sample_stats")}

    return SamplerRun(
        xr.DataTree.from_dict({k: v.to_dataset() for k, v in keep.items()}), 0.0, t1 - t0, False
    )


def run_sampler(cfg: Config, data: StudyData, design: Design | None = None) -> SamplerRun:
    """Sample the posterior of ``cfg``'s model on ``data`` with the configured backend."""
    if design is None:
        design = build_design(data.table, cfg.model.moderators, cfg.model.reference)
    backend = cfg.sampler.backend
    if backend == "nutpie":
        return _nutpie(cfg, data, design)
    return _pymc(cfg, data, design, backend)
