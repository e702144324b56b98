"""The ``marginal`` parametrisation: quadrature accuracy, gradient, exact θ draws, and the MCMC
posterior against the exact quadrature posterior.

References: :func:`bayes_va.numerics.exact.log_marginal_likelihood` (adaptive Gauss–Hermite checked
against a refined trapezoid rule to 1e-9, see tests/test_exact.py) and
:func:`bayes_va.numerics.exact.posterior_grid` (quantiles to ~1e-4 relative).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from margins import assert_converged
from scipy import integrate, special, stats
from seeds import seed

import bayes_va
from bayes_va.engine.marginal import (
    _marginal_kernel,
    _rule_sizes,
    _rules,
    draw_theta,
    first_duplicate,
    log_marginal,
    node_rule,
)
from bayes_va.numerics import exact
from bayes_va.numerics.exact import log_binom_coef

#: Studies of every kind: zero/all events, tiny, the revision sizes, 80,000 patients.
STUDIES = [
    (0, 1),
    (1, 1),
    (0, 10),
    (3, 70),
    (9, 30),
    (14, 843),
    (2, 86),
    (140, 1646),
    (600, 1300),
    (0, 80864),
    (12130, 80864),
    (80864, 80864),
]
#: Worst error of the model's quadrature for tau <= 1 (measured 1.2e-6; NODE_RULES comment).
QUAD_TOL = 2e-6
#: As in tests/test_fit.py: |MCMC - exact| within 4 MCSEs (and the grid's 1e-4 accuracy); 9
#: comparisons at two-sided 6.3e-5 each: a correct sampler fails with probability < 6e-4.
Z_TOL = 4.0
#: The exact theta draws: 13 CDF points x 4 cases = 52 comparisons, each within Z_CDF binomial
#: SEs (two-sided 6.8e-6 each, < 3.5e-4 in all; the points of one case are positively
#: correlated, so the union bound is conservative).
Z_CDF = 4.5
#: Study proportions of two independent fits (marginal, centred): 14 medians, each difference
#: within Z_P combined quantile MCSEs (two-sided 6.8e-6 each, < 1e-4 in all).
Z_P = 4.5
EXACT_REL_ERR = 1e-4


def _kernel(y, n, eta, tau):
    y, n = np.asarray(y, float), np.asarray(n, float)
    x, lw, sizes = _rules(_rule_sizes(None))
    return _marginal_kernel(
        y,
        n,
        log_binom_coef(y, n),
        node_rule(y, n),
        first_duplicate(y, n),
        np.atleast_1d(eta).astype(float),
        np.atleast_1d(tau).astype(float),
        x,
        lw,
        sizes,
    )


@pytest.mark.parametrize("tau", [0.05, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("mu", [-8.0, -3.2, 0.0, 3.0])
def test_quadrature_matches_the_exact_marginal_likelihood(mu, tau):
    y, n = np.array(STUDIES).T
    ours = log_marginal(y, n, np.array([mu]), np.array([tau]))[0]
    ref = exact.log_marginal_likelihood(y, n, mu, tau, tol=1e-11)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=QUAD_TOL)


def test_gradient_is_the_derivative_of_the_value():
    y, n = np.array(STUDIES).T
    h = 1e-5
    for eta, tau in [(-3.2, 0.9), (0.5, 0.4), (-6.0, 1.0)]:
        _, g_eta, g_tau = _kernel(y, n, eta, tau)
        d_eta = (_kernel(y, n, eta + h, tau)[0] - _kernel(y, n, eta - h, tau)[0]) / (2 * h)
        d_tau = (_kernel(y, n, eta, tau + h)[0] - _kernel(y, n, eta, tau - h)[0]) / (2 * h)
        np.testing.assert_allclose(g_eta, d_eta, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g_tau, d_tau, rtol=1e-5, atol=1e-5)


def test_studies_with_equal_counts_are_computed_once_with_equal_results():
    y, n = np.array([3, 5, 3, 3, 0]), np.array([70, 70, 70, 71, 70])
    assert first_duplicate(y, n).tolist() == [0, 1, 0, 3, 4]
    ll = _kernel(y, n, -3.0, 0.8)[0]
    assert ll[2] == ll[0] and ll[3] != ll[0]
    alone = _kernel(y[3:4], n[3:4], -3.0, 0.8)[0]
    np.testing.assert_allclose(ll[3], alone[0], rtol=1e-14)


@pytest.mark.parametrize(
    ("y", "n", "eta", "tau"),
    [
        (0, 10, -3.0, 1.5),  # one-sided, skewed conditional
        (14, 843, -3.2, 0.9),
        (12130, 80864, -3.2, 0.9),  # data-dominated, very narrow
        (2, 5, 0.0, 0.05),  # prior-dominated
    ],
)
def test_theta_draws_follow_the_exact_conditional(y, n, eta, tau):
    draws = draw_theta([y], [n], np.full((20000, 1), eta), np.full(20000, tau), seed=seed(3))[:, 0]

    def log_dens(t):
        return stats.binom.logpmf(y, n, special.expit(t)) + stats.norm.logpdf(t, eta, tau)

    mode = np.median(draws)
    lo, hi = draws.min() - 1.0, draws.max() + 1.0
    norm = integrate.quad(
        lambda t: np.exp(log_dens(t) - log_dens(mode)), lo, hi, points=[mode], limit=200
    )[0]

    def cdf(t):
        return np.array(
            [
                integrate.quad(
                    lambda s: np.exp(log_dens(s) - log_dens(mode)),
                    lo,
                    v,
                    points=[min(mode, v)],
                    limit=200,
                )[0]
                / norm
                for v in t
            ]
        )

    grid = np.quantile(draws, np.linspace(0.02, 0.98, 13))
    # KS-type check on 13 points: the ECDF at a sample quantile is fixed, and the exact CDF
    # there is a Beta order statistic with the binomial SE below; within Z_CDF SEs, plus 1e-4
    # for the quadrature of the reference CDF
    ecdf = np.searchsorted(np.sort(draws), grid, side="right") / draws.size
    exact_cdf = cdf(grid)
    se = np.sqrt(exact_cdf * (1 - exact_cdf) / draws.size)
    assert np.all(np.abs(ecdf - exact_cdf) <= Z_CDF * se + 1e-4), (ecdf, exact_cdf)


def test_theta_draws_are_reproducible_and_seeded():
    eta, tau = np.full((50, 3), -3.0), np.full(50, 0.8)
    a = draw_theta([1, 2, 3], [50, 60, 70], eta, tau, seed=seed(1))
    assert np.array_equal(a, draw_theta([1, 2, 3], [50, 60, 70], eta, tau, seed=seed(1)))
    assert not np.array_equal(a, draw_theta([1, 2, 3], [50, 60, 70], eta, tau, seed=seed(2)))


def test_stored_log_likelihood_of_repeated_counts_equals_their_own_computation():
    # log_marginal copies a study's value to later studies with the same counts and eta; each
    # must equal the value computed for that study alone, to the byte
    rng = np.random.default_rng(seed(6))
    y, n = np.array([3, 5, 3, 0, 5, 3]), np.array([100, 80, 100, 40, 80, 101])
    eta = np.repeat(rng.normal(-3.0, 0.4, (50, 1)), 6, axis=1)
    eta[:, 4] += 0.1  # same counts as study 1, another linear predictor: computed, not copied
    tau = rng.uniform(0.2, 1.5, 50)
    together = log_marginal(y, n, eta, tau)
    for i in range(6):
        alone = log_marginal(y[i : i + 1], n[i : i + 1], eta[:, i : i + 1], tau)[:, 0]
        assert together[:, i].tobytes() == alone.tobytes(), i
    assert together[:, 2].tobytes() == together[:, 0].tobytes()
    assert together[:, 4].tobytes() != together[:, 1].tobytes()


def test_draws_and_log_likelihood_do_not_depend_on_the_number_of_threads(monkeypatch):
    # the kernels run their draws in parallel; each element's arithmetic and random stream are
    # its own, so one thread and every thread give the same bytes
    rng = np.random.default_rng(seed(5))
    n = rng.integers(20, 5000, 40)
    y = rng.binomial(n, 0.05)
    eta = rng.normal(-3.0, 0.3, (301, 40))
    tau = rng.uniform(0.2, 1.5, 301)
    out = {}
    for cores in ("1", str(max(2, numba.config.NUMBA_NUM_THREADS))):
        monkeypatch.setenv("BAYES_VA_SAMPLER_CORES", cores)
        out[cores] = (draw_theta(y, n, eta, tau, seed=seed(3)), log_marginal(y, n, eta, tau))
    (a_draw, a_ll), (b_draw, b_ll) = out.values()
    assert a_draw.tobytes() == b_draw.tobytes() and a_ll.tobytes() == b_ll.tobytes()


@pytest.fixture(scope="module")
def marginal_result():
    # the default parametrisation since 2026-11-30; said explicitly, as this module tests it
    return bayes_va.fit("models/base.toml", overrides={"model.parametrisation": "marginal"})


@pytest.mark.sampling
def test_marginal_fit_samples_mu_and_tau_only_and_draws_theta(marginal_result):
    post = marginal_result.tree["posterior"]
    assert {"mu", "tau", "theta", "p", "pooled", "predictive"} <= set(post.data_vars)
    assert "z" not in post
    assert post["theta"].dims == ("chain", "draw", "study")
    assert_converged(marginal_result)  # R-hat margin: tests/margins.py
    ll = marginal_result.tree["log_likelihood"]["y"].values
    ref = exact.log_marginal_likelihood(
        marginal_result.data.y, marginal_result.data.n, post["mu"].values, post["tau"].values
    )
    np.testing.assert_allclose(ll, ref, rtol=0, atol=1e-5)


@pytest.mark.sampling
@pytest.mark.parametrize("name", ["pooled", "tau", "predictive"])
def test_marginal_quantiles_agree_with_the_exact_posterior_within_monte_carlo_error(
    marginal_result, name
):
    import arviz as az

    from bayes_va.fitting.run import exact_posterior

    ref = exact_posterior(marginal_result.config, marginal_result.data)
    draws = marginal_result.tree["posterior"][name].values.ravel()
    for q in (0.025, 0.5, 0.975):
        mcmc = float(np.quantile(draws, q))
        mcse = float(
            az.mcse(marginal_result.tree, var_names=[name], method="quantile", prob=q)[name]
        )
        exact_q = float(ref.quantile(name, q))
        tol = Z_TOL * np.hypot(mcse, EXACT_REL_ERR * abs(exact_q))
        assert abs(mcmc - exact_q) <= tol, (name, q, mcmc, exact_q, mcse)


@pytest.mark.sampling
def test_marginal_study_proportions_agree_with_the_centred_fit(marginal_result):
    """The same posterior of every p_i whether theta is sampled (centred, the sensitivity row
    models/sensitivity/centred.toml) or integrated out and drawn afterwards (marginal)."""
    import arviz as az

    centred = bayes_va.fit("models/sensitivity/centred.toml")
    assert centred.config.model.parametrisation == "centred"
    assert "theta" in centred.tree["posterior"]
    assert_converged(centred)
    medians, mcse = [], []
    for fit in (marginal_result, centred):
        medians.append(fit.tree["posterior"]["p"].median(("chain", "draw")).values)
        mcse.append(az.mcse(fit.tree, var_names=["p"], method="quantile", prob=0.5)["p"].values)
    diff, se = medians[0] - medians[1], np.hypot(*mcse)
    assert np.all(np.abs(diff) <= Z_P * se), np.round(diff / se, 2)


@pytest.mark.slow  # a new model structure: ~25 s of compiling and sampling
@pytest.mark.sampling
def test_marginal_meta_regression_runs_with_a_vector_linear_predictor():
    res = bayes_va.fit(
        "models/subgroups/database.toml",
        overrides={"model.parametrisation": "marginal", "sampler.draws": 300, "sampler.tune": 300},
    )
    assert "beta" in res.tree["posterior"] and "theta" in res.tree["posterior"]
    assert res.diagnostics.divergences == 0
