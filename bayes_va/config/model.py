"""Model configurations: TOML files in ``models/`` turned into frozen, validated dataclasses.

A config may name a parent with ``extends = "base.toml"`` (a path relative to the file) and
change only a few keys; tables are merged key by key, everything else is replaced. Command-line
overrides (``--set priors.tau.sigma=0.5``) are applied last. Unknown keys and wrong types are
errors that name the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from bayes_va.core.errors import ConfigError

#: Prior families and their parameters (PyMC names). Values must be finite; scales positive.
PRIOR_FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "mu": {"Normal": ("mu", "sigma")},
    "beta": {"Normal": ("mu", "sigma")},
    "phi": {
        "Exponential": ("lam",),
        "Gamma": ("alpha", "beta"),
        "LogNormal": ("mu", "sigma"),
        "HalfNormal": ("sigma",),
    },
    "tau": {
        "HalfNormal": ("sigma",),
        "HalfCauchy": ("beta",),
        "Exponential": ("lam",),
        "LogNormal": ("mu", "sigma"),
    },
}
_POSITIVE_PARAMS = {"sigma", "beta", "lam", "alpha"}


@dataclass(frozen=True)
class Prior:
    """A prior: a distribution name and its parameters, e.g. ``HalfNormal(sigma=1)``."""

    dist: str
    params: dict[str, float]

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({args})"


@dataclass(frozen=True)
class DataConfig:
    """Which data a model sees.

    Attributes
    ----------
    table : {"revision", "avf"}
        The outcome table: ``revision_studies.csv`` or ``avf_cohorts.csv``.
    dir : str
        Data folder; relative paths are resolved against the project root.
    variants : tuple of str
        Rows of ``revision_variants.csv`` to apply (e.g. ``"lin2016_low"``; revision only).
    exclude : tuple of str
        Study ids to drop; each must exist.
    split_arms : bool
        Replace studies reported by arm (Hazzard 2014) with their arms (k = 15; revision only).
    keep : dict of str to list of str
        Keep only rows whose column equals one of the listed values, e.g.
        ``keep = {outcome = ["adjacent_fracture"], count_basis = ["stated"]}``. Every
        column and value must exist in the table (a typo is an error, not an empty filter).
    """

    table: Literal["revision", "avf"] = "revision"
    dir: str = "data"
    variants: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    split_arms: bool = False
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """Likelihood family and parametrisation.

    ``marginal`` is the default (logit-normal family): θ_i are integrated out by adaptive
    Gauss–Hermite quadrature, so the sampler sees μ, τ (and β) only and there is no funnel
    whatever the study sizes, then θ_i are drawn exactly from their conditionals. The centred
    form suits a few huge studies and the non-centred one many small ones; neither holds on
    both, and the marginal route does (``bench/reports/robustness.md``). ``centred`` and
    ``noncentred`` stay available for comparison.
    """

    family: Literal["logit_normal", "beta_binomial"] = "logit_normal"
    parametrisation: Literal["centred", "noncentred", "marginal"] = "marginal"
    #: Study-level moderators (meta-regression), see :mod:`bayes_va.data.moderators`.
    moderators: tuple[str, ...] = ()
    #: Reference level (categorical) or centre (continuous) per moderator; defaults are the
    #: most common level and the median.
    reference: dict[str, str | float] = field(default_factory=dict)


@dataclass(frozen=True)
class PriorsConfig:
    """Priors: μ (logit of the pooled proportion), τ (between-study SD, logit-normal),
    β (moderator effects, log odds ratios) and φ (beta-binomial concentration)."""

    mu: Prior = field(default_factory=lambda: Prior("Normal", {"mu": 0.0, "sigma": 2.5}))
    tau: Prior = field(default_factory=lambda: Prior("HalfNormal", {"sigma": 1.0}))
    beta: Prior = field(default_factory=lambda: Prior("Normal", {"mu": 0.0, "sigma": 1.0}))
    phi: Prior = field(default_factory=lambda: Prior("Exponential", {"lam": 0.01}))


@dataclass(frozen=True)
class SamplerConfig:
    """MCMC settings. ``seed`` fixes every random number of a fit."""

    backend: Literal["nutpie", "pymc", "numpyro"] = "nutpie"
    chains: int = 4
    tune: int = 500  # nutpie adapts in a few hundred steps here; ESS(τ) is unchanged vs 1000
    draws: int = 1000
    seed: int = 20231123
    target_accept: float = 0.9

    def __post_init__(self) -> None:
        for name, low in (("chains", 1), ("draws", 1), ("tune", 1)):  # nutpie needs tune >= 1
            if getattr(self, name) < low:
                raise ConfigError(f"'sampler.{name}' must be >= {low}, got {getattr(self, name)}")
        if not 0.0 < self.target_accept < 1.0:
            raise ConfigError(
                f"'sampler.target_accept' must lie in (0, 1), got {self.target_accept}"
            )


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Thresholds a fit must meet to be trusted (defaults follow Vehtari et al. 2021)."""

    max_rhat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0
    min_bfmi: float = 0.3


@dataclass(frozen=True)
class Config:
    """A complete, resolved model configuration."""

    name: str
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    priors: PriorsConfig = field(default_factory=PriorsConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    #: Project root that relative paths (``data.dir``) are resolved against; not hashed.
    root: str = field(default=".", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain TOML-compatible data (no ``root``)."""
        out = _to_plain(self)
        out.pop("root")
        return out

    def hash(self) -> str:
        """SHA-256 of the resolved config (stable across runs and machines)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def data_dir(self) -> Path:
        path = Path(self.data.dir)
        return path if path.is_absolute() else Path(self.root) / path

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted-key overrides, e.g. ``cfg.replace(**{"sampler.seed": 2})``."""
        raw = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(raw, key, value, "<replace>")
        return from_dict(raw, source="<replace>", root=self.root)


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Prior):
        return {"dist": obj.dist, **obj.params}
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp``; build nested dataclasses."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{source}: '{key}' is {value!r}; allowed: {allowed}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: '{key}' must be a list of strings, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a table, got {value!r}")
        _, vt = get_args(tp)
        return {str(k): _coerce(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if set(args) == {str, float}:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"{source}: '{key}' must be a string or a number")
            return float(value) if isinstance(value, int | float) else value
        raise TypeError(f"unsupported union {tp!r}")
    if tp is Prior:
        return _parse_prior(value, key, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a table, got {value!r}")
        return _build(tp, value, key, source)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r}")


def _build(cls: type, raw: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        allowed = ", ".join(k for k in fields if k != "root")
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}; "
            f"allowed here: {allowed}"
        )
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key, source)
    return cls(**kwargs)


def _parse_prior(raw: Any, key: str, source: str) -> Prior:
    which = key.rsplit(".", 1)[-1]
    families = PRIOR_FAMILIES[which]
    if not isinstance(raw, dict) or "dist" not in raw:
        raise ConfigError(f"{source}: '{key}' must be a table with a 'dist' key")
    dist = raw["dist"]
    if dist not in families:
        raise ConfigError(f"{source}: '{key}.dist' is {dist!r}; allowed: {', '.join(families)}")
    expected = families[dist]
    given = {k: v for k, v in raw.items() if k != "dist"}
    unknown = sorted(set(given) - set(expected))
    missing = [p for p in expected if p not in given]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(f'{key}.{k}' for k in unknown)} "
            f"for {dist}; its parameters are: {', '.join(expected)}"
        )
    if missing:
        raise ConfigError(f"{source}: '{key}' ({dist}) needs {', '.join(missing)}")
    params: dict[str, float] = {}
    for p in expected:
        v = given[p]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{source}: '{key}.{p}' must be a number, got {v!r}")
        if not math.isfinite(v):
            raise ConfigError(f"{source}: '{key}.{p}' must be finite, got {v!r}")
        if p in _POSITIVE_PARAMS and not v > 0:
            raise ConfigError(f"{source}: '{key}.{p}' must be > 0, got {v!r}")
        params[p] = float(v)
    return Prior(dist, params)


#: Tables that hold user data rather than settings: a child config replaces them whole, so
#: ``keep = {}`` really clears the parent's filters.
_REPLACED_TABLES = {"keep", "reference"}


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


def _set_dotted(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: cannot set '{key}': '{p}' is not a table")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (value in TOML syntax; bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    key = key.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key, parsed


def _read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {cycle}")
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a path string")
    base = _read_raw(path.parent / parent, (*chain, path))
    base.pop("name", None)  # a child is its own config: its name comes from itself or its file
    return _merge(base, raw)


def find_root(start: Path) -> Path:
    """The project root: the nearest ancestor with a ``pyproject.toml`` (or ``start``)."""
    for p in (start, *start.parents):
        if (p / "pyproject.toml").exists():
            return p
    return start


def from_dict(raw: dict[str, Any], source: str = "<dict>", root: str | Path = ".") -> Config:
    """Build a validated :class:`Config` from plain data."""
    raw = dict(raw)
    if "name" not in raw:
        raise ConfigError(f"{source}: missing 'name'")
    cfg = _build(Config, raw, "", source)
    return dataclasses.replace(cfg, root=str(root))


def load_config(path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Config:
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
    """
    path = Path(path)
    raw = _read_raw(path)
    raw.setdefault("name", path.stem)
    if isinstance(overrides, list):
        overrides = dict(parse_override(o) for o in overrides)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value, f"{path} (override)")
    return from_dict(raw, source=str(path), root=find_root(path.resolve().parent))
