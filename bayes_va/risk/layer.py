"""The logistic layer and :class:`RiskModel`: risk draws and summaries per patient."""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from bayes_va.risk.calibration import Calibration
from bayes_va.risk.constants import CI_PROB, SUMMARY_CHUNK, FloatArray
from bayes_va.risk.errors import IntegrationWarning, RiskInputError
from bayes_va.risk.explain import Explainer, build_explainer, decompose
from bayes_va.risk.numerics import _expit_into, row_quantiles
from bayes_va.risk.profiles import (
    _COVARIATE_OF_COLUMN,
    COLUMN_LABELS,
    EncodedProfiles,
    encode_profiles,
)


@dataclass(frozen=True)
class LogisticLayer:
    """``logit p_s(x) = alpha_s + beta_s @ (x - x_ref)``, vectorised over draws and patients.

    Attributes
    ----------
    columns : tuple of str
        Design columns.
    alpha : ndarray, shape (S,)
        Logit risk at ``x_ref``.
    beta : ndarray, shape (S, K)
        Effects (transported ones already multiplied by ``lambda``).
    x_ref : ndarray, shape (K,)
        Reference covariate vector.
    """

    columns: tuple[str, ...]
    alpha: FloatArray
    beta: FloatArray
    x_ref: FloatArray

    def logit(self, X: FloatArray) -> FloatArray:
        """Return logit risk draws, shape ``(S, P)``, for the design matrix ``X``, ``(P, K)``."""
        return self.logit_by_patient(X).T

    def logit_by_patient(self, X: FloatArray) -> FloatArray:
        """Return the same draws as a C-contiguous ``(P, S)`` array (fast per-patient summaries)."""
        Xc = np.asarray(X, dtype=float) - self.x_ref
        out = np.empty((Xc.shape[0], self.alpha.shape[0]))
        np.matmul(Xc, self.beta.T, out=out)
        out += self.alpha
        return out


#: What each kind of number is, in every output (CLI text, CSV ``quantity`` column, JSON).
PROFILE_QUANTITY = "risk at this profile"
POPULATION_QUANTITY = "population-average risk"


def _draw_summary(values: FloatArray, ci_prob: float) -> dict[str, float]:
    a = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(values, [a, 0.5, 1.0 - a])
    return {"median": float(med), "lower": float(lo), "upper": float(hi)}


@dataclass(frozen=True)
class RiskModel:
    """A patient-level risk model for one outcome; every term is a posterior draw.

    Build with :func:`recompression_model`, :func:`revision_model`, :func:`avf_model` or
    :func:`build_model`.

    Attributes
    ----------
    outcome : str
        ``recompression``, ``revision`` or ``avf``.
    description : str
        The outcome in words.
    used : tuple of str
        Covariates (profile keys) the model uses.
    layer : LogisticLayer
        The draws.
    defaults : dict
        Values of optional covariates a profile leaves out.
    cohort_ranges : dict
        Covariate → range covered by the source cohort (outside: a warning).
    notes : tuple of str
        Where each term came from (baseline, calibration, reference, transport).
    components : dict
        Named draws behind the layer (``baseline``, ``lambda``, ...), shape (S,).
    calibration : Calibration, optional
        How the intercepts were calibrated: the integration error and the variance split
        (:meth:`integration`, :meth:`explain`) need it.
    reference_population : str
        The population whose average risk is the baseline (:meth:`population_risk`).
    """

    outcome: str
    description: str
    used: tuple[str, ...]
    layer: LogisticLayer
    defaults: dict[str, float] = field(default_factory=dict)
    cohort_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    components: dict[str, FloatArray] = field(default_factory=dict, repr=False)
    calibration: Calibration | None = field(default=None, repr=False, compare=False)
    reference_population: str = ""

    @property
    def n_draws(self) -> int:
        """Number of posterior draws ``S``."""
        return int(self.layer.alpha.shape[0])

    def encode(self, profiles: Any, *, warn: bool = True) -> EncodedProfiles:
        """Validate ``profiles`` (see :func:`encode_profiles`)."""
        return encode_profiles(profiles, self.used, self.defaults, self.cohort_ranges, warn=warn)

    def _array(self, enc: EncodedProfiles, values: FloatArray, name: str) -> xr.DataArray:
        return xr.DataArray(
            values,
            dims=("sample", "patient"),
            coords={"sample": np.arange(self.n_draws), "patient": list(enc.ids)},
            name=name,
            attrs={"outcome": self.outcome},
        )

    def logit(self, profiles: Any, *, warn: bool = True) -> xr.DataArray:
        """Return draws of each patient's logit risk (dims ``sample``, ``patient``)."""
        enc = self.encode(profiles, warn=warn)
        return self._array(enc, self.layer.logit(enc.X), "logit_risk")

    def risk(self, profiles: Any, *, warn: bool = True) -> xr.DataArray:
        """Return draws of each patient's risk (dims ``sample``, ``patient``).

        Parameters
        ----------
        profiles : mapping, list of mappings or DataFrame
            See :func:`encode_profiles`.
        warn : bool, optional
            Warn (:class:`ExtrapolationWarning`) about values outside the cohort's range.
        """
        enc = self.encode(profiles, warn=warn)
        return self._array(enc, _expit_into(self.layer.logit(enc.X)), "risk")

    def summarise(
        self,
        profiles: Any,
        *,
        threshold: float = 0.1,
        ci_prob: float = CI_PROB,
        warn: bool = True,
    ) -> pd.DataFrame:
        """Summarise each patient's risk: median, interval, P(risk > threshold), per 1,000.

        Patients are scored in blocks of :data:`SUMMARY_CHUNK`, so memory stays bounded.

        Parameters
        ----------
        profiles : mapping, list of mappings or DataFrame
            See :func:`encode_profiles`.
        threshold : float
            Risk threshold, in (0, 1).
        ci_prob : float
            Probability of the equal-tailed intervals.
        warn : bool, optional
            Warn (:class:`ExtrapolationWarning`) about values outside the cohort's range.

        Returns
        -------
        pandas.DataFrame
            One row per patient. Columns: ``id``, the covariates used, ``median``, ``lower``,
            ``upper`` (equal-tailed ``ci_prob`` interval), ``mean`` (posterior mean =
            predictive probability), ``p_above_threshold``, ``per_1000`` (expected events per
            1,000 such patients, 1000 x mean) with ``per_1000_lower``/``upper`` (1000 x the
            interval), ``extrapolated``, ``quantity`` (:data:`PROFILE_QUANTITY`: every number
            is a risk at the given profile, not a population average), ``integration_mcse``
            (the calibration's integration MCSE on the risk scale at the median, ``median (1 -
            median)`` x the intercept's RMS MCSE) and ``integration_ratio`` (that over the
            posterior SD of the risk); ``attrs`` hold ``threshold``, ``ci_prob``, the ignored
            and defaulted inputs and ``integration`` (:meth:`integration`).

        Warns
        -----
        IntegrationWarning
            When a profile's ``integration_ratio`` exceeds the config's ``mcse_fraction``.
        """
        if not 0.0 < threshold < 1.0:
            raise RiskInputError(f"threshold must lie in (0, 1), got {threshold}")
        enc = self.encode(profiles, warn=warn)
        a = (1.0 - ci_prob) / 2.0
        cut = special.logit(threshold)
        parts = []
        for start in range(0, len(enc.ids), SUMMARY_CHUNK):
            eta = self.layer.logit_by_patient(enc.X[start : start + SUMMARY_CHUNK])
            above = np.count_nonzero(eta > cut, axis=1) / eta.shape[1]
            r = _expit_into(eta)
            mean = r.mean(axis=1)
            sd = np.sqrt(np.maximum(np.einsum("ij,ij->i", r, r) / r.shape[1] - mean**2, 0.0))
            q = row_quantiles(r, [a, 0.5, 1.0 - a])
            parts.append(np.column_stack([q[1], q[0], q[2], mean, above, sd]))
        s = np.vstack(parts)
        out = pd.DataFrame({"id": list(enc.ids)})
        for name in self.used:
            out[name] = enc.values[name].to_numpy()
        out["median"], out["lower"], out["upper"] = s[:, 0], s[:, 1], s[:, 2]
        out["mean"], out["p_above_threshold"] = s[:, 3], s[:, 4]
        out["per_1000"] = 1000.0 * s[:, 3]
        out["per_1000_lower"], out["per_1000_upper"] = 1000.0 * s[:, 1], 1000.0 * s[:, 2]
        out["extrapolated"] = enc.extrapolated
        out["quantity"] = PROFILE_QUANTITY
        integ = self.integration()
        mcse = integ["mcse"] if integ is not None else math.nan
        out["integration_mcse"] = s[:, 0] * (1.0 - s[:, 0]) * mcse
        with np.errstate(divide="ignore", invalid="ignore"):
            out["integration_ratio"] = np.where(
                s[:, 5] > 0, out["integration_mcse"] / s[:, 5], 0.0
            )
        out.attrs.update(
            threshold=threshold,
            ci_prob=ci_prob,
            ignored=enc.ignored,
            defaulted=enc.defaulted,
            integration=integ,
        )
        if integ is not None and warn:
            worst = float(np.nanmax(out["integration_ratio"].to_numpy()))
            if worst > integ["fraction"]:
                warnings.warn(
                    f"{self.outcome}: the calibration's integration MCSE reaches {worst:.2f} of "
                    f"a profile's posterior SD (warning level {integ['fraction']:g}); use more "
                    "Sobol' points ([cohort] points_log2) or replicates",
                    IntegrationWarning,
                    stacklevel=2,
                )
        return out

    def integration(self) -> dict[str, Any] | None:
        """Return the intercept's integration error (:meth:`Calibration.integration`).

        None for a model built without a :class:`Calibration`.
        """
        return None if self.calibration is None else self.calibration.integration()

    def population_risk(self, ci_prob: float = CI_PROB) -> dict[str, Any]:
        """Summarise the population-average risk: the mean risk over the reference population.

        This is the calibration target (the baseline draws), not the risk of any profile.

        Returns
        -------
        dict
            ``quantity`` (:data:`POPULATION_QUANTITY`), ``population`` (in words),
            ``median``, ``lower``, ``upper`` and ``mean``.
        """
        base = self.components["baseline"]
        return {
            "quantity": POPULATION_QUANTITY,
            "population": self.reference_population,
            **_draw_summary(base, ci_prob),
            "mean": float(base.mean()),
        }

    @functools.cached_property
    def explainer(self) -> Explainer:
        """The pick-freeze designs of the variance split (built once, on first use).

        Raises
        ------
        RiskInputError
            For a model built without a :class:`Calibration`.
        """
        if self.calibration is None:
            raise RiskInputError(f"this {self.outcome} model keeps no calibration to explain")
        return build_explainer(self.calibration)

    def explain(self, profiles: Any, *, warn: bool = True) -> pd.DataFrame:
        """Split each profile's risk variance over its sources (logit and risk scale).

        See :mod:`bayes_va.risk.explain`: first-order (pick-freeze) variances of the pooled
        baseline, the published log odds ratios, the transport factor, the calibration
        cohort's distribution, the numerical integration, and the remainder (interactions).

        Parameters
        ----------
        profiles : mapping, list of mappings or DataFrame
            See :func:`encode_profiles`.
        warn : bool, optional
            Warn (:class:`ExtrapolationWarning`) about values outside the cohort's range.

        Returns
        -------
        pandas.DataFrame
            Long table (:func:`~bayes_va.risk.explain.decompose`) with a ``quantity`` column
            (:data:`PROFILE_QUANTITY`).
        """
        enc = self.encode(profiles, warn=warn)
        out = decompose(self.explainer, enc.X, enc.ids)
        out["quantity"] = PROFILE_QUANTITY
        return out

    def effects(self, ci_prob: float = CI_PROB) -> pd.DataFrame:
        """Tabulate each design column's odds ratio (unit step or level vs reference)."""
        rows = []
        for k, col in enumerate(self.layer.columns):
            s = _draw_summary(self.layer.beta[:, k], ci_prob)
            rows.append(
                {
                    "column": col,
                    "covariate": _COVARIATE_OF_COLUMN[col],
                    "label": COLUMN_LABELS[col],
                    "log_or_median": s["median"],
                    "log_or_lower": s["lower"],
                    "log_or_upper": s["upper"],
                    "or_median": math.exp(s["median"]),
                    "or_lower": math.exp(s["lower"]),
                    "or_upper": math.exp(s["upper"]),
                    "x_ref": float(self.layer.x_ref[k]),
                }
            )
        return pd.DataFrame(rows)
