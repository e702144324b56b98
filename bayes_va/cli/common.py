"""What every ``bayes-va`` command shares: its exit codes and the ``--set`` option.

Exit codes are defined here only (README, "What a fit writes"; docs/sbc.md): a command returns
an :class:`ExitCode`, and :func:`bayes_va.cli.main.main` maps a
:class:`~bayes_va.core.errors.BayesVAError` (bad data, config or arguments) to
:attr:`ExitCode.BAD_INPUT` with a one-line message. Any other exception is a bug: it propagates
with its traceback and Python exits with status 1.
"""

from __future__ import annotations

import argparse
import enum
import sys

from bayes_va.core.errors import BayesVAError

__all__ = ["ExitCode", "add_set_option"]


class ExitCode(enum.IntEnum):
    """Exit status of a ``bayes-va`` command.

    * ``OK`` (0): success. For ``sbc`` (alias ``NO_EVIDENCE``): every replication done and no
      quantity miscalibrated at the family-wise level, which is not a proof of calibration.
    * ``FAILED_CHECKS`` (1): the command ran but its result must not be trusted: a fit missed a
      diagnostic threshold (``fit``), the run is not trustworthy (``report``) or the comparison
      is not reliable (``compare``). Also Python's own status for an uncaught exception, which
      comes with a traceback (alias ``INTERNAL_ERROR``; ``sbc`` never returns 1 itself).
    * ``BAD_INPUT`` (2): bad data, config, arguments, results folder or scheduler address.
    * ``MISCALIBRATED`` (3): ``sbc`` only: at least one quantity miscalibrated at the
      family-wise level.
    * ``INCOMPLETE`` (4): ``sbc`` only: replications were lost; the verdict printed is
      provisional and ``--resume`` completes the run. Takes precedence over 3.
    """

    OK = 0
    FAILED_CHECKS = 1
    BAD_INPUT = 2
    MISCALIBRATED = 3
    INCOMPLETE = 4
    # aliases (same values) under the names ``sbc`` uses
    NO_EVIDENCE = 0
    INTERNAL_ERROR = 1


def add_set_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Add the repeatable ``--set KEY=VALUE`` config override to ``parser``.

    The values stay text here (``args.set`` is a list of strings); the config layer parses
    them (:func:`bayes_va.config.model.parse_override`).
    """
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed subcommand; bad input prints one line and gives ``BAD_INPUT``.

    Only a :class:`~bayes_va.core.errors.BayesVAError` (bad data, config, arguments) is bad
    input; any other exception is a bug and propagates with its traceback (exit 1).
    """
    try:
        return int(args.func(args))
    except BayesVAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
