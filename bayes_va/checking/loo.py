"""Leave-one-study-out cross-validation that is right for study-level random effects.

With a study-specific effect θ_i, the pointwise log-likelihood that PyMC would store,
log Binom(y_i | θ_i) (``y_conditional`` in the log_likelihood group), makes PSIS-LOO unreliable:
leaving study i out moves θ_i from its data-pinned posterior back to the population N(μ, τ), far
wider, and the importance ratios are heavy-tailed. For Gaussian proposal N(0, s_post²) and
target N(0, s_loo²) their Pareto shape is k = 1 - s_post² / s_loo² (Vehtari et al. 2024, JMLR
25(72), sec. 3), which is > 0.7 for every study here whose data say more about θ_i than τ does.

PSIS-LOO on the *marginal* log-likelihood log p(y_i | μ, τ) = log ∫ Binom(y_i | θ) N(θ | μ, τ) dθ
(``y``, integrated by adaptive Gauss–Hermite in :mod:`bayes_va.engine.derived`) estimates the same
quantity, log p(y_i | y_-i), but its importance ratios involve only (μ, τ), which one study moves
little; its Pareto k values are small. For the intercept-only logit-normal model the exact
leave-one-study-out value is available from the quadrature engine
(:func:`bayes_va.numerics.exact.leave_one_out_elpd`) and is reported beside the PSIS estimate.

:func:`marginal_loo` returns a :class:`LooResult` whose ``reliable`` says whether every Pareto k
is below ArviZ's threshold; an unreliable result emits :class:`LooReliabilityWarning` naming the
studies and what to do, and every table built from it says so in words.
:func:`replace_bad_k` replaces the bad-k values by exact ones with :func:`arviz_stats.reloo`
(a :class:`~arviz_stats.SamplingWrapper` whose held-out log-likelihood is the marginal one):
the quadrature's value where it applies, else a refit on the other studies.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats import SamplingWrapper, reloo
from scipy.special import expit
from scipy.stats import betabinom

from bayes_va.config.model import Prior
from bayes_va.config.priors import log_density
from bayes_va.data.dataset import StudyData, build_dataset
from bayes_va.fitting.run import fit
from bayes_va.numerics.exact import leave_one_out_elpd, log_marginal_likelihood

if TYPE_CHECKING:
    from arviz_stats.utils import ELPDDataLOO

    from bayes_va.config.model import Config
    from bayes_va.data.dataset import StudyData
    from bayes_va.fitting.results import FitResult

__all__ = [
    "LooReliabilityWarning",
    "LooResult",
    "exact_loso",
    "marginal_loo",
    "pareto_k_counts",
    "refit_loso",
    "replace_bad_k",
]

#: The log-likelihood variables a fit stores (see :mod:`bayes_va.engine.derived`).
MARGINAL, CONDITIONAL = "y", "y_conditional"
#: Pareto k above which PSIS is unreliable for any sample size (Vehtari et al. 2024, JMLR
#: 25(72)); ArviZ uses ``min(1 - 1 / log10(S), 0.7)`` for S draws, which we follow.
K_MAX = 0.7
#: ArviZ's own bad-k warning; replaced here by :class:`LooReliabilityWarning`, which names studies.
_ARVIZ_K_WARNING = "Estimated shape parameter of Pareto distribution"


class LooReliabilityWarning(UserWarning):
    """PSIS-LOO Pareto k values are too high for the estimate to be trusted."""


@dataclass(frozen=True)
class LooResult:
    """Leave-one-study-out cross-validation of one fit.

    Attributes
    ----------
    name : str
        The model's name (config name).
    var_name : str
        The log-likelihood used: ``"y"`` (marginal, the right one) or ``"y_conditional"``.
    elpd, se, p : float
        PSIS-LOO elpd, its standard error over studies and the effective number of parameters.
    mcse : float
        Monte-Carlo standard error of ``elpd`` (delta method; accounts for the correlation of
        the per-study errors and for the autocorrelation of the chains).
    good_k : float
        The Pareto k threshold for this number of draws.
    studies : pandas.DataFrame
        One row per study: ``study``, ``elpd_psis``, ``mcse``, ``pareto_k``, ``k_ok``, ``p_loo``
        and, where an exact reference exists, ``elpd_exact`` and ``psis_minus_exact``.
    elpd_data : ELPDDataLOO
        ArviZ's result (pointwise), for :func:`arviz.compare`.
    exact_elpd : float or None
        Exact leave-one-study-out elpd (intercept-only logit-normal models only).
    replaced : tuple of str
        Studies whose bad-k PSIS value was replaced by an exact one (:func:`replace_bad_k`).
    tree : xarray.DataTree or None
        The fit's tree (its ``log_likelihood``), for :func:`arviz_stats.reloo`.
    """

    name: str
    var_name: str
    elpd: float
    se: float
    p: float
    mcse: float
    good_k: float
    studies: pd.DataFrame
    elpd_data: Any = field(repr=False)
    exact_elpd: float | None = None
    replaced: tuple[str, ...] = ()
    tree: xr.DataTree | None = field(default=None, repr=False)

    @property
    def reliable(self) -> bool:
        """Whether every Pareto k is at or below ``good_k`` (or its study was replaced)."""
        return not self.bad_studies

    @property
    def bad_studies(self) -> tuple[str, ...]:
        """Studies whose Pareto k exceeds ``good_k`` and whose value was not replaced."""
        bad = self.studies.loc[~self.studies["k_ok"], "study"].astype(str)
        return tuple(s for s in bad if s not in self.replaced)

    @property
    def max_k(self) -> float:
        """The largest Pareto k."""
        return float(self.studies["pareto_k"].max())

    def caveat(self) -> str | None:
        """Return a plain-language warning when the estimate is unreliable (None when fine)."""
        if self.reliable:
            return None
        bad = self.bad_studies
        text = (
            f"{self.name}: PSIS-LOO is NOT reliable: Pareto k > {self.good_k:.2f} for "
            f"{len(bad)} of {len(self.studies)} studies ({', '.join(bad)}; max k "
            f"{self.max_k:.2f}), so its elpd may be far off."
        )
        if self.var_name == CONDITIONAL:
            return text + (
                " This is the conditional log-likelihood log p(y_i | theta_i): leaving a study "
                "out moves its theta_i too far for importance sampling. Use the marginal "
                "log-likelihood 'y' (the default)."
            )
        if self.exact_elpd is not None:
            return text + f" The exact leave-one-study-out elpd is {self.exact_elpd:.2f}."
        return text + (
            " Do not rank models on it: refit without each flagged study (exact LOSO), or, if k "
            "is only just above the threshold, rerun with more draws."
        )

    def replacement_note(self) -> str | None:
        """Which studies' PSIS values were replaced by exact ones, and how (None if none)."""
        if not self.replaced:
            return None
        how = sorted(set(self.studies.set_index("study").loc[list(self.replaced), "method"]))
        return (
            f"{self.name}: Pareto k was too high for {', '.join(self.replaced)}; their PSIS "
            f"values were replaced by exact leave-one-study-out values ({', '.join(how)})."
        )

    def to_dict(self) -> dict[str, Any]:
        """Unrounded numbers, JSON-ready (NaN where a value does not apply)."""
        return {
            "name": self.name,
            "var_name": self.var_name,
            "elpd": self.elpd,
            "se": self.se,
            "p": self.p,
            "mcse": self.mcse,
            "good_k": self.good_k,
            "reliable": self.reliable,
            "max_k": self.max_k,
            "pareto_k_counts": pareto_k_counts(self.studies["pareto_k"].to_numpy(), self.good_k),
            "exact_elpd": self.exact_elpd,
            "replaced": list(self.replaced),
            "replacement_note": self.replacement_note(),
            "caveat": self.caveat(),
            "studies": self.studies.to_dict(orient="records"),
        }


def pareto_k_counts(k: np.ndarray, good_k: float) -> dict[str, int]:
    """How many Pareto k values are good (<= good_k), bad (<= 1) and very bad (> 1)."""
    k = np.asarray(k, dtype=float)
    return {
        "good": int(np.sum(k <= good_k)),
        "bad": int(np.sum((k > good_k) & (k <= 1.0))),
        "very_bad": int(np.sum(k > 1.0)),
    }


def _tree_of(obj: FitResult | xr.DataTree) -> xr.DataTree:
    return obj if isinstance(obj, xr.DataTree) else obj.tree


def exact_loso(result: FitResult) -> np.ndarray | None:
    """Exact leave-one-study-out log predictive densities, where the quadrature engine applies.

    Parameters
    ----------
    result : FitResult
        A fit. The exact reference exists for the intercept-only logit-normal model (any
        priors the config allows for μ and τ).

    Returns
    -------
    ndarray, shape (k,), or None
        ``log p(y_i | y_-i)`` per study, or None for other models.
    """
    cfg: Config = result.config
    if cfg.model.family != "logit_normal" or cfg.model.moderators:
        return None
    return _exact_loso_cached(
        tuple(int(v) for v in result.data.y),
        tuple(int(v) for v in result.data.n),
        cfg.priors.mu.dist,
        tuple(sorted(cfg.priors.mu.params.items())),
        cfg.priors.tau.dist,
        tuple(sorted(cfg.priors.tau.params.items())),
    ).copy()


@functools.lru_cache(maxsize=32)
def _exact_loso_cached(
    y: tuple[int, ...],
    n: tuple[int, ...],
    mu_dist: str,
    mu_params: tuple[tuple[str, float], ...],
    tau_dist: str,
    tau_params: tuple[tuple[str, float], ...],
) -> np.ndarray:
    """Compute exact LOSO once per data and priors (deterministic, 0.5-2 s)."""
    return leave_one_out_elpd(
        np.array(y),
        np.array(n),
        log_prior_mu=log_density(Prior(mu_dist, dict(mu_params))),
        log_prior_tau=log_density(Prior(tau_dist, dict(tau_params))),
    )


def _psis_mcse(
    log_lik: xr.DataArray, log_weights: xr.DataArray, elpd_i: np.ndarray
) -> tuple[np.ndarray, float]:
    """Compute the Monte-Carlo SEs of the PSIS elpd_i and of their sum (delta method).

    ArviZ 1.x reports no Monte-Carlo error of a LOO elpd, hence this.

    With smoothed weights normalised to mean 1, w_s, and likelihood ratios
    r_s = p(y_i | draw s) / p(y_i | y_-i), the relative error of the self-normalised estimate is
    ≈ mean_s h_s with h_s = w_s (r_s - 1) (as in R ``loo``'s ``mcse_elpd``), which is also the
    error of log p(y_i | y_-i). Its SE is sd(h) / sqrt(ESS(h)), the ESS accounting for the
    autocorrelation of the chains. The errors of different studies share the (μ, τ) draws and
    are correlated, so the SE of the sum uses h summed over studies, not a sum of variances.
    """
    sample = ("chain", "draw")
    n_draws = log_lik.sizes["chain"] * log_lik.sizes["draw"]
    lw = log_weights.transpose("study", *sample).values
    lw = lw - _logsumexp2(lw, axis=(1, 2))[:, None, None]
    with np.errstate(over="ignore", invalid="ignore"):  # inf only where k is hopeless anyway
        ratio = np.exp(log_lik.transpose("study", *sample).values - elpd_i[:, None, None])
        h = xr.DataArray(n_draws * np.exp(lw) * (ratio - 1.0), dims=("study", *sample))
    h_total = h.sum("study")

    def mcse(x: xr.DataArray) -> np.ndarray:
        ess = x.azstats.ess(sample_dims=sample, method="mean").values
        return np.sqrt(x.var(sample).values / np.clip(ess, 1.0, None))

    return mcse(h), float(mcse(h_total))


def _logsumexp2(a: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def marginal_loo(
    result: FitResult | xr.DataTree,
    *,
    var_name: str = MARGINAL,
    name: str | None = None,
    exact: bool | np.ndarray | None = None,
    warn: bool = True,
) -> LooResult:
    """PSIS-LOO over studies on the marginal log-likelihood, with Pareto k per study.

    Parameters
    ----------
    result : FitResult or xarray.DataTree
        A fit (its ``log_likelihood`` group holds ``y`` and, for logit-normal models,
        ``y_conditional``).
    var_name : {"y", "y_conditional"}
        The pointwise log-likelihood. ``"y_conditional"`` exists to show why it must not be
        used: its Pareto k values are bad for most studies.
    name : str, optional
        Label; defaults to the config name.
    exact : bool or ndarray, optional
        Exact leave-one-study-out values to set beside the PSIS ones: an array, True (compute
        with :func:`exact_loso`), False (skip) or None (compute when the model allows it and
        ``result`` is a FitResult).
    warn : bool
        Emit :class:`LooReliabilityWarning` when a Pareto k exceeds the threshold.

    Returns
    -------
    LooResult
    """
    tree = _tree_of(result)
    if name is None:
        name = (tree.name or "model") if isinstance(result, xr.DataTree) else result.config.name
    if var_name not in tree["log_likelihood"].data_vars:
        have = ", ".join(map(str, tree["log_likelihood"].data_vars))
        raise ValueError(f"{name}: no log-likelihood {var_name!r} (have: {have})")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ARVIZ_K_WARNING, category=UserWarning)
        loo_data: ELPDDataLOO = az.loo(tree, var_name=var_name, pointwise=True)
    study = [str(s) for s in tree["log_likelihood"].coords["study"].values]
    elpd_i = loo_data.elpd_i.transpose("study").values
    k = loo_data.pareto_k.transpose("study").values
    log_lik = tree["log_likelihood"][var_name].transpose("study", "chain", "draw")
    mcse_i, mcse_total = _psis_mcse(log_lik, loo_data.log_weights, elpd_i)
    flat = log_lik.values.reshape(len(study), -1)
    lpd_i = _logsumexp2(flat, axis=(1,)) - np.log(flat.shape[1])
    table = pd.DataFrame(
        {
            "study": study,
            "elpd_psis": elpd_i,
            "mcse": mcse_i,
            "pareto_k": k,
            "k_ok": k <= loo_data.good_k,
            # effective parameters per study: log mean posterior likelihood minus elpd_i
            "p_loo": lpd_i - elpd_i,
        }
    )
    exact_values: np.ndarray | None = None
    if isinstance(exact, np.ndarray):
        exact_values = exact
    elif exact is None or exact is True:
        if isinstance(result, xr.DataTree):
            if exact is True:
                raise ValueError("exact=True needs a FitResult (its config has the priors)")
        else:
            exact_values = exact_loso(result)
            if exact is True and exact_values is None:
                raise ValueError(f"{name}: no exact leave-one-study-out for this model")
    if exact_values is not None:
        table["elpd_exact"] = np.asarray(exact_values, dtype=float)
        table["psis_minus_exact"] = table["elpd_psis"] - table["elpd_exact"]
    out = LooResult(
        name=name,
        var_name=var_name,
        elpd=float(loo_data.elpd),
        se=float(loo_data.se),
        p=float(loo_data.p),
        mcse=mcse_total,
        good_k=float(loo_data.good_k),
        studies=table,
        elpd_data=loo_data,
        exact_elpd=None if exact_values is None else float(np.sum(exact_values)),
        tree=tree,
    )
    if warn and not out.reliable:
        warnings.warn(str(out.caveat()), LooReliabilityWarning, stacklevel=2)
    return out


# --------------------------------------------------------------------------- bad k: exact values


def _full_data(result: FitResult) -> StudyData:
    """Return the fit's studies with their moderator columns (rebuilt from the config if needed)."""
    data = result.data
    columns = [m[4:] if m.startswith("log_") else m for m in result.config.model.moderators]
    if all(c in data.table.columns for c in columns):
        return data
    rebuilt = build_dataset(result.config.data, result.config.data_dir)
    if rebuilt.study != data.study or not (
        np.array_equal(rebuilt.y, data.y) and np.array_equal(rebuilt.n, data.n)
    ):
        raise ValueError(
            f"{result.config.name}: cannot rebuild the fitted data from its config (run from the "
            "project root, with the same data files)"
        )
    return rebuilt


class _LosoWrapper(SamplingWrapper):
    """Leave-one-*study*-out for :func:`arviz_stats.reloo`: refit on k - 1 studies, predict one.

    The held-out study's log-likelihood is the marginal one, ``log p(y_i | mu, tau, x_i)`` with
    θ_i integrated out (like the ``y`` the PSIS values use), over the draws of
    :func:`bayes_va.fitting.run.fit` on the other studies (same config and seed). With ``exact``
    values (the quadrature engine's exact leave-one-study-out elpd) no refit is run: the value
    is returned as a single draw, which ``reloo`` averages to itself. Per study it records the
    refit's Monte-Carlo error and diagnostics (``refits``), which ArviZ does not keep.
    """

    def __init__(
        self,
        tree: xr.DataTree,
        result: FitResult | None = None,
        exact: pd.Series | None = None,
    ) -> None:
        if exact is None and result is None:
            raise ValueError("refits need the FitResult")
        super().__init__(model=None if result is None else result.config, idata_orig=tree)
        self.result = result
        self.exact = exact
        self.study = [str(s) for s in tree["log_likelihood"].coords["study"].values]
        # refits need every study's row (moderators); the exact route only the ids
        self.data = _full_data(result) if result is not None and exact is None else None
        self.refits: dict[str, dict[str, Any]] = {}

    def sel_observations(self, idx: int) -> tuple[StudyData | None, tuple[int, str]]:
        """Return the other studies (None on the exact route) and ``(index, study id)``."""
        i = int(idx)
        sid = self.study[i]
        if self.data is None:
            return None, (i, sid)
        keep = np.arange(self.data.k) != i
        table = self.data.table.reset_index(drop=True)
        subset = StudyData(
            tuple(s for s, k in zip(self.data.study, keep, strict=True) if k),
            self.data.y[keep],
            self.data.n[keep],
            table[keep].reset_index(drop=True),
            (*self.data.steps, f"left out {sid}"),
        )
        return subset, (i, sid)

    def sample(self, modified_observed_data: StudyData | None) -> FitResult | None:
        """Fit the config to the other studies (nothing on the exact route)."""
        if modified_observed_data is None:
            return None
        if self.result is None:  # pragma: no cover - __init__ requires it for refits
            raise ValueError("refits need the FitResult")
        return fit(self.result.config, data=modified_observed_data)

    def get_inference_data(self, fitted_model: FitResult | None) -> FitResult | None:
        """Return the refit itself: its config is needed besides its draws."""
        return fitted_model

    def log_likelihood__i(
        self, excluded_obs: tuple[int, str], idata__i: FitResult | None
    ) -> xr.DataArray:
        """Return ``log p(y_i | draw)`` over the refit's draws (dims ``chain``, ``draw``)."""
        i, sid = excluded_obs
        if idata__i is None or self.data is None:  # the exact route: no refit
            exact = self.exact if self.exact is not None else pd.Series(dtype=float)
            return xr.DataArray([[float(exact.loc[sid])]], dims=("chain", "draw"))
        row = self.data.table.reset_index(drop=True).iloc[i]
        ll = _held_out_loglik(idata__i, row, int(self.data.y[i]), int(self.data.n[i]))
        ll = ll.reshape(idata__i.config.sampler.chains, -1)
        self.refits[sid] = {"mcse_refit": _refit_mcse(ll), "refit_ok": idata__i.ok}
        return xr.DataArray(ll, dims=("chain", "draw"))


def _held_out_loglik(refit: FitResult, row: pd.Series, y: int, n: int) -> np.ndarray:
    """Compute log p(y_i | draw) under a refit without study i (θ_i integrated out), flat."""
    values = {}
    for m in refit.config.model.moderators:
        values[m] = row[m[4:] if m.startswith("log_") else m]
    eta = refit.linear_predictor(values).transpose("chain", "draw").values.ravel()
    post = refit.tree["posterior"]
    if refit.config.model.family == "logit_normal":
        tau = post["tau"].transpose("chain", "draw").values.ravel()
        return log_marginal_likelihood([y], [n], eta, tau)[:, 0]
    phi = post["phi"].transpose("chain", "draw").values.ravel()
    return betabinom.logpmf(y, n, expit(eta) * phi, (1.0 - expit(eta)) * phi)


def _refit_mcse(ll: np.ndarray) -> float:
    """Monte-Carlo SE of ``log mean exp(ll)`` over (chain, draw) draws (delta method, ESS).

    Not in ArviZ (``reloo`` keeps no error for the values it refits).
    """
    rel = np.exp(ll - ll.max())
    ess = float(
        xr.DataArray(rel, dims=("chain", "draw"))
        .azstats.ess(sample_dims=("chain", "draw"), method="mean")
        .values
    )
    return float(rel.std(ddof=1) / rel.mean() / np.sqrt(max(ess, 1.0)))


def refit_loso(result: FitResult, studies: Sequence[str]) -> pd.DataFrame:
    """Exact leave-one-study-out by MCMC: refit without each study and predict it.

    ``log p(y_i | y_-i) = log mean_s p(y_i | μ_s, τ_s, x_i)`` over the draws of a fit to the
    other studies (θ_i integrated out as in ``y``), same config and seed. Each refit costs a
    fit (the compiled model for k - 1 studies is reused after the first). The same refits as
    :func:`replace_bad_k` (one :class:`arviz_stats.SamplingWrapper`), for chosen studies.

    Parameters
    ----------
    result : FitResult
        The fit on all studies.
    studies : sequence of str
        Studies to leave out.

    Returns
    -------
    pandas.DataFrame
        ``study``, ``elpd_refit``, ``mcse_refit`` and ``refit_ok`` (the refit's diagnostics).
    """
    wrapper = _LosoWrapper(result.tree, result)
    rows = []
    for sid in studies:
        if sid not in wrapper.study:
            raise ValueError(f"{result.config.name}: no study {sid!r}")
        subset, excluded = wrapper.sel_observations(wrapper.study.index(sid))
        refit = wrapper.get_inference_data(wrapper.sample(subset))
        ll = wrapper.log_likelihood__i(excluded, refit).values.ravel()
        top = ll.max()
        rows.append(
            {"study": sid, "elpd_refit": float(top + np.log(np.exp(ll - top).mean()))}
            | wrapper.refits[sid]
        )
    return pd.DataFrame(rows, columns=["study", "elpd_refit", "mcse_refit", "refit_ok"])


def replace_bad_k(loo: LooResult, result: FitResult | None = None) -> LooResult:
    """Replace the PSIS values of studies with bad Pareto k by exact leave-one-study-out ones.

    :func:`arviz_stats.reloo` with a leave-one-study-out :class:`~arviz_stats.SamplingWrapper`:
    exact values come from the quadrature engine where it applies (``loo.studies`` has
    ``elpd_exact``; no refit), otherwise from a refit without the study (needs ``result``).
    ArviZ then updates ``elpd``, ``se`` (``ddof = 1``), ``p`` and the pointwise values, and
    sets the replaced studies' Pareto k to 0 (their log weights to NaN) in ``elpd_data`` (for
    ``az.compare``); ``studies`` keeps the PSIS Pareto k, gets the new ``elpd_psis`` and
    ``p_loo`` of the replaced studies, ``method`` and ``elpd_psis_original``, and for refits
    ``mcse_refit`` and ``refit_ok`` (see :func:`refit_loso`). The returned result has
    ``replaced`` set. Its ``mcse`` stays that of the PSIS estimate (ArviZ has no elpd MCSE): it
    counts the replaced studies' PSIS error, which the exact values no longer carry.

    Parameters
    ----------
    loo : LooResult
        From :func:`marginal_loo` on the marginal log-likelihood.
    result : FitResult, optional
        The fit, needed when refits are required.

    Returns
    -------
    LooResult
        ``loo`` itself when every k is good.
    """
    if loo.reliable:
        return loo
    if loo.var_name != MARGINAL:
        raise ValueError("replace bad k on the marginal log-likelihood only")
    bad = list(loo.bad_studies)
    table = loo.studies.copy()
    table["method"] = np.where(table["k_ok"], "psis", "")
    exact = table.set_index("study")["elpd_exact"] if "elpd_exact" in table else None
    if exact is None and result is None:
        raise ValueError(f"{loo.name}: refits need the FitResult")
    tree = loo.tree if loo.tree is not None else None if result is None else result.tree
    if tree is None:
        raise ValueError(f"{loo.name}: no log-likelihood to refit against (pass the FitResult)")
    how = "refit" if exact is None else "quadrature"
    wrapper = _LosoWrapper(tree, result, exact)
    new_data = reloo(
        wrapper, loo_orig=loo.elpd_data, var_name=MARGINAL, k_threshold=loo.good_k, pointwise=True
    )
    mask = ~table["k_ok"].to_numpy()
    table.loc[mask, "elpd_psis_original"] = table.loc[mask, "elpd_psis"]
    table["elpd_psis"] = new_data.elpd_i.transpose("study").values
    table.loc[mask, "p_loo"] = new_data.p_loo_i.transpose("study").values[mask]
    table.loc[mask, "method"] = how
    if wrapper.refits:
        extra = pd.DataFrame.from_dict(wrapper.refits, orient="index")
        table = table.join(extra, on="study")
    return dataclasses.replace(
        loo,
        elpd=float(new_data.elpd),
        se=float(new_data.se),
        p=float(new_data.p),
        studies=table,
        elpd_data=new_data,
        replaced=tuple(bad),
    )
