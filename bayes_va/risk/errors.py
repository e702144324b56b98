"""Errors and warnings of the risk layer."""

from __future__ import annotations

from bayes_va.core.errors import BayesVAError


class ProfileError(BayesVAError, ValueError):
    """A patient profile has an unknown covariate, a bad level or an out-of-range value."""


class RiskInputError(BayesVAError, ValueError):
    """A risk model cannot be built from what it was given (baseline source, options)."""


class ExtrapolationWarning(UserWarning):
    """A profile lies outside the covariate range the source cohort covered."""


class IntegrationWarning(UserWarning):
    """The calibration's integration error is a large fraction of the posterior SD."""
