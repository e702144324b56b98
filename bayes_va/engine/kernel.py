"""Two ways to hand a PyMC model's log density to nutpie, with bitwise-equal draws.

``compiled``: :func:`nutpie.compile_pymc_model` wraps PyTensor's Numba function in a
``numba.cfunc`` that nutpie's Rust sampler calls directly. Fastest per gradient (about 10 µs
for the base model), but the wrapper holds dynamic globals, so Numba cannot cache it on disk:
every process pays 8-15 s to compile it.

``cached``: the same PyTensor graph (nutpie's own ``_make_functions``, so the same
transforms, initial points and expansion), compiled by PyTensor's Numba backend, whose
functions *are* cached on disk (``base_compiledir``, see :mod:`bayes_va.engine`), and handed
to nutpie's ``from_pyfunc``. A new process builds it in about 1 s once the cache is warm, but
each gradient crosses into Python (about 35 µs instead of 10 µs), so sampling is about 3x
slower (0.8 s against 0.25 s for the base model).

With PyTensor's Numba ``fastmath`` off (set in :mod:`bayes_va.engine`) the two kernels run
the same IEEE arithmetic, so the draws are bitwise equal (``tests/test_kernel.py``): which one
a process uses is a speed choice only. :func:`choose_kernel` takes ``cached`` for the first
fits of a structure in a process and compiles once the structure has been fitted often enough
for the compile to pay for itself (SBC, long sensitivity runs). Measured in
``bench/reports/cli.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pymc as pm

Kernel = Literal["cached", "compiled"]

#: Fits of one structure in one process after which the cfunc compile (about 10 s) is cheaper
#: than the per-gradient Python crossings of the cached kernel (about 0.5 s per base fit).
COMPILE_AFTER_FITS = 16
#: Studies from which one fit repays the compile: the cached kernel runs its chains on one
#: core (each gradient holds the GIL), which at k = 10,000 costs 25 s of sampling against
#: 9 s compiled on 2 cores (bench/reports/big_k.md); at k = 1,000 about 4 s against 2 s.
COMPILE_FROM_K = 5_000


_POLICY: list[str] = ["auto"]


@contextmanager
def kernel_policy(policy: Literal["auto", "cached", "compiled"]) -> Iterator[None]:
    """Use ``policy`` for the fits inside the block (SBC workers know they will fit hundreds)."""
    _POLICY.append(policy)
    try:
        yield
    finally:
        _POLICY.pop()


def choose_kernel(fits_so_far: int, k: int = 0) -> Kernel:
    """Return the kernel for the next fit of a structure already fitted ``fits_so_far`` times.

    ``BAYES_VA_KERNEL`` (``auto``, ``cached`` or ``compiled``) overrides the code's
    :func:`kernel_policy`, for benchmarks; ``auto`` compiles from :data:`COMPILE_AFTER_FITS`
    fits of the structure or for :data:`COMPILE_FROM_K` studies (``k``).
    """
    policy = os.environ.get("BAYES_VA_KERNEL") or _POLICY[-1]
    if policy in ("cached", "compiled"):
        return policy  # type: ignore[return-value]
    if policy != "auto":
        raise ValueError(f"BAYES_VA_KERNEL must be auto, cached or compiled, got {policy!r}")
    return "compiled" if fits_so_far >= COMPILE_AFTER_FITS or k >= COMPILE_FROM_K else "cached"


def compile_kernel(model: pm.Model, kernel: Kernel) -> Any:
    """Return a nutpie model (``nutpie.sample``'s first argument) for ``model``."""
    # lazy: nutpie (a compiled extension) only for the nutpie backend
    import nutpie

    if kernel == "compiled":
        return nutpie.compile_pymc_model(model)
    return _cached_kernel(model)


def _cached_kernel(model: pm.Model) -> Any:
    # nutpie's private helpers, so that the graph, transforms, initial points (jittered,
    # behind a lock, as compile_pymc_model does) and expansion are exactly the compiled
    # kernel's; requirements.lock pins nutpie, and tests/test_kernel.py fails if they drift.
    from nutpie import compile_pymc as ncp
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    point_fn = ncp._wrap_with_lock(
        make_initial_point_fn(
            model=model,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs),
            return_transformed=True,
        )
    )
    n_dim, _, logp_pt, expand_pt, initial_point_fn, shape_info, reparameterized = (
        ncp._make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=False,
            pymc_initial_point_fn=point_fn,
        )
    )
    logp_jit, expand_jit = logp_pt.vm.jit_fn, expand_pt.vm.jit_fn
    logp_names = [v.name for v in logp_pt.get_shared()]
    expand_names = [v.name for v in expand_pt.get_shared()]
    shared = {
        v.name: np.array(v.get_value(), order="C", copy=True)
        for v in (*logp_pt.get_shared(), *expand_pt.get_shared())
    }
    names, _, shapes = shape_info
    shapes = [tuple(int(d) for d in s) for s in shapes]

    def make_logp() -> Callable[..., tuple[float, np.ndarray]]:
        def logp(x: np.ndarray, **data: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = logp_jit(x, *[data[n] for n in logp_names])
            return float(value), grad

        return logp

    def make_expand(seed1: int, seed2: int, chain: int) -> Callable[..., dict[str, np.ndarray]]:
        def expand(x: np.ndarray, **data: np.ndarray) -> dict[str, np.ndarray]:
            values = expand_jit(x, *[data[n] for n in expand_names])
            return {
                n: np.asarray(v, dtype=np.float64).reshape(s)
                for n, v, s in zip(names, values, shapes, strict=True)
            }

        return expand

    dims, coords = ncp._prepare_dims_and_coords(model, shape_info, reparameterized)
    return from_pyfunc(
        ndim=n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        make_initial_point_fn=initial_point_fn,
        expanded_dtypes=[np.dtype(np.float64)] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        shared_data=shared,
        dims=dims,
        coords=coords,
        reparameterized_names=reparameterized,
    )


def with_data(kernel_model: Any, values: Mapping[str, object]) -> Any:
    """``kernel_model`` with new data; writeable C-ordered copies, as the Numba types expect."""
    return kernel_model.with_data(
        **{k: np.array(v, order="C", copy=True) for k, v in values.items()}
    )
