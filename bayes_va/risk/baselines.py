"""Baselines: revision and AVF baseline draws from fits, and the transport factor's prior."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import xarray as xr
from scipy import special

from bayes_va.config.model import find_root, load_config
from bayes_va.config.priors import log_density
from bayes_va.config.risk import TransportPrior
from bayes_va.core.rng import stream_rng
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

#: The fits the risk layer reads by default: outcome -> (results folder, the model config that
#: must have written it). The folder is the risk config's default (relative to the working
#: directory); the model config is relative to the project holding the folder.
DEFAULT_FITS: dict[str, tuple[str, str]] = {
    "revision": ("results/base", "models/base.toml"),
    "avf": ("results/avf", "models/avf/base.toml"),
}


class _HasTree(Protocol):
    tree: xr.DataTree


class AVFSource(Protocol):
    """What the AVF baseline needs from a fit: the meta-regression's linear predictor."""

    @property
    def tree(self) -> xr.DataTree:
        """Posterior draws (a frozen FitResult's attribute: read-only is enough)."""
        ...

    def linear_predictor(self, moderators: dict[str, str | float] | None = None) -> xr.DataArray:
        """Return draws (dims ``chain``, ``draw``) of a new study's logit proportion."""
        ...


def _check_table(source: Any, table: str) -> None:
    """Refuse a fit of another outcome table (a revision baseline from an AVF fit)."""
    cfg = getattr(source, "config", None)
    got = getattr(getattr(cfg, "data", None), "table", None)
    if got is not None and got != table:
        raise RiskInputError(
            f"fit '{getattr(cfg, 'name', '?')}' models the {got!r} table; this baseline needs a "
            f"fit of the {table!r} table"
        )


def _flat(da: Any) -> FloatArray:
    """Return draws as a flat float array, chain-major (a DataArray or any array-like)."""
    if {"chain", "draw"} <= set(da.dims):
        return np.asarray(da.transpose("chain", "draw", ...).values, dtype=float).ravel()
    return np.asarray(da.values, dtype=float).ravel()


def _resample(values: FloatArray, n_draws: int, seed: int) -> FloatArray:
    """``values`` as ``n_draws`` draws (as they are when the counts match)."""
    if len(values) == n_draws:
        return values
    rng = stream_rng(seed, STREAM_BASELINE)
    idx = rng.choice(len(values), n_draws, replace=len(values) < n_draws)
    return values[idx]


def load_source(spec: Any) -> Any:
    """Return a baseline source ready for reuse: a results folder loaded once (a FitResult).

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


def load_configured_source(spec: Any, outcome: str) -> Any:
    """Load the baseline source a risk config names, checking which fit a default folder holds.

    When ``spec`` is the default results folder of ``outcome`` (:data:`DEFAULT_FITS`), the fit
    there must come from the expected model config, unchanged: a folder written with
    ``--set`` overrides, or from another config, raises. A source given explicitly (``bayes-va
    risk --results DIR``, ``build_model(..., source=DIR)``) is loaded with :func:`load_source`
    and not checked.

    Raises
    ------
    RiskInputError
        When the default folder's fit comes from another config (both are named).
    """
    source = load_source(spec)
    folder, config = DEFAULT_FITS[outcome]
    is_folder = isinstance(spec, str | Path) and not str(spec).startswith("exact:")
    if is_folder and os.path.normpath(spec) == os.path.normpath(folder):
        check_fit_config(source, Path(spec), config)
    return source


def check_fit_config(result: Any, folder: Path, config: str) -> None:
    """Check that the fit loaded from ``folder`` was made from the model config ``config``.

    ``config`` is relative to the project holding ``folder``. The configs are compared by the
    hash of the resolved config (overrides applied); without that file, only a fit recorded
    with overrides is refused.

    Raises
    ------
    RiskInputError
        Naming the fit's config (with its overrides) and the expected one.
    """
    prov = getattr(result, "provenance", None) or {}
    overrides = list(prov.get("overrides") or [])
    got = result.config
    path = find_root(folder.resolve()) / config
    want = load_config(path) if path.is_file() else None
    if (got.hash() == want.hash()) if want is not None else not overrides:
        return
    made = f"config '{got.name}'" + (f" with overrides {', '.join(overrides)}" if overrides else "")
    expected = f"{config} (config '{want.name}', hash {want.hash()[:8]})" if want else config
    raise RiskInputError(
        f"{folder} holds a fit of {made} (hash {got.hash()[:8]}), but the risk layer expects a "
        f"fit of {expected}: run `bayes-va fit {config}`, or name the folder explicitly "
        f"(--results {folder}) to use this fit"
    )


def _exact_draws(config: str | Path, kind: str, n_draws: int, seed: int) -> FloatArray:
    """Draw the pooled or predictive proportion from the exact quadrature posterior."""
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
    rng = stream_rng(seed, STREAM_BASELINE)
    w = post.weights.ravel()
    cell = rng.choice(w.size, n_draws, p=w / w.sum())
    i, j = np.unravel_index(cell, post.weights.shape)
    dmu, drho = post.mu[1] - post.mu[0], post.log_tau[1] - post.log_tau[0]
    mu = post.mu[i] + dmu * (rng.random(n_draws) - 0.5)
    tau = np.exp(post.log_tau[j] + drho * (rng.random(n_draws) - 0.5))
    if kind == "pooled":
        return special.expit(mu)
    z = stream_rng(seed, STREAM_PREDICTIVE).standard_normal(n_draws)
    return special.expit(mu + tau * z)


def revision_baseline(
    source: Any,
    *,
    kind: Literal["pooled", "predictive"] = "pooled",
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
) -> FloatArray:
    """Draw the revision baseline proportion.

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
    """Draw the AVF risk by ``horizon_months`` from the AVF meta-regression.

    Calls ``source.linear_predictor({moderator: horizon_months})`` (the fit takes the raw
    months and logs them itself) for ``pooled``; ``predictive`` adds ``tau * z``, ``z ~ N(0, 1)``
    (stream ``STREAM_PREDICTIVE``), the spread of a new cohort. The follow-up moderator is each
    cohort's mean follow-up, so "risk by h months" reads the between-cohort trend as a
    within-patient cumulative incidence: an approximation.

    Parameters
    ----------
    source : AVFSource, str or Path
        A fit of the AVF table with a follow-up moderator, or its results folder.
    horizon_months : float
        Follow-up in months, in (0, 120].
    kind : {"pooled", "predictive"}
        Population mean risk or a new cohort's risk.
    n_draws, seed : int
        Draws are resampled to ``n_draws`` (stream ``STREAM_BASELINE``) when counts differ.
    moderator : str
        Name of the follow-up moderator in the fit.

    Returns
    -------
    ndarray, shape (n_draws,)
        Risk draws, as probabilities.

    Raises
    ------
    RiskInputError
        For a bad ``kind`` or horizon, a fit of another table, or a fit without the linear
        predictor (or without ``tau`` for ``predictive``).
    """
    if kind not in ("pooled", "predictive"):
        raise RiskInputError(f"baseline is {kind!r}; allowed: pooled, predictive")
    if not 0 < horizon_months <= 120:
        raise RiskInputError(f"horizon_months must lie in (0, 120], got {horizon_months}")
    fit: Any = load_source(source)
    _check_table(fit, "avf")
    if not hasattr(fit, "linear_predictor"):
        raise RiskInputError("the AVF baseline needs a fit with a linear_predictor method")
    lp = fit.linear_predictor({moderator: float(horizon_months)})
    eta = _flat(lp)
    if kind == "predictive":
        post = fit.tree["posterior"]
        if "tau" not in post.data_vars:
            raise RiskInputError("this AVF fit has no tau; use the pooled baseline")
        z = stream_rng(seed, STREAM_PREDICTIVE).standard_normal(eta.size)
        eta = eta + _flat(post["tau"]) * z
    return _resample(special.expit(eta), n_draws, seed)


# ------------------------------------------------------------------------------- transport


def transport_draws(transport: TransportPrior, n_draws: int, seed: int) -> FloatArray:
    """Draw ``lambda`` from ``transport`` (stream ``STREAM_TRANSPORT``)."""
    if transport.dist == "Fixed":
        return np.full(n_draws, transport.value)
    return stream_rng(seed, STREAM_TRANSPORT).beta(transport.alpha, transport.beta, n_draws)
