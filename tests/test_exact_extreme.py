"""bayes_va.numerics.exact.posterior_grid on extreme data, against a brute-force reference.

The reference is independent of the module's code.

The data: rare-event meta-analyses with few studies of 10 to 100,000 patients, where the
conditional posterior of mu at small tau is a ridge ~0.005 wide (pinned by the big studies)
while at tau ~ 1 it is ~1 wide. A tensor grid in (mu, log tau) under-resolved that ridge
(tau quantiles off by 25 %) or lost it while being placed ("could not locate the posterior
bulk"); the whitened grid (bayes_va/exact/whitened.py) must match the reference below.

The reference (:class:`Reference`) shares only level 1 with the grid (the per-study marginal
likelihood, itself checked against QUADPACK in tests/test_exact.py, here run with its checked
rule at tol=1e-10). Level 2 is different throughout: for every log tau node it finds the
conditional mode of mu (bisection; the conditional is log-concave) and the points 40 below it,
and integrates mu between them with 24 Gauss-Legendre panels of 12 nodes; log tau is
integrated with 10-node Gauss-Legendre panels (0.4 wide, 1 wide in the far exponential lower
tail) over the range where the slice mass is within 40 of its maximum. CDFs at arbitrary points
interpolate the log density within a panel (barycentric Lagrange); quantiles are Brent roots.
Halving its panel widths or moving its cut-offs changes its quantiles by < 1e-10 (measured).
It is slow (seconds per data set), so the fast tests compare against its values stored below
and the slow ones recompute them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import optimize, special, stats

from bayes_va.numerics.exact import leave_one_out_elpd, log_marginal_likelihood, posterior_grid

PROBS = np.array([0.025, 0.5, 0.975])
NAMES = ("mu", "pooled", "tau", "predictive")
#: Grid vs reference, relative (the brief: ~1e-4); measured <= 4e-6 on every data set below.
RTOL = 1e-4
#: log evidence, absolute; measured <= 2e-6 (the nearly one-sided studies' level-1 error).
EVIDENCE_ATOL = 2e-5

# Simulated by bench/bench_robustness.py (rng = default_rng([20261130, cell, rep]), then
# simulate(design, pooled, tau, rng)); the grid failed on each before the whitening. Keys:
# design-pooled-tau-rep.
DATASETS: dict[str, tuple[list[int], list[int]]] = {
    # two MCMC parametrisations agreed with each other but not with the former grid
    "big3": ([25508, 234, 7747], [87429, 845, 24975]),
    "mixed3": ([17, 61, 3024], [41, 170, 7856]),
    # "could not locate the posterior bulk" before
    "k10-0.04-0.05-r5": (
        [134, 1846, 244, 897, 113, 1326, 813, 36, 475, 67],
        [3148, 50473, 6714, 23797, 3603, 33996, 20231, 1306, 12572, 1618],
    ),
    "k10-0.005-0.05-r17": (
        [35, 1, 13, 157, 0, 20, 402, 185, 281, 48],
        [6257, 190, 1636, 29755, 15, 2834, 73688, 31679, 56732, 9467],
    ),
    "k3-0.005-1.5-r9": ([0, 0, 0], [10, 15, 3580]),
    "k3-0.005-1.5-r14": ([126, 6, 0], [39552, 231, 18]),
    "k3-0.005-0.05-r4": ([0, 0, 0], [60, 12, 67]),
    # further extremes
    "one-sided-huge": ([0, 0, 1], [100000, 50000, 80000]),
    "all-events": ([50, 1000, 20], [50, 1000, 21]),
    "single-big": ([3024], [7856]),
    "discrepant-huge": ([100, 30000], [100000, 100000]),
    "homogeneous-huge": ([2000, 4010, 998, 3003, 5001], [20000, 40000, 10000, 30000, 50000]),
}

#: Reference quantiles (2.5, 50, 97.5 %) and log evidence, from :class:`Reference` under the
#: default priors (regenerate with ``Reference(y, n).summary()``; checked by the slow
#: test_stored_reference_values_are_current).
REFERENCE: dict[str, dict[str, list[float] | float]] = {
    "big3": {
        "mu": [-1.2204701810777878, -0.866100342399353, -0.5086660528954267],
        "pooled": [0.22785371802170504, 0.29606638700289833, 0.3755062858960569],
        "tau": [0.032714292738027, 0.1319076607997956, 0.8983924283902032],
        "predictive": [0.1711135322780649, 0.2961528516730038, 0.4622443901184483],
        "log_evidence": -25.650398776618182,
    },
    "mixed3": {
        "mu": [-0.9403669780642243, -0.4766392398013963, 0.014003790802391083],
        "pooled": [0.28082622068530244, 0.38304603323212877, 0.5035008904886031],
        "tau": [0.0064622407725325026, 0.15887396842576298, 1.0701368273295238],
        "predictive": [0.20071964772539835, 0.3832053367598244, 0.6124698133844112],
        "log_evidence": -16.121328625272355,
    },
    "k10-0.04-0.05-r5": {
        "mu": [-3.298223205800991, -3.2388137519818256, -3.1906266207812903],
        "pooled": [0.03563219408557865, 0.03773093637655207, 0.03951998731599776],
        "tau": [0.0031075746351936807, 0.04247871396273332, 0.14423740173063238],
        "predictive": [0.03267488298886376, 0.037755049711393554, 0.04297485475782602],
        "log_evidence": -54.985726597717516,
    },
    "k10-0.005-0.05-r17": {
        "mu": [-5.295987525285564, -5.212203133437993, -5.104297424844986],
        "pooled": [0.00498667127241001, 0.005420116377272953, 0.006033972622608817],
        "tau": [0.002499840068898416, 0.05188638878070091, 0.21380212648547114],
        "predictive": [0.004492290107845456, 0.0054098634320390955, 0.006759010659592771],
        "log_evidence": -38.35223230426938,
    },
    "k3-0.005-1.5-r9": {
        "mu": [-9.926410424964573, -7.180668634225129, -3.6493287981570868],
        "pooled": [4.88645051715629e-05, 0.0007605798132169067, 0.02534928112401979],
        "tau": [0.06242854364456113, 1.14853482524466, 2.8275236055487767],
        "predictive": [2.287555879752887e-05, 0.0006566168322500628, 0.11068604239204596],
        "log_evidence": -6.69990844824177,
    },
    "k3-0.005-1.5-r14": {
        "mu": [-5.974404491390116, -4.5217176753600015, -2.535250596288491],
        "pooled": [0.00253656549717518, 0.010753442384283498, 0.0734236338178989],
        "tau": [0.46795677365222094, 1.1295617317438709, 2.3847575087435966],
        "predictive": [0.000613359140715642, 0.010454696694195922, 0.26529281004939365],
        "log_evidence": -13.382360278460007,
    },
    "k3-0.005-0.05-r4": {
        "mu": [-8.146572699177435, -5.3358390520322425, -3.232552430089546],
        "pooled": [0.0002896427230889156, 0.004792786228882161, 0.037958927304747855],
        "tau": [0.02989284028482359, 0.6480921108585577, 2.224147659459902],
        "predictive": [0.00016376102090050432, 0.004619606711742313, 0.09094362927677038],
        "log_evidence": -3.8419168702885087,
    },
    "one-sided-huge": {
        "mu": [-12.760822323114484, -11.02639180381683, -7.589594607368113],
        "pooled": [2.871071668619811e-06, 1.6266413940102715e-05, 0.0005054304247041103],
        "tau": [0.039161980618881986, 0.8716795883496485, 2.955820267138668],
        "predictive": [1.1570364282409812e-06, 1.4875560075370692e-05, 0.002249490504427629],
        "log_evidence": -14.286415173436783,
    },
    "all-events": {
        "mu": [2.728344814694832, 5.407419921093936, 7.699086671136144],
        "pooled": [0.9386786321127956, 0.9955368170153902, 0.9995469643823464],
        "tau": [0.12583496092307112, 1.3634954142700768, 2.858144903178173],
        "predictive": [0.7112132320772793, 0.9960719215897779, 0.9998747688289663],
        "log_evidence": -8.270398446013065,
    },
    "single-big": {
        "mu": [-2.136919355847142, -0.45538279350814087, 1.4258502161967463],
        "pooled": [0.10555990148881017, 0.38808172348459685, 0.8062539077928957],
        "tau": [0.029462162922243722, 0.6350610581128142, 2.13414046784924],
        "predictive": [0.043890500747670994, 0.38770841535524264, 0.9151317805545777],
        "log_evidence": -9.442894250205832,
    },
    "discrepant-huge": {
        "mu": [-5.333025104816482, -2.890421352910621, -0.03943209762581329],
        "pooled": [0.004806226958340682, 0.05262910612062689, 0.49014325274052767],
        "tau": [1.3329122490407106, 2.090724777928969, 3.263570522342819],
        "predictive": [0.00041812738987561483, 0.0518779765152875, 0.9235868919230439],
        "log_evidence": -23.73661702556482,
    },
    "homogeneous-huge": {
        "mu": [-2.2202347684060153, -2.196404468753431, -2.172818420349811],
        "pooled": [0.09794805955614319, 0.10007383398906795, 0.10221809812752806],
        "tau": [0.00040087718808937643, 0.009069948745164983, 0.050942544501308744],
        "predictive": [0.09612931703774215, 0.10007519944042205, 0.10413045107932889],
        "log_evidence": -34.424743011604036,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def grids() -> dict[str, object]:
    return {name: posterior_grid(*DATASETS[name]) for name in DATASETS}


# ---------------------------------------------------------------------------------------------
# The brute-force reference
# ---------------------------------------------------------------------------------------------

_PRIOR_MU = stats.norm(0, 2.5).logpdf  # the defaults of posterior_grid
_PRIOR_TAU = stats.halfnorm().logpdf
_GL_MU = np.polynomial.legendre.leggauss(12)
_GL_RHO = np.polynomial.legendre.leggauss(10)


def _barycentric_weights(t: np.ndarray) -> np.ndarray:
    diff = t[:, None] - t[None, :]
    np.fill_diagonal(diff, 1.0)
    return 1.0 / diff.prod(axis=1)


_BW_MU = _barycentric_weights(_GL_MU[0])
_BW_RHO = _barycentric_weights(_GL_RHO[0])


def _interpolate(nodes: np.ndarray, bw: np.ndarray, values: np.ndarray, t: np.ndarray):
    """Barycentric Lagrange interpolation: ``values`` (..., K) at ``nodes`` (K,), to ``t`` (...)."""
    d = t[..., None] - nodes
    hit = d == 0.0
    c = bw / np.where(hit, 1.0, d)
    out = (c * values).sum(-1) / c.sum(-1)
    return np.where(hit.any(-1), (values * hit).sum(-1), out)


class Reference:
    """Posterior of (mu, log tau) by nested composite Gauss-Legendre quadrature (see top)."""

    def __init__(
        self,
        y,
        n,
        log_prior_mu=_PRIOR_MU,
        log_prior_tau=_PRIOR_TAU,
        *,
        drop: float = 40.0,
        mu_panels: int = 24,
        rho_width: float = 0.4,
    ) -> None:
        self.y, self.n = np.asarray(y, float), np.asarray(n, float)
        self.prior_mu, self.prior_tau = log_prior_mu, log_prior_tau
        self.drop, self.mu_panels = drop, mu_panels
        # The log tau range: where a scan's slice masses are within `drop` of the largest.
        scan = np.linspace(-45.0, 5.0, 251)
        mass = self._slices(scan)[0]
        inside = np.flatnonzero(mass >= mass.max() - drop)
        lo, hi = scan[max(inside[0] - 1, 0)], scan[min(inside[-1] + 1, scan.size - 1)]
        # Wide panels only in the far lower tail, where the density is ~ tau and mu's
        # conditional no longer changes (tau far below every study's sampling SD).
        sd_min = np.sqrt(1 / (self.y + 0.5) + 1 / (self.n - self.y + 0.5)).min()
        split = max(lo, min(scan[np.argmax(mass)] - 8.0, np.log(sd_min) - 4.0))
        fine = np.linspace(split, hi, int(np.ceil((hi - split) / rho_width)) + 1)
        self.rho_edges = np.unique(np.concatenate([np.arange(lo, split, 1.0), fine]))
        a, b = self.rho_edges[:-1, None], self.rho_edges[1:, None]
        t, w = _GL_RHO
        self.rho = (0.5 * (a + b) + 0.5 * (b - a) * t).ravel()
        self.rho_w = (0.5 * (b - a) * w).ravel()
        self.log_mass, self.win, self.mu_nodes, self.mu_w, self.lp = self._slices(self.rho)
        self.log_z = float(special.logsumexp(self.log_mass, b=self.rho_w))
        self.tau = np.exp(self.rho)

    def _log_joint(self, mu: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """log p(y, mu, rho) for mu (..., R), rho (R,)."""
        tau = np.exp(rho)
        prior = self.prior_mu(mu) + self.prior_tau(tau) + rho
        ll = log_marginal_likelihood(self.y, self.n, mu, np.broadcast_to(tau, mu.shape), tol=1e-10)
        return ll.sum(-1) + prior

    def _slices(self, rho: np.ndarray):
        """Per rho: log slice mass, mu window, GL nodes and weights, log density at the nodes."""
        lo, hi = np.full(rho.size, -40.0), np.full(rho.size, 40.0)
        for _ in range(32):  # the mode of the log-concave conditional, by bisection
            mid = 0.5 * (lo + hi)
            up = self._log_joint(mid + 1e-6, rho) > self._log_joint(mid - 1e-6, rho)
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        mode = 0.5 * (lo + hi)
        cut = self._log_joint(mode, rho) - self.drop
        ends = []
        for side in (-1.0, 1.0):  # where the log density is `drop` below the mode
            d = np.full(rho.size, 1e-3)
            for _ in range(40):
                below = self._log_joint(mode + side * d, rho) < cut
                if below.all():
                    break
                d = np.where(below, d, 2.0 * d)
            a, b = 0.5 * d, d
            for _ in range(20):
                mid = 0.5 * (a + b)
                below = self._log_joint(mode + side * mid, rho) < cut
                a, b = np.where(below, a, mid), np.where(below, mid, b)
            ends.append(mode + side * b)
        win = np.stack(ends, axis=-1)
        h = (win[:, 1] - win[:, 0]) / self.mu_panels
        t, w = _GL_MU
        starts = win[:, :1] + h[:, None] * np.arange(self.mu_panels)
        nodes = starts[..., None] + 0.5 * h[:, None, None] * (1.0 + t)  # (R, panels, 12)
        weights = 0.5 * h[:, None, None] * w * np.ones_like(nodes)
        lp = self._log_joint(nodes.reshape(rho.size, -1).T, rho).T.reshape(nodes.shape)
        log_mass = special.logsumexp(
            lp.reshape(rho.size, -1), b=weights.reshape(rho.size, -1), axis=1
        )
        return log_mass, win, nodes, weights, lp

    def _log_density(self, x: np.ndarray) -> np.ndarray:
        """log p(y, mu = x[j, ...], rho_j) interpolated within the panels; x (R, ...)."""
        shape, xf = x.shape, x.reshape(self.rho.size, -1)
        h = (self.win[:, 1:] - self.win[:, :1]) / self.mu_panels
        p = np.clip(((xf - self.win[:, :1]) // h).astype(int), 0, self.mu_panels - 1)
        t = 2.0 * (xf - self.win[:, :1] - h * p) / h - 1.0
        values = self.lp[np.arange(self.rho.size)[:, None], p]
        out = _interpolate(_GL_MU[0], _BW_MU, values, t)
        outside = (xf < self.win[:, :1]) | (xf > self.win[:, 1:])
        return np.where(outside, -np.inf, out).reshape(shape)

    def _integral(self, a: np.ndarray, b: np.ndarray, func=None, panels: int = 1) -> np.ndarray:
        """Per slice ``∫_a^b p(y, mu, rho_j) func(mu) dmu / p(y)`` for a, b (R, P) in the window."""
        t, w = _GL_MU
        width = (b - a) / panels
        offsets = np.arange(panels)[:, None] + 0.5 * (1.0 + t)
        nodes = a[..., None, None] + width[..., None, None] * offsets  # (R, P, panels, 12)
        lp = self._log_density(nodes.reshape(self.rho.size, -1)).reshape(nodes.shape)
        values = np.exp(lp - self.log_z) * (1.0 if func is None else func(nodes))
        return 0.5 * width * np.einsum("rpkg,g->rp", values, w)

    def _below(self, x: np.ndarray) -> np.ndarray:
        """Per slice ``∫_{-inf}^{x} p(y, mu, rho_j) dmu / p(y)``; x (R, P)."""
        x = np.clip(x, self.win[:, :1], self.win[:, 1:])
        h = (self.win[:, 1:] - self.win[:, :1]) / self.mu_panels
        p = np.clip(((x - self.win[:, :1]) // h).astype(int), 0, self.mu_panels - 1)
        panel = (np.exp(self.lp - self.log_z) * self.mu_w).sum(-1)
        cum = np.concatenate([np.zeros((self.rho.size, 1)), np.cumsum(panel, axis=1)], axis=1)
        start = self.win[:, :1] + h * p
        return cum[np.arange(self.rho.size)[:, None], p] + self._integral(start, x)

    def cdf(self, name: str, x: float) -> float:
        """CDF of mu, tau or the predictive log-odds ``mu + tau Z`` at ``x``."""
        if name == "mu":
            return float(self.rho_w @ self._below(np.full((self.rho.size, 1), x))[:, 0])
        if name == "tau":
            r, k = np.log(x), _GL_RHO[0].size
            e = int(np.searchsorted(self.rho_edges, r)) - 1
            if e < 0 or e >= self.rho_edges.size - 1:
                return float(e >= 0)
            mass = self.rho_w * np.exp(self.log_mass - self.log_z)
            a, b = self.rho_edges[e], self.rho_edges[e + 1]
            t, w = _GL_MU
            pts = a + 0.5 * (r - a) * (1.0 + t)
            seg = self.log_mass[e * k : (e + 1) * k]
            log_d = _interpolate(_GL_RHO[0], _BW_RHO, seg, 2.0 * (pts - a) / (b - a) - 1.0)
            return float(mass[: e * k].sum() + 0.5 * (r - a) * w @ np.exp(log_d - self.log_z))
        if name == "predictive":
            # P(mu + tau Z <= x) = G(x - 8 tau) + ∫ over x ± 8 tau of p(mu) Phi((x - mu) / tau)
            tau = self.tau[:, None]
            lo = np.clip(x - 8.0 * tau, self.win[:, :1], self.win[:, 1:])
            hi = np.clip(x + 8.0 * tau, self.win[:, :1], self.win[:, 1:])
            inner = self._integral(
                lo, hi, lambda m: special.ndtr((x - m) / tau[..., None, None]), 8
            )
            return float(self.rho_w @ (self._below(lo) + inner)[:, 0])
        raise ValueError(name)

    def quantile(self, name: str, q: np.ndarray) -> np.ndarray:
        scale = "mu" if name == "pooled" else name
        if scale == "tau":
            lo, hi = np.exp(self.rho_edges[[0, -1]])
        else:
            reach = 9.0 * self.tau.max() if scale == "predictive" else 0.0
            lo, hi = self.win[:, 0].min() - reach, self.win[:, 1].max() + reach
        out = np.array(
            [
                optimize.brentq(
                    lambda x, v=v: self.cdf(scale, x) - v, lo, hi, xtol=1e-14, rtol=1e-14
                )
                for v in np.atleast_1d(q)
            ]
        )
        return special.expit(out) if name in ("pooled", "predictive") else out

    def summary(self) -> dict[str, list[float] | float]:
        out: dict[str, list[float] | float] = {
            name: [float(v) for v in self.quantile(name, PROBS)] for name in NAMES
        }
        out["log_evidence"] = self.log_z
        return out


# ---------------------------------------------------------------------------------------------
# The grid against the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_grid_quantiles_and_evidence_match_the_reference(grids, name: str) -> None:
    post, ref = grids[name], REFERENCE[name]
    for quantity in NAMES:
        got = post.quantile(quantity, PROBS)
        np.testing.assert_allclose(got, ref[quantity], rtol=RTOL, err_msg=quantity)
    assert post.log_evidence == pytest.approx(ref["log_evidence"], abs=EVIDENCE_ATOL)


def test_the_narrow_ridge_is_resolved_where_a_tensor_grid_was_not(grids) -> None:
    # big3 at tau -> 0: mu's conditional SD is ~0.0065 (the 87,429-patient study), against a
    # marginal SD of ~0.2. The whitened grid resolves it with O(1) z nodes per SD.
    post = grids["big3"]
    cols = post.node_weights.sum(axis=0) > 1e-6
    z_sd = np.sqrt(
        (post.node_weights[:, cols] * post.z[:, None] ** 2).sum(0)
        / post.node_weights[:, cols].sum(0)
    )
    assert (post.mu_scale[cols] * z_sd).min() < 0.01  # the ridge carries mass ...
    assert (z_sd / (post.z[1] - post.z[0])).min() > 2  # ... and >= 2 nodes span each SD


@pytest.mark.parametrize("name", ["big3", "mixed3", "k3-0.005-1.5-r9", "homogeneous-huge"])
def test_a_twice_finer_grid_agrees(grids, name: str) -> None:
    post = grids[name]
    fine = posterior_grid(*DATASETS[name], n_mu=2 * post.z.size, n_logtau=2 * post.log_tau.size)
    for quantity in NAMES:
        np.testing.assert_allclose(
            post.quantile(quantity, PROBS), fine.quantile(quantity, PROBS), rtol=1e-5
        )
    assert post.log_evidence == pytest.approx(fine.log_evidence, abs=1e-6)


def test_means_match_the_reference_integrals() -> None:
    # Means are trapezoid sums over the nodes; the reference integrates them per slice.
    y, n = DATASETS["mixed3"]
    post = posterior_grid(y, n)
    assert post.mean("mu") == pytest.approx(-0.47637761, abs=2e-8)
    assert post.mean("tau") == pytest.approx(0.25435886, abs=2e-8)
    assert post.mean("pooled") == pytest.approx(0.38436694, abs=2e-8)


# ---------------------------------------------------------------------------------------------
# The tensor view, the predictive CDF, leave-one-out, speed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["big3", "k3-0.005-1.5-r9"])
def test_the_tensor_view_holds_the_exact_cell_masses(grids, name: str) -> None:
    post = grids[name]
    w, mu = post.weights, post.mu
    assert w.shape == (mu.size, post.log_tau.size)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(w >= 0.0)
    np.testing.assert_allclose(np.diff(mu), mu[1] - mu[0], rtol=1e-9)  # equispaced cells
    h = mu[1] - mu[0]
    cdf = post.mu_cdf(np.append(mu - 0.5 * h, mu[-1] + 0.5 * h))
    np.testing.assert_allclose(np.cumsum(w.sum(axis=1)), cdf[1:], atol=1e-12)
    # log tau cells: equispaced; each slice's mass shared between its two nearest cells, which
    # keeps the mean of log tau
    np.testing.assert_allclose(np.diff(post.log_tau), post.log_tau[1] - post.log_tau[0])
    assert post.log_tau[1] - post.log_tau[0] <= np.diff(post.node_log_tau).min() + 1e-12
    mean_log_tau = np.sum(post.node_weights * post.node_log_tau)
    assert np.sum(w.sum(axis=0) * post.log_tau) == pytest.approx(mean_log_tau, abs=1e-12)
    np.testing.assert_allclose(np.exp(post.log_weights), w)


def test_the_view_gives_draws_with_the_posterior_moments(grids) -> None:
    # As bayes_va.risk.baselines draws (mu, tau): a cell by its mass, uniform within it.
    post = grids["big3"]
    rng = np.random.default_rng(20261130)
    cell = rng.choice(post.weights.size, 400_000, p=post.weights.ravel())
    i, j = np.unravel_index(cell, post.weights.shape)
    mu = post.mu[i] + (post.mu[1] - post.mu[0]) * (rng.random(cell.size) - 0.5)
    log_tau = post.log_tau[j] + (post.log_tau[1] - post.log_tau[0]) * (rng.random(cell.size) - 0.5)
    assert np.median(mu) == pytest.approx(post.quantile("mu", 0.5), abs=0.003)
    assert np.median(np.exp(log_tau)) == pytest.approx(post.quantile("tau", 0.5), rel=0.02)


@pytest.mark.parametrize("name", ["big3", "k3-0.005-1.5-r9", "homogeneous-huge"])
def test_predictive_cdf_inverts_its_quantiles(grids, name: str) -> None:
    post = grids[name]
    q = post.quantile("predictive", PROBS)
    np.testing.assert_allclose(post.predictive_cdf(special.logit(q)), PROBS, atol=1e-10)
    assert post.mu_cdf(post.quantile("mu", 0.5)) == pytest.approx(0.5, abs=1e-12)


def test_leave_one_out_density_equals_the_ratio_of_evidences() -> None:
    y, n = (np.asarray(a) for a in DATASETS["big3"])
    elpd = leave_one_out_elpd(y, n)
    full = posterior_grid(y, n).log_evidence
    ratio = [full - posterior_grid(np.delete(y, i), np.delete(n, i)).log_evidence for i in range(3)]
    np.testing.assert_allclose(elpd, ratio, rtol=0, atol=1e-6)


def test_extreme_grids_stay_fast() -> None:
    # Measured 0.01-0.25 s of CPU each (the revision studies: ~0.05 s); the bound leaves room
    # for a loaded machine without letting a 10x regression through.
    for y, n in DATASETS.values():
        start = time.process_time()
        posterior_grid(y, n)
        assert time.process_time() - start < 2.5


# ---------------------------------------------------------------------------------------------
# The reference itself (slow)
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", DATASETS)
def test_stored_reference_values_are_current(name: str) -> None:
    fresh = Reference(*DATASETS[name]).summary()
    for quantity in NAMES:
        np.testing.assert_allclose(fresh[quantity], REFERENCE[name][quantity], rtol=1e-9)
    assert fresh["log_evidence"] == pytest.approx(REFERENCE[name]["log_evidence"], abs=1e-9)


@pytest.mark.slow
def test_the_reference_is_converged() -> None:
    finer = Reference(*DATASETS["mixed3"], drop=50.0, mu_panels=48, rho_width=0.2).summary()
    for quantity in NAMES:
        np.testing.assert_allclose(finer[quantity], REFERENCE["mixed3"][quantity], rtol=1e-9)


@pytest.mark.slow
def test_grid_matches_the_reference_under_vague_priors() -> None:
    # Priors nearly flat in (mu, tau): the ridge and the tau tail are the likelihood's own.
    prior_mu, prior_tau = stats.norm(0, 100).logpdf, stats.halfnorm(scale=10).logpdf
    y, n = DATASETS["big3"]
    post = posterior_grid(y, n, log_prior_mu=prior_mu, log_prior_tau=prior_tau)
    ref = Reference(y, n, prior_mu, prior_tau)
    for quantity in NAMES:
        np.testing.assert_allclose(
            post.quantile(quantity, PROBS), ref.quantile(quantity, PROBS), rtol=RTOL
        )
    assert post.log_evidence == pytest.approx(ref.log_z, abs=EVIDENCE_ATOL)
