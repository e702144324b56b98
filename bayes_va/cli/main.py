"""Command line: ``bayes-va data check|show``, ``bayes-va fit``, ``bayes-va paper``.

The CLI only parses arguments and calls the public API. Exit codes (all commands):
:class:`bayes_va.cli.common.ExitCode`: 0 success, 1 a fit ran but failed its diagnostic
thresholds, 2 bad input (data, config or arguments: a
:class:`~bayes_va.core.errors.BayesVAError`); any other exception is a bug and propagates with
its traceback (Python's exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bayes_va.cli.common import ExitCode, add_set_option, run_command
from bayes_va.config.model import parse_override
from bayes_va.core.errors import DataValidationError


def _cmd_data_check(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.data.tables import check_data, read_table, read_user_table

    if args.table:
        try:
            read_table(args.path, args.table)
        except DataValidationError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        print(f"OK: {args.path} is a valid '{args.table}' table")
        return ExitCode.OK
    if args.column:
        if args.path is None:
            print("error: --column needs the CSV file to check", file=sys.stderr)
            return ExitCode.BAD_INPUT
        columns = {}
        for item in args.column:
            role, sep, name = item.partition("=")
            if not sep or role not in ("study", "events", "n") or not name:
                print(f"error: --column {item!r}: use study=, events= or n=NAME", file=sys.stderr)
                return ExitCode.BAD_INPUT
            columns[role] = name
        try:
            frame = read_user_table(args.path, columns)
        except DataValidationError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        print(f"OK: {args.path}: {len(frame)} studies")
        return ExitCode.OK
    checked, problems = check_data(args.path)
    for f in checked:
        print(f"checked {f}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(f"OK: {len(checked)} table(s) valid")
    return ExitCode.OK


def _cmd_data_show(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    import pandas as pd

    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.data.tables import load_table

    frame = load_table(args.table, args.data_dir)
    if args.table == "revision" and not args.all_columns:
        frame = frame[
            [
                "study_id",
                "review_ref",
                "procedure",
                "n",
                "rate_text",
                "events",
                "outcome",
                "followup_text",
                "database",
                "rob_selection",
                "rob_reporting",
            ]
        ]
    with pd.option_context(
        "display.max_rows",
        None,
        "display.max_columns",
        None,
        "display.width",
        200,
        "display.max_colwidth",
        60,
    ):
        print(frame.to_string(index=False))
    if args.table == "revision":
        print(
            f"\nk = {len(frame)} studies, {int(frame['n'].sum())} patients, "
            f"{int(frame['events'].sum())} events"
        )
    return ExitCode.OK


def _cmd_fit(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.config.model import load_config
    from bayes_va.fitting.provenance import overrides_suffix
    from bayes_va.fitting.run import fit, with_table

    cfg = load_config(args.config, args.set)
    data = Path(args.data).resolve() if args.data else None
    if data is not None:
        cfg = with_table(cfg, data)
    if args.out:
        out = Path(args.out)
    else:
        # overrides (or --data) make another config: its own folder, never the plain config's
        folder = cfg.name + (overrides_suffix(cfg) if args.set or data else "")
        out = Path(args.results_root) / folder
    # fit applies the overrides to the path's config and records them, as given, in provenance
    result = fit(args.config, overrides=args.set, data=data, out_dir=out)
    print(result.text())
    if not args.no_report:
        # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
        from bayes_va.workflows.report import write_report

        write_report(result, out)
    print(f"  results in {out}/" + ("" if args.no_report else " (report.md with figures)"))
    if not result.ok:
        print("FAILED diagnostics: " + "; ".join(result.diagnostics.failures), file=sys.stderr)
        return ExitCode.FAILED_CHECKS
    return ExitCode.OK


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.workflows.sensitivity import run_sensitivity, to_markdown, write_outputs

    overrides = dict(parse_override(o) for o in args.set)
    map_fn = None
    if args.scheduler or args.workers:
        # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
        from bayes_va.workflows.executor import ClusterSpec, dask_map

        map_fn = dask_map(ClusterSpec(scheduler=args.scheduler, n_workers=args.workers))
    table = run_sensitivity(
        args.configs,
        args.base,
        leave_one_out=not args.no_loo,
        overrides=overrides,
        map_fn=map_fn,
    )
    out = write_outputs(table, args.out)
    print(to_markdown(table))
    failed = int((~table["diagnostics_ok"]).sum())
    print(
        f"{len(table)} scenarios in {table.attrs['wall_seconds']:.1f} s; "
        f"{failed} failed diagnostics (marked); table and figure in {out}/"
    )
    return ExitCode.OK


def _cmd_paper(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    import time

    from bayes_va.config.model import find_root
    from bayes_va.workflows.paper_plan import build_key, current_build, up_to_date_message

    t0 = time.perf_counter()
    root = find_root(Path.cwd().resolve())
    key = build_key(root)
    # before importing the sampler, ArviZ and matplotlib: an unchanged build answers at once
    if not args.clean and (code := current_build(root, key)) is not None:
        print(up_to_date_message(time.perf_counter() - t0), file=sys.stderr)
        return code
    # lazy: the analyses' layers only when something must be rebuilt
    from bayes_va.workflows.paper import build_paper

    workers = 1 if args.serial else args.workers
    return build_paper(clean=args.clean, root=root, workers=workers, inputs_key=key)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="bayes-va",
        description="Bayesian evidence synthesis for vertebral augmentation outcomes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.data.schemas import TABLES

    data = sub.add_parser("data", help="check or show the evidence tables")
    dsub = data.add_subparsers(dest="data_command", required=True)
    check = dsub.add_parser(
        "check",
        help="validate the shipped data, a folder or one CSV file (a shipped table, or your "
        "own: columns study,events,n plus moderators, or a <name>.schema.json beside it)",
    )
    check.add_argument("path", nargs="?", default=None, help="folder or CSV (default: data/)")
    check.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help="column map of your CSV, e.g. --column study=author_year (repeatable)",
    )
    check.add_argument(
        "--table",
        choices=list(TABLES),
        help="schema to check a CSV against (default: from file name)",
    )
    check.set_defaults(func=_cmd_data_check)
    show = dsub.add_parser("show", help="print a table")
    show.add_argument("table", choices=list(TABLES))
    show.add_argument("--data-dir", default=None)
    show.add_argument("--all-columns", action="store_true")
    show.set_defaults(func=_cmd_data_show)

    f = sub.add_parser("fit", help="fit a model config and write results/<name>/")
    f.add_argument("config", help="TOML config, e.g. models/base.toml")
    add_set_option(
        f,
        "override a config key, e.g. --set priors.tau.sigma=0.5 (repeatable; the results go to "
        "RESULTS_ROOT/<config name>+<8 hex digits of the resolved config's hash>/)",
    )
    f.add_argument(
        "--out",
        help="results folder (default: RESULTS_ROOT/<config name>, or with --set "
        "RESULTS_ROOT/<config name>+<hash>)",
    )
    f.add_argument(
        "--data",
        metavar="FILE.csv",
        help="fit the config to this CSV instead of its table (columns study,events,n or the "
        "config's [data.columns], plus moderator columns); the config's variants, keep and "
        "exclude are dropped",
    )
    f.add_argument("--results-root", default="results")
    f.add_argument(
        "--no-report",
        action="store_true",
        help="skip report.md and its figures (saves a few seconds)",
    )
    f.set_defaults(func=_cmd_fit)

    s = sub.add_parser("sensitivity", help="fit scenario configs and tabulate them")
    s.add_argument("configs", nargs="+", help="scenario configs, e.g. models/sensitivity/*.toml")
    s.add_argument("--base", default="models/base.toml")
    s.add_argument("--no-loo", action="store_true", help="skip leave-one-study-out refits")
    s.add_argument("--out", default="results/sensitivity")
    add_set_option(s, "override applied to every scenario, e.g. --set sampler.draws=500")
    s.add_argument("--scheduler", help="dask scheduler address (default: run in this process)")
    s.add_argument("--workers", type=int, help="fit on a local dask cluster of this many workers")
    s.set_defaults(func=_cmd_sensitivity)

    p = sub.add_parser("paper", help="run the paper's analyses and build paper/build/paper.pdf")
    p.add_argument("--clean", action="store_true", help="ignore cached analyses")
    p.add_argument("--workers", type=int, help="dask workers for the fits (default: one per core)")
    p.add_argument("--serial", action="store_true", help="fit one after another in this process")
    p.set_defaults(func=_cmd_paper)

    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.cli.config import add_config_parser
    from bayes_va.cli.report import add_report_parsers
    from bayes_va.cli.risk import add_risk_parser
    from bayes_va.cli.sbc import add_sbc_parser

    add_config_parser(sub)
    add_report_parsers(sub)
    add_risk_parser(sub)
    add_sbc_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayes-va`` console script; returns its :class:`ExitCode`.

    Bad input (a :class:`~bayes_va.core.errors.BayesVAError`) prints one line and returns
    ``BAD_INPUT``; any other exception is a bug and propagates with its traceback.
    """
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
