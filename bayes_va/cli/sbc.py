"""``bayes-va sbc``: simulation-based calibration of a model config, on dask.

Argument handling only; the work is :func:`bayes_va.workflows.sbc.run_sbc`. Wire it into
:func:`bayes_va.cli.main.build_parser` with ``add_sbc_parser(sub)``. Exit codes: :class:`SBCExit`
(the one place they are defined; docs/sbc.md explains them).

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
import enum
from pathlib import Path
from typing import Any


class SBCExit(enum.IntEnum):
    """Exit codes of ``bayes-va sbc``.

    Only a family-wise controlled verdict fails the command as miscalibrated: a quantity whose
    Holm-adjusted ECDF p-value is at most :data:`bayes_va.checking.sbc_stats.FAMILY_ALPHA` (0.01).

    * ``NO_EVIDENCE`` (0): every replication done and no quantity miscalibrated at the
      family-wise level. Not a proof of calibration: the output says what the run's N could
      detect with 80 % power.
    * ``INTERNAL_ERROR`` (1): an unexpected error: an uncaught exception, which Python reports
      with a traceback and exit status 1 (the command never returns 1 itself).
    * ``BAD_INPUT`` (2): bad config, run folder, arguments or scheduler address
      (:class:`~bayes_va.core.errors.BayesVAError`, as every ``bayes-va`` command: ``cli.EXIT_INPUT``).
    * ``MISCALIBRATED`` (3): at least one quantity miscalibrated at the family-wise level.
    * ``INCOMPLETE`` (4): replications were lost (e.g. killed workers): the verdict printed is
      provisional; ``--resume`` completes the run. Takes precedence over 3.
    """

    NO_EVIDENCE = 0
    INTERNAL_ERROR = 1
    BAD_INPUT = 2
    MISCALIBRATED = 3
    INCOMPLETE = 4


#: Old names (kept for callers): ``EXIT_MISCALIBRATED`` was 1 before family-wise verdicts.
EXIT_OK, EXIT_MISCALIBRATED, EXIT_INPUT = (
    SBCExit.NO_EVIDENCE,
    SBCExit.MISCALIBRATED,
    SBCExit.BAD_INPUT,
)
EXIT_INCOMPLETE = SBCExit.INCOMPLETE


def exit_code(result: Any) -> SBCExit:
    """The exit code of a finished :class:`~bayes_va.workflows.sbc.SBCResult` (see :class:`SBCExit`)."""
    if not result.report.complete:
        return SBCExit.INCOMPLETE
    return SBCExit.MISCALIBRATED if result.summary.miscalibrated else SBCExit.NO_EVIDENCE


def run_sbc_command(args: argparse.Namespace) -> int:
    """Run the ``sbc`` subcommand (``args`` from :func:`add_sbc_parser`'s parser)."""
    from bayes_va.config.model import load_config
    from bayes_va.workflows.executor import ClusterSpec
    from bayes_va.workflows.sbc import run_sbc

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
    print(f"  ranks, coverage table, verdicts (sbc_report.md) and figure in {out}/")
    code = exit_code(result)
    if code is SBCExit.INCOMPLETE:
        print(f"  exit {int(code)}: run incomplete, the verdict is provisional (--resume)")
    elif code is SBCExit.MISCALIBRATED:
        print(f"  exit {int(code)}: miscalibrated at the family-wise level")
    return int(code)


def add_sbc_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sbc`` subcommand to an ``argparse`` subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "sbc",
        help="simulation-based calibration of a model config (runs on dask)",
        description=(
            "Draw parameters from the config's priors, simulate counts with its studies' sizes, "
            "fit, and check that the ranks of the true values among the posterior draws are "
            "uniform. Writes one record per replication as it finishes (resumable), then rank "
            "histograms, ECDF plots with simultaneous bands, a coverage table and verdicts. "
            "A quantity is miscalibrated when its Holm-adjusted ECDF p-value is <= 0.01 "
            "(family-wise over the quantities); the output also says how large a miscalibration "
            "N replications would detect with 80 % power."
        ),
        epilog=(
            "exit codes: 0 no evidence of miscalibration (family-wise alpha 0.01), "
            "1 internal error, 2 bad input, 3 miscalibrated, 4 incomplete run (--resume)"
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
