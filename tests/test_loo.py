"""Leave-one-study-out: marginal PSIS-LOO against the exact quadrature reference.

Reference: :func:`bayes_va.numerics.exact.leave_one_out_elpd`, exact leave-one-study-out elpd of the
intercept-only logit-normal model by two-level quadrature. Its error on the base data is far
below the Monte-Carlo error of PSIS: the default grid agrees with a 121 x 81 grid to 1e-11 and
with 25 Gauss-Hermite nodes to 3e-8 per study (measured with this code; rerun
``bench/bench_loo.py`` to regenerate). So PSIS - exact is Monte-Carlo error (and the O(1/S) bias of
importance sampling, far smaller when k < 0.5) and is compared with the MCSE that
:func:`bayes_va.checking.loo.marginal_loo` reports.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from seeds import seed

import bayes_va
from bayes_va.checking.loo import (
    CONDITIONAL,
    LooReliabilityWarning,
    marginal_loo,
    pareto_k_counts,
    refit_loso,
    replace_bad_k,
)

pytestmark = pytest.mark.sampling

#: |z| > 4 has two-sided probability 6.3e-5 under a normal error; over the 15 comparisons
#: below a correct estimator fails with probability < 1e-3.
Z_TOL = 4.0
#: Accuracy of the exact reference per study (grid and node convergence, see module docstring).
EXACT_ABS_ERR = 1e-6


@pytest.fixture(scope="module")
def base():
    """The base fit at its configured 4 x 1000 draws (sampling is cheap; compile dominates)."""
    return bayes_va.fit("models/base.toml")


@pytest.fixture(scope="module")
def base_loo(base):
    return marginal_loo(base)


def test_marginal_psis_loo_agrees_with_exact_leave_one_study_out_within_its_se(base_loo):
    assert base_loo.exact_elpd is not None
    diff = base_loo.elpd - base_loo.exact_elpd
    assert abs(diff) <= base_loo.se, (base_loo.elpd, base_loo.exact_elpd, base_loo.se)
    # far stronger: within its Monte-Carlo error
    assert abs(diff) <= Z_TOL * np.hypot(base_loo.mcse, EXACT_ABS_ERR * 14), (diff, base_loo.mcse)


def test_each_study_psis_elpd_agrees_with_exact_within_its_monte_carlo_error(base_loo):
    s = base_loo.studies
    tol = Z_TOL * np.hypot(s["mcse"], EXACT_ABS_ERR)
    bad = s[np.abs(s["psis_minus_exact"]) > tol]
    assert bad.empty, bad.to_string()


@pytest.fixture(scope="module")
def long_loo(base):
    """Marginal PSIS-LOO of the base config with 4 x 4000 draws.

    The marginal k are small (0.04-0.36 per study, means of PSIS estimates on exact posterior
    draws), but PSIS estimates each with an SD of ~0.09 at 4 x 1000 draws, so the largest of 14
    exceeded 0.7 in 1 of 1,500 simulated replications (2 of 1,500 at 4 x 500). The tail of
    ~3 sqrt(S) ratios it fits doubles here, which cuts that SD by ~1/sqrt(2): simulated at
    16,000 draws, hogan2022's k is 0.35 (SD 0.067), 5.2 SDs below 0.7, and the largest of the
    14 stayed below 0.55 in 400 replications.
    """
    return marginal_loo(bayes_va.fit(base.config.replace(**{"sampler.draws": 4000})))


def test_marginal_pareto_k_are_all_below_the_threshold(long_loo):
    assert long_loo.good_k <= 0.7
    assert long_loo.reliable
    assert (long_loo.studies["pareto_k"] < 0.7).all()
    assert long_loo.caveat() is None
    assert pareto_k_counts(long_loo.studies["pareto_k"].to_numpy(), long_loo.good_k) == {
        "good": 14,
        "bad": 0,
        "very_bad": 0,
    }


#: The conditional log-likelihood's PSIS-LOO at the base fit's size (4 x 1000 draws), simulated
#: by :func:`_simulate_conditional_psis` (iid posterior draws from the exact quadrature posterior,
#: theta_i from their exact conditionals; 3,000 replications; rerun by the slow test below):
#: the number of studies with Pareto k > 0.7 is 11.8 +- 1.3 (Poisson-binomial of per-study rates
#: 0.55-0.94, which the simulated counts match: variance 1.63 vs 1.62). P(count <= 6) = 1.6e-4
#: and P(count <= 7) = 1.4e-3, so a count of at least 7 of 14 holds with probability > 0.999
#: (the old "more than 7" fails about 1 fresh stream in 700, and did on one machine).
#: 20 MCMC seeds of the base fit agree: 10-14, mean 12.1.
MIN_BAD_CONDITIONAL_K = 7
#: Its elpd minus the exact leave-one-study-out elpd: +20.9 (SD 0.43 over 20 MCMC seeds; 21.0,
#: SD 0.42 over 40 simulated replications), against its own reported SE of 5.7-5.9 (SD 0.14):
#: "more than twice its SE" leaves 9.6 (SD 0.55, smallest 8.3), ~17 SDs of the difference.
CONDITIONAL_GAP_IN_SE = 2.0
#: The Gaussian approximation k_i = 1 - var_post / var_loo is a ratio of variances of 4,000 near-
#: independent draws (SD 0.001-0.008 over 20 seeds). 12 studies sit at 0.78-1.00, at least 14 SDs
#: above 0.7; the two small 2-event studies sit at 0.707 and 0.713 and may fall either side.
MIN_BAD_GAUSSIAN_K = 12


def _simulate_conditional_psis(
    y: np.ndarray, n: np.ndarray, replications: int, rng: np.random.Generator, draws: int = 4000
) -> dict[str, np.ndarray]:
    """PSIS-LOO of the conditional log-likelihood on ``draws`` iid exact posterior draws.

    (mu, tau) come from the quadrature posterior (cells drawn by their mass, uniform within
    a cell), theta_i from their exact conditionals; no MCMC, so this is the estimator's own
    sampling spread (the base fit's r_eff is 0.97: its draws are nearly independent too).
    Returns per replication the Pareto k of every study, the elpd minus the exact LOSO elpd,
    and the elpd's SE over studies (as ArviZ reports it).
    """
    from arviz_stats.base import array_stats
    from scipy import special

    from bayes_va.engine.marginal import draw_theta
    from bayes_va.numerics.exact import leave_one_out_elpd, posterior_grid

    post = posterior_grid(y, n)
    exact = leave_one_out_elpd(y, n).sum()
    w = post.weights.ravel()
    mu_nodes, log_tau_nodes = (g.ravel() for g in np.meshgrid(post.mu, post.log_tau, indexing="ij"))
    h_mu, h_lt = post.mu[1] - post.mu[0], post.log_tau[1] - post.log_tau[0]
    k_hat, gap, se = [], [], []
    for _ in range(replications):
        cell = rng.choice(w.size, draws, p=w)
        mu = mu_nodes[cell] + h_mu * (rng.random(draws) - 0.5)
        tau = np.exp(log_tau_nodes[cell] + h_lt * (rng.random(draws) - 0.5))
        eta = np.repeat(mu[:, None], y.size, axis=1)
        theta = draw_theta(y, n, eta, tau, int(rng.integers(2**62)))
        log_lik = (
            special.gammaln(n + 1.0)
            - special.gammaln(y + 1.0)
            - special.gammaln(n - y + 1.0)
            + y * special.log_expit(theta)
            + (n - y) * special.log_expit(-theta)
        ).T  # (study, draw)
        lw, k = array_stats.psislw(log_lik, r_eff=1.0, axis=-1)
        lw = lw - np.logaddexp.reduce(lw, axis=-1, keepdims=True)
        elpd_i = np.logaddexp.reduce(lw + log_lik, axis=-1)
        k_hat.append(k)
        gap.append(elpd_i.sum() - exact)
        se.append(np.sqrt(y.size * elpd_i.var()))
    return {"k": np.array(k_hat), "gap": np.array(gap), "se": np.array(se)}


def test_conditional_log_likelihood_gives_bad_pareto_k_for_most_studies(base, base_loo):
    """Documented fact: log Binom(y_i | theta_i) is the wrong pointwise term here.

    Importance sampling from N(0, s_post^2) to N(0, s_loo^2) has Pareto shape
    k = 1 - s_post^2 / s_loo^2 (Vehtari et al. 2024, JMLR 25(72)). Leaving study i out sends
    theta_i from its posterior back to the population, whose variance is Var(mu) + E(tau^2):
    k > 0.7 for most studies. PSIS estimates each k from the ~190 largest ratios, with an SD of
    about 0.13 per study, so its count of bad k is random (margins in the constants above).
    """
    post = base.tree["posterior"]
    var_post = post["theta"].var(("chain", "draw")).values
    var_loo = float(post["mu"].var()) + float((post["tau"] ** 2).mean())
    k_gauss = 1.0 - var_post / var_loo
    assert np.sum(k_gauss > 0.7) >= MIN_BAD_GAUSSIAN_K, np.round(k_gauss, 3)

    with pytest.warns(LooReliabilityWarning, match="conditional log-likelihood"):
        cond = marginal_loo(base, var_name=CONDITIONAL, exact=base_loo.studies["elpd_exact"].values)
    assert not cond.reliable and "NOT reliable" in cond.caveat()
    assert len(cond.bad_studies) >= MIN_BAD_CONDITIONAL_K, cond.studies[["study", "pareto_k"]]
    # and it is wrong: it misses the exact value by several of its own SEs, while the marginal
    # estimate is within Z_TOL of its Monte-Carlo SE of it (P < 6.3e-5 under a correct MCSE)
    assert cond.elpd - cond.exact_elpd > CONDITIONAL_GAP_IN_SE * cond.se, (
        cond.elpd,
        cond.exact_elpd,
        cond.se,
    )
    marginal_miss = abs(base_loo.elpd - base_loo.exact_elpd)
    assert marginal_miss <= Z_TOL * np.hypot(base_loo.mcse, EXACT_ABS_ERR * 14)


@pytest.mark.slow
def test_the_margins_of_the_conditional_loo_test_hold_in_a_fresh_simulation():
    """Rederives the constants of the test above: 1,000 replications of the conditional PSIS
    on exact posterior draws. A count below the bound must have Poisson-binomial probability
    < 1e-3 (1.6e-4 when derived) and be as rare among the replications, and the elpd gap must
    clear twice its SE in every replication, by many SDs."""
    from revision_reference import N, Y

    sim = _simulate_conditional_psis(Y, N, 1000, np.random.default_rng(seed(20240613)))
    count = (sim["k"] > 0.7).sum(axis=1)
    p_bad = (sim["k"] > 0.7).mean(axis=0)
    # Poisson-binomial tail from the per-study rates (the studies' k are independent: the
    # simulated count's variance matches the sum of p (1 - p))
    tail = np.array([1.0])
    for p in p_bad:
        tail = np.convolve(tail, [1.0 - p, p])
    assert np.cumsum(tail)[MIN_BAD_CONDITIONAL_K - 1] < 1e-3, np.round(p_bad, 3)
    # and directly: at P = 1.6e-4, 5 or more of 1,000 below the bound has probability 1e-6
    assert np.sum(count < MIN_BAD_CONDITIONAL_K) < 5, np.bincount(count, minlength=15)
    excess = sim["gap"] - CONDITIONAL_GAP_IN_SE * sim["se"]
    assert excess.min() > 0 and excess.mean() > 10 * excess.std(), (excess.mean(), excess.std())


def test_bad_k_values_can_be_replaced_by_the_exact_ones(base, long_loo):
    with pytest.warns(LooReliabilityWarning):
        cond = marginal_loo(base, var_name=CONDITIONAL, exact=False)
    with pytest.raises(ValueError, match="marginal"):
        replace_bad_k(cond)
    assert replace_bad_k(long_loo) is long_loo  # nothing to replace (every k good, above)


def test_loo_of_a_bare_data_tree_has_no_exact_reference(base):
    tree = base.tree
    out = marginal_loo(tree, name="tree")
    assert out.exact_elpd is None and "elpd_exact" not in out.studies
    with pytest.raises(ValueError, match="needs a FitResult"):
        marginal_loo(tree, exact=True)
    with pytest.raises(ValueError, match="no log-likelihood 'nope'"):
        marginal_loo(tree, var_name="nope")


def test_unreliable_loo_of_a_near_pooled_model_is_fixed_by_exact_values(base, base_loo):
    """tau ~ HalfNormal(0.001) pins tau near 0 (complete pooling); the two large studies then
    move (mu, tau) so much that PSIS fails for them; the quadrature gives their exact values."""
    pooled = bayes_va.fit(base.config.replace(**{"priors.tau.sigma": 0.001, "name": "near_pooled"}))
    with pytest.warns(LooReliabilityWarning, match="near_pooled"):
        loo = marginal_loo(pooled)
    assert "hogan2022" in loo.bad_studies
    fixed = replace_bad_k(loo)
    assert fixed.reliable and set(fixed.replaced) == set(loo.bad_studies)
    assert fixed.elpd == pytest.approx(
        loo.studies.loc[loo.studies["k_ok"], "elpd_psis"].sum()
        + loo.studies.loc[~loo.studies["k_ok"], "elpd_exact"].sum()
    )
    # arviz_stats.reloo: refitted k set to 0 (the table keeps the PSIS ones), SE with ddof 1,
    # p updated with the replaced studies' lpd - elpd (the hand-made update left p stale)
    bad = ~loo.studies["k_ok"].to_numpy()
    assert (fixed.elpd_data.pareto_k.values[bad] == 0).all()
    np.testing.assert_array_equal(fixed.studies["pareto_k"], loo.studies["pareto_k"])
    elpd_i = fixed.studies["elpd_psis"].to_numpy()
    assert fixed.se == pytest.approx(np.sqrt(elpd_i.size * np.var(elpd_i, ddof=1)), rel=1e-12)
    p_i = fixed.elpd_data.p_loo_i.values
    assert fixed.p == pytest.approx(p_i.sum(), rel=1e-12) and fixed.p != loo.p
    np.testing.assert_allclose(p_i[~bad], loo.studies.loc[~bad, "p_loo"], rtol=1e-9)
    np.testing.assert_allclose(fixed.studies.loc[bad, "p_loo"], p_i[bad])
    # and it predicts left-out studies worse than the random-effects model (by ~800; the
    # ranking and its uncertainty are tested in test_compare.py)
    assert fixed.elpd < base_loo.elpd


def test_psis_warning_from_arviz_is_replaced_by_one_that_names_studies(base):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        marginal_loo(base, var_name=CONDITIONAL, exact=False)
    kinds = {w.category for w in caught}
    assert kinds == {LooReliabilityWarning}, [str(w.message) for w in caught]


def test_pareto_k_counts_bins_at_the_threshold_and_at_one():
    k = np.array([0.1, 0.7, 0.71, 1.0, 1.2, -0.3])
    assert pareto_k_counts(k, 0.7) == {"good": 3, "bad": 2, "very_bad": 1}


@pytest.mark.slow
def test_psis_monte_carlo_se_is_calibrated_across_seeds():
    """If the MCSE is right, z = (PSIS - exact) / MCSE of the total elpd is ~ N(0, 1) across
    independent runs, so the sum of z^2 over 10 seeds is ~ chi^2(10); each tail is tested at
    0.05 %, 0.1 % in all (a too-small MCSE would make the agreement tests above too strict, a
    too-large one too lax)."""
    from scipy import stats

    z = []
    for i in range(1, 11):
        loo = marginal_loo(bayes_va.fit("models/base.toml", overrides={"sampler.seed": seed(i)}))
        z.append((loo.elpd - loo.exact_elpd) / loo.mcse)
    total = float(np.sum(np.square(z)))
    assert stats.chi2.ppf(0.0005, 10) < total < stats.chi2.ppf(0.9995, 10), np.round(z, 2)


def test_refits_of_the_flagged_studies_agree_with_the_exact_values(base, base_loo):
    """The refit route of replace_bad_k (arviz_stats.reloo with a leave-one-study-out wrapper,
    theta integrated out for the held-out study) against the quadrature's exact values.

    Without exact values (``exact=False``) every flagged study is refitted on the other 13.
    The base model's k are all good, so half the studies are flagged by lowering the threshold
    to the median k: their refits are ordinary fits of the base model, whose held-out
    predictions are accurate to their MCSE (plus the exact reference's error). (A refit's
    value is a plain Monte-Carlo mean of the held-out likelihood; for a study far from all
    the others' posterior, e.g. hogan2022 under tau ~ HalfNormal(0.001), 4,000 draws never
    reach where its likelihood lives and the refit is far off with a small MCSE: the
    quadrature route is the one to trust there.)"""
    psis = marginal_loo(base, exact=False)
    assert "elpd_exact" not in psis.studies
    cut = float(np.median(psis.studies["pareto_k"]))
    flagged = dataclasses.replace(
        psis, good_k=cut, studies=psis.studies.assign(k_ok=psis.studies["pareto_k"] <= cut)
    )
    bad = list(flagged.bad_studies)
    assert len(bad) == 7
    with pytest.raises(ValueError, match="refits need the FitResult"):
        replace_bad_k(flagged)
    fixed = replace_bad_k(flagged, base)
    assert fixed.reliable and set(fixed.replaced) == set(bad)
    refitted = fixed.studies.set_index("study").loc[bad]
    assert (refitted["method"] == "refit").all() and refitted["refit_ok"].notna().all()
    exact = base_loo.studies.set_index("study").loc[bad, "elpd_exact"]
    err = refitted["elpd_psis"] - exact
    tol = Z_TOL * np.hypot(refitted["mcse_refit"], EXACT_ABS_ERR)
    assert (err.abs() <= tol).all(), pd.DataFrame({"err": err, "tol": tol})
    # studies that were not flagged keep their PSIS values exactly
    keep = ~fixed.studies["study"].isin(bad)
    np.testing.assert_array_equal(
        fixed.studies.loc[keep, "elpd_psis"], psis.studies.loc[keep, "elpd_psis"]
    )
    # the refit route is the one refit_loso runs, study by study
    one = refit_loso(base, bad[:1]).set_index("study")
    # same refit, summed in another order: equal up to rounding
    assert one.loc[bad[0], "elpd_refit"] == pytest.approx(
        refitted.loc[bad[0], "elpd_psis"], rel=1e-12
    )
