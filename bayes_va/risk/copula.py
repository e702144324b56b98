r"""The An 2021 calibration cohort by Gaussian copula and scrambled Sobol' points.

Within outcome group ``g`` of Table 1 (sizes ``n_g``), a patient's covariates are

    z ~ Normal(0, C),  x_k = F_gk^{-1}(Phi(z_k))

with ``C`` a correlation matrix and ``F_gk`` the covariate's marginal in that group (as in
:func:`~bayes_va.risk.cohort.pseudo_cohort_from_marginals`): binary ``x_k = 1{z_k <
Phi^{-1}(p_gk)}``, normal ``mu_gk + sd_gk z_k``, gamma (positive quantities such as cement
volume) with mean ``mu_gk`` and SD ``sd_gk``. The population is the mixture of the groups with
Table 1's weights ``n_g / N`` (the cohort's composition, as printed).

Table 1 prints no correlations. ``C`` gets a prior (:class:`~bayes_va.config.risk.
LKJCorrelation`, default LKJ(2): every correlation symmetric about 0, SD 1/3 for six
covariates) or is fixed (:class:`~bayes_va.config.risk.ExchangeableCorrelation`; 0 =
independent). Table 1's summaries are estimates from ``n_g`` patients; with ``table1_error``
each cohort draw also draws them from their posteriors given the printed values:

* a proportion: ``p ~ Beta(count + 1/2, n_g - count + 1/2)`` (Jeffreys);
* a mean and SD: ``sd^2 = (n_g - 1) s^2 / chi2(n_g - 1)``, ``mu ~ Normal(xbar, sd / sqrt(n_g))``
  (the noninformative posterior of a normal sample; for the gamma margin the same posterior of
  its mean and SD, a normal-theory approximation).

The cohort's distribution is drawn ``draws`` times (:class:`~bayes_va.config.risk.CohortTable`);
each draw is integrated with the *same* ``R`` independent scrambles of ``2^m`` Sobol' points
per group (stream :data:`~bayes_va.risk.constants.STREAM_SOBOL`), transformed with that draw's
parameters, so ``C`` draws cost one set of points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import special
from scipy.stats import qmc

from bayes_va.config.risk import CohortTable, LKJCorrelation
from bayes_va.core.rng import stream_rng
from bayes_va.risk.cohort import CohortDesign, Marginal, _an_table1
from bayes_va.risk.constants import (
    DEFAULT_SEED,
    STREAM_COHORT_DRAWS,
    STREAM_PLAIN_MC,
    STREAM_SOBOL,
    U_EPS,
    FloatArray,
)
from bayes_va.risk.errors import RiskInputError


def lkj_cholesky(dim: int, eta: float, size: int, rng: np.random.Generator) -> FloatArray:
    """Draw Cholesky factors of LKJ(``eta``) correlation matrices (onion method).

    Lewandowski, Kurowicka and Joe (2009), section 3.2, as NumPyro's ``LKJCholesky``: row
    ``m`` (1-based ``m`` = 1..dim-1) is ``sqrt(y) u`` with ``y ~ Beta(m/2, eta + (dim - 2)/2 -
    (m - 1)/2)`` and ``u`` uniform on the unit sphere, then the diagonal ``sqrt(1 - y)``.
    SciPy has no LKJ distribution; each correlation's marginal is Beta(eta - 1 + dim/2,
    eta - 1 + dim/2) on (-1, 1) (``tests/test_risk_copula.py`` checks its variance).

    Returns
    -------
    ndarray, shape (size, dim, dim)
        Lower-triangular, rows of unit length.
    """
    if eta <= 0:
        raise RiskInputError(f"LKJ eta must be > 0, got {eta}")
    chol = np.zeros((size, dim, dim))
    chol[:, 0, 0] = 1.0
    for m in range(1, dim):
        y = rng.beta(m / 2.0, eta + (dim - 2) / 2.0 - (m - 1) / 2.0, size)
        u = rng.standard_normal((size, m))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        chol[:, m, :m] = np.sqrt(y)[:, None] * u
        chol[:, m, m] = np.sqrt(1.0 - y)
    return chol


def exchangeable_cholesky(dim: int, rho: float) -> FloatArray:
    """Return the Cholesky factor of the exchangeable correlation matrix, shape (dim, dim)."""
    if not -1.0 / max(dim - 1, 1) < rho < 1.0 and rho != 0.0:
        raise RiskInputError(f"an exchangeable rho must lie in (-1/{dim - 1}, 1), got {rho}")
    return np.linalg.cholesky((1.0 - rho) * np.eye(dim) + rho * np.ones((dim, dim)))


def draw_summaries(
    group_sizes: tuple[int, ...],
    marginals: list[Marginal],
    n_draws: int,
    rng: np.random.Generator,
    *,
    sampling_error: bool = True,
) -> tuple[FloatArray, FloatArray]:
    """Draw each group's Table-1 summaries from their posteriors (see the module docstring).

    Returns
    -------
    loc, scale : ndarray, shape (n_draws, G, K)
        Proportion (binary; ``scale`` NaN) or mean and SD. Without ``sampling_error``, every
        draw is the printed value.
    """
    G, K = len(group_sizes), len(marginals)
    loc, scale = np.empty((n_draws, G, K)), np.full((n_draws, G, K), np.nan)
    for k, m in enumerate(marginals):
        for g, n_g in enumerate(group_sizes):
            first, sd = m.by_group[g]
            if m.kind == "binary":
                if not 0 <= first <= n_g:
                    raise RiskInputError(f"{m.column}: count {first} outside [0, {n_g}]")
                loc[:, g, k] = (
                    rng.beta(first + 0.5, n_g - first + 0.5, n_draws)
                    if sampling_error
                    else first / n_g
                )
                continue
            if not sd > 0 or (m.kind == "gamma" and not first > 0):
                raise RiskInputError(f"{m.column}: mean {first}, SD {sd} cannot define a {m.kind}")
            if sampling_error:
                s = sd * np.sqrt((n_g - 1) / rng.chisquare(n_g - 1, n_draws))
                mu = first + s / np.sqrt(n_g) * rng.standard_normal(n_draws)
                if m.kind == "gamma":  # a positive mean: ~20 SEs away for cement volume
                    mu = np.maximum(mu, 1e-3 * first)
                loc[:, g, k], scale[:, g, k] = mu, s
            else:
                loc[:, g, k], scale[:, g, k] = first, sd
    return loc, scale


def _gamma_quantile(z: FloatArray, mean: FloatArray, sd: FloatArray) -> FloatArray:
    """Gamma quantile at ``Phi(z)`` (upper tail through the complement: no lost digits)."""
    shape = (mean / sd) ** 2
    scale = sd**2 / mean
    shape, scale = np.broadcast_to(shape, z.shape), np.broadcast_to(scale, z.shape)
    out = np.empty_like(z)
    low = z <= 0
    out[low] = special.gammaincinv(shape[low], special.ndtr(z[low]))
    out[~low] = special.gammainccinv(shape[~low], special.ndtr(-z[~low]))
    return out * scale


@dataclass(frozen=True)
class CopulaSpec:
    """The drawn parameters of each cohort draw; :meth:`design` places the points.

    Attributes
    ----------
    columns : tuple of str
        Design columns.
    kinds : tuple of str
        ``binary``, ``normal`` or ``gamma`` per column.
    group_sizes : tuple of int
        Table 1's group sizes (mixture weights ``n_g / N``).
    loc, scale : ndarray, shape (C, G, K)
        Proportion, or mean and SD, per cohort draw, group and column.
    chol : ndarray, shape (C, K, K)
        Cholesky factor of each draw's correlation matrix.
    correlation : str
        The correlation prior in words.
    table1_error : bool
        Whether ``loc``/``scale`` carry Table 1's sampling error.
    seed : int
        Seed of the Sobol' scrambles.
    printed_mean : ndarray, shape (K,)
        Table 1's pooled mean of each column (printed values, weights ``n_g / N``): the
        layer's ``x_ref``.
    """

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    group_sizes: tuple[int, ...]
    loc: FloatArray
    scale: FloatArray
    chol: FloatArray
    correlation: str
    table1_error: bool
    seed: int
    printed_mean: FloatArray

    @property
    def n_cohorts(self) -> int:
        """Number of cohort draws ``C``."""
        return int(self.loc.shape[0])

    def base_normals(self, points_log2: int, replicates: int, *, plain: bool = False) -> FloatArray:
        """Return standard normal base points, shape (R, G, 2^m, K): Sobol' or plain MC.

        ``plain`` draws iid normals (stream :data:`STREAM_PLAIN_MC`), the reference of the
        integration-error figure.
        """
        G, K, n = len(self.group_sizes), len(self.columns), 2**points_log2
        if plain:
            return stream_rng(self.seed, STREAM_PLAIN_MC).standard_normal((replicates, G, n, K))
        rng = stream_rng(self.seed, STREAM_SOBOL)
        z = np.empty((replicates, G, n, K))
        for r in range(replicates):
            for g in range(G):
                u = qmc.Sobol(K, scramble=True, rng=rng).random_base2(points_log2)
                z[r, g] = special.ndtri(np.clip(u, U_EPS, 1.0 - U_EPS))
        return z

    def transform(self, z: FloatArray, cohorts: NDArray[np.intp] | None = None) -> FloatArray:
        """Map base normals ``(R, G, n, K)`` to covariates, shape ``(C', R, G n, K)``.

        ``cohorts`` selects cohort draws (default: all).
        """
        idx = np.arange(self.n_cohorts) if cohorts is None else np.asarray(cohorts)
        R, G, n, K = z.shape
        chol = self.chol[idx]
        zc = np.matmul(z[None], np.swapaxes(chol, 1, 2)[:, None, None])  # (C', R, G, n, K)
        loc = self.loc[idx][:, None, :, None, :]
        scale = self.scale[idx][:, None, :, None, :]
        x = np.empty_like(zc)
        for k, kind in enumerate(self.kinds):
            zk, lk, sk = zc[..., k], loc[..., k], scale[..., k]
            if kind == "binary":
                x[..., k] = zk < special.ndtri(lk)
            elif kind == "normal":
                x[..., k] = lk + sk * zk
            else:
                x[..., k] = _gamma_quantile(zk, lk, sk)
        return x.reshape(len(idx), R, G * n, K)

    def weights(self, points_log2: int) -> FloatArray:
        """Point weights ``(n_g / N) / 2^m``, groups stacked in order, shape (G 2^m,)."""
        n = 2**points_log2
        sizes = np.asarray(self.group_sizes, dtype=float)
        return np.repeat(sizes / sizes.sum() / n, n)

    def design(
        self, points_log2: int, replicates: int, *, plain: bool = False, description: str = ""
    ) -> CohortDesign:
        """Place ``replicates`` x ``2^m`` points per group for every cohort draw."""
        z = self.base_normals(points_log2, replicates, plain=plain)
        return CohortDesign(self.columns, self.transform(z), self.weights(points_log2), description)


def copula_spec(
    group_sizes: tuple[int, ...],
    marginals: list[Marginal],
    settings: CohortTable,
    n_cohorts: int,
    seed: int = DEFAULT_SEED,
) -> CopulaSpec:
    """Draw ``n_cohorts`` cohort distributions (summaries and correlations) from ``settings``.

    Parameters
    ----------
    group_sizes, marginals
        Table 1 (as :func:`~bayes_va.risk.cohort._an_table1` returns it).
    settings : CohortTable
        ``table1_error`` and ``correlation``.
    n_cohorts : int
        Number of draws; 1 when nothing is uncertain (no sampling error, fixed correlation).
    seed : int
        Seed of the draws (stream :data:`STREAM_COHORT_DRAWS`) and of the Sobol' scrambles.
    """
    K = len(marginals)
    corr = settings.correlation
    if not settings.table1_error and not isinstance(corr, LKJCorrelation):
        n_cohorts = 1
    rng = stream_rng(seed, STREAM_COHORT_DRAWS)
    loc, scale = draw_summaries(
        group_sizes, marginals, n_cohorts, rng, sampling_error=settings.table1_error
    )
    if isinstance(corr, LKJCorrelation):
        chol = lkj_cholesky(K, corr.eta, n_cohorts, rng)
    else:
        chol = np.broadcast_to(exchangeable_cholesky(K, corr.rho), (n_cohorts, K, K)).copy()
    n = np.asarray(group_sizes, dtype=float)
    printed = np.array(
        [
            [g[0] / n[i] if m.kind == "binary" else g[0] for i, g in enumerate(m.by_group)]
            for m in marginals
        ]
    )  # (K, G)
    return CopulaSpec(
        tuple(m.column for m in marginals),
        tuple(m.kind for m in marginals),
        tuple(int(v) for v in group_sizes),
        loc,
        scale,
        chol,
        str(corr),
        settings.table1_error,
        int(seed),
        printed @ (n / n.sum()),
    )


def an2021_copula_spec(
    settings: CohortTable,
    n_draws: int,
    seed: int = DEFAULT_SEED,
    data_dir: str | Path | None = None,
) -> CopulaSpec:
    """Draw the An 2021 cohort's distribution: ``min(settings.draws, n_draws)`` draws."""
    groups, marginals = _an_table1(data_dir)
    return copula_spec(groups, marginals, settings, min(settings.draws, n_draws), seed)


def describe_copula(spec: CopulaSpec, points_log2: int, replicates: int) -> str:
    """Say in words how the copula cohort was built."""
    groups = " + ".join(str(n) for n in spec.group_sizes)
    error = (
        "Table 1 means, SDs and proportions drawn from their sampling distributions"
        if spec.table1_error
        else "Table 1 summaries as printed"
    )
    return (
        f"An 2021 Table 1 ({groups} patients by outcome group) as a Gaussian copula; "
        f"correlations {spec.correlation}; {error}; {spec.n_cohorts} draw(s) of the cohort's "
        f"distribution, each integrated with {replicates} scrambled Sobol' replicates of "
        f"2^{points_log2} = {2**points_log2} points per group"
    )
