"""Convergence diagnostics of a fit, checked against the config's thresholds (ArviZ 1.x).

:class:`Diagnostics` is what ``diagnostics.json`` holds, typed: :meth:`Diagnostics.to_dict`
gives the file's JSON exactly and :meth:`Diagnostics.from_dict` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from bayes_va.config.model import DiagnosticsConfig
from bayes_va.fitting.estimates import FlatRecord

#: Variables whose convergence decides whether a fit is trusted.
CHECKED_VARS = ("mu", "tau", "theta", "phi", "beta")
#: Headline quantities whose Monte-Carlo standard errors are reported.
HEADLINE = ("pooled", "predictive", "tau")
HEADLINE_PROBS = (0.025, 0.5, 0.975)


#: JSON key of each :class:`Mcse` field (the quantile keys are ``f"q{100 * prob:g}"``).
_MCSE_KEYS = {"mean": "mean", "q2_5": "q2.5", "q50": "q50", "q97_5": "q97.5"}


@dataclass(frozen=True)
class Thresholds(FlatRecord):
    """The thresholds a fit was checked against (a copy of the config's ``[diagnostics]``)."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    max_divergences: int
    min_bfmi: float

    @classmethod
    def from_config(cls, config: DiagnosticsConfig) -> Thresholds:
        """Copy the thresholds of a config's ``[diagnostics]`` table."""
        return cls(
            max_rhat=config.max_rhat,
            min_ess_bulk=config.min_ess_bulk,
            min_ess_tail=config.min_ess_tail,
            max_divergences=config.max_divergences,
            min_bfmi=config.min_bfmi,
        )


@dataclass(frozen=True)
class Mcse:
    """Monte-Carlo standard errors of one quantity's mean and 2.5/50/97.5 % quantiles."""

    mean: float
    q2_5: float
    q50: float
    q97_5: float

    def to_dict(self) -> dict[str, float]:
        """Return ``{"mean", "q2.5", "q50", "q97.5"}``."""
        return {key: getattr(self, name) for name, key in _MCSE_KEYS.items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, float]) -> Mcse:
        """Read :meth:`to_dict`'s output."""
        return cls(**{name: raw[key] for name, key in _MCSE_KEYS.items()})


@dataclass(frozen=True)
class Timings(FlatRecord):
    """Wall-clock seconds of the steps of one fit."""

    compile_seconds: float
    sample_seconds: float
    reused_compiled_model: bool
    exact_seconds: float
    fit_seconds: float


@dataclass(frozen=True)
class Diagnostics:
    """Convergence of one fit against its thresholds (``diagnostics.json``).

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst R-hat and effective sample sizes over the checked variables.
    divergences : int
        Divergent transitions, all chains.
    min_bfmi : float
        Smallest E-BFMI over the chains (NaN without energy statistics).
    mcse : dict of str to Mcse
        Monte-Carlo standard errors of the headline quantities present (pooled, predictive,
        tau).
    thresholds : Thresholds
        What the fit was checked against.
    failures : tuple of str
        Plain-language reasons, one per missed threshold.
    ok : bool
        No failures.
    timings : Timings or None
        Set by :func:`bayes_va.fitting.run.fit` once the fit is complete.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    min_bfmi: float
    mcse: Mapping[str, Mcse]
    thresholds: Thresholds
    failures: tuple[str, ...]
    ok: bool
    timings: Timings | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of ``diagnostics.json`` (no ``timings`` key while unset)."""
        out = {
            "max_rhat": self.max_rhat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "divergences": self.divergences,
            "min_bfmi": self.min_bfmi,
            "mcse": {v: m.to_dict() for v, m in self.mcse.items()},
            "thresholds": self.thresholds.to_dict(),
            "failures": list(self.failures),
            "ok": self.ok,
        }
        if self.timings is not None:
            out["timings"] = self.timings.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Diagnostics:
        """Read ``diagnostics.json``."""
        timings = raw.get("timings")
        return cls(
            max_rhat=raw["max_rhat"],
            min_ess_bulk=raw["min_ess_bulk"],
            min_ess_tail=raw["min_ess_tail"],
            divergences=raw["divergences"],
            min_bfmi=raw["min_bfmi"],
            mcse={v: Mcse.from_dict(m) for v, m in raw.get("mcse", {}).items()},
            thresholds=Thresholds.from_dict(raw["thresholds"]),
            failures=tuple(raw["failures"]),
            ok=raw["ok"],
            timings=None if timings is None else Timings.from_dict(timings),
        )


def _max(stat: xr.DataTree | xr.Dataset) -> float:
    ds = stat.to_dataset() if isinstance(stat, xr.DataTree) else stat
    return float(max(np.nanmax(ds[v].values) for v in ds.data_vars))


def _min(stat: xr.DataTree | xr.Dataset) -> float:
    ds = stat.to_dataset() if isinstance(stat, xr.DataTree) else stat
    return float(min(np.nanmin(ds[v].values) for v in ds.data_vars))


def mcse_table(tree: xr.DataTree) -> dict[str, Mcse]:
    """Tabulate the MCSE of the mean and 2.5/50/97.5 % quantiles of the headline quantities."""
    names = [v for v in HEADLINE if v in tree["posterior"].data_vars]
    # one ArviZ call per statistic over all variables (not one per variable): same numbers,
    # a third of the time
    means = az.mcse(tree, var_names=names, method="mean")
    quantiles = {
        q: az.mcse(tree, var_names=names, method="quantile", prob=q) for q in HEADLINE_PROBS
    }
    keys = {f"q{q * 100:g}": q for q in HEADLINE_PROBS}  # the keys of Mcse.to_dict()
    return {
        v: Mcse.from_dict(
            {"mean": float(means[v].values)}
            | {key: float(quantiles[q][v].values) for key, q in keys.items()}
        )
        for v in names
    }


def compute_diagnostics(
    tree: xr.DataTree, thresholds: DiagnosticsConfig, sampled_theta: bool = True
) -> Diagnostics:
    """Summarise convergence and compare it with ``thresholds``.

    Parameters
    ----------
    tree : xarray.DataTree
        The fit's draws, with groups ``posterior`` and ``sample_stats``.
    thresholds : DiagnosticsConfig
        Limits on R-hat, bulk and tail ESS, divergences and E-BFMI (``[diagnostics]``).
    sampled_theta : bool
        False in the ``marginal`` parametrisation, where the study effects are exact draws from
        their conditionals given the sampled hyperparameters: only the sampled parameters are
        then checked, which keeps the check fast for thousands of studies.

    Returns
    -------
    Diagnostics
        Without ``timings`` (the caller adds them once the fit is complete).
    """
    names = [
        v
        for v in CHECKED_VARS
        if v in tree["posterior"].data_vars and (sampled_theta or v != "theta")
    ]
    rhat = _max(az.rhat(tree, var_names=names))
    ess_bulk = _min(az.ess(tree, var_names=names, method="bulk"))
    ess_tail = _min(az.ess(tree, var_names=names, method="tail"))
    stats = tree["sample_stats"].to_dataset()
    divergences = int(stats["diverging"].values.sum()) if "diverging" in stats else 0
    bfmi = float(np.min(az.bfmi(tree)["energy"].values)) if "energy" in stats else float("nan")

    t = thresholds
    failures = []
    if not rhat <= t.max_rhat:
        failures.append(f"max R-hat {rhat:.4f} > {t.max_rhat} (chains disagree: run longer)")
    if not ess_bulk >= t.min_ess_bulk:
        failures.append(f"min bulk ESS {ess_bulk:.0f} < {t.min_ess_bulk:g} (increase draws)")
    if not ess_tail >= t.min_ess_tail:
        failures.append(f"min tail ESS {ess_tail:.0f} < {t.min_ess_tail:g} (increase draws)")
    if divergences > t.max_divergences:
        failures.append(
            f"{divergences} divergent transitions > {t.max_divergences} (raise "
            "sampler.target_accept or change model.parametrisation)"
        )
    if not bfmi >= t.min_bfmi:
        failures.append(f"min E-BFMI {bfmi:.3f} < {t.min_bfmi} (poor energy exploration)")
    return Diagnostics(
        max_rhat=rhat,
        min_ess_bulk=ess_bulk,
        min_ess_tail=ess_tail,
        divergences=divergences,
        min_bfmi=bfmi,
        mcse=mcse_table(tree),
        thresholds=Thresholds.from_config(t),
        failures=tuple(failures),
        ok=not failures,
    )
