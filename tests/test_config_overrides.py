"""One override path: ``apply_overrides`` (a loaded config) and ``load_config`` (a file) take a
dict of dotted keys or ``"key=value"`` strings alike, and ``fit`` and ``run_sbc`` use them."""

from __future__ import annotations

import pytest
from seeds import seed

import bayes_va.workflows.sbc as sbc
from bayes_va.config.model import Config, Prior, apply_overrides, load_config
from bayes_va.config.overrides import parse_override, parse_overrides
from bayes_va.core.errors import ConfigError

BASE = "models/base.toml"


@pytest.fixture(scope="module")
def base() -> Config:
    return load_config(BASE)


def test_string_and_dict_overrides_give_the_same_config(base):
    strings = ["sampler.seed=7", "priors.tau.sigma=0.5", 'data.exclude=["lin2016"]']
    as_dict = {"sampler.seed": 7, "priors.tau.sigma": 0.5, "data.exclude": ["lin2016"]}
    assert parse_overrides(strings) == as_dict
    a, b = apply_overrides(base, strings), apply_overrides(base, as_dict)
    assert a == b == load_config(BASE, strings) == load_config(BASE, as_dict)
    assert (a.sampler.seed, a.priors.tau, a.data.exclude) == (
        7,
        Prior("HalfNormal", {"sigma": 0.5}),
        ("lin2016",),
    )
    assert a.root == base.root


@pytest.mark.parametrize("nothing", [None, [], {}])
def test_no_overrides_return_the_config_itself(base, nothing):
    assert apply_overrides(base, nothing) is base


def test_a_whole_table_can_be_overridden(base):
    cfg = apply_overrides(base, ['priors.tau={dist = "Exponential", lam = 2}'])
    assert cfg.priors.tau == Prior("Exponential", {"lam": 2.0})
    assert apply_overrides(base, {"priors.tau": Prior("Exponential", {"lam": 2.0})}) == cfg


def test_parse_override_reads_toml_values_and_bare_words():
    assert parse_override("a.b=1") == ("a.b", 1)
    assert parse_override(" a = 0.5 ") == ("a", 0.5)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=pymc") == ("a", "pymc")
    assert parse_override("a=x=y") == ("a", "x=y")


def test_bad_overrides_raise_config_errors_naming_the_key(base):
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(base, ["sampler.seed"])
    with pytest.raises(ConfigError, match="list of key=value"):
        apply_overrides(base, "sampler.seed=1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'sampler\.chains' must be >= 1, got 0"):
        apply_overrides(base, ["sampler.chains=0"])
    with pytest.raises(ConfigError, match=r"unknown key sampler\.chainz"):
        apply_overrides(base, {"sampler.chainz": 2})


def test_run_sbc_applies_string_overrides_to_a_loaded_config(base, monkeypatch, tmp_path):
    """``run_sbc(cfg, overrides=[...])`` used to drop string overrides of a loaded config."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_run_tasks(fn, n_tasks, out_dir, **kwargs):
        seen["config"] = kwargs["manifest"]["config"]
        raise Stop

    monkeypatch.setattr(sbc, "run_tasks", fake_run_tasks)
    overrides = [f"sampler.seed={seed(11)}", "sampler.draws=300", "priors.tau.sigma=0.5"]
    for config in (base, BASE):  # a loaded config and a path take the same path
        seen.clear()
        with pytest.raises(Stop):
            sbc.run_sbc(config, 2, tmp_path / "sbc", overrides=overrides, progress=False)
        assert seen["config"] == apply_overrides(base, overrides).to_dict()
        assert seen["config"]["sampler"]["draws"] == 300
        assert seen["config"]["priors"]["tau"] == {"dist": "HalfNormal", "sigma": 0.5}
