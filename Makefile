# Two commands do everything on a fresh machine (see README):
#   make paper   builds the paper (runs the analyses first)
#   make test    runs the test suite
# Both create or refresh the virtual environment in .venv themselves.

SHELL := /bin/bash
PYTHON_VERSION := $(shell cat .python-version)
# pyenv's python3.12 shim resolves through .python-version; PYTHON=... overrides it.
PYTHON ?= python3.12
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-slow paper fit lint clean bench bench-r

$(STAMP): pyproject.toml .python-version
	@bash scripts/setup-venv.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest -q -m "not slow" -n 2 --dist loadfile

test-slow: $(STAMP)
	$(VPY) -m pytest -q -m slow

paper: $(STAMP)
	$(VENV)/bin/bayes-va paper

fit: $(STAMP)
	$(VENV)/bin/bayes-va fit models/base.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VPY) bench/bench_fit.py
	$(VPY) bench/bench_risk.py

# R anchors (metafor, brms): installs R from Debian's packages first; not part of CI
bench-r: $(STAMP)
	$(VPY) bench/bench_r.py --setup

clean:
	rm -rf results paper/build
