"""The paper's analyses: ``paper/analyses.toml`` as a validated :class:`PaperConfig`.

``bayes-va paper`` fits each listed config and writes ``paper/build/results.json``. Paths and
glob patterns are relative to the project root. ``bayes-va config schema paper`` prints the
JSON Schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bayes_va.config.base import Bool, Float, FrozenModel, Names, Str, read_toml, validate


class PaperRisk(FrozenModel):
    """``[risk]``: patient-level risk of the example profiles."""

    revision_baseline: Literal["pooled", "predictive"] = Field(
        default="pooled",
        description="pooled: population mean proportion; predictive: a new centre.",
    )
    transport: Str = Field(
        default="beta:2,2",
        description="Prior of the transport factor lambda: a number in [0, 1] (1 = full, "
        "0 = none) or beta:A,B.",
    )
    avf_horizon_months: Float = Field(default=12.0, gt=0.0, description="AVF horizon in months.")
    threshold: Float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Report P(risk > threshold), in (0, 1)."
    )


class PaperCompare(FrozenModel):
    """``[compare]``: model comparison by marginal PSIS-LOO."""

    models: Names = Field(
        default=(), description="Configs compared (all fitted to the same studies), in order."
    )


class PaperOutcome(FrozenModel):
    """``[[outcomes]]``: one further outcome, named by its config alone.

    The paper fits ``config`` (and each ``sensitivity`` config) and writes the fit summary under
    ``results.json``'s ``outcomes`` list; ``paper.typ`` renders any such entry, so a new outcome
    needs a table, a config and this entry, no code.
    """

    key: Str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Identifier of the outcome (lower case, digits, _): the figure's file name "
        "and what the text looks the outcome up by.",
    )
    title: Str = Field(min_length=1, description="Heading of the outcome, e.g. 'Salvage surgery'.")
    config: Str = Field(description="The outcome's main model config, e.g. models/x/base.toml.")
    sensitivity: Names = Field(
        default=(), description="Sensitivity configs (glob patterns) of the same outcome."
    )


class PaperConfig(FrozenModel):
    """The analyses the paper needs (``paper/analyses.toml``)."""

    base: Str = Field(description="The main model config, e.g. models/base.toml.")
    sensitivity: Names = Field(
        default=(),
        description="Scenario configs (glob patterns) of the sensitivity table and figure.",
    )
    leave_one_out: Bool = Field(
        default=True, description="Add leave-one-study-out refits of the base."
    )
    subgroups: Names = Field(default=(), description="Subgroup / meta-regression configs.")
    avf: Names = Field(
        default=(), description="Adjacent vertebral fracture configs: the main model first."
    )
    avf_horizons_months: tuple[Float, ...] = Field(
        default=(12.0,), description="Horizons (months) of the AVF risk table."
    )
    risk: PaperRisk = Field(default_factory=PaperRisk, description="Patient-level risk.")
    compare: PaperCompare = Field(default_factory=PaperCompare, description="Model comparison.")
    outcomes: tuple[PaperOutcome, ...] = Field(
        default=(), description="Further outcomes, each fitted from its config alone."
    )

    @model_validator(mode="after")
    def _unique_outcome_keys(self) -> PaperConfig:
        keys = [o.key for o in self.outcomes]
        if dups := sorted({k for k in keys if keys.count(k) > 1}):
            raise ValueError(f"outcomes: duplicate key(s) {dups}")
        return self


def load_paper_config(path: str | Path) -> PaperConfig:
    """Read and validate ``paper/analyses.toml``.

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or invalid (every problem named by its key).
    """
    path = Path(path)
    return validate(PaperConfig, read_toml(path, "paper analyses"), str(path))
