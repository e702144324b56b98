"""``bayes-va sbc``: simulation-based calibration of a model config, on dask.

Argument handling only; the work is :func:`bayes_va.sbc.run_sbc`. Wire it into
:func:`bayes_va.cli.build_parser` with ``add_sbc_parser(sub)``. Exit codes: 0 every quantity
calibrated and every replication done, 1 a quantity miscalibrated or replications left to do
(``--resume`` completes them), 2 bad input (config, run folder, scheduler address).

Examples
--------
::

    bayes-va sbc models/base.toml --replications 500                 # local cluster, all cores
    bayes-va sbc models/base.toml --replications 500 --resume        # after an interruption
    bayes-va sbc models/base.toml --replications 200 --k 1000 --workers 2
    bayes-va sbc models/base.toml --replications 2000 --scheduler tcp://10.0.0.5:8786
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_MISCALIBRATED, EXIT_INPUT = 0, 1, 2


def run_sbc_command(args: argparse.Namespace) -> int:
    """Run the ``sbc`` subcommand (``args`` from :func:`add_sbc_parser`'s parser)."""
    from .config import load_config
    from .executor import ClusterSpec
    from .sbc import run_sbc

    cfg = load_config(args.config, args.set)
    suffix = f"_k{args.k}" if args.k else ""
    out = Path(args.out) if args.out else Path(args.results_root) / "sbc" / f"{cfg.name}{suffix}"
    cluster = ClusterSpec(scheduler=args.scheduler, n_workers=args.workers)
    print(f"SBC of {cfg.name}: {args.replications} replications on {cluster.describe()}")
    result = run_sbc(
        cfg,
        args.replications,
        out,
        k=args.k,
        thin=args.thin,
        seed=args.seed,
        cluster=cluster,
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(result.text())
    print(f"  ranks, coverage table, verdicts and figure in {out}/")
    if not result.report.complete:
        return EXIT_MISCALIBRATED
    return EXIT_OK if result.summary.calibrated else EXIT_MISCALIBRATED


def add_sbc_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sbc`` subcommand to an ``argparse`` subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "sbc",
        help="simulation-based calibration of a model config (runs on dask)",
        description=(
            "Draw parameters from the config's priors, simulate counts with its studies' sizes, "
            "fit, and check that the ranks of the true values among the posterior draws are "
            "uniform. Writes one record per replication as it finishes (resumable), then rank "
            "histograms, ECDF plots with simultaneous bands, a coverage table and verdicts."
        ),
    )
    p.add_argument("config", help="TOML config, e.g. models/base.toml")
    p.add_argument("--replications", "-N", type=int, required=True, metavar="N")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler to use (tcp://host:8786); default: start a local cluster",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: one per core)",
    )
    p.add_argument(
        "--resume", action="store_true", help="complete the run in --out (only missing tasks)"
    )
    p.add_argument("--out", help="run folder (default: RESULTS_ROOT/sbc/<config name>[_k<K>])")
    p.add_argument("--results-root", default="results")
    p.add_argument(
        "--k",
        type=int,
        metavar="K",
        help="studies per simulated dataset, sizes drawn from the config's (default: its own)",
    )
    p.add_argument("--thin", type=int, default=99, help="ranks among this many draws (99)")
    p.add_argument("--seed", type=int, help="base seed (default: the config's sampler.seed)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set sampler.draws=500",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sbc_command)
    return p
