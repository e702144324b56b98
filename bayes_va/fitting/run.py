"""Config → fit → result: the one function most users call."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_va.config.model import Config, apply_overrides, load_config
from bayes_va.config.priors import log_density
from bayes_va.core.errors import DataValidationError
from bayes_va.data.dataset import StudyData, build_dataset
from bayes_va.data.moderators import build_design
from bayes_va.data.tables import moderator_problems
from bayes_va.engine.derived import add_derived
from bayes_va.engine.prior import add_prior
from bayes_va.engine.sampling import run_sampler
from bayes_va.fitting.diagnostics import Timings, compute_diagnostics
from bayes_va.fitting.estimates import (
    CI_PROB,
    Estimates,
    exact_reference,
    headline,
    moderator_effects,
    study_rows,
)
from bayes_va.fitting.provenance import provenance_record
from bayes_va.fitting.results import FitResult
from bayes_va.numerics import exact, glmm

#: The quadrature reference costs roughly 2-10 ms per study (9 s at k = 1,000, 80 s at
#: k = 10,000), so fits of larger data sets skip it; call :func:`exact_posterior` directly.
EXACT_MAX_K = 200


def exact_posterior(
    cfg: Config, data: StudyData
) -> exact.ExactPosterior | exact.ExactBetaBinomialPosterior:
    """Compute the quadrature posterior of ``cfg``'s intercept-only model under its priors.

    Parameters
    ----------
    cfg : Config
        Family and priors; moderators are not used (the reference has no regression).
    data : StudyData
        Counts per study.

    Returns
    -------
    ExactPosterior or ExactBetaBinomialPosterior
        Over (mu, tau) for the logit-normal family, (mu, phi) for the beta-binomial.
    """
    if cfg.model.family == "beta_binomial":
        return exact.posterior_grid_beta_binomial(
            data.y,
            data.n,
            log_prior_mu=log_density(cfg.priors.mu),
            log_prior_phi=log_density(cfg.priors.phi),
        )
    return exact.posterior_grid(
        data.y,
        data.n,
        log_prior_mu=log_density(cfg.priors.mu),
        log_prior_tau=log_density(cfg.priors.tau),
    )


def fit(
    config: str | Path | Config,
    *,
    overrides: dict[str, Any] | list[str] | None = None,
    data: StudyData | str | Path | pd.DataFrame | None = None,
    out_dir: str | Path | None = None,
    reference: bool = True,
) -> FitResult:
    """Fit a model config and return its result.

    Parameters
    ----------
    config : path or Config
        A TOML config (``"models/base.toml"``) or a loaded :class:`Config`.
    overrides : dict or list of "key=value", optional
        Dotted-key overrides, e.g. ``{"sampler.seed": 7}`` or ``["sampler.seed=7"]``; recorded
        in the provenance (``overrides``, see :func:`override_list`).
    data : StudyData, path or pandas.DataFrame, optional
        Use these data instead of the config's: counts (simulations), or a user's table (a CSV
        path or a frame with the columns ``study``, ``events``, ``n`` or those of the config's
        ``[data.columns]``, plus moderator columns; see :func:`with_table`).
    out_dir : path, optional
        If given, write the results folder there (see :mod:`bayes_va.fitting.results`).
    reference : bool
        Compute the quadrature reference posterior (intercept-only models with k <=
        :data:`EXACT_MAX_K`); callers that never show it (sensitivity rows) may skip it.

    Returns
    -------
    FitResult
        Its ``ok`` says whether the diagnostics met the config's thresholds; a failed check
        does not raise here (the CLI turns it into a non-zero exit).
    """
    t_start = time.perf_counter()
    given = override_list(overrides)
    if isinstance(config, Config):
        cfg = apply_overrides(config, overrides)
    else:
        cfg = load_config(config, overrides)
    frame = None
    if isinstance(data, str | Path):
        cfg, data = with_table(cfg, Path(data).resolve()), None
    elif isinstance(data, pd.DataFrame):
        cfg, frame, data = with_table(cfg, DATAFRAME), data, None
    if data is None:
        data = build_dataset(cfg.data, cfg.data_dir, frame)
        if data.files:  # a user's table: name its missing moderator columns by file and line
            problems = moderator_problems(data.table, cfg.model.moderators)
            if problems:
                raise DataValidationError(problems)

    design = build_design(data.table, cfg.model.moderators, cfg.model.reference)
    run = run_sampler(cfg, data, design)
    tree = add_derived(run.tree, data, cfg.sampler.seed, cfg.model.family, design)
    tree = add_prior(tree, cfg, data, design)  # own seed stream: the posterior is unchanged
    diag = compute_diagnostics(
        tree, cfg.diagnostics, sampled_theta=cfg.model.parametrisation != "marginal"
    )

    # The references apply to the intercept-only model on the same data: the quadrature
    # posterior of the same family and priors, and the classical (logit-normal) GLMM.
    plain = not cfg.model.moderators
    t0 = time.perf_counter()
    use_exact = reference and plain and data.k <= EXACT_MAX_K
    ref = exact_posterior(cfg, data) if use_exact else None
    t_exact = time.perf_counter() - t0
    # The classical GLMM has no finite MLE of mu when no study has an event (or a non-event);
    # the Bayesian fit is still proper, so the comparison row is left out, not the fit.
    mle_exists = 0 < data.y.sum() < data.n.sum()
    classical = glmm.fit_glmm(data.y, data.n) if plain and mle_exists else None

    estimates = Estimates(
        k=data.k,
        family=cfg.model.family,
        ci_prob=CI_PROB,
        **headline(tree),
        exact=exact_reference(ref) if ref is not None else None,
        glmm=classical,
        moderators=moderator_effects(tree),
        studies=study_rows(tree, data),
    )
    timings = Timings(
        compile_seconds=run.compile_seconds,
        sample_seconds=run.sample_seconds,
        reused_compiled_model=run.reused_compiled,
        exact_seconds=t_exact,
        fit_seconds=time.perf_counter() - t_start,
    )
    diag = dataclasses.replace(diag, timings=timings)
    prov = provenance_record(cfg, data, overrides=given)
    result = FitResult(cfg, data, tree, estimates, diag, prov)
    if out_dir is not None:
        result.save(out_dir)
    return result


#: ``data.table`` of a fit whose table was a pandas DataFrame (not a file to reload).
DATAFRAME = "<DataFrame>"


def with_table(cfg: Config, table: str | Path) -> Config:
    """Return ``cfg`` fitted to another table: a CSV path (or :data:`DATAFRAME`).

    The model, priors and sampler settings and the column map (``[data.columns]``) stay; the
    selection that names the old table's rows and columns (``variants``, ``split_arms``,
    ``keep``, ``exclude``) is dropped.
    """
    return cfg.replace(
        **{
            "data.table": str(table),
            "data.variants": [],
            "data.split_arms": False,
            "data.keep": {},
            "data.exclude": [],
        }
    )


def override_list(overrides: dict[str, Any] | list[str] | None) -> list[str]:
    """Return overrides as ``"key=value"`` strings: a list as given, a dict's values as JSON.

    JSON numbers, strings, booleans and lists are also TOML, so each string parses back with
    :func:`bayes_va.config.model.parse_override`.
    """
    if not overrides:
        return []
    if isinstance(overrides, list):
        return [str(o) for o in overrides]
    return [f"{k}={json.dumps(v, sort_keys=True)}" for k, v in overrides.items()]
