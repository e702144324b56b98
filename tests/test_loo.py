"""Leave-one-study-out: marginal PSIS-LOO against the exact quadrature reference.

Reference: :func:`bayes_va.exact.leave_one_out_elpd`, exact leave-one-study-out elpd of the
intercept-only logit-normal model by two-level quadrature. Its error on the base data is far
below the Monte-Carlo error of PSIS: the default grid agrees with a 121 x 81 grid to 1e-11 and
with 25 Gauss-Hermite nodes to 3e-8 per study (measured with this code; rerun
``bench/bench_loo.py`` to regenerate). So PSIS - exact is Monte-Carlo error (and the O(1/S) bias of
importance sampling, far smaller when k < 0.5) and is compared with the MCSE that
:func:`bayes_va.loo.marginal_loo` reports.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayes_va
from bayes_va.loo import (
    CONDITIONAL,
    LooReliabilityWarning,
    marginal_loo,
    pareto_k_counts,
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


def test_marginal_pareto_k_are_all_below_the_threshold(base_loo):
    assert base_loo.good_k <= 0.7
    assert base_loo.reliable
    assert (base_loo.studies["pareto_k"] < 0.7).all()
    assert base_loo.caveat() is None
    assert pareto_k_counts(base_loo.studies["pareto_k"].to_numpy(), base_loo.good_k) == {
        "good": 14,
        "bad": 0,
        "very_bad": 0,
    }


def test_conditional_log_likelihood_gives_bad_pareto_k_for_most_studies(base, base_loo):
    """Documented fact: log Binom(y_i | theta_i) is the wrong pointwise term here.

    Importance sampling from N(0, s_post^2) to N(0, s_loo^2) has Pareto shape
    k = 1 - s_post^2 / s_loo^2 (Vehtari et al. 2024, JMLR 25(72)). Leaving study i out sends
    theta_i from its posterior back to the population, whose variance is Var(mu) + E(tau^2).
    """
    post = base.tree["posterior"]
    var_post = post["theta"].var(("chain", "draw")).values
    var_loo = float(post["mu"].var()) + float((post["tau"] ** 2).mean())
    k_gauss = 1.0 - var_post / var_loo
    assert np.sum(k_gauss > 0.7) > 14 / 2, np.round(k_gauss, 2)

    with pytest.warns(LooReliabilityWarning, match="conditional log-likelihood"):
        cond = marginal_loo(base, var_name=CONDITIONAL, exact=base_loo.studies["elpd_exact"].values)
    assert not cond.reliable
    assert len(cond.bad_studies) > 14 / 2, cond.studies[["study", "pareto_k"]]
    # and it is wrong: it misses the exact value by more than its own reported SE, while the
    # marginal estimate is within Monte-Carlo error of it
    assert cond.elpd - cond.exact_elpd > cond.se, (cond.elpd, cond.exact_elpd, cond.se)
    assert "NOT reliable" in cond.caveat()


def test_bad_k_values_can_be_replaced_by_the_exact_ones(base, base_loo):
    with pytest.warns(LooReliabilityWarning):
        cond = marginal_loo(base, var_name=CONDITIONAL, exact=False)
    with pytest.raises(ValueError, match="marginal"):
        replace_bad_k(cond)
    assert replace_bad_k(base_loo) is base_loo  # nothing to replace


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
    assert np.isnan(fixed.elpd_data.pareto_k.values[~loo.studies["k_ok"].to_numpy()]).all()
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
    independent runs, so the sum of z^2 over 10 seeds is ~ chi^2(10); both tails are tested at
    0.1 % (a too-small MCSE would make the agreement tests above too strict, a too-large one
    too lax)."""
    from scipy import stats

    z = []
    for seed in range(1, 11):
        loo = marginal_loo(bayes_va.fit("models/base.toml", overrides={"sampler.seed": seed}))
        z.append((loo.elpd - loo.exact_elpd) / loo.mcse)
    total = float(np.sum(np.square(z)))
    assert stats.chi2.ppf(0.001, 10) < total < stats.chi2.ppf(0.999, 10), np.round(z, 2)
