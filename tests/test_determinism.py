"""The same seed gives the same numbers whatever the process did before (compile-cache state).

Found in issue 14: the marginal Op's numba kernels left ``fastmath`` unset, so they inherited
the flag of whatever first compiled them (PyTensor's fastmath=True model code, or a direct
call). Cold and warm compile caches then gave log densities differing by ~1e-13 and gradients
by ~1e-7, and posteriors moved by ~1e-8 between paper builds of the same commit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from bayes_va.engine import marginal

ROOT = Path(__file__).resolve().parents[1]


def test_every_marginal_kernel_pins_fastmath() -> None:
    dispatchers = [
        v for v in vars(marginal).values() if isinstance(v, numba.core.registry.CPUDispatcher)
    ]
    assert len(dispatchers) >= 10
    for d in dispatchers:
        assert d.targetoptions.get("fastmath") is False, d.__name__


# Compiles the nutpie model of a config in a fresh process, evaluates log density and gradient
# at fixed points and prints a hash of the bytes. KERNEL_FIRST=1 calls the Op's kernel directly
# before PyTensor compiles (the other order in which numba can first meet it).
_SCRIPT = r"""
import ctypes, hashlib, os, sys
import bayes_va.engine  # sets the compile caches before numba is imported
import numpy as np
import nutpie
from bayes_va.config.model import load_config
from bayes_va.data.dataset import build_dataset
from bayes_va.data.moderators import build_design
from bayes_va.engine import marginal as M
from bayes_va.engine.model import build_model, data_values
from bayes_va.numerics.exact import log_binom_coef

cfg = load_config(sys.argv[1])
data = build_dataset(cfg.data, cfg.data_dir)
design = build_design(data.table, cfg.model.moderators, cfg.model.reference)
if os.environ.get("KERNEL_FIRST"):
    y, n = data.y.astype(float), data.n.astype(float)
    x, lw, sizes = M._rules(M._rule_sizes(None))
    M._marginal_kernel(y, n, log_binom_coef(y, n), M.node_rule(y, n), M.first_duplicate(y, n),
                       np.full(data.k, -3.0), np.array([0.7]), x, lw, sizes)
cm = nutpie.compile_pymc_model(build_model(cfg, data, design))
cm = cm.with_data(**data_values(cfg, data, design))
f = cm.compiled_logp_func.ctypes
dp = ctypes.POINTER(ctypes.c_double)
pts = np.random.default_rng(1).normal(0, 1, size=(200, cm.n_dim))
g, lp, out = np.empty(cm.n_dim), np.empty(()), hashlib.sha256()
for p in pts:
    p = np.ascontiguousarray(p)
    f(cm.n_dim, p.ctypes.data_as(dp), g.ctypes.data_as(dp), lp.ctypes.data_as(dp),
      ctypes.c_void_p(cm.user_data.ctypes.data))
    out.update(lp.tobytes() + g.tobytes())
print(out.hexdigest())
"""


def _logp_hash(cache: Path, kernel_first: bool = False) -> str:
    env = {**os.environ, "BAYES_VA_CACHE": str(cache)}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("PYTENSOR_FLAGS", None)
    if kernel_first:
        env["KERNEL_FIRST"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "models/subgroups/procedure.toml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_log_density_is_the_same_cold_warm_and_kernel_first(tmp_path: Path) -> None:
    cold = _logp_hash(tmp_path / "a")
    warm = _logp_hash(tmp_path / "a")
    other = _logp_hash(tmp_path / "b", kernel_first=True)
    assert cold == warm == other
    assert len(hashlib.sha256().hexdigest()) == len(cold)
