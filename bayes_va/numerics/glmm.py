"""Classical binomial-normal GLMM (maximum likelihood), numpy/scipy only.

The model of R's ``metafor::rma.glmm(measure = "PLO", method = "ML")`` and
``lme4::glmer(cbind(y, n - y) ~ 1 + (1 | study), family = binomial, nAGQ = ...)``::

    y_i ~ Binomial(n_i, expit(theta_i)),   theta_i ~ Normal(mu, tau)

fitted by maximising the marginal likelihood, with ``theta_i`` integrated out by adaptive
Gauss-Hermite quadrature (:func:`bayes_va.numerics.exact.random_effect_nodes`). The gradient and
Hessian come from the same quadrature (Louis' identity: moments of ``theta_i - mu`` under each
study's conditional posterior), so the optimiser and the standard errors need no finite
differences.

This is the frequentist reference the Bayesian fits are compared with; :func:`fit_glmm`
reproduces metafor to the printed digits (see ``tests/test_glmm.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special, stats

from bayes_va.numerics.exact import empirical_logits, log_marginal_likelihood, random_effect_nodes

__all__ = ["GLMMResult", "fit_glmm"]

FloatArray = NDArray[np.float64]
SEMethod = Literal["hessian", "conditional"]

_DEFAULT_NODES = 25  # lme4's maximum nAGQ; the reference values used nAGQ = 25
_GTOL = 1e-8  # on the gradient in (mu, log tau); the log likelihood is O(10-100)
# Converged = gradient below this and a negative-definite Hessian. The optimiser's own flag is
# not used: near 1e-8 the predicted improvements (~g^2 / H) fall below the rounding of a log
# likelihood of size ~70, and trust-exact then reports failure at an optimum.
_GRAD_OK = 1e-5
# The interior optimum counts only if tau exceeds _TAU_ZERO and it beats the boundary's log
# likelihood by more than rounding; otherwise the optimiser was drifting towards tau = 0.
_TAU_ZERO = 1e-4
_LOGLIK_GAIN = 1e-8


@dataclass(frozen=True)
class GLMMResult:
    """Maximum-likelihood fit of the binomial-normal GLMM.

    Attributes
    ----------
    mu : float
        MLE of the mean log-odds.
    se_mu : float
        Standard error of ``mu`` (see ``se_method``).
    tau, tau2 : float
        MLE of the between-study SD and variance (0 at the boundary).
    ci_level : float
        Confidence level of the intervals.
    mu_ci : tuple of float
        Wald interval ``mu ± z se_mu``.
    pooled : float
        ``expit(mu)``, the pooled proportion.
    pooled_ci : tuple of float
        ``expit`` of ``mu_ci``.
    loglik : float
        Maximised log likelihood, binomial coefficients included.
    converged : bool
        Interior: gradient ~0 in ``(mu, log tau)`` and a negative-definite Hessian there.
        Boundary: the score for ``tau**2`` at 0 is <= 0 (the optimality condition).
    n_studies : int
        Number of studies.
    tau_at_zero : bool
        True when the MLE is at the boundary ``tau = 0``; ``mu`` and ``se_mu`` are then those
        of the common-proportion (fixed-effect) model.
    se_method : str
        ``"hessian"`` or ``"conditional"`` (see :func:`fit_glmm`); ``"common-proportion"``
        at the boundary.
    """

    mu: float
    se_mu: float
    tau: float
    tau2: float
    ci_level: float
    mu_ci: tuple[float, float]
    pooled: float
    pooled_ci: tuple[float, float]
    loglik: float
    converged: bool
    n_studies: int
    tau_at_zero: bool = False
    se_method: str = "hessian"

    def to_dict(self) -> dict[str, float | int | bool | str | list[float]]:
        """Plain Python values (intervals as two-element lists), ready for JSON.

        Returns
        -------
        dict
            One entry per field.
        """
        out: dict[str, float | int | bool | str | list[float]] = {}
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                out[key] = [float(v) for v in value]
            elif isinstance(value, bool | int | str):
                out[key] = value
            else:
                out[key] = float(value)
        return out


# ---------------------------------------------------------------------------------------------
# Log likelihood and its derivatives
# ---------------------------------------------------------------------------------------------


def _study_arrays(y: ArrayLike, n: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Float arrays of events and sizes; the MLE of ``mu`` needs events and non-events."""
    y_arr = np.atleast_1d(np.asarray(y, dtype=float))
    n_arr = np.atleast_1d(np.asarray(n, dtype=float))
    if y_arr.ndim != 1 or y_arr.shape != n_arr.shape or y_arr.size == 0:
        raise ValueError("y and n must be non-empty 1-D arrays of equal length")
    if y_arr.sum() == 0 or y_arr.sum() == n_arr.sum():
        raise ValueError("no events (or no non-events) in any study: the MLE of mu is infinite")
    return y_arr, n_arr


def _derivatives(
    y: FloatArray, n: FloatArray, mu: float, tau: float, n_nodes: int
) -> tuple[float, FloatArray, FloatArray]:
    """Log likelihood, gradient and Hessian in ``(mu, s = tau**2)``.

    Louis' identity: with ``g = log N(theta | mu, s)`` and ``E``, ``Var`` over each study's
    conditional posterior of ``theta`` (the normalised quadrature terms),
    ``grad l = E[grad g]`` and ``hess l = E[hess g] + Var[grad g]``, where ``delta = theta - mu``,
    ``grad g = (delta / s, -1 / (2 s) + delta**2 / (2 s**2))``.
    """
    delta, log_w = random_effect_nodes(y, n, mu, tau, n_nodes)
    log_lik = special.logsumexp(log_w, axis=-1)
    post = np.exp(log_w - log_lik[:, None])
    s = tau**2

    def mean(values: FloatArray) -> FloatArray:
        return np.sum(post * values, axis=-1)

    m1 = mean(delta)
    m2 = mean(delta**2)
    dev1, dev2 = delta - m1[:, None], delta**2 - m2[:, None]
    var1, cov12, var2 = mean(dev1**2), mean(dev1 * dev2), mean(dev2**2)
    grad = np.array([np.sum(m1) / s, np.sum(-0.5 / s + m2 / (2 * s**2))])
    h_mm = np.sum(-1.0 / s + var1 / s**2)
    h_ms = np.sum(-m1 / s**2 + cov12 / (2 * s**3))
    h_ss = np.sum(0.5 / s**2 - m2 / s**3 + var2 / (4 * s**4))
    return float(log_lik.sum()), grad, np.array([[h_mm, h_ms], [h_ms, h_ss]])


def _to_log_tau(grad: FloatArray, hess: FloatArray, s: float) -> tuple[FloatArray, FloatArray]:
    """Chain rule from ``(mu, s = tau**2)`` to ``(mu, rho = log tau)``: ``ds/drho = 2 s``."""
    g = np.array([grad[0], 2.0 * s * grad[1]])
    h = np.array(
        [
            [hess[0, 0], 2.0 * s * hess[0, 1]],
            [2.0 * s * hess[0, 1], 4.0 * s**2 * hess[1, 1] + 4.0 * s * grad[1]],
        ]
    )
    return g, h


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def _common_proportion(y: FloatArray, n: FloatArray) -> tuple[float, float, float]:
    """MLE of ``mu`` at ``tau = 0``, its log likelihood, and the score for ``tau**2`` there.

    The score ``1/2 sum[(y - n p)^2 - n p (1 - p)]`` is the derivative of the log likelihood
    in ``tau**2`` at 0; if it is <= 0 the boundary satisfies the optimality (KKT) conditions.
    """
    p = y.sum() / n.sum()
    mu0 = float(special.logit(p))
    loglik0 = float(np.sum(stats.binom.logpmf(y, n, p)))
    score = 0.5 * float(np.sum((y - n * p) ** 2 - n * p * (1.0 - p)))
    return mu0, loglik0, score


def _starting_tau(y: FloatArray, n: FloatArray) -> float:
    """DerSimonian-Laird tau on continuity-corrected logits: a start, not an estimate."""
    logit, var = empirical_logits(y, n)
    w = 1.0 / var
    centre = np.sum(w * logit) / w.sum()
    q = np.sum(w * (logit - centre) ** 2)
    denom = w.sum() - np.sum(w**2) / w.sum()
    tau2 = max(0.0, (q - (y.size - 1)) / denom) if denom > 0 else 0.0
    return max(float(np.sqrt(tau2)), 0.1)


def _maximise_interior(
    y: FloatArray, n: FloatArray, mu0: float, tau0: float, n_nodes: int
) -> optimize.OptimizeResult:
    """Maximise over ``(mu, log tau)`` with exact gradient and Hessian (trust region)."""

    def objective(x: FloatArray) -> tuple[float, FloatArray]:
        log_lik, grad, hess = _derivatives(y, n, x[0], float(np.exp(x[1])), n_nodes)
        g, _ = _to_log_tau(grad, hess, float(np.exp(2.0 * x[1])))
        return -log_lik, -g

    def hessian(x: FloatArray) -> FloatArray:
        _, grad, hess = _derivatives(y, n, x[0], float(np.exp(x[1])), n_nodes)
        return -_to_log_tau(grad, hess, float(np.exp(2.0 * x[1])))[1]

    return optimize.minimize(
        objective,
        np.array([mu0, np.log(tau0)]),
        jac=True,
        hess=hessian,
        method="trust-exact",
        options={"gtol": _GTOL, "maxiter": 200},
    )


def _is_maximum(grad: FloatArray, hess: FloatArray, s: float) -> bool:
    """Gradient ~0 in ``(mu, log tau)`` and the Hessian negative definite there."""
    g, h = _to_log_tau(grad, hess, s)
    return bool(np.max(np.abs(g)) < _GRAD_OK and np.all(np.linalg.eigvalsh(h) < 0.0))


def _standard_error(hess: FloatArray, method: SEMethod) -> float:
    """SE of ``mu`` from the Hessian of the log likelihood in ``(mu, tau**2)``."""
    if method == "hessian":
        return float(np.sqrt(np.linalg.inv(-hess)[0, 0]))
    if method == "conditional":
        return float(1.0 / np.sqrt(-hess[0, 0]))
    raise ValueError(f"se_method must be 'hessian' or 'conditional', got {method!r}")


def fit_glmm(
    y: ArrayLike,
    n: ArrayLike,
    *,
    ci_level: float = 0.95,
    n_nodes: int = _DEFAULT_NODES,
    se_method: SEMethod = "hessian",
) -> GLMMResult:
    """Fit the binomial-normal GLMM by maximum likelihood.

    Maximises ``sum_i log p(y_i | mu, tau)`` over ``(mu, log tau)`` (trust-region Newton with
    exact derivatives). The boundary ``tau = 0`` is checked explicitly: if the interior optimum
    runs to ``tau -> 0`` (or is no better than the common-proportion model), the result is the
    common-proportion MLE with ``tau = 0`` and ``tau_at_zero = True``.

    Standard error of ``mu`` (``se_method``):

    - ``"hessian"`` (default): the ``mu`` entry of the inverse of the full observed-information
      matrix over ``(mu, tau**2)``, which accounts for ``tau`` being estimated. This is what
      recent lme4 reports for a glmer fit when it uses the Hessian
      (``vcov(fit, use.hessian = TRUE)``) and, judging by the match, what metafor's
      ``rma.glmm`` reports: it reproduces metafor's pooled 95% CIs to all printed digits in
      all three reference cases (``tests/test_glmm.py``); e.g. on the 14 revision studies
      SE = 0.25355, CI 0.0242-0.0628 (metafor: 0.0242-0.0628).
    - ``"conditional"``: ``1 / sqrt(-d2l/dmu2)`` at ``tau = tau_hat``, treating ``tau`` as known.
      Slightly smaller (0.25183 on the same data, CI 0.0243-0.0626), so it misses metafor's
      interval ends in the third significant digit.

    The ``mu`` entry of the inverse Hessian does not depend on whether ``tau``, ``tau**2`` or
    ``log tau`` is used at an interior optimum (the gradient vanishes there).

    At the boundary both equal the common-proportion SE ``1 / sqrt(sum n p (1 - p))``.

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes; at least one event and one non-event overall.
    ci_level : float, optional
        Confidence level of the Wald intervals.
    n_nodes : int, optional
        Adaptive Gauss-Hermite nodes per study (lme4's ``nAGQ``).
    se_method : {"hessian", "conditional"}, optional
        See above.

    Returns
    -------
    GLMMResult
        Estimates, SE, Wald intervals (on the log-odds scale, mapped by ``expit``) and fit info.
    """
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level must lie in (0, 1), got {ci_level}")
    y_arr, n_arr = _study_arrays(y, n)
    mu0, loglik0, score0 = _common_proportion(y_arr, n_arr)
    fit = _maximise_interior(y_arr, n_arr, mu0, _starting_tau(y_arr, n_arr), n_nodes)
    mu_hat, tau_hat = float(fit.x[0]), float(np.exp(fit.x[1]))
    interior = tau_hat > _TAU_ZERO and -fit.fun > loglik0 + _LOGLIK_GAIN
    if interior:
        _, grad, hess = _derivatives(y_arr, n_arr, mu_hat, tau_hat, n_nodes)
        se = _standard_error(hess, se_method)
        loglik = float(log_marginal_likelihood(y_arr, n_arr, mu_hat, tau_hat, n_nodes).sum())
        converged = _is_maximum(grad, hess, tau_hat**2)
    else:
        p = special.expit(mu0)
        mu_hat, tau_hat, loglik = mu0, 0.0, loglik0
        se = float(1.0 / np.sqrt(np.sum(n_arr * p * (1.0 - p))))
        converged = score0 <= 0.0  # KKT: the log likelihood cannot rise into tau > 0
    return _result(
        mu_hat, se, tau_hat, ci_level, loglik, converged, y_arr.size, not interior, se_method
    )


def _result(
    mu: float,
    se: float,
    tau: float,
    ci_level: float,
    loglik: float,
    converged: bool,
    n_studies: int,
    at_zero: bool,
    se_method: str,
) -> GLMMResult:
    """Assemble a :class:`GLMMResult` with Wald intervals."""
    z = float(stats.norm.ppf(0.5 + ci_level / 2.0))
    mu_ci = (mu - z * se, mu + z * se)
    return GLMMResult(
        mu=mu,
        se_mu=se,
        tau=tau,
        tau2=tau**2,
        ci_level=ci_level,
        mu_ci=mu_ci,
        pooled=float(special.expit(mu)),
        pooled_ci=(float(special.expit(mu_ci[0])), float(special.expit(mu_ci[1]))),
        loglik=loglik,
        converged=converged,
        n_studies=n_studies,
        tau_at_zero=at_zero,
        se_method="common-proportion" if at_zero else se_method,
    )
