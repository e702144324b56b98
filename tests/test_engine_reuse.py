"""One compiled model per structure, whatever k (issue 16, target 1).

The marginal route samples (mu_z, tau_u[, beta]) whatever the number of studies, and its
per-study data enter as ``pm.Data`` of dynamic shape, so a model compiled for one dataset serves
a dataset of any k through nutpie's ``with_data``. A reused model must give the same posterior,
byte for byte, as one compiled for that dataset in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pytensor.graph.traversal import apply_ancestors
from seeds import seed

from bayes_va.config.model import Config, load_config
from bayes_va.config.priors import used_priors
from bayes_va.data.dataset import StudyData, build_dataset
from bayes_va.data.moderators import Design, build_design
from bayes_va.engine.marginal import MarginalLogLik
from bayes_va.engine.model import build_model, data_values, structure_key
from bayes_va.fitting.run import with_table

ROOT = Path(__file__).resolve().parents[1]
METADAT = ROOT / "bench" / "data" / "metadat"


def _setup(
    config: str, table: str | None = None, overrides: list[str] | None = None
) -> tuple[Config, StudyData, Design]:
    cfg = load_config(ROOT / config, overrides)
    if table is not None:
        cfg = with_table(cfg, METADAT / f"{table}.csv")
    data = build_dataset(cfg.data, cfg.data_dir)
    return cfg, data, build_design(data.table, cfg.model.moderators, cfg.model.reference)


@pytest.mark.parametrize(
    ("overrides", "k_matters"),
    [
        ([], False),
        (['model.family="beta_binomial"'], False),
        (['model.parametrisation="centred"'], True),
        (['model.parametrisation="noncentred"'], True),
    ],
)
def test_structure_key_ignores_k_unless_theta_is_sampled(
    overrides: list[str], k_matters: bool
) -> None:
    small = _setup("models/base.toml", "debruin2009", overrides)
    large = _setup("models/base.toml", "hannum2020", overrides)
    assert small[1].k != large[1].k
    assert (structure_key(*small) != structure_key(*large)) is k_matters
    # what still matters: prior families (not their values)
    other = _setup("models/sensitivity/tau_exponential.toml", "hannum2020", overrides)
    assert (structure_key(*other) != structure_key(*large)) is ("tau" in used_priors(other[0]))
    wider = _setup("models/sensitivity/mu_wide.toml", "hannum2020", overrides)
    assert structure_key(*wider) == structure_key(*large)


@pytest.mark.parametrize("config", ["models/base.toml", "models/subgroups/procedure.toml"])
def test_marginal_model_has_no_k_baked_in(config: str) -> None:
    a = _setup(config)
    cfg, data, design = a
    model = build_model(*a)
    # every data container has a dynamic shape, so with_data accepts any k
    for var in model.data_vars:
        assert all(s is None for s in var.type.shape), (var.name, var.type.shape)
    assert set(data_values(*a)) == {v.name for v in model.data_vars}
    # the sampled parameters do not grow with k
    assert {v.name for v in model.free_RVs} <= {"mu_z", "tau_u", "beta"}
    # the Op's parameters (its props) do not depend on the data
    ops = [a.op for a in apply_ancestors([model.logp()]) if isinstance(a.op, MarginalLogLik)]
    assert ops and all(op == MarginalLogLik() for op in ops)
    assert data.k == design.X.shape[0] and cfg.model.parametrisation == "marginal"


# Fits dataset B with a seed in a fresh process and prints a hash of its posterior arrays;
# with a dataset A given first, fits A then B in the same process (B reuses A's model).
_SCRIPT = r"""
import hashlib, json, sys
import bayes_va
from bayes_va.engine.sampling import clear_compiled_cache

seed, tables = int(sys.argv[1]), sys.argv[2:]
clear_compiled_cache()
over = {"sampler.seed": seed}
for t in tables:
    res = bayes_va.fit("models/base.toml", data=t, overrides=over, reference=False)
h = hashlib.sha256()
for group in ("posterior", "log_likelihood", "posterior_predictive"):
    ds = res.tree[group].to_dataset()
    for name in sorted(ds.data_vars):
        h.update(name.encode() + ds[name].values.tobytes())
print(json.dumps({"hash": h.hexdigest(), "k": res.data.k,
                  "reused": res.diagnostics.timings.reused_compiled_model}))
"""


def _fit_hash(*tables: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    args = [str(seed(11)), *(str(METADAT / f"{t}.csv") for t in tables)]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.sampling
def test_reused_model_gives_the_same_posterior_as_a_fresh_one() -> None:
    fresh = _fit_hash("debruin2009")  # k = 13, compiled for it
    reused = _fit_hash("hannum2020", "debruin2009")  # compiled for k = 35, then k = 13
    assert fresh["reused"] is False and reused["reused"] is True
    assert fresh["k"] == reused["k"] == 13
    assert fresh["hash"] == reused["hash"]


@pytest.mark.sampling
def test_in_process_swap_to_larger_k_matches_its_own_fit() -> None:
    import bayes_va
    from bayes_va.engine.sampling import clear_compiled_cache

    clear_compiled_cache()
    over = {"sampler.seed": seed(12)}
    small = bayes_va.fit(ROOT / "models/base.toml", overrides=over, reference=False)
    large = bayes_va.fit(
        ROOT / "models/base.toml",
        data=METADAT / "axfors2021_control.csv",
        overrides=over,
        reference=False,
    )
    t = large.diagnostics.timings
    assert t is not None and t.reused_compiled_model and t.compile_seconds == 0.0
    assert large.data.k == 33 != small.data.k
    post = large.tree["posterior"].to_dataset()
    assert post["theta"].shape[-1] == 33
    assert list(post["study"].values) == list(large.data.study)
    assert np.all(np.isfinite(large.tree["log_likelihood"]["y"].values))
    assert large.ok, large.diagnostics.failures
