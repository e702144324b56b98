"""Model configurations: TOML files in ``models/`` turned into frozen, validated pydantic models.

A config may name a parent with ``extends = "base.toml"`` (a path relative to the file) and
change only a few keys; tables are merged key by key, everything else is replaced. Overrides
(``--set priors.tau.sigma=0.5``, or a dict of dotted keys) are applied last, through
:func:`load_config` for a file and :func:`apply_overrides` for a loaded config. Unknown keys
and wrong types are errors; every problem of a file is reported at once, naming the file and
the dotted key (:class:`~bayes_va.core.errors.ConfigError`). ``bayes-va config schema model``
prints the JSON Schema (``docs/config.md``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from bayes_va.config.base import (
    Bool,
    Float,
    FrozenModel,
    Int,
    Names,
    Str,
    find_root,
    read_toml,
    to_plain,
    validate,
)
from bayes_va.config.overrides import Overrides, parse_override, parse_overrides, set_dotted
from bayes_va.config.priors import BetaPrior, MuPrior, PhiPrior, Prior, TauPrior
from bayes_va.core.errors import ConfigError

__all__ = [
    "Config",
    "DataConfig",
    "DiagnosticsConfig",
    "ModelConfig",
    "Prior",
    "PriorsConfig",
    "SamplerConfig",
    "apply_overrides",
    "find_root",
    "from_dict",
    "load_config",
    "parse_override",
]


class DataConfig(FrozenModel):
    """Which data a model sees (``[data]``)."""

    table: Str = Field(
        default="revision",
        description="The outcome table: a shipped one by name (revision, avf, or any table of "
        "data/ whose schema declares study, events and n roles) or a path to a CSV file, "
        'relative to the config file (e.g. "my_studies.csv").',
    )
    columns: dict[Literal["study", "events", "n"], Str] = Field(
        default_factory=dict,
        description="Column map of a user CSV: which columns hold the study label, events and "
        'sample size, e.g. {study = "author_year", events = "cases", n = "total"} (default: '
        "study, events, n; a schema file beside the CSV declares them too). A child config "
        "replaces this table whole.",
    )
    dir: Str = Field(
        default="data", description="Data folder; a relative path is from the project root."
    )
    variants: Names = Field(
        default=(),
        description='Rows of revision_variants.csv to apply, e.g. ["lin2016_low"] (revision only).',
    )
    exclude: Names = Field(default=(), description="Study ids to drop; each must exist.")
    split_arms: Bool = Field(
        default=False,
        description="Replace studies reported by arm (Hazzard 2014) with their arms (revision).",
    )
    keep: dict[str, Names] = Field(
        default_factory=dict,
        description="Keep only rows whose column equals one of the listed values, e.g. "
        '{outcome = ["adjacent_fracture"]}; every column and value must exist. A child config '
        "replaces this table whole.",
    )


class ModelConfig(FrozenModel):
    """Likelihood family and parametrisation (``[model]``).

    ``marginal`` is the default (logit-normal family): θ_i are integrated out by adaptive
    Gauss–Hermite quadrature, so the sampler sees μ, τ (and β) only and there is no funnel
    whatever the study sizes, then θ_i are drawn exactly from their conditionals. The centred
    form suits a few huge studies and the non-centred one many small ones; neither holds on
    both, and the marginal route does (``bench/reports/robustness.md``). ``centred`` and
    ``noncentred`` stay available for comparison.
    """

    family: Literal["logit_normal", "beta_binomial"] = Field(
        default="logit_normal",
        description="logit_normal: theta_i ~ Normal(mu, tau) on the logit scale; "
        "beta_binomial: y_i ~ BetaBinomial with mean logit^-1(mu) and concentration phi.",
    )
    parametrisation: Literal["centred", "noncentred", "marginal"] = Field(
        default="marginal",
        description="marginal (theta integrated out; the default), centred or noncentred "
        "(logit-normal family).",
    )
    moderators: Names = Field(
        default=(),
        description="Study-level moderators (meta-regression): table columns, log_<column> "
        "for the log of a positive one.",
    )
    reference: dict[str, Str | Float] = Field(
        default_factory=dict,
        description="Reference level (categorical) or centre (continuous) per moderator; "
        "defaults: the most common level and the median. A child config replaces it whole.",
    )


class PriorsConfig(FrozenModel):
    """Priors (``[priors.mu]``, ``[priors.tau]``, ``[priors.beta]``, ``[priors.phi]``).

    μ is the logit of the pooled proportion, τ the between-study SD (logit-normal), β the
    moderator effects (log odds ratios) and φ the beta-binomial concentration.
    """

    mu: MuPrior = Field(
        default=MuPrior.model_validate({"dist": "Normal", "mu": 0.0, "sigma": 2.5}),
        description="Prior of mu, the logit of the pooled proportion (Normal).",
    )
    tau: TauPrior = Field(
        default=TauPrior.model_validate({"dist": "HalfNormal", "sigma": 1.0}),
        description="Prior of tau, the between-study SD on the logit scale "
        "(HalfNormal, HalfCauchy, Exponential or LogNormal).",
    )
    beta: BetaPrior = Field(
        default=BetaPrior.model_validate({"dist": "Normal", "mu": 0.0, "sigma": 1.0}),
        description="Prior of each moderator effect, a log odds ratio (Normal).",
    )
    phi: PhiPrior = Field(
        default=PhiPrior.model_validate({"dist": "Exponential", "lam": 0.01}),
        description="Prior of phi, the beta-binomial concentration "
        "(Exponential, Gamma, LogNormal or HalfNormal).",
    )


class SamplerConfig(FrozenModel):
    """MCMC settings (``[sampler]``). ``seed`` fixes every random number of a fit."""

    backend: Literal["nutpie", "pymc", "numpyro"] = Field(
        default="nutpie", description="NUTS sampler."
    )
    chains: Int = Field(default=4, ge=1, description="Number of chains.")
    # nutpie adapts in a few hundred steps here (ESS(tau) is unchanged vs 1000); it needs >= 1
    tune: Int = Field(default=500, ge=1, description="Warm-up (tuning) iterations per chain.")
    draws: Int = Field(default=1000, ge=1, description="Kept draws per chain.")
    seed: Int = Field(default=20231123, description="Seed of every random number of the fit.")
    target_accept: Float = Field(
        default=0.9, gt=0.0, lt=1.0, description="Target acceptance rate of NUTS, in (0, 1)."
    )


class DiagnosticsConfig(FrozenModel):
    """Thresholds a fit must meet to be trusted (``[diagnostics]``; Vehtari et al. 2021)."""

    max_rhat: Float = Field(default=1.01, description="Largest rank-normalised split R-hat.")
    min_ess_bulk: Float = Field(default=400.0, description="Smallest bulk effective sample size.")
    min_ess_tail: Float = Field(default=400.0, description="Smallest tail effective sample size.")
    max_divergences: Int = Field(default=0, description="Most divergent transitions allowed.")
    min_bfmi: Float = Field(default=0.3, description="Smallest E-BFMI of any chain.")


class Config(FrozenModel):
    """A complete, resolved model configuration.

    Its project root (``root``, what relative paths such as ``data.dir`` are resolved
    against) is not part of the config: it is neither compared, hashed nor written.
    """

    name: Str = Field(description="Config name (default: the file's stem); names results/<name>.")
    description: Str = Field(default="", description="One line saying what this config changes.")
    data: DataConfig = Field(default_factory=DataConfig, description="Which data the model sees.")
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="Likelihood family and parametrisation."
    )
    priors: PriorsConfig = Field(default_factory=PriorsConfig, description="Priors.")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig, description="MCMC settings.")
    diagnostics: DiagnosticsConfig = Field(
        default_factory=DiagnosticsConfig, description="Convergence thresholds."
    )
    _root: str = PrivateAttr(".")

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        """Build from keyword fields; the name may also come first, ``Config("x", ...)``."""
        if name is not None:
            data["name"] = name
        super().__init__(**data)

    @property
    def root(self) -> str:
        """Project root that relative paths (``data.dir``) are resolved against."""
        return self._root

    def __eq__(self, other: object) -> bool:
        """Compare every setting (not the root)."""
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # tables (data.keep) are not hashable

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved config as plain TOML-compatible data (no root)."""
        out: dict[str, Any] = to_plain(self)
        if not out["data"]["columns"]:  # unset: keep the hash of every config written before it
            del out["data"]["columns"]
        # a user table inside the project is stored relative to its root, so that the hash and
        # the provenance do not depend on where the checkout lives (from_dict resolves it back)
        table = out["data"]["table"]
        if is_table_path(table) and Path(table).is_absolute():
            root = Path(self.root).absolute()
            if Path(table).is_relative_to(root):
                out["data"]["table"] = Path(table).relative_to(root).as_posix()
        return out

    def hash(self) -> str:
        """Return the SHA-256 of the resolved config (stable across runs and machines)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def data_dir(self) -> Path:
        """The data folder, resolved against the root."""
        path = Path(self.data.dir)
        return path if path.is_absolute() else Path(self.root) / path

    def replace(self, **overrides: Any) -> Config:
        """Return a validated copy with dotted-key overrides.

        E.g. ``cfg.replace(**{"sampler.seed": 2})``; values are Python values (a prior may be
        a :class:`Prior` or a table).
        """
        raw = self.to_dict()
        for key, value in overrides.items():
            set_dotted(raw, key, value, "<replace>")
        return from_dict(raw, source="<replace>", root=self.root)


def apply_overrides(config: Config, overrides: Overrides) -> Config:
    """Return ``config`` with ``overrides`` applied: the one override path of a loaded config.

    Parameters
    ----------
    config : Config
        A loaded config.
    overrides : dict or list of "key=value", optional
        Dotted keys, e.g. ``{"sampler.seed": 7}`` or ``["sampler.seed=7"]`` (values in TOML).

    Returns
    -------
    Config
        ``config`` itself when there is nothing to apply.
    """
    parsed = parse_overrides(overrides)
    return config.replace(**parsed) if parsed else config


# --------------------------------------------------------------------------- files

#: Tables that hold user data rather than settings: a child config replaces them whole, so
#: ``keep = {}`` really clears the parent's filters.
_REPLACED_TABLES = {"keep", "reference", "columns"}


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Merge ``child`` into ``base``: tables key by key, everything else replaced.

    A prior table is replaced whole when its ``dist`` changes (parameters don't carry over
    between families), and so are the data tables ``keep`` and ``reference``.
    """
    out = dict(base)
    for k, v in child.items():
        b = out.get(k)
        if (
            isinstance(v, dict)
            and isinstance(b, dict)
            and k not in _REPLACED_TABLES
            and not ("dist" in v and v.get("dist") != b.get("dist"))
        ):
            out[k] = _merge(b, v)
        else:
            out[k] = v
    return out


def _read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one config file as plain data, its ``extends`` chain merged in.

    ``chain`` holds the files that extend this one (a cycle is an error). This is the one
    function that reads a config file (``tests/seeds.py`` hooks it).
    """
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {cycle}")
    raw = read_toml(path)
    _resolve_table_path(raw, path.parent)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a path string")
    base = _read_raw(path.parent / parent, (*chain, path))
    base.pop("name", None)  # a child is its own config: its name comes from itself or its file
    return _merge(base, raw)


def is_table_path(table: str) -> bool:
    """Whether ``data.table`` names a file (``x.csv``, ``dir/x``) rather than a shipped table."""
    return table.endswith(".csv") or "/" in table or "\\" in table


def _resolve_table_path(raw: dict[str, Any], folder: Path) -> None:
    """Make a relative ``data.table`` path absolute, from the folder of the file that sets it."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    table = data.get("table")
    if isinstance(table, str) and is_table_path(table) and not Path(table).is_absolute():
        data["table"] = str(folder / table)


def from_dict(raw: dict[str, Any], source: str = "<dict>", root: str | Path = ".") -> Config:
    """Build a validated :class:`Config` from plain data.

    Raises
    ------
    ConfigError
        Listing every problem with its dotted key.
    """
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("table"), str):
        table = data["table"]
        if is_table_path(table) and not Path(table).is_absolute():  # as to_dict writes it
            raw = {**raw, "data": {**data, "table": str(Path(root).absolute() / table)}}
    cfg = validate(Config, raw, source)
    cfg._root = str(root)
    return cfg


def load_config(path: str | Path, overrides: Overrides = None) -> Config:
    """Read a TOML config, follow ``extends``, apply overrides and validate.

    Parameters
    ----------
    path : path-like
        The TOML file. Its stem is the config's name unless it sets ``name``.
    overrides : dict or list of "key=value", optional
        Dotted-key overrides applied after inheritance (``{"priors.tau.sigma": 0.5}``).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or its config is invalid (every problem listed).
    """
    path = Path(path)
    raw = _read_raw(path)
    raw.setdefault("name", path.stem)
    parsed = parse_overrides(overrides)
    for key, value in parsed.items():
        set_dotted(raw, key, value, f"{path} (override)")
    source = f"{path} (overrides: {', '.join(parsed)})" if parsed else str(path)
    return from_dict(raw, source=source, root=find_root(path.resolve().parent))
