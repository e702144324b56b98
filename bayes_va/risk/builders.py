"""Model builders: the recompression, revision and AVF risk models, and the transport table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from bayes_va.config.risk import CohortTable
from bayes_va.core.rng import stream_rng
from bayes_va.data.tables import load_table
from bayes_va.numerics import outcomes
from bayes_va.risk.baselines import (
    AVFSource,
    TransportPrior,
    avf_baseline,
    revision_baseline,
    transport_draws,
)
from bayes_va.risk.calibration import Calibration, calibrate
from bayes_va.risk.coefficients import Coefficients, an2021_coefficients
from bayes_va.risk.cohort import (
    CohortDesign,
    PseudoCohort,
    _an_table1,
    an2021_cohort_ranges,
    an2021_pseudo_cohort,
)
from bayes_va.risk.constants import (
    DEFAULT_DRAWS,
    DEFAULT_SEED,
    STREAM_AVF_EFFECTS,
    STREAM_CALIBRATION_TARGET,
    STREAM_COEFFICIENTS,
    FloatArray,
)
from bayes_va.risk.copula import an2021_copula_spec, describe_copula
from bayes_va.risk.errors import IntegrationWarning, RiskInputError
from bayes_va.risk.layer import LogisticLayer, RiskModel
from bayes_va.risk.profiles import _AN_COVARIATES, _AVF_COVARIATES, COVARIATES

_OUTCOME_TEXT = {
    "recompression": "recompression of the augmented vertebra (An 2021: height loss >= 15 % or "
    "kyphosis +10 degrees at 12-24 months)",
    "revision": "revision at the treated level (Takahashi 2023 cohorts)",
    "avf": "adjacent vertebral fracture",
}


def _an_parts(
    n_draws: int,
    seed: int,
    endplate_reading: Literal["text", "table"],
    data_dir: str | Path | None,
) -> tuple[Coefficients, FloatArray, dict[str, tuple[float, float]]]:
    coefs = an2021_coefficients(endplate_reading, data_dir)
    beta = coefs.draws(n_draws, stream_rng(seed, STREAM_COEFFICIENTS))
    return coefs, beta, an2021_cohort_ranges(data_dir)


def _an_calibration(
    beta: FloatArray,
    target: FloatArray,
    *,
    lam: FloatArray | None,
    calibration: str,
    cohort: CohortTable,
    replicates: int | None,
    seed: int,
    data_dir: str | Path | None,
) -> Calibration:
    """Calibrate the intercepts over the An cohort built as ``cohort.method`` says."""
    if calibration not in ("marginal", "mean_profile"):
        raise RiskInputError(f"calibration is {calibration!r}; allowed: marginal, mean_profile")
    if cohort.method == "permutation":
        pc = an2021_pseudo_cohort(replicates=replicates, seed=seed, data_dir=data_dir)
        return calibrate(
            CohortDesign.from_cohort(pc),
            beta=beta,
            target=target,
            x_ref=pc.mean,
            mode=calibration,
            lam=lam,
            mcse_fraction=cohort.mcse_fraction,
            seed=seed,
        )
    spec = an2021_copula_spec(cohort, len(target), seed, data_dir)
    design = spec.design(
        cohort.points_log2,
        cohort.replicates,
        description=describe_copula(spec, cohort.points_log2, cohort.replicates),
    )
    return calibrate(
        design,
        beta=beta,
        target=target,
        x_ref=spec.printed_mean,
        mode=calibration,
        lam=lam,
        mcse_fraction=cohort.mcse_fraction,
        seed=seed,
        spec=spec,
        points_log2=cohort.points_log2,
    )


def _check_integration(outcome: str, cal: Calibration) -> None:
    info = cal.integration()
    if info["exceeds"]:
        warnings.warn(
            f"{outcome}: the calibrated intercept's integration MCSE ({info['mcse']:.3g}) is "
            f"{info['ratio']:.2f} of its posterior SD (warning level {info['fraction']:g}); use "
            "more Sobol' points ([cohort] points_log2) or replicates",
            IntegrationWarning,
            stacklevel=3,
        )


def _an_defaults(x_ref: FloatArray, columns: tuple[str, ...]) -> dict[str, float]:
    k = columns.index("anterior_height_recovery_pct")
    return {"anterior_height_recovery": round(float(x_ref[k]), 2)}


def recompression_model(
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    endplate_reading: Literal["text", "table"] = "text",
    calibration: Literal["marginal", "mean_profile"] = "marginal",
    target_prior: outcomes.BetaPrior = outcomes.JEFFREYS,
    replicates: int | None = None,
    cohort: CohortTable | None = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """Build the recompression risk (An 2021) with the baseline calibrated to 82/257.

    Parameters
    ----------
    n_draws, seed : int
        Number of draws and the seed of every stream.
    endplate_reading : {"text", "table"}
        Direction of the endplate-contact effect (see :func:`an2021_coefficients`).
    calibration : {"marginal", "mean_profile"}
        Mean risk over the pseudo-cohort = target (default), or risk at the mean profile.
    target_prior : BetaPrior
        The target is ``pbar ~ Beta(82 + a, 175 + b)`` (default Jeffreys a = b = 1/2).
    replicates : int, optional
        ``permutation`` cohorts only: copies of the cohort (default: enough for
        :data:`PSEUDO_COHORT_MIN_ROWS` rows; 8 for An's 257 patients).
    cohort : CohortTable, optional
        How the calibration cohort is built (default: the copula of
        :mod:`bayes_va.risk.copula`, ``CohortTable()``).
    data_dir : path, optional
        Data folder (default: the shipped ``data/``).

    Warns
    -----
    IntegrationWarning
        When the intercept's integration MCSE exceeds ``cohort.mcse_fraction`` of its
        posterior SD.
    """
    cohort = cohort or CohortTable()
    coefs, beta, ranges = _an_parts(n_draws, seed, endplate_reading, data_dir)
    groups, _ = _an_table1(data_dir)
    a, b = target_prior.posterior(groups[0], sum(groups))
    target = stream_rng(seed, STREAM_CALIBRATION_TARGET).beta(a, b, n_draws)
    cal = _an_calibration(
        beta,
        target,
        lam=None,
        calibration=calibration,
        cohort=cohort,
        replicates=replicates,
        seed=seed,
        data_dir=data_dir,
    )
    _check_integration("recompression", cal)
    notes = (
        f"effects: An 2021 Table 2, beta ~ Normal(B, SE) independently; endplate reading "
        f"'{endplate_reading}' (no_endplate_contact B = {coefs.mean[3]:+.3f})",
        f"baseline: mean risk over the pseudo-cohort = pbar ~ Beta({a:g}, {b:g}) "
        f"({groups[0]}/{sum(groups)} events, {target_prior.label} prior); calibration "
        f"'{calibration}'",
        f"reference population: {cal.design.description}",
    )
    return RiskModel(
        "recompression",
        _OUTCOME_TEXT["recompression"],
        _AN_COVARIATES,
        LogisticLayer(coefs.columns, cal.alpha, beta, cal.x_ref),
        _an_defaults(cal.x_ref, coefs.columns),
        ranges,
        notes,
        {"baseline": target},
        cal,
        "the An 2021 cohort (Table 1; 82 of 257 patients with recompression)",
    )


def revision_model(
    baseline_source: Any,
    *,
    baseline: Literal["pooled", "predictive"] = "pooled",
    transport: TransportPrior | None = None,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    endplate_reading: Literal["text", "table"] = "text",
    calibration: Literal["marginal", "mean_profile"] = "marginal",
    replicates: int | None = None,
    cohort: CohortTable | None = None,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """Build the revision risk: pooled revision baseline plus transported recompression effects.

    ``alpha_s`` is calibrated so the mean risk over the An pseudo-cohort equals the baseline
    draw ``b_s``; effects are ``lambda_s * beta_s`` with the same ``beta_s`` draws as
    :func:`recompression_model` (same seed). See the module docstring.

    Parameters
    ----------
    baseline_source
        See :func:`revision_baseline`.
    baseline : {"pooled", "predictive"}
        Population mean proportion or a new centre's proportion.
    transport : TransportPrior, optional
        Prior of ``lambda`` (default Beta(2, 2)).
    cohort : CohortTable, optional
        How the calibration cohort is built (as :func:`recompression_model`).

    Warns
    -----
    IntegrationWarning
        As :func:`recompression_model`.
    """
    transport = transport or TransportPrior()
    cohort = cohort or CohortTable()
    coefs, beta, ranges = _an_parts(n_draws, seed, endplate_reading, data_dir)
    base = revision_baseline(baseline_source, kind=baseline, n_draws=n_draws, seed=seed)
    lam = transport_draws(transport, n_draws, seed)
    cal = _an_calibration(
        beta,
        base,
        lam=lam,
        calibration=calibration,
        cohort=cohort,
        replicates=replicates,
        seed=seed,
        data_dir=data_dir,
    )
    _check_integration("revision", cal)
    notes = (
        f"baseline: revision {baseline} proportion ({_describe(baseline_source)})",
        f"effects: An 2021 recompression effects transported to revision, {transport}",
        f"reference population: {cal.design.description}; x_ref = Table 1's pooled means "
        f"(calibration '{calibration}')",
    )
    return RiskModel(
        "revision",
        _OUTCOME_TEXT["revision"],
        _AN_COVARIATES,
        LogisticLayer(coefs.columns, cal.alpha, cal.effects, cal.x_ref),
        _an_defaults(cal.x_ref, coefs.columns),
        ranges,
        notes,
        {"baseline": base, "lambda": lam},
        cal,
        "a population with the An 2021 cohort's covariate distribution (Table 1)",
    )


def _describe(source: Any) -> str:
    if isinstance(source, str | Path):
        return str(source)
    cfg = getattr(source, "config", None)
    return f"fit '{cfg.name}'" if cfg is not None else type(source).__name__


def _avf_groups(data_dir: str | Path | None) -> dict[str, tuple[int, int]]:
    """(events, n) of each AVF group: braced, unbraced, none, spike, round, any."""
    t = load_table("avf_contrasts", data_dir)

    def grp(contrast: str, reference: bool) -> tuple[int, int]:
        r = t[(t["contrast"] == contrast) & (t["is_reference"] == ("yes" if reference else "no"))]
        if len(r) != 1:
            raise RiskInputError(f"avf_contrasts.csv: contrast {contrast!r} is incomplete")
        return int(r.iloc[0]["events"]), int(r.iloc[0]["n"])

    return {
        "braced": grp("brace_avf", False),
        "unbraced": grp("brace_avf", True),
        "spike": grp("leakage_type_avf", False),
        "round": grp("leakage_type_avf", True),
        "any": grp("intradiscal_leakage_avf", False),
        "none": grp("intradiscal_leakage_avf", True),
    }


def avf_model(
    baseline_source: AVFSource | str | Path,
    *,
    horizon_months: float = 12.0,
    baseline: Literal["pooled", "predictive"] = "pooled",
    reference: Literal["reyhani", "unexposed"] = "reyhani",
    contrast_prior: outcomes.BetaPrior = outcomes.JEFFREYS,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    data_dir: str | Path | None = None,
) -> RiskModel:
    """Build the AVF risk by a horizon: meta-regression baseline plus brace and leakage effects.

    Effects are log odds ratios from exact binomials per group (stream ``STREAM_AVF_EFFECTS``):
    braced (1/31) vs unbraced (17/220); spike (7/9), round (0/2) and any-type (7/11) intradiscal
    leakage vs none (11/240). They are crude (unadjusted) within-study contrasts; the braced group
    was followed about half as long as the unbraced one.

    Parameters
    ----------
    baseline_source : fit with ``linear_predictor`` or a results folder
        The AVF meta-regression (``bayes_va.fit("models/avf/base.toml")``).
    horizon_months : float
        Follow-up horizon (3 or 12 months are the reported ones).
    reference : {"reyhani", "unexposed"}
        Population the baseline describes: Reyhani's brace/leakage mix (default) or unbraced
        patients without leakage.
    """
    if reference not in ("reyhani", "unexposed"):
        raise RiskInputError(f"reference is {reference!r}; allowed: reyhani, unexposed")
    base = avf_baseline(
        baseline_source, horizon_months=horizon_months, kind=baseline, n_draws=n_draws, seed=seed
    )
    g = _avf_groups(data_dir)
    rng = stream_rng(seed, STREAM_AVF_EFFECTS)
    lp = {
        k: special.logit(outcomes.proportion_draws(*g[k], contrast_prior, n_draws, rng))
        for k in ("braced", "unbraced", "none", "spike", "round", "any")
    }
    beta = np.column_stack(
        [
            lp["braced"] - lp["unbraced"],
            lp["spike"] - lp["none"],
            lp["round"] - lp["none"],
            lp["any"] - lp["none"],
        ]
    )
    columns = (*COVARIATES["brace"].columns, *COVARIATES["intradiscal_leakage"].columns)
    if reference == "reyhani":
        total = g["braced"][1] + g["unbraced"][1]
        p_brace = g["braced"][1] / total
        leak = {"spike": g["spike"][1] / total, "round": g["round"][1] / total}
        leak["none"] = 1.0 - leak["spike"] - leak["round"]
        X, w = [], []
        for braced, pb in ((1.0, p_brace), (0.0, 1.0 - p_brace)):
            for lv, pl in leak.items():
                X.append([braced, float(lv == "spike"), float(lv == "round"), 0.0])
                w.append(pb * pl)
        cohort = PseudoCohort(
            columns,
            np.array(X),
            np.array(w),
            f"Reyhani 2025 composition: {g['braced'][1]}/{total} braced; "
            f"intradiscal leakage {g['spike'][1]} spike + {g['round'][1]} round "
            f"of {total}, independent of bracing",
        )
    else:
        cohort = PseudoCohort(
            columns, np.zeros((1, 4)), np.ones(1), "unbraced patients without intradiscal leakage"
        )
    cal = calibrate(
        CohortDesign.from_cohort(cohort, exact=True),
        beta=beta,
        target=base,
        x_ref=cohort.mean,
        mode="marginal",
        seed=seed,
    )
    notes = (
        f"baseline: AVF {baseline} risk by {horizon_months:g} months "
        f"({_describe(baseline_source)})",
        f"effects: Reyhani 2025 crude log ORs, exact binomials with {contrast_prior.label} priors",
        f"reference population: {cohort.description}",
    )
    return RiskModel(
        "avf",
        f"{_OUTCOME_TEXT['avf']} by {horizon_months:g} months",
        _AVF_COVARIATES,
        LogisticLayer(columns, cal.alpha, beta, cal.x_ref),
        {},
        {},
        notes,
        {"baseline": base},
        cal,
        cohort.description,
    )


def transport_table(
    baseline_source: Any,
    profiles: Any,
    *,
    priors: Sequence[TransportPrior] = (
        TransportPrior("Fixed", value=0.0),
        TransportPrior("Beta", alpha=2.0, beta=2.0),
        TransportPrior("Fixed", value=1.0),
    ),
    threshold: float = 0.1,
    **kwargs: Any,
) -> pd.DataFrame:
    """Tabulate the revision risk of ``profiles`` under each transport prior of ``lambda``.

    Parameters
    ----------
    baseline_source
        See :func:`revision_model`.
    profiles : mapping, list of mappings or DataFrame
        See :func:`~bayes_va.risk.profiles.encode_profiles`.
    priors : sequence of TransportPrior
        The priors compared (default: no transport, Beta(2, 2), full transport).
    threshold : float
        Risk threshold of the ``p_above_threshold`` column.
    **kwargs
        Passed to :func:`revision_model`.

    Returns
    -------
    pandas.DataFrame
        The :meth:`RiskModel.summarise` rows of every prior, with a ``transport`` column.
    """
    frames = []
    for prior in priors:
        model = revision_model(baseline_source, transport=prior, **kwargs)
        s = model.summarise(profiles, threshold=threshold, warn=False)
        s.insert(1, "transport", str(prior))
        frames.append(s)
    return pd.concat(frames, ignore_index=True)
