"""Published coefficients: Table 2 of An et al. 2021 in the codebook's coding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bayes_va.data.tables import load_table
from bayes_va.risk.constants import FloatArray
from bayes_va.risk.errors import RiskInputError
from bayes_va.risk.profiles import _AN_COVARIATES, COVARIATES


@dataclass(frozen=True)
class Coefficients:
    """Published log-odds coefficients: estimate, standard error, optional covariance.

    ``draws`` samples ``beta ~ Normal(mean, cov)``; without ``cov`` the coefficients are
    independent with SD ``se`` (all An 2021 reports).
    """

    columns: tuple[str, ...]
    mean: FloatArray
    se: FloatArray
    cov: FloatArray | None = None

    def draws(self, n_draws: int, rng: np.random.Generator) -> FloatArray:
        """Draw the coefficients, shape ``(n_draws, K)``."""
        if self.cov is not None:
            return rng.multivariate_normal(self.mean, self.cov, size=n_draws, method="cholesky")
        return self.mean + self.se * rng.standard_normal((n_draws, len(self.columns)))


def an2021_coefficients(
    endplate_reading: Literal["text", "table"] = "text", data_dir: str | Path | None = None
) -> Coefficients:
    """Load Table 2 of An et al. 2021 in the codebook's coding.

    Parameters
    ----------
    endplate_reading : {"text", "table"}
        ``text`` (the codebook's reading): ``no_endplate_contact`` = 1 when the cement touches
        neither endplate, B = +0.918 (the authors' prose: no contact is the risk level).
        ``table``: contact is the risk level (Table 1's counts and the Table 2 label read
        literally), i.e. B = -0.918 on the same column.
    """
    if endplate_reading not in ("text", "table"):
        raise RiskInputError(f"endplate_reading is {endplate_reading!r}; allowed: text, table")

    table = load_table("an2021_coefficients", data_dir)
    want = [c for name in _AN_COVARIATES for c in COVARIATES[name].columns]
    got = table["covariate"].tolist()
    if sorted(got) != sorted(want):
        raise RiskInputError(f"an2021_coefficients.csv has covariates {got}; expected {want}")
    t = table.set_index("covariate").loc[want]
    mean = t["B"].to_numpy(dtype=float)
    if endplate_reading == "table":
        mean[want.index("no_endplate_contact")] *= -1.0
    return Coefficients(tuple(want), mean, t["SE"].to_numpy(dtype=float))
