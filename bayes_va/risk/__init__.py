r"""Patient-level risk: a logistic layer in which every term is a posterior draw.

For draw ``s`` and a patient with coded covariates ``x``::

    logit p_s(x) = alpha_s + sum_k lambda_s * beta_sk * (x_k - x_ref,k)

so a patient's risk is a distribution (an ``xarray.DataArray`` with dims ``sample, patient``).

Outcomes
--------
``recompression`` (An et al. 2021, 82 of 257 patients, 12-24 months)
    ``beta_k ~ Normal(B_k, SE_k)`` independently for the six covariates of Table 2 (the paper
    gives no covariance matrix, so correlations between estimates, e.g. of procedure and cement
    volume, are ignored). ``lambda = 1``. The paper prints no intercept. ``alpha_s`` is
    *calibrated*: for each draw it solves ``mean_m expit(alpha_s + beta_s (x_m - x_ref)) =
    pbar_s`` over a pseudo-cohort ``x_1..x_M`` that matches Table 1's marginals in each outcome
    group (:mod:`bayes_va.risk.copula`: a Gaussian copula over Table 1's marginals, integrated
    with scrambled Sobol' points, the unknown correlations and Table 1's sampling error drawn
    with the posterior; ``[cohort] method = "permutation"`` gives the earlier cohort of
    :func:`an2021_pseudo_cohort`), with ``pbar_s ~ Beta(82 + 1/2, 175 + 1/2)`` carrying the
    binomial uncertainty of 82/257. Averaging risks over a cohort instead of plugging in mean
    covariates is what non-collapsibility of the odds ratio requires: the risk at the mean
    profile is not the mean risk. ``x_ref`` = Table 1's pooled mean covariate vector.
``revision``
    Baseline ``b_s`` from a fit of the revision studies: ``pooled`` (logit^-1 mu, the fit's
    pooled proportion) or ``predictive`` (a new centre's proportion). The recompression effects are
    *transported* with a factor ``lambda_s`` (``lambda = 1`` full transport, ``0`` none,
    ``Beta(a, b)`` partial; default Beta(2, 2)). ``alpha_s`` is calibrated so that the mean risk
    over the An pseudo-cohort equals ``b_s``: the reference population of the revision
    baseline is stated to be *a population with the An cohort's covariate distribution*, and
    ``x_ref`` is that pseudo-cohort's mean. With ``lambda = 0`` every profile's risk is ``b_s``.
``avf`` (adjacent vertebral fracture by a horizon of ``h`` months)
    Baseline ``b_s = logit^-1`` of the AVF meta-regression's linear predictor at follow-up ``h``
    (``result.linear_predictor({"log_followup_months": h})``; ``predictive`` adds ``tau * z``).
    Effects: brace (braced vs unbraced) and intradiscal leakage (spike, round or any type vs
    none) log odds ratios of Reyhani Yassavoly 2025 from exact binomials with Jeffreys priors
    (:mod:`bayes_va.numerics.outcomes`), unadjusted and assumed additive on the logit scale.
    ``alpha_s`` is calibrated over Reyhani's composition (31/251 braced; leakage 9 spike, 2 round
    of 251, independent of bracing) or, with ``reference="unexposed"``, set so that an unbraced
    patient without leakage has risk ``b_s``.

Integration error and where the uncertainty comes from
------------------------------------------------------
Independent Sobol' scrambles give each draw's intercept a Monte-Carlo standard error
(:mod:`bayes_va.risk.calibration`; :meth:`RiskModel.integration`, a warning above
``[cohort] mcse_fraction`` of the posterior SD). :meth:`RiskModel.explain` splits a profile's
risk variance over the pooled baseline, the published log odds ratios, the transport factor,
the calibration cohort and the integration (:mod:`bayes_va.risk.explain`). Summaries state
their quantity: a *risk at this profile* (:meth:`RiskModel.summarise`) or the
*population-average risk* of the reference population (:meth:`RiskModel.population_risk`).

``calibration="mean_profile"`` replaces the cohort average by ``alpha_s = logit b_s`` (the
baseline is the risk at the mean profile), for comparison only.

Every random number comes from ``np.random.default_rng(np.random.SeedSequence([seed, stream]))``
with the streams named in :mod:`bayes_va.risk.constants`; the same seed gives the same
numbers.

Modules
-------
``profiles`` covariates and validation of patient profiles; ``coefficients`` An 2021 Table 2;
``cohort`` pseudo-cohorts and intercept calibration; ``copula`` the copula cohort;
``calibration`` per-draw calibration and its integration error; ``explain`` the variance
split; ``layer`` the logistic layer and :class:`RiskModel`; ``baselines`` revision/AVF
baselines and the transport prior; ``builders`` the model of each outcome; ``build``
:func:`build_model` from a :class:`RiskConfig` (its schema is
:mod:`bayes_va.config.risk`); ``constants``, ``numerics`` and ``errors`` shared by all.
Its figures are in :mod:`bayes_va.viz.risk`.

Layer: may import :mod:`bayes_va.checking` and the layers below it (results are read through
:mod:`bayes_va.fitting`), but not PyMC, PyTensor, nutpie or matplotlib.
"""

from __future__ import annotations

from bayes_va.config.risk import RiskConfig, TransportPrior, load_risk_config
from bayes_va.config.risk import risk_config_from_dict as risk_config_from_dict
from bayes_va.risk.baselines import AVFSource as AVFSource
from bayes_va.risk.baselines import avf_baseline, load_source, revision_baseline
from bayes_va.risk.baselines import transport_draws as transport_draws
from bayes_va.risk.build import build_model
from bayes_va.risk.builders import avf_model, recompression_model, revision_model, transport_table
from bayes_va.risk.calibration import Calibration, integration_error_curve
from bayes_va.risk.coefficients import Coefficients, an2021_coefficients
from bayes_va.risk.cohort import (
    CohortDesign,
    Marginal,
    PseudoCohort,
    an2021_pseudo_cohort,
    calibrate_intercept,
    pseudo_cohort_from_marginals,
)
from bayes_va.risk.cohort import _an_table1 as _an_table1
from bayes_va.risk.cohort import an2021_cohort_ranges as an2021_cohort_ranges
from bayes_va.risk.constants import CALIBRATION_TOL as CALIBRATION_TOL
from bayes_va.risk.constants import CI_PROB as CI_PROB
from bayes_va.risk.constants import DEFAULT_DRAWS as DEFAULT_DRAWS
from bayes_va.risk.constants import DEFAULT_SEED as DEFAULT_SEED
from bayes_va.risk.constants import EXTRAPOLATION_SDS as EXTRAPOLATION_SDS
from bayes_va.risk.constants import OUTCOMES
from bayes_va.risk.constants import PSEUDO_COHORT_MIN_ROWS as PSEUDO_COHORT_MIN_ROWS
from bayes_va.risk.constants import STREAM_AVF_EFFECTS as STREAM_AVF_EFFECTS
from bayes_va.risk.constants import STREAM_BASELINE as STREAM_BASELINE
from bayes_va.risk.constants import STREAM_CALIBRATION_TARGET as STREAM_CALIBRATION_TARGET
from bayes_va.risk.constants import STREAM_COEFFICIENTS as STREAM_COEFFICIENTS
from bayes_va.risk.constants import STREAM_COHORT_DRAWS as STREAM_COHORT_DRAWS
from bayes_va.risk.constants import STREAM_EXPLAIN as STREAM_EXPLAIN
from bayes_va.risk.constants import STREAM_PLAIN_MC as STREAM_PLAIN_MC
from bayes_va.risk.constants import STREAM_PREDICTIVE as STREAM_PREDICTIVE
from bayes_va.risk.constants import STREAM_PSEUDO_COHORT as STREAM_PSEUDO_COHORT
from bayes_va.risk.constants import STREAM_SOBOL as STREAM_SOBOL
from bayes_va.risk.constants import STREAM_TRANSPORT as STREAM_TRANSPORT
from bayes_va.risk.constants import SUMMARY_CHUNK as SUMMARY_CHUNK
from bayes_va.risk.constants import FloatArray as FloatArray
from bayes_va.risk.constants import Outcome as Outcome
from bayes_va.risk.copula import CopulaSpec, an2021_copula_spec, copula_spec, lkj_cholesky
from bayes_va.risk.errors import (
    ExtrapolationWarning,
    IntegrationWarning,
    ProfileError,
    RiskInputError,
)
from bayes_va.risk.explain import SOURCES, first_order
from bayes_va.risk.layer import (
    POPULATION_QUANTITY,
    PROFILE_QUANTITY,
    LogisticLayer,
    RiskModel,
)
from bayes_va.risk.numerics import row_quantiles
from bayes_va.risk.profiles import (
    COLUMN_LABELS,
    COVARIATES,
    EXAMPLE_PROFILES,
    Covariate,
    EncodedProfiles,
    describe_profile,
    encode_profiles,
)

__all__ = [
    "COLUMN_LABELS",
    "COVARIATES",
    "EXAMPLE_PROFILES",
    "OUTCOMES",
    "POPULATION_QUANTITY",
    "PROFILE_QUANTITY",
    "SOURCES",
    "Calibration",
    "Coefficients",
    "CohortDesign",
    "CopulaSpec",
    "Covariate",
    "EncodedProfiles",
    "ExtrapolationWarning",
    "IntegrationWarning",
    "LogisticLayer",
    "Marginal",
    "ProfileError",
    "PseudoCohort",
    "RiskConfig",
    "RiskInputError",
    "RiskModel",
    "TransportPrior",
    "an2021_coefficients",
    "an2021_copula_spec",
    "an2021_pseudo_cohort",
    "avf_baseline",
    "avf_model",
    "build_model",
    "calibrate_intercept",
    "copula_spec",
    "describe_profile",
    "encode_profiles",
    "first_order",
    "integration_error_curve",
    "lkj_cholesky",
    "load_risk_config",
    "load_source",
    "pseudo_cohort_from_marginals",
    "recompression_model",
    "revision_baseline",
    "revision_model",
    "row_quantiles",
    "transport_table",
]
