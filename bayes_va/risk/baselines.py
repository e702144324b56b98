"""Baselines: revision and AVF baseline draws from fits, and the transport factor's prior."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import xarray as xr
from scipy import special

from bayes_va.config.model import load_config
from bayes_va.config.priors import log_density
from bayes_va.core.errors import ConfigError
from bayes_va.data.dataset import build_dataset
from bayes_va.fitting.results import load_result
from bayes_va.numerics import exact
from bayes_va.risk.constants import (
    DEFAULT_DRAWS,
    DEFAULT_SEED,
    STREAM_BASELINE,
    STREAM_PREDICTIVE,
    STREAM_TRANSPORT,
    FloatArray,
)
from bayes_va.risk.errors import RiskInputError
from bayes_va.risk.numerics import _rng


class _HasTree(Protocol):
    tree: xr.DataTree


class AVFSource(Protocol):
    """What the AVF baseline needs from a fit: the meta-regression's linear predictor."""

    tree: xr.DataTree

    def linear_predictor(self, moderators: dict[str, str | float] | None = None) -> xr.DataArray:
        """Draws (dims ``chain``, ``draw``) of a new study's logit proportion."""
        ...


def _check_table(source: Any, table: str) -> None:
    """A fit's outcome table must be ``table`` (a revision baseline from an AVF fit is an error)."""
    cfg = getattr(source, "config", None)
    got = getattr(getattr(cfg, "data", None), "table", None)
    if got is not None and got != table:
        raise RiskInputError(
            f"fit '{getattr(cfg, 'name', '?')}' models the {got!r} table; this baseline needs a "
            f"fit of the {table!r} table"
        )


def _flat(da: xr.DataArray) -> FloatArray:
    if {"chain", "draw"} <= set(da.dims):
        return np.asarray(da.transpose("chain", "draw", ...).values, dtype=float).ravel()
    return np.asarray(da.values, dtype=float).ravel()


def _resample(values: FloatArray, n_draws: int, seed: int) -> FloatArray:
    """``values`` as ``n_draws`` draws (as they are when the counts match)."""
    if len(values) == n_draws:
        return values
    idx = _rng(seed, STREAM_BASELINE).choice(len(values), n_draws, replace=len(values) < n_draws)
    return values[idx]


def load_source(spec: Any) -> Any:
    """A baseline source ready for reuse: a results folder is loaded once (a FitResult);
    ``"exact:CONFIG"`` strings and objects pass through unchanged.

    Raises
    ------
    RiskInputError
        When a path is not a results folder.
    """
    if not isinstance(spec, str | Path) or str(spec).startswith("exact:"):
        return spec

    path = Path(spec)
    if not (path / "posterior.nc").is_file():
        raise RiskInputError(
            f"no results folder at {path} (posterior.nc missing): run `bayes-va fit <config>` "
            "first, point --results at a results folder, or for revision use "
            "--results exact:models/base.toml (exact quadrature, no MCMC)"
        )
    return load_result(path)


def _exact_draws(config: str | Path, kind: str, n_draws: int, seed: int) -> FloatArray:
    """Draws of the pooled or predictive proportion from the exact quadrature posterior."""

    cfg = load_config(config)
    if cfg.data.table != "revision" or cfg.model.family != "logit_normal" or cfg.model.moderators:
        raise RiskInputError(
            f"exact:{config}: the quadrature reference covers the logit-normal revision model "
            "without moderators only"
        )
    data = build_dataset(cfg.data, cfg.data_dir)
    post = exact.posterior_grid(
        data.y,
        data.n,
        log_prior_mu=log_density(cfg.priors.mu),
        log_prior_tau=log_density(cfg.priors.tau),
    )
    rng = _rng(seed, STREAM_BASELINE)
    w = post.weights.ravel()
    cell = rng.choice(w.size, n_draws, p=w / w.sum())
    i, j = np.unravel_index(cell, post.weights.shape)
    dmu, drho = post.mu[1] - post.mu[0], post.log_tau[1] - post.log_tau[0]
    mu = post.mu[i] + dmu * (rng.random(n_draws) - 0.5)
    tau = np.exp(post.log_tau[j] + drho * (rng.random(n_draws) - 0.5))
    if kind == "pooled":
        return special.expit(mu)
    z = _rng(seed, STREAM_PREDICTIVE).standard_normal(n_draws)
    return special.expit(mu + tau * z)


def revision_baseline(
    source: Any,
    *,
    kind: Literal["pooled", "predictive"] = "pooled",
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
) -> FloatArray:
    """Draws of the revision baseline proportion.

    Parameters
    ----------
    source : FitResult, DataTree, DataArray, ndarray, results folder or ``"exact:CONFIG"``
        A fit (``tree["posterior"][kind]``), a results folder (loaded with
        :func:`bayes_va.load_result`), probability draws, or ``"exact:models/base.toml"`` for
        draws from the config's exact quadrature posterior (no MCMC; grid cells drawn by weight
        and jittered uniformly within the cell).
    kind : {"pooled", "predictive"}
        Population mean proportion or a new centre's proportion.
    n_draws, seed : int
        Draws are resampled to ``n_draws`` (stream ``STREAM_BASELINE``) when counts differ.
    """
    if kind not in ("pooled", "predictive"):
        raise RiskInputError(f"baseline is {kind!r}; allowed: pooled, predictive")
    if isinstance(source, str) and source.startswith("exact:"):
        return _exact_draws(source.removeprefix("exact:"), kind, n_draws, seed)
    source = load_source(source)
    _check_table(source, "revision")
    if hasattr(source, "tree"):
        source = source.tree
    if isinstance(source, xr.DataTree):
        post = source["posterior"]
        if kind not in post.data_vars:
            raise RiskInputError(f"the posterior has no {kind!r} variable")
        values = _flat(post[kind])
    elif isinstance(source, xr.DataArray):
        values = _flat(source)
    else:
        values = np.asarray(source, dtype=float).ravel()
    if values.size == 0 or np.any((values <= 0) | (values >= 1) | ~np.isfinite(values)):
        raise RiskInputError("baseline draws must be proportions strictly between 0 and 1")
    return _resample(values, n_draws, seed)


def avf_baseline(
    source: AVFSource | str | Path,
    *,
    horizon_months: float = 12.0,
    kind: Literal["pooled", "predictive"] = "pooled",
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    moderator: str = "log_followup_months",
) -> FloatArray:
    """Draws of the AVF risk by ``horizon_months`` from the AVF meta-regression.

    Calls ``source.linear_predictor({moderator: horizon_months})`` (the fit takes the raw
    months and logs them itself) for ``pooled``; ``predictive`` adds ``tau * z``, ``z ~ N(0, 1)``
    (stream ``STREAM_PREDICTIVE``), the spread of a new cohort. The follow-up moderator is each
    cohort's mean follow-up, so "risk by h months" reads the between-cohort trend as a
    within-patient cumulative incidence: an approximation.
    """
    if kind not in ("pooled", "predictive"):
        raise RiskInputError(f"baseline is {kind!r}; allowed: pooled, predictive")
    if not 0 < horizon_months <= 120:
        raise RiskInputError(f"horizon_months must lie in (0, 120], got {horizon_months}")
    source = load_source(source)
    _check_table(source, "avf")
    if not hasattr(source, "linear_predictor"):
        raise RiskInputError("the AVF baseline needs a fit with a linear_predictor method")
    lp = source.linear_predictor({moderator: float(horizon_months)})
    eta = _flat(lp)
    if kind == "predictive":
        post = source.tree["posterior"]
        if "tau" not in post.data_vars:
            raise RiskInputError("this AVF fit has no tau; use the pooled baseline")
        eta = eta + _flat(post["tau"]) * _rng(seed, STREAM_PREDICTIVE).standard_normal(eta.size)
    return _resample(special.expit(eta), n_draws, seed)


# ------------------------------------------------------------------------------- transport


@dataclass(frozen=True)
class TransportPrior:
    """Prior of the transport factor ``lambda``: ``Fixed(value)`` or ``Beta(alpha, beta)``."""

    dist: Literal["Fixed", "Beta"] = "Beta"
    value: float = 1.0
    alpha: float = 2.0
    beta: float = 2.0

    def __post_init__(self) -> None:
        if self.dist == "Fixed" and not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"transport: a fixed lambda must lie in [0, 1], got {self.value}")
        if self.dist == "Beta" and not (self.alpha > 0 and self.beta > 0):
            raise ConfigError(
                f"transport: Beta needs alpha > 0 and beta > 0, got {self.alpha}, {self.beta}"
            )
        if self.dist not in ("Fixed", "Beta"):
            raise ConfigError(f"transport.dist is {self.dist!r}; allowed: Fixed, Beta")

    def __str__(self) -> str:
        if self.dist == "Fixed":
            what = {0.0: " (no transport)", 1.0: " (full transport)"}.get(self.value, "")
            return f"lambda = {self.value:g}{what}"
        return f"lambda ~ Beta({self.alpha:g}, {self.beta:g})"

    def draws(self, n_draws: int, seed: int) -> FloatArray:
        """Draws of ``lambda`` (stream ``STREAM_TRANSPORT``)."""
        if self.dist == "Fixed":
            return np.full(n_draws, self.value)
        return _rng(seed, STREAM_TRANSPORT).beta(self.alpha, self.beta, n_draws)

    @classmethod
    def parse(cls, text: str) -> TransportPrior:
        """``"1"``, ``"0.5"`` (fixed) or ``"beta:2,2"`` / ``"Beta(2, 2)"``."""
        t = text.strip()
        m = re.fullmatch(r"(?i)beta\s*(?::|\()\s*([^,\s]+)\s*,\s*([^)\s]+)\s*\)?", t)
        try:
            if m:
                return cls("Beta", alpha=float(m.group(1)), beta=float(m.group(2)))
            return cls("Fixed", value=float(t))
        except ValueError:
            raise ConfigError(
                f"lambda {text!r}: give a number in [0, 1] (1 = full transport, 0 = none) or "
                "beta:A,B (e.g. beta:2,2)"
            ) from None
