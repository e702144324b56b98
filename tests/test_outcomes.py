"""Exact-binomial outcomes: within-study log odds ratios and the Gaughen 2002 proportions.

References used here, none of them from the code under test:

* large-count contrasts: the classical sample log OR and its Wald SE (Woolf), which the posterior
  must approach when every cell is large;
* P(p1 > p0) for integer Beta shapes: the closed-form sum of Evan Miller ("Formulas for Bayesian
  A/B testing", 2015): sum_{i<a1} B(a0 + i, b0 + b1) / ((b1 + i) B(1 + i, b1) B(a0, b0));
* Gaughen: Beta posteriors with closed-form CDFs, e.g. Beta(5, 1) has F(x) = x^5 and Beta(6, 2)
  has F(x) = 7x^6 - 6x^7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from seeds import seed

from bayes_va.numerics import outcomes
from bayes_va.numerics.outcomes import JEFFREYS, UNIFORM, BetaPrior, OutcomeError

#: Monte Carlo draws of the posterior median have SE ~ 1.25 sd / sqrt(n); 20,000 draws of a
#: log OR with sd 0.094 give SE 0.00084, so 0.01 is a 12-SE tolerance. The 2.5 % and 97.5 %
#: quantiles have SE 0.0018 and sit 1e-4 from Wald's limits (2 million draws), so twice it is
#: 11 SEs. A fresh seed fails either with probability < 1e-20.
MEDIAN_TOL = 0.01


def miller_prob_greater(a1: int, b1: int, a0: int, b0: int) -> float:
    """P(p1 > p0), p1 ~ Beta(a1, b1), p0 ~ Beta(a0, b0), integer a1 (closed form)."""
    total = 0.0
    for i in range(a1):
        total += math.exp(
            special.betaln(a0 + i, b0 + b1)
            - math.log(b1 + i)
            - special.betaln(1 + i, b1)
            - special.betaln(a0, b0)
        )
    return total


def test_large_counts_posterior_log_or_matches_the_sample_log_or_and_wald_interval():
    c = outcomes.log_odds_ratio(400, 1000, 300, 1000, seed=seed(1), stream=5)
    sample = math.log(400 * 700 / (600 * 300))
    wald_se = math.sqrt(1 / 400 + 1 / 600 + 1 / 300 + 1 / 700)
    s = c.summary()
    assert c.sample_log_or == pytest.approx(sample)
    assert s["log_or_median"] == pytest.approx(sample, abs=MEDIAN_TOL)
    assert s["log_or_lower"] == pytest.approx(sample - 1.959964 * wald_se, abs=2 * MEDIAN_TOL)
    assert s["log_or_upper"] == pytest.approx(sample + 1.959964 * wald_se, abs=2 * MEDIAN_TOL)
    assert s["or_median"] == pytest.approx(math.exp(s["log_or_median"]))


@pytest.mark.parametrize(
    ("a1", "b1", "a0", "b0"), [(3, 2, 2, 3), (1, 1, 1, 1), (8, 3, 1, 18), (2, 30, 17, 204)]
)
def test_prob_greater_matches_the_closed_form_for_integer_shapes(a1, b1, a0, b0):
    assert outcomes.prob_greater(a1, b1, a0, b0) == pytest.approx(
        miller_prob_greater(a1, b1, a0, b0), abs=1e-9
    )


def test_prob_or_above_1_agrees_with_the_draws_including_zero_cells():
    for counts in [(1, 31, 17, 220), (7, 9, 0, 2), (0, 31, 9, 220)]:
        c = outcomes.log_odds_ratio(*counts, prior=JEFFREYS, n_draws=40_000, seed=seed(3))
        mc = float((c.draws > 0).mean())
        # 3 binomial proportions within 5 SEs (two-sided 5.7e-7 each); 1e-4 for the quadrature
        se = math.sqrt(mc * (1 - mc) / c.draws.size) + 1e-4
        assert c.prob_or_above_1 == pytest.approx(mc, abs=5 * se)


def test_zero_cells_give_finite_draws_and_no_sample_log_or():
    c = outcomes.log_odds_ratio(0, 31, 9, 220, seed=seed(2))
    assert np.isfinite(c.draws).all()
    assert math.isnan(c.sample_log_or)
    assert c.summary()["log_or_median"] < 0  # about -1.7, some 80 MCSEs below 0


def test_shipped_contrasts_have_the_codebook_counts_and_directions():
    cs = outcomes.avf_contrasts(n_draws=4000, seed=seed(outcomes.DEFAULT_SEED))
    counts = {k: (c.events1, c.n1, c.events0, c.n0) for k, c in cs.items()}
    assert counts == {
        "brace_avf": (1, 31, 17, 220),
        "brace_remote_fracture": (0, 31, 9, 220),
        "leakage_type_avf": (7, 9, 0, 2),
        "intradiscal_leakage_avf": (7, 11, 11, 240),
    }
    table = outcomes.contrast_table(cs).set_index("contrast")
    # medians from 4,000 draws: -0.76 and +3.56, some 30 and 100 of their MCSEs from 0;
    # P(OR > 1) is exact (quadrature), not drawn
    assert (
        table.loc["brace_avf", "log_or_median"] < 0 < table.loc["leakage_type_avf", "log_or_median"]
    )
    assert table.loc["intradiscal_leakage_avf", "p_or_above_1"] > 0.999
    # the seed's one test of leakage type (P < 0.05) agrees in direction
    assert table.loc["leakage_type_avf", "p_or_above_1"] > 0.95


def test_same_seed_same_draws_other_seed_other_draws():
    a = outcomes.avf_contrasts(n_draws=500, seed=seed(7))["brace_avf"].draws
    b = outcomes.avf_contrasts(n_draws=500, seed=seed(7))["brace_avf"].draws
    c = outcomes.avf_contrasts(n_draws=500, seed=seed(8))["brace_avf"].draws
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gaughen_posteriors_match_closed_form_beta_posteriors():
    rows = {(p.measure, p.prior.label): p.summary() for p in outcomes.gaughen_outcomes()}
    mob_u = rows[("mobility_improved", UNIFORM.label)]  # 4/4, Beta(1, 1) -> Beta(5, 1)
    assert mob_u["posterior"] == "Beta(5, 1)"
    assert mob_u["mean"] == pytest.approx(5 / 6)
    assert mob_u["median"] == pytest.approx(0.5 ** (1 / 5))
    assert mob_u["lower"] == pytest.approx(0.025 ** (1 / 5))
    assert mob_u["upper"] == pytest.approx(0.975 ** (1 / 5))
    assert mob_u["p_above_half"] == pytest.approx(1 - 0.5**5)
    pain_u = rows[("pain_reduction_ge3_points", UNIFORM.label)]  # 5/6 -> Beta(6, 2)
    assert pain_u["mean"] == pytest.approx(6 / 8)
    assert pain_u["p_above_half"] == pytest.approx(1 - (7 * 0.5**6 - 6 * 0.5**7))
    pain_j = rows[("pain_reduction_ge3_points", JEFFREYS.label)]  # 5/6 -> Beta(5.5, 1.5)
    assert (pain_j["successes"], pain_j["n"]) == (5, 6)
    assert pain_j["posterior"] == "Beta(5.5, 1.5)"
    assert pain_j["mean"] == pytest.approx(5.5 / 7)
    mob_j = rows[("mobility_improved", JEFFREYS.label)]
    assert mob_j["mean"] == pytest.approx(4.5 / 5)


def test_gaughen_table_has_one_row_per_measure_and_prior():
    t = outcomes.gaughen_table()
    assert len(t) == 4
    assert set(t["measure"]) == {"pain_reduction_ge3_points", "mobility_improved"}
    assert ((t["lower"] < t["median"]) & (t["median"] < t["upper"])).all()


@pytest.mark.parametrize(("events", "n"), [(5, 4), (-1, 3), (1, 0), (1.5, 3)])
def test_impossible_counts_are_rejected(events, n):
    with pytest.raises(OutcomeError, match=r"events|integers"):
        outcomes.log_odds_ratio(events, n, 1, 10)


def test_improper_priors_are_rejected():
    with pytest.raises(OutcomeError, match="a > 0"):
        BetaPrior(0.0, 1.0)
