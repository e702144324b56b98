"""PyMC models of study-level binomial outcomes.

Logit-normal random effects (the ``logit_normal`` family)::

    y_i     ~ Binomial(n_i, logit^-1(theta_i))        i = 1..k
    theta_i ~ Normal(mu + x_i' beta, tau)
    mu      ~ priors.mu   (default Normal(0, 2.5))
    tau     ~ priors.tau  (default HalfNormal(1))
    beta_j  ~ priors.beta (default Normal(0, 1); only with model.moderators)

Beta-binomial (the ``beta_binomial`` family)::

    y_i ~ BetaBinomial(n_i, p_i phi, (1 - p_i) phi),  logit p_i = mu + x_i' beta
    phi ~ priors.phi (default Exponential(0.01), mean 100)

Without moderators, ``mu`` is the logit of the pooled proportion; with them, the logit at the
reference levels and centres (see :mod:`bayes_va.data.moderators`).

Parametrisations: ``marginal`` (the default) integrates theta out of the likelihood (adaptive
Gauss–Hermite per study, see :mod:`bayes_va.engine.marginal`)::

    p(y_i | mu, beta, tau) = ∫ Binomial(y_i | n_i, logit^-1 t) N(t | mu + x_i' beta, tau) dt

so the sampler sees only mu, tau (and beta), on scales chosen so that the posterior is close to
Gaussian whatever the study sizes: tau = softplus(tau_u) and mu whitened given tau (see
:func:`_marginal_model`); theta is drawn afterwards from its exact conditional
(:func:`bayes_va.engine.derived.add_derived`). ``centred`` samples theta directly (it mixes well
when a few huge studies pin their theta_i, and diverges on small ones); ``noncentred`` samples
z_i ~ Normal(0, 1), theta_i = mu + tau * z_i (the opposite). Only the marginal route held on
every simulated data set of ``bench/reports/robustness.md``.

Counts and prior parameters are ``pm.Data`` so that one compiled model serves every data or
prior-value swap with the same structure (same prior families and moderator columns; same k
only where θ is sampled, see :func:`structure_key`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.variable import TensorVariable

from bayes_va.config.priors import FAMILIES, used_priors
from bayes_va.engine.marginal import first_duplicate, marginal_loglik, node_rule
from bayes_va.numerics.exact import empirical_logits, log_binom_coef

if TYPE_CHECKING:
    from bayes_va.config.model import Config, Prior
    from bayes_va.data.dataset import StudyData
    from bayes_va.data.moderators import Design


def _used_priors(cfg: Config, n_coef: int) -> dict[str, Prior]:
    """Return ``used_priors(cfg)``, checked against the design's moderator columns."""
    used = used_priors(cfg)
    if ("beta" in used) != bool(n_coef):
        raise ValueError(
            f"the design has {n_coef} moderator column(s) but model.moderators is "
            f"{list(cfg.model.moderators)}: build the design from the config"
        )
    return used


def _distribution(prior: Prior) -> type[pm.Distribution]:
    """Return the PyMC distribution of ``prior``'s family (named in the prior table)."""
    return getattr(pm, FAMILIES[prior.dist].pymc)


def structure_key(cfg: Config, data: StudyData, design: Design) -> tuple[object, ...]:
    """Return what determines the compiled graph: family, parametrisation, prior families, shapes.

    Two configurations with equal keys share one compiled model; they differ only in the
    values of its ``pm.Data`` containers (:func:`data_values`). The number of studies k is
    part of the key only where the sampler's parameters grow with it (θ or z sampled: the
    ``centred`` and ``noncentred`` logit-normal routes). Elsewhere (``marginal``, the
    beta-binomial) the per-study containers have dynamic shapes (``shape=(None,)``), so
    nutpie's ``with_data`` swaps in a dataset of any k without recompiling.
    """
    priors = _used_priors(cfg, design.X.shape[1])
    return (
        cfg.model.family,
        cfg.model.parametrisation,
        tuple((k, p.dist) for k, p in priors.items()),
        data.k if k_in_structure(cfg) else None,
        design.X.shape[1],
    )


def k_in_structure(cfg: Config) -> bool:
    """Say whether the sampled parameters of ``cfg``'s model grow with the number of studies."""
    return cfg.model.family == "logit_normal" and cfg.model.parametrisation != "marginal"


def data_values(cfg: Config, data: StudyData, design: Design) -> dict[str, object]:
    """Return the value of every ``pm.Data`` container (counts, design matrix, prior parameters).

    Setting these on a model built by :func:`build_model` for a configuration with the same
    :func:`structure_key` turns it into the model of ``cfg`` on ``data``.
    """
    values: dict[str, object] = {"n": data.n, "y_obs": data.y}
    if cfg.model.family == "logit_normal" and cfg.model.parametrisation == "marginal":
        values["log_binom_coef"] = log_binom_coef(data.y, data.n)
        values["quad_rule"] = node_rule(data.y, data.n)
        values["first_same_counts"] = first_duplicate(data.y, data.n)
        values["empirical_logit"], values["empirical_logit_var"] = empirical_logits(data.y, data.n)
    if design.X.shape[1]:
        values["X"] = design.X
    for which, prior in _used_priors(cfg, design.X.shape[1]).items():
        for p, v in prior.params.items():
            values[f"prior_{which}_{p}"] = v
    return values


def _prior_params(name: str, prior: Prior) -> dict[str, TensorVariable]:
    """Return the prior's parameters as ``pm.Data`` (swappable without recompiling)."""
    return {p: pm.Data(f"prior_{name}_{p}", v) for p, v in prior.params.items()}


def _prior(name: str, prior: Prior, dims: str | None = None) -> TensorVariable:
    """Add the free variable ``name`` with prior ``prior``, its parameters as ``pm.Data``."""
    return _distribution(prior)(name, **_prior_params(name, prior), dims=dims)


def build_model(cfg: Config, data: StudyData, design: Design) -> pm.Model:
    """Build the PyMC model of ``cfg.model`` on ``data``.

    Parameters
    ----------
    cfg : Config
        The resolved configuration (family, parametrisation, priors).
    data : StudyData
        Counts per study.
    design : Design
        Moderator design matrix (zero columns without moderators).

    Returns
    -------
    pymc.Model
        Free variables ``mu``, ``tau`` and ``theta`` (centred) or ``z`` (non-centred, with
        ``theta`` deterministic) or neither (marginal) for the logit-normal family, ``mu`` and
        ``phi`` for the beta-binomial, plus ``beta`` (dims ``coef``) with moderators; observed
        ``y`` (with the marginal likelihood in the marginal parametrisation).
    """
    coords = {"study": list(data.study)}
    n_coef = design.X.shape[1]
    if n_coef:
        coords["coef"] = list(design.coef_names)
    priors = _used_priors(cfg, n_coef)
    with pm.Model(coords=coords) as model:
        n = pm.Data("n", data.n, dims="study")
        y_obs = pm.Data("y_obs", data.y, dims="study")
        if cfg.model.family == "logit_normal" and cfg.model.parametrisation == "marginal":
            _marginal_model(data, design, priors, n, y_obs)
            return model
        mu = _prior("mu", priors["mu"])
        eta = mu
        if n_coef:
            X = pm.Data("X", design.X, dims=("study", "coef"))
            beta = _prior("beta", priors["beta"], dims="coef")
            eta = mu + pm.math.dot(X, beta)
        if cfg.model.family == "logit_normal":
            tau = _prior("tau", priors["tau"])  # marginal returned above: centred/noncentred
            if cfg.model.parametrisation == "centred":
                theta = pm.Normal("theta", mu=eta, sigma=tau, dims="study")
            else:
                z = pm.Normal("z", 0.0, 1.0, dims="study")
                theta = pm.Deterministic("theta", eta + tau * z, dims="study")
            pm.Binomial("y", n=n, logit_p=theta, observed=y_obs, dims="study")
        elif cfg.model.family == "beta_binomial":
            phi = _prior("phi", priors["phi"])
            p = pm.math.invlogit(eta)
            pm.BetaBinomial(
                "y", n=n, alpha=p * phi, beta=(1.0 - p) * phi, observed=y_obs, dims="study"
            )
        else:  # pragma: no cover - guarded by the config schema
            raise ValueError(f"unknown family {cfg.model.family!r}")
    return model


def _marginal_likelihood(
    data: StudyData,
    n: TensorVariable,
    y_obs: TensorVariable,
    eta: TensorVariable,
    tau: TensorVariable,
) -> None:
    """Add the observed ``y`` with theta integrated out (see :mod:`bayes_va.engine.marginal`)."""
    log_coef = pm.Data("log_binom_coef", log_binom_coef(data.y, data.n), dims="study")
    rule = pm.Data("quad_rule", node_rule(data.y, data.n), dims="study")
    first = pm.Data("first_same_counts", first_duplicate(data.y, data.n), dims="study")

    def logp(
        value: TensorVariable,
        eta: TensorVariable,
        tau: TensorVariable,
        n: TensorVariable,
        log_coef: TensorVariable,
        rule: TensorVariable,
        first: TensorVariable,
    ) -> TensorVariable:
        return marginal_loglik(value, n, log_coef, rule, first, eta, tau)

    pm.CustomDist("y", eta, tau, n, log_coef, rule, first, logp=logp, observed=y_obs, dims="study")


def _marginal_model(
    data: StudyData,
    design: Design,
    priors: dict[str, Prior],
    n: TensorVariable,
    y_obs: TensorVariable,
) -> None:
    """Add the ``marginal`` route: θ integrated out; μ, τ (and β) on near-Gaussian scales.

    With θ integrated out the posterior lives on (μ, τ, β), and its shape still varies:
    μ's conditional spread changes with τ (about τ/√k when τ dominates the studies' sampling
    error, about the pooled standard error when it does not), and on the log scale the
    prior's Gaussian upper tail of τ becomes a steep wall. Both gave divergences on sparse
    data sets (bench/reports/robustness.md). So the sampler works on

    * ``tau_u`` with ``tau = softplus(tau_u)``: like log τ near 0 (where the posterior has an
      exponential lower tail), like τ itself for large τ;
    * ``mu_z`` with ``mu = m(tau, beta) + s(tau) * mu_z``, m and s the inverse-variance mean
      and standard error of the studies' empirical logits ((y + 1/2) / (n - y + 1/2)) at that
      τ, so that μ's conditional is about unit-wide in ``mu_z`` at every τ.

    Both are exact changes of variables: the priors of μ and τ and the log-Jacobians enter as
    potentials, so the posterior is unchanged; only the shape the sampler sees is.
    """
    y_hat, s2 = empirical_logits(data.y, data.n)
    y_hat_d = pm.Data("empirical_logit", y_hat, dims="study")
    s2_d = pm.Data("empirical_logit_var", s2, dims="study")
    # tau = softplus(tau_u): ~log tau near 0 (its exponential lower tail) and ~tau for large
    # tau, where log tau would turn the prior's Gaussian upper tail into a steep wall whose
    # curvature the step size cannot follow (the last divergences on k = 3 data sets).
    tau_u = pm.Flat("tau_u", initval=0.5)
    tau = pm.Deterministic("tau", pt.softplus(tau_u))
    pm.Potential("tau_prior", _logp(priors["tau"], "tau", tau) + pt.log(pt.sigmoid(tau_u)))
    target = y_hat_d
    eta_offset = 0.0
    if design.X.shape[1]:
        X = pm.Data("X", design.X, dims=("study", "coef"))
        beta = _prior("beta", priors["beta"], dims="coef")
        eta_offset = pm.math.dot(X, beta)
        target = y_hat_d - eta_offset
    w = 1.0 / (s2_d + tau**2)
    centre = pt.sum(w * target) / pt.sum(w)
    scale = 1.0 / pt.sqrt(pt.sum(w))
    mu_z = pm.Flat("mu_z")
    mu = pm.Deterministic("mu", centre + scale * mu_z)
    pm.Potential("mu_prior", _logp(priors["mu"], "mu", mu) + pt.log(scale))
    _marginal_likelihood(data, n, y_obs, mu + eta_offset, tau)


def _logp(prior: Prior, name: str, value: TensorVariable) -> TensorVariable:
    """Return the log density of ``prior`` at ``value``, its parameters as ``pm.Data``."""
    return pm.logp(_distribution(prior).dist(**_prior_params(name, prior)), value)
