"""Build the risk model of an outcome from a :class:`~bayes_va.config.risk.RiskConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bayes_va.config.risk import RiskConfig
from bayes_va.numerics import outcomes
from bayes_va.risk.baselines import load_configured_source
from bayes_va.risk.builders import avf_model, recompression_model, revision_model
from bayes_va.risk.constants import OUTCOMES
from bayes_va.risk.errors import RiskInputError
from bayes_va.risk.layer import RiskModel


def build_model(
    outcome: str,
    config: RiskConfig | None = None,
    *,
    source: Any = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """Return the risk model of ``outcome`` under ``config``.

    Parameters
    ----------
    outcome : {"recompression", "revision", "avf"}
        Which risk (:data:`~bayes_va.risk.constants.OUTCOMES`).
    config : RiskConfig, optional
        Draws, seed, baseline and transport choices (default: ``RiskConfig()``).
    source : optional
        Overrides the config's results folder for revision and AVF: a fit object, a results
        folder, or ``exact:CONFIG`` for revision. Unlike the configured default folder, it is
        not checked against the expected model config.
    data_dir : str or Path, optional
        Folder of the data tables (default: :func:`~bayes_va.data.tables.default_data_dir`).

    Raises
    ------
    RiskInputError
        For an unknown outcome, or a default results folder fitted from another config.
    """
    cfg = config or RiskConfig()
    common: dict[str, Any] = {"n_draws": cfg.draws, "seed": cfg.seed, "data_dir": data_dir}
    an: dict[str, Any] = {
        "endplate_reading": cfg.endplate_reading,
        "calibration": cfg.calibration,
        "replicates": cfg.replicates or None,
        "cohort": cfg.cohort,
    }
    if outcome == "recompression":
        return recompression_model(**common, **an)
    if outcome == "revision":
        src = load_configured_source(cfg.revision_results, outcome) if source is None else source
        return revision_model(src, baseline=cfg.baseline, transport=cfg.transport, **common, **an)
    if outcome == "avf":
        src = load_configured_source(cfg.avf_results, outcome) if source is None else source
        return avf_model(
            src,
            horizon_months=cfg.horizon_months,
            baseline=cfg.baseline,
            reference=cfg.avf_reference,
            contrast_prior=outcomes.PRIORS[cfg.contrast_prior],
            **common,
        )
    raise RiskInputError(f"outcome is {outcome!r}; allowed: {', '.join(OUTCOMES)}")
