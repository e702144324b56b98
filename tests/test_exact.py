"""Tests of bayes_va.numerics.exact.

The quadrature reference for the logit-normal random-effects model.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from revision_reference import N, Y
from scipy import integrate, optimize, special, stats

from bayes_va.numerics.exact import (
    ExactPosterior,
    default_log_prior_mu,
    default_log_prior_tau,
    leave_one_out_elpd,
    log_marginal_likelihood,
    posterior_grid,
)

BIG = [2, 6]  # hogan2022 (n = 80,864) and liang2015 (n = 79,225)

# metafor::rma.glmm(measure = "PLO", method = "ML") on the base data (lme4 nAGQ = 25 agrees).
MU_ML, TAU_ML = -3.20015, 0.88946

# QUAD_RTOL: accuracy asked of log_marginal_likelihood against QUADPACK, relative on the log
# scale (absolute where |log L| <= 1); measured <= 1e-9 on the grid below.
QUAD_RTOL = 1e-8
# NODE_ATOL: 15 vs 31 nodes (brief: 1e-10); measured <= 1.1e-11 on the 14 studies.
NODE_ATOL = 1e-10
# PLAIN_AGH_ATOL: unchecked adaptive Gauss-Hermite (tol=None, as posterior_grid uses) for
# tau <= 1; measured 7.5e-8 (worst: y = 0 at tau = 0.9).
PLAIN_AGH_ATOL = 2e-7
# GRID_RTOL: default grid vs a twice-finer one (brief: 1e-3); measured < 5e-6 on the base data.
GRID_RTOL = 1e-4
PROBS = np.array([0.025, 0.5, 0.975])

# (y, n) pairs for the quadrature checks: zero events, all events, tiny and huge studies.
COUNTS = [
    (0, 10), (10, 10), (3, 10), (0, 86), (2, 86), (86, 86), (14, 843), (0, 843),
    (12130, 80864), (8952, 79225), (0, 80864), (80864, 80864),
]  # fmt: skip
MUS = [-6.0, -3.2, 0.0, 2.0]
TAUS = [0.05, 0.3, 0.9, 3.0]


def quad_log_marginal(y: int, n: int, mu: float, tau: float) -> float:
    """``log ∫ Binom(y | n, expit t) N(t | mu, tau) dt`` by QUADPACK, independently of exact.py.

    The integrand is divided by its value at the peak (bounded Brent search) and written in
    ``d = t - peak`` with ``log1p``/``expm1`` so that, for n ~ 80,000, rounding in the
    O(1e4) log likelihood does not swamp QUADPACK's error estimate. It is integrated from
    60 Laplace SDs + 15 tau below the peak to as far above, split at 1, 3, 10 and 30 SDs so
    that QUADPACK cannot miss a narrow peak; ``epsabs`` (1e-14 SD, against a total of ~SD)
    only lets the empty outer pieces stop.
    """
    log_c = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)

    def log_f(t: float) -> float:
        kernel = n * special.log_expit(t) - (n - y) * t
        return log_c + kernel - 0.5 * ((t - mu) / tau) ** 2 - np.log(tau * np.sqrt(2 * np.pi))

    data_logit = special.logit((y + 0.5) / (n + 1))
    bounds = (min(mu, data_logit) - 1.0, max(mu, data_logit) + 1.0)  # the mode lies between
    peak = optimize.minimize_scalar(
        lambda t: -log_f(t), bounds=bounds, method="bounded", options={"xatol": 1e-10}
    ).x

    def relative(d: float) -> float:
        """``exp(log_f(peak + d) - log_f(peak))``, accurate for small ``d``."""
        if d > -1.0:  # log expit(peak + d) - log expit(peak), without cancellation
            log_expit_change = np.log1p(np.expm1(d) * special.expit(-(peak + d)))
        else:  # far below the peak the direct difference is accurate enough
            log_expit_change = special.log_expit(peak + d) - special.log_expit(peak)
        gauss_change = d * (2 * (peak - mu) + d) / (2 * tau**2)
        return np.exp(n * log_expit_change - (n - y) * d - gauss_change)

    p = special.expit(peak)
    sd = 1.0 / np.sqrt(n * p * (1 - p) + tau**-2)
    offsets = np.array([sd, 3 * sd, 10 * sd, 30 * sd, 60 * sd + 15 * tau])
    edges = np.concatenate([-offsets[::-1], [0.0], offsets])
    total = sum(
        integrate.quad(relative, a, b, epsabs=1e-14 * sd, epsrel=1e-12, limit=200)[0]
        for a, b in itertools.pairwise(edges)
    )
    return log_f(peak) + float(np.log(total))


def plain_gauss_hermite(y: int, n: int, mu: float, tau: float, n_nodes: int) -> float:
    """Non-adaptive Gauss-Hermite: nodes centred at ``mu`` with scale ``tau``."""
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    log_terms = stats.binom.logpmf(y, n, special.expit(mu + np.sqrt(2) * tau * x))
    return float(special.logsumexp(log_terms, b=w / np.sqrt(np.pi)))


@pytest.fixture(scope="module")
def base_posterior() -> ExactPosterior:
    """The exact posterior of the 14 studies under the default priors."""
    return posterior_grid(Y, N)


# ---------------------------------------------------------------------------------------------
# log_marginal_likelihood
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("y", "n"), COUNTS)
def test_marginal_likelihood_matches_quadpack_for_every_mu_and_tau(y: int, n: int) -> None:
    got = log_marginal_likelihood([y], [n], np.array(MUS)[:, None], np.array(TAUS)[None, :])
    for (i, mu), (j, tau) in itertools.product(enumerate(MUS), enumerate(TAUS)):
        want = quad_log_marginal(y, n, mu, tau)
        assert abs(got[i, j, 0] - want) <= QUAD_RTOL * max(1.0, abs(want)), (mu, tau)


def test_unchecked_adaptive_gauss_hermite_is_accurate_for_tau_up_to_one() -> None:
    for (y, n), mu, tau in itertools.product(COUNTS, MUS, [0.05, 0.3, 0.9]):
        got = log_marginal_likelihood([y], [n], mu, tau, tol=None)[0]
        assert got == pytest.approx(quad_log_marginal(y, n, mu, tau), abs=PLAIN_AGH_ATOL)


def test_the_accuracy_check_fixes_zero_events_at_large_tau() -> None:
    # Documents why log_marginal_likelihood checks itself: a Gaussian of SD 3 cut off by the
    # logistic cliff of a zero-event study is far from the Gaussian the rule is exact for.
    want = quad_log_marginal(0, 843, -3.2, 3.0)
    unchecked = log_marginal_likelihood([0], [843], -3.2, 3.0, tol=None)[0]
    assert abs(unchecked - want) > 1e-5
    assert log_marginal_likelihood([0], [843], -3.2, 3.0)[0] == pytest.approx(want, abs=1e-9)


def test_plain_gauss_hermite_centred_at_mu_misses_the_largest_study() -> None:
    # hogan2022's likelihood in theta is ~0.01 wide; nodes spread over ±4 tau miss it.
    y, n = Y[BIG[0]], N[BIG[0]]
    want = quad_log_marginal(y, n, MU_ML, TAU_ML)
    assert abs(plain_gauss_hermite(y, n, MU_ML, TAU_ML, 15) - want) > 1.0  # measured 3.0
    assert abs(plain_gauss_hermite(y, n, MU_ML, TAU_ML, 31) - want) > 1.0
    adaptive = log_marginal_likelihood([y], [n], MU_ML, TAU_ML, tol=None)[0]
    assert adaptive == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("tau", [0.3, 0.9, 1.5, 3.0])
def test_fifteen_and_thirty_one_nodes_agree(tau: float) -> None:
    mu = np.array([-4.0, -3.2, -2.5])
    few = log_marginal_likelihood(Y, N, mu, tau, n_nodes=15, tol=1e-11)
    many = log_marginal_likelihood(Y, N, mu, tau, n_nodes=31, tol=1e-11)
    np.testing.assert_allclose(few, many, rtol=0, atol=NODE_ATOL)


def test_the_big_studies_need_no_fallback_for_node_convergence() -> None:
    few = log_marginal_likelihood(Y[BIG], N[BIG], -3.2, [0.3, 0.9, 3.0], n_nodes=15, tol=None)
    many = log_marginal_likelihood(Y[BIG], N[BIG], -3.2, [0.3, 0.9, 3.0], n_nodes=31, tol=None)
    np.testing.assert_allclose(few, many, rtol=0, atol=NODE_ATOL)


def test_mu_and_tau_broadcast_to_a_leading_shape() -> None:
    mu = np.linspace(-4, -2, 3)[:, None]
    tau = np.array([0.5, 1.0, 2.0, 4.0])[None, :]
    out = log_marginal_likelihood(Y, N, mu, tau)
    assert out.shape == (3, 4, Y.size)
    assert out[1, 2, 5] == log_marginal_likelihood(Y, N, mu[1, 0], tau[0, 2])[5]


def test_zero_tau_gives_the_binomial_log_likelihood() -> None:
    got = log_marginal_likelihood(Y, N, -3.0, 0.0)
    np.testing.assert_allclose(got, stats.binom.logpmf(Y, N, special.expit(-3.0)), rtol=1e-12)


def test_tiny_tau_approaches_the_binomial_log_likelihood() -> None:
    got = log_marginal_likelihood(Y, N, -3.0, 1e-7)
    np.testing.assert_allclose(got, log_marginal_likelihood(Y, N, -3.0, 0.0), atol=1e-6)


@pytest.mark.parametrize(
    ("y", "n", "tau"),
    [([1, 2], [3], 1.0), ([4], [3], 1.0), ([-1], [3], 1.0), ([1.5], [3], 1.0), ([1], [3], -1.0)],
)
def test_invalid_counts_or_tau_are_rejected(y: list[float], n: list[int], tau: float) -> None:
    with pytest.raises(ValueError):
        log_marginal_likelihood(y, n, 0.0, tau)


# ---------------------------------------------------------------------------------------------
# Priors and posterior_grid
# ---------------------------------------------------------------------------------------------


def test_default_priors_are_normal_and_half_normal() -> None:
    x = np.array([0.01, 0.7, 3.0])
    np.testing.assert_allclose(default_log_prior_mu(x), stats.norm(0, 2.5).logpdf(x))
    np.testing.assert_allclose(default_log_prior_tau(x), stats.halfnorm(scale=1).logpdf(x))


def test_with_no_studies_the_posterior_is_the_prior() -> None:
    post = posterior_grid([], [])
    assert post.log_evidence == pytest.approx(0.0, abs=1e-8)  # the prior integrates to 1
    np.testing.assert_allclose(post.quantile("mu", PROBS), stats.norm(0, 2.5).ppf(PROBS), atol=1e-5)
    np.testing.assert_allclose(
        post.quantile("tau", PROBS), stats.halfnorm().ppf(PROBS), rtol=GRID_RTOL
    )
    assert post.mean("tau") == pytest.approx(stats.halfnorm().mean(), rel=1e-6)


def test_weights_are_normalised(base_posterior: ExactPosterior) -> None:
    assert base_posterior.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert base_posterior.weights.shape == (base_posterior.mu.size, base_posterior.log_tau.size)


@pytest.mark.parametrize("name", ["mu", "tau", "pooled", "predictive"])
def test_default_grid_agrees_with_a_twice_finer_grid(
    base_posterior: ExactPosterior, name: str
) -> None:
    fine = posterior_grid(Y, N, n_mu=2 * 61, n_logtau=2 * 41)
    np.testing.assert_allclose(
        base_posterior.quantile(name, PROBS), fine.quantile(name, PROBS), rtol=GRID_RTOL
    )


def test_homogeneous_studies_also_converge_with_the_grid() -> None:
    # Homogeneous data put posterior mass down to tau ~ 1e-9 (a long exponential tail in log tau)
    # and make the predictive mixture's small-tau components narrower than the mu spacing.
    n = np.full(10, 100)
    y = np.array([9, 12, 10, 8, 11, 10, 9, 13, 10, 7])
    coarse, fine = posterior_grid(y, n), posterior_grid(y, n, n_mu=121, n_logtau=161)
    for name in ("mu", "tau", "predictive"):
        np.testing.assert_allclose(coarse.quantile(name, PROBS), fine.quantile(name, PROBS),
                                   rtol=GRID_RTOL)  # fmt: skip


def test_grid_is_fast_on_the_revision_studies() -> None:
    # Target 0.1 s on a 2-core machine; measured ~0.03 s. The bound leaves room for a loaded
    # CI runner (tests run two at a time) without letting a 10x regression through.
    times = []
    for _ in range(3):
        start = time.perf_counter()
        posterior_grid(Y, N)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.4


def test_flat_priors_put_the_posterior_mode_at_the_maximum_likelihood_estimate() -> None:
    # With priors flat in (mu, tau) the posterior density in (mu, tau) is the likelihood, so
    # its mode on the grid must be the grid node nearest the MLE (within a cell).
    post = posterior_grid(
        Y, N, log_prior_mu=stats.norm(0, 100).logpdf, log_prior_tau=stats.halfnorm(scale=100).logpdf
    )
    density_mu_tau = post.log_weights - post.log_tau[None, :]  # drop the Jacobian of log tau
    i, j = np.unravel_index(np.argmax(density_mu_tau), density_mu_tau.shape)
    assert abs(post.mu[i] - MU_ML) <= post.mu[1] - post.mu[0]
    assert abs(post.log_tau[j] - np.log(TAU_ML)) <= post.log_tau[1] - post.log_tau[0]
    # ... and the posterior median of mu sits close to the MLE (measured 0.03 SD away).
    sd = np.sqrt(np.sum(post.weights * (post.mu[:, None] - post.mean("mu")) ** 2))
    assert abs(post.quantile("mu", 0.5) - MU_ML) < 0.1 * sd


def test_a_single_study_leaves_mu_near_its_prior_when_tau_is_large() -> None:
    # tau pinned near 20: the study's theta says almost nothing about mu. Normal theory:
    # mu | y ~ N(0, 2.5) x N(logit 0.1 | mu, sqrt(20^2 + 1/(50 * 0.09))).
    post = posterior_grid([5], [50], log_prior_tau=stats.lognorm(s=0.05, scale=20).logpdf)
    np.testing.assert_allclose(post.quantile("mu", PROBS), stats.norm(0, 2.5).ppf(PROBS), atol=0.1)
    obs_var = 20.0**2 + 1 / (50 * 0.1 * 0.9)
    post_var = 1 / (1 / 2.5**2 + 1 / obs_var)
    post_mean = post_var * special.logit(0.1) / obs_var
    normal_theory = post_mean + np.sqrt(post_var) * stats.norm.ppf(PROBS)
    np.testing.assert_allclose(post.quantile("mu", PROBS), normal_theory, atol=0.01)


def test_a_single_study_pins_mu_when_tau_is_tiny() -> None:
    # tau pinned near 0.01: theta ~= mu, so the posterior of mu is the one-parameter posterior
    # Binom(5 | 50, expit mu) N(mu | 0, 2.5), computed here on a dense grid.
    post = posterior_grid([5], [50], log_prior_tau=stats.lognorm(s=0.05, scale=0.01).logpdf)
    grid = np.linspace(-8, 3, 20001)
    dens = np.exp(stats.binom.logpmf(5, 50, special.expit(grid)) + stats.norm(0, 2.5).logpdf(grid))
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0)
    one_parameter = np.interp(PROBS, cdf / cdf[-1], grid)
    np.testing.assert_allclose(post.quantile("mu", PROBS), one_parameter, atol=2e-3)


def test_a_prior_with_a_hard_bound_still_gives_accurate_quantiles() -> None:
    # Uniform(0, 5) on tau: the log density jumps to -inf inside the grid, which must not
    # make the marginal CDF's spline ring.
    def uniform_tau(tau: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(tau < 5.0, -np.log(5.0), -np.inf)

    coarse = posterior_grid(Y, N, log_prior_tau=uniform_tau)
    fine = posterior_grid(Y, N, log_prior_tau=uniform_tau, n_mu=121, n_logtau=81)
    for name in ("tau", "pooled", "predictive"):
        np.testing.assert_allclose(
            coarse.quantile(name, PROBS), fine.quantile(name, PROBS), rtol=GRID_RTOL
        )
    assert 0.5 < coarse.quantile("tau", 0.5) < 1.5


def test_predictive_interval_is_wider_than_the_pooled_one(base_posterior: ExactPosterior) -> None:
    pooled = base_posterior.quantile("pooled", PROBS)
    predictive = base_posterior.quantile("predictive", PROBS)
    assert predictive[0] < pooled[0] < pooled[2] < predictive[2]
    assert predictive[1] == pytest.approx(pooled[1], rel=1e-3)  # both ~ expit(median mu)


def test_quantiles_are_monotone_and_consistent_with_means(base_posterior: ExactPosterior) -> None:
    q = base_posterior.quantile("tau", np.linspace(0.01, 0.99, 25))
    assert np.all(np.diff(q) > 0)
    assert base_posterior.quantile("pooled", 0.5) == pytest.approx(
        special.expit(base_posterior.quantile("mu", 0.5)), rel=1e-12
    )
    for name in ("mu", "tau", "pooled"):
        lo, hi = base_posterior.quantile(name, [0.05, 0.95])
        assert lo < base_posterior.mean(name) < hi


def test_predictive_cdf_inverts_its_quantiles(base_posterior: ExactPosterior) -> None:
    q = base_posterior.quantile("predictive", PROBS)
    np.testing.assert_allclose(base_posterior.predictive_cdf(special.logit(q)), PROBS, atol=1e-10)


def test_scalar_probability_gives_a_float(base_posterior: ExactPosterior) -> None:
    assert isinstance(base_posterior.quantile("pooled", 0.5), float)
    assert base_posterior.quantile("tau", [[0.1, 0.9]]).shape == (1, 2)


@pytest.mark.parametrize(("name", "q"), [("theta", 0.5), ("mu", 0.0), ("tau", 1.0)])
def test_bad_quantile_requests_are_rejected(
    base_posterior: ExactPosterior, name: str, q: float
) -> None:
    with pytest.raises(ValueError):
        base_posterior.quantile(name, q)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Leave-one-study-out
# ---------------------------------------------------------------------------------------------


def test_leave_one_out_density_equals_the_ratio_of_evidences(
    base_posterior: ExactPosterior,
) -> None:
    # p(y_i | y_-i) = p(y) / p(y_-i): the direct integral over the y_-i grid must agree with
    # two independently placed grids.
    elpd = leave_one_out_elpd(Y, N)
    ratio = [
        base_posterior.log_evidence - posterior_grid(np.delete(Y, i), np.delete(N, i)).log_evidence
        for i in range(Y.size)
    ]
    np.testing.assert_allclose(elpd, ratio, rtol=0, atol=1e-6)  # measured <= 6e-8
