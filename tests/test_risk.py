"""The patient-level risk layer: recovery on simulated cohorts, calibration, transport, AVF,
profile validation, seeds, config and the ``risk`` command.

References: a logistic-regression MLE fitted here with scipy (the simulation truth is known), the
score equation of that MLE (mean fitted risk = observed rate, so the calibrated intercept at the
MLE slopes *is* the MLE intercept), numpy's quantiles, and the exact quadrature posterior of the
base revision model. No MCMC: revision and AVF baselines come from small fake posteriors.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import optimize, special
from seeds import seed

import bayes_va
from bayes_va import risk
from bayes_va.cli import risk as risk_cli
from bayes_va.core.errors import BayesVAError, ConfigError
from bayes_va.risk import (
    EXAMPLE_PROFILES,
    ExtrapolationWarning,
    ProfileError,
    PseudoCohort,
    RiskInputError,
    TransportPrior,
)
from bayes_va.viz.risk import write_figures

PROJECT_ROOT = Path(bayes_va.__file__).resolve().parent.parent
#: Fewer draws than the default keeps the suite fast; every check below allows for that.
DRAWS = 1000
#: The risk layer's default seed, shifted like every seed of the tests (tests/seeds.py).
RISK_SEED = seed(risk.DEFAULT_SEED)
PROFILES = [{"id": k, **v} for k, v in EXAMPLE_PROFILES.items()]
#: The An cohort: 82 events of 257 (Table 1 group sizes).
AN_EVENTS, AN_N = 82, 257


def fake_revision_tree(chains: int = 2, draws: int = 500, stream: int = 0) -> xr.DataTree:
    """A posterior with ``pooled`` and ``predictive`` draws near the base fit's (about 4 %)."""
    rng = np.random.default_rng(seed(stream))
    mu = rng.normal(-3.2, 0.25, (chains, draws))
    tau = np.abs(rng.normal(0.9, 0.15, (chains, draws)))
    post = xr.Dataset(
        {
            "pooled": (("chain", "draw"), special.expit(mu)),
            "predictive": (("chain", "draw"), special.expit(mu + tau * rng.normal(size=mu.shape))),
            "tau": (("chain", "draw"), tau),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )
    return xr.DataTree.from_dict({"posterior": post})


class FakeAVFResult:
    """The AVF fit's interface: ``tree`` and ``linear_predictor`` (raw months, logged inside)."""

    def __init__(self, rate_12: float = 0.07, slope: float = 0.4, sd: float = 0.0) -> None:
        rng = np.random.default_rng(seed(1))
        shape = (2, 500)
        mu = special.logit(rate_12) + sd * rng.standard_normal(shape)
        post = xr.Dataset(
            {
                "mu": (("chain", "draw"), mu),
                "beta": (("chain", "draw"), np.full(shape, slope)),
                "tau": (("chain", "draw"), np.full(shape, 0.5)),
            }
        )
        self.tree = xr.DataTree.from_dict({"posterior": post})

    def linear_predictor(self, moderators: dict[str, float] | None = None) -> xr.DataArray:
        post = self.tree["posterior"]
        months = (moderators or {}).get("log_followup_months", 12.0)
        return post["mu"] + post["beta"] * (math.log(months) - math.log(12.0))


@pytest.fixture(scope="module")
def recompression() -> risk.RiskModel:
    return risk.recompression_model(n_draws=DRAWS, seed=RISK_SEED)


# ------------------------------------------------------------------- simulation recovery


def simulate_cohort(n: int, stream: int) -> dict[str, np.ndarray]:
    """Patients with An-like covariates and An's coefficients as the truth."""
    rng = np.random.default_rng(seed(stream))
    X = np.column_stack(
        [
            rng.normal(-2.07, 0.76, n),
            rng.random(n) < 0.37,
            rng.random(n) < 0.33,
            rng.random(n) < 0.54,
            rng.gamma((4.16 / 1.47) ** 2, 1.47**2 / 4.16, n),
            rng.normal(15.5, 10.5, n),
        ]
    ).astype(float)
    beta = np.array([-0.539, 1.179, -1.089, 0.918, -0.584, -0.008])
    intercept = -1.0 - X.mean(axis=0) @ beta  # logit risk -1 at the sample mean profile
    y = (rng.random(n) < special.expit(intercept + X @ beta)).astype(float)
    return {"X": X, "y": y, "beta": beta, "intercept": intercept}


def logistic_mle(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ML (intercept, slopes) and their covariance (inverse observed information)."""
    D = np.column_stack([np.ones(len(y)), X])

    def nll(t: np.ndarray) -> float:
        eta = D @ t
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    def grad(t: np.ndarray) -> np.ndarray:
        return D.T @ (special.expit(D @ t) - y)

    def hess(t: np.ndarray) -> np.ndarray:
        q = special.expit(D @ t)
        return (D * (q * (1 - q))[:, None]).T @ D

    res = optimize.minimize(nll, np.zeros(D.shape[1]), jac=grad, hess=hess, method="trust-exact")
    assert res.success
    return res.x, np.linalg.inv(hess(res.x))


@pytest.fixture(scope="module")
def simulated() -> dict[str, np.ndarray]:
    sim = simulate_cohort(3000, stream=20240601)
    sim["theta"], sim["cov"] = logistic_mle(sim["X"], sim["y"])
    return sim


def test_calibrated_intercept_at_the_mle_slopes_is_the_mle_intercept(simulated):
    # score equation of a logistic MLE with intercept: sum of fitted risks = sum of events
    X, y, theta = simulated["X"], simulated["y"], simulated["theta"]
    cohort = PseudoCohort(("x",) * 6, X, np.full(len(y), 1 / len(y)), "the simulated patients")
    alpha = risk.calibrate_intercept(theta[None, 1:], cohort, np.array([y.mean()]), x_ref=0 * X[0])
    assert alpha[0] == pytest.approx(theta[0], abs=1e-8)


def _write_an_tables(folder: Path, edit_csv, sim: dict[str, np.ndarray]) -> None:
    """Replace An's Table 1 and Table 2 numbers with the simulated cohort's summaries."""
    X, y, theta, cov = sim["X"], sim["y"], sim["theta"], sim["cov"]
    se = np.sqrt(np.diag(cov))[1:]
    rows = edit_csv.rows("an2021_coefficients.csv")
    order = [
        "bmd",
        "ivc",
        "pvp_vs_pkp",
        "no_endplate_contact",
        "cement_volume_ml",
        "anterior_height_recovery_pct",
    ]
    h = rows[0]
    for r in rows[1:]:
        k = order.index(r[0])
        r[h.index("B")], r[h.index("SE")] = repr(float(theta[1 + k])), repr(float(se[k]))
    edit_csv.write("an2021_coefficients.csv", rows)

    ev, no = X[y == 1], X[y == 0]
    cont = {
        "BMD": 0,
        "Volume of bone cement injected (ml)": 4,
        "Recovery of anterior column height (%)": 5,
    }
    counts = {
        ("IVC", "Yes"): (1, 1),
        ("IVC", "NO"): (1, 0),
        ("Surgical methods", "PVP"): (2, 1),
        ("Surgical methods", "PKP"): (2, 0),
        ("The bone cement was in contact with the upper or lower endplates", "No"): (3, 1),
        ("The bone cement was in contact with the upper or lower endplates", "Yes"): (3, 0),
    }
    rows = edit_csv.rows("an2021_table1.csv")
    h = rows[0]
    rv, rs, nv, ns = (
        h.index(c)
        for c in (
            "recompression_value",
            "recompression_sd",
            "noncompression_value",
            "noncompression_sd",
        )
    )
    for r in rows[1:]:
        if r[0] in cont:
            k = cont[r[0]]
            r[rv], r[rs] = repr(float(ev[:, k].mean())), repr(float(ev[:, k].std(ddof=1)))
            r[nv], r[ns] = repr(float(no[:, k].mean())), repr(float(no[:, k].std(ddof=1)))
        elif (r[0], r[1]) in counts:
            k, level = counts[(r[0], r[1])]
            r[rv] = str(int((ev[:, k] == level).sum()))
            r[nv] = str(int((no[:, k] == level).sum()))
    edit_csv.write("an2021_table1.csv", rows)


def test_layer_built_from_published_style_summaries_recovers_the_true_risk(
    simulated, edit_csv, tmp_data_dir
):
    """Only what a paper prints (B, SE, Table 1 by group, events/n) → risks cover the truth.

    Margins from 120 simulation seeds (cohort, profiles and draws all fresh): the
    non-collapsibility gap was 0.257 (SD 0.020, min 0.215); the pseudo-cohort intercept's
    error 0.14 of it (SD 0.033, max 0.22); the largest |z| of the 12 true risks 1.7 (max 3.6).
    """
    _write_an_tables(tmp_data_dir, edit_csv, simulated)
    model = risk.recompression_model(n_draws=2000, seed=seed(11), data_dir=tmp_data_dir)
    X, y = simulated["X"], simulated["y"]
    assert risk._an_table1(tmp_data_dir)[0] == (int(y.sum()), int(len(y) - y.sum()))

    # 1) the pseudo-cohort's intercept is close to the MLE's (within 1/3 of the
    #    non-collapsibility gap that plugging in the mean profile would leave: 5.7 SDs of its
    #    spread over seeds; the gap itself is 7.8 SDs above 0.1)
    theta = simulated["theta"]
    alpha_mle = theta[0] + model.layer.x_ref @ theta[1:]
    gap = abs(special.logit(y.mean()) - alpha_mle)
    assert gap > 0.1  # the simulated cohort does show non-collapsibility
    assert abs(np.median(model.layer.alpha) - alpha_mle) < gap / 3

    # 2) true risks of profiles spread over the cohort: each within 4.5 posterior SDs of the
    #    posterior median on the logit scale (12 profiles at two-sided 6.8e-6 each: < 1e-4 for
    #    a calibrated layer). "Inside every 95 % interval" held for only 69 % of the seeds.
    rng = np.random.default_rng(seed(5))
    rows = X[rng.choice(len(y), 12, replace=False)]
    profiles = [
        {
            "bmd": r[0],
            "ivc": "yes" if r[1] else "no",
            "procedure": "PVP" if r[2] else "PKP",
            "endplate_contact": "no" if r[3] else "yes",
            "cement_volume": r[4],
            "anterior_height_recovery": r[5],
        }
        for r in rows
    ]
    truth = special.expit(simulated["intercept"] + rows @ simulated["beta"])
    logit_risk = special.logit(model.risk(profiles, warn=False).values)  # (sample, patient)
    z = (special.logit(truth) - np.median(logit_risk, axis=0)) / logit_risk.std(axis=0)
    assert np.abs(z).max() <= 4.5, np.round(z, 2)
    # and the medians track the truth on the logit scale: largest error 0.23 (SD 0.083, max
    # 0.57 over the 120 seeds); 1.0 is 9 SDs out, a gross check
    s = model.summarise(profiles, warn=False)
    err = np.abs(special.logit(s["median"]) - special.logit(truth))
    assert err.max() < 1.0, s.assign(truth=truth)[["median", "lower", "upper", "truth"]]


# ---------------------------------------------------------------------------- calibration


def test_pseudo_cohort_matches_table1_marginals_in_each_group():
    cohort = risk.an2021_pseudo_cohort(replicates=4, seed=RISK_SEED)
    groups, marginals = risk._an_table1(None)
    assert groups == (AN_EVENTS, AN_N - AN_EVENTS)
    assert cohort.X.shape == (4 * AN_N, 6)
    ev, no = cohort.X[: 4 * AN_EVENTS], cohort.X[4 * AN_EVENTS :]
    for k, m in enumerate(marginals):
        for part, (first, second) in zip((ev, no), m.by_group, strict=True):
            if m.kind == "binary":
                assert part[:, k].sum() == 4 * first
            else:
                assert part[:, k].mean() == pytest.approx(first, abs=1e-10)
                assert part[:, k].std() == pytest.approx(second, abs=1e-10)
    cement = cohort.X[:, cohort.columns.index("cement_volume_ml")]
    assert cement.min() > 0  # gamma, not normal: no negative volumes


def test_calibration_reproduces_82_of_257_on_each_draws_cohort(recompression):
    # every draw and replicate solves its calibration equation over its own cohort draw's points
    # (the copula cohort; the earlier single permuted cohort is method = "permutation")
    cal = recompression.calibration
    target = recompression.components["baseline"]
    pts, w = cal.design.points, cal.design.weights
    for s in range(0, DRAWS, 37):
        c = cal.cohort_of_draw[s]
        for r in range(cal.design.n_replicates):
            eta = cal.alpha_replicates[s, r] + (pts[c, r] - cal.x_ref) @ cal.beta[s]
            assert special.expit(eta) @ w == pytest.approx(target[s], abs=1e-10)
    np.testing.assert_array_equal(recompression.layer.alpha, cal.alpha_replicates.mean(axis=1))
    mean_risk = target  # the population-average risk is the calibration target
    # the targets carry the binomial uncertainty: Beta(82.5, 175.5) (Jeffreys) around 82/257.
    # Its median is 0.3190 and its SD 0.02898; from 1,000 draws the sample median has SE 0.0012
    # (0.01: 8 SEs) and the sample SD has SE sd / sqrt(2 n) = 0.00065 (0.003: 4.6 SEs); the
    # sample mean estimates the Beta mean 82.5/258 (not 82/257, 0.76 SE away) with SE 0.00092,
    # allowed 4 SEs (two-sided 6.3e-5)
    a, b = AN_EVENTS + 0.5, AN_N - AN_EVENTS + 0.5
    beta_sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert np.median(target) == pytest.approx(AN_EVENTS / AN_N, abs=0.01)
    assert target.std() == pytest.approx(beta_sd, abs=0.003)
    assert mean_risk.mean() == pytest.approx(a / (a + b), abs=4 * beta_sd / math.sqrt(DRAWS))


def test_plugging_in_the_mean_profile_overstates_the_cohort_risk():
    cohort = risk.an2021_pseudo_cohort(seed=RISK_SEED)
    plug = risk.recompression_model(n_draws=DRAWS, seed=RISK_SEED, calibration="mean_profile")
    mean_risk = special.expit(plug.layer.logit(cohort.X)).mean()
    # non-collapsibility: about 0.37 against 0.32, a systematic gap; the mean over 1,000 draws
    # of a per-draw SD ~0.03 has SE 0.001, so the 0.02 to spare is 20 SEs
    assert mean_risk > AN_EVENTS / AN_N + 0.03


def test_calibrate_intercept_solves_its_equation_for_extreme_targets():
    rng = np.random.default_rng(seed(3))
    X = rng.normal(size=(300, 3)) * [1.0, 3.0, 0.5]
    cohort = PseudoCohort(("a", "b", "c"), X, rng.dirichlet(np.ones(300)), "random")
    beta = rng.normal(0, 2, size=(50, 3))
    target = np.concatenate([np.full(25, 1e-4), rng.uniform(0.01, 0.999, 25)])
    alpha = risk.calibrate_intercept(beta, cohort, target)
    got = special.expit(alpha[:, None] + beta @ (X - cohort.mean).T) @ cohort.weights
    np.testing.assert_allclose(got, target, rtol=1e-9)


# -------------------------------------------------------------------------------- revision


@pytest.mark.parametrize("kind", ["pooled", "predictive"])
def test_lambda_zero_gives_the_baseline_for_every_profile(kind):
    tree = fake_revision_tree()
    model = risk.revision_model(
        tree,
        baseline=kind,
        transport=TransportPrior("Fixed", value=0.0),
        n_draws=DRAWS,
        seed=RISK_SEED,
    )
    extreme = {"bmd": -4.0, "ivc": "yes", "procedure": "PKP", "endplate_contact": "no"}
    r = model.risk([*PROFILES, dict(extreme, cement_volume=1.0)])
    base = tree["posterior"][kind].values.ravel()
    for p in r["patient"].values:
        np.testing.assert_allclose(r.sel(patient=p).values, base, rtol=1e-12)


def test_lambda_scales_the_spread_between_profiles(recompression):
    tree = fake_revision_tree()
    med = {}
    for spec in ("0", "beta:2,2", "1"):
        m = risk.revision_model(
            tree, transport=TransportPrior.parse(spec), n_draws=DRAWS, seed=RISK_SEED
        )
        med[spec] = m.summarise(PROFILES).set_index("id")["median"]
    assert med["0"]["low"] == pytest.approx(med["0"]["high"])
    # medians (low: 0.001 < 0.0075 < 0.039; high: 0.039 < 0.13 < 0.27) differ by 15 or more of
    # their MCSEs (1.25 SD / sqrt(1000) <= 0.0004 for low, 0.0027 for high)
    assert med["1"]["low"] < med["beta:2,2"]["low"] < med["0"]["low"]
    assert med["0"]["high"] < med["beta:2,2"]["high"] < med["1"]["high"]
    # full transport uses exactly the recompression effect draws (same seed, same stream)
    full = risk.revision_model(
        tree, transport=TransportPrior("Fixed", value=1.0), n_draws=DRAWS, seed=RISK_SEED
    )
    np.testing.assert_array_equal(full.layer.beta, recompression.layer.beta)


def test_revision_baseline_reads_fit_results_trees_arrays_and_resamples():
    tree = fake_revision_tree(chains=2, draws=300)

    class Fit:  # what a FitResult offers here
        def __init__(self, tree: xr.DataTree) -> None:
            self.tree = tree

    flat = tree["posterior"]["pooled"].values.ravel()
    np.testing.assert_array_equal(
        risk.revision_baseline(Fit(tree), n_draws=600, seed=RISK_SEED), flat
    )
    np.testing.assert_array_equal(risk.revision_baseline(flat, n_draws=600, seed=RISK_SEED), flat)
    more = risk.revision_baseline(tree, n_draws=1000, seed=seed(4))
    assert more.shape == (1000,) and set(more) <= set(flat)
    np.testing.assert_array_equal(more, risk.revision_baseline(tree, n_draws=1000, seed=seed(4)))
    with pytest.raises(RiskInputError, match="between 0 and 1"):
        risk.revision_baseline(np.array([0.1, 1.2]))
    with pytest.raises(RiskInputError, match="no results folder"):
        risk.revision_baseline(PROJECT_ROOT / "no-such-results")


def test_exact_quadrature_baseline_matches_the_exact_posterior_quantiles():
    from bayes_va.config.model import load_config
    from bayes_va.data.dataset import build_dataset
    from bayes_va.fitting.run import exact_posterior

    cfg = load_config(PROJECT_ROOT / "models" / "base.toml")
    ref = exact_posterior(cfg, build_dataset(cfg.data, cfg.data_dir))
    n_draws = 8000
    source = f"exact:{PROJECT_ROOT / 'models' / 'base.toml'}"
    draws = risk.revision_baseline(source, n_draws=n_draws, seed=RISK_SEED)
    for q in (0.1, 0.5, 0.9):
        # the sample quantile of iid draws has SE sqrt(q (1 - q) / n) / f(x_q), the density
        # from the exact quantiles (about 0.5 % of x_q here); 3 comparisons within 4.5 SEs
        # (two-sided 6.8e-6 each), plus the grid's 1e-4 (the draws jitter within its cells)
        exact_q = float(ref.quantile("pooled", q))
        inv_density = (ref.quantile("pooled", q + 0.01) - ref.quantile("pooled", q - 0.01)) / 0.02
        se = math.sqrt(q * (1 - q) / n_draws) * inv_density
        assert abs(np.quantile(draws, q) - exact_q) <= 4.5 * se + 1e-4 * exact_q, (q, se)


# ------------------------------------------------------------------------------------- AVF


def test_avf_baseline_recovers_a_known_rate_at_each_horizon():
    fake = FakeAVFResult(rate_12=0.07, slope=0.4)
    b12 = risk.avf_baseline(fake, horizon_months=12, n_draws=DRAWS, seed=RISK_SEED)
    b3 = risk.avf_baseline(fake, horizon_months=3, n_draws=DRAWS, seed=RISK_SEED)
    np.testing.assert_allclose(b12, 0.07)
    np.testing.assert_allclose(b3, special.expit(special.logit(0.07) + 0.4 * math.log(3 / 12)))
    pred = risk.avf_baseline(fake, kind="predictive", n_draws=DRAWS, seed=RISK_SEED)
    assert pred.std() > 0.01  # tau = 0.5 spreads a new cohort's rate


def test_avf_layer_gives_the_baseline_to_its_reference_population():
    fake = FakeAVFResult(rate_12=0.07, sd=0.2)
    unexposed = risk.avf_model(fake, reference="unexposed", n_draws=DRAWS, seed=RISK_SEED)
    r = unexposed.risk({"brace": "no", "intradiscal_leakage": "none"})
    np.testing.assert_allclose(r.values[:, 0], unexposed.components["baseline"], rtol=1e-12)
    mix = risk.avf_model(fake, reference="reyhani", n_draws=DRAWS, seed=RISK_SEED)
    levels = [(b, lk) for b in ("yes", "no") for lk in ("none", "spike", "round")]
    w = np.array(
        [
            (31 if b == "yes" else 220) / 251 * {"none": 240, "spike": 9, "round": 2}[lk] / 251
            for b, lk in levels
        ]
    )
    r = mix.risk([{"brace": b, "intradiscal_leakage": lk} for b, lk in levels]).values
    np.testing.assert_allclose(r @ w, mix.components["baseline"], rtol=1e-10)
    s = mix.summarise(
        [{"id": lk, "brace": "no", "intradiscal_leakage": lk} for lk in ("none", "spike")]
    ).set_index("id")
    assert s.loc["spike", "median"] > 5 * s.loc["none", "median"]
    eff = mix.effects().set_index("column")
    assert eff.loc["braced", "or_median"] < 1 < eff.loc["leakage_spike", "or_median"]


def test_the_fit_result_offers_the_interface_the_avf_baseline_uses():
    from bayes_va.fitting.results import FitResult

    assert callable(getattr(FitResult, "linear_predictor", None))


# -------------------------------------------------------------------------------- profiles


def test_profiles_as_mapping_list_or_frame_give_the_same_risk(recompression):
    one = recompression.risk(EXAMPLE_PROFILES["typical"]).values[:, 0]
    frame = pd.DataFrame(PROFILES)
    many = recompression.risk(frame)
    assert many.dims == ("sample", "patient")
    assert list(many["patient"].values) == ["low", "typical", "high"]
    np.testing.assert_allclose(many.sel(patient="typical").values, one, rtol=1e-14)
    aliased = dict(EXAMPLE_PROFILES["typical"], procedure="kp", ivc=False, endplate_contact="No")
    np.testing.assert_allclose(recompression.risk(aliased).values[:, 0], one, rtol=1e-14)
    assert (recompression.summarise(PROFILES)["median"].diff().dropna() > 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"age": 70}, r"unknown covariate\(s\) 'age'; known covariates: bmd, ivc"),
        ({"procedure": "PKX"}, r"procedure = 'PKX' is not allowed \(one of PKP, PVP"),
        ({"ivc": "maybe"}, r"ivc = 'maybe' is not allowed \(one of no, yes\)"),
        ({"bmd": -7.5}, r"bmd = -7.5 is outside the allowed range \[-6, 4\]"),
        ({"cement_volume": 25}, r"outside the allowed range \[0.1, 20\]"),
        ({"cement_volume": "three"}, r"cement_volume = 'three' is not a number"),
        ({"bmd": None}, r"bmd is missing \(a number in \[-6, 4\]\)"),
    ],
)
def test_bad_profiles_are_rejected_with_the_allowed_values(recompression, change, message):
    with pytest.raises(ProfileError, match=message):
        recompression.risk(dict(EXAMPLE_PROFILES["typical"], **change))


def test_every_problem_is_listed_and_missing_covariates_named(recompression):
    bad = [dict(EXAMPLE_PROFILES["low"], bmd=9), dict(EXAMPLE_PROFILES["high"], ivc="?")]
    with pytest.raises(ProfileError, match="2 problem") as err:
        recompression.risk(bad)
    assert "profile 1: bmd" in str(err.value) and "profile 2: ivc" in str(err.value)
    with pytest.raises(ProfileError, match=r"missing required covariate\(s\).*cement_volume"):
        recompression.risk({"bmd": -2, "ivc": "no", "procedure": "PKP", "endplate_contact": "no"})
    with pytest.raises(ProfileError, match="brace"):
        risk.avf_model(FakeAVFResult(), n_draws=200, seed=RISK_SEED).risk(
            {"intradiscal_leakage": "none"}
        )


def test_bmd_outside_the_cohort_range_warns_about_extrapolation(recompression):
    with pytest.warns(ExtrapolationWarning, match=r"bmd outside .*\[-4.33, 0.20\].*3 SD"):
        s = recompression.summarise(dict(EXAMPLE_PROFILES["typical"], bmd=-5.0))
    assert bool(s["extrapolated"].iloc[0])
    assert risk.an2021_cohort_ranges()["bmd"] == pytest.approx((-4.334, 0.204), abs=1e-3)


def test_optional_anterior_height_recovery_defaults_to_the_cohort_mean(recompression):
    s = recompression.summarise(EXAMPLE_PROFILES["typical"])
    assert s.attrs["defaulted"] == ("anterior_height_recovery",)
    assert s["anterior_height_recovery"].iloc[0] == pytest.approx(15.53, abs=0.01)
    assert s.attrs["ignored"] == ("brace", "intradiscal_leakage")


# ------------------------------------------------------------------- endplate, seeds, misc


def test_endplate_reading_flips_only_that_effect():
    text = risk.an2021_coefficients("text")
    table = risk.an2021_coefficients("table")
    k = text.columns.index("no_endplate_contact")
    assert text.mean[k] == pytest.approx(0.918) and table.mean[k] == pytest.approx(-0.918)
    np.testing.assert_array_equal(np.delete(text.mean, k), np.delete(table.mean, k))
    m = risk.recompression_model(n_draws=DRAWS, seed=RISK_SEED, endplate_reading="table")
    s = m.summarise([dict(EXAMPLE_PROFILES["typical"], endplate_contact=c) for c in ("yes", "no")])
    assert s["median"].iloc[0] > s["median"].iloc[1]  # contact is now the risk level


def test_same_seed_same_numbers_other_seed_other_numbers(recompression):
    again = risk.recompression_model(n_draws=DRAWS, seed=RISK_SEED)
    other = risk.recompression_model(n_draws=DRAWS, seed=seed(1))
    a, b, c = (m.risk(PROFILES).values for m in (recompression, again, other))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_summary_matches_numpy_on_the_full_draws(recompression):
    s = recompression.summarise(PROFILES, threshold=0.3)
    r = recompression.risk(PROFILES).values
    np.testing.assert_allclose(s["median"], np.quantile(r, 0.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(s["lower"], np.quantile(r, 0.025, axis=0), rtol=1e-12)
    np.testing.assert_allclose(s["upper"], np.quantile(r, 0.975, axis=0), rtol=1e-12)
    np.testing.assert_allclose(s["p_above_threshold"], (r > 0.3).mean(axis=0))
    np.testing.assert_allclose(s["per_1000"], 1000 * r.mean(axis=0), rtol=1e-12)


def test_row_quantiles_equal_numpy_quantiles():
    rng = np.random.default_rng(seed(0))
    for shape in [(5, 4000), (3, 1), (4, 2), (7, 1001)]:
        x = rng.normal(size=shape)
        probs = [0.0, 0.025, 0.5, 0.975, 1.0]
        np.testing.assert_allclose(
            risk.row_quantiles(x.copy(), probs), np.quantile(x, probs, axis=1), rtol=0, atol=0
        )


def test_transport_prior_parsing_and_errors():
    assert TransportPrior.parse("1") == TransportPrior("Fixed", value=1.0)
    assert TransportPrior.parse("Beta(3, 1.5)") == TransportPrior("Beta", alpha=3.0, beta=1.5)
    assert TransportPrior.parse("beta:2,2") == TransportPrior()
    assert str(TransportPrior("Fixed", value=0.0)) == "lambda = 0 (no transport)"
    for bad in ("1.5", "beta:2", "beta:0,1", "half"):
        with pytest.raises(ConfigError, match=r"lambda|Beta needs"):
            TransportPrior.parse(bad)


def test_default_config_loads_and_unknown_keys_are_named(tmp_path):
    cfg = risk.load_risk_config()
    assert cfg.transport == TransportPrior("Beta", alpha=2.0, beta=2.0)
    assert (cfg.draws, cfg.revision_results, cfg.avf_results) == (
        4000,
        "results/base",
        "results/avf",
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('[revision]\nresult = "x"\n')
    with pytest.raises(ConfigError, match=r"revision\.result; allowed here: results, baseline"):
        risk.load_risk_config(bad)
    bad.write_text('[revision.transport]\ndist = "Beta"\nvalue = 1\n')
    with pytest.raises(ConfigError, match="takes exactly: alpha, beta"):
        risk.load_risk_config(bad)
    bad.write_text('[draws]\ncalibration = "plug-in"\n')
    with pytest.raises(ConfigError, match="allowed: marginal, mean_profile"):
        risk.load_risk_config(bad)


def test_write_figures_writes_pngs(tmp_path):
    models = {
        "recompression": risk.recompression_model(n_draws=300, seed=RISK_SEED),
        "avf": risk.avf_model(FakeAVFResult(), n_draws=300, seed=RISK_SEED),
    }
    paths = write_figures(tmp_path / "figs", models, threshold=0.1)
    names = {p.name for p in paths}
    assert names == {
        "risk_distributions.png",
        "risk_vs_cement_volume_recompression.png",
        "effects_recompression.png",
        "effects_avf.png",
        "integration_error_recompression.png",
    }
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------- CLI

CLI_PATIENT = [
    "--bmd",
    "-2.8",
    "--ivc",
    "yes",
    "--procedure",
    "PKP",
    "--cement-volume",
    "3.0",
    "--endplate-contact",
    "no",
    "--draws",
    "500",
    "--seed",
    str(RISK_SEED),
]


def test_cli_prints_risk_interval_threshold_and_events_per_1000(capsys):
    assert risk_cli.main(["risk", "--outcome", "recompression", *CLI_PATIENT]) == 0
    out = capsys.readouterr().out
    for text in ("median", "95% interval", "P(risk > 0.1)", "per 1,000 such patients", "seed"):
        assert text in out


def test_cli_revision_shows_transport_effect_and_gaughen(capsys):
    exact = f"exact:{PROJECT_ROOT / 'models' / 'base.toml'}"
    argv = ["risk", "--outcome", "revision", *CLI_PATIENT, "--results", exact, "--lambda", "1"]
    assert risk_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "lambda = 0 (no transport)" in out and "lambda = 1 (full transport)" in out
    assert "Gaughen 2002" in out and "5/6" in out and "4/4" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--procedure", "PKX"], "one of PKP, PVP"),
        (["--bmd", "-9"], r"allowed range \[-6, 4\]"),
        (["--lambda", "2"], "lambda"),
    ],
)
def test_cli_bad_input_exits_2_with_the_allowed_values(capsys, argv, message):
    patient = list(CLI_PATIENT)
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        if flag in patient:
            patient[patient.index(flag) + 1] = value
        else:
            patient += [flag, value]
    outcome = "revision" if "--lambda" in argv else "recompression"  # lambda fails first
    assert risk_cli.main(["risk", "--outcome", outcome, *patient]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert re.search(message, err)


def test_cli_scores_a_profiles_csv_and_warns_on_extrapolation(tmp_path, capsys):
    src = tmp_path / "patients.csv"
    pd.DataFrame([*PROFILES, dict(PROFILES[1], id="osteo", bmd=-5.2)]).to_csv(src, index=False)
    out = tmp_path / "table.csv"
    argv = [
        "risk",
        "--outcome",
        "recompression",
        "--profiles",
        str(src),
        "--out",
        str(out),
        "--draws",
        "500",
        "--seed",
        str(RISK_SEED),
    ]
    assert risk_cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "warning: bmd outside" in captured.err
    table = pd.read_csv(out)
    assert list(table["id"]) == ["low", "typical", "high", "osteo"]
    assert list(table["extrapolated"]) == [False, False, False, True]
    assert {"median", "lower", "upper", "p_above_threshold", "per_1000"} <= set(table.columns)


def test_cli_errors_are_bayes_va_errors():
    assert issubclass(ProfileError, BayesVAError) and issubclass(RiskInputError, BayesVAError)


def test_a_baseline_from_the_wrong_outcome_table_is_refused(tmp_path):
    from types import SimpleNamespace

    cfg = SimpleNamespace(name="avf", data=SimpleNamespace(table="avf"))
    with pytest.raises(RiskInputError, match="needs a fit of the 'revision' table"):
        risk.revision_baseline(SimpleNamespace(config=cfg, tree=fake_revision_tree()))
    toml = tmp_path / "moderated.toml"
    base = (PROJECT_ROOT / "models" / "base.toml").as_posix()
    toml.write_text(f'extends = "{base}"\n[model]\nmoderators = ["procedure"]\n')
    with pytest.raises(RiskInputError, match="logit-normal revision model without moderators"):
        risk.revision_baseline(f"exact:{toml}")
