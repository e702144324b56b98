"""Plain-number summaries of a fit: headline estimates and the per-study table.

:class:`Estimates` is what ``estimates.json`` holds, typed: :meth:`Estimates.to_dict` gives the
file's JSON exactly (same keys, same values) and :meth:`Estimates.from_dict` reads it back,
including files written before the types existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np
import pandas as pd
import xarray as xr

from bayes_va.data.dataset import StudyData
from bayes_va.numerics.glmm import GLMMResult

#: Posterior summaries use equal-tailed intervals of this probability.
CI_PROB = 0.95
HEADLINE_VARS = ("pooled", "predictive", "tau", "phi", "mu")
#: The between-study spread parameter of each family: tau (logit-normal) or phi (beta-binomial).
SPREAD_VARS = ("tau", "phi")


class FlatRecord:
    """Mixin of a flat frozen dataclass stored as a JSON object with one key per field.

    Values are stored and read back as they are (no conversion), so a file read with
    :meth:`from_dict` and written with :meth:`to_dict` is unchanged.
    """

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: one key per field."""
        # mypy cannot see that the subclasses using this mixin are dataclasses
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        """Read the JSON object written by :meth:`to_dict`."""
        # as in to_dict: cls is a dataclass, which mypy cannot see from the mixin
        return cls(**{f.name: raw[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Interval(FlatRecord):
    """Median and equal-tailed interval of one quantity."""

    median: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Summary(Interval):
    """Posterior mean, SD, median and equal-tailed interval of one quantity."""

    mean: float
    sd: float


@dataclass(frozen=True)
class Coefficient(Summary):
    """A moderator coefficient: log odds ratio summary, odds ratio interval, P(beta > 0)."""

    coef: str
    or_median: float
    or_lower: float
    or_upper: float
    p_positive: float


@dataclass(frozen=True)
class Subgroup(Summary):
    """The proportion of one level of a categorical moderator."""

    moderator: str
    level: str


@dataclass(frozen=True)
class StudyRow(FlatRecord):
    """One row of the per-study table (see :func:`study_table`)."""

    study: str
    n: int
    events: int
    observed: float
    shrunken_median: float
    shrunken_lower: float
    shrunken_upper: float
    y_rep_lower: float
    y_rep_upper: float
    ppc_p: float


@dataclass(frozen=True)
class Moderators:
    """Moderator effects, in the model's coefficient order (reference level first)."""

    coefficients: tuple[Coefficient, ...] = ()
    subgroups: tuple[Subgroup, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"coefficients": [...], "subgroups": [...]}`` (lists keep the order in JSON)."""
        return {
            "coefficients": [c.to_dict() for c in self.coefficients],
            "subgroups": [s.to_dict() for s in self.subgroups],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Moderators:
        """Read :meth:`to_dict`'s output."""
        return cls(
            tuple(Coefficient.from_dict(c) for c in raw.get("coefficients", [])),
            tuple(Subgroup.from_dict(s) for s in raw.get("subgroups", [])),
        )


@dataclass(frozen=True)
class ExactReference:
    """Quantiles of the quadrature posterior (same family and priors, no moderators).

    ``tau`` (logit-normal) or ``phi`` (beta-binomial) is set, the other is None.
    """

    pooled: Interval
    predictive: Interval
    mu: Interval
    tau: Interval | None = None
    phi: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return one :class:`Interval` object per quantity present."""
        return {
            f.name: getattr(self, f.name).to_dict()
            for f in fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ExactReference:
        """Read :meth:`to_dict`'s output."""
        return cls(**{k: Interval.from_dict(v) for k, v in raw.items()})


@dataclass(frozen=True)
class Estimates:
    """Headline numbers of a fit (``estimates.json``).

    Attributes
    ----------
    k : int
        Number of studies.
    family : str
        Likelihood family of the model.
    ci_prob : float
        Probability of the equal-tailed intervals.
    pooled, predictive, mu : Summary
        Posterior pooled proportion, a new study's proportion and the mean logit.
    tau, phi : Summary or None
        The between-study spread: ``tau`` (logit-normal) or ``phi`` (beta-binomial).
    exact : ExactReference or None
        Quadrature reference (intercept-only models of at most ``EXACT_MAX_K`` studies).
    glmm : GLMMResult or None
        Classical GLMM (intercept-only models whose MLE exists).
    moderators : Moderators
        Coefficients and subgroup proportions (empty without moderators).
    studies : tuple of StudyRow
        The per-study table.
    """

    k: int
    family: str
    ci_prob: float
    pooled: Summary
    predictive: Summary
    mu: Summary
    tau: Summary | None = None
    phi: Summary | None = None
    exact: ExactReference | None = None
    glmm: GLMMResult | None = None
    moderators: Moderators = Moderators()
    studies: tuple[StudyRow, ...] = ()

    @property
    def spread_name(self) -> str:
        """``"tau"`` or ``"phi"``: which spread parameter the model has."""
        return "tau" if self.tau is not None else "phi"

    @property
    def spread(self) -> Summary:
        """The posterior summary of the spread parameter (``tau`` or ``phi``)."""
        s = self.tau if self.tau is not None else self.phi
        if s is None:
            raise ValueError("these estimates have neither tau nor phi")
        return s

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of ``estimates.json``."""
        bayes = {v: getattr(self, v) for v in HEADLINE_VARS}
        return {
            "k": self.k,
            "family": self.family,
            "ci_prob": self.ci_prob,
            "bayes": {v: s.to_dict() for v, s in bayes.items() if s is not None},
            "exact": None if self.exact is None else self.exact.to_dict(),
            "glmm": None if self.glmm is None else self.glmm.to_dict(),
            "moderators": self.moderators.to_dict(),
            "studies": [r.to_dict() for r in self.studies],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Estimates:
        """Read ``estimates.json`` (also files that predate ``family`` or ``moderators``)."""
        bayes = {v: Summary.from_dict(s) for v, s in raw["bayes"].items()}
        glmm = raw.get("glmm")
        return cls(
            k=raw["k"],
            family=raw.get("family", "beta_binomial" if "phi" in bayes else "logit_normal"),
            ci_prob=raw["ci_prob"],
            **bayes,
            exact=None if raw.get("exact") is None else ExactReference.from_dict(raw["exact"]),
            glmm=None if glmm is None else glmm_from_dict(glmm),
            moderators=Moderators.from_dict(raw.get("moderators") or {}),
            studies=tuple(StudyRow.from_dict(r) for r in raw.get("studies", [])),
        )


def glmm_from_dict(raw: Mapping[str, Any]) -> GLMMResult:
    """Rebuild a :class:`~bayes_va.numerics.glmm.GLMMResult` from its ``to_dict`` output."""
    names = {f.name for f in fields(GLMMResult)}
    # intervals are JSON lists and GLMMResult tuples; every other value as stored
    kwargs: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names
    }
    return GLMMResult(**kwargs)


def summarise_draws(values: np.ndarray, ci_prob: float = CI_PROB) -> Summary:
    """Summarise a draws array (any shape): mean, SD, median and equal-tailed interval."""
    v = np.asarray(values, dtype=float).ravel()
    a = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(v, [a, 0.5, 1.0 - a])
    return Summary(
        mean=float(v.mean()),
        sd=float(v.std(ddof=1)),
        median=float(med),
        lower=float(lo),
        upper=float(hi),
    )


def headline(tree: xr.DataTree, ci_prob: float = CI_PROB) -> dict[str, Summary]:
    """Summarise the pooled and predictive proportions, τ or φ, and μ."""
    post = tree["posterior"].to_dataset()
    return {v: summarise_draws(post[v].values, ci_prob) for v in HEADLINE_VARS if v in post}


def moderator_effects(tree: xr.DataTree, ci_prob: float = CI_PROB) -> Moderators:
    """Summarise log odds ratios per moderator coefficient and proportions per subgroup level.

    Parameters
    ----------
    tree : xarray.DataTree
        The fit's draws; ``beta`` (dims ``coef``) and ``prop_<moderator>`` in ``posterior``.
    ci_prob : float
        Probability of the equal-tailed intervals.

    Returns
    -------
    Moderators
        Empty without ``beta``. Tuples (not dicts keyed by name) so that the order -- reference
        level first -- survives the JSON round trip, whose keys are sorted.
    """
    post = tree["posterior"].to_dataset()
    if "beta" not in post:
        return Moderators()
    coefficients = []
    for coef in post["coef"].values:
        draws = post["beta"].sel(coef=coef).values
        s = summarise_draws(draws, ci_prob)
        coefficients.append(
            Coefficient(
                **s.to_dict(),
                coef=str(coef),
                or_median=float(np.exp(s.median)),
                or_lower=float(np.exp(s.lower)),
                or_upper=float(np.exp(s.upper)),
                p_positive=float(np.mean(draws > 0)),
            )
        )
    subgroups = []
    for var in post.data_vars:
        if str(var).startswith("prop_"):
            dim = next(d for d in post[var].dims if d not in ("chain", "draw"))
            for level in post[dim].values:
                s = summarise_draws(post[var].sel({dim: level}).values, ci_prob)
                subgroups.append(Subgroup(**s.to_dict(), moderator=str(var)[5:], level=str(level)))
    return Moderators(tuple(coefficients), tuple(subgroups))


def study_table(tree: xr.DataTree, data: StudyData, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Tabulate observed and shrunken proportions of each study, with predictive intervals.

    Parameters
    ----------
    tree : xarray.DataTree
        The fit's draws: ``p`` in ``posterior`` and ``y`` in ``posterior_predictive``.
    data : StudyData
        The fitted counts, in the order of the ``study`` dimension.
    ci_prob : float
        Probability of the equal-tailed intervals.

    Returns
    -------
    pandas.DataFrame
        One row per study: ``study``, ``n``, ``events``, ``observed``, ``shrunken_median`` /
        ``_lower`` / ``_upper``, the predictive interval of the count ``y_rep_lower`` /
        ``y_rep_upper``, and ``ppc_p``, the two-sided posterior predictive mid-p value of the
        observed count.
    """
    p = tree["posterior"]["p"].transpose("chain", "draw", "study").values
    y_rep = tree["posterior_predictive"]["y"].transpose("chain", "draw", "study").values
    p, y_rep = p.reshape(-1, data.k), y_rep.reshape(-1, data.k)
    a = (1.0 - ci_prob) / 2.0
    # one call over all studies (at k = 10,000 a loop over strided columns took 3 s); the
    # same quantile arithmetic per column, so the same numbers
    lo, med, hi = np.quantile(p, [a, 0.5, 1 - a], axis=0)
    rlo, rhi = np.quantile(y_rep, [a, 1 - a], axis=0)
    y = np.asarray(data.y)
    tie = 0.5 * (y_rep == y).mean(axis=0)
    # two-sided posterior predictive p-value of the observed count (mid-p)
    ppc_p = np.minimum(
        1.0, 2 * np.minimum((y_rep < y).mean(axis=0) + tie, (y_rep > y).mean(axis=0) + tie)
    )
    rows = [
        {
            "study": sid,
            "n": int(data.n[i]),
            "events": int(data.y[i]),
            "observed": int(data.y[i]) / int(data.n[i]),
            "shrunken_median": float(med[i]),
            "shrunken_lower": float(lo[i]),
            "shrunken_upper": float(hi[i]),
            "y_rep_lower": float(rlo[i]),
            "y_rep_upper": float(rhi[i]),
            "ppc_p": float(ppc_p[i]),
        }
        for i, sid in enumerate(data.study)
    ]
    return pd.DataFrame(rows)


def study_rows(
    tree: xr.DataTree, data: StudyData, ci_prob: float = CI_PROB
) -> tuple[StudyRow, ...]:
    """Return :func:`study_table` as typed rows (what :class:`Estimates` stores)."""
    records = study_table(tree, data, ci_prob).to_dict(orient="records")
    return tuple(StudyRow.from_dict({str(k): v for k, v in r.items()}) for r in records)


def exact_reference(exact: Any, ci_prob: float = CI_PROB) -> ExactReference:
    """Return quantiles of the quadrature posterior, in the layout of the Bayesian headline."""
    a = (1.0 - ci_prob) / 2.0
    spread = "phi" if type(exact).__name__ == "ExactBetaBinomialPosterior" else "tau"
    out = {}
    for name in ("pooled", "predictive", spread, "mu"):
        lo, med, hi = (float(exact.quantile(name, q)) for q in (a, 0.5, 1 - a))
        out[name] = Interval(median=med, lower=lo, upper=hi)
    return ExactReference(**out)
