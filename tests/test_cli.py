"""The command line: one set of exit codes, one ``--set`` option, and bad input vs bugs.

Only a :class:`~bayes_va.core.errors.BayesVAError` (bad data, config or arguments) is bad input
(exit 2, one line); any other exception is a bug and must surface with its traceback. A fit run
with ``--set`` overrides writes its own folder and never replaces the plain config's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PROJECT_ROOT

import bayes_va.cli.main as cli_main
import bayes_va.cli.report as cli_report
import bayes_va.cli.risk as cli_risk
import bayes_va.cli.sbc as cli_sbc
import bayes_va.fitting.run as fitting_run
from bayes_va.cli.common import ExitCode
from bayes_va.cli.main import build_parser, main
from bayes_va.config.model import load_config
from bayes_va.fitting.provenance import overrides_suffix, provenance_record
from bayes_va.fitting.run import override_list

BASE = str(PROJECT_ROOT / "models" / "base.toml")


def test_exit_codes_are_defined_once():
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0),
        ("FAILED_CHECKS", 1),
        ("BAD_INPUT", 2),
        ("MISCALIBRATED", 3),
        ("INCOMPLETE", 4),
    ]
    assert ExitCode.NO_EVIDENCE is ExitCode.OK and ExitCode.INTERNAL_ERROR is ExitCode.FAILED_CHECKS
    for module in (cli_main, cli_report, cli_risk, cli_sbc):  # no module keeps its own numbers
        own = [n for n in vars(module) if n.startswith("EXIT_")]
        assert not own, (module.__name__, own)
    assert cli_sbc.SBCExit is ExitCode


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("command", ["fit", "sensitivity", "sbc"])
def test_every_command_with_overrides_takes_the_same_repeatable_set_option(command):
    parser = _subparser(build_parser(), command)
    (action,) = [a for a in parser._actions if "--set" in a.option_strings]
    assert isinstance(action, argparse._AppendAction)
    assert action.default == [] and action.metavar == "KEY=VALUE"


def test_an_internal_key_error_is_a_bug_with_a_traceback_not_bad_input():
    # before: any KeyError anywhere was reported as bad input (exit 2) and its traceback lost
    code = (
        "import bayes_va.data.tables as t\n"
        "def boom(*a, **k):\n"
        "    raise KeyError('internal_key')\n"
        "t.check_data = boom\n"
        "from bayes_va.cli.main import main\n"
        "raise SystemExit(main(['data', 'check']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback (most recent call last)" in run.stderr
    assert "KeyError: 'internal_key'" in run.stderr


def test_an_internal_key_error_propagates_from_main(monkeypatch):
    def boom(*args, **kwargs):
        raise KeyError("internal_key")

    monkeypatch.setattr("bayes_va.data.tables.check_data", boom)
    with pytest.raises(KeyError, match="internal_key"):
        main(["data", "check"])


def test_bad_input_is_one_line_and_exit_two(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.toml")]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing.toml" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_table_name_is_refused_by_the_parser(tmp_path, capsys):
    # the data layer raises KeyError for it: argparse must refuse it first, with exit 2
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", str(tmp_path / "x.csv"), "--table", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- overrides


def test_overrides_are_recorded_only_when_given():
    cfg = load_config(BASE, ["priors.tau.sigma=0.5"])
    data = SimpleNamespace(hash=lambda: "d" * 64, steps=(), study=("a",))
    plain = provenance_record(cfg, data)
    assert "overrides" not in plain  # a plain fit's provenance.json is unchanged
    assert provenance_record(cfg, data, overrides=[]) == plain
    rec = provenance_record(cfg, data, overrides=["priors.tau.sigma=0.5"])
    assert rec["overrides"] == ["priors.tau.sigma=0.5"]
    assert rec["config_hash"] == cfg.hash() != load_config(BASE).hash()
    assert {k: v for k, v in rec.items() if k != "overrides"} == plain


def test_override_lists_keep_strings_and_write_dict_values_as_toml():
    assert override_list(None) == [] and override_list({}) == []
    assert override_list(["sampler.seed=7", "a.b = x"]) == ["sampler.seed=7", "a.b = x"]
    written = override_list({"sampler.seed": 7, "data.exclude": ["lin2016"], "model.family": "x"})
    assert written == ["sampler.seed=7", 'data.exclude=["lin2016"]', 'model.family="x"']
    # each parses back to the same value
    from bayes_va.config.model import parse_override

    assert dict(parse_override(o) for o in written) == {
        "sampler.seed": 7,
        "data.exclude": ["lin2016"],
        "model.family": "x",
    }


class _FakeFit:
    """Stands in for :func:`bayes_va.fitting.run.fit`: records where it was asked to write."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, config, *, overrides=None, out_dir=None, **kwargs):
        self.calls.append({"config": config, "overrides": overrides, "out_dir": Path(out_dir)})
        diagnostics = SimpleNamespace(failures=())
        return SimpleNamespace(ok=True, diagnostics=diagnostics, text=lambda: "fitted")


@pytest.fixture
def fake_fit(monkeypatch) -> _FakeFit:
    fake = _FakeFit()
    monkeypatch.setattr(fitting_run, "fit", fake)
    return fake


def test_a_fit_with_overrides_gets_its_own_folder(tmp_path, fake_fit):
    root = tmp_path / "results"
    common = ["--results-root", str(root), "--no-report"]
    assert main(["fit", BASE, *common]) == 0
    assert main(["fit", BASE, *common, "--set", "priors.tau.sigma=0.5"]) == 0
    assert main(["fit", BASE, *common, "--set", "priors.tau.sigma=2"]) == 0
    plain, half, two = (c["out_dir"] for c in fake_fit.calls)
    assert plain == root / "base"  # without overrides: as before
    short = load_config(BASE, ["priors.tau.sigma=0.5"]).hash()[:8]
    assert half == root / f"base+{short}"
    assert len({plain, half, two}) == 3  # no run replaces another config's folder
    assert fake_fit.calls[1]["overrides"] == ["priors.tau.sigma=0.5"]  # recorded as given
    assert fake_fit.calls[0]["overrides"] == []


def test_the_same_overrides_reuse_one_folder_and_out_wins(tmp_path, fake_fit):
    root = tmp_path / "results"
    common = ["--results-root", str(root), "--no-report"]
    main(["fit", BASE, *common, "--set", "sampler.draws=500", "--set", "sampler.tune=300"])
    main(["fit", BASE, *common, "--set", "sampler.tune=300", "--set", "sampler.draws=500"])
    main(["fit", BASE, *common, "--set", "sampler.draws=500", "--out", str(tmp_path / "mine")])
    first, again, mine = (c["out_dir"] for c in fake_fit.calls)
    assert first == again  # same resolved config, same folder
    assert mine == tmp_path / "mine"
    cfg = load_config(BASE, ["sampler.draws=500", "sampler.tune=300"])
    assert first.name == "base" + overrides_suffix(cfg)


@pytest.mark.sampling
def test_cli_fit_with_overrides_records_them_and_leaves_the_plain_folder_alone(tmp_path):
    root = tmp_path / "results"
    sets = ["--set", "sampler.draws=100", "--set", "sampler.tune=100"]
    main(["fit", BASE, "--results-root", str(root), "--no-report", *sets])
    (folder,) = root.iterdir()
    assert folder.name.startswith("base+") and not (root / "base").exists()
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["overrides"] == ["sampler.draws=100", "sampler.tune=100"]
    assert (
        prov["config_hash"] == load_config(BASE, ["sampler.draws=100", "sampler.tune=100"]).hash()
    )
    assert prov["config"]["sampler"]["draws"] == 100
