"""Numeric kernels: in-place expit, fast row quantiles (random streams: bayes_va.core.rng)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayes_va.risk.constants import FloatArray


def _expit_into(x: FloatArray) -> FloatArray:
    """``expit(x)`` computed in place (about 4x faster than ``scipy.special.expit`` here)."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709 gives exactly 0
        np.negative(x, out=x)
        np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def row_quantiles(x: FloatArray, probs: Sequence[float]) -> FloatArray:
    """Compute quantiles of each row of ``x`` (numpy's default ``linear`` method); reorders ``x``.

    About 3x faster than ``np.quantile(x, probs, axis=1)`` for a few probabilities: numpy's
    multi-``kth`` partition rescans the whole row for every order statistic, whereas here each
    single-``kth`` partition works only on the part of the row right of the previous one and the
    neighbouring order statistic is a minimum.

    Returns
    -------
    ndarray, shape (len(probs), rows)
    """
    n = x.shape[1]
    h = (n - 1) * np.asarray(probs, dtype=float)
    base = np.floor(h).astype(int)
    order: dict[int, FloatArray] = {}
    start = 0
    for k in sorted(set(base.tolist())):
        x[:, start:].partition(k - start, axis=1)
        order[k] = x[:, k].copy()
        order[k + 1] = x[:, k + 1 :].min(axis=1) if k + 1 < n else order[k]
        start = k + 1
    out = []
    for k, hk in zip(base, h, strict=True):
        a, b, t = order[k], order[k + 1], hk - k  # numpy's lerp, exactly
        out.append(b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t)
    return np.array(out)
