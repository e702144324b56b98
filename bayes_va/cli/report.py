"""``bayes-va report RESULTS_DIR`` and ``bayes-va compare DIR DIR ... [--out DIR]``.

Wired into :mod:`bayes_va.cli.main` by ``add_report_parsers(sub)``. Like the rest of the CLI these
commands only parse arguments and call the public API. Exit codes
(:class:`bayes_va.cli.common.ExitCode`): 0 success, 1 the run is not trustworthy (report) or the
comparison is not reliable (compare), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from bayes_va.cli.common import ExitCode
from bayes_va.viz import FIGURE_FORMATS

__all__ = ["add_report_parsers"]


def _load(path: str) -> Any:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.fitting.results import load_result

    return load_result(path)


def _cmd_report(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.workflows.report import trust_verdict, write_report

    result = _load(args.results_dir)  # not a results folder: ResultsFolderError, exit 2
    report = write_report(result, args.results_dir, formats=args.formats)
    trusted, reasons = trust_verdict(result)
    print(f"{result.config.name}: report in {report}")
    if not trusted:
        print("NOT TRUSTWORTHY: " + "; ".join(reasons), file=sys.stderr)
        return ExitCode.FAILED_CHECKS
    print("the run can be trusted")
    return ExitCode.OK


def _cmd_compare(args: argparse.Namespace) -> int:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.checking.compare import compare_models
    from bayes_va.checking.loo import LooReliabilityWarning
    from bayes_va.workflows.report import write_comparison

    names = args.names or [Path(d).name for d in args.results_dirs]
    if len(names) != len(args.results_dirs):
        print("error: --names needs one name per results folder", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if len(set(names)) != len(names):
        print(f"error: model names must be unique, got {names}; use --names", file=sys.stderr)
        return ExitCode.BAD_INPUT
    models = {name: _load(d) for name, d in zip(names, args.results_dirs, strict=True)}
    # a ComparisonError (different data, too few models) is bad input: main() gives exit 2;
    # any other exception is a bug and keeps its traceback
    with warnings.catch_warnings():
        # stated below in words (and in compare.md); not a Python warning on the terminal
        warnings.simplefilter("ignore", LooReliabilityWarning)
        cmp = compare_models(models, method=args.method, replace_bad=args.replace_bad_k)
    out = write_comparison(cmp, args.out)
    cols = ["rank", "elpd", "se", "elpd_diff", "dse", "weight", "max_pareto_k", "loo_reliable"]
    print(cmp.table[cols].to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"comparison in {out}")
    for caveat in cmp.caveats():
        print(f"  ! {caveat}", file=sys.stderr if not cmp.reliable else sys.stdout)
    if not cmp.reliable:
        print("NOT RELIABLE: at least one model has bad Pareto k (see above)", file=sys.stderr)
        return ExitCode.FAILED_CHECKS
    return ExitCode.OK


def add_report_parsers(subparsers: Any) -> None:
    """Add the ``report`` and ``compare`` subcommands to ``bayes-va``'s subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The object returned by ``parser.add_subparsers(...)``; each command sets ``func``.
    """
    r = subparsers.add_parser(
        "report",
        help="write report.md (diagnostics, PPC, LOO, prior sensitivity) into a results folder",
    )
    r.add_argument("results_dir", metavar="RESULTS_DIR", help="e.g. results/base")
    r.add_argument(
        "--formats",
        nargs="+",
        default=list(FIGURE_FORMATS),
        choices=["png", "svg", "pdf"],
        help="figure formats (PNG is always written)",
    )
    r.set_defaults(func=_cmd_report)

    c = subparsers.add_parser(
        "compare", help="compare fits by marginal PSIS-LOO (az.compare table + figure)"
    )
    c.add_argument("results_dirs", nargs="+", metavar="DIR", help="two or more results folders")
    c.add_argument("--out", default="results/comparison", help="output folder")
    c.add_argument("--names", nargs="+", help="model names (default: the folder names)")
    c.add_argument(
        "--method",
        default="stacking",
        choices=["stacking", "BB-pseudo-BMA", "pseudo-BMA"],
        help="model weights (az.compare)",
    )
    c.add_argument(
        "--replace-bad-k",
        action="store_true",
        help="replace PSIS values with bad Pareto k by exact leave-one-study-out values "
        "(quadrature for the logit-normal model, else one refit per such study)",
    )
    c.set_defaults(func=_cmd_compare)
