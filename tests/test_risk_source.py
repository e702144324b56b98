"""The risk layer checks which fit its default results folder holds.

``results/base`` (revision) and ``results/avf`` are read by default; a folder written with
``--set`` overrides, or by another config, must be refused with both configs named, unless the
user names the folder explicitly (``--results``, ``source=``). The fits here are stand-ins
(config, provenance and a small posterior), so no MCMC runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from conftest import PROJECT_ROOT
from scipy import special
from seeds import seed

import bayes_va.risk
import bayes_va.risk.baselines as baselines
from bayes_va.cli.main import main
from bayes_va.config.model import Config, load_config
from bayes_va.risk import RiskInputError, build_model, load_risk_config

PATIENT = ["--bmd", "-2.8", "--ivc", "yes", "--procedure", "PKP"]
PATIENT += ["--cement-volume", "3.0", "--endplate-contact", "no"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder (pyproject.toml, models/) as the working directory."""
    (tmp_path / "pyproject.toml").write_text("")
    shutil.copytree(PROJECT_ROOT / "models", tmp_path / "models")
    (tmp_path / "results" / "base").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tree() -> xr.DataTree:
    rng = np.random.default_rng(seed(80))
    mu = rng.normal(-3.2, 0.25, (2, 500))
    post = xr.Dataset(
        {
            "pooled": (("chain", "draw"), special.expit(mu)),
            "predictive": (("chain", "draw"), special.expit(mu + rng.normal(0, 0.9, mu.shape))),
        }
    )
    return xr.DataTree.from_dict({"posterior": post})


def _fit(cfg: Config, overrides: list[str] | None = None) -> SimpleNamespace:
    prov = {"config_hash": cfg.hash(), **({"overrides": overrides} if overrides else {})}
    return SimpleNamespace(config=cfg, provenance=prov, tree=_tree())


@pytest.fixture
def folder_holds(monkeypatch):
    """Make ``load_source`` return the given stand-in fit for any results folder."""

    def install(fit: SimpleNamespace) -> list:
        loaded = []

        def load_source(spec):
            loaded.append(spec)
            return fit

        monkeypatch.setattr(baselines, "load_source", load_source)
        monkeypatch.setattr(bayes_va.risk, "load_source", load_source)  # as the CLI imports it
        return loaded

    return install


def test_the_default_folder_of_the_expected_config_is_read(project, folder_holds):
    fit = _fit(load_config(project / "models" / "base.toml"))
    folder_holds(fit)
    assert baselines.load_configured_source("results/base", "revision") is fit
    assert baselines.load_configured_source("./results/base/", "revision") is fit


def test_a_default_folder_written_with_overrides_is_refused_naming_both(project, folder_holds):
    sets = ["priors.tau.sigma=0.5"]
    folder_holds(_fit(load_config(project / "models" / "base.toml", sets), sets))
    with pytest.raises(RiskInputError) as exc:
        baselines.load_configured_source("results/base", "revision")
    msg = str(exc.value)
    assert "results/base" in msg and "priors.tau.sigma=0.5" in msg
    assert "config 'base'" in msg and "models/base.toml" in msg and "--results" in msg


def test_a_default_folder_fitted_from_another_config_is_refused(project, folder_holds):
    other = load_config(project / "models" / "sensitivity" / "lin_high.toml")
    folder_holds(_fit(other))
    with pytest.raises(RiskInputError, match=r"config 'lin_high'.*models/base\.toml"):
        baselines.load_configured_source("results/base", "revision")


def test_the_avf_default_is_checked_against_the_avf_config(project, folder_holds):
    folder_holds(_fit(load_config(project / "models" / "base.toml")))
    with pytest.raises(RiskInputError, match=r"models/avf/base\.toml"):
        baselines.load_configured_source("results/avf", "avf")


def test_another_folder_or_an_exact_spec_is_not_checked(project, folder_holds):
    spec = "exact:models/base.toml"
    assert baselines.load_configured_source(spec, "revision") == spec  # passed through
    sets = ["priors.tau.sigma=0.5"]
    fit = _fit(load_config(project / "models" / "base.toml", sets), sets)
    folder_holds(fit)
    assert baselines.load_configured_source("results/base+abcd1234", "revision") is fit


def test_without_the_expected_config_file_only_overrides_are_refused(project, folder_holds):
    (project / "models" / "base.toml").unlink()
    cfg = load_config(PROJECT_ROOT / "models" / "base.toml")
    folder_holds(_fit(cfg))
    baselines.load_configured_source("results/base", "revision")  # nothing to compare: read
    folder_holds(_fit(cfg, ["sampler.seed=1"]))
    with pytest.raises(RiskInputError, match=r"sampler\.seed=1"):
        baselines.load_configured_source("results/base", "revision")


def test_build_model_checks_the_configs_folder_but_not_an_explicit_source(project, folder_holds):
    sets = ["priors.tau.sigma=0.5"]
    fit = _fit(load_config(project / "models" / "base.toml", sets), sets)
    folder_holds(fit)
    cfg = load_risk_config(project / "models" / "risk" / "default.toml", {"draws": 500})
    with pytest.raises(RiskInputError, match=r"priors\.tau\.sigma=0\.5"):
        build_model("revision", cfg)
    assert build_model("revision", cfg, source=fit).n_draws == 500


def test_cli_refuses_the_default_folder_and_accepts_it_named_explicitly(
    project, folder_holds, capsys
):
    sets = ["priors.tau.sigma=0.5"]
    loaded = folder_holds(_fit(load_config(project / "models" / "base.toml", sets), sets))
    argv = ["risk", "--outcome", "revision", *PATIENT, "--draws", "500"]
    argv += ["--config", str(project / "models" / "risk" / "default.toml")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: results/base holds a fit of config 'base' with overrides")
    assert main([*argv, "--results", "results/base"]) == 0
    assert "median" in capsys.readouterr().out
    # read once per run (the baseline builders pass the loaded fit through load_source again)
    assert [s for s in loaded if isinstance(s, str)] == ["results/base", "results/base"]
