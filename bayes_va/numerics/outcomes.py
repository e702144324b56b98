"""Small-sample binomial outcomes with exact likelihoods: within-study contrasts and Gaughen 2002.

Numpy/scipy only (no PyMC). Two kinds of evidence live here:

1. **Within-study contrasts** (``data/avf_contrasts.csv``, Reyhani Yassavoly 2025): two groups of
   one cohort, each an exact binomial with a conjugate Beta prior::

       y1 ~ Binomial(n1, p1),  y0 ~ Binomial(n0, p0),  p1, p0 ~ Beta(a, b) independently
       log OR = logit p1 - logit p0

   The posteriors are Beta(a + y, b + n - y), so zero cells are fine and no continuity
   correction is used. The default prior is Jeffreys' Beta(1/2, 1/2) (the reference prior of a
   binomial proportion, weight of one observation in total); Beta(1, 1) is the sensitivity
   alternative. Medians and intervals of the log OR come from seeded draws; P(OR > 1) =
   P(p1 > p0) is a one-dimensional integral computed by quadrature (no Monte Carlo error).

2. **Gaughen 2002** (``data/gaughen2002.csv``): repeat vertebroplasty at a previously treated
   level in six patients. The probability ``p`` that a patient achieves an outcome (>= 3-point pain
   reduction: 5 of 6; improved mobility: 4 of the 4 with impaired mobility) has the posterior
   Beta(a + y, b + n - y). Its mean is also the posterior predictive probability that the *next*
   such patient achieves the outcome.

All randomness comes from ``np.random.default_rng(np.random.SeedSequence([seed, stream]))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import integrate, special, stats

from bayes_va.core.errors import BayesVAError
from bayes_va.core.rng import FitStream, stream_rng
from bayes_va.data.tables import load_table

__all__ = [
    "CI_PROB",
    "DEFAULT_SEED",
    "JEFFREYS",
    "PRIORS",
    "UNIFORM",
    "BetaPrior",
    "LogOddsRatio",
    "ProportionPosterior",
    "avf_contrasts",
    "contrast_table",
    "gaughen_outcomes",
    "gaughen_table",
    "log_odds_ratio",
    "prob_greater",
    "proportion_draws",
]

FloatArray = NDArray[np.float64]

#: Posterior summaries use equal-tailed intervals of this probability (as in
#: bayes_va.fitting.estimates).
CI_PROB = 0.95
#: Default seed of the draws (the project's base seed).
DEFAULT_SEED = 20231123
#: Draws per log odds ratio: the Monte Carlo SE of a 2.5 % quantile is then ~1 % of the
#: posterior SD, far below the rounding of any reported figure.
DEFAULT_DRAWS = 20_000
#: Stream offset of the contrasts: contrast i of the file (file order) uses stream 100 + i.
_STREAM_CONTRASTS = int(FitStream.CONTRASTS)

#: Gaughen 2002 measures reported as proportions, with a plain-language description.
GAUGHEN_MEASURES: dict[str, str] = {
    "pain_reduction_ge3_points": "pain reduced by >= 3 points (0-10 scale) after repeat VP",
    "mobility_improved": "mobility improved after repeat VP (patients with impaired mobility)",
}


class OutcomeError(BayesVAError, ValueError):
    """Counts or priors that cannot define a binomial posterior."""


@dataclass(frozen=True)
class BetaPrior:
    """A Beta(a, b) prior on a binomial proportion.

    Attributes
    ----------
    a, b : float
        Shape parameters, both > 0.
    label : str
        How the prior is named in tables.
    """

    a: float
    b: float
    label: str = ""

    def __post_init__(self) -> None:
        """Check ``a, b > 0`` and finite; default the label to ``Beta(a, b)``."""
        if not (math.isfinite(self.a) and math.isfinite(self.b) and self.a > 0 and self.b > 0):
            raise OutcomeError(f"Beta prior needs a > 0 and b > 0, got a={self.a}, b={self.b}")
        if not self.label:
            object.__setattr__(self, "label", f"Beta({self.a:g}, {self.b:g})")

    def posterior(self, events: int, n: int) -> tuple[float, float]:
        """Posterior shapes ``(a + events, b + n - events)`` after an exact binomial likelihood."""
        _check_counts(events, n)
        return self.a + events, self.b + n - events


JEFFREYS = BetaPrior(0.5, 0.5, "Jeffreys Beta(1/2, 1/2)")
UNIFORM = BetaPrior(1.0, 1.0, "uniform Beta(1, 1)")
#: Priors by name (as used in configs and on the command line).
PRIORS: dict[str, BetaPrior] = {"jeffreys": JEFFREYS, "uniform": UNIFORM}


def _check_counts(events: int, n: int) -> None:
    if not (float(events).is_integer() and float(n).is_integer()):
        raise OutcomeError(f"counts must be integers, got {events}/{n}")
    if not 0 <= events <= n or n < 1:
        raise OutcomeError(f"need 0 <= events <= n and n >= 1, got {events}/{n}")


def proportion_draws(
    events: int, n: int, prior: BetaPrior, n_draws: int, rng: np.random.Generator
) -> FloatArray:
    """Draws of a binomial proportion from its Beta posterior.

    Parameters
    ----------
    events, n : int
        Observed events out of ``n``.
    prior : BetaPrior
        The Beta prior.
    n_draws : int
        Number of draws.
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller).

    Returns
    -------
    ndarray, shape (n_draws,)
    """
    a, b = prior.posterior(events, n)
    return rng.beta(a, b, size=n_draws)


def prob_greater(a1: float, b1: float, a0: float, b0: float) -> float:
    """P(p1 > p0) for independent p1 ~ Beta(a1, b1), p0 ~ Beta(a0, b0), by quadrature.

    Integrates ``f1(p) F0(p)`` over ``u = logit p``, where the integrand is smooth and decays
    exponentially (on the p scale a Beta density with a shape < 1 is unbounded at 0 or 1).
    Absolute error < 1e-10.
    """
    lbeta1 = special.betaln(a1, b1)

    def integrand(u: float) -> float:
        log_p, log_q = -np.logaddexp(0.0, -u), -np.logaddexp(0.0, u)
        log_f1 = a1 * log_p + b1 * log_q - lbeta1  # density of u = logit p1
        return math.exp(log_f1) * float(special.betainc(a0, b0, math.exp(log_p)))

    value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12, epsrel=1e-10, limit=200)
    return float(min(1.0, max(0.0, value)))


def _interval(draws: FloatArray, ci_prob: float) -> tuple[float, float, float]:
    a = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(draws, [a, 0.5, 1.0 - a])
    return float(med), float(lo), float(hi)


@dataclass(frozen=True)
class LogOddsRatio:
    """Posterior of a two-group log odds ratio (exposed vs reference).

    Attributes
    ----------
    name : str
        Contrast id (``brace_avf``).
    exposed, reference : str
        Group descriptions.
    events1, n1, events0, n0 : int
        Exposed and reference counts.
    prior : BetaPrior
        Prior of each group's proportion.
    draws : ndarray, shape (n_draws,)
        Posterior draws of the log odds ratio.
    p1, p0 : ndarray, shape (n_draws,)
        The group proportions the log OR was computed from.
    """

    name: str
    exposed: str
    reference: str
    events1: int
    n1: int
    events0: int
    n0: int
    prior: BetaPrior
    draws: FloatArray = field(repr=False)
    p1: FloatArray = field(repr=False)
    p0: FloatArray = field(repr=False)

    @property
    def sample_log_or(self) -> float:
        """The classical log OR from the counts (nan when a cell is zero: it is then undefined)."""
        cells = (self.events1, self.n1 - self.events1, self.events0, self.n0 - self.events0)
        if min(cells) == 0:
            return float("nan")
        return math.log(cells[0] * cells[3] / (cells[1] * cells[2]))

    @property
    def prob_or_above_1(self) -> float:
        """P(OR > 1 | data) = P(p1 > p0), exact up to quadrature error."""
        a1, b1 = self.prior.posterior(self.events1, self.n1)
        a0, b0 = self.prior.posterior(self.events0, self.n0)
        return prob_greater(a1, b1, a0, b0)

    def summary(self, ci_prob: float = CI_PROB) -> dict[str, float | str | int]:
        """Median and equal-tailed interval of the log OR and OR, P(OR > 1), the counts."""
        med, lo, hi = _interval(self.draws, ci_prob)
        return {
            "contrast": self.name,
            "exposed": self.exposed,
            "reference": self.reference,
            "events1": self.events1,
            "n1": self.n1,
            "events0": self.events0,
            "n0": self.n0,
            "prior": self.prior.label,
            "log_or_median": med,
            "log_or_lower": lo,
            "log_or_upper": hi,
            "or_median": math.exp(med),
            "or_lower": math.exp(lo),
            "or_upper": math.exp(hi),
            "p_or_above_1": self.prob_or_above_1,
            "sample_log_or": self.sample_log_or,
        }


def log_odds_ratio(
    events1: int,
    n1: int,
    events0: int,
    n0: int,
    *,
    prior: BetaPrior = JEFFREYS,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    stream: int = _STREAM_CONTRASTS,
    name: str = "contrast",
    exposed: str = "exposed",
    reference: str = "reference",
) -> LogOddsRatio:
    """Posterior draws of the log odds ratio of two independent binomial groups.

    Parameters
    ----------
    events1, n1 : int
        Exposed group.
    events0, n0 : int
        Reference group.
    prior : BetaPrior, optional
        Prior of each proportion (default Jeffreys).
    n_draws : int, optional
        Number of draws.
    seed, stream : int, optional
        The draws come from ``default_rng(SeedSequence([seed, stream]))``: p1 first, then p0.
    name, exposed, reference : str, optional
        Labels.

    Returns
    -------
    LogOddsRatio
    """
    rng = stream_rng(seed, stream)
    p1 = proportion_draws(events1, n1, prior, n_draws, rng)
    p0 = proportion_draws(events0, n0, prior, n_draws, rng)
    draws = special.logit(p1) - special.logit(p0)
    return LogOddsRatio(
        name, exposed, reference, int(events1), int(n1), int(events0), int(n0), prior, draws, p1, p0
    )


def avf_contrasts(
    data_dir: str | Path | None = None,
    *,
    prior: BetaPrior = JEFFREYS,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
) -> dict[str, LogOddsRatio]:
    """Log odds ratios of every contrast in ``avf_contrasts.csv``.

    Each contrast compares its non-reference group (exposed) against its reference group
    (``is_reference = yes``: unbraced, round-type leakage, no intradiscal leakage). Contrast
    ``i`` in file order draws from stream ``100 + i``.

    Returns
    -------
    dict
        Contrast id → :class:`LogOddsRatio`, in file order.
    """
    table = load_table("avf_contrasts", data_dir)
    out: dict[str, LogOddsRatio] = {}
    for i, (name, grp) in enumerate(table.groupby("contrast", sort=False)):
        ref = grp[grp["is_reference"] == "yes"]
        exp = grp[grp["is_reference"] == "no"]
        if len(ref) != 1 or len(exp) != 1:
            raise OutcomeError(
                f"contrast {name!r} needs one reference and one exposed group "
                f"(has {len(ref)} and {len(exp)})"
            )
        r, e = ref.iloc[0], exp.iloc[0]
        out[str(name)] = log_odds_ratio(
            int(e["events"]),
            int(e["n"]),
            int(r["events"]),
            int(r["n"]),
            prior=prior,
            n_draws=n_draws,
            seed=seed,
            stream=_STREAM_CONTRASTS + i,
            name=str(name),
            exposed=str(e["group"]),
            reference=str(r["group"]),
        )
    return out


def contrast_table(contrasts: dict[str, LogOddsRatio], ci_prob: float = CI_PROB) -> pd.DataFrame:
    """One row per contrast: counts, prior, log OR and OR (median, interval), P(OR > 1)."""
    return pd.DataFrame([c.summary(ci_prob) for c in contrasts.values()])


# ----------------------------------------------------------------------------- Gaughen 2002


@dataclass(frozen=True)
class ProportionPosterior:
    """Beta posterior of a proportion after ``successes`` of ``n``.

    Attributes
    ----------
    measure : str
        Row id in ``gaughen2002.csv``.
    description : str
        Plain-language outcome.
    successes, n : int
        The counts.
    prior : BetaPrior
        The prior.
    """

    measure: str
    description: str
    successes: int
    n: int
    prior: BetaPrior

    @property
    def dist(self) -> stats.rv_continuous:
        """The posterior as a frozen ``scipy.stats.beta``."""
        a, b = self.prior.posterior(self.successes, self.n)
        return stats.beta(a, b)

    def summary(self, ci_prob: float = CI_PROB) -> dict[str, float | str | int]:
        """Posterior mean (= P(next patient achieves it)), median, interval, P(p > 1/2)."""
        a, b = self.prior.posterior(self.successes, self.n)
        d = self.dist
        q = (1.0 - ci_prob) / 2.0
        return {
            "measure": self.measure,
            "description": self.description,
            "successes": self.successes,
            "n": self.n,
            "prior": self.prior.label,
            "posterior": f"Beta({a:g}, {b:g})",
            "mean": float(d.mean()),
            "median": float(d.median()),
            "lower": float(d.ppf(q)),
            "upper": float(d.ppf(1.0 - q)),
            "p_above_half": float(d.sf(0.5)),
        }


def gaughen_outcomes(
    data_dir: str | Path | None = None,
    *,
    priors: tuple[BetaPrior, ...] = (JEFFREYS, UNIFORM),
) -> list[ProportionPosterior]:
    """Posteriors of the Gaughen 2002 proportions under each prior.

    The counts are read from ``gaughen2002.csv`` (``value`` of ``denominator``): pain reduced by
    >= 3 points in 5 of 6 patients; mobility improved in 4 of the 4 with impaired mobility.
    """
    table = load_table("gaughen2002", data_dir).set_index("measure")
    out: list[ProportionPosterior] = []
    for measure, description in GAUGHEN_MEASURES.items():
        if measure not in table.index:
            raise OutcomeError(f"gaughen2002.csv has no row {measure!r}")
        row = table.loc[measure]
        if pd.isna(row["denominator"]):
            raise OutcomeError(f"gaughen2002.csv row {measure!r} has no denominator")
        k, n = float(row["value"]), int(row["denominator"])
        if not k.is_integer():
            raise OutcomeError(f"gaughen2002.csv row {measure!r}: {k} is not a count")
        out.extend(ProportionPosterior(measure, description, int(k), n, p) for p in priors)
    return out


def gaughen_table(
    data_dir: str | Path | None = None,
    *,
    priors: tuple[BetaPrior, ...] = (JEFFREYS, UNIFORM),
    ci_prob: float = CI_PROB,
) -> pd.DataFrame:
    """:func:`gaughen_outcomes` as a table (one row per measure and prior)."""
    return pd.DataFrame([p.summary(ci_prob) for p in gaughen_outcomes(data_dir, priors=priors)])
