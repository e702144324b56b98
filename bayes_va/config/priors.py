"""Prior densities as numpy callables, for the exact (quadrature) reference.

The same :class:`~bayes_va.config.model.Prior` objects drive the PyMC model (by distribution name)
and these scipy densities; ``tests/test_priors.py`` checks the two agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from bayes_va.config.model import Prior

LogDensity = Callable[[np.ndarray], np.ndarray]


def frozen(prior: Prior) -> stats.rv_continuous:
    """The scipy distribution equal to ``prior`` (PyMC parametrisation)."""
    p = prior.params
    match prior.dist:
        case "Normal":
            return stats.norm(loc=p["mu"], scale=p["sigma"])
        case "HalfNormal":
            return stats.halfnorm(scale=p["sigma"])
        case "HalfCauchy":
            return stats.halfcauchy(scale=p["beta"])
        case "Exponential":
            return stats.expon(scale=1.0 / p["lam"])
        case "LogNormal":
            return stats.lognorm(s=p["sigma"], scale=np.exp(p["mu"]))
        case "Gamma":  # PyMC's Gamma(alpha, beta) has rate beta
            return stats.gamma(a=p["alpha"], scale=1.0 / p["beta"])
    raise ValueError(f"no scipy equivalent for prior {prior}")


def log_density(prior: Prior) -> LogDensity:
    """Vectorised log density of ``prior`` on its natural scale."""
    dist = frozen(prior)
    return lambda x: dist.logpdf(x)
