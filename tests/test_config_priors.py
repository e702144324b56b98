"""The prior table (bayes_va.config.priors): one family table for the config schema, the PyMC
model and SciPy; which families each prior accepts; the one rule for the priors a config uses."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pymc as pm
import pytest

from bayes_va.config.model import Config, PriorsConfig, load_config
from bayes_va.config.priors import (
    FAMILIES,
    BetaPrior,
    MuPrior,
    PhiPrior,
    Prior,
    TauPrior,
    allowed_families,
    frozen,
    log_density,
    support,
    used_priors,
)
from bayes_va.data.dataset import build_dataset
from bayes_va.data.moderators import build_design
from bayes_va.engine.model import build_model, data_values, structure_key

#: One prior of every family, parameters away from the defaults.
EXAMPLES = {
    "Normal": Prior("Normal", {"mu": -1.0, "sigma": 2.0}),
    "HalfNormal": Prior("HalfNormal", {"sigma": 0.7}),
    "HalfCauchy": Prior("HalfCauchy", {"beta": 0.5}),
    "Exponential": Prior("Exponential", {"lam": 0.01}),
    "LogNormal": Prior("LogNormal", {"mu": 0.2, "sigma": 0.8}),
    "Gamma": Prior("Gamma", {"alpha": 2.0, "beta": 0.05}),
}


def test_every_family_has_an_example():
    assert set(EXAMPLES) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_scipy_density_equals_pymcs_logp(name):
    prior = EXAMPLES[name]
    dist = frozen(prior)
    x = dist.ppf(np.array([0.01, 0.2, 0.5, 0.8, 0.99]))
    family = getattr(pm, FAMILIES[name].pymc)
    expected = pm.logp(family.dist(**prior.params), x).eval()
    # PyMC rounds a constant of HalfCauchy to ~1e-8
    np.testing.assert_allclose(log_density(prior)(x), expected, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_support_is_scipys(name):
    prior = EXAMPLES[name]
    assert support(prior) == tuple(float(v) for v in frozen(prior).support())
    lo, hi = support(prior)
    assert lo in (0.0, -math.inf) and hi == math.inf


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_family_s_parameters_are_its_table_fields_in_pymc_order(name):
    assert tuple(EXAMPLES[name].params) == FAMILIES[name].params
    assert FAMILIES[name].pymc == name


def test_each_prior_slot_accepts_its_families():
    assert allowed_families(MuPrior) == ("Normal",)
    assert allowed_families(BetaPrior) == ("Normal",)
    assert allowed_families(TauPrior) == ("HalfNormal", "HalfCauchy", "Exponential", "LogNormal")
    assert allowed_families(PhiPrior) == ("Exponential", "Gamma", "LogNormal", "HalfNormal")
    assert set(allowed_families(Prior)) == set(FAMILIES)


def test_a_prior_compares_by_family_and_parameters_whatever_its_slot_class():
    tau = TauPrior("HalfNormal", {"sigma": 1.0})
    assert tau == Prior("HalfNormal", {"sigma": 1}) and hash(tau) == hash(Prior(tau.root))
    assert tau != Prior("HalfNormal", {"sigma": 2.0})
    assert tau != Prior("LogNormal", {"mu": 0.0, "sigma": 1.0})
    assert str(tau) == "HalfNormal(sigma=1)" and tau.params == {"sigma": 1.0}
    assert pickle.loads(pickle.dumps(tau)) == tau
    # a plain Prior given for a slot is checked against the slot's families
    assert PriorsConfig(tau=Prior("Exponential", {"lam": 2.0})).tau == Prior(
        "Exponential", {"lam": 2.0}
    )
    with pytest.raises(ValueError, match="HalfNormal"):
        PriorsConfig(tau=Prior("Gamma", {"alpha": 1.0, "beta": 1.0}))
    with pytest.raises(ValueError):  # frozen
        tau.root = None  # type: ignore[misc]


@pytest.mark.parametrize(
    ("family", "moderators", "expected"),
    [
        ("logit_normal", (), ["mu", "tau"]),
        ("beta_binomial", (), ["mu", "phi"]),
        ("logit_normal", ("procedure",), ["mu", "tau", "beta"]),
        ("beta_binomial", ("procedure",), ["mu", "phi", "beta"]),
    ],
)
def test_the_used_priors_follow_family_and_moderators(family, moderators, expected):
    cfg = Config("x", model={"family": family, "moderators": moderators})
    used = used_priors(cfg)
    assert list(used) == expected
    assert all(used[k] == getattr(cfg.priors, k) for k in expected)


@pytest.mark.parametrize(
    "path",
    [
        "models/base.toml",
        "models/sensitivity/beta_binomial.toml",
        "models/subgroups/procedure.toml",
    ],
)
def test_the_engine_uses_exactly_the_used_priors(path):
    cfg = load_config(path)
    data = build_dataset(cfg.data, cfg.data_dir)
    design = build_design(data.table, cfg.model.moderators, cfg.model.reference)
    used = used_priors(cfg)
    _, _, families, _, _ = structure_key(cfg, data, design)
    assert families == tuple((k, p.dist) for k, p in used.items())
    values = data_values(cfg, data, design)
    prior_keys = {k for k in values if k.startswith("prior_")}
    assert prior_keys == {f"prior_{k}_{p}" for k, prior in used.items() for p in prior.params}
    free = {v.name for v in build_model(cfg, data, design).free_RVs}
    assert "beta" in free if "beta" in used else "beta" not in free
    # a design that does not match the config is refused instead of silently dropping beta
    if not cfg.model.moderators:
        wide = build_design(data.table, ("procedure",), {})
        with pytest.raises(ValueError, match="moderator column"):
            structure_key(cfg, data, wide)
