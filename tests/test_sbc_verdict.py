"""SBC verdicts that do not cry wolf: exact ECDF p-values, Holm over the quantities, power.

Pure numpy rank simulations, no MCMC: under a calibrated model the rank of the truth among
``thin`` posterior draws is ``Bin(thin, U)`` with ``U`` uniform, i.e. uniform on ``0..thin``;
under a posterior ``1/s`` times too narrow it is ``Bin(thin, Phi(theta / s))``, ``theta ~ N(0, 1)``.
Every statistical check runs over many seeds (shifted by ``BAYES_VA_SEED_OFFSET``) and is judged
against a binomial margin, so none owes its result to one random stream.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from seeds import seed

from bayes_va.checking.sbc_stats import (
    FAMILY_ALPHA,
    _counts,
    _min_tail_prob,
    _null_cdf,
    _table,
    detectable,
    family_verdict,
    holm,
    power,
    rank_probabilities,
)
from bayes_va.cli import main as cli
from bayes_va.cli.common import ExitCode
from bayes_va.cli.sbc import SBCExit, add_sbc_parser
from bayes_va.workflows.executor import RunReport
from bayes_va.workflows.sbc import SBCResult, SBCSpec, ecdf_test, summarise
from bayes_va.workflows.sbc_outputs import write_outputs

THIN = 99
QUANTITIES = ("mu", "tau", "pooled", "predictive", "p_1")


def _correlated_ranks(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """Ranks of the five quantities, shape (5, n), with SBC-like dependence.

    ``mu`` and ``pooled`` share their ranks (a monotone transform); ``predictive`` and ``p_1``
    are correlated with ``mu`` (0.6), ``tau`` is not. ``scale < 1`` makes ``tau``'s posterior
    ``1 / scale`` times too narrow.
    """
    cov = np.eye(4)
    cov[0, 2] = cov[2, 0] = cov[0, 3] = cov[3, 0] = 0.6
    cov[2, 3] = cov[3, 2] = 0.36
    z = rng.multivariate_normal(np.zeros(4), cov, size=n).T  # mu, tau, predictive, p_1
    z[1] /= scale
    ranks = rng.binomial(THIN, special.ndtr(z))
    return np.stack([ranks[0], ranks[1], ranks[0], ranks[2], ranks[3]])


def _even_ranks(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ranks of the five quantities, shape (5, n), spread evenly over 0..THIN in random order.

    Their ECDF sits on the uniform CDF whatever the order, so the exact p-value is ~1 (0.99999
    at n = 60) for every stream: a calibrated run that no seed can turn into a false alarm
    (correlated uniform draws would be flagged with probability up to FAMILY_ALPHA = 0.01).
    """
    even = np.linspace(0, THIN, n).round().astype(np.int64)
    ranks = np.stack([rng.permutation(even) for _ in range(4)])
    return np.stack([ranks[0], ranks[1], ranks[0], ranks[2], ranks[3]])


def _p_values(rank_sets: np.ndarray) -> np.ndarray:
    """Exact ECDF p-value of each row (``pooled`` repeats ``mu``: computed once)."""
    memo: dict[bytes, float] = {}
    return np.array([memo.setdefault(r.tobytes(), ecdf_test(r, THIN).p_value) for r in rank_sets])


# --------------------------------------------------------------------------- Holm


def test_holm_on_hand_made_p_values():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]  # NaN (no ranks) is left out: m = 4
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm(p)[4])
    # the run: 0.034 and 0.029 among five quantities are no family-wise evidence
    adjusted, rejected = family_verdict([0.034, 0.41, 0.029, 0.62, 0.88])
    np.testing.assert_allclose(adjusted, [0.145, 1.0, 0.145, 1.0, 1.0])
    assert not rejected.any()
    adjusted, rejected = family_verdict([0.001, 0.2, 0.0024, 0.5, 0.003], alpha=0.01)
    np.testing.assert_allclose(adjusted, [0.005, 0.4, 0.0096, 0.5, 0.0096])
    assert rejected.tolist() == [True, False, True, False, True]
    assert not family_verdict([np.nan, 0.5])[1].any()


def test_holm_equals_closed_testing_with_bonferroni():
    # Holm's adjusted p-value of i is the largest Bonferroni p-value over every subset
    # containing i (Marcus et al.'s closed testing): brute force over all 31 subsets of 5
    rng = np.random.default_rng(seed(10))
    for _ in range(200):
        p = rng.uniform(0, 0.1, 5) ** rng.uniform(0.5, 2)
        brute = np.zeros(5)
        for size in range(1, 6):
            for subset in itertools.combinations(range(5), size):
                local = min(1.0, size * p[list(subset)].min())
                for i in subset:
                    brute[i] = max(brute[i], local)
        np.testing.assert_allclose(holm(p), brute, rtol=1e-12)


# --------------------------------------------------------------------------- the exact test


@pytest.mark.parametrize(("n", "thin"), [(3, 4), (4, 3), (6, 2)])
def test_exact_null_distribution_matches_full_enumeration(n, thin):
    table = _table(n, thin)
    sets = np.array(list(itertools.product(range(thin + 1), repeat=n)))
    t = np.array([_min_tail_prob(table, _counts(r, thin)) for r in sets])
    for value in np.unique(t):
        assert _null_cdf(n, thin, float(value)) == pytest.approx(np.mean(t <= value), abs=1e-12)
    p = np.array([ecdf_test(r, thin).p_value for r in sets])
    for a in (0.01, 0.05, 0.1, 0.3):  # exact p-values are valid: P(p <= a) <= a
        assert np.mean(p <= a) <= a + 1e-12


def test_exact_p_value_agrees_with_the_simulation_method():
    rng = np.random.default_rng(seed(20))
    for n in (16, 100):
        uniform = rng.integers(0, THIN + 1, n)
        skewed = np.minimum(rng.integers(0, THIN + 1, n), rng.integers(0, THIN + 1, n))
        for r in (uniform, skewed):
            exact = ecdf_test(r, THIN)
            sim = ecdf_test(r, THIN, n_simulations=20000, seed=seed(21), method="simulate")
            se = np.sqrt(exact.p_value * (1 - exact.p_value) / 20000) + 1 / 20000
            assert abs(exact.p_value - sim.p_value) <= 4 * se, (n, exact.p_value, sim.p_value)
            # the exact band and the simulated one differ by at most one count
            assert np.abs(exact.lower - sim.lower).max() <= 1 / n + 1e-12
            assert np.abs(exact.upper - sim.upper).max() <= 1 / n + 1e-12


def test_an_ecdf_leaves_the_exact_band_exactly_when_p_is_below_its_level():
    rng = np.random.default_rng(seed(30))
    n, hits = 40, 0
    for _ in range(200):
        r = np.minimum(rng.integers(0, THIN + 1, n), rng.integers(0, THIN + 1, n) + 30)
        t = ecdf_test(r, THIN, prob=0.95)
        outside = bool(np.any((t.diff < t.lower - 1e-12) | (t.diff > t.upper + 1e-12)))
        assert outside == (t.p_value <= 0.05), t.p_value
        hits += outside
    assert 0 < hits < 200  # both cases were seen


# --------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize(("n", "runs"), [(16, 400), (100, 200)])
def test_family_wise_false_alarm_rate_of_a_calibrated_model_is_at_most_alpha(n, runs):
    alarms = naive = 0
    for i in range(runs):
        rng = np.random.default_rng(seed(1000 * n + i))
        p = _p_values(_correlated_ranks(rng, n))
        alarms += bool(family_verdict(p, FAMILY_ALPHA)[1].any())
        naive += bool((p < 0.05).any())  # the old rule: each quantity at 0.05
    # at most alpha (Holm is conservative here): allow the 99.9 % binomial quantile
    assert alarms <= stats.binom.ppf(0.999, runs, FAMILY_ALPHA), alarms
    # the old rule cried wolf in roughly one calibrated run in six or seven
    assert naive >= stats.binom.ppf(0.001, runs, 0.10), naive


@pytest.mark.parametrize("n", [30, 100])
def test_a_too_narrow_posterior_is_flagged_and_only_that_quantity(n):
    # tau's posterior 3 times too narrow: detected with power ~1 at these N
    runs, flagged, false_runs = 20, 0, 0
    for i in range(runs):
        rng = np.random.default_rng(seed(2000 * n + i))
        ranks = _correlated_ranks(rng, n, scale=1 / 3)
        _, rejected = family_verdict(_p_values(ranks))
        flagged += bool(rejected[1])
        false_runs += bool(rejected[[0, 2, 3, 4]].any())
    # exact power of Holm's first step (p <= alpha / 5, a lower bound on Holm's): 1 - 5e-13 at
    # N = 100, but 0.991 at N = 30, where "all 20 flagged" failed 16 % of fresh streams; the
    # count must reach its 0.1 % binomial quantile (all 20 at N = 100, 18 at N = 30)
    at_least = power(n, THIN, rank_probabilities(THIN, scale=1 / 3), FAMILY_ALPHA / 5)
    assert flagged >= stats.binom.ppf(0.001, runs, at_least), (flagged, at_least)
    # Holm still controls the family-wise error over the calibrated quantities (<= alpha a run)
    assert false_runs <= stats.binom.ppf(0.999, runs, FAMILY_ALPHA), false_runs


def test_summarise_names_the_miscalibration_and_claims_no_calibration(tmp_path):
    rng = np.random.default_rng(seed(40))
    good = summarise(_records(_even_ranks(rng, 60)), QUANTITIES, THIN)
    assert not good.miscalibrated and good.calibrated  # (the old name, = not miscalibrated)
    assert (good.verdicts["verdict"].str.startswith("no evidence of miscalibration")).all()
    assert not good.verdicts["verdict"].str.contains("calibrated (", regex=False).any()
    assert "80 % power" in good.verdict() and "N=60" in good.verdict()
    bad = summarise(_records(_correlated_ranks(rng, 60, scale=1 / 4)), QUANTITIES, THIN)
    row = bad.verdicts.set_index("quantity").loc["tau"]
    assert row["miscalibrated"] and row["ecdf_p_holm"] <= FAMILY_ALPHA
    assert row["verdict"].startswith("MISCALIBRATED") and "too narrow" in row["verdict"]
    np.testing.assert_allclose(bad.verdicts["ecdf_p_holm"], holm(bad.verdicts["ecdf_p"]))


# --------------------------------------------------------------------------- power


def test_power_figures_shrink_with_n_and_small_n_says_so():
    p16, p100, p1000 = (detectable(n, THIN, 5) for n in (16, 100, 1000))
    assert p16.too_narrow > p100.too_narrow > p1000.too_narrow > 1
    assert p16.shift > p100.shift > p1000.shift > 0
    assert p16.too_wide is None and p100.too_wide > p1000.too_wide > 1
    assert "N=16" in p16.text() and f"{p16.too_narrow:.2f}x too narrow" in p16.text()
    assert "too wide by any factor would not" in p16.text()
    tiny = detectable(1, THIN, 5)  # one rank: even 0 or 99 has p = 0.02 > alpha / 5
    assert not tiny.rejectable and "cannot detect anything" in tiny.text()


def test_power_matches_a_simulation_of_ranks_at_the_reported_boundary():
    n, level = 100, FAMILY_ALPHA / 5
    boundary = detectable(n, THIN, 5)
    scale = 1 / boundary.too_narrow
    assert power(n, THIN, rank_probabilities(THIN, scale=scale), level) == pytest.approx(
        0.8, abs=0.01
    )
    runs, hits = 400, 0
    for i in range(runs):
        rng = np.random.default_rng(seed(3000 + i))
        ranks = rng.binomial(THIN, special.ndtr(rng.standard_normal(n) / scale))
        hits += ecdf_test(ranks, THIN).p_value <= level
    lo, hi = stats.binom.ppf([0.0005, 0.9995], runs, 0.8)
    assert lo <= hits <= hi, hits


# --------------------------------------------------------------------------- CLI and files


def _records(ranks: np.ndarray) -> list[dict]:
    out = []
    for i in range(ranks.shape[1]):
        rank = {q: int(ranks[j, i]) for j, q in enumerate(QUANTITIES)}
        out.append(
            {
                "index": i,
                "seed": i,
                "status": "ok",
                "result": {
                    "rank": rank,
                    "truth": dict.fromkeys(QUANTITIES, 0.0),
                    "covered": {q: {"0.5": True, "0.8": True, "0.95": True} for q in QUANTITIES},
                    "diagnostics": {"ok": True},
                    "timings": {"fit_seconds": 0.1},
                },
            }
        )
    return out


def _fake_run_sbc(ranks: np.ndarray, lost: int = 0):
    def run_sbc(cfg, replications, out, **kwargs):
        spec = SBCSpec(cfg, (10, 20))
        summary = summarise(_records(ranks), spec.quantities, THIN)
        n = ranks.shape[1]
        report = RunReport(n + lost, 0, ran=list(range(n)), lost=dict.fromkeys(range(lost), "x"))
        result = SBCResult(spec, summary, report, out)
        write_outputs(result)
        return result

    return run_sbc


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bayes-va")
    add_sbc_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize(
    ("scale", "lost", "code"),
    [(1.0, 0, SBCExit.NO_EVIDENCE), (1 / 4, 0, SBCExit.MISCALIBRATED), (1.0, 2, 4)],
)
def test_cli_exit_code_follows_the_family_wise_verdict(
    monkeypatch, tmp_path, capsys, scale, lost, code
):
    import bayes_va.workflows.sbc

    rng = np.random.default_rng(seed(50))
    # calibrated: evenly spread ranks (p ~ 1 for any stream; correlated uniform draws would be
    # rejected in up to 1 % of streams); tau 4x too narrow is rejected with power ~1 at N = 60
    ranks = _even_ranks(rng, 60) if scale == 1.0 else _correlated_ranks(rng, 60, scale=scale)
    expected_bad = family_verdict(_p_values(ranks))[1].any()
    assert expected_bad == (scale != 1.0)
    monkeypatch.setattr(bayes_va.workflows.sbc, "run_sbc", _fake_run_sbc(ranks, lost))
    out = tmp_path / "run"
    argv = ["sbc", "models/base.toml", "-N", "60", "--out", str(out), "--no-progress"]
    assert _cli(argv) == code
    text = capsys.readouterr().out
    assert "calibrated (" not in text
    summary = json.loads((out / "sbc_summary.json").read_text())
    assert summary["alpha"] == FAMILY_ALPHA
    assert summary["miscalibrated"] == bool(expected_bad)
    assert "80 % power" in summary["power"]["statement"]
    assert {"ecdf_p", "ecdf_p_holm", "miscalibrated"} <= set(summary["verdicts"][0])
    report = (out / "sbc_report.md").read_text()
    if expected_bad:
        assert "MISCALIBRATED" in text and "MISCALIBRATED" in report
    else:
        assert "no evidence of miscalibration" in text and "With N=60 replications" in text
        assert "no evidence of miscalibration" in report
    if lost:
        assert "Incomplete" in report


def test_exit_codes_are_consistent_with_the_rest_of_the_cli(tmp_path, capsys):
    # one definition: sbc's codes are every command's
    assert SBCExit is ExitCode
    assert ExitCode.BAD_INPUT == 2 and ExitCode.OK == ExitCode.NO_EVIDENCE == 0
    assert (ExitCode.MISCALIBRATED, ExitCode.INCOMPLETE) == (3, 4)
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    missing = tmp_path / "nope.toml"
    assert cli.main(["sbc", str(missing), "-N", "4", "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err


def test_summary_verdicts_table_keeps_its_columns():
    s = summarise(_records(_correlated_ranks(np.random.default_rng(seed(60)), 20)), QUANTITIES, 99)
    for col in ("quantity", "n", "ecdf_p", "ecdf_p_diagnostics_ok", "z_mean", "z_var", "verdict"):
        assert col in s.verdicts.columns
    assert isinstance(s.verdicts, pd.DataFrame) and s.alpha == FAMILY_ALPHA


# --------------------------------------------------------------------------- ArviZ


def test_arviz_pot_c_test_over_rejects_tied_ranks_so_the_verdict_keeps_the_exact_test():
    """Why the verdict does not use arviz_stats' uniformity_test (docs/sbc.md): on SBC ranks
    turned into PIT values at their midpoints (what plot_ecdf_pit does with ranks), at N = 1000
    it rejects uniform ranks at 0.002 (Holm's first step) about ten times too often (2.1 % of
    4,000 sets, measured). Over 2,000 sets a valid test exceeds 11 rejections with probability
    9e-4; at the measured rate at most 11 happen with probability 1e-8. If a future ArviZ
    fixes this, this test fails: then its test may replace the exact one (re-derive the
    constants of this file from a simulated null)."""
    from arviz_stats.base import array_stats

    runs, n, level = 2000, 1000, FAMILY_ALPHA / 5
    ranks = np.random.default_rng(seed(70)).integers(0, THIN + 1, size=(runs, n))
    p = np.asarray(array_stats.uniformity_test((ranks + 0.5) / (THIN + 1), axis=-1)[0])
    bound = stats.binom.ppf(0.999, runs, level)
    assert bound == 11
    assert np.sum(p <= level) > bound, np.sum(p <= level)


def test_the_figure_ecdf_leaves_the_exact_band_exactly_when_the_test_rejects():
    """The figure draws ArviZ's ECDF difference of the fractional ranks (evaluated at N evenly
    spaced points) with the exact band of the test drawn in the same space: with N > thin + 1
    every rank interval holds an evaluation point, so the curve leaves the band exactly when
    the p-value is at most the band's level."""
    import xarray as xr

    from bayes_va.viz.sbc import _band_in_delta_space

    rng = np.random.default_rng(seed(80))
    n, hits = 150, 0
    for i in range(60):
        r = rng.integers(0, THIN + 1, n)
        if i % 2:
            r = np.minimum(r, rng.integers(0, THIN + 1, n) + 25)
        t = ecdf_test(r, THIN, prob=0.95)
        frac = xr.DataArray((r + 0.5) / (THIN + 1), dims="replication")
        curve = frac.azstats.ecdf(dim="replication", pit=True, npoints=n)
        x, y = curve.sel(plot_axis="x").values, curve.sel(plot_axis="y").values
        bx, lo, hi = _band_in_delta_space(t.lower, t.upper, THIN)
        below, above = y < np.interp(x, bx, lo) - 1e-12, y > np.interp(x, bx, hi) + 1e-12
        outside = bool(np.any(below | above))
        assert outside == (t.p_value <= 0.05), (i, t.p_value)
        hits += outside
    assert 0 < hits < 60  # both cases were seen


def test_plot_sbc_writes_the_figure(tmp_path):
    from bayes_va.viz.sbc import plot_sbc

    rng = np.random.default_rng(seed(90))
    s = summarise(_records(_correlated_ranks(rng, 40, scale=1 / 4)), QUANTITIES, THIN)
    files = plot_sbc(s, tmp_path / "sbc")
    assert [f.suffix for f in files] == [".png", ".svg"]
    assert all(f.stat().st_size > 10_000 for f in files)


def test_an_sbc_run_with_overrides_gets_its_own_folder(monkeypatch, tmp_path, capsys):
    import bayes_va.workflows.sbc

    ranks = _even_ranks(np.random.default_rng(seed(51)), 60)
    monkeypatch.setattr(bayes_va.workflows.sbc, "run_sbc", _fake_run_sbc(ranks))
    common = ["sbc", "models/base.toml", "-N", "60", "--results-root", str(tmp_path)]
    assert _cli([*common, "--no-progress"]) == SBCExit.NO_EVIDENCE
    assert (tmp_path / "sbc" / "base" / "sbc_summary.json").exists()
    assert _cli([*common, "--no-progress", "--set", "sampler.draws=500"]) == SBCExit.NO_EVIDENCE
    (other,) = [p for p in (tmp_path / "sbc").iterdir() if p.name != "base"]
    assert other.name.startswith("base+") and len(other.name) == len("base+") + 8
    assert (other / "sbc_summary.json").exists()

