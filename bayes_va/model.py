"""PyMC models of study-level binomial outcomes.

Logit-normal random effects (the ``logit_normal`` family)::

    y_i     ~ Binomial(n_i, logit^-1(theta_i))        i = 1..k
    theta_i ~ Normal(mu, tau)
    mu      ~ priors.mu   (default Normal(0, 2.5))
    tau     ~ priors.tau  (default HalfNormal(1))

Parametrisations: ``centred`` samples theta directly; ``noncentred`` samples
z_i ~ Normal(0, 1) and sets theta_i = mu + tau * z_i. Centred is the default: two studies with
n ≈ 80,000 pin their theta_i so tightly that the non-centred form couples z_i to tau and mixes
15-60x worse (R-hat up to 1.06, divergences); see ``bench/results/fit.json``.

Counts and prior parameters are ``pm.Data`` so that one compiled model serves every data or
prior-value swap with the same structure (same k, same prior families).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pymc as pm

if TYPE_CHECKING:
    from .config import Config, Prior
    from .dataset import StudyData


def structure_key(cfg: Config, k: int) -> tuple:
    """What determines the compiled graph: family, parametrisation, prior families and k."""
    return (
        cfg.model.family,
        cfg.model.parametrisation,
        cfg.priors.mu.dist,
        cfg.priors.tau.dist,
        k,
    )


def data_values(cfg: Config, data: StudyData) -> dict[str, object]:
    """Values of every ``pm.Data`` container of the model (counts and prior parameters)."""
    values: dict[str, object] = {"n": data.n, "y_obs": data.y}
    for which, prior in (("mu", cfg.priors.mu), ("tau", cfg.priors.tau)):
        for p, v in prior.params.items():
            values[f"prior_{which}_{p}"] = v
    return values


def _prior(name: str, prior: Prior) -> pm.Distribution:
    params = {p: pm.Data(f"prior_{name}_{p}", v) for p, v in prior.params.items()}
    dist = getattr(pm, prior.dist)
    return dist(name, **params)


def build_model(cfg: Config, data: StudyData) -> pm.Model:
    """Build the PyMC model of ``cfg.model`` on ``data``.

    Parameters
    ----------
    cfg : Config
        The resolved configuration (family, parametrisation, priors).
    data : StudyData
        Counts per study.

    Returns
    -------
    pymc.Model
        Free variables ``mu``, ``tau`` and ``theta`` (centred) or ``z`` (non-centred, with
        ``theta`` deterministic); observed ``y``.
    """
    if cfg.model.family != "logit_normal":  # pragma: no cover - guarded by the config schema
        raise ValueError(f"unknown family {cfg.model.family!r}")
    coords = {"study": list(data.study)}
    with pm.Model(coords=coords) as model:
        n = pm.Data("n", data.n, dims="study")
        y_obs = pm.Data("y_obs", data.y, dims="study")
        mu = _prior("mu", cfg.priors.mu)
        tau = _prior("tau", cfg.priors.tau)
        if cfg.model.parametrisation == "centred":
            theta = pm.Normal("theta", mu=mu, sigma=tau, dims="study")
        else:
            z = pm.Normal("z", 0.0, 1.0, dims="study")
            theta = pm.Deterministic("theta", mu + tau * z, dims="study")
        pm.Binomial("y", n=n, logit_p=theta, observed=y_obs, dims="study")
    return model
