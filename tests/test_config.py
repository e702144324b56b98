"""Model configs: defaults, strict validation, inheritance, overrides, hashing; and the dataset
a config's ``[data]`` table selects."""

from __future__ import annotations

import os
import re
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
from seeds import SEED_OFFSET, seed

import bayes_va
from bayes_va.config.model import (
    Config,
    DataConfig,
    DiagnosticsConfig,
    ModelConfig,
    Prior,
    PriorsConfig,
    SamplerConfig,
    from_dict,
    load_config,
)
from bayes_va.core.errors import ConfigError
from bayes_va.data.dataset import build_dataset

PROJECT_ROOT = Path(bayes_va.__file__).resolve().parent.parent
BASE = PROJECT_ROOT / "models" / "base.toml"


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def child_of_base(tmp_path: Path, body: str, name: str = "child") -> Path:
    """A config in tmp_path that extends models/base.toml (absolute path) and adds ``body``."""
    return write_toml(tmp_path / f"{name}.toml", f'extends = "{BASE}"\n' + textwrap.dedent(body))


@pytest.fixture(scope="module")
def base() -> Config:
    return load_config(BASE)


# --------------------------------------------------------------------------- base.toml


def test_base_toml_loads_with_the_documented_defaults(base):
    assert base.name == "base"
    assert base.data == DataConfig(
        table="revision", dir="data", variants=(), exclude=(), split_arms=False
    )
    # the default since 2026-11-30: theta integrated out (centred is models/sensitivity/)
    assert base.model == ModelConfig(family="logit_normal", parametrisation="marginal")
    assert base.priors.mu == Prior("Normal", {"mu": 0.0, "sigma": 2.5})
    assert base.priors.tau == Prior("HalfNormal", {"sigma": 1.0})
    # the file says 20231123; the test run's seed offset is added on loading (tests/seeds.py)
    assert tomllib.loads(BASE.read_text(encoding="utf-8"))["sampler"]["seed"] == 20231123
    assert base.sampler == SamplerConfig(
        backend="nutpie", chains=4, tune=500, draws=1000, seed=seed(20231123), target_accept=0.9
    )
    assert base.diagnostics == DiagnosticsConfig(
        max_rhat=1.01, min_ess_bulk=400.0, min_ess_tail=400.0, max_divergences=0, min_bfmi=0.3
    )


def test_base_toml_spells_out_exactly_the_dataclass_defaults(base):
    assert base.data == DataConfig()
    assert base.model == ModelConfig()
    assert base.priors == PriorsConfig()
    default = SamplerConfig()
    assert base.sampler == default.model_copy(update={"seed": seed(default.seed)})
    assert base.diagnostics == DiagnosticsConfig()


def test_the_seed_offset_shifts_each_loaded_file_once_and_leaves_explicit_seeds(tmp_path):
    """The test-side hook of tests/seeds.py: a file's seed (own, inherited or the default)
    gains the run's offset exactly once; overrides and in-memory configs are taken as given."""
    assert load_config(BASE).sampler.seed == 20231123 + SEED_OFFSET
    inherited = child_of_base(tmp_path, "[priors.tau]\nsigma = 0.5\n")
    assert load_config(inherited).sampler.seed == 20231123 + SEED_OFFSET
    bare = write_toml(tmp_path / "bare.toml", 'name = "bare"\n')
    assert load_config(bare).sampler.seed == SamplerConfig().seed + SEED_OFFSET
    assert load_config(BASE, {"sampler.seed": 7}).sampler.seed == 7
    assert from_dict({"name": "x"}).sampler.seed == SamplerConfig().seed
    cfg = load_config(BASE)
    assert cfg.replace(name="y").sampler.seed == cfg.sampler.seed  # replace: no second shift


def test_numbers_are_coerced_to_the_declared_types(base):
    assert type(base.diagnostics.min_ess_bulk) is float  # written as 400 in the TOML
    assert type(base.sampler.chains) is int
    assert all(type(v) is float for v in base.priors.mu.params.values())


def test_relative_data_dir_resolves_against_the_project_root(base):
    assert Path(base.root) == PROJECT_ROOT
    assert base.data_dir == PROJECT_ROOT / "data"


# --------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("chainz_at_top = 4\n", "chainz_at_top"),
        ("[sampler]\nchainz = 4\n", "sampler.chainz"),
        ("[data]\nvariant = []\n", "data.variant"),
        ("[diagnostics]\nmax_r_hat = 1.05\n", "diagnostics.max_r_hat"),
        ("[priors.nu]\ndist = 'Normal'\n", "priors.nu"),
        ("[bogus]\nx = 1\n", "bogus"),
    ],
    ids=["top_level", "sampler", "data", "diagnostics", "priors", "unknown_table"],
)
def test_an_unknown_key_raises_a_config_error_naming_the_file_and_dotted_key(tmp_path, body, key):
    path = child_of_base(tmp_path, body)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert str(path) in message
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message), message


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('[sampler]\nchains = "4"\n', "sampler.chains", "must be an integer"),
        ("[sampler]\nchains = 4.5\n", "sampler.chains", "must be an integer"),
        ("[sampler]\nchains = true\n", "sampler.chains", "must be an integer"),
        ('[sampler]\ntarget_accept = "high"\n', "sampler.target_accept", "must be a number"),
        ("[sampler]\ntarget_accept = false\n", "sampler.target_accept", "must be a number"),
        ("[data]\nsplit_arms = 1\n", "data.split_arms", "must be true or false"),
        ('[data]\nvariants = "lin2016_low"\n', "data.variants", "must be a list of strings"),
        ("[data]\nexclude = [1]\n", "data.exclude", "must be a list of strings"),
        ('[sampler]\nbackend = "stan"\n', "sampler.backend", "allowed: nutpie, pymc"),
        ('[model]\nparametrisation = "centered"\n', "model.parametrisation", "allowed"),
        ("description = 3\n", "description", "must be a string"),
        ("sampler = 4\n", "sampler", "must be a table"),
    ],
)
def test_a_value_of_the_wrong_type_raises_a_config_error_naming_the_key(
    tmp_path, body, key, fragment
):
    path = child_of_base(tmp_path, body)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert f"'{key}'" in message and fragment in message and str(path) in message


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('[priors.tau]\ndist = "Gamma"\n', "priors.tau.dist", "allowed: HalfNormal"),
        ('[priors.mu]\ndist = "HalfNormal"\nsigma = 1\n', "priors.mu.dist", "allowed: Normal"),
        ('[priors.tau]\ndist = "HalfCauchy"\n', "priors.tau", "(HalfCauchy) needs beta"),
        ("[priors.tau]\nscale = 1.0\n", "priors.tau.scale", "HalfNormal takes exactly: sigma"),
        ("[priors.tau]\nsigma = 0\n", "priors.tau.sigma", "must be > 0"),
        ("[priors.tau]\nsigma = -1.0\n", "priors.tau.sigma", "must be > 0"),
        ("[priors.mu]\nsigma = 0.0\n", "priors.mu.sigma", "must be > 0"),
        ('[priors.tau]\ndist = "HalfCauchy"\nbeta = 0\n', "priors.tau.beta", "must be > 0"),
        ('[priors.tau]\ndist = "Exponential"\nlam = -2\n', "priors.tau.lam", "must be > 0"),
        ('[priors.tau]\nsigma = "1"\n', "priors.tau.sigma", "must be a number"),
        ("[priors.mu]\nmu = true\n", "priors.mu.mu", "must be a number"),
        ("[priors]\ntau = 1.0\n", "priors.tau", "must be a table with a 'dist' key"),
    ],
)
def test_a_bad_prior_raises_a_config_error_naming_the_key(tmp_path, body, key, fragment):
    path = child_of_base(tmp_path, body)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message), message
    assert fragment in message


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = child_of_base(
        tmp_path,
        'chainz = 4\n[sampler]\nchains = 0\ntarget_accept = "high"\n'
        '[priors.tau]\ndist = "Gamma"\n[data]\nexclude = ["a", 2]\n',
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: 5 problems:")
    for fragment in (
        "unknown key chainz; allowed here: name, description, data",
        "'sampler.chains' must be >= 1, got 0",
        "'sampler.target_accept' must be a number, got 'high'",
        "'priors.tau.dist' is 'Gamma'; allowed: HalfNormal, HalfCauchy, Exponential, LogNormal",
        "'data.exclude' must be a list of strings: item 1 is 2",
    ):
        assert fragment in message, message


def test_the_cli_exits_2_with_every_problem_of_a_bad_config(tmp_path, capsys):
    from bayes_va.cli.main import main

    path = child_of_base(tmp_path, "[sampler]\nchains = 0\ndraws = 0\n")
    assert main(["fit", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'sampler.chains' must be >= 1" in err and "'sampler.draws' must be >= 1" in err
    assert not (tmp_path / "out").exists()


def test_a_prior_missing_a_parameter_raises_a_config_error_naming_the_key(tmp_path):
    path = write_toml(
        tmp_path / "standalone.toml",
        """\
        [priors.mu]
        dist = "Normal"
        mu = 0.0
        """,
    )
    with pytest.raises(ConfigError, match=r"'priors\.mu' \(Normal\) needs sigma"):
        load_config(path)


def test_a_child_prior_of_the_same_family_inherits_the_parameters_it_omits(tmp_path):
    path = child_of_base(tmp_path, '[priors.mu]\ndist = "Normal"\nmu = -3.0\n')
    assert load_config(path).priors.mu == Prior("Normal", {"mu": -3.0, "sigma": 2.5})


@pytest.mark.parametrize("override", ["priors.tau.sigma=inf", "priors.mu.mu=nan"])
def test_a_non_finite_prior_parameter_raises(override):
    with pytest.raises(ConfigError):
        load_config(BASE, [override])


def test_changing_a_priors_family_replaces_its_parameters_instead_of_merging(tmp_path):
    path = child_of_base(tmp_path, '[priors.tau]\ndist = "Exponential"\nlam = 2\n')
    assert load_config(path).priors.tau == Prior("Exponential", {"lam": 2.0})


def test_a_config_without_name_fails_only_when_built_from_a_dict():
    with pytest.raises(ConfigError, match="missing 'name'"):
        from_dict({"sampler": {"seed": 1}})
    assert from_dict({"name": "x"}) == Config(name="x")


# --------------------------------------------------------------------------- extends


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_a_child_config_inherits_everything_it_does_not_override(tmp_path, base, how):
    parent = str(BASE) if how == "absolute" else os.path.relpath(BASE, tmp_path)
    assert Path(parent).is_absolute() == (how == "absolute")
    path = write_toml(
        tmp_path / "tight_tau.toml",
        f"""\
        extends = "{parent}"

        [priors.tau]
        sigma = 0.5
        """,
    )
    child = load_config(path)
    assert child.priors.tau == Prior("HalfNormal", {"sigma": 0.5})
    assert child.name == "tight_tau"  # its file stem, not the parent's name
    expected = base.to_dict()
    expected["name"] = "tight_tau"
    expected["priors"]["tau"]["sigma"] = 0.5
    assert child.to_dict() == expected
    assert child.description == base.description


def test_a_child_config_may_set_its_own_name(tmp_path):
    path = child_of_base(tmp_path, 'name = "wide"\n[priors.tau]\nsigma = 2.0\n')
    assert load_config(path).name == "wide"


def test_extends_chains_resolve_each_parent_relative_to_its_own_file(tmp_path):
    write_toml(tmp_path / "parent.toml", f'extends = "{BASE}"\n[sampler]\nseed = 1\n')
    write_toml(
        tmp_path / "sub" / "child.toml", 'extends = "../parent.toml"\n[sampler]\ndraws = 5\n'
    )
    grand = write_toml(
        tmp_path / "sub" / "grand.toml", 'extends = "child.toml"\n[data]\nsplit_arms = true\n'
    )
    cfg = load_config(grand)
    assert (cfg.sampler.seed, cfg.sampler.draws, cfg.data.split_arms) == (seed(1), 5, True)
    assert cfg.sampler.tune == 500 and cfg.name == "grand"


def test_a_cycle_in_extends_raises_a_config_error(tmp_path):
    write_toml(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write_toml(tmp_path / "b.toml", 'extends = "a.toml"\nname = "b"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.toml")


def test_a_config_extending_itself_raises_a_config_error(tmp_path):
    path = write_toml(tmp_path / "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(path)


def test_extending_a_missing_file_raises_a_config_error_naming_it(tmp_path):
    path = write_toml(tmp_path / "orphan.toml", 'extends = "nope.toml"\n')
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(path)


def test_invalid_toml_raises_a_config_error_naming_the_file(tmp_path):
    path = write_toml(tmp_path / "broken.toml", "[sampler\nchains = 4\n")
    with pytest.raises(ConfigError, match="not valid TOML") as exc:
        load_config(path)
    assert str(path.resolve()) in str(exc.value)


# --------------------------------------------------------------------------- overrides


def test_set_style_overrides_are_applied_last(base):
    cfg = load_config(BASE, ["priors.tau.sigma=0.5", "sampler.seed=7", 'data.exclude=["lin2016"]'])
    assert cfg.priors.tau == Prior("HalfNormal", {"sigma": 0.5})
    assert cfg.sampler.seed == 7
    assert cfg.data.exclude == ("lin2016",)
    assert (
        cfg.replace(
            **{"priors.tau.sigma": 1.0, "sampler.seed": base.sampler.seed, "data.exclude": []}
        )
        == base
    )


def test_dict_overrides_work_like_set_strings():
    assert load_config(BASE, {"sampler.seed": 7, "priors.tau.sigma": 0.5}) == load_config(
        BASE, ["sampler.seed=7", "priors.tau.sigma=0.5"]
    )


def test_a_bare_word_override_is_a_string():
    assert load_config(BASE, ["sampler.backend=pymc"]).sampler.backend == "pymc"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sampler.chainz=4", "sampler.chainz"),
        ('sampler.chains="4"', "sampler.chains"),
        ("priors.tau.sigma=-1", "priors.tau.sigma"),
        ("sampler.seed.x=1", "sampler.seed"),
    ],
)
def test_a_bad_override_raises_a_config_error_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(BASE, [override])


def test_an_override_without_an_equals_sign_raises():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(BASE, ["sampler.seed"])


# --------------------------------------------------------------------------- hash, replace


def test_the_config_hash_is_stable_and_ignores_where_the_file_lives(tmp_path, base):
    h = base.hash()
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert load_config(BASE).hash() == h
    copy = tmp_path / "elsewhere" / "base.toml"
    copy.parent.mkdir()
    copy.write_bytes(BASE.read_bytes())
    moved = load_config(copy)
    assert moved.root != base.root
    assert moved.hash() == h and moved == base


def test_the_config_hash_changes_with_any_value(base):
    h = base.hash()
    changed = {
        base.replace(**{"sampler.seed": base.sampler.seed + 1}).hash(),
        base.replace(**{"priors.tau.sigma": 1.5}).hash(),
        base.replace(**{"data.variants": ["lin2016_low"]}).hash(),
        base.replace(name="other").hash(),
    }
    assert h not in changed and len(changed) == 4


def test_replace_returns_a_validated_copy_and_leaves_the_original_alone(base):
    new = base.replace(**{"sampler.seed": 2, "data.split_arms": True})
    assert (new.sampler.seed, new.data.split_arms) == (2, True)
    assert (base.sampler.seed, base.data.split_arms) == (seed(20231123), False)
    assert new.sampler.chains == base.sampler.chains and new.priors == base.priors
    assert new.root == base.root
    with pytest.raises(ConfigError, match=r"sampler\.chainz"):
        base.replace(**{"sampler.chainz": 2})
    with pytest.raises(ConfigError, match=r"'sampler\.chains' must be an integer"):
        base.replace(**{"sampler.chains": "2"})


def test_to_dict_round_trips_through_from_dict(base):
    assert from_dict(base.to_dict(), root=base.root) == base


# --------------------------------------------------------------------------- build_dataset


def _events(data) -> dict[str, int]:
    return dict(zip(data.study, data.y.tolist(), strict=True))


def test_the_base_dataset_is_the_fourteen_shipped_studies(data_dir, revision_counts):
    study_ids, y, n = revision_counts
    data = build_dataset(DataConfig(), data_dir)
    assert data.k == 14 and data.study == tuple(study_ids)
    assert data.y.dtype == np.int64 and data.n.dtype == np.int64
    np.testing.assert_array_equal(data.y, y)
    np.testing.assert_array_equal(data.n, n)
    assert data.steps == ()


@pytest.mark.parametrize(
    ("variant", "events"), [("lin2016_low", 66), ("lin2016_mid", 140), ("lin2016_high", 214)]
)
def test_a_variant_changes_lins_events_and_nothing_else(data_dir, variant, events):
    base = build_dataset(DataConfig(), data_dir)
    data = build_dataset(DataConfig(variants=(variant,)), data_dir)
    assert data.k == 14 and data.study == base.study
    assert _events(data)["lin2016"] == events
    others = [i for i, s in enumerate(data.study) if s != "lin2016"]
    np.testing.assert_array_equal(data.y[others], base.y[others])
    np.testing.assert_array_equal(data.n, base.n)
    assert data.steps == (f"variant {variant}: lin2016 events 140 -> {events}",)


def test_the_exclusion_variant_drops_lin(data_dir):
    data = build_dataset(DataConfig(variants=("lin2016_excluded",)), data_dir)
    assert data.k == 13 and "lin2016" not in data.study


def test_variants_given_in_a_config_file_reach_the_dataset(data_dir):
    cfg = load_config(BASE, ['data.variants=["lin2016_high"]'])
    assert _events(build_dataset(cfg.data, data_dir))["lin2016"] == 214


def test_split_arms_replaces_hazzard_by_its_two_arms(data_dir):
    base = build_dataset(DataConfig(), data_dir)
    data = build_dataset(DataConfig(split_arms=True), data_dir)
    assert data.k == 15
    assert "hazzard2014" not in data.study
    i = data.study.index("hazzard2014_VP")
    assert data.study[i : i + 2] == ("hazzard2014_VP", "hazzard2014_KP")
    assert (int(data.y[i]), int(data.n[i])) == (80, 699)
    assert (int(data.y[i + 1]), int(data.n[i + 1])) == (62, 696)
    assert list(data.table.loc[i : i + 1, "procedure"]) == ["VP", "KP"]
    assert (data.y.sum(), data.n.sum()) == (base.y.sum(), base.n.sum())


def test_exclude_drops_the_named_studies(data_dir):
    data = build_dataset(DataConfig(exclude=("lin2016", "hogan2022")), data_dir)
    assert data.k == 12 and not {"lin2016", "hogan2022"} & set(data.study)


def test_an_exclude_with_a_typo_raises_a_config_error_naming_it(data_dir):
    with pytest.raises(ConfigError, match="'lin2061'"):
        build_dataset(DataConfig(exclude=("lin2061",)), data_dir)


def test_an_unknown_variant_raises_a_config_error_naming_it(data_dir):
    with pytest.raises(ConfigError, match="'lin2016_lo'"):
        build_dataset(DataConfig(variants=("lin2016_lo",)), data_dir)


def test_two_variants_of_one_study_raise_a_config_error(data_dir):
    with pytest.raises(ConfigError, match="both change study 'lin2016'"):
        build_dataset(DataConfig(variants=("lin2016_low", "lin2016_high")), data_dir)


def test_excluding_a_study_its_exclusion_variant_already_dropped_raises(data_dir):
    cfg = DataConfig(variants=("lin2016_excluded",), exclude=("lin2016",))
    with pytest.raises(
        ConfigError, match="'lin2016' is also changed by variant 'lin2016_excluded'"
    ):
        build_dataset(cfg, data_dir)


def test_excluding_a_study_that_a_variant_changes_raises(data_dir):
    with pytest.raises(ConfigError, match="lin2016"):
        build_dataset(DataConfig(variants=("lin2016_low",), exclude=("lin2016",)), data_dir)
