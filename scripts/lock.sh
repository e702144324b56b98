#!/usr/bin/env bash
# Regenerate requirements.lock: exact versions and SHA-256 hashes of the runtime dependencies,
# the test/lint/dev extras and the bootstrap group (pip, setuptools) of pyproject.toml.
# Usage: scripts/lock.sh PYTHON VENV [extra `uv pip compile` options, e.g. --upgrade, -P numpy]
# (`make lock`, `make lock-upgrade`, `make lock ARGS="-P pymc"`)
#
# Tool: uv's `pip compile`, because
#  - `--universal` gives one marker-aware lock for every platform and every Python >= 3.12 at no
#    extra cost (pip-tools' pip-compile resolves for the interpreter and platform it runs on);
#  - it writes a plain requirements file with hashes, so installing needs nothing but pip
#    (`pip install --require-hashes -r requirements.lock`); uv's own uv.lock is not pip-readable;
#  - it reads PEP 735 dependency groups (the bootstrap group) and recursive extras, and pins
#    pip and setuptools without pip-compile's --allow-unsafe;
#  - it resolves from PyPI's metadata in seconds, without building sdists, on a 2-core machine.
# Without --upgrade/-P, the versions already in requirements.lock are kept where pyproject.toml
# allows them, so a lock refresh after adding a dependency moves nothing else.
set -euo pipefail
python_cmd=${1:-python3.12}
venv=${2:-.venv}
shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "$0")/.."
lock=requirements.lock

# The uv pinned in the lock (the dev extra), so every refresh is written by the same version.
uv_pin=$(sed -n 's/^uv==\([^ ;\\]*\).*/\1/p' "$lock" 2>/dev/null || true)
if [ -n "$uv_pin" ] && [ -x "$venv/bin/uv" ] && [ "$("$venv/bin/uv" --version | cut -d' ' -f2)" = "$uv_pin" ]; then
  uv="$venv/bin/uv"
else
  # No venv yet, or a stale one: install the pinned uv (hash-checked) into a throwaway venv.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$python_cmd" -m venv "$tmp/venv"
  if [ -n "$uv_pin" ]; then
    awk '/^uv==/{p=1} p{print; if ($0 !~ /\\$/) exit}' "$lock" > "$tmp/uv.txt"
    "$tmp/venv/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$tmp/uv.txt"
  else
    "$tmp/venv/bin/python" -m pip install --quiet "uv>=0.13"
  fi
  uv="$tmp/venv/bin/uv"
fi

# --no-config: ignore a developer's uv.toml files; the index is PyPI.
"$uv" --no-config pip compile pyproject.toml --extra dev --group bootstrap \
  --universal --python-version 3.12 --generate-hashes \
  --custom-compile-command "make lock" --quiet -o "$lock" "$@"
echo "wrote $lock ($("$uv" --version)); sha256 $(sha256sum "$lock" | cut -d' ' -f1)"
