"""The beta-binomial family: its exact (quadrature) reference and the MCMC fit against it.

Model: ``y_i ~ BetaBinomial(n_i, p phi, (1 - p) phi)``, ``logit p = mu``. The reference,
:func:`bayes_va.numerics.exact.posterior_grid_beta_binomial`, is checked three ways that do not
share its code: the closed-form likelihood against ``scipy.stats.betabinom``, the whole posterior
against a brute-force fixed grid built here from ``scipy.stats.betabinom.logpmf`` (Simpson CDFs,
no splines), and the grid against a twice-finer one. The MCMC fit of
``models/sensitivity/beta_binomial.toml`` must then agree with it within Monte-Carlo error.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import integrate, interpolate, optimize, special, stats

from bayes_va.numerics.exact import (
    ExactBetaBinomialPosterior,
    default_log_prior_phi,
    log_marginal_likelihood_beta_binomial,
    posterior_grid_beta_binomial,
)

PROBS = np.array([0.025, 0.5, 0.975])
#: Default grid vs a twice-finer one (relative); measured <= 1.1e-6 on the revision studies.
GRID_RTOL = 1e-4
#: Quadrature reference vs the brute-force grid below (relative quantiles, means); measured
#: ~1e-8.
BRUTE_RTOL = 1e-5
#: Predictive CDF at the reference's quantiles vs brute force (absolute); measured ~1e-11.
CDF_ATOL = 1e-6
#: 12 comparisons (4 quantities x 3 quantiles); |z| > 4 has two-sided probability 6.3e-5 each,
#: so a correct sampler fails the MCMC test with probability < 8e-4.
Z_TOL = 4.0

# (y, n) pairs: zero events, all events, tiny and huge studies.
COUNTS = [(0, 10), (10, 10), (3, 10), (2, 86), (0, 843), (14, 843), (12130, 80864), (8952, 79225)]


@pytest.fixture(scope="module")
def revision() -> tuple[np.ndarray, np.ndarray]:
    """Events and sizes of the 14 base-case revision studies, as the config builds them."""
    from bayes_va.config.model import load_config
    from bayes_va.data.dataset import build_dataset

    cfg = load_config("models/sensitivity/beta_binomial.toml")
    data = build_dataset(cfg.data, cfg.data_dir)
    return data.y.astype(float), data.n.astype(float)


@pytest.fixture(scope="module")
def posterior(revision) -> ExactBetaBinomialPosterior:
    return posterior_grid_beta_binomial(*revision)


def _brute_force(y, n, mu, rho, log_prior_mu, log_prior_phi):
    """Normalised weights, log evidence and Simpson CDF splines on a fixed fine grid."""
    phi = np.exp(rho)
    a = special.expit(mu)[:, None, None] * phi[None, :, None]
    b = special.expit(-mu)[:, None, None] * phi[None, :, None]
    log_joint = (
        stats.betabinom.logpmf(y, n, a, b).sum(axis=-1)
        + log_prior_mu(mu)[:, None]
        + (log_prior_phi(phi) + rho)[None, :]
    )
    top = log_joint.max()
    joint = np.exp(log_joint - top)
    h_mu, h_rho = mu[1] - mu[0], rho[1] - rho[0]
    total = joint.sum() * h_mu * h_rho
    log_evidence = top + np.log(total)

    def cdf_spline(nodes, marginal):
        cum = integrate.cumulative_simpson(marginal, x=nodes, initial=0.0)
        return interpolate.CubicSpline(nodes, cum / cum[-1])

    return {
        "weights": joint / joint.sum(),
        "a": a[..., 0],
        "b": b[..., 0],
        "log_evidence": log_evidence,
        "mu_cdf": cdf_spline(mu, joint.sum(axis=1)),
        "rho_cdf": cdf_spline(rho, joint.sum(axis=0)),
    }


def _invert(spline: interpolate.CubicSpline, q: float) -> float:
    lo, hi = spline.x[0], spline.x[-1]
    return optimize.brentq(lambda x: float(spline(x)) - q, lo, hi, xtol=1e-13)


@pytest.fixture(scope="module")
def brute(revision):
    # the grid's own box is ~(-5.0, 0.0) x (-1.4, 5.6): low phi leaves mu loosely determined
    mu = np.linspace(-5.4, 0.4, 1451)
    rho = np.linspace(-2.0, 6.5, 241)
    return _brute_force(
        *revision, mu, rho, stats.norm(0.0, 2.5).logpdf, stats.expon(scale=100.0).logpdf
    )


# --------------------------------------------------------------------------- likelihood


@pytest.mark.parametrize(("y", "n"), COUNTS)
def test_closed_form_likelihood_equals_scipys_beta_binomial(y: int, n: int) -> None:
    mu = np.array([-6.0, -3.0, 0.0, 2.0])[:, None]
    phi = np.array([0.05, 1.0, 30.0, 1e3, 1e5])[None, :]
    got = log_marginal_likelihood_beta_binomial([y], [n], mu, phi)[..., 0]
    p = special.expit(mu)
    want = stats.betabinom.logpmf(y, n, p * phi, (1.0 - p) * phi)
    # scipy differences two betaln terms of size ~phi: it loses ~phi * 1e-14 itself
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("phi", [1e3, 1e6, 1e9, 1e12])
def test_likelihood_stays_exact_for_huge_phi(phi: float) -> None:
    # y = 0: log BB(0 | n, a, b) = sum_{j<n} log(1 - a / (phi + j)), exact in double precision
    n, mu = 843, np.array([-6.0, -2.0, 1.0])
    a = special.expit(mu) * phi
    want = np.log1p(-a[:, None] / (phi + np.arange(n))).sum(axis=1)
    got = log_marginal_likelihood_beta_binomial([0], [n], mu, phi)[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_large_phi_approaches_the_binomial_likelihood() -> None:
    y, n = np.array([14.0, 12130.0]), np.array([843.0, 80864.0])
    got = log_marginal_likelihood_beta_binomial(y, n, -2.0, 1e14)
    # overdispersion 1 + n / phi: the log likelihood moves by O(n / phi * chi^2) ~ 3e-7
    np.testing.assert_allclose(got, stats.binom.logpmf(y, n, special.expit(-2.0)), atol=1e-6)


@pytest.mark.parametrize(("y", "n", "phi"), [([1, 2], [3], 1.0), ([1], [3], 0.0), ([4], [3], 1.0)])
def test_invalid_counts_or_phi_are_rejected(y, n, phi) -> None:
    with pytest.raises(ValueError):
        log_marginal_likelihood_beta_binomial(y, n, 0.0, phi)


# --------------------------------------------------------------------------- the grid


def test_default_prior_on_phi_is_the_config_default() -> None:
    from bayes_va.config.model import PriorsConfig
    from bayes_va.config.priors import log_density

    phi = np.array([0.1, 10.0, 250.0])
    np.testing.assert_allclose(default_log_prior_phi(phi), log_density(PriorsConfig().phi)(phi))


def test_weights_are_normalised_and_the_grid_is_resolved(posterior) -> None:
    assert special.logsumexp(posterior.log_weights) == pytest.approx(0.0, abs=1e-12)
    assert posterior.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # the edges carry no mass (>= 15 below the maximum)
    lw = posterior.log_weights
    edges = np.concatenate([lw[0], lw[-1], lw[:, 0], lw[:, -1]])
    assert edges.max() < lw.max() - 15.0


@pytest.mark.parametrize("name", ["mu", "pooled", "phi", "predictive"])
def test_default_grid_agrees_with_a_twice_finer_grid(revision, posterior, name) -> None:
    fine = posterior_grid_beta_binomial(*revision, n_mu=121, n_logphi=81)
    np.testing.assert_allclose(
        posterior.quantile(name, PROBS), fine.quantile(name, PROBS), rtol=GRID_RTOL
    )


def test_quantiles_and_evidence_agree_with_a_brute_force_grid(posterior, brute) -> None:
    for name, spline, transform in (
        ("mu", brute["mu_cdf"], lambda v: v),
        ("pooled", brute["mu_cdf"], special.expit),
        ("phi", brute["rho_cdf"], np.exp),
    ):
        want = [transform(_invert(spline, q)) for q in PROBS]
        np.testing.assert_allclose(posterior.quantile(name, PROBS), want, rtol=BRUTE_RTOL)
    assert posterior.log_evidence == pytest.approx(brute["log_evidence"], abs=1e-6)


def test_predictive_quantiles_agree_with_a_brute_force_mixture(posterior, brute) -> None:
    w, a, b = brute["weights"], brute["a"], brute["b"]
    keep = w > 1e-16
    for q in PROBS:
        x = posterior.quantile("predictive", q)
        assert float(special.betainc(a[keep], b[keep], x) @ w[keep]) == pytest.approx(
            q, abs=CDF_ATOL
        )


def test_means_match_the_brute_force_grid(posterior, brute) -> None:
    w = brute["weights"]
    pooled = brute["a"] / (brute["a"] + brute["b"])
    assert posterior.mean("pooled") == pytest.approx(float(np.sum(w * pooled)), rel=BRUTE_RTOL)
    assert posterior.mean("predictive") == posterior.mean("pooled")
    phi = brute["a"] + brute["b"]
    assert posterior.mean("phi") == pytest.approx(float(np.sum(w * phi)), rel=BRUTE_RTOL)


def test_predictive_interval_is_wider_than_the_pooled_one(posterior) -> None:
    pooled = posterior.quantile("pooled", [0.025, 0.975])
    predictive = posterior.quantile("predictive", [0.025, 0.975])
    assert predictive[0] < pooled[0] and predictive[1] > pooled[1]
    cdf = posterior.predictive_cdf(predictive)
    np.testing.assert_allclose(cdf, [0.025, 0.975], atol=1e-10)


def test_large_phi_uses_the_narrow_slice_rule_and_stays_exact() -> None:
    # Homogeneous studies and a prior that puts phi ~ 1e5: given (mu, phi) a new study's
    # proportion is far narrower than the mu grid spacing, the case the trapezoid sum over the
    # mu nodes cannot resolve. Check the CDF against brute force on a 40x finer mu grid.
    y, n = np.array([30.0, 25.0, 36.0]), np.array([100.0, 100.0, 100.0])
    prior_phi = stats.lognorm(s=1.0, scale=1e5).logpdf
    post = posterior_grid_beta_binomial(y, n, log_prior_phi=prior_phi)
    assert post._narrow.any() and not post._narrow.all()  # both rules are exercised
    mu = np.linspace(-2.5, 0.5, 6001)
    rho = np.linspace(np.log(1e5) - 7.0, np.log(1e5) + 7.0, 141)
    ref = _brute_force(y, n, mu, rho, stats.norm(0.0, 2.5).logpdf, prior_phi)
    w, a, b = ref["weights"], ref["a"], ref["b"]
    keep = w > 1e-16
    for q in PROBS:
        x = post.quantile("predictive", q)
        assert float(special.betainc(a[keep], b[keep], x) @ w[keep]) == pytest.approx(
            q, abs=CDF_ATOL
        )
    # the new-study proportion is then barely wider than the pooled one
    np.testing.assert_allclose(
        post.quantile("predictive", PROBS), post.quantile("pooled", PROBS), rtol=2e-3
    )


def test_with_no_studies_the_posterior_is_the_prior() -> None:
    post = posterior_grid_beta_binomial([], [])
    assert post.log_evidence == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(post.quantile("mu", PROBS), stats.norm(0, 2.5).ppf(PROBS), atol=1e-4)
    np.testing.assert_allclose(
        post.quantile("phi", PROBS), stats.expon(scale=100.0).ppf(PROBS), rtol=1e-4
    )
    assert post.quantile("predictive", 0.5) == pytest.approx(0.5, abs=1e-9)  # symmetric prior


@pytest.mark.parametrize(
    "prior",
    [
        stats.gamma(a=2.0, scale=50.0),  # the config's Gamma(alpha=2, beta=0.02)
        stats.lognorm(s=1.0, scale=30.0),
        stats.halfnorm(scale=100.0),
    ],
    ids=["gamma", "lognormal", "halfnormal"],
)
def test_other_phi_priors_give_a_converged_grid(revision, prior) -> None:
    coarse = posterior_grid_beta_binomial(*revision, log_prior_phi=prior.logpdf)
    fine = posterior_grid_beta_binomial(
        *revision, log_prior_phi=prior.logpdf, n_mu=121, n_logphi=81
    )
    for name in ("pooled", "phi", "predictive"):
        np.testing.assert_allclose(
            coarse.quantile(name, PROBS), fine.quantile(name, PROBS), rtol=GRID_RTOL
        )


def test_bad_quantile_requests_are_rejected(posterior) -> None:
    with pytest.raises(ValueError, match="strictly between"):
        posterior.quantile("pooled", 1.0)
    with pytest.raises(ValueError, match="unknown quantity"):
        posterior.quantile("tau", 0.5)
    with pytest.raises(ValueError, match="unknown quantity"):
        posterior.mean("tau")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        posterior.predictive_cdf(1.5)


def test_grid_and_headline_quantiles_are_fast_on_the_revision_studies(revision) -> None:
    # ~0.05 s here (grid ~0.007 s, 9 quantiles ~0.04 s); the bound leaves room for a loaded
    # CI runner (tests run two at a time) without letting a 10x regression through.
    times = []
    for _ in range(3):
        start = time.perf_counter()
        post = posterior_grid_beta_binomial(*revision)
        for name in ("pooled", "phi", "predictive"):
            post.quantile(name, PROBS)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.4


# --------------------------------------------------------------------------- MCMC vs exact


@pytest.mark.sampling
def test_beta_binomial_mcmc_agrees_with_the_exact_posterior_within_monte_carlo_error() -> None:
    import arviz as az

    import bayes_va
    from bayes_va.config.priors import log_density

    result = bayes_va.fit("models/sensitivity/beta_binomial.toml")
    # its own thresholds hold with room here: over 25 seeds max R-hat <= 1.0034 (log-normal
    # tail: P(> 1.01) ~ 7e-6), bulk and tail ESS >= 1,375 (need 400), no divergence
    assert result.ok, result.diagnostics.failures
    cfg = result.config
    ref = posterior_grid_beta_binomial(
        result.data.y,
        result.data.n,
        log_prior_mu=log_density(cfg.priors.mu),
        log_prior_phi=log_density(cfg.priors.phi),
    )
    for name in ("mu", "pooled", "phi", "predictive"):
        draws = result.tree["posterior"][name].values.ravel()
        for q in PROBS:
            mcmc = float(np.quantile(draws, q))
            mcse = float(az.mcse(result.tree, var_names=[name], method="quantile", prob=q)[name])
            exact_q = float(ref.quantile(name, q))
            tol = Z_TOL * np.hypot(mcse, GRID_RTOL * abs(exact_q))
            assert abs(mcmc - exact_q) <= tol, (name, q, mcmc, exact_q, mcse)
