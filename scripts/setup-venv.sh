#!/usr/bin/env bash
# Create or refresh the project's virtual environment from requirements.lock (exact versions,
# hash-checked; see README, "Pinned installs"); fail loudly on the wrong interpreter.
# Usage: scripts/setup-venv.sh PYTHON VENV_DIR   (make venv / make VENV=.venv-fresh venv)
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
lock=requirements.lock
if [ ! -f "$lock" ]; then
  echo "error: $lock is missing; 'make lock' writes it (see README, \"Pinned installs\")." >&2
  exit 1
fi
start=$(date +%s)
[ -x "$venv/bin/python" ] || "$python_cmd" -m venv "$venv"
vpy="$venv/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Everything comes from the lock, hash-checked: first pip itself (the installer), then the whole
# lock (runtime + test/lint/dev extras + setuptools). Without --no-deps, pip also refuses a lock
# that misses a dependency of a locked package (no hash for it).
awk '/^pip==/{p=1} p{print; if ($0 !~ /\\$/) exit}' "$lock" > "$tmp/pip.txt"
"$vpy" -m pip install --quiet --require-hashes --no-deps -r "$tmp/pip.txt"
"$vpy" -m pip install --quiet --require-hashes -r "$lock"
# The project itself, editable, built offline by the locked setuptools: nothing unhashed is fetched.
"$vpy" -m pip install --quiet --no-index --no-deps --no-build-isolation -e .

# A dependency added to pyproject.toml but not yet locked would be silently missing: stop here.
"$vpy" -m pip check >/dev/null || { "$vpy" -m pip check >&2; exit 1; }
"$vpy" -I - <<'PY'  # -I: not a stale ./bayes_va.egg-info from an old install
import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement

todo, seen, bad = ["dev"], set(), []
while todo:  # the project's own dependencies and its dev extra (which includes test and lint)
    extra = todo.pop()
    seen.add(extra)
    for line in requires("bayes_va") or []:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        if req.name.replace("_", "-").lower() == "bayes-va":
            todo += [e for e in req.extras if e not in seen]
            continue
        try:
            if not req.specifier.contains(version(req.name), prereleases=True):
                bad.append(f"{req} (locked {version(req.name)})")
        except PackageNotFoundError:
            bad.append(f"{req} (not in the lock)")
if bad:
    sys.exit("error: requirements.lock does not satisfy pyproject.toml; run 'make lock':\n  "
             + "\n  ".join(sorted(set(bad))))
PY
# Headless Chromium for the browser test of the risk page (tests/test_risk_page.py). Optional:
# without it those tests are skipped with this reason, so setup never fails here.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless browser for tests/test_risk_page.py)" >&2
    { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } \
      >/dev/null 2>&1 \
      || echo "warning: 'apt-get install chromium' failed; the risk page's browser tests will be skipped" >&2
  else
    echo "note: chromium not found and not installable here (needs root and apt-get); the risk" >&2
    echo "      page's browser tests will be skipped. Install it with: apt-get install -y chromium" >&2
  fi
fi
if ! command -v pdftoppm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing poppler-utils (pdftoppm/pdftotext for the paper's layout check)" >&2
    { apt-get install -y -qq poppler-utils || { apt-get update -qq && apt-get install -y -qq poppler-utils; }; } \
      >/dev/null 2>&1 \
      || echo "warning: 'apt-get install poppler-utils' failed; the paper's layout check will be skipped" >&2
  else
    echo "note: pdftoppm not found and not installable here (needs root and apt-get); the paper's" >&2
    echo "      layout check will be skipped. Install it with: apt-get install -y poppler-utils" >&2
  fi
fi
echo "environment ready in $(( $(date +%s) - start )) s ($("$vpy" -V), $lock $(sha256sum "$lock" | cut -c1-16))"
