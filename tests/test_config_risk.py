"""The risk config (bayes_va.config.risk): the file's schema, the flat RiskConfig, its default
path found from the project root, and the transport prior."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import bayes_va
from bayes_va.config.risk import (
    RiskConfig,
    RiskFile,
    TransportPrior,
    default_risk_config_path,
    load_risk_config,
    risk_config_from_dict,
)
from bayes_va.core.errors import ConfigError
from bayes_va.numerics import outcomes

ROOT = Path(bayes_va.__file__).resolve().parent.parent
DEFAULT = ROOT / "models" / "risk" / "default.toml"


def test_the_shipped_file_gives_the_documented_defaults():
    cfg = load_risk_config(DEFAULT)
    assert cfg == RiskConfig(description=cfg.description)  # the file spells out the defaults
    assert cfg.transport == TransportPrior("Beta", alpha=2.0, beta=2.0) == TransportPrior()
    assert (cfg.draws, cfg.seed, cfg.revision_results) == (4000, 20231123, "results/base")
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_the_default_path_is_found_from_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT / "models")
    assert default_risk_config_path() == DEFAULT
    assert load_risk_config() == load_risk_config(DEFAULT)
    monkeypatch.chdir(tmp_path)  # outside any project
    with pytest.raises(ConfigError, match=r"models/risk/default\.toml.*--config"):
        load_risk_config()


def test_the_contrast_priors_are_those_of_the_outcomes_module():
    allowed = RiskConfig.model_fields["contrast_prior"].annotation.__args__
    assert set(allowed) == set(outcomes.PRIORS)


def test_every_problem_of_a_file_is_reported_at_once_with_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[draws]\nn = 50\nthreshold = true\n"
        '[revision]\nbaseline = "mean"\n[revision.transport]\ndist = "Beta"\nalpha = 0\nbeta = 1\n'
        "[avf]\nhorizon = 12\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_risk_config(bad)
    message = str(exc.value)
    assert message.startswith(f"{bad}: 5 problems")
    for fragment in (
        "'draws.n' must be >= 100, got 50",
        "'draws.threshold' must be a number, got True",
        "'revision.baseline' is 'mean'; allowed: pooled, predictive",
        "'revision.transport.alpha' must be > 0, got 0",
        "unknown key avf.horizon; allowed here: results, horizon_months, reference",
    ):
        assert fragment in message, message


def test_a_transport_table_takes_exactly_its_family_s_parameters():
    with pytest.raises(ConfigError, match=r"'revision\.transport' \(Fixed\) needs value"):
        risk_config_from_dict({"revision": {"transport": {"dist": "Fixed"}}})
    with pytest.raises(ConfigError, match=r"'revision\.transport\.dist' is 'Uniform'"):
        risk_config_from_dict({"revision": {"transport": {"dist": "Uniform"}}})
    cfg = risk_config_from_dict({"revision": {"transport": {"dist": "Fixed", "value": 0}}})
    assert cfg.transport == TransportPrior("Fixed", value=0.0)
    assert str(cfg.transport) == "lambda = 0 (no transport)"


def test_overrides_are_field_names_and_are_validated():
    cfg = load_risk_config(DEFAULT, {"transport": TransportPrior.parse("1"), "draws": 500})
    assert (cfg.transport.dist, cfg.transport.value, cfg.draws) == ("Fixed", 1.0, 500)
    with pytest.raises(ConfigError, match=r"unknown key draw; allowed here: name"):
        load_risk_config(DEFAULT, {"draw": 500})
    with pytest.raises(ConfigError, match=r"'threshold' must be < 1, got 1.5"):
        load_risk_config(DEFAULT, {"threshold": 1.5})


def test_a_transport_prior_checks_its_range():
    with pytest.raises(ValueError, match=r"fixed lambda must lie in \[0, 1\]"):
        TransportPrior("Fixed", value=1.5)
    with pytest.raises(ValueError, match="Beta needs alpha > 0"):
        TransportPrior("Beta", alpha=0.0, beta=1.0)
    assert TransportPrior.parse("Beta(3, 1.5)") == TransportPrior("Beta", alpha=3.0, beta=1.5)


def test_the_file_model_and_the_config_share_their_defaults():
    assert RiskFile().to_config() == RiskConfig()
