"""``bayes-va sbc``: simulation-based calibration of a model config, on dask.

Argument handling only; the work is :func:`bayes_va.workflows.sbc.run_sbc`. Wire it into
:func:`bayes_va.cli.main.build_parser` with ``add_sbc_parser(sub)``. Exit codes:
:class:`bayes_va.cli.common.ExitCode` (the one place they are defined; docs/sbc.md explains
them).

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

from bayes_va.cli.common import ExitCode, add_set_option

#: The exit codes of ``bayes-va sbc`` are those of every command (old name, kept for callers):
#: 0 no evidence of miscalibration, 1 internal error (a traceback), 2 bad input,
#: 3 miscalibrated, 4 incomplete. Only a family-wise controlled verdict fails the command as
#: miscalibrated: a quantity whose Holm-adjusted ECDF p-value is at most
#: :data:`bayes_va.checking.sbc_stats.FAMILY_ALPHA` (0.01).
SBCExit = ExitCode


def exit_code(result: Any) -> ExitCode:
    """Return the exit code of a finished :class:`~bayes_va.workflows.sbc.SBCResult`.

    ``INCOMPLETE`` when replications were lost, else ``MISCALIBRATED`` or ``NO_EVIDENCE``
    (see :class:`~bayes_va.cli.common.ExitCode`).
    """
    if not result.report.complete:
        return ExitCode.INCOMPLETE
    return ExitCode.MISCALIBRATED if result.summary.miscalibrated else ExitCode.NO_EVIDENCE


def run_sbc_command(args: argparse.Namespace) -> int:
    """Run the ``sbc`` subcommand (``args`` from :func:`add_sbc_parser`'s parser)."""
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.config.model import load_config
    from bayes_va.fitting.provenance import overrides_suffix
    from bayes_va.workflows.executor import ClusterSpec
    from bayes_va.workflows.sbc import run_sbc

    cfg = load_config(args.config, args.set)
    suffix = f"_k{args.k}" if args.k else ""
    if args.set:  # a run with overrides never replaces another config's run folder
        suffix += overrides_suffix(cfg)
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
    if code is ExitCode.INCOMPLETE:
        print(f"  exit {int(code)}: run incomplete, the verdict is provisional (--resume)")
    elif code is ExitCode.MISCALIBRATED:
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
    p.add_argument(
        "--out",
        help="run folder (default: RESULTS_ROOT/sbc/<config name>[_k<K>][+<hash> with --set])",
    )
    p.add_argument("--results-root", default="results")
    p.add_argument(
        "--k",
        type=int,
        metavar="K",
        help="studies per simulated dataset, sizes drawn from the config's (default: its own)",
    )
    p.add_argument("--thin", type=int, default=99, help="ranks among this many draws (99)")
    p.add_argument("--seed", type=int, help="base seed (default: the config's sampler.seed)")
    add_set_option(p, "override a config key, e.g. --set sampler.draws=500")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sbc_command)
    return p
