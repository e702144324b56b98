"""Model comparison by marginal PSIS-LOO: logit-normal vs beta-binomial (vs subgroups by
procedure, in the slow tier: one more model to compile), and a deliberately misspecified model
(tau pinned near 0) that must rank last."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_va
from bayes_va.checking.compare import compare_models
from bayes_va.checking.loo import LooReliabilityWarning, marginal_loo
from bayes_va.cli.main import main
from bayes_va.core.errors import ComparisonError
from bayes_va.workflows.report import write_comparison

pytestmark = pytest.mark.sampling

SMALL = {"sampler.draws": 500, "sampler.tune": 500}
#: tau ~ HalfNormal(0.001) mixes slowly (tau against the data): more tuning and draws
NEAR_POOLED = {"sampler.draws": 1000, "sampler.tune": 1000}
AZ_COLUMNS = ["rank", "elpd_diff", "dse", "p_worse", "diag_diff", "diag_elpd", "p", "elpd", "se"]


@pytest.fixture(scope="module")
def fits():
    return {
        "logit_normal": bayes_va.fit("models/base.toml", overrides=SMALL),
        "beta_binomial": bayes_va.fit("models/sensitivity/beta_binomial.toml", overrides=SMALL),
        "tau_near_0": bayes_va.fit(
            "models/base.toml", overrides={**NEAR_POOLED, "priors.tau.sigma": 0.001}
        ),
    }


@pytest.fixture(scope="module")
def two(fits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LooReliabilityWarning)
        cmp = compare_models({k: fits[k] for k in ("logit_normal", "beta_binomial")})
    return cmp, caught


@pytest.fixture(scope="module")
def with_pooled(fits):
    with pytest.warns(LooReliabilityWarning, match="tau_near_0"):
        return compare_models({k: fits[k] for k in ("logit_normal", "tau_near_0")})


def test_the_table_keeps_arviz_columns_and_every_digit(fits, two):
    cmp, _ = two
    t = cmp.table
    assert list(t.columns[: len(AZ_COLUMNS)]) == AZ_COLUMNS
    assert set(t.index) == {"logit_normal", "beta_binomial"}
    assert t["weight"].sum() == pytest.approx(1.0)
    assert t.iloc[0]["elpd_diff"] == 0.0 and (t["elpd_diff"] <= 0).all()
    for name in t.index:  # unrounded: the exact float that marginal_loo computed
        assert t.loc[name, "elpd"] == marginal_loo(fits[name], exact=False, warn=False).elpd
    assert np.isfinite(t.loc["logit_normal", "elpd_exact"])  # quadrature applies here only
    assert np.isnan(t.loc["beta_binomial", "elpd_exact"])


def test_the_comparison_says_whether_it_is_reliable(two):
    cmp, caught = two
    expected = all(loo.max_k <= loo.good_k for loo in cmp.loos.values())
    assert cmp.reliable == expected
    assert bool(caught) == (not expected)  # warned exactly when unreliable
    banner = "This comparison is NOT reliable" in cmp.markdown()
    assert banner == (not expected)
    assert cmp.table["loo_reliable"].tolist() == [cmp.loos[m].reliable for m in cmp.table.index]


def test_tau_near_zero_ranks_last_is_flagged_and_is_confirmed_by_exact_loso(with_pooled):
    cmp = with_pooled
    assert cmp.best == "logit_normal"
    assert not cmp.reliable
    assert not cmp.table.loc["tau_near_0", "loo_reliable"]
    assert "hogan2022" in cmp.loos["tau_near_0"].bad_studies
    md = cmp.markdown()
    assert md.index("This comparison is NOT reliable") < md.index("| model |")
    assert any("the same ranking" in c for c in cmp.caveats())
    exact = cmp.table["elpd_exact"]
    assert exact["tau_near_0"] < exact["logit_normal"]


def test_replacing_bad_k_by_exact_values_makes_the_comparison_reliable(fits):
    cmp = compare_models({k: fits[k] for k in ("logit_normal", "tau_near_0")}, replace_bad=True)
    assert cmp.reliable and cmp.best == "logit_normal"
    row = cmp.table.loc["tau_near_0"]
    assert row["n_replaced"] > 0 and row["n_bad_k"] == 0
    # the loss is dominated by a few studies (Hogan alone ~ -326), so the SE of the difference
    # over 14 studies is large; ArviZ's normal approximation still puts it far below the best:
    # elpd_diff -824.04, dse 330.25, p_worse 0.9937 on two seeds alike (to 1e-5: the bad
    # studies' values are exact, the rest PSIS with tiny Monte-Carlo error)
    assert row["elpd_diff"] < 0 and row["p_worse"] > 0.99, row
    assert any("replaced by exact" in c for c in cmp.caveats())


def test_saved_comparison_stores_unrounded_numbers(two, tmp_path):
    cmp, _ = two
    md = write_comparison(cmp, tmp_path)
    assert md.read_text().startswith("# Model comparison")
    for f in ("compare.csv", "compare.json", "figures/compare.png", "figures/compare.svg"):
        assert (tmp_path / f).stat().st_size > 100, f
    csv = pd.read_csv(tmp_path / "compare.csv").set_index("model")
    stored = json.loads((tmp_path / "compare.json").read_text())
    by_model = {r["model"]: r for r in stored["table"]}
    for name in cmp.table.index:
        for col in ("elpd", "se", "elpd_diff", "dse", "weight"):
            assert csv.loc[name, col] == cmp.table.loc[name, col], (name, col)
            assert by_model[name][col] == cmp.table.loc[name, col], (name, col)


def test_models_of_different_data_or_too_few_models_are_refused(fits):
    base = fits["logit_normal"]
    other = base.tree.copy()
    obs = other["observed_data"].to_dataset()
    obs["y"] = obs["y"].copy(data=obs["y"].values + np.eye(1, 14, 7, dtype=int)[0])
    other["observed_data"] = obs
    with pytest.raises(ComparisonError, match="different counts for lin2016"):
        compare_models({"a": base, "b": other})  # bad input (exit 2 in the CLI), not a bug
    with pytest.raises(ValueError, match="at least two"):
        compare_models({"a": base})


def test_the_report_covers_the_beta_binomial_family(fits, tmp_path):
    from bayes_va.workflows.report import write_report

    md = write_report(fits["beta_binomial"], tmp_path, formats=("png",)).read_text()
    assert "Family `beta_binomial`" in md and "| phi |" in md
    assert "conditional" not in md.split("## Leave-one-study-out")[1].split("## Prior")[0]
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["loo"]["exact_elpd"] is None and record["loo_conditional"] is None


def _cli(argv: list[str]) -> int:
    return int(main(argv))  # the console script's own error handling (bad input: exit 2)


def test_compare_command_writes_the_table_and_exits_1_when_unreliable(fits, two, tmp_path, capsys):
    dirs = {}
    for name in ("logit_normal", "beta_binomial", "tau_near_0"):
        dirs[name] = str(fits[name].save(tmp_path / name))
    out = tmp_path / "cmp"
    # both models' marginal k are small (max ~0.2-0.4) but estimated with an SD of ~0.1, so a
    # k above 0.7 is possible on a fresh stream: the exit code must follow the same fits' own
    # reliability (exit 1 when unreliable, tested next with a model that always is)
    good = 0 if two[0].reliable else 1
    assert _cli(["compare", dirs["logit_normal"], dirs["beta_binomial"], "--out", str(out)]) == good
    assert (out / "compare.md").exists()
    assert "logit_normal" in capsys.readouterr().out

    bad = ["compare", dirs["logit_normal"], dirs["tau_near_0"], "--out", str(tmp_path / "c2")]
    assert _cli(bad) == 1
    assert "NOT RELIABLE" in capsys.readouterr().err
    assert _cli([*bad, "--replace-bad-k"]) == 0
    assert _cli(["compare", dirs["logit_normal"], str(tmp_path / "missing")]) == 2
    assert _cli(["compare", dirs["logit_normal"], dirs["beta_binomial"], "--names", "x"]) == 2


@pytest.mark.slow
def test_logit_normal_beta_binomial_and_subgroup_models_compare_reliably_after_refits():
    """The subgroup model (4 hyperparameters, groups of 4-5 studies) often has a study with
    k > 0.7 (Lin 2016, 8.5 % among VP studies of 1-2 %); refitting without it gives the exact
    value. Afterwards every model's LOO is reliable and the table says so."""
    models = {
        "logit_normal": bayes_va.fit("models/base.toml"),
        "beta_binomial": bayes_va.fit("models/sensitivity/beta_binomial.toml"),
        "subgroup": bayes_va.fit("models/subgroups/procedure.toml"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LooReliabilityWarning)
        plain = compare_models(models)
        fixed = compare_models(models, replace_bad=True)
    assert fixed.reliable and "This comparison is NOT reliable" not in fixed.markdown()
    for name in models:
        replaced = fixed.loos[name].replaced
        assert set(replaced) == set(plain.loos[name].bad_studies)
        # studies that were fine keep their PSIS values exactly
        keep = ~fixed.loos[name].studies["study"].isin(replaced)
        np.testing.assert_array_equal(
            fixed.loos[name].studies.loc[keep, "elpd_psis"],
            plain.loos[name].studies.loc[keep, "elpd_psis"],
        )
