"""Settings of the risk layer: :class:`RiskConfig`, reading it from TOML, and building the
model of an outcome from it."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from bayes_va.core.errors import ConfigError
from bayes_va.numerics import outcomes
from bayes_va.risk.baselines import TransportPrior
from bayes_va.risk.builders import avf_model, recompression_model, revision_model
from bayes_va.risk.constants import DEFAULT_DRAWS, DEFAULT_SEED, OUTCOMES
from bayes_va.risk.errors import RiskInputError
from bayes_va.risk.layer import RiskModel


@dataclass(frozen=True)
class RiskConfig:
    """Settings of the risk layer (``models/risk/default.toml``).

    Attributes
    ----------
    name : str
        Config name.
    draws, seed : int
        Posterior draws per term, and the seed of every stream.
    threshold : float
        Default risk threshold for P(risk > threshold).
    endplate_reading : {"text", "table"}
        Direction of the endplate-contact effect.
    calibration : {"marginal", "mean_profile"}
        How the baseline is attached to the reference population.
    replicates : int
        Pseudo-cohort size in copies of the An cohort (0 = automatic, 8 for An).
    revision_results : str
        Revision fit (results folder, or ``exact:models/base.toml``).
    baseline : {"pooled", "predictive"}
        Revision/AVF baseline: population mean or a new centre.
    transport : TransportPrior
        Prior of lambda.
    avf_results : str
        AVF meta-regression results folder.
    horizon_months : float
        AVF horizon.
    avf_reference : {"reyhani", "unexposed"}
        Population the AVF baseline describes.
    contrast_prior : {"jeffreys", "uniform"}
        Prior of each group proportion of the AVF contrasts.
    """

    name: str = "default"
    description: str = ""
    draws: int = DEFAULT_DRAWS
    seed: int = DEFAULT_SEED
    threshold: float = 0.1
    endplate_reading: Literal["text", "table"] = "text"
    calibration: Literal["marginal", "mean_profile"] = "marginal"
    replicates: int = 0
    revision_results: str = "results/base"
    baseline: Literal["pooled", "predictive"] = "pooled"
    transport: TransportPrior = field(default_factory=TransportPrior)
    avf_results: str = "results/avf"
    horizon_months: float = 12.0
    avf_reference: Literal["reyhani", "unexposed"] = "reyhani"
    contrast_prior: Literal["jeffreys", "uniform"] = "jeffreys"

    def __post_init__(self) -> None:
        checks = {
            "draws": self.draws >= 100,
            "replicates": self.replicates >= 0,
            "threshold": 0.0 < self.threshold < 1.0,
            "horizon_months": 0.0 < self.horizon_months <= 120.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"risk config: '{key}' = {getattr(self, key)!r} is out of range")
        for key in (
            "endplate_reading",
            "calibration",
            "baseline",
            "avf_reference",
            "contrast_prior",
        ):
            allowed = _LITERALS[key]
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"risk config: '{key}' is {getattr(self, key)!r}; allowed: {', '.join(allowed)}"
                )


_LITERALS = {
    "endplate_reading": ("text", "table"),
    "calibration": ("marginal", "mean_profile"),
    "baseline": ("pooled", "predictive"),
    "avf_reference": ("reyhani", "unexposed"),
    "contrast_prior": tuple(outcomes.PRIORS),
}
_TOML_KEYS = {  # TOML key -> field name, per table
    "draws": {"n": "draws", "seed": "seed", "threshold": "threshold", "calibration": "calibration"},
    "recompression": {"endplate_reading": "endplate_reading", "replicates": "replicates"},
    "revision": {"results": "revision_results", "baseline": "baseline"},
    "avf": {
        "results": "avf_results",
        "horizon_months": "horizon_months",
        "reference": "avf_reference",
        "contrast_prior": "contrast_prior",
    },
}


def _typed(value: Any, like: Any, key: str, source: str) -> Any:
    if isinstance(like, bool) or isinstance(value, bool):
        raise ConfigError(f"{source}: '{key}' has the wrong type: {value!r}")
    if isinstance(like, int) and isinstance(value, int):
        return value
    if isinstance(like, float) and isinstance(value, int | float):
        return float(value)
    if isinstance(like, str) and isinstance(value, str):
        return value
    raise ConfigError(f"{source}: '{key}' must be a {type(like).__name__}, got {value!r}")


def risk_config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> RiskConfig:
    """Build a :class:`RiskConfig` from TOML-shaped data; unknown keys are errors."""
    defaults = RiskConfig()
    kwargs: dict[str, Any] = {}
    allowed_top = {"name", "description", *_TOML_KEYS}
    unknown = sorted(set(raw) - allowed_top)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(allowed_top)}")
    for key in ("name", "description"):
        if key in raw:
            kwargs[key] = _typed(raw[key], getattr(defaults, key), key, source)
    for table, keys in _TOML_KEYS.items():
        sub = dict(raw.get(table, {}))
        if not isinstance(raw.get(table, {}), Mapping):
            raise ConfigError(f"{source}: '{table}' must be a table")
        transport = sub.pop("transport", None) if table == "revision" else None
        bad = sorted(set(sub) - set(keys))
        if bad:
            extra = ", transport" if table == "revision" else ""
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(f'{table}.{b}' for b in bad)}; allowed "
                f"here: {', '.join(keys)}{extra}"
            )
        for k, v in sub.items():
            kwargs[keys[k]] = _typed(v, getattr(defaults, keys[k]), f"{table}.{k}", source)
        if transport is not None:
            kwargs["transport"] = _transport_from_dict(transport, source)
    return RiskConfig(**kwargs)


def _transport_from_dict(raw: Any, source: str) -> TransportPrior:
    if not isinstance(raw, Mapping) or "dist" not in raw:
        raise ConfigError(f"{source}: 'revision.transport' must be a table with a 'dist' key")
    params = {"Fixed": ("value",), "Beta": ("alpha", "beta")}
    dist = raw["dist"]
    if dist not in params:
        raise ConfigError(f"{source}: 'revision.transport.dist' is {dist!r}; allowed: Fixed, Beta")
    given = {k: v for k, v in raw.items() if k != "dist"}
    if sorted(given) != sorted(params[dist]):
        raise ConfigError(
            f"{source}: 'revision.transport' ({dist}) takes exactly: {', '.join(params[dist])}"
        )
    vals = {k: _typed(v, 1.0, f"revision.transport.{k}", source) for k, v in given.items()}
    return TransportPrior(dist, **vals)


def load_risk_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RiskConfig:
    """Read a risk config (default ``models/risk/default.toml``) and apply field overrides.

    ``overrides`` are :class:`RiskConfig` field names (``{"transport": TransportPrior(...)}``).
    """
    if path is None:
        path = Path(__file__).resolve().parents[2] / "models" / "risk" / "default.toml"
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"risk config not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw.setdefault("name", path.stem)
    cfg = risk_config_from_dict(raw, str(path))
    if overrides:
        names = {f.name for f in fields(RiskConfig)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"unknown risk config override(s) {bad}; allowed: {sorted(names)}")
        cfg = replace(cfg, **dict(overrides))
    return cfg


def build_model(
    outcome: str,
    config: RiskConfig | None = None,
    *,
    source: Any = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """The risk model of ``outcome`` under ``config``.

    ``source`` overrides the config's results folder for revision and AVF (a fit object, a
    folder, or ``exact:CONFIG`` for revision).
    """
    cfg = config or RiskConfig()
    common = {"n_draws": cfg.draws, "seed": cfg.seed, "data_dir": data_dir}
    an = {
        "endplate_reading": cfg.endplate_reading,
        "calibration": cfg.calibration,
        "replicates": cfg.replicates or None,
    }
    if outcome == "recompression":
        return recompression_model(**common, **an)
    if outcome == "revision":
        src = cfg.revision_results if source is None else source
        return revision_model(src, baseline=cfg.baseline, transport=cfg.transport, **common, **an)
    if outcome == "avf":
        src = cfg.avf_results if source is None else source
        return avf_model(
            src,
            horizon_months=cfg.horizon_months,
            baseline=cfg.baseline,
            reference=cfg.avf_reference,
            contrast_prior=outcomes.PRIORS[cfg.contrast_prior],
            **common,
        )
    raise RiskInputError(f"outcome is {outcome!r}; allowed: {', '.join(OUTCOMES)}")
