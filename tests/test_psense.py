"""Prior sensitivity: the log prior group, power-scaling flags, prior predictive checks.

The log prior is checked against PyMC's own log densities (the model is built from the same
config by distribution name). Power-scaling flags use the published threshold 0.05
(Kallioinen et al. 2024). Each assertion on either side of it keeps a margin of many SDs of the
estimate's spread over fresh streams (measured over 12 seeds of the 4 x 500-draw fits, listed
with each test). The reported MCSE is a between-chain SE from 4 chains: a t with 3 degrees of
freedom, whose 0.1 % tail lies 10 SEs out, so "4 MCSEs clear of the threshold" failed on 2 of
the 12 seeds for the pooled likelihood sensitivity, and it cannot bound a tail.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit

import bayes_va
from bayes_va.checking.psense import (
    SENSITIVITY_THRESHOLD,
    log_prior,
    power_scaling_sensitivity,
    prior_predictive_check,
    prior_predictive_of,
    with_log_prior,
)
from bayes_va.config.model import Prior
from bayes_va.config.priors import frozen
from bayes_va.data.moderators import build_design
from bayes_va.engine.prior import add_prior, prior_draws
from bayes_va.fitting.results import load_result
from bayes_va.viz.checks import plot_prior_predictive
from bayes_va.viz.psense import plot_power_scaling, plot_prior_vs_posterior

pytestmark = pytest.mark.sampling

SMALL = {"sampler.draws": 500, "sampler.tune": 500}


@pytest.fixture(scope="module")
def base():
    return bayes_va.fit("models/base.toml", overrides=SMALL)


@pytest.fixture(scope="module")
def base_table(base):
    return power_scaling_sensitivity(base).set_index("quantity")


@pytest.mark.parametrize(
    "prior",
    [
        Prior("Normal", {"mu": -1.0, "sigma": 2.0}),
        Prior("HalfNormal", {"sigma": 0.7}),
        Prior("HalfCauchy", {"beta": 0.5}),
        Prior("Exponential", {"lam": 0.01}),
        Prior("LogNormal", {"mu": 0.2, "sigma": 0.8}),
        Prior("Gamma", {"alpha": 2.0, "beta": 0.05}),
    ],
    ids=lambda p: p.dist,
)
def test_prior_log_densities_match_pymc(prior):
    import pymc as pm
    import pytensor

    x = np.array([0.3, 1.7, 40.0])
    dist = getattr(pm, prior.dist).dist(**prior.params)
    expected = pytensor.function([], pm.logp(dist, x), mode="FAST_COMPILE")()
    # PyMC writes some normalising constants (log sqrt(2 pi), log pi) as float32 literals:
    # constant offsets of ~4e-9, hence the absolute tolerance
    np.testing.assert_allclose(frozen(prior).logpdf(x), expected, rtol=0, atol=1e-8)


def test_log_prior_group_holds_the_top_level_priors_per_draw(base):
    lp = log_prior(base)
    assert set(lp.data_vars) == {"mu", "tau"}  # theta's population distribution is not a prior
    post = base.tree["posterior"]
    assert lp["mu"].dims == ("chain", "draw") and lp["mu"].shape == post["mu"].shape
    tau = post["tau"].values
    np.testing.assert_allclose(lp["tau"].values, np.log(2 / np.sqrt(2 * np.pi)) - tau**2 / 2)
    tree = with_log_prior(base)
    assert "log_prior" in tree.children and "log_prior" not in base.tree.children


def test_pooled_proportion_is_not_prior_sensitive_under_the_base_priors(base_table):
    row = base_table.loc["pooled"]
    # prior sensitivity 0.019-0.027 over 12 seeds (mean 0.022, SD 0.0024): 0.05 is 12 SDs up
    assert row["prior"] < SENSITIVITY_THRESHOLD, row
    assert not row["prior_sensitive"] and row["diagnosis"] == "ok"
    # the data drive it: likelihood sensitivity 0.124-0.176 (mean 0.153, SD 0.018), 5.7 SDs
    # above the threshold
    assert row["likelihood"] > SENSITIVITY_THRESHOLD, row


def test_table_covers_the_headline_quantities_unrounded(base_table):
    assert list(base_table.index) == ["pooled", "predictive", "tau", "mu"]
    values = base_table[["prior", "likelihood"]].to_numpy().ravel()
    assert np.any(values != np.round(values, 3))
    assert set(base_table["diagnosis"]) <= {
        "ok",
        "potential prior-data conflict",
        "potential strong prior / weak likelihood",
    }
    flagged = base_table["prior"] >= SENSITIVITY_THRESHOLD
    assert (base_table["prior_sensitive"] == flagged).all()


def test_a_tight_prior_on_tau_is_flagged_as_prior_sensitive(base):
    tight = bayes_va.fit(base.config.replace(**{"priors.tau.sigma": 0.1}))
    row = power_scaling_sensitivity(tight).set_index("quantity").loc["tau"]
    # prior sensitivity 0.37-0.48 over 12 seeds (mean 0.43, SD 0.027): 14 SDs above 0.05;
    # "borderline" (within 2 MCSEs of it) would need an MCSE > 0.16 against the 0.009-0.036
    # seen; the likelihood sensitivity (0.32-0.37 over 6 seeds) makes it a conflict
    assert row["prior"] > SENSITIVITY_THRESHOLD, row
    assert row["prior_sensitive"] and not row["borderline"]
    assert row["diagnosis"] == "potential prior-data conflict"


def test_conditional_likelihood_power_scaling_is_available_but_marginal_is_default(base):
    marginal = power_scaling_sensitivity(base, var_names=["tau"])
    conditional = power_scaling_sensitivity(base, var_names=["tau"], likelihood="conditional")
    assert marginal.loc[0, "prior"] == conditional.loc[0, "prior"]  # same prior weights
    assert marginal.loc[0, "likelihood"] != conditional.loc[0, "likelihood"]


def test_prior_predictive_of_the_base_priors_holds_the_observed_data(base, tmp_path):
    pp = prior_predictive_of(base)
    assert pp.conflicts == ()
    assert set(pp.quantities["quantity"]) == {"pooled", "mu", "predictive", "tau"}
    files = plot_prior_predictive(pp, tmp_path / "pp")
    assert [f.suffix for f in files] == [".png", ".svg"]
    again = prior_predictive_of(base)
    assert again.statistics.equals(pp.statistics)  # seeded


def test_prior_predictive_flags_a_prior_that_conflicts_with_the_data(base):
    # mu ~ Normal(4, 0.1): pooled proportion ~ 0.98, against an observed 0.12
    cfg = base.config.replace(**{"priors.mu.mu": 4.0, "priors.mu.sigma": 0.1})
    pp = prior_predictive_check(cfg, base.data.y, base.data.n)
    assert "pooled proportion (sum y / sum n)" in pp.conflicts
    assert "median study proportion" in pp.conflicts


def test_prior_predictive_of_the_beta_binomial_with_a_gamma_prior(base):
    cfg = base.config.replace(
        **{
            "model.family": "beta_binomial",
            "priors.phi": {"dist": "Gamma", "alpha": 2.0, "beta": 0.02},
        }
    )
    pp = prior_predictive_check(cfg, base.data.y, base.data.n, draws=2000)
    assert "phi" in set(pp.quantities["quantity"])
    assert np.isfinite(pp.statistics["p_value"]).all()


# ArviZ warns before it raises on a degenerate chain; the warning is about the input we built
@pytest.mark.filterwarnings("ignore:Number of tail draws:UserWarning")
def test_a_stuck_chain_leaves_its_mcse_unknown_instead_of_losing_the_table(base):
    """A chain whose draws are all equal (a badly diverging run) has no tail to smooth.

    Deterministic: chain 0 is made constant by hand, so ArviZ's Pareto smoothing of that
    chain must fail, whatever the stream.
    """
    import dataclasses

    tree = base.tree.copy(deep=True)
    for group in ("posterior", "log_likelihood"):
        ds = tree[group].to_dataset()
        for name, da in ds.data_vars.items():
            first = da.isel(chain=0, draw=0)
            ds[name] = da.where(da["chain"] != da["chain"][0], first)
        tree[group] = xr.DataTree(ds)
    stuck = dataclasses.replace(base, tree_source=tree)
    table = power_scaling_sensitivity(stuck)
    assert len(table) > 0
    assert table["prior_mcse"].isna().all()
    assert np.isfinite(table["prior"]).all()


# --------------------------------------------------------------------------- the prior group

#: Kolmogorov-Smirnov p-value below which a prior's draws are said not to follow it: a correct
#: draw fails with probability 1e-3 per test, whatever the stream.
KS_ALPHA = 1e-3


def test_a_fit_stores_prior_draws_of_the_used_priors_and_a_prior_predictive(base):
    prior, post = base.tree["prior"], base.tree["posterior"]
    assert set(prior.data_vars) == {"mu", "tau", "pooled", "predictive"}
    assert dict(prior.sizes) == {"chain": post.sizes["chain"], "draw": post.sizes["draw"]}
    for name, dist in (("mu", base.config.priors.mu), ("tau", base.config.priors.tau)):
        assert stats.kstest(prior[name].values.ravel(), frozen(dist).cdf).pvalue > KS_ALPHA
    np.testing.assert_array_equal(prior["pooled"].values, expit(prior["mu"].values))
    y = base.tree["prior_predictive"]["y"]
    assert y.dims == ("chain", "draw", "study")
    assert list(y["study"].values) == list(base.data.study)
    assert ((y >= 0) & (y <= base.tree["observed_data"]["n"])).all()


def test_the_prior_group_is_the_prior_predictive_checks_draws(base):
    """One definition of the prior draws: with as many draws as the fit, the check's
    replicated statistics are those of the stored prior predictive group."""
    n_draws = base.tree["prior"]["mu"].size
    pp = prior_predictive_check(base.config, base.data.y, base.data.n, draws=n_draws)
    y = base.tree["prior_predictive"]["y"].values.reshape(n_draws, -1)
    np.testing.assert_array_equal(
        pp.draws["pooled proportion (sum y / sum n)"], y.sum(axis=1) / base.data.n.sum()
    )
    quantiles = pp.quantities.set_index("quantity")
    np.testing.assert_allclose(
        quantiles.loc["tau", ["q2.5", "q50", "q97.5"]].to_numpy(dtype=float),
        np.quantile(base.tree["prior"]["tau"].values, [0.025, 0.5, 0.975]),
    )


def test_adding_the_prior_leaves_every_other_group_as_it_was(base):
    bare = xr.DataTree.from_dict(
        {k: v.to_dataset() for k, v in base.tree.children.items() if not k.startswith("prior")}
    )
    design = build_design(
        base.data.table, base.config.model.moderators, base.config.model.reference
    )
    again = add_prior(bare, base.config, base.data, design)
    for name in bare.children:
        xr.testing.assert_identical(again[name].to_dataset(), base.tree[name].to_dataset())
    xr.testing.assert_identical(again["prior"].to_dataset(), base.tree["prior"].to_dataset())
    # its own seed stream: another sampler seed gives other prior draws, the same seed the same
    other = prior_draws(base.config, base.data.n, draws=10, seed=base.config.sampler.seed + 1)
    same = prior_draws(base.config, base.data.n, draws=10)
    assert not np.array_equal(other.quantities["mu"], same.quantities["mu"])
    np.testing.assert_array_equal(same.quantities["mu"], base.tree["prior"]["mu"].values[0, :10])


def test_the_prior_group_round_trips_through_the_results_folder(base, tmp_path):
    base.save(tmp_path / "r")
    loaded = load_result(tmp_path / "r")
    for group in ("prior", "prior_predictive"):
        xr.testing.assert_equal(loaded.tree[group].to_dataset(), base.tree[group].to_dataset())
    np.testing.assert_array_equal(
        loaded.tree["posterior"]["mu"].values, base.tree["posterior"]["mu"].values
    )


def test_a_moderator_fit_draws_beta_from_its_prior(tmp_path):
    fit = bayes_va.fit("models/subgroups/procedure.toml", overrides=SMALL)
    beta = fit.tree["prior"]["beta"]
    assert beta.dims == ("chain", "draw", "coef")
    assert list(beta["coef"].values) == list(fit.tree["posterior"]["coef"].values)
    for j in range(beta.sizes["coef"]):
        draws = beta.isel(coef=j).values.ravel()
        assert stats.kstest(draws, frozen(fit.config.priors.beta).cdf).pvalue > KS_ALPHA / 2
    files = plot_prior_vs_posterior(fit, tmp_path / "pp") + plot_power_scaling(fit, tmp_path / "ps")
    assert sorted(f.suffix for f in files) == [".png", ".png", ".svg", ".svg"]
    assert all(f.stat().st_size > 1000 for f in files)
