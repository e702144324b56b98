"""Defaults, tolerances and random-stream numbers of the risk layer, each defined once."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from bayes_va.config.risk import DEFAULT_DRAWS as DEFAULT_DRAWS
from bayes_va.config.risk import DEFAULT_SEED as DEFAULT_SEED
from bayes_va.core.rng import RiskStream

FloatArray = NDArray[np.float64]
Outcome = Literal["recompression", "revision", "avf"]
OUTCOMES: tuple[str, ...] = ("recompression", "revision", "avf")

CI_PROB = 0.95
#: A pseudo-cohort holds enough copies of the cohort for at least this many rows (An 2021:
#: 8 x 257 = 2,056). Between pseudo-cohort seeds a draw's calibrated intercept then moves by
#: ~0.003 on the logit scale (at most ~0.02 over 4,000 draws x 6 seeds); calibration costs
#: ~0.1 s per 1,000 draws.
PSEUDO_COHORT_MIN_ROWS = 2000
#: BMD and other continuous covariates outside Table 1's pooled mean +- this many SDs warn.
EXTRAPOLATION_SDS = 3.0
#: Newton iterations solve the calibration to this tolerance on the logit scale.
CALIBRATION_TOL = 1e-12
_CALIBRATION_MAX_ITER = 100
#: Patients scored per block in :meth:`RiskModel.summarise` (bounds memory at ~65 MB).
SUMMARY_CHUNK = 2048

# Random streams (one per kind of draw), defined once in bayes_va.core.rng.
STREAM_COEFFICIENTS = RiskStream.COEFFICIENTS
STREAM_CALIBRATION_TARGET = RiskStream.CALIBRATION_TARGET
STREAM_PSEUDO_COHORT = RiskStream.PSEUDO_COHORT
STREAM_TRANSPORT = RiskStream.TRANSPORT
STREAM_BASELINE = RiskStream.BASELINE
STREAM_PREDICTIVE = RiskStream.PREDICTIVE
STREAM_AVF_EFFECTS = RiskStream.AVF_EFFECTS
STREAM_SOBOL = RiskStream.SOBOL
STREAM_COHORT_DRAWS = RiskStream.COHORT_DRAWS
STREAM_EXPLAIN = RiskStream.EXPLAIN
STREAM_PLAIN_MC = RiskStream.PLAIN_MC

#: Scrambled Sobol' coordinates are clipped to [U_EPS, 1 - U_EPS] before the normal quantile.
U_EPS = 1e-12
#: Rows x points of one block of the per-draw calibration (bounds memory at ~50 MB).
CALIBRATION_BLOCK = 2_000_000
