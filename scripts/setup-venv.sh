#!/usr/bin/env bash
# Create or refresh the project's virtual environment; fail loudly on the wrong interpreter.
# Usage: scripts/setup-venv.sh PYTHON VENV_DIR
set -euo pipefail
python_cmd=${1:-python3.12}
venv=${2:-.venv}
cd "$(dirname "$0")/.."

if ! command -v "$python_cmd" >/dev/null 2>&1; then
  echo "error: '$python_cmd' not found. bayes_va needs Python >= 3.12 (see .python-version;" >&2
  echo "       with pyenv: 'pyenv install $(cat .python-version)')." >&2
  exit 1
fi
if ! "$python_cmd" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
  echo "error: $python_cmd is Python $("$python_cmd" -c 'import platform; print(platform.python_version())');" >&2
  echo "       bayes_va needs Python >= 3.12 (pymc >= 6, arviz >= 1). On Python 3.11 pip would" >&2
  echo "       silently install pymc 5 / arviz 0.x, so setup stops here." >&2
  exit 1
fi
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
  echo "existing $venv uses an old Python; recreating it" >&2
  rm -rf "$venv"
fi
start=$(date +%s)
[ -x "$venv/bin/python" ] || "$python_cmd" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$venv/bin/python" -m pip install --quiet -e ".[test]"
echo "environment ready in $(( $(date +%s) - start )) s ($("$venv/bin/python" -V))"
