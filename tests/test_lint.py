"""`make lint` inside the test suite, so CI (which runs `make test`) enforces it too.

The layer contracts (import-linter, ``[tool.importlinter]`` in pyproject.toml), ruff (style and
numpydoc docstrings) and mypy (types) must all pass on the package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [["lint-imports"], ["ruff", "check", "."], ["mypy", "bayes_va"]],
    ids=["import-linter", "ruff", "mypy"],
)
def test_lint_passes(command: list[str]) -> None:
    exe = BIN / command[0]
    if not exe.exists():
        pytest.fail(f"{exe} is missing: install the lint extra (requirements.lock has it)")
    done = subprocess.run(
        [str(exe), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
