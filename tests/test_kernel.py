"""The two nutpie kernels give bitwise-equal draws (issue 16, target 2).

``bayes_va.engine.kernel`` hands nutpie either PyTensor's disk-cached Numba function through
Python (``cached``) or nutpie's compiled cfunc (``compiled``). Which one a process uses is a
speed choice only, so a fit must not depend on it: same seed, same bytes. This is what keeps
``bayes-va fit``, the paper build and an SBC worker on the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from seeds import seed

from bayes_va.config.model import load_config
from bayes_va.engine import kernel
from bayes_va.engine.sampling import clear_compiled_cache, run_sampler

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "overrides",
    [[], ['model.parametrisation="centred"'], ['model.moderators=["procedure"]']],
    ids=["marginal", "centred", "moderator"],
)
def test_cached_and_compiled_kernels_give_the_same_draws(
    overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bayes_va.data.dataset import build_dataset

    cfg = load_config(
        ROOT / "models/base.toml",
        [*overrides, f"sampler.seed={seed(11)}", "sampler.draws=200", "sampler.tune=200"],
    )
    data = build_dataset(cfg.data, cfg.data_dir)
    trees = {}
    for name in ("cached", "compiled"):
        monkeypatch.setenv("BAYES_VA_KERNEL", name)
        clear_compiled_cache()
        run = run_sampler(cfg, data)
        assert not run.reused_compiled
        trees[name] = run.tree
    for var in trees["cached"]["posterior"].data_vars:
        a = trees["cached"]["posterior"][var].values
        b = trees["compiled"]["posterior"][var].values
        assert a.tobytes() == b.tobytes(), var
    steps = [t["sample_stats"]["n_steps"].values for t in trees.values()]
    assert np.array_equal(*steps)


def test_auto_compiles_once_a_structure_has_paid_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAYES_VA_KERNEL", raising=False)
    assert kernel.choose_kernel(0) == "cached"
    assert kernel.choose_kernel(kernel.COMPILE_AFTER_FITS - 1) == "cached"
    assert kernel.choose_kernel(kernel.COMPILE_AFTER_FITS) == "compiled"
    assert kernel.choose_kernel(0, k=kernel.COMPILE_FROM_K - 1) == "cached"
    assert kernel.choose_kernel(0, k=kernel.COMPILE_FROM_K) == "compiled"
    with kernel.kernel_policy("compiled"):
        assert kernel.choose_kernel(0) == "compiled"
    assert kernel.choose_kernel(0) == "cached"
    monkeypatch.setenv("BAYES_VA_KERNEL", "nonsense")
    with pytest.raises(ValueError, match="BAYES_VA_KERNEL"):
        kernel.choose_kernel(0)
