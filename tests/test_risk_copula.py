"""The copula calibration cohort, its integration error and the variance split (issue 18).

Known answers: a Table 1 that *is* a known Gaussian-copula joint distribution (normal and
binary margins, exchangeable correlation 0.4), whose mean risk at any intercept is a
one-dimensional integral of logistic-normal expectations (``scipy.integrate.quad`` over the
binary covariate's latent normal, Gauss-Hermite inside), so the true intercept follows by
root finding; LKJ's known marginal variance; an additive toy function with known first-order
variances; and the ``lambda = 0`` revision model, whose every risk is its baseline.

Tolerances are derived, never tuned: a replicate mean over ``R`` independent scrambles has a
Student-t error with ``R - 1`` degrees of freedom in units of its reported MCSE, so a check at
two-sided level ``LEVEL`` allows ``t_{R-1}(1 - LEVEL / 2)`` MCSEs; estimates from ``S``
independent draws allow ``z(1 - LEVEL / 2)`` standard errors. ``LEVEL = 1e-4`` per comparison
keeps a false alarm under 1e-3 per run for every ``BAYES_VA_SEED_OFFSET``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats
from seeds import seed

from bayes_va import risk
from bayes_va.cli import risk as risk_cli
from bayes_va.config.risk import CohortTable, ExchangeableCorrelation, LKJCorrelation
from bayes_va.core.errors import ConfigError
from bayes_va.core.rng import RiskStream
from bayes_va.risk import EXAMPLE_PROFILES, IntegrationWarning, Marginal, TransportPrior
from bayes_va.risk.calibration import calibrate
from bayes_va.risk.explain import build_explainer, decompose

LEVEL = 1e-4
Z_TOL = float(stats.norm.ppf(1 - LEVEL / 2))  # 3.89
RISK_SEED = seed(risk.DEFAULT_SEED)
PROFILES = [{"id": k, **v} for k, v in EXAMPLE_PROFILES.items()]

# --------------------------------------------------------------- a known joint distribution

GROUPS = (120, 240)
RHO = 0.4
#: per group: (mean a, sd a), proportion of b, (mean c, sd c)
TRUE = [((-2.4, 0.7), 0.55, (13.0, 9.0)), ((-1.9, 0.75), 0.30, (16.0, 11.0))]
BETA = np.array([-0.55, 1.2, -0.01])
_GH = np.polynomial.hermite_e.hermegauss(80)  # nodes, weights for the N(0, 1) weight


def _marginals(params=TRUE, groups=GROUPS) -> list[Marginal]:
    counts = tuple((p[1] * n, math.nan) for p, n in zip(params, groups, strict=True))
    return [
        Marginal("a", "normal", tuple(p[0] for p in params)),
        Marginal("b", "binary", counts),
        Marginal("c", "normal", tuple(p[2] for p in params)),
    ]


def _logistic_normal(mean: float, sd: float) -> float:
    """E[expit(mean + sd * e)], e ~ N(0, 1), by 80-node Gauss-Hermite."""
    x, w = _GH
    return float(special.expit(mean + sd * x) @ w / w.sum())


def true_mean_risk(alpha: float, beta: np.ndarray, x_ref: np.ndarray) -> float:
    """Mean risk over the known mixture: sum_g w_g E_g[expit(alpha + beta (x - x_ref))]."""
    total, n = 0.0, sum(GROUPS)
    for (ma_sd, p, mc_sd), n_g in zip(TRUE, GROUPS, strict=True):
        (ma, sa), (mc, sc) = ma_sd, mc_sd
        la, lc = beta[0] * sa, beta[2] * sc
        k = RHO * (la + lc)  # Cov(L, z_b), L = la z_a + lc z_c
        v = la**2 + lc**2 + 2 * RHO * la * lc - k**2  # Var(L | z_b)
        a0 = alpha + beta[0] * (ma - x_ref[0]) + beta[2] * (mc - x_ref[2]) - beta[1] * x_ref[1]
        t = special.ndtri(p)  # b = 1 where z_b < t

        def inner(z: float, b: float, a0=a0, k=k, v=v) -> float:
            return stats.norm.pdf(z) * _logistic_normal(a0 + beta[1] * b + k * z, math.sqrt(v))

        e1 = integrate.quad(inner, -np.inf, t, args=(1.0,), epsabs=1e-13)[0]
        e0 = integrate.quad(inner, t, np.inf, args=(0.0,), epsabs=1e-13)[0]
        total += n_g / n * (e1 + e0)
    return total


def _known_setting(replicates: int) -> CohortTable:
    return CohortTable(
        points_log2=7,
        replicates=replicates,
        table1_error=False,
        correlation=ExchangeableCorrelation(dist="Exchangeable", rho=RHO),
    )


def test_copula_calibration_recovers_the_true_intercept_and_marginal_risk():
    """The known joint's Table 1 → calibrated intercept and mean risk within t x reported MCSE."""
    R = 16
    tol = float(stats.t.ppf(1 - LEVEL / 2, R - 1))  # 5.24 MCSEs
    spec = risk.copula_spec(GROUPS, _marginals(), _known_setting(R), 1, seed(8))
    design = spec.design(7, R)
    x_ref = spec.printed_mean
    betas = np.array([BETA, 1.5 * BETA, -BETA, [0.3, -2.0, 0.04]])
    targets = np.array([0.32, 0.05, 0.6, 0.15])
    cal = calibrate(design, beta=betas, target=targets, x_ref=x_ref, mode="marginal")
    for s in range(len(targets)):
        truth = optimize.brentq(
            lambda a, s=s: true_mean_risk(a, betas[s], x_ref) - targets[s], -15, 15, xtol=1e-12
        )
        err = cal.alpha[s] - truth
        assert abs(err) <= tol * cal.alpha_mcse[s], (s, err, cal.alpha_mcse[s])
        # the mean risk at the true intercept, integrated over each replicate's points
        eta = truth + (design.points[0] - x_ref) @ betas[s]  # (R, M)
        per_rep = special.expit(eta) @ design.weights
        mcse = per_rep.std(ddof=1) / math.sqrt(R)
        assert abs(per_rep.mean() - targets[s]) <= tol * mcse, (s, per_rep.mean(), mcse)
    # the integration error is small: under 2 % of a logit unit with 2 x 128 points x 16
    assert cal.alpha_mcse.max() < 0.02


def test_table1_sampling_error_covers_the_true_intercept():
    """A finite cohort drawn from the known joint: its Table 1's error spreads alpha over the truth.

    The posterior of the intercept (over cohort draws; effects and target fixed) covers the
    true intercept within Z_TOL posterior SDs; the spread is mostly the Table-1 error, not
    integration noise (at least 3 times the intercept's MCSE).
    """
    rng = np.random.default_rng(seed(31))
    corr = (1 - RHO) * np.eye(3) + RHO
    params = []
    for (ma_sd, p, mc_sd), n_g in zip(TRUE, GROUPS, strict=True):
        z = rng.multivariate_normal(np.zeros(3), corr, n_g)
        a = ma_sd[0] + ma_sd[1] * z[:, 0]
        c = mc_sd[0] + mc_sd[1] * z[:, 2]
        b = z[:, 1] < special.ndtri(p)
        params.append(((a.mean(), a.std(ddof=1)), b.mean(), (c.mean(), c.std(ddof=1))))
    setting = _known_setting(4).model_copy(update={"table1_error": True, "draws": 400})
    spec = risk.copula_spec(GROUPS, _marginals(params), setting, 400, seed(9))
    x_ref = np.array([np.average([p[0][0] for p in TRUE], weights=GROUPS), 0.0, 0.0])
    x_ref[1] = np.average([p[1] for p in TRUE], weights=GROUPS)
    x_ref[2] = np.average([p[2][0] for p in TRUE], weights=GROUPS)
    S = 400
    cal = calibrate(
        spec.design(7, 4),
        beta=np.tile(BETA, (S, 1)),
        target=np.full(S, 0.32),
        x_ref=x_ref,
        mode="marginal",
    )
    truth = optimize.brentq(lambda a: true_mean_risk(a, BETA, x_ref) - 0.32, -15, 15)
    sd = cal.alpha.std()
    assert abs(np.mean(cal.alpha) - truth) <= Z_TOL * sd, (np.mean(cal.alpha), truth, sd)
    assert sd > 3 * cal.integration()["mcse"]


def test_lkj_draws_have_the_known_marginal_variance():
    n, dim, eta = 4000, 6, 2.0
    chol = risk.lkj_cholesky(dim, eta, n, np.random.default_rng(seed(12)))
    corr = chol @ np.swapaxes(chol, 1, 2)
    np.testing.assert_allclose(np.diagonal(corr, axis1=1, axis2=2), 1.0, atol=1e-12)
    r = corr[:, 2, 5]  # any off-diagonal: Beta(eta - 1 + dim/2, same) on (-1, 1)
    want = 1.0 / (2 * eta + dim - 1)
    se = np.square(r).std() / math.sqrt(n)
    assert abs(np.mean(r**2) - want) <= Z_TOL * se, (np.mean(r**2), want, se)
    assert abs(np.mean(r)) <= Z_TOL * math.sqrt(want / n)


def test_copula_points_have_the_margins_of_table1():
    # rho = 0: each coordinate is a one-dimensional projection of scrambled Sobol' points, a
    # stratified sample (one point in each 1/n interval), so margins match to about 1/n
    independent = ExchangeableCorrelation(dist="Exchangeable", rho=0.0)
    spec = risk.an2021_copula_spec(
        CohortTable(table1_error=False, correlation=independent), 1000, RISK_SEED
    )
    assert spec.n_cohorts == 1  # nothing uncertain: one cohort draw
    design = spec.design(10, 2)
    groups, marginals = risk._an_table1(None)
    n = 2**10
    for k, m in enumerate(marginals):
        for g in range(2):
            x = design.points[0, :, g * n : (g + 1) * n, k]
            first, sd = m.by_group[g]
            if m.kind == "binary":
                # a threshold of stratified normals: within one point of the proportion
                assert x.mean() == pytest.approx(first / groups[g], abs=1.0 / n)
            else:
                assert x.mean() == pytest.approx(first, rel=0.01, abs=0.02)
                assert x.std() == pytest.approx(sd, rel=0.02)
    cement = design.points[..., spec.columns.index("cement_volume_ml")]
    assert cement.min() > 0  # gamma margin
    np.testing.assert_allclose(spec.printed_mean, risk.an2021_pseudo_cohort(seed=1).mean)


def test_the_permutation_cohort_is_still_reachable_and_unchanged():
    model = risk.recompression_model(
        n_draws=500, seed=RISK_SEED, cohort=CohortTable(method="permutation")
    )
    pc = risk.an2021_pseudo_cohort(seed=RISK_SEED)
    alpha = risk.calibrate_intercept(model.layer.beta, pc, model.components["baseline"])
    np.testing.assert_allclose(model.layer.alpha, alpha, rtol=0, atol=1e-12)
    assert np.isnan(model.integration()["mcse"])  # one permuted cohort: no error estimate


def test_a_coarse_integration_warns():
    coarse = CohortTable(points_log2=2, replicates=2, table1_error=False, draws=1)
    with pytest.warns(IntegrationWarning, match="integration MCSE"):
        m = risk.recompression_model(n_draws=300, seed=RISK_SEED, cohort=coarse)
    info = m.integration()
    assert info["exceeds"] and info["ratio"] > info["fraction"]


def test_every_risk_stream_has_its_own_number():
    numbers = [int(s) for s in RiskStream]
    assert len(set(numbers)) == len(numbers)
    ours = {risk.STREAM_SOBOL, risk.STREAM_COHORT_DRAWS, risk.STREAM_EXPLAIN, risk.STREAM_PLAIN_MC}
    assert ours <= set(RiskStream) and len(ours) == 4


# ------------------------------------------------------------------------ variance split


def test_first_order_variances_of_an_additive_function_sum_to_its_variance():
    rng = np.random.default_rng(seed(40))
    S = 20000
    a, b, c = rng.standard_normal((3, S))
    f = lambda a, b, c: a + 2 * b + c**2  # noqa: E731 - V_a = 1, V_b = 4, V_c = 2, total 7
    perm = {k: rng.permutation(S) for k in "abc"}
    frozen = {
        "a": f(a, b[perm["b"]], c[perm["c"]]),
        "b": f(a[perm["a"]], b, c[perm["c"]]),
        "c": f(a[perm["a"]], b[perm["b"]], c),
    }
    est = risk.first_order(f(a, b, c)[None], {k: v[None] for k, v in frozen.items()})
    for k, want in {"a": 1.0, "b": 4.0, "c": 2.0}.items():
        assert abs(est[k][0] - want) <= Z_TOL * est[f"se:{k}"][0], (k, est[k], est[f"se:{k}"])
    # no interactions: the first-order terms exhaust the variance within Monte-Carlo error
    assert abs(est["remainder"][0]) <= Z_TOL * est["se:remainder"][0]


@pytest.fixture(scope="module")
def revision_exact():
    return risk.revision_model("exact:models/base.toml", n_draws=1000, seed=RISK_SEED)


def test_without_transport_all_of_the_variance_is_the_baseline():
    model = risk.revision_model(
        "exact:models/base.toml",
        transport=TransportPrior("Fixed", value=0.0),
        n_draws=1000,
        seed=RISK_SEED,
    )
    e = model.explain(PROFILES).set_index(["id", "scale", "source"])
    for p in ("low", "high"):
        for scale in ("logit", "risk"):
            assert e.loc[(p, scale, "baseline"), "share"] == pytest.approx(1.0, abs=1e-12)
            v, se = e.loc[(p, scale, "effects"), ["variance", "se"]]
            assert abs(v) <= Z_TOL * se
    assert "transport" not in e.index.get_level_values("source")  # a fixed lambda


def test_the_split_adds_up_and_names_its_quantity(revision_exact):
    e = revision_exact.explain(PROFILES)
    assert set(e["quantity"]) == {risk.PROFILE_QUANTITY}
    parts = e[e["source"] != "total"]
    sums = parts.groupby(["id", "scale"])["share"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-12)
    assert set(parts["source"]) == {
        "baseline",
        "effects",
        "transport",
        "cohort",
        "integration",
        "remainder",
    }
    cal = revision_exact.calibration
    logit_int = e[(e["scale"] == "logit") & (e["source"] == "integration")]["variance"]
    np.testing.assert_allclose(logit_int, np.mean(cal.alpha_mcse**2), rtol=1e-12)
    # the same model and seed give the same split
    pd.testing.assert_frame_equal(e, revision_exact.explain(PROFILES))


def test_pick_freeze_matches_binning_for_the_scalar_baseline(revision_exact):
    """The baseline is a scalar source: its first-order variance by binning its draws agrees.

    Binning: 20 equal-count bins of the baseline draws; Var of the bin means minus the noise
    the bin means carry (within-bin variance / bin size). Both estimates' SEs are combined.
    """
    ex = build_explainer(revision_exact.calibration)
    enc = revision_exact.encode(PROFILES[2])
    d = decompose(ex, enc.X, enc.ids).set_index(["scale", "source"])
    f = revision_exact.layer.logit(enc.X)[:, 0]
    base = revision_exact.components["baseline"]
    bins = np.array_split(np.argsort(base), 20)
    means = np.array([f[b].mean() for b in bins])
    within = np.mean([f[b].var(ddof=1) / len(b) for b in bins])
    binned = means.var() - within
    se_bin = math.sqrt(2 / (len(bins) - 1)) * means.var()  # chi-square spread of a variance
    v, se = d.loc[("logit", "baseline"), ["variance", "se"]]
    assert abs(v - binned) <= Z_TOL * math.hypot(se, se_bin), (v, binned, se, se_bin)


# ------------------------------------------------------------------ config and the command


def test_sensitivity_configs_vary_only_the_correlation():
    base = risk.load_risk_config("models/risk/default.toml")
    assert base.cohort.correlation == LKJCorrelation(dist="LKJ", eta=2.0)
    for name, corr in {
        "independent": ExchangeableCorrelation(dist="Exchangeable", rho=0.0),
        "correlated": LKJCorrelation(dist="LKJ", eta=1.0),
        "exchangeable": ExchangeableCorrelation(dist="Exchangeable", rho=0.5),
    }.items():
        cfg = risk.load_risk_config(f"models/risk/{name}.toml")
        assert cfg.cohort.correlation == corr
        assert (
            cfg.model_copy(
                update={"name": "default", "description": base.description, "cohort": base.cohort}
            )
            == base
        )


def test_bad_cohort_settings_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[cohort]\npoints_log2 = 1\n[cohort.correlation]\ndist = "LKJ"\neta = 0\n')
    with pytest.raises(ConfigError) as err:
        risk.load_risk_config(bad)
    assert "'cohort.points_log2' must be >= 2" in str(err.value)
    assert "'cohort.correlation.eta' must be > 0" in str(err.value)


def test_cli_explain_prints_the_split_and_labels_each_quantity(capsys):
    argv = ["risk", "--outcome", "recompression", "--bmd", "-2.8", "--ivc", "yes"]
    argv += ["--procedure", "PKP", "--cement-volume", "3.0", "--endplate-contact", "no"]
    argv += ["--draws", "400", "--seed", str(RISK_SEED), "--explain", "--correlation", "0"]
    assert risk_cli.main(argv) == 0
    out = capsys.readouterr().out
    for text in (
        "risk at this profile",
        "population-average risk",
        "not this profile's risk",
        "integration error",
        "published log odds ratios",
        "calibration cohort",
        "interactions (remainder)",
        "independent (rho = 0)",
    ):
        assert text in out, text
    assert risk_cli.main([*argv[:-2], "--correlation", "lkj:0"]) == 2
    assert "lkj:ETA" in capsys.readouterr().err


def test_cli_profiles_with_explain_write_a_side_table(tmp_path, capsys):
    src = tmp_path / "patients.csv"
    pd.DataFrame(PROFILES).to_csv(src, index=False)
    out = tmp_path / "table.csv"
    argv = ["risk", "--outcome", "recompression", "--profiles", str(src), "--out", str(out)]
    argv += ["--draws", "400", "--seed", str(RISK_SEED), "--explain"]
    assert risk_cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "population-average risk (not a profile's)" in printed
    table = pd.read_csv(out)
    assert set(table["quantity"]) == {risk.PROFILE_QUANTITY}
    assert {"integration_mcse", "integration_ratio"} <= set(table.columns)
    side = pd.read_csv(tmp_path / "table_explain.csv")
    assert set(side["id"]) == {"low", "typical", "high"}
    assert {"scale", "source", "variance", "share", "se", "quantity"} <= set(side.columns)


def test_the_paper_section_lists_the_split_of_every_example_profile():
    from bayes_va.workflows.paper_sections import risk_decomposition

    models = {
        "recompression": risk.recompression_model(n_draws=300, seed=RISK_SEED),
        "revision": risk.revision_model("exact:models/base.toml", n_draws=300, seed=RISK_SEED),
    }
    d = risk_decomposition(models, PROFILES)
    assert [(r["outcome"], r["profile"]) for r in d["rows"]] == [
        (o, p) for o in models for p in ("low", "typical", "high")
    ]
    for row in d["rows"]:
        assert row["quantity"] == risk.PROFILE_QUANTITY
        for scale in ("logit", "risk"):
            shares = [v for k, v in row[scale].items() if k != "total"]
            assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    assert d["correlation"] == "LKJ(2)"
    assert d["rows"][0]["fmt"]["transport"] == "–"  # recompression has no transport factor
    assert d["rows"][3]["fmt"]["transport"].endswith(" %")
