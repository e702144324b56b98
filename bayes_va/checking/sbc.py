"""SBC statistics: ranks of the truth, coverage, and the run's verdicts (no plotting, no dask).

One replication of simulation-based calibration (Talts et al. 2018) gives, per checked
quantity, the rank of the true value among ``thin`` posterior draws and whether the central
intervals cover it (:func:`rank_and_coverage`). :func:`summarise` turns the replications'
records into an :class:`SBCSummary`: ranks, coverage with Clopper–Pearson intervals, and
verdicts from the exact ECDF test of :mod:`bayes_va.checking.sbc_stats` with Holm's family-wise
adjustment and the run's power statement. Running the replications (dask) and writing the
files are :mod:`bayes_va.workflows.sbc` and :mod:`bayes_va.workflows.sbc_outputs`; the figure is
:mod:`bayes_va.viz.sbc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayes_va.checking.sbc_stats import (
    FAMILY_ALPHA,
    MISCALIBRATED,
    NO_EVIDENCE,
    ECDFTest,
    SBCPower,
    _shape,
    _verdict,
    detectable,
    ecdf_test,
    family_verdict,
)

__all__ = [
    "COVERAGE_LEVELS",
    "DEFAULT_THIN",
    "SBCSummary",
    "rank_and_coverage",
    "summarise",
]

#: Central interval probabilities whose coverage is tabulated.
COVERAGE_LEVELS = (0.5, 0.8, 0.95)
#: Ranks are taken among this many thinned draws by default (ranks 0..99: 100 values, which
#: split into 20 histogram bins of 5).
DEFAULT_THIN = 99


def rank_and_coverage(draws: np.ndarray, truth: float, thin: int) -> tuple[int, dict[str, bool]]:
    """Rank the true value among ``thin`` evenly spaced draws; check the central intervals.

    Parameters
    ----------
    draws : ndarray
        Posterior draws of one quantity, chain-major and flat.
    truth : float
        The value the data were simulated with.
    thin : int
        Draws the rank is taken among (evenly spaced over ``draws``): the rank is in
        ``0..thin``.

    Returns
    -------
    rank : int
        Number of the thinned draws below ``truth``.
    covered : dict of str to bool
        Per level of :data:`COVERAGE_LEVELS` (key ``f"{level:g}"``): whether the central
        interval of all ``draws`` holds ``truth``.
    """
    pick = np.linspace(0, draws.size - 1, thin).round().astype(int)
    rank = int(np.sum(draws[pick] < truth))
    qs = np.quantile(draws, [q for c in COVERAGE_LEVELS for q in ((1 - c) / 2, (1 + c) / 2)])
    covered = {
        f"{c:g}": bool(qs[2 * j] <= truth <= qs[2 * j + 1]) for j, c in enumerate(COVERAGE_LEVELS)
    }
    return rank, covered


@dataclass(frozen=True)
class SBCSummary:
    """Everything an SBC run found.

    Attributes
    ----------
    ranks : pandas.DataFrame
        One row per replication that ran (failed diagnostics included): index, seed,
        ``diagnostics_ok``, ``rank_<quantity>``, ``truth_<quantity>``.
    coverage : pandas.DataFrame
        Per quantity and level: replications, covered share, its 95 % Clopper–Pearson interval
        and whether the nominal level lies inside it.
    verdicts : pandas.DataFrame
        Per quantity: ECDF test p-value (all replications, and those passing diagnostics), its
        Holm-adjusted value over the quantities (``ecdf_p_holm``), ``miscalibrated`` (adjusted
        p-value at most ``alpha``), rank mean/variance z-scores and the verdict.
    errors : pandas.DataFrame
        Replications whose task raised: index, seed, error.
    tests : dict
        :class:`ECDFTest` per quantity (all replications), for the figure.
    thin : int
        Ranks run 0..thin.
    alpha : float
        Family-wise level of the verdicts.
    power : SBCPower or None
        The smallest miscalibration this N detects with 80 % power (None: no replications).
    """

    ranks: pd.DataFrame
    coverage: pd.DataFrame
    verdicts: pd.DataFrame
    errors: pd.DataFrame
    tests: dict[str, ECDFTest] = field(repr=False)
    thin: int = DEFAULT_THIN
    alpha: float = FAMILY_ALPHA
    power: SBCPower | None = None

    @property
    def n_failed_diagnostics(self) -> int:
        """Replications whose fit failed its diagnostics (kept in every statistic)."""
        return int((~self.ranks["diagnostics_ok"]).sum()) if len(self.ranks) else 0

    @property
    def miscalibrated(self) -> bool:
        """Whether some quantity is miscalibrated at the family-wise level (Holm)."""
        return bool(self.verdicts["miscalibrated"].any())

    @property
    def calibrated(self) -> bool:
        """``not miscalibrated`` (kept for old callers): no evidence of miscalibration.

        Not a proof of calibration: read it with :attr:`power`.
        """
        return not self.miscalibrated

    def verdict(self) -> str:
        """Return the run's verdict in one sentence (with the power statement if none found)."""
        if not len(self.ranks):
            return "no replications: no verdict"
        head = f"family-wise alpha = {self.alpha:g} over {len(self.verdicts)} quantities (Holm)"
        bad = self.verdicts.loc[self.verdicts["miscalibrated"], "quantity"].tolist()
        if bad:
            return f"{MISCALIBRATED}: {', '.join(bad)} at {head}."
        tail = f" {self.power.text()}" if self.power is not None else ""
        return f"{NO_EVIDENCE} at {head}.{tail}"


def summarise(
    records: list[dict[str, Any]],
    quantities: tuple[str, ...],
    thin: int,
    alpha: float = FAMILY_ALPHA,
) -> SBCSummary:
    """Ranks, coverage and verdicts from the stored replication records.

    Each quantity's exact ECDF p-value is Holm-adjusted over ``quantities``; a quantity is
    miscalibrated when its adjusted p-value is at most ``alpha`` (family-wise error rate).
    """
    ok = [r for r in records if r["status"] == "ok"]
    errors = pd.DataFrame(
        [
            {"index": r["index"], "seed": r["seed"], "error": r["error"]}
            for r in records
            if r["status"] != "ok"
        ],
        columns=["index", "seed", "error"],
    )
    rows = []
    for r in ok:
        res = r["result"]
        row = {"index": r["index"], "seed": r["seed"], "diagnostics_ok": res["diagnostics"]["ok"]}
        row.update({f"rank_{q}": res["rank"][q] for q in quantities})
        row.update({f"truth_{q}": res["truth"][q] for q in quantities})
        row["fit_seconds"] = res["timings"]["fit_seconds"]
        rows.append(row)
    columns = [
        "index",
        "seed",
        "diagnostics_ok",
        *(f"rank_{q}" for q in quantities),
        *(f"truth_{q}" for q in quantities),
        "fit_seconds",
    ]
    ranks = pd.DataFrame(rows, columns=columns)
    ranks["diagnostics_ok"] = ranks["diagnostics_ok"].astype(bool)

    cov_rows = []
    for q in quantities:
        for c in COVERAGE_LEVELS:
            hits = np.array([r["result"]["covered"][q][f"{c:g}"] for r in ok], dtype=bool)
            n, x = hits.size, int(hits.sum())
            if n:
                ci = stats.binomtest(x, n).proportion_ci(0.95, method="exact")
                lo, hi = float(ci.low), float(ci.high)
            else:
                lo = hi = float("nan")
            cov_rows.append(
                {
                    "quantity": q,
                    "level": c,
                    "n": n,
                    "covered": x / n if n else np.nan,
                    "lower": lo,
                    "upper": hi,
                    "ok": bool(lo <= c <= hi) if n else False,
                }
            )
    coverage = pd.DataFrame(cov_rows)

    tests, ver_rows = {}, []
    for q in quantities:
        all_r = ranks[f"rank_{q}"].to_numpy(dtype=np.int64)
        good_r = ranks.loc[ranks["diagnostics_ok"], f"rank_{q}"].to_numpy(dtype=np.int64)
        tests[q] = ecdf_test(all_r, thin)
        z_mean, z_var = _shape(all_r, thin) if all_r.size else (np.nan, np.nan)
        ver_rows.append(
            {
                "quantity": q,
                "n": int(all_r.size),
                "ecdf_p": tests[q].p_value,
                "ecdf_p_diagnostics_ok": tests[q].p_value
                if good_r.size == all_r.size
                else ecdf_test(good_r, thin).p_value,
                "z_mean": z_mean,
                "z_var": z_var,
            }
        )
    verdicts = pd.DataFrame(
        ver_rows,
        columns=["quantity", "n", "ecdf_p", "ecdf_p_diagnostics_ok", "z_mean", "z_var"],
    )
    adjusted, rejected = family_verdict(verdicts["ecdf_p"].to_numpy(dtype=float), alpha)
    verdicts["ecdf_p_holm"] = adjusted
    verdicts["alpha"] = alpha
    verdicts["miscalibrated"] = rejected.astype(bool)
    n = len(ranks)
    power = detectable(n, thin, len(quantities), alpha) if n else None
    note = power.short() if power is not None else ""
    verdicts["verdict"] = [
        _verdict(r.ecdf_p_holm, r.z_mean, r.z_var, alpha, note) for r in verdicts.itertuples()
    ]
    return SBCSummary(ranks, coverage, verdicts, errors, tests, thin, alpha, power)
