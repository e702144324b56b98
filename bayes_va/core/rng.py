"""Seeded random streams: every random number in bayes_va comes from :func:`stream_rng`.

A draw of kind ``stream`` from seed ``seed`` uses ``default_rng(SeedSequence([seed, stream]))``,
so each kind of draw has its own independent stream and adding one never moves another. The
stream numbers are listed here, in one place, so that two kinds never share one by accident.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["FitStream", "RiskStream", "stream_rng"]


class FitStream(IntEnum):
    """Streams derived from a fit config's ``sampler.seed`` (the sampler uses the seed itself)."""

    #: Predictive (new-study) proportions and beta-binomial study proportions.
    PREDICTIVE = 1
    #: Replicated counts of the posterior predictive.
    PPC = 2
    #: Exact conditional draws of each study's theta (marginal route).
    THETA = 3
    #: New-study replicates of the posterior predictive checks.
    NEW_STUDY = 11
    #: The stored prior group (and the prior predictive).
    PRIOR = 12
    #: Within-study contrasts (:mod:`bayes_va.numerics.outcomes`); contrast ``i`` uses ``100 + i``.
    CONTRASTS = 100


class RiskStream(IntEnum):
    """Streams derived from a risk config's ``seed`` (a seed of its own, not the fit's)."""

    COEFFICIENTS = 1
    CALIBRATION_TARGET = 2
    PSEUDO_COHORT = 3
    TRANSPORT = 4
    BASELINE = 5
    PREDICTIVE = 6
    AVF_EFFECTS = 7
    #: Scrambling of the Sobol' points (one scramble per replicate and outcome group).
    SOBOL = 8
    #: Draws of the Table-1 summaries (sampling error) and of the copula's correlations.
    COHORT_DRAWS = 9
    #: Permutations that make the independent copies of each source in the variance split.
    EXPLAIN = 10
    #: Plain Monte-Carlo points of the integration-error figure (the reference for Sobol').
    PLAIN_MC = 11


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """Return the generator of one stream of a seed.

    Parameters
    ----------
    seed
        The config's seed.
    stream
        A :class:`FitStream` or :class:`RiskStream` member (or a number derived from one).

    Returns
    -------
    numpy.random.Generator
        ``default_rng(SeedSequence([seed, stream]))``.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream)]))
