"""Simulation-based calibration (SBC) of a model config (Talts et al. 2018; Säilynoja et al. 2022).

Each replication draws the parameters from the prior, simulates counts with the study sizes of
the config's data (or ``k`` sizes drawn from them), fits the config to the simulated counts with
:func:`bayes_va.fitting.run.fit` and records, for each checked quantity, the rank of the true value
among ``thin`` evenly spaced posterior draws, whether the central 50/80/95 % intervals cover it,
and the fit's diagnostics. If the sampler and the model are right, the ranks are uniform on
``0 .. thin`` (every quantity, every configuration).

Checked quantities (logit-normal family; ``phi`` replaces ``tau`` for the beta-binomial):

* ``mu`` and ``tau``: the hyperparameters;
* ``pooled = expit(mu)`` (same rank as ``mu``: a monotone transform; kept as the headline);
* ``predictive``: a *new* study's proportion, drawn with the truth, against the posterior
  ``predictive`` draws;
* ``p_1``: the first study's proportion, against its posterior (shrunken) proportion.

Verdicts use the ECDF of the ranks (Säilynoja, Bürkner & Vehtari 2022), with an exact p-value
per quantity; the p-values of the checked quantities are adjusted by Holm's step-down method,
and a quantity is miscalibrated when its adjusted p-value is at most the family-wise level
(:data:`~bayes_va.checking.sbc_stats.FAMILY_ALPHA`, 0.01), the shape saying how (bias, too
narrow, too wide). Otherwise there is *no evidence of miscalibration*, reported together with
the smallest miscalibration the run's N would detect with 80 % power
(:func:`~bayes_va.checking.sbc_stats.detectable`). Fits that fail their diagnostics are kept in
every statistic and counted; tasks that raised are counted.

The replications run through :mod:`bayes_va.workflows.executor` (dask), one record per
replication on disk, so a run can be interrupted and resumed, and its results do not depend on
the workers.

Layers: the ECDF test, Holm and power are :mod:`bayes_va.checking.sbc_stats`, the ranks,
coverage and verdicts of a run (:class:`~bayes_va.checking.sbc.SBCSummary`) are
:mod:`bayes_va.checking.sbc`, the figure is :mod:`bayes_va.viz.sbc`, the output files
:mod:`bayes_va.workflows.sbc_outputs`; this module runs the replications. Their names are
re-exported here for callers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from bayes_va.checking.sbc import COVERAGE_LEVELS as COVERAGE_LEVELS
from bayes_va.checking.sbc import DEFAULT_THIN, SBCSummary, rank_and_coverage, summarise
from bayes_va.checking.sbc_stats import BAND_PROB as BAND_PROB
from bayes_va.checking.sbc_stats import FAMILY_ALPHA as FAMILY_ALPHA
from bayes_va.checking.sbc_stats import MISCALIBRATED as MISCALIBRATED
from bayes_va.checking.sbc_stats import N_BAND_SIMULATIONS as N_BAND_SIMULATIONS
from bayes_va.checking.sbc_stats import NO_EVIDENCE as NO_EVIDENCE
from bayes_va.checking.sbc_stats import POWER_TARGET as POWER_TARGET
from bayes_va.checking.sbc_stats import SHAPE_Z as SHAPE_Z
from bayes_va.checking.sbc_stats import ECDFTest as ECDFTest
from bayes_va.checking.sbc_stats import SBCPower as SBCPower
from bayes_va.checking.sbc_stats import detectable as detectable
from bayes_va.checking.sbc_stats import ecdf_test as ecdf_test
from bayes_va.checking.sbc_stats import family_verdict as family_verdict
from bayes_va.checking.sbc_stats import holm as holm
from bayes_va.config.model import Config, PriorsConfig, apply_overrides, load_config
from bayes_va.config.priors import frozen
from bayes_va.core.errors import ConfigError
from bayes_va.data.dataset import build_dataset, from_counts
from bayes_va.engine.kernel import kernel_policy
from bayes_va.fitting.run import fit
from bayes_va.workflows.executor import ClusterSpec, RunReport, TaskStore, run_tasks
from bayes_va.workflows.sbc_outputs import HIST_BAND_PROB as HIST_BAND_PROB
from bayes_va.workflows.sbc_outputs import coverage_markdown as coverage_markdown
from bayes_va.workflows.sbc_outputs import hash_ranks as hash_ranks
from bayes_va.workflows.sbc_outputs import plot as plot
from bayes_va.workflows.sbc_outputs import write_outputs

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "COVERAGE_LEVELS",
    "SBCPower",
    "SBCResult",
    "SBCSpec",
    "SBCSummary",
    "detectable",
    "ecdf_test",
    "family_verdict",
    "holm",
    "replicate",
    "run_sbc",
    "simulate",
    "summarise",
]

# --------------------------------------------------------------------------- one replication


@dataclass(frozen=True)
class SBCSpec:
    """What one replication does (picklable: it travels to the workers).

    Attributes
    ----------
    config : Config
        The model fitted to each simulated dataset (its sampler settings included).
    sizes : tuple of int
        Study sizes of the config's data.
    k : int or None
        Studies per simulated dataset: None uses ``sizes`` as they are; an integer draws that
        many sizes from ``sizes`` with replacement (a new draw per replication).
    thin : int
        Posterior draws the ranks are taken among (ranks run 0..thin).
    simulate_priors : PriorsConfig or None
        Priors the truth is drawn from; None means the fitted config's own (a correct SBC).
        A different one makes a deliberately wrong SBC (e.g. to see that SBC detects it).
    """

    config: Config
    sizes: tuple[int, ...]
    k: int | None = None
    thin: int = DEFAULT_THIN
    simulate_priors: PriorsConfig | None = None

    def __post_init__(self) -> None:
        """Check the spec: intercept-only model, ``k >= 1``, ``thin`` within the draws."""
        cfg = self.config
        if cfg.model.moderators:
            raise ConfigError("SBC supports intercept-only models (model.moderators = [])")
        if self.k is not None and self.k < 1:
            raise ConfigError(f"--k must be >= 1, got {self.k}")
        total = cfg.sampler.chains * cfg.sampler.draws
        if not 1 <= self.thin <= total:
            raise ConfigError(
                f"SBC ranks need thin ({self.thin}) between 1 and chains x draws ({total})"
            )

    @property
    def priors(self) -> PriorsConfig:
        """The priors the truth is drawn from."""
        return self.simulate_priors or self.config.priors

    @property
    def quantities(self) -> tuple[str, ...]:
        """The checked quantities, in table order."""
        spread = "tau" if self.config.model.family == "logit_normal" else "phi"
        return ("mu", spread, "pooled", "predictive", "p_1")

    def identity(self) -> dict[str, Any]:
        """Return what a resumed run must share with the run it completes."""
        return {
            "kind": "sbc",
            "config_hash": self.config.hash(),
            "config": self.config.to_dict(),
            "sizes": list(self.sizes),
            "k": self.k,
            "thin": self.thin,
            "simulate_priors": None
            if self.simulate_priors is None
            else Config("x", priors=self.simulate_priors).to_dict()["priors"],
        }


def simulate(
    spec: SBCSpec, rng: np.random.Generator
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Draw the truth from the prior and counts given it.

    Returns
    -------
    truth : dict
        True values of :attr:`SBCSpec.quantities`.
    y, n : numpy.ndarray
        Simulated events and study sizes.
    """
    priors = spec.priors
    sizes = np.asarray(spec.sizes, dtype=np.int64)
    n = sizes if spec.k is None else rng.choice(sizes, size=spec.k, replace=True)
    mu = float(frozen(priors.mu).rvs(random_state=rng))
    if spec.config.model.family == "logit_normal":
        tau = float(frozen(priors.tau).rvs(random_state=rng))
        theta = rng.normal(mu, tau, size=n.size)
        p = special.expit(theta)
        predictive = float(special.expit(mu + tau * rng.standard_normal()))
        truth = {"mu": mu, "tau": tau}
    else:
        phi = float(frozen(priors.phi).rvs(random_state=rng))
        m = special.expit(mu)
        p = rng.beta(m * phi, (1.0 - m) * phi, size=n.size)
        predictive = float(rng.beta(m * phi, (1.0 - m) * phi))
        truth = {"mu": mu, "phi": phi}
    y = rng.binomial(n, p)
    truth.update(pooled=float(special.expit(mu)), predictive=predictive, p_1=float(p[0]))
    return truth, y, n


def _fit_seed(seed: int) -> int:
    """Derive the sampler seed of a replication (32 bits: every backend accepts it)."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1, dtype=np.uint32)[0])


def _draws(tree: Any, name: str) -> np.ndarray:
    """Posterior draws of a checked quantity, chain-major and flat."""
    post = tree["posterior"]
    if name == "p_1":
        return post["p"].isel(study=0).values.ravel()
    return post[name].values.ravel()


def replicate(spec: SBCSpec, index: int, seed: int) -> dict[str, Any]:
    """One SBC replication: simulate, fit, rank (module-level: a dask task).

    Parameters
    ----------
    spec : SBCSpec
        What to simulate and fit.
    index : int
        Replication number (recorded; the randomness comes from ``seed`` alone).
    seed : int
        The replication's seed: it fixes the truth, the data and the sampler.

    Returns
    -------
    dict
        ``truth``, ``rank`` (per quantity, 0..thin), ``covered`` (per quantity and level),
        ``diagnostics`` and ``timings`` of the fit, ``k`` and ``data_hash``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    truth, y, n = simulate(spec, rng)
    data = from_counts(y, n)
    cfg = spec.config.replace(**{"sampler.seed": _fit_seed(seed)})
    # A worker fits this structure hundreds of times: the compiled kernel pays for itself at
    # once (same draws as the cached one, engine/kernel.py).
    with kernel_policy("compiled"):
        result = fit(cfg, data=data, reference=False)  # ranks need no quadrature reference
    ranks, covered = {}, {}
    for name in spec.quantities:
        ranks[name], covered[name] = rank_and_coverage(
            _draws(result.tree, name), truth[name], spec.thin
        )
    d = result.diagnostics.to_dict()  # the record stores diagnostics.json's form
    return {
        "truth": truth,
        "rank": ranks,
        "covered": covered,
        "k": data.k,
        "data_hash": data.hash(),
        "fit_seed": cfg.sampler.seed,
        "diagnostics": {
            key: d[key]
            for key in (
                "ok",
                "max_rhat",
                "min_ess_bulk",
                "min_ess_tail",
                "divergences",
                "min_bfmi",
                "failures",
            )
        },
        "timings": d["timings"],
    }


# --------------------------------------------------------------------------- the whole run


@dataclass(frozen=True)
class SBCResult:
    """A finished (or partly finished) SBC run: the summary, the executor's report, the folder."""

    spec: SBCSpec
    summary: SBCSummary
    report: RunReport
    out_dir: Path

    def text(self) -> str:
        """Return a short report for the terminal."""
        s, rep = self.summary, self.report
        n_run = len(s.ranks)
        fits_s = (len(rep.ran) / rep.wall_seconds) if rep.wall_seconds and rep.ran else 0.0
        lines = [
            f"SBC of {self.spec.config.name}: {n_run} replication(s) fitted, "
            f"{len(s.errors)} raised, {s.n_failed_diagnostics} failed diagnostics (kept), "
            f"ranks among {s.thin} draws; {len(rep.ran)} run now in {rep.wall_seconds:.1f} s "
            f"({fits_s:.2f} fits/s, {rep.where})",
        ]
        for r in s.verdicts.itertuples():
            cov = s.coverage[s.coverage["quantity"] == r.quantity]
            cov_txt = ", ".join(
                f"{100 * c.level:g}%: {100 * c.covered:.1f}" for c in cov.itertuples()
            )
            # the power note is the same for every quantity: printed once, in the last line
            verdict = r.verdict if r.miscalibrated else r.verdict.split(" (", 1)[0]
            lines.append(
                f"  {r.quantity:<11} p = {r.ecdf_p:.3f} (Holm {r.ecdf_p_holm:.3f})  "
                f"coverage {cov_txt}  -> {verdict}"
            )
        lines.append(f"  Verdict: {s.verdict()}")
        if rep.lost:
            lines.append(
                f"  {len(rep.lost)} task(s) lost (e.g. killed workers): rerun with "
                "--resume to complete them"
            )
        return "\n".join(lines)


def _config_sizes(cfg: Config) -> tuple[int, ...]:
    data = build_dataset(cfg.data, cfg.data_dir)
    return tuple(int(v) for v in data.n)


def run_sbc(
    config: str | Path | Config,
    replications: int,
    out_dir: str | Path,
    *,
    k: int | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    thin: int = DEFAULT_THIN,
    simulate_priors: PriorsConfig | None = None,
    seed: int | None = None,
    cluster: ClusterSpec | None = None,
    client: Client | None = None,
    resume: bool = False,
    progress: bool = True,
    write: bool = True,
) -> SBCResult:
    """Run (or resume) an SBC study of a config and write its outputs.

    Parameters
    ----------
    config : path or Config
        The model to calibrate; its data's study sizes are the simulation's.
    replications : int
        Number of replications (a resumed run may ask for more: it extends).
    out_dir : path
        Run folder: ``manifest.json``, ``tasks/`` (one record per replication), then
        ``sbc_ranks.csv``, ``sbc_coverage.csv``/``.md``, ``sbc_summary.json``, ``sbc.png``/``.svg``.
    k : int, optional
        Studies per simulated dataset, sizes drawn from the config's (default: its own sizes).
    overrides : dict or list of "key=value", optional
        Config overrides (e.g. shorter chains).
    thin : int
        Ranks are taken among this many posterior draws.
    simulate_priors : PriorsConfig, optional
        Draw the truth from other priors than the fitted ones (a deliberately wrong SBC).
    seed : int, optional
        Base seed of the run (default: the config's ``sampler.seed``).
    cluster, client, resume, progress
        See :func:`bayes_va.workflows.executor.run_tasks`.
    write : bool
        Write the summary files and figure.

    Returns
    -------
    SBCResult
    """
    if isinstance(config, Config):
        cfg = apply_overrides(config, overrides)
    else:
        cfg = load_config(config, overrides)
    if replications < 1:
        raise ConfigError(f"--replications must be >= 1, got {replications}")
    spec = SBCSpec(cfg, _config_sizes(cfg), k, thin, simulate_priors)
    base_seed = cfg.sampler.seed if seed is None else seed
    report = run_tasks(
        functools.partial(replicate, spec),
        replications,
        out_dir,
        base_seed=base_seed,
        manifest=spec.identity(),
        cluster=cluster,
        client=client,
        resume=resume,
        progress=progress,
        desc="SBC",
    )
    records = [r for r in TaskStore(out_dir).records() if r["index"] < replications]
    summary = summarise(records, spec.quantities, thin)
    result = SBCResult(spec, summary, report, Path(out_dir))
    if write:
        write_outputs(result)
    return result
