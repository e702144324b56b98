"""Sensitivity analysis by config swap: scenario direction, leave-one-out, planning, the CLI.

Statistical claims are checked against deterministic references where they exist (the exact
quadrature posterior and the classical GLMM) and, for the MCMC, with margins of 4 Monte-Carlo
standard errors (ArviZ's quantile MCSE, reported by every fit). Fits that only exercise the
plumbing use short chains (300 + 300 draws) and are not read statistically.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from seeds import seed

import bayes_va
from bayes_va.cli.main import main
from bayes_va.config.model import load_config
from bayes_va.core.errors import ConfigError
from bayes_va.workflows import sensitivity

pytestmark = pytest.mark.sampling

ROOT = Path(bayes_va.__file__).resolve().parent.parent
DATA = (ROOT / "data").as_posix()  # configs written to tmp_path find no project root there
BASE = ROOT / "models" / "base.toml"
SENS = ROOT / "models" / "sensitivity"
#: A margin of 4 MCSEs: a correct sampler puts a difference beyond it with probability < 6e-5.
Z_TOL = 4.0
SHORT = {"sampler.draws": 300, "sampler.tune": 300}
SHORT_SET = ["--set", "sampler.draws=300", "--set", "sampler.tune=300"]


# --------------------------------------------------------------------------- Lin 2016 variants


@pytest.fixture(scope="module")
def lin_fits() -> dict[str, bayes_va.fitting.results.FitResult]:
    """Base, Lin at 4 % and Lin at 13 %, in that order, with 4 x 3000 draws.

    3000 draws per chain put the MCSE of the pooled median at ~1e-4, a quarter of the smallest
    gap (Lin 8.5 % -> 13 % moves it by ~1.4e-3).
    """
    more = {"sampler.draws": 3000}
    return {
        "base": bayes_va.fit(BASE, overrides=more),
        "lin_low": bayes_va.fit(SENS / "lin_low.toml", overrides=more),
        "lin_high": bayes_va.fit(SENS / "lin_high.toml", overrides=more),
    }


ORDER = ("lin_low", "base", "lin_high")  # Lin 2016 at 66, 140 and 214 of 1646 revisions


def test_lin_variants_order_the_exact_pooled_median(lin_fits) -> None:
    medians = [lin_fits[s].estimates.exact.pooled.median for s in ORDER]
    assert medians[0] < medians[1] < medians[2], medians


def test_lin_variants_order_the_classical_glmm(lin_fits) -> None:
    pooled = [lin_fits[s].estimates.glmm.pooled for s in ORDER]
    assert pooled[0] < pooled[1] < pooled[2], pooled


def test_lin_variants_order_the_mcmc_pooled_median_beyond_monte_carlo_error(lin_fits) -> None:
    for lower, upper in itertools.pairwise(ORDER):
        a, b = lin_fits[lower], lin_fits[upper]
        gap = b.estimates.pooled.median - a.estimates.pooled.median
        se = np.hypot(a.diagnostics.mcse["pooled"].q50, b.diagnostics.mcse["pooled"].q50)
        assert gap > Z_TOL * se, (lower, upper, gap, se)


def test_each_mcmc_median_matches_its_exact_median(lin_fits) -> None:
    for name, result in lin_fits.items():
        mcmc = result.estimates.pooled.median
        exact = result.estimates.exact.pooled.median
        se = result.diagnostics.mcse["pooled"].q50
        assert abs(mcmc - exact) <= Z_TOL * se, (name, mcmc, exact, se)


def test_a_second_same_structure_fit_reuses_the_compiled_model(lin_fits) -> None:
    # lin_low and lin_high change one count of the base data: same structure, so the fits
    # after the first in this process reuse the compiled nutpie model
    for name in ("lin_low", "lin_high"):
        timings = lin_fits[name].diagnostics.timings
        assert timings.reused_compiled_model is True, name
        assert timings.compile_seconds == 0.0


# --------------------------------------------------------------------------- leave-one-out


def test_leave_one_study_out_gives_one_marked_row_per_study() -> None:
    # Thresholds no short fit can meet: every row fails its diagnostics and must stay, marked.
    overrides = {**SHORT, "diagnostics.min_ess_bulk": 1e9}
    table = sensitivity.run_sensitivity([], BASE, overrides=overrides, progress=False)
    studies = load_config(BASE).data
    base_data = bayes_va.data.dataset.build_dataset(studies, ROOT / "data")
    assert list(table.columns) == list(sensitivity.COLUMNS)
    assert len(table) == 1 + base_data.k
    assert table.iloc[0]["kind"] == "base" and table.iloc[0]["k"] == base_data.k
    loo = table[table["kind"] == "leave-one-out"]
    assert list(loo["scenario"]) == [f"base_without_{sid}" for sid in base_data.study]
    assert (loo["k"] == base_data.k - 1).all()
    assert list(loo["description"]) == [f"leave out {sid}" for sid in base_data.study]
    assert not table["diagnostics_ok"].any()
    assert table["diagnostics_failures"].str.contains("bulk ESS").all()
    assert sensitivity.to_markdown(table).count("**FAILED**") == len(table)
    assert table[["pooled_median", "glmm_pooled"]].notna().all().all()
    # every leave-one-out fit after the first reuses the k = 13 kernel, except at most one:
    # the switch to the compiled kernel once the structure has been fitted often enough in
    # this process (bayes_va.engine.kernel.COMPILE_AFTER_FITS)
    assert (loo["compile_seconds"].iloc[1:] > 0.0).sum() <= 1
    assert table.attrs["wall_seconds"] > 0


def test_leaving_out_the_largest_study_moves_the_glmm_the_expected_way() -> None:
    # hogan2022 (15 %, n = 80,864) is far above the pooled ~4 %: dropping it must lower the
    # classical estimate (deterministic; no MCMC read)
    from bayes_va.data.dataset import build_dataset
    from bayes_va.numerics import glmm

    cfg = load_config(BASE)
    full = build_dataset(cfg.data, cfg.data_dir)
    cut = build_dataset(cfg.replace(**{"data.exclude": ["hogan2022"]}).data, cfg.data_dir)
    assert glmm.fit_glmm(cut.y, cut.n).pooled < glmm.fit_glmm(full.y, full.n).pooled


# --------------------------------------------------------------------------- planning


@pytest.fixture
def typo_config(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(
        f'extends = "{BASE.as_posix()}"\n[data]\ndir = "{DATA}"\nexclude = ["chou2041"]\n'
    )
    return path


def test_an_exclude_typo_fails_in_plan_naming_the_id(typo_config) -> None:
    with pytest.raises(ConfigError, match="unknown study id 'chou2041'"):
        sensitivity.plan([SENS / "lin_low.toml", typo_config], BASE, leave_one_out=False)


def test_an_exclude_typo_fails_before_any_fit(typo_config, monkeypatch) -> None:
    def no_fitting(*args, **kwargs):
        raise AssertionError("a scenario was fitted before every config was validated")

    monkeypatch.setattr(sensitivity, "fit_scenario", no_fitting)  # the only caller of fit
    with pytest.raises(ConfigError, match="chou2041"):
        sensitivity.run_sensitivity([SENS / "lin_low.toml", typo_config], BASE, progress=False)


def test_the_cli_reports_an_exclude_typo_with_exit_two(typo_config, tmp_path, capsys) -> None:
    code = main(["sensitivity", str(typo_config), "--no-loo", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "chou2041" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_extends_chain_and_overrides_resolve_as_documented(tmp_path) -> None:
    # child -> models/sensitivity/lin_low.toml -> models/base.toml
    child = tmp_path / "child.toml"
    child.write_text(
        f'extends = "{(SENS / "lin_low.toml").as_posix()}"\n'
        'description = "Lin at 4 % with a tighter tau prior"\n'
        f'[data]\ndir = "{DATA}"\n'
        "[priors.tau]\nsigma = 0.5\n"
        "[sampler]\ndraws = 500\n"
    )
    base, scenario = sensitivity.plan(
        [child], BASE, leave_one_out=False, overrides={"sampler.seed": seed(7)}
    )
    cfg, plain = scenario.config, load_config(BASE)
    assert (scenario.name, scenario.kind) == ("child", "scenario")
    assert cfg.description == "Lin at 4 % with a tighter tau prior"  # child
    assert cfg.priors.tau.dist == "HalfNormal" and cfg.priors.tau.params == {"sigma": 0.5}
    assert cfg.sampler.draws == 500  # child
    assert cfg.data.variants == ("lin2016_low",)  # middle
    assert cfg.priors.mu == plain.priors.mu and cfg.model == plain.model  # base
    assert cfg.sampler.tune == plain.sampler.tune and cfg.diagnostics == plain.diagnostics
    # the override, in every scenario
    assert cfg.sampler.seed == seed(7) and base.config.sampler.seed == seed(7)

    # --set strings: applied last, over the child's own value; the resolved config is what a
    # fit stores in provenance.json
    cfg = load_config(child, ["priors.tau.sigma=0.25", 'data.exclude=["chou2014"]'])
    assert cfg.priors.tau.params == {"sigma": 0.25}
    assert cfg.data.exclude == ("chou2014",) and cfg.data.variants == ("lin2016_low",)
    data = bayes_va.data.dataset.build_dataset(cfg.data, cfg.data_dir)
    record = bayes_va.fitting.provenance.provenance_record(cfg, data)
    assert record["config"]["priors"]["tau"] == {"dist": "HalfNormal", "sigma": 0.25}
    assert record["config"]["data"]["exclude"] == ["chou2014"]
    assert "chou2014" not in record["studies"]


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("priors.tau.sigmaa", "priors.tau.sigmaa"),
        ("sampler.chainz", "sampler.chainz"),
        ("model.famliy", "model.famliy"),
        ("modle.family", "modle"),  # an unknown section is named as such
    ],
)
def test_a_bad_override_key_fails_in_plan_naming_it(key: str, named: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown key {named.replace('.', '[.]')}\b"):
        sensitivity.plan([SENS / "lin_low.toml"], BASE, overrides={key: 2})


def test_the_cli_rejects_a_bad_override_key_naming_it(tmp_path, capsys) -> None:
    argv = ["sensitivity", str(SENS / "lin_low.toml"), "--no-loo", "--out", str(tmp_path / "o")]
    code = main([*argv, "--set", "sampler.chainz=2"])
    assert code == 2
    assert "sampler.chainz" in capsys.readouterr().err


# --------------------------------------------------------------------------- the CLI


def test_the_cli_writes_the_table_and_figure(tmp_path, capsys) -> None:
    out = tmp_path / "sens"
    configs = [str(SENS / "lin_low.toml"), str(SENS / "tau_halfnormal_05.toml")]
    code = main(["sensitivity", *configs, "--no-loo", "--out", str(out), *SHORT_SET])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "3 scenarios in" in stdout

    table = pd.read_csv(out / "sensitivity.csv")
    assert list(table.columns) == list(sensitivity.COLUMNS)
    assert list(table["scenario"]) == ["base", "lin_low", "tau_halfnormal_05"]
    assert list(table["kind"]) == ["base", "scenario", "scenario"]
    assert (table["k"] == 14).all()
    for col in ("pooled", "predictive", "spread"):
        lo, med, hi = (table[f"{col}_{s}"] for s in ("lower", "median", "upper"))
        assert ((lo < med) & (med < hi)).all(), col
    assert (table["spread_name"] == "tau").all() and table["glmm_pooled"].notna().all()

    markdown = (out / "sensitivity.md").read_text()
    assert markdown.startswith("| scenario | k | pooled % (95% CrI) |")
    assert len(markdown.strip().splitlines()) == 2 + 3
    assert (out / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "sensitivity.svg").read_text()[:2000]
