"""The ``marginal`` parametrisation: θ_i integrated out inside the model, drawn back afterwards.

For the logit-normal model the sampler only needs ``(mu, tau)`` (and ``beta``): each study's

    log p(y_i | eta_i, tau) = log ∫ Binom(y_i | n_i, expit θ) N(θ | eta_i, tau) dθ

is computed by adaptive Gauss–Hermite quadrature (Newton iterations to the mode of the
integrand, nodes scaled by its curvature, as in :mod:`bayes_va.numerics.exact` and lme4's
``nAGQ``) in one fused numba loop over the studies that returns the value *and* its gradient.
The gradient is the quadrature of the integrand's derivative at the same nodes, so no
derivative passes through the Newton iterations (the rule's dependence on where its nodes sit
is of the order of its error, ~1e-9 here). :class:`MarginalLogLik` wraps the loop as a PyTensor
Op with a numba implementation, so nutpie's default (numba) backend compiles it into the
model's log density.

Afterwards :func:`draw_theta` draws each θ_i from its conditional posterior
``p(θ_i | y_i, eta_i, tau)`` for every posterior draw, exactly: the conditional is log-concave,
so rejection sampling under an envelope of three tangents of its log density (at the mode and
one curvature-SD either side; acceptance ~0.8 for a near-Gaussian conditional) needs no tuning
and no approximation. Its random numbers come from a counter-based generator keyed by
(seed, draw, study), so the draws do not depend on chunking or threads.

Accuracy of the quadrature (``tests/test_marginal.py``): with :data:`N_NODES` nodes it agrees
with :func:`bayes_va.numerics.exact.log_marginal_likelihood` (which checks itself against a refined
trapezoid rule) to < 1e-7 on zero-event, tiny and 80,000-patient studies for tau <= 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op, OutputStorageType
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from bayes_va.engine import sampler_cores

__all__ = [
    "N_NODES",
    "MarginalLogLik",
    "draw_theta",
    "log_marginal",
    "marginal_loglik",
]

#: Gauss–Hermite nodes for the least informative studies (bayes_va.numerics.exact's default rule).
N_NODES = 15
#: Nodes per study by ``m = min(y, n - y)``: (smallest m, nodes). The rule's error falls like
#: ``m ** -(nodes // 2)``; measured worst cases against bayes_va.numerics.exact over tau in
#: [0.1, 3], mu in [-8, 3] (tests/test_marginal.py): 11 nodes from m = 10: 1.6e-6; 7 from 30:
#: 8e-7; 5 from 300: 6e-7. Below m = 10 (one-sided or tiny studies) 15 nodes: < 3e-7 for tau <= 1,
#: up to ~6e-4 for a zero-event study at tau = 3 (where adaptive Gauss-Hermite is poorest).
NODE_RULES = ((0, 15), (10, 11), (30, 7), (300, 5))
#: Newton iterations stop when the step is below this many curvature-SDs. Adaptive
#: Gauss-Hermite barely notices a centre that far off (for a near-Gaussian integrand its error
#: grows like the offset to the power 2 * nodes).
_NEWTON_TOL = 1e-5
_NEWTON_MAX = 60
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and ``log w + x**2`` (for an integrand without the weight)."""
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    return x, np.log(w) + x**2


def _rules(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several rules stacked: nodes and log weights padded to the largest, and the sizes."""
    width = max(sizes)
    x = np.zeros((len(sizes), width))
    lw = np.full((len(sizes), width), -np.inf)
    for r, m in enumerate(sizes):
        x[r, :m], lw[r, :m] = _rule(m)
    return x, lw, np.asarray(sizes, dtype=np.int64)


def node_rule(y: np.ndarray, n: np.ndarray, n_nodes: int | None = None) -> np.ndarray:
    """Index into the stacked rules of each study's rule (data only: fixed per dataset).

    ``n_nodes=None`` picks by :data:`NODE_RULES`; an integer uses that many nodes for all.
    """
    y = np.asarray(y, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if n_nodes is not None:
        return np.zeros(y.shape, dtype=np.int64)
    m = np.minimum(y, n - y)
    out = np.zeros(y.shape, dtype=np.int64)
    for r, (m_min, _) in enumerate(NODE_RULES):
        out[m >= m_min] = r
    return out


def first_duplicate(y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """For each study, the index of the first study with the same ``(y, n)`` (itself if none).

    Studies with equal counts have equal marginal likelihoods when they share ``eta`` and
    ``tau`` (no moderators), so the model computes each distinct study once: exact, and a
    large saving for registry-like data (k = 10,000 hospitals drawn from 14 sizes hold ~3,500
    distinct counts).
    """
    pairs = np.stack([np.asarray(y, dtype=np.int64), np.asarray(n, dtype=np.int64)], axis=1)
    _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    return first[inverse.ravel()].astype(np.int64)


def _rule_sizes(n_nodes: int | None) -> tuple[int, ...]:
    return tuple(m for _, m in NODE_RULES) if n_nodes is None else (int(n_nodes),)


# --------------------------------------------------------------------------- numba kernels
#
# Every kernel states fastmath=False. A jitted function that leaves it unset inherits the flag
# of the function that first compiles it: here PyTensor's fastmath=True model code, unless
# something called the kernel directly first. The compiled flavour (and the on-disk cache
# entry) then depended on process history, and posteriors moved by ~1e-8 between cold and
# warm caches and with fit order (tests/test_determinism.py).


@numba.njit(cache=True, inline="always", fastmath=False)
def _sigmoid_softplus(t: float) -> tuple[float, float]:
    """``(expit t, log(1 + e^t))`` from one exponential."""
    e = math.exp(-abs(t))
    sp = max(t, 0.0) + math.log1p(e)
    s = 1.0 / (1.0 + e) if t >= 0.0 else e / (1.0 + e)
    return s, sp


@numba.njit(cache=True, inline="always", fastmath=False)
def _sigmoid(t: float) -> float:
    e = math.exp(-abs(t))
    return 1.0 / (1.0 + e) if t >= 0.0 else e / (1.0 + e)


@numba.njit(cache=True, fastmath=False)
def _mode(y: float, n: float, eta: float, tau: float) -> tuple[float, float]:
    """Mode ``d`` of ``theta - eta`` for the integrand, and the curvature there.

    Safeguarded Newton from a precision-weighted start; the mode lies between 0 and
    ``tau**2 (y - n expit(eta))``, a bracket that shrinks as Newton proceeds (bisection where a
    step would leave it). Same scheme as :func:`bayes_va.numerics.exact._conditional_mode`.
    """
    v = 1.0 / (tau * tau)
    p0 = (y + 0.5) / (n + 1.0)
    info = n * p0 * (1.0 - p0)
    d = (math.log(p0 / (1.0 - p0)) - eta) * info / (info + v)
    s_eta = _sigmoid(eta)
    far = tau * tau * (y - n * s_eta)
    lo = min(0.0, far)
    hi = max(0.0, far)
    d = min(max(d, lo), hi)
    c = v
    done = False
    for _ in range(_NEWTON_MAX):
        p = _sigmoid(eta + d)
        g = y - n * p - d * v
        c = n * p * (1.0 - p) + v
        if g > 0.0:
            lo = d
        else:
            hi = d
        step = d + g / c
        if not lo <= step <= hi:
            step = 0.5 * (lo + hi)
        done = abs(step - d) * math.sqrt(c) <= _NEWTON_TOL
        d = step
        if done:
            break
    if done:  # c is the curvature at the previous iterate, one tiny step away: keep it
        return d, c
    p = _sigmoid(eta + d)
    return d, n * p * (1.0 - p) + v


@numba.njit(cache=True, fastmath=False)
def _study(
    y: float,
    n: float,
    eta: float,
    tau: float,
    x: np.ndarray,
    lw: np.ndarray,
    m: int,
    log_coef: float,
    want_grad: bool,
    h: np.ndarray,
    dh_eta: np.ndarray,
) -> tuple[float, float, float]:
    """Log marginal likelihood of one study and (optionally) d/d eta, d/d tau.

    ``h`` and ``dh_eta`` are work buffers of the rule's length (allocated once per call of the
    caller, not per study).
    """
    d, c = _mode(y, n, eta, tau)
    s = math.sqrt(2.0 / c)
    top = -np.inf
    for j in range(m):
        dj = d + s * x[j]
        t = eta + dj
        sig, sp = _sigmoid_softplus(t)
        h[j] = y * t - n * sp - 0.5 * (dj / tau) ** 2 + lw[j]
        dh_eta[j] = y - n * sig
        top = max(top, h[j])
    total = 0.0
    g_eta = 0.0
    g_tau = 0.0
    for j in range(m):
        w = math.exp(h[j] - top)
        total += w
        if want_grad:
            dj = d + s * x[j]
            g_eta += w * dh_eta[j]
            g_tau += w * dj * dj
    ll = top + math.log(total) + math.log(s) + log_coef - math.log(tau) - _LOG_SQRT_2PI
    if want_grad:
        g_eta /= total
        g_tau = g_tau / total / (tau * tau * tau) - 1.0 / tau
    return ll, g_eta, g_tau


@numba.njit(cache=True, fastmath=False)
def _log_binom_coef(y: float, n: float) -> float:
    return math.lgamma(n + 1.0) - math.lgamma(y + 1.0) - math.lgamma(n - y + 1.0)


@numba.njit(cache=True, fastmath=False)
def _marginal_kernel(
    y: np.ndarray,
    n: np.ndarray,
    log_coef: np.ndarray,
    rule: np.ndarray,
    first: np.ndarray,
    eta: np.ndarray,
    tau: np.ndarray,
    x: np.ndarray,
    lw: np.ndarray,
    sizes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-study log marginal likelihood and its gradients.

    ``eta`` and ``tau`` have length 1 (shared by every study) or k. ``log_coef`` holds
    ``log C(n_i, y_i)`` and ``rule`` each study's row of the stacked rules ``x``, ``lw``
    (``sizes`` nodes), ``first`` the first study with the same counts (see
    :func:`first_duplicate`; used when ``eta`` and ``tau`` are shared); all are data,
    computed once, not per evaluation.
    """
    k = y.shape[0]
    ll = np.empty(k)
    g_eta = np.empty(k)
    g_tau = np.empty(k)
    scalar_eta = eta.shape[0] == 1
    scalar_tau = tau.shape[0] == 1
    h = np.empty(x.shape[1])
    dh = np.empty(x.shape[1])
    shared = scalar_eta and scalar_tau
    for i in range(k):
        j = first[i]
        if shared and j < i:  # same counts as an earlier study: same values
            ll[i], g_eta[i], g_tau[i] = ll[j], g_eta[j], g_tau[j]
            continue
        e = eta[0] if scalar_eta else eta[i]
        t = tau[0] if scalar_tau else tau[i]
        yi = float(y[i])
        ni = float(n[i])
        r = rule[i]
        ll[i], g_eta[i], g_tau[i] = _study(
            yi, ni, e, t, x[r], lw[r], sizes[r], log_coef[i], True, h, dh
        )
    return ll, g_eta, g_tau


# parallel=True: draws are independent and each element's arithmetic is the serial one, so
# the values do not depend on the number of threads (tests/test_marginal.py); at k = 10,000
# this is 40 million quadratures.
@numba.njit(cache=True, fastmath=False, parallel=True)
def _marginal_values(
    y: np.ndarray,
    n: np.ndarray,
    rule: np.ndarray,
    first: np.ndarray,
    eta: np.ndarray,
    tau: np.ndarray,
    x: np.ndarray,
    lw: np.ndarray,
    sizes: np.ndarray,
) -> np.ndarray:
    """Log marginal likelihood for draws: ``eta`` (S, k), ``tau`` (S,) -> (S, k).

    A study with the counts of an earlier one (``first``, :func:`first_duplicate`) and the same
    ``eta`` in a draw takes that study's value: the same inputs, so the same bytes.
    """
    s_count, k = eta.shape
    out = np.empty((s_count, k))
    coef = np.empty(k)
    for i in range(k):
        coef[i] = _log_binom_coef(float(y[i]), float(n[i]))
    for s in numba.prange(s_count):
        h = np.empty(x.shape[1])  # scratch per draw: private to the thread running it
        dh = np.empty(x.shape[1])
        for i in range(k):
            j = first[i]
            if j < i and eta[s, j] == eta[s, i]:
                out[s, i] = out[s, j]
                continue
            yi, ni = float(y[i]), float(n[i])
            r = rule[i]
            out[s, i] = _study(
                yi, ni, eta[s, i], tau[s], x[r], lw[r], sizes[r], coef[i], False, h, dh
            )[0]
    return out


# --------------------------------------------------------------------------- the PyTensor Op


class MarginalLogLik(Op):
    """Per-study log marginal likelihood ``log p(y_i | eta_i, tau)`` and its gradient pieces.

    Inputs ``y``, ``n``, ``log_coef`` (``log C(n, y)``, see
    :func:`bayes_va.numerics.exact.log_binom_coef`), ``rule`` (see :func:`node_rule`) and
    ``first`` (see :func:`first_duplicate`): vectors of data; ``eta`` and ``tau``: scalars or
    vectors of length 1 or k. Outputs the log likelihood per study and its derivatives with
    respect to ``eta_i`` and ``tau`` per study; the gradient of a cost uses the last two.

    Parameters
    ----------
    n_nodes : int or None
        Nodes for every study; None (default) picks per study by :data:`NODE_RULES`.
    """

    __props__ = ("n_nodes",)

    def __init__(self, n_nodes: int | None = None):
        self.n_nodes = None if n_nodes is None else int(n_nodes)

    def make_node(self, *inputs: Any) -> Apply:
        """Build the node: inputs ``y, n, log_coef, rule, first, eta, tau``, three outputs.

        Inputs may be tensors or array-likes. Counts are cast to float64, ``rule`` and
        ``first`` to int64, and a scalar ``eta`` or ``tau`` becomes a vector of length 1.
        """
        y, n, log_coef, rule, first, eta, tau = inputs
        y = pt.as_tensor_variable(y).astype("float64")
        n = pt.as_tensor_variable(n).astype("float64")
        log_coef = pt.as_tensor_variable(log_coef).astype("float64")
        rule = pt.as_tensor_variable(rule).astype("int64")
        first = pt.as_tensor_variable(first).astype("int64")
        eta = pt.as_tensor_variable(eta).astype("float64")
        tau = pt.as_tensor_variable(tau).astype("float64")
        eta = eta[None] if eta.ndim == 0 else eta
        tau = tau[None] if tau.ndim == 0 else tau
        out = [pt.dvector() for _ in range(3)]
        return Apply(self, [y, n, log_coef, rule, first, eta, tau], out)

    def perform(self, node: Apply, inputs: Sequence[Any], outputs: OutputStorageType) -> None:
        """Evaluate the log likelihoods and gradient pieces with the numba kernel."""
        y, n, log_coef, rule, first, eta, tau = inputs
        x, lw, sizes = _rules(_rule_sizes(self.n_nodes))
        res = _marginal_kernel(
            np.asarray(y, dtype=np.float64),
            np.asarray(n, dtype=np.float64),
            np.asarray(log_coef, dtype=np.float64),
            np.asarray(rule, dtype=np.int64),
            np.asarray(first, dtype=np.int64),
            np.asarray(eta, dtype=np.float64),
            np.asarray(tau, dtype=np.float64),
            x,
            lw,
            sizes,
        )
        for slot, value in zip(outputs, res, strict=True):
            slot[0] = value

    def infer_shape(self, node: Apply, shapes: Sequence[Any]) -> list[Any]:
        """Return the shapes of the outputs: each has the shape of ``y``."""
        return [shapes[0]] * 3

    def pullback(
        self,
        inputs: Sequence[Any],  # TensorVariables (the base class types them as Variable)
        outputs: Sequence[Any],
        cotangents: Sequence[Any],
    ) -> list[Variable]:
        """Return the gradient of a cost through the log likelihood output.

        Only ``eta`` and ``tau`` receive gradients (the data inputs are disconnected); the two
        gradient outputs are not differentiable themselves.
        """
        eta, tau = inputs[5], inputs[6]
        _, g_eta, g_tau = outputs
        g = cotangents[0]
        for extra in cotangents[1:]:
            if not isinstance(extra.type, DisconnectedType):
                raise NotImplementedError("only the log likelihood output is differentiable")
        d_eta, d_tau = g * g_eta, g * g_tau
        if eta.type.broadcastable == (True,):
            d_eta = d_eta.sum(keepdims=True)
        if tau.type.broadcastable == (True,):
            d_tau = d_tau.sum(keepdims=True)
        return [*(disconnected_type() for _ in range(5)), d_eta, d_tau]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which outputs depend on which inputs: only the log likelihood on ``eta, tau``."""
        data = [False, False, False]
        return [*([data] * 5), [True, False, False], [True, False, False]]


def _register_numba() -> None:
    """Give :class:`MarginalLogLik` a numba implementation (nutpie's default backend)."""

    @register_funcify_default_op_cache_key(MarginalLogLik)
    def numba_funcify_marginal(
        op: MarginalLogLik, node: Apply | None = None, **kwargs: Any
    ) -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
        x, lw, sizes = _rules(_rule_sizes(op.n_nodes))

        @numba.njit(fastmath=False)
        def marginal(
            y: np.ndarray,
            n: np.ndarray,
            log_coef: np.ndarray,
            rule: np.ndarray,
            first: np.ndarray,
            eta: np.ndarray,
            tau: np.ndarray,
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return _marginal_kernel(y, n, log_coef, rule, first, eta, tau, x, lw, sizes)

        return marginal


_register_numba()


def marginal_loglik(
    y: ArrayLike | Variable,
    n: ArrayLike | Variable,
    log_coef: ArrayLike | Variable,
    rule: ArrayLike | Variable,
    first: ArrayLike | Variable,
    eta: ArrayLike | Variable,
    tau: ArrayLike | Variable,
    n_nodes: int | None = None,
) -> pt.TensorVariable:
    """Build the per-study log marginal likelihood as a differentiable PyTensor expression.

    Parameters
    ----------
    y, n : array_like or Variable
        Events and sample sizes, shape ``(k,)``.
    log_coef : array_like or Variable
        ``log C(n, y)`` per study (:func:`bayes_va.numerics.exact.log_binom_coef`).
    rule : array_like or Variable
        Each study's quadrature rule (:func:`node_rule`).
    first : array_like or Variable
        Each study's first study with the same counts (:func:`first_duplicate`).
    eta, tau : array_like or Variable
        Linear predictor and random-effect SD: scalars, or vectors of length 1 or ``k``.
    n_nodes : int or None
        Nodes for every study; None picks per study by :data:`NODE_RULES`.

    Returns
    -------
    pytensor.tensor.TensorVariable
        ``log p(y_i | eta_i, tau)``, shape ``(k,)``; its gradient flows to ``eta`` and ``tau``.
    """
    # Op.__call__ without a name is make_node(...).outputs (default_output is None)
    out = MarginalLogLik(n_nodes).make_node(y, n, log_coef, rule, first, eta, tau).outputs[0]
    assert isinstance(out, pt.TensorVariable)  # make_node's outputs are dvectors
    return out


def _use_threads() -> None:
    """Let the parallel kernels use the fit's cores (one in a dask worker), no more."""
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at import
    numba.set_num_threads(min(most, sampler_cores()))


def log_marginal(
    y: np.ndarray,
    n: np.ndarray,
    eta: np.ndarray,
    tau: np.ndarray,
    n_nodes: int | None = None,
) -> np.ndarray:
    """Per-study log marginal likelihood for many draws (numpy in, numpy out).

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes.
    eta : array_like, shape S + (k,) or S
        Linear predictor per draw (and study).
    tau : array_like, shape S
        Random-effects SD per draw (> 0).
    n_nodes : int or None
        Nodes for every study; None picks per study (:data:`NODE_RULES`), as the model does.

    Returns
    -------
    numpy.ndarray, shape S + (k,)
    """
    y = np.asarray(y, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    if eta.ndim == tau.ndim:
        eta = eta[..., None]
    eta = np.broadcast_to(eta, (*tau.shape, y.size))
    _use_threads()
    flat = _marginal_values(
        y,
        n,
        node_rule(y, n, n_nodes),
        first_duplicate(y, n),
        np.ascontiguousarray(eta.reshape(-1, y.size)),
        np.ascontiguousarray(tau.ravel()),
        *_rules(_rule_sizes(n_nodes)),
    )
    return flat.reshape(*tau.shape, y.size)


# --------------------------------------------------------------------------- drawing theta


@numba.njit(cache=True, inline="always", fastmath=False)
def _splitmix(z: np.uint64) -> np.uint64:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always", fastmath=False)
def _uniform(key: np.uint64, counter: np.uint64) -> float:
    """Return a uniform in (0, 1) from a key and a counter (counter-based generator)."""
    bits = _splitmix(key ^ _splitmix(counter)) >> np.uint64(11)
    return (float(bits) + 0.5) / 9007199254740992.0  # 2**53


@numba.njit(cache=True, inline="always", fastmath=False)
def _log_h(t: float, d: float, y: float, n: float, tau: float) -> tuple[float, float]:
    """Log conditional density of ``delta = theta - eta`` (unnormalised) and its slope."""
    sig, sp = _sigmoid_softplus(t)
    return y * t - n * sp - 0.5 * (d / tau) ** 2, y - n * sig - d / (tau * tau)


@numba.njit(cache=True, fastmath=False)
def _draw_one(y: float, n: float, eta: float, tau: float, key: np.uint64) -> float:
    """One exact draw of theta from its conditional (three-tangent envelope rejection)."""
    m, c = _mode(y, n, eta, tau)
    sd = 1.0 / math.sqrt(c)
    top, _ = _log_h(eta + m, m, y, n, tau)
    a_lo = m - sd
    a_hi = m + sd
    h_lo, s_lo = _log_h(eta + a_lo, a_lo, y, n, tau)  # s_lo > 0 (strict concavity)
    h_hi, s_hi = _log_h(eta + a_hi, a_hi, y, n, tau)  # s_hi < 0
    z_lo = a_lo + (top - h_lo) / s_lo  # where each tangent meets the flat top
    z_hi = a_hi + (top - h_hi) / s_hi
    area_lo = 1.0 / s_lo
    area_mid = z_hi - z_lo
    area_hi = -1.0 / s_hi
    total = area_lo + area_mid + area_hi
    counter = np.uint64(0)
    for _ in range(10000):
        u1 = _uniform(key, counter)
        u2 = _uniform(key, counter + np.uint64(1))
        u3 = _uniform(key, counter + np.uint64(2))
        counter += np.uint64(3)
        pick = u1 * total
        if pick < area_lo:
            d = z_lo + math.log(u2) / s_lo
            env = top + s_lo * (d - z_lo)
        elif pick < area_lo + area_mid:
            d = z_lo + u2 * area_mid
            env = top
        else:
            d = z_hi + math.log(u2) / s_hi
            env = top + s_hi * (d - z_hi)
        h, _ = _log_h(eta + d, d, y, n, tau)
        if math.log(u3) <= h - env:
            return eta + d
    return eta + m  # pragma: no cover - acceptance ~0.8: never reached


# parallel=True: draw (s, i) has its own counter-based stream, so the draws do not depend on
# the number of threads or their order (tests/test_marginal.py)
@numba.njit(cache=True, fastmath=False, parallel=True)
def _draw_kernel(
    y: np.ndarray, n: np.ndarray, eta: np.ndarray, tau: np.ndarray, seed: np.uint64
) -> np.ndarray:
    """Draw theta exactly for ``eta`` (S, k) and ``tau`` (S,); draw ``(s, i)`` keyed by ``seed``."""
    s_count, k = eta.shape
    out = np.empty((s_count, k))
    base = _splitmix(np.uint64(seed))
    for s in numba.prange(s_count):
        for i in range(k):
            key = _splitmix(base ^ _splitmix(np.uint64(s) * np.uint64(k) + np.uint64(i)))
            out[s, i] = _draw_one(float(y[i]), float(n[i]), eta[s, i], tau[s], key)
    return out


def draw_theta(
    y: np.ndarray, n: np.ndarray, eta: np.ndarray, tau: np.ndarray, seed: int
) -> np.ndarray:
    """Exact draws of each θ_i from ``p(θ_i | y_i, eta_i, tau)``, one per posterior draw.

    Parameters
    ----------
    y, n : array_like, shape (k,)
        Events and sizes.
    eta : array_like, shape S + (k,)
        Linear predictor (``mu`` or ``mu + X beta``) per draw and study.
    tau : array_like, shape S
        Random-effects SD per draw.
    seed : int
        Seed; draw ``s`` of study ``i`` uses the stream keyed by ``(seed, s, i)``.

    Returns
    -------
    numpy.ndarray, shape S + (k,)
    """
    y = np.asarray(y, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    eta = np.broadcast_to(np.asarray(eta, dtype=np.float64), (*tau.shape, y.size))
    _use_threads()
    flat = _draw_kernel(
        y,
        n,
        np.ascontiguousarray(eta.reshape(-1, y.size)),
        np.ascontiguousarray(tau.ravel()),
        np.uint64(seed % 2**64),
    )
    return flat.reshape(*tau.shape, y.size)
