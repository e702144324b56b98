r"""Where a profile's risk uncertainty comes from: a first-order variance split over its sources.

A draw of a profile's logit risk is a function of independent inputs,

    f = alpha(t, beta, lambda, c) + lambda beta (x - x_ref)  (+ integration error),

the pooled baseline ``t`` (the calibration target), the published log odds ratios ``beta``,
the transport factor ``lambda`` (revision) and the calibration cohort's distribution ``c``
(Table 1's sampling error and the correlations: one cohort draw per block of draws). The
first-order (Sobol') index of source ``i`` is ``V_i / V`` with ``V_i = Var(E[f | source i])``.

Estimator: *pick-freeze* (Sobol' 1993; the covariance form of Janon et al. 2014). A second
design ``Y^i`` keeps source ``i`` of every draw and replaces every other source by an
independent copy (a fixed random permutation of that source's draws, stream
:data:`~bayes_va.risk.constants.STREAM_EXPLAIN`); then ``V_i = Cov(f(A), f(Y^i))``, estimated by
``mean(f_A f_Y) - m^2`` with ``m`` the mean of both, and its standard error from the per-draw
terms ``(f_A - m)(f_Y - m)``. Why this and not binning each source's draws: binning needs a
scalar source, whereas the log odds ratios are a vector and the cohort is a distribution;
pick-freeze takes any block of inputs. Its cost is one recalibration of the intercept per
source, done once per model (:func:`build_explainer`); every profile then costs one matrix
product per source.

The split adds up by construction: ``V = Var(f_A) + V_int`` where ``V_int = E_s[MCSE_s^2]``
is the variance the numerical integration adds to a draw (:mod:`bayes_va.risk.calibration`;
on the risk scale ``E_s[(p_s (1 - p_s))^2 MCSE_s^2]``, first order); the first-order terms
``V_i`` of the sources, ``V_int`` and the *remainder* ``Var(f_A) - sum_i V_i`` (interactions
between sources, plus Monte-Carlo noise, hence possibly slightly negative) sum to ``V``. The
same designs give the risk scale, with ``f`` replaced by ``expit(f)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from bayes_va.core.rng import stream_rng
from bayes_va.risk.calibration import Calibration, calibrate_design
from bayes_va.risk.constants import STREAM_EXPLAIN, SUMMARY_CHUNK, FloatArray

#: Every source, in the order of outputs, with the words printed for it.
SOURCES: dict[str, str] = {
    "baseline": "pooled baseline",
    "effects": "published log odds ratios",
    "transport": "transport factor lambda",
    "cohort": "calibration cohort (Table 1 error, correlations)",
    "integration": "numerical integration",
    "remainder": "interactions (remainder)",
}
#: Sources whose draws are swapped in the pick-freeze designs.
SWAPPED = ("baseline", "effects", "transport", "cohort")


@dataclass(frozen=True)
class Explainer:
    """The pick-freeze designs of a model: intercept and effects of ``Y^i`` per source ``i``.

    Attributes
    ----------
    calibration : Calibration
        The model's own draws (design ``A``).
    sources : tuple of str
        The sources that vary in this model (keys of :data:`SOURCES`).
    alpha : dict
        Source → intercept draws of ``Y^source``, shape (S,).
    effects : dict
        Source → effect draws of ``Y^source``, shape (S, K).
    """

    calibration: Calibration
    sources: tuple[str, ...]
    alpha: dict[str, FloatArray]
    effects: dict[str, FloatArray]


def _varies(x: FloatArray | None) -> bool:
    return x is not None and bool(np.ptp(x, axis=0).max() > 0)


def build_explainer(cal: Calibration) -> Explainer:
    """Recalibrate the intercept once per source for the pick-freeze designs.

    A source is left out when it does not vary (a fixed ``lambda``, one cohort draw, a
    ``mean_profile`` calibration for the cohort).
    """
    S = len(cal.target)
    rng = stream_rng(cal.seed, STREAM_EXPLAIN)
    perm = {name: rng.permutation(S) for name in SWAPPED}  # always all four: fixed streams
    present = {
        "baseline": _varies(cal.target),
        "effects": _varies(cal.beta),
        "transport": _varies(cal.lam),
        "cohort": cal.design.n_cohorts > 1 and cal.mode == "marginal",
    }
    sources = tuple(s for s in SWAPPED if present[s])
    alphas, effects = {}, {}
    for i in sources:

        def pick(name: str, x: NDArray[Any], i: str = i) -> NDArray[Any]:
            return x if name == i else x[perm[name]]

        beta = pick("effects", cal.beta)
        eff = beta if cal.lam is None else pick("transport", cal.lam)[:, None] * beta
        a = calibrate_design(
            cal.design,
            eff,
            pick("baseline", cal.target),
            pick("cohort", cal.cohort_of_draw),
            cal.x_ref,
            cal.mode,
        )
        alphas[i], effects[i] = a.mean(axis=1), eff
    return Explainer(cal, sources, alphas, effects)


def first_order(f_a: FloatArray, frozen: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """Estimate first-order variances from pick-freeze draws, row by row.

    Parameters
    ----------
    f_a : ndarray, shape (P, S)
        The output at the model's draws (design ``A``), one row per profile.
    frozen : dict
        Source → output at ``Y^source``, shape (P, S).

    Returns
    -------
    dict
        ``total`` (``Var(f_A)``), each source's ``V_i`` and ``remainder`` (``total - sum
        V_i``), each shape (P,); and ``se:<name>`` for the sources and the remainder (the SD
        of the per-draw terms over ``sqrt(S)``).
    """
    S = f_a.shape[1]
    mean_a = f_a.mean(axis=1, keepdims=True)
    total_terms = np.square(f_a - mean_a)
    out: dict[str, FloatArray] = {"total": total_terms.mean(axis=1)}
    rest = total_terms.copy()
    for name, f_y in frozen.items():
        m = 0.5 * (mean_a + f_y.mean(axis=1, keepdims=True))
        terms = (f_a - m) * (f_y - m)
        out[name] = terms.mean(axis=1)
        out[f"se:{name}"] = terms.std(axis=1) / math.sqrt(S)
        rest -= terms
    out["remainder"] = out["total"] - sum(out[name] for name in frozen)
    out["se:remainder"] = rest.std(axis=1) / math.sqrt(S)
    return out


def decompose(ex: Explainer, X: FloatArray, ids: tuple[str, ...]) -> pd.DataFrame:
    """Split each profile's risk variance (logit and risk scale) over the sources.

    Parameters
    ----------
    ex : Explainer
        The model's designs (:func:`build_explainer`).
    X : ndarray, shape (P, K)
        Design matrix of the profiles.
    ids : tuple of str
        Profile ids.

    Returns
    -------
    pandas.DataFrame
        Long: ``id``, ``scale`` (``logit``/``risk``), ``source`` (a key of :data:`SOURCES`
        or ``total``), ``label``, ``variance``, ``share`` (of ``total``) and ``se`` (Monte-
        Carlo SE of the variance; 0 for the integration term and the total). The shares of the
        sources, ``integration`` and ``remainder`` sum to 1.
    """
    cal = ex.calibration
    alpha_a, eff_a = cal.alpha, cal.effects
    v_int = np.square(cal.alpha_mcse)
    v_int = np.where(np.isfinite(v_int), v_int, 0.0)
    rows: list[dict[str, object]] = []
    for start in range(0, len(ids), SUMMARY_CHUNK // 8):
        Xc = np.asarray(X[start : start + SUMMARY_CHUNK // 8], dtype=float) - cal.x_ref
        f_a = alpha_a + Xc @ eff_a.T
        frozen = {i: ex.alpha[i] + Xc @ ex.effects[i].T for i in ex.sources}
        for scale in ("logit", "risk"):
            if scale == "risk":
                f_a = special.expit(f_a)
                frozen = {i: special.expit(f) for i, f in frozen.items()}
                integ = (np.square(f_a * (1.0 - f_a)) * v_int).mean(axis=1)
            else:
                integ = np.full(len(Xc), v_int.mean())
            est = first_order(f_a, frozen)
            total = est["total"] + integ
            parts = {**{i: est[i] for i in ex.sources}, "integration": integ}
            parts["remainder"] = est["remainder"]
            for p, pid in enumerate(ids[start : start + len(Xc)]):
                for name, v in parts.items():
                    se = est.get(f"se:{name}")
                    rows.append(
                        {
                            "id": pid,
                            "scale": scale,
                            "source": name,
                            "label": SOURCES[name],
                            "variance": float(v[p]),
                            "share": float(v[p] / total[p]) if total[p] > 0 else 0.0,
                            "se": 0.0 if se is None else float(se[p]),
                        }
                    )
                rows.append(
                    {
                        "id": pid,
                        "scale": scale,
                        "source": "total",
                        "label": "total variance",
                        "variance": float(total[p]),
                        "share": 1.0,
                        "se": 0.0,
                    }
                )
    return pd.DataFrame(rows)


def shares_wide(long: pd.DataFrame) -> pd.DataFrame:
    """One row per profile: ``share_<scale>_<source>`` and ``variance_<scale>_total`` columns."""
    parts = long[long["source"] != "total"]
    wide = parts.pivot_table(index="id", columns=["scale", "source"], values="share", sort=False)
    wide.columns = [f"share_{sc}_{src}" for sc, src in wide.columns]
    tot = long[long["source"] == "total"].pivot_table(
        index="id", columns="scale", values="variance", sort=False
    )
    tot.columns = [f"variance_{sc}_total" for sc in tot.columns]
    return wide.join(tot).reset_index()
