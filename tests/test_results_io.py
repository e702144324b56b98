"""Typed estimates and diagnostics: exactly the JSON of estimates.json and diagnostics.json.

The literals below are cut from files written before the types existed (a base fit, a
beta-binomial fit and a subgroup fit); reading them and writing them back must give the same
bytes, so results folders, the fit cache and paper/build/results.json are unchanged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from seeds import seed

from bayes_va.cli.main import main
from bayes_va.config.model import DiagnosticsConfig
from bayes_va.core.atomic import dumps_json
from bayes_va.core.errors import BayesVAError, ResultsFolderError
from bayes_va.fitting.diagnostics import Diagnostics, Mcse, Thresholds, compute_diagnostics
from bayes_va.fitting.estimates import (
    Estimates,
    ExactReference,
    Interval,
    Summary,
    headline,
    summarise_draws,
)
from bayes_va.fitting.results import load_result
from bayes_va.numerics.glmm import GLMMResult

BASE_ESTIMATES = json.loads(
    """{"bayes": {"mu": {"lower": -3.7266399237804335, "mean": -3.1741062240413402,
    "median": -3.1755813305748064, "sd": 0.27489295763356497, "upper": -2.634028101733025},
    "pooled": {"lower": 0.023507675689013238, "mean": 0.041502819118008946,
    "median": 0.040095052052545745, "sd": 0.011120473847526093, "upper": 0.06698027921483027},
    "predictive": {"lower": 0.005420604004154312, "mean": 0.0601240196322463,
    "median": 0.04037391262126842, "sd": 0.06678739304054665, "upper": 0.2318219306844361},
    "tau": {"lower": 0.6627713082591079, "mean": 0.9771156435090318, "median": 0.9478921484570748,
    "sd": 0.2050875338263192, "upper": 1.4387280982636124}}, "ci_prob": 0.95,
    "exact": {"mu": {"lower": -3.7261927197861473, "median": -3.165557390635515,
    "upper": -2.622073307762678}, "pooled": {"lower": 0.023517942858329283,
    "median": 0.04048263134409833, "upper": 0.06773125978952385},
    "predictive": {"lower": 0.005294132804867415, "median": 0.040484808662701426,
    "upper": 0.24744735791313266}, "tau": {"lower": 0.6500235342182706,
    "median": 0.9460613098244965, "upper": 1.4699065204941164}}, "family": "logit_normal",
    "glmm": {"ci_level": 0.95, "converged": true, "loglik": -74.03759350315158,
    "mu": -3.2001508508616836, "mu_ci": [-3.697105221699312, -2.7031964800240553],
    "n_studies": 14, "pooled": 0.03916004640660867,
    "pooled_ci": [0.024195272678821843, 0.0627850023632671], "se_method": "hessian",
    "se_mu": 0.25355280747888287, "tau": 0.8894571507887622, "tau2": 0.7911340230892628,
    "tau_at_zero": false}, "k": 14, "moderators": {"coefficients": [], "subgroups": []},
    "studies": [{"events": 14, "n": 843, "observed": 0.0166073546856465, "ppc_p": 0.918,
    "shrunken_lower": 0.010317402002116156, "shrunken_median": 0.017417728837926017,
    "shrunken_upper": 0.027396580786515176, "study": "chou2014", "y_rep_lower": 6.0,
    "y_rep_upper": 26.02500000000009}, {"events": 142, "n": 1395,
    "observed": 0.1017921146953405, "ppc_p": 0.91875, "shrunken_lower": 0.08574756769369965,
    "shrunken_median": 0.1010256691502382, "shrunken_upper": 0.11755353262342073,
    "study": "hazzard2014", "y_rep_lower": 110.0, "y_rep_upper": 174.0}]}"""
)

BASE_DIAGNOSTICS = json.loads(
    """{"divergences": 0, "failures": [], "max_rhat": 1.0020963787364576, "mcse": {"pooled":
    {"mean": 0.00018695429338155855, "q2.5": 0.0004794491808113137, "q50": 0.00020599781494179056,
    "q97.5": 0.0012411142030877773}, "predictive": {"mean": 0.0010743242845735054,
    "q2.5": 0.00029913174615644545, "q50": 0.000799033792022421, "q97.5": 0.009750957836042906},
    "tau": {"mean": 0.003801217931212778, "q2.5": 0.00857699383169891,
    "q50": 0.003382303291458555, "q97.5": 0.012806197639906647}}, "min_bfmi": 1.00902981565628,
    "min_ess_bulk": 3250.370702187551, "min_ess_tail": 2425.6034584961694, "ok": true,
    "thresholds": {"max_divergences": 0, "max_rhat": 1.01, "min_bfmi": 0.3,
    "min_ess_bulk": 400.0, "min_ess_tail": 400.0}, "timings": {"compile_seconds":
    11.498738147998665, "exact_seconds": 0.10346548599954986, "fit_seconds": 12.538796208000349,
    "reused_compiled_model": false, "sample_seconds": 0.6916178360006597}}"""
)

#: Beta-binomial: phi instead of tau, in the Bayesian and in the exact reference.
BB_PHI = {
    "lower": 12.375969614646651,
    "mean": 30.595785063485508,
    "median": 28.972081985024417,
    "sd": 11.970734862536858,
    "upper": 58.495058964047466,
}
BB_EXACT_PHI = {
    "lower": 11.706527362609817,
    "median": 28.807686687478895,
    "upper": 57.98728530090659,
}

#: A subgroup fit: coefficients and subgroup proportions, no references.
MODERATORS = {
    "coefficients": [
        {
            "coef": "procedure[KP]",
            "lower": -1.9095047679249963,
            "mean": -0.9724466691652849,
            "median": -0.9814014124526017,
            "or_lower": 0.14815373891429484,
            "or_median": 0.37478550157917156,
            "or_upper": 0.9753068641113602,
            "p_positive": 0.023,
            "sd": 0.4747103503374782,
            "upper": -0.025003125080241023,
        }
    ],
    "subgroups": [
        {
            "level": "VP",
            "lower": 0.012788076494386683,
            "mean": 0.027832791610618902,
            "median": 0.025920914298477746,
            "moderator": "procedure",
            "sd": 0.01053748502067901,
            "upper": 0.05387872278201117,
        },
        {
            "level": "KP",
            "lower": 0.013243863425849028,
            "mean": 0.030770467219003395,
            "median": 0.02883232601447372,
            "moderator": "procedure",
            "sd": 0.012280478852929792,
            "upper": 0.060017042479249334,
        },
    ],
}


def _beta_binomial() -> dict:
    raw = json.loads(json.dumps(BASE_ESTIMATES))
    raw["family"] = "beta_binomial"
    raw["bayes"]["phi"] = raw["bayes"].pop("tau")
    raw["bayes"]["phi"] = BB_PHI
    raw["exact"].pop("tau")
    raw["exact"]["phi"] = BB_EXACT_PHI
    return raw


def _moderated() -> dict:
    raw = json.loads(json.dumps(BASE_ESTIMATES))
    raw.update(exact=None, glmm=None, moderators=MODERATORS)
    return raw


@pytest.mark.parametrize(
    "raw", [BASE_ESTIMATES, _beta_binomial(), _moderated()], ids=["base", "beta_binomial", "mod"]
)
def test_estimates_read_and_written_back_give_the_same_bytes(raw):
    est = Estimates.from_dict(raw)
    assert dumps_json(est.to_dict()) == dumps_json(raw)
    assert Estimates.from_dict(est.to_dict()) == est


def test_diagnostics_read_and_written_back_give_the_same_bytes():
    diag = Diagnostics.from_dict(BASE_DIAGNOSTICS)
    assert dumps_json(diag.to_dict()) == dumps_json(BASE_DIAGNOSTICS)
    without = {k: v for k, v in BASE_DIAGNOSTICS.items() if k != "timings"}
    assert Diagnostics.from_dict(without).to_dict() == without  # no timings key while unset


def test_estimates_are_read_by_attribute():
    est = Estimates.from_dict(BASE_ESTIMATES)
    assert isinstance(est.pooled, Summary) and est.pooled.median == 0.040095052052545745
    assert est.spread_name == "tau" and est.spread is est.tau and est.phi is None
    assert isinstance(est.exact, ExactReference) and isinstance(est.exact.tau, Interval)
    assert isinstance(est.glmm, GLMMResult) and est.glmm.pooled_ci == (
        0.024195272678821843,
        0.0627850023632671,
    )
    assert [r.study for r in est.studies] == ["chou2014", "hazzard2014"]
    assert est.studies[0].n == 843 and isinstance(est.studies[0].n, int)
    bb = Estimates.from_dict(_beta_binomial())
    assert bb.spread_name == "phi" and bb.spread.median == BB_PHI["median"] and bb.tau is None
    assert bb.exact is not None and bb.exact.phi is not None and bb.exact.tau is None
    mod = Estimates.from_dict(_moderated())
    assert [c.coef for c in mod.moderators.coefficients] == ["procedure[KP]"]
    assert [s.level for s in mod.moderators.subgroups] == ["VP", "KP"]  # order kept


def test_diagnostics_are_read_by_attribute():
    d = Diagnostics.from_dict(BASE_DIAGNOSTICS)
    assert d.ok and d.failures == () and d.divergences == 0
    assert d.thresholds == Thresholds.from_config(DiagnosticsConfig())
    assert isinstance(d.mcse["pooled"], Mcse) and d.mcse["pooled"].q50 == 0.00020599781494179056
    assert d.timings is not None and d.timings.reused_compiled_model is False


def test_estimates_files_older_than_family_and_moderators_still_load():
    old = {k: v for k, v in BASE_ESTIMATES.items() if k not in ("family", "moderators")}
    est = Estimates.from_dict(old)
    assert est.family == "logit_normal" and est.moderators.coefficients == ()


def _fake_tree(rng: np.random.Generator, chains: int = 4, draws: int = 400) -> xr.DataTree:
    def draws_of(loc: float, scale: float) -> xr.DataArray:
        return xr.DataArray(rng.normal(loc, scale, (chains, draws)), dims=("chain", "draw"))

    mu = draws_of(-3.2, 0.3)
    posterior = xr.Dataset(
        {
            "mu": mu,
            "tau": np.abs(draws_of(0.9, 0.2)),
            "pooled": 1 / (1 + np.exp(-mu)),
            "predictive": 1 / (1 + np.exp(-(mu + draws_of(0.0, 0.9)))),
        }
    )
    stats = xr.Dataset(
        {
            "diverging": xr.DataArray(np.zeros((chains, draws), bool), dims=("chain", "draw")),
            "energy": draws_of(10.0, 1.0),
        }
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


def test_computed_diagnostics_and_headline_have_the_stored_layout():
    tree = _fake_tree(np.random.default_rng(seed(70)))
    diag = compute_diagnostics(tree, DiagnosticsConfig())
    raw = diag.to_dict()
    assert set(raw) == set(BASE_DIAGNOSTICS) - {"timings"}
    assert set(raw["mcse"]) == {"pooled", "predictive", "tau"}
    assert set(raw["mcse"]["tau"]) == {"mean", "q2.5", "q50", "q97.5"}
    assert raw["thresholds"] == BASE_DIAGNOSTICS["thresholds"]
    assert isinstance(raw["failures"], list) and raw["ok"] == (not raw["failures"])
    assert Diagnostics.from_dict(json.loads(dumps_json(raw))).to_dict() == raw
    heads = headline(tree)
    assert set(heads) == {"mu", "tau", "pooled", "predictive"}
    values = tree["posterior"]["tau"].values
    assert heads["tau"] == summarise_draws(values)
    # the same quantities, computed here on the (chain, draw) array: equal up to rounding
    # (np.quantile of a flattened vs a 2-D array can differ in the last bit)
    assert heads["tau"].to_dict() == pytest.approx(
        {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)),
            "median": float(np.median(values)),
            "lower": float(np.quantile(values, 0.025)),
            "upper": float(np.quantile(values, 0.975)),
        },
        rel=1e-12,
    )


def test_a_folder_without_every_result_file_is_bad_input(tmp_path, capsys):
    (tmp_path / "posterior.nc").write_bytes(b"")
    with pytest.raises(ResultsFolderError, match=r"diagnostics\.json"):
        load_result(tmp_path)
    assert issubclass(ResultsFolderError, BayesVAError)
    assert issubclass(ResultsFolderError, FileNotFoundError)  # what callers caught before
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a results folder" in err and "Traceback" not in err
