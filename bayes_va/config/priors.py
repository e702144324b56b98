"""The prior families: one table that the config schema, the PyMC model and SciPy share.

:data:`FAMILIES` gives, per family, its parameters (the fields of its model, in PyMC's
parametrisation), the name of the PyMC distribution (the engine resolves it with
``getattr(pymc, name)``; config does not import PyMC), the SciPy distribution with the same
density (:func:`frozen`, used by the exact quadrature reference, SBC's prior draws and
power-scaling) and its support. :func:`used_priors` is the one rule for which priors a config
uses. ``tests/test_config_priors.py`` checks that the PyMC and SciPy densities agree.

In a TOML config a prior is a table tagged by ``dist``::

    [priors.tau]
    dist = "HalfNormal"
    sigma = 1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, RootModel, model_validator
from scipy import stats

from bayes_va.config.base import Finite, FrozenModel, Positive, tagged_members

if TYPE_CHECKING:
    from bayes_va.config.model import Config

LogDensity = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- families


class Normal(FrozenModel):
    """Normal(mu, sigma): mean ``mu``, standard deviation ``sigma``."""

    dist: Literal["Normal"]
    mu: Finite = Field(description="mean")
    sigma: Positive = Field(description="standard deviation (> 0)")


class HalfNormal(FrozenModel):
    """HalfNormal(sigma): |Normal(0, sigma)|."""

    dist: Literal["HalfNormal"]
    sigma: Positive = Field(description="scale: the SD of the Normal folded at 0 (> 0)")


class HalfCauchy(FrozenModel):
    """HalfCauchy(beta): |Cauchy(0, beta)|."""

    dist: Literal["HalfCauchy"]
    beta: Positive = Field(description="scale (> 0)")


class Exponential(FrozenModel):
    """Exponential(lam): rate ``lam``, mean ``1 / lam``."""

    dist: Literal["Exponential"]
    lam: Positive = Field(description="rate (> 0); the mean is 1 / lam")


class LogNormal(FrozenModel):
    """LogNormal(mu, sigma): ``log x ~ Normal(mu, sigma)``."""

    dist: Literal["LogNormal"]
    mu: Finite = Field(description="mean of log x")
    sigma: Positive = Field(description="SD of log x (> 0)")


class Gamma(FrozenModel):
    """Gamma(alpha, beta): shape ``alpha``, rate ``beta`` (mean ``alpha / beta``)."""

    dist: Literal["Gamma"]
    alpha: Positive = Field(description="shape (> 0)")
    beta: Positive = Field(description="rate (> 0); the mean is alpha / beta")


@dataclass(frozen=True)
class Family:
    """One prior family.

    Attributes
    ----------
    model : type
        Its pydantic model (the TOML table); its fields after ``dist`` are the parameters.
    pymc : str
        Name of the PyMC distribution with the same parametrisation.
    scipy : callable
        Parameters to the equal frozen SciPy distribution.
    support : tuple of float
        Lower and upper bound of the support.
    """

    model: type[FrozenModel]
    pymc: str
    scipy: Callable[[Mapping[str, float]], Any]
    support: tuple[float, float]

    @property
    def params(self) -> tuple[str, ...]:
        """Parameter names, in PyMC's order."""
        return tuple(name for name in self.model.model_fields if name != "dist")


_POS = (0.0, math.inf)
#: Every prior family, by its ``dist`` name.
FAMILIES: dict[str, Family] = {
    "Normal": Family(
        Normal, "Normal", lambda p: stats.norm(loc=p["mu"], scale=p["sigma"]), (-math.inf, math.inf)
    ),
    "HalfNormal": Family(
        HalfNormal, "HalfNormal", lambda p: stats.halfnorm(scale=p["sigma"]), _POS
    ),
    "HalfCauchy": Family(
        HalfCauchy, "HalfCauchy", lambda p: stats.halfcauchy(scale=p["beta"]), _POS
    ),
    "Exponential": Family(
        Exponential, "Exponential", lambda p: stats.expon(scale=1.0 / p["lam"]), _POS
    ),
    "LogNormal": Family(
        LogNormal, "LogNormal", lambda p: stats.lognorm(s=p["sigma"], scale=np.exp(p["mu"])), _POS
    ),
    # PyMC's Gamma(alpha, beta) has rate beta
    "Gamma": Family(
        Gamma, "Gamma", lambda p: stats.gamma(a=p["alpha"], scale=1.0 / p["beta"]), _POS
    ),
}

AnyFamily = Annotated[
    Normal | HalfNormal | HalfCauchy | Exponential | LogNormal | Gamma, Field(discriminator="dist")
]


# --------------------------------------------------------------------------- Prior


class Prior(RootModel[AnyFamily]):
    """A prior: a family and its parameters, e.g. ``Prior("HalfNormal", {"sigma": 1.0})``.

    Two priors are equal when their family and parameters are; which slot class (e.g.
    :class:`TauPrior`) holds them does not matter.
    """

    model_config = ConfigDict(frozen=True)

    def __init__(
        self,
        dist: str | Mapping[str, Any] | FrozenModel | None = None,
        params: Mapping[str, float] | None = None,
        /,
        **data: Any,
    ) -> None:
        """Build from ``(dist, params)``, a TOML table or a family model."""
        root: Any = dist
        if isinstance(dist, str):
            root = {"dist": dist, **(params or {})}
        elif dist is None:  # how pydantic calls it while validating a table
            root = data
        super().__init__(root)

    @model_validator(mode="before")
    @classmethod
    def _from_prior(cls, value: Any) -> Any:
        # a prior of another slot class (e.g. a Prior given for priors.tau): check its table
        return value.root.model_dump() if isinstance(value, Prior) else value

    @property
    def dist(self) -> str:
        """The family name (PyMC's)."""
        return str(self.root.dist)

    @property
    def params(self) -> dict[str, float]:
        """The parameters by name, in PyMC's order."""
        return {p: float(getattr(self.root, p)) for p in FAMILIES[self.dist].params}

    @property
    def family(self) -> Family:
        """Its row of :data:`FAMILIES`."""
        return FAMILIES[self.dist]

    def __eq__(self, other: object) -> bool:
        """Compare family and parameters."""
        if not isinstance(other, Prior):
            return NotImplemented
        return (self.dist, self.params) == (other.dist, other.params)

    def __hash__(self) -> int:
        """Hash family and parameters."""
        return hash((self.dist, tuple(self.params.items())))

    def __str__(self) -> str:
        """Return e.g. ``HalfNormal(sigma=1)``."""
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({args})"


class MuPrior(Prior):
    """Prior of mu, the logit of the pooled proportion (or of the reference level)."""

    root: Annotated[Normal, Field(discriminator="dist")]


class TauPrior(Prior):
    """Prior of tau, the between-study SD on the logit scale (logit-normal family)."""

    root: Annotated[HalfNormal | HalfCauchy | Exponential | LogNormal, Field(discriminator="dist")]


class BetaPrior(Prior):
    """Prior of each moderator effect beta_j (a log odds ratio)."""

    root: Annotated[Normal, Field(discriminator="dist")]


class PhiPrior(Prior):
    """Prior of phi, the beta-binomial concentration."""

    root: Annotated[Exponential | Gamma | LogNormal | HalfNormal, Field(discriminator="dist")]


def allowed_families(slot: type[Prior]) -> tuple[str, ...]:
    """Return the family names a slot class (e.g. :class:`TauPrior`) accepts."""
    return tuple(tagged_members(slot.model_fields["root"].annotation))


# --------------------------------------------------------------------------- densities


def frozen(prior: Prior) -> Any:
    """Return the frozen SciPy distribution equal to ``prior`` (PyMC parametrisation)."""
    try:
        family = FAMILIES[prior.dist]
    except KeyError:
        raise ValueError(f"no scipy equivalent for prior {prior}") from None
    return family.scipy(prior.params)


def log_density(prior: Prior) -> LogDensity:
    """Return the vectorised log density of ``prior`` on its natural scale."""
    dist = frozen(prior)
    return lambda x: dist.logpdf(x)


def support(prior: Prior) -> tuple[float, float]:
    """Return the lower and upper bound of the support of ``prior``."""
    return FAMILIES[prior.dist].support


def used_priors(config: Config) -> dict[str, Prior]:
    """Return the priors ``config`` uses, by parameter name, in model order.

    ``mu`` always; ``tau`` for the logit-normal family, ``phi`` for the beta-binomial;
    ``beta`` (one prior for every coefficient) only with moderators.
    """
    priors = config.priors
    used: dict[str, Prior] = {"mu": priors.mu}
    if config.model.family == "logit_normal":
        used["tau"] = priors.tau
    else:
        used["phi"] = priors.phi
    if config.model.moderators:
        used["beta"] = priors.beta
    return used
