"""Settings of the risk layer: ``models/risk/default.toml`` as a validated :class:`RiskConfig`.

The TOML file has four tables (:class:`RiskFile`, whose JSON Schema ``bayes-va config schema
risk`` prints); the code reads the flat :class:`RiskConfig` built from it. Building the risk
models from a config is the risk layer's job (:func:`bayes_va.risk.build_model`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from bayes_va.config.base import (
    Bool,
    Float,
    FrozenModel,
    Int,
    Positive,
    Str,
    config_error,
    find_root,
    read_toml,
    validate,
)
from bayes_va.core.errors import ConfigError

#: The default risk config, relative to the project root.
DEFAULT_RISK_CONFIG = Path("models") / "risk" / "default.toml"
#: Posterior draws per term and the seed of every stream, unless the config says otherwise.
DEFAULT_DRAWS = 4000
DEFAULT_SEED = 20231123

# One definition of each setting's type, range and meaning, shared by the file and the config.
Draws = Annotated[Int, Field(ge=100, description="Posterior draws per term (>= 100).")]
Seed = Annotated[Int, Field(description="Seed of every stream: SeedSequence([seed, stream]).")]
Threshold = Annotated[
    Float, Field(gt=0.0, lt=1.0, description="Risk threshold of P(risk > threshold), in (0, 1).")
]
Calibration = Annotated[
    Literal["marginal", "mean_profile"],
    Field(
        description="marginal: the mean risk over the reference population equals the "
        "baseline; mean_profile: the risk at the mean profile does (for comparison)."
    ),
]
EndplateReading = Annotated[
    Literal["text", "table"],
    Field(
        description="Direction of the endplate-contact effect: text = no contact is the risk "
        "level (the authors' prose), table = contact is (Table 2's label)."
    ),
]
Replicates = Annotated[
    Int, Field(ge=0, description="Copies of the An cohort in the pseudo-cohort (0 = automatic).")
]
Results = Annotated[Str, Field(description="Results folder of the fit (or exact:CONFIG).")]
Baseline = Annotated[
    Literal["pooled", "predictive"],
    Field(description="pooled: the population mean proportion; predictive: a new centre's."),
]
Horizon = Annotated[
    Float, Field(gt=0.0, le=120.0, description="AVF horizon in months, in (0, 120].")
]
AvfReference = Annotated[
    Literal["reyhani", "unexposed"],
    Field(
        description="Population the AVF baseline describes: Reyhani 2025's brace/leakage mix, "
        "or unbraced patients without leakage."
    ),
]
# the keys of bayes_va.numerics.outcomes.PRIORS (tests/test_config_risk.py checks)
ContrastPrior = Annotated[
    Literal["jeffreys", "uniform"],
    Field(description="Prior of each group proportion of the AVF contrasts."),
]


# --------------------------------------------------------------------------- transport


class TransportPrior(FrozenModel):
    """Prior of the transport factor ``lambda``: ``Fixed(value)`` or ``Beta(alpha, beta)``.

    ``TransportPrior()`` is Beta(2, 2); ``TransportPrior("Fixed", value=0.0)`` is no transport.
    Draws come from :func:`bayes_va.risk.baselines.transport_draws`.
    """

    dist: Literal["Fixed", "Beta"] = "Beta"
    value: Float = 1.0
    alpha: Float = 2.0
    beta: Float = 2.0

    def __init__(self, dist: str | None = None, /, **data: Any) -> None:
        """Build from the family name (first) and its parameters."""
        if dist is not None:
            data["dist"] = dist
        super().__init__(**data)

    @model_validator(mode="after")
    def _check(self) -> TransportPrior:
        if self.dist == "Fixed" and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"transport: a fixed lambda must lie in [0, 1], got {self.value}")
        if self.dist == "Beta" and not (self.alpha > 0 and self.beta > 0):
            raise ValueError(
                f"transport: Beta needs alpha > 0 and beta > 0, got {self.alpha}, {self.beta}"
            )
        return self

    def __str__(self) -> str:
        """Return ``lambda = v`` or ``lambda ~ Beta(a, b)``."""
        if self.dist == "Fixed":
            what = {0.0: " (no transport)", 1.0: " (full transport)"}.get(self.value, "")
            return f"lambda = {self.value:g}{what}"
        return f"lambda ~ Beta({self.alpha:g}, {self.beta:g})"

    @classmethod
    def parse(cls, text: str) -> TransportPrior:
        """Parse ``"1"``, ``"0.5"`` (fixed) or ``"beta:2,2"`` / ``"Beta(2, 2)"``.

        Raises
        ------
        ConfigError
            When ``text`` is neither, or out of range.
        """
        t = text.strip()
        m = re.fullmatch(r"(?i)beta\s*(?::|\()\s*([^,\s]+)\s*,\s*([^)\s]+)\s*\)?", t)
        try:
            if m:
                return cls("Beta", alpha=float(m.group(1)), beta=float(m.group(2)))
            return cls("Fixed", value=float(t))
        except ValueError:  # float() or the range check (a ValidationError)
            raise ConfigError(
                f"lambda {text!r}: give a number in [0, 1] (1 = full transport, 0 = none) or "
                "beta:A,B (e.g. beta:2,2)"
            ) from None


class FixedTransport(FrozenModel):
    """``lambda`` fixed: 1 = full transport, 0 = none."""

    dist: Literal["Fixed"]
    value: Float = Field(ge=0.0, le=1.0, description="lambda, in [0, 1].")


class BetaTransport(FrozenModel):
    """``lambda ~ Beta(alpha, beta)``: partial transport."""

    dist: Literal["Beta"]
    alpha: Positive = Field(description="First shape (> 0).")
    beta: Positive = Field(description="Second shape (> 0).")


# --------------------------------------------------------------------------- the cohort


class LKJCorrelation(FrozenModel):
    """The within-group correlation matrix of the copula ~ LKJ(eta), drawn per cohort draw.

    Each correlation's prior is Beta(eta - 1 + K/2, eta - 1 + K/2) on (-1, 1) (K covariates),
    symmetric about 0 with SD ``1 / sqrt(2 eta + K - 1)``: the sign of an association is not
    assumed. ``eta = 1`` is uniform over correlation matrices; larger ``eta`` shrinks to 0.
    """

    dist: Literal["LKJ"]
    eta: Positive = Field(description="LKJ shape (> 0): 1 = uniform, larger = weaker.")

    def __str__(self) -> str:
        """Return ``LKJ(eta)``."""
        return f"LKJ({self.eta:g})"


class ExchangeableCorrelation(FrozenModel):
    """A fixed exchangeable correlation ``rho`` between every pair of covariates (0: none)."""

    dist: Literal["Exchangeable"]
    rho: Float = Field(
        ge=-0.2, lt=1.0, description="Correlation of every pair, in [-0.2, 1) (0 = independent)."
    )

    def __str__(self) -> str:
        """Return ``rho = r (exchangeable)``."""
        return "independent (rho = 0)" if self.rho == 0 else f"rho = {self.rho:g} (exchangeable)"


Correlation = Annotated[LKJCorrelation | ExchangeableCorrelation, Field(discriminator="dist")]


class CohortTable(FrozenModel):
    """``[cohort]``: the An 2021 calibration cohort of the recompression and revision models.

    ``copula``: a Gaussian copula over Table 1's per-group marginals (binary, normal, gamma),
    integrated with scrambled Sobol' points; the between-covariate correlations get the prior
    ``correlation``, and Table 1's means, SDs and counts their sampling distributions
    (``table1_error``), both drawn ``draws`` times. ``permutation``: the earlier cohort of
    exact marginals with independently permuted columns (no integration error estimate).
    """

    method: Literal["copula", "permutation"] = Field(
        default="copula",
        description="copula: Gaussian copula + scrambled Sobol' points; permutation: exact "
        "marginals, independent columns (the earlier cohort, [recompression] replicates).",
    )
    points_log2: Int = Field(
        default=7, ge=2, le=14, description="2^m Sobol' points per outcome group and replicate."
    )
    replicates: Int = Field(
        default=8,
        ge=2,
        le=64,
        description="Independent Sobol' scrambles; their spread gives the integration MCSE.",
    )
    draws: Int = Field(
        default=200,
        ge=1,
        description="Draws of the cohort's distribution (Table 1 summaries, correlations); "
        "the posterior draws are split into this many blocks.",
    )
    table1_error: Bool = Field(
        default=True,
        description="Draw Table 1's means, SDs and proportions from their sampling "
        "distributions given the group sizes.",
    )
    mcse_fraction: Float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Warn when the integration MCSE exceeds this fraction of the posterior SD.",
    )
    correlation: Correlation = Field(
        default_factory=lambda: LKJCorrelation(dist="LKJ", eta=2.0),
        description="Prior of the within-group correlations of the copula: LKJ(eta) or a "
        "fixed exchangeable rho; default LKJ(2).",
    )


# --------------------------------------------------------------------------- the file


class DrawsTable(FrozenModel):
    """``[draws]``: draws, seed and summaries."""

    n: Draws = DEFAULT_DRAWS
    seed: Seed = DEFAULT_SEED
    threshold: Threshold = 0.1
    calibration: Calibration = "marginal"


class RecompressionTable(FrozenModel):
    """``[recompression]``: the An 2021 model."""

    endplate_reading: EndplateReading = "text"
    replicates: Replicates = 0


class RevisionTable(FrozenModel):
    """``[revision]``: the revision baseline and the transport of An's effects."""

    results: Results = "results/base"
    baseline: Baseline = "pooled"
    transport: Annotated[FixedTransport | BetaTransport, Field(discriminator="dist")] = Field(
        default_factory=lambda: BetaTransport(dist="Beta", alpha=2.0, beta=2.0),
        description="Prior of the transport factor lambda: Fixed(value) or Beta(alpha, beta); "
        "default Beta(2, 2).",
    )


class AvfTable(FrozenModel):
    """``[avf]``: the AVF baseline and contrasts."""

    results: Results = "results/avf"
    horizon_months: Horizon = 12.0
    reference: AvfReference = "reyhani"
    contrast_prior: ContrastPrior = "jeffreys"


class RiskFile(FrozenModel):
    """A risk config file (``models/risk/default.toml``) as written."""

    name: Str = Field(default="default", description="Config name (default: the file's stem).")
    description: Str = Field(default="", description="One line saying what this config is for.")
    draws: DrawsTable = Field(
        default_factory=DrawsTable, description="Draws, seed, threshold and calibration."
    )
    recompression: RecompressionTable = Field(
        default_factory=RecompressionTable, description="The An 2021 recompression model."
    )
    revision: RevisionTable = Field(
        default_factory=RevisionTable,
        description="The revision baseline and the transport of An's effects to revision.",
    )
    avf: AvfTable = Field(
        default_factory=AvfTable, description="The AVF baseline and the brace/leakage contrasts."
    )
    cohort: CohortTable = Field(
        default_factory=CohortTable,
        description="The An 2021 calibration cohort: copula, Sobol' points, correlation prior.",
    )

    def to_config(self) -> RiskConfig:
        """Return the flat :class:`RiskConfig` of this file."""
        return RiskConfig(
            name=self.name,
            description=self.description,
            draws=self.draws.n,
            seed=self.draws.seed,
            threshold=self.draws.threshold,
            calibration=self.draws.calibration,
            endplate_reading=self.recompression.endplate_reading,
            replicates=self.recompression.replicates,
            revision_results=self.revision.results,
            baseline=self.revision.baseline,
            transport=TransportPrior(**self.revision.transport.model_dump()),
            avf_results=self.avf.results,
            horizon_months=self.avf.horizon_months,
            avf_reference=self.avf.reference,
            contrast_prior=self.avf.contrast_prior,
            cohort=self.cohort,
        )


# --------------------------------------------------------------------------- the config


class RiskConfig(FrozenModel):
    """Settings of the risk layer.

    Attributes
    ----------
    name : str
        Config name.
    draws, seed : int
        Posterior draws per term, and the seed of every stream (``[draws] n, seed``).
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
    cohort : CohortTable
        How the An calibration cohort is built (``[cohort]``).
    """

    name: Str = "default"
    description: Str = ""
    draws: Draws = DEFAULT_DRAWS
    seed: Seed = DEFAULT_SEED
    threshold: Threshold = 0.1
    endplate_reading: EndplateReading = "text"
    calibration: Calibration = "marginal"
    replicates: Replicates = 0
    revision_results: Results = "results/base"
    baseline: Baseline = "pooled"
    transport: TransportPrior = Field(default_factory=TransportPrior)
    avf_results: Results = "results/avf"
    horizon_months: Horizon = 12.0
    avf_reference: AvfReference = "reyhani"
    contrast_prior: ContrastPrior = "jeffreys"
    cohort: CohortTable = Field(default_factory=CohortTable)


def risk_config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> RiskConfig:
    """Build a :class:`RiskConfig` from TOML-shaped data (:class:`RiskFile`).

    Raises
    ------
    ConfigError
        Listing every problem (unknown keys, wrong types, out of range) with its dotted key.
    """
    return validate(RiskFile, dict(raw), source).to_config()


def default_risk_config_path(start: Path | None = None) -> Path:
    """Return ``models/risk/default.toml`` of the project holding ``start`` (default: cwd).

    Raises
    ------
    ConfigError
        When there is no such file (outside a project checkout).
    """
    root = find_root((start or Path.cwd()).resolve())
    path = root / DEFAULT_RISK_CONFIG
    if not path.is_file():
        raise ConfigError(
            f"no risk config given and the default {DEFAULT_RISK_CONFIG} is not in the project "
            f"root {root} (found from the current directory): run from the project folder or "
            "pass a config (--config FILE)"
        )
    return path


def load_risk_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RiskConfig:
    """Read a risk config and apply field overrides.

    Parameters
    ----------
    path : path-like, optional
        The TOML file; default ``models/risk/default.toml`` of the project root found from the
        current directory (:func:`default_risk_config_path`). Its stem is the name unless it
        sets ``name``.
    overrides : mapping, optional
        :class:`RiskConfig` field names, e.g. ``{"transport": TransportPrior("Fixed", value=1)}``.

    Returns
    -------
    RiskConfig

    Raises
    ------
    ConfigError
        When the file is missing or invalid, or an override is unknown or invalid.
    """
    path = default_risk_config_path() if path is None else Path(path)
    raw = read_toml(path, "risk config")
    raw.setdefault("name", path.stem)
    cfg = risk_config_from_dict(raw, str(path))
    if overrides:
        merged = {**dict(cfg), **dict(overrides)}
        try:
            cfg = RiskConfig.model_validate(merged)
        except ValidationError as exc:
            raise config_error(exc, RiskConfig, f"{path} (overrides)") from None
    return cfg
