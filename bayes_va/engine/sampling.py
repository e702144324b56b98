"""Run MCMC for a config: nutpie (default), PyMC's own NUTS, or NumPyro.

Compiling the model costs seconds while sampling the 14-study model takes a fraction of one,
so nutpie models are kept per *structure* (family, parametrisation, prior families,
moderator columns, and k only where θ is sampled: :func:`~bayes_va.engine.model.structure_key`)
and reused across data or prior-value swaps in one process (``with_data``, which takes
per-study arrays of any length). Which kernel a structure gets (PyTensor's disk-cached Numba
function through Python, or nutpie's faster but uncacheable cfunc) is
:func:`~bayes_va.engine.kernel.choose_kernel`'s choice; both give the same draws.
PyTensor's and Numba's compile directories are a persistent per-user cache (set by
:mod:`bayes_va.engine` before either is imported), so later processes reuse what earlier ones
compiled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bayes_va.config.model import Config
    from bayes_va.data.dataset import StudyData


import pymc as pm
import xarray as xr

from bayes_va.data.moderators import Design, build_design
from bayes_va.engine import sampler_cores
from bayes_va.engine.kernel import choose_kernel, compile_kernel, with_data
from bayes_va.engine.model import build_model, data_values, structure_key


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


def clear_compiled_cache() -> None:
    """Forget every compiled model held by this process."""
    _COMPILED.clear()


@dataclass
class _Structure:
    """The kernels built for one model structure in this process, and how often it was fitted."""

    kernels: dict[str, Any]
    fits: int = 0


_COMPILED: dict[tuple, _Structure] = {}


def _nutpie(cfg: Config, data: StudyData, design: Design) -> SamplerRun:
    # lazy: nutpie (a compiled extension) only for the nutpie backend
    import nutpie

    key = structure_key(cfg, data, design)
    t0 = time.perf_counter()
    entry = _COMPILED.setdefault(key, _Structure({}))
    kernel = choose_kernel(entry.fits, data.k)
    reused = kernel in entry.kernels
    if not reused:
        entry.kernels[kernel] = compile_kernel(build_model(cfg, data, design), kernel)
    entry.fits += 1
    model = with_data(entry.kernels[kernel], data_values(cfg, data, design))
    t1 = time.perf_counter()
    s = cfg.sampler
    # The cached kernel calls into Python for every gradient: chains in threads would only
    # queue for the GIL (4 threads: 1.6 s against 0.8 s), so it runs them on one. Same draws.
    cores = 1 if kernel == "cached" else min(s.chains, sampler_cores())
    tree = nutpie.sample(
        model,
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        cores=cores,
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
