# Two commands do everything on a fresh machine (see README):
#   make paper   builds the paper (runs the analyses first)
#   make test    runs the test suite
# Both create or refresh the virtual environment in .venv themselves, installing the exact,
# hash-checked versions in requirements.lock (see README, "Pinned installs").
#   make lock          updates requirements.lock after a change to pyproject.toml's dependencies
#   make lock-upgrade  moves every package to the newest versions pyproject.toml allows

SHELL := /bin/bash
PYTHON_VERSION := $(shell cat .python-version)
# pyenv's python3.12 shim resolves through .python-version; PYTHON=... overrides it.
PYTHON ?= python3.12
# VENV=.venv-fresh builds a separate environment (e.g. to try a fresh install).
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: venv test test-slow paper fit lint lock lock-upgrade clean bench bench-r

# A change to the lock (or to pyproject.toml, the Python pin or the setup script) reinstalls.
$(STAMP): $(LOCK) pyproject.toml .python-version scripts/setup-venv.sh
	@bash scripts/setup-venv.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

venv: $(STAMP)

# Not through $(STAMP): the venv may be the thing that is out of date. ARGS="-P pymc" upgrades
# one package; the next make test/paper installs the new lock.
lock:
	@bash scripts/lock.sh "$(PYTHON)" "$(VENV)" $(ARGS)

lock-upgrade:
	@bash scripts/lock.sh "$(PYTHON)" "$(VENV)" --upgrade $(ARGS)

test: $(STAMP)
	$(VPY) -m pytest -q -m "not slow" -n 2 --dist loadfile

test-slow: $(STAMP)
	$(VPY) -m pytest -q -m slow

paper: $(STAMP)
	$(VENV)/bin/bayes-va paper

fit: $(STAMP)
	$(VENV)/bin/bayes-va fit models/base.toml

# ruff (style, numpydoc docstrings), import-linter (the layers in pyproject.toml), mypy (types)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy bayes_va

bench: $(STAMP)
	$(VPY) bench/bench_fit.py
	$(VPY) bench/bench_risk.py

# R anchors (metafor, brms): installs R from Debian's packages first; not part of CI
bench-r: $(STAMP)
	$(VPY) bench/bench_r.py --setup

clean:
	rm -rf results paper/build
