"""Simulation-based calibration on a real two-process LocalCluster (small N, short chains).

What is checked: a correct model gives ranks consistent with uniform; a deliberately wrong one
(truth drawn from a wider τ prior than the one fitted) is detected; replications are the same
with one worker and with two; ``--resume`` redoes exactly the missing replications; failed
diagnostics are counted and kept. The long run (N >= 500, full chains) is ``bench/bench_sbc.py``.

All seeds are fixed, so each verdict below is deterministic; the thresholds say how unlikely a
spurious result would be with fresh seeds.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from bayes_va.config import Prior, PriorsConfig, load_config
from bayes_va.executor import ClusterSpec, ExecutorError, TaskStore, dask_client
from bayes_va.sbc import SBCSpec, ecdf_test, run_sbc, simulate
from bayes_va.sbc_cli import add_sbc_parser

pytestmark = pytest.mark.sampling

#: Short chains keep a replication at ~0.3 s; the ESS thresholds are lowered to match, so that
#: some fits pass and some fail their diagnostics (both kinds must be counted, none dropped).
QUICK = {
    "sampler.draws": 200,
    "sampler.tune": 200,
    "sampler.chains": 2,
    "diagnostics.min_ess_bulk": 100,
    "diagnostics.min_ess_tail": 100,
}
N_CORRECT = 30
N_WRONG = 30
#: A correct model passes if no quantity's ECDF test has p < 0.01 (five correlated tests:
#: a spurious failure has probability < ~5 % with fresh seeds; with these seeds it passes).
P_CORRECT = 0.01
#: The wrong model must be flagged far beyond chance.
P_WRONG = 0.001


@pytest.fixture(scope="module")
def cluster():
    with dask_client(ClusterSpec(n_workers=2)) as client:
        yield client


@pytest.fixture(scope="module")
def base_cfg():
    return load_config("models/base.toml", QUICK)


@pytest.fixture(scope="module")
def correct_run(cluster, base_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("sbc_correct")
    return run_sbc(base_cfg, N_CORRECT, out, client=cluster, progress=False)


def test_band_of_the_rank_ecdf_holds_its_simultaneous_level():
    rng = np.random.default_rng(0)
    thin, n = 99, 100
    outside = [
        ecdf_test(rng.integers(0, thin + 1, n), thin, n_simulations=1000, seed=1).p_value < 0.05
        for _ in range(200)
    ]
    # 5 % nominal; 200 uniform samples -> 10 expected, 99.9 % binomial range [2, 21]
    assert 2 <= sum(outside) <= 21
    skewed = np.minimum(rng.integers(0, thin + 1, n), rng.integers(0, thin + 1, n))
    assert ecdf_test(skewed, thin).p_value < 0.001


def test_simulation_uses_the_config_sizes_or_draws_k_of_them(base_cfg):
    sizes = (10, 100, 1000)
    same = SBCSpec(base_cfg, sizes)
    _, y, n = simulate(same, np.random.default_rng(1))
    assert n.tolist() == list(sizes) and np.all((0 <= y) & (y <= n))
    many = SBCSpec(base_cfg, sizes, k=500)
    _, y, n = simulate(many, np.random.default_rng(1))
    assert n.size == 500 and set(n.tolist()) == set(sizes)
    truth_a, y_a, _ = simulate(many, np.random.default_rng(2))
    truth_b, y_b, _ = simulate(many, np.random.default_rng(2))
    assert truth_a == truth_b and np.array_equal(y_a, y_b)


def test_a_correct_model_gives_ranks_consistent_with_uniform(correct_run):
    s = correct_run.summary
    assert len(s.ranks) == N_CORRECT and s.errors.empty
    assert (s.verdicts["ecdf_p"] >= P_CORRECT).all(), s.verdicts
    assert s.ranks.filter(like="rank_").to_numpy().max() <= s.thin
    assert set(s.coverage["level"]) == {0.5, 0.8, 0.95}
    # 15 coverage rates from 30 replications: each within 3.3 binomial SEs of its level
    # (two-sided 0.1 % each; the 95 % CIs in the table would flag ~1 of 15 by chance)
    se = np.sqrt(s.coverage["level"] * (1 - s.coverage["level"]) / s.coverage["n"])
    assert ((s.coverage["covered"] - s.coverage["level"]).abs() <= 3.3 * se).all(), s.coverage


def test_failed_diagnostics_are_counted_and_kept_not_dropped(correct_run):
    s = correct_run.summary
    assert 0 < s.n_failed_diagnostics < N_CORRECT  # both kinds occur with these short chains
    assert len(s.ranks) == N_CORRECT
    summary = json.loads((correct_run.out_dir / "sbc_summary.json").read_text())
    assert summary["failed_diagnostics"] == s.n_failed_diagnostics
    for name in ("sbc.png", "sbc.svg", "sbc_coverage.md", "sbc_coverage.csv", "sbc_ranks.csv"):
        assert (correct_run.out_dir / name).is_file(), name


def test_a_wrong_model_is_detected(cluster, base_cfg, tmp_path):
    wider = PriorsConfig(mu=base_cfg.priors.mu, tau=Prior("HalfNormal", {"sigma": 3.0}))
    result = run_sbc(
        base_cfg, N_WRONG, tmp_path, client=cluster, progress=False, simulate_priors=wider
    )
    tau = result.summary.verdicts.set_index("quantity").loc["tau"]
    assert tau["ecdf_p"] < P_WRONG
    assert tau["verdict"].startswith("MISCALIBRATED")
    assert "biased low" in tau["verdict"]  # the narrower fitted prior pulls tau down
    assert not result.summary.calibrated


def test_replications_are_identical_with_one_and_two_workers(correct_run, base_cfg, tmp_path):
    n = 4
    run_sbc(base_cfg, n, tmp_path, cluster=ClusterSpec(n_workers=1), progress=False, write=False)
    one, two = TaskStore(tmp_path), TaskStore(correct_run.out_dir)
    for i in range(n):
        a, b = one.read(i), two.read(i)
        assert a["seed"] == b["seed"]
        for key in ("truth", "rank", "covered", "data_hash", "fit_seed", "diagnostics"):
            assert a["result"][key] == b["result"][key], (i, key)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bayes-va")
    add_sbc_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_resume_completes_exactly_the_missing_replications(cluster, tmp_path, capsys):
    addr = cluster.scheduler.address
    out = tmp_path / "run"
    argv = [
        "sbc",
        "models/base.toml",
        "--replications",
        "6",
        "--out",
        str(out),
        "--scheduler",
        addr,
        "--no-progress",
    ]
    argv += [f"--set={k}={v}" for k, v in QUICK.items()]
    assert _cli(argv) in (0, 1)
    store = TaskStore(out)
    before = {i: store.read(i) for i in range(6)}
    for i in (1, 4):
        (store.tasks / f"{i:07d}.json").unlink()  # as if interrupted before these finished
    kept = {p.name: p.stat().st_mtime_ns for p in store.tasks.iterdir()}
    with pytest.raises(ExecutorError, match="--resume"):
        _cli(argv)
    capsys.readouterr()
    assert _cli([*argv, "--resume"]) in (0, 1)
    assert "6 replication(s) fitted" in capsys.readouterr().out
    assert store.done() == set(range(6))
    assert {
        n: t
        for n, t in ((p.name, p.stat().st_mtime_ns) for p in store.tasks.iterdir())
        if n in kept
    } == kept  # the finished ones were not redone
    after = {i: store.read(i) for i in range(6)}
    for i in range(6):
        assert after[i]["result"]["rank"] == before[i]["result"]["rank"]
