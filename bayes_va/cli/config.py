"""``bayes-va config schema [model|risk|paper] [-o FILE]``: the JSON Schema of the config files.

Editors that read JSON Schema (Taplo, and Even Better TOML in VS Code, which uses it) then
complete and check the keys of a TOML file that starts with ``#:schema ./FILE`` (docs/config.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bayes_va.cli.common import ExitCode


def run_config_schema(args: argparse.Namespace) -> int:
    """Print or write the schema (or, with ``--markdown``, the key reference)."""
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.config.schema import json_schema, markdown_reference
    from bayes_va.core import atomic

    if args.markdown:
        text = markdown_reference(args.kind)
    else:
        text = json.dumps(json_schema(args.kind), indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        atomic.write_text(Path(args.out), text)
        print(f"wrote {args.out}", file=sys.stderr)
    return ExitCode.OK


def add_config_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``config`` command (subcommand ``schema``) to ``sub``."""
    p = sub.add_parser("config", help="config tools: the JSON Schema of the TOML files")
    csub = p.add_subparsers(dest="config_command", required=True)
    schema = csub.add_parser(
        "schema",
        help="print the JSON Schema of a kind of config file, for editors (docs/config.md)",
    )
    schema.add_argument(
        "kind",
        nargs="?",
        default="model",
        choices=("model", "risk", "paper"),
        help="models/**/*.toml (default), the risk config or paper/analyses.toml",
    )
    schema.add_argument("-o", "--out", help="write to this file instead of stdout")
    schema.add_argument(
        "--markdown", action="store_true", help="print the reference of every key instead"
    )
    schema.set_defaults(func=run_config_schema)
    return p
