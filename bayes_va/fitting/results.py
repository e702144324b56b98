"""The result of a fit, and its files on disk.

A results folder ``results/<config name>/`` (``bayes-va fit`` with ``--set`` overrides:
``results/<config name>+<8 hex digits of the resolved config's hash>/``) holds:

``posterior.nc``       the DataTree (posterior, posterior_predictive, log_likelihood,
                       observed_data, sample_stats, prior, prior_predictive) as netCDF
``summary.csv``        ArviZ summary of μ, τ, pooled and predictive proportions (unrounded)
``studies.csv``        observed and shrunken study proportions, predictive intervals, PPC p-values
``estimates.json``     headline numbers: Bayesian, exact quadrature reference, classical GLMM
``diagnostics.json``   R̂, ESS, divergences, E-BFMI, MCSE, thresholds, verdict, timings
``provenance.json``    resolved config and its hash, data hash, package versions, seed, and the
                       overrides as given (``overrides``, only when there were any)

Every file is written atomically and the folder is swapped into place in one rename.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayes_va.config.model import Config, find_root, from_dict
from bayes_va.core import atomic
from bayes_va.core.errors import ResultsFolderError
from bayes_va.data.dataset import StudyData
from bayes_va.data.moderators import Design
from bayes_va.fitting.diagnostics import Diagnostics
from bayes_va.fitting.estimates import Estimates

SUMMARY_VARS = ("mu", "tau", "phi", "beta", "pooled", "predictive")
#: Files :func:`load_result` reads.
RESULT_FILES = ("posterior.nc", "estimates.json", "diagnostics.json", "provenance.json")


@dataclass(frozen=True)
class FitResult:
    """Everything one fit produced.

    Attributes
    ----------
    config : Config
        The resolved configuration.
    data : StudyData
        The counts the model saw.
    tree_source : xarray.DataTree or Path
        The posterior draws and derived groups, or the ``posterior.nc`` they are read from
        the first time :attr:`tree` is used (:func:`load_result`: opening a netCDF file with its
        seven groups costs about 0.2 s, and most readers of a stored fit, such as the paper's
        tables, need only its JSON summaries).
    estimates : Estimates
        Headline summaries, the quadrature reference, the classical GLMM, moderator effects
        and the per-study table (:class:`bayes_va.fitting.estimates.Estimates`).
    diagnostics : Diagnostics
        Convergence against the config's thresholds, with ``timings``
        (:class:`bayes_va.fitting.diagnostics.Diagnostics`).
    provenance : dict
        See :func:`bayes_va.fitting.provenance.provenance_record` (JSON as stored).
    """

    config: Config
    data: StudyData
    tree_source: xr.DataTree | Path
    estimates: Estimates
    diagnostics: Diagnostics
    provenance: dict[str, Any]

    @functools.cached_property
    def tree(self) -> xr.DataTree:
        """Posterior draws and the derived groups (read from disk on first use)."""
        if isinstance(self.tree_source, xr.DataTree):
            return self.tree_source
        return xr.open_datatree(self.tree_source, engine="h5netcdf").load()

    @property
    def ok(self) -> bool:
        """Whether every diagnostic met its threshold."""
        return bool(self.diagnostics.ok)

    def summary(self) -> pd.DataFrame:
        """Return the ArviZ summary of the headline variables (95 % equal-tailed, unrounded)."""
        return az.summary(
            self.tree,
            var_names=[v for v in SUMMARY_VARS if v in self.tree["posterior"].data_vars],
            round_to="none",
            ci_prob=self.estimates.ci_prob,
            ci_kind="eti",
        )

    def linear_predictor(self, moderators: dict[str, str | float] | None = None) -> xr.DataArray:
        """Draw the logit proportion of a *new* study's population mean at moderator values.

        Dims ``chain``, ``draw``: ``mu + x' beta``. Without moderators this is ``mu``.
        Continuous ``log_`` moderators take the raw value (``{"log_followup_months": 12}``).
        """
        post = self.tree["posterior"].to_dataset()
        if "constant_data" not in self.tree.children:
            if moderators:
                raise ValueError(f"{self.config.name} has no moderators")
            return post["mu"]
        cd = self.tree["constant_data"].to_dataset()
        design = Design.from_json(cd.attrs["design"], cd["X"].values)
        row = xr.DataArray(
            design.row(moderators or {}), dims="coef", coords={"coef": list(design.coef_names)}
        )
        return post["mu"] + (post["beta"] * row).sum("coef")

    def studies(self) -> pd.DataFrame:
        """Return the per-study table (see :func:`bayes_va.fitting.estimates.study_table`)."""
        return pd.DataFrame([r.to_dict() for r in self.estimates.studies])

    def text(self) -> str:
        """Return a short report for the terminal."""
        e, d = self.estimates, self.diagnostics
        pct = lambda s: f"{s.median:.4f} [{s.lower:.4f}, {s.upper:.4f}]"  # noqa: E731
        lines = [
            f"{self.config.name}: k = {e.k} studies, "
            f"{self.config.model.family} ({self.config.model.parametrisation}), "
            f"backend {self.config.sampler.backend}",
            f"  pooled proportion      {pct(e.pooled)}   (posterior median [95% ETI])",
            f"  predictive (new study) {pct(e.predictive)}",
            f"  {e.spread_name:<22} {pct(e.spread)}",
        ]
        for c in e.moderators.coefficients:
            lines.append(
                f"  OR {c.coef:<19} {c.or_median:.3f} [{c.or_lower:.3f}, {c.or_upper:.3f}]"
            )
        if (g := e.glmm) is not None:
            lines.append(
                f"  classical GLMM         {g.pooled:.4f} [{g.pooled_ci[0]:.4f}, "
                f"{g.pooled_ci[1]:.4f}], tau^2 = {g.tau2:.3f}"
            )
        lines += [
            f"  diagnostics: max R-hat {d.max_rhat:.4f}, min ESS bulk/tail "
            f"{d.min_ess_bulk:.0f}/{d.min_ess_tail:.0f}, divergences {d.divergences}, "
            f"min E-BFMI {d.min_bfmi:.2f} -> {'OK' if d.ok else 'FAILED'}",
        ]
        lines += [f"    ! {f}" for f in d.failures]
        if (t := d.timings) is not None:
            lines.append(
                f"  time: compile {t.compile_seconds:.2f} s, sample {t.sample_seconds:.2f} s"
            )
        return "\n".join(lines)

    def save(self, out_dir: str | Path) -> Path:
        """Write the results folder atomically; returns its path."""
        out_dir = Path(out_dir)
        with atomic.staged_dir(out_dir) as stage:
            tree = _netcdf_safe(self.tree)
            tree.attrs["provenance"] = atomic.dumps_json(self.provenance)
            tree.to_netcdf(stage / "posterior.nc", engine="h5netcdf")
            self.summary().to_csv(stage / "summary.csv", float_format="%.10g")
            self.studies().to_csv(stage / "studies.csv", index=False, float_format="%.10g")
            # the rows the model saw, with their moderators, so a loaded result is complete
            self.data.table.to_csv(stage / "data.csv", index=False)
            atomic.write_json(stage / "estimates.json", self.estimates.to_dict())
            atomic.write_json(stage / "diagnostics.json", self.diagnostics.to_dict())
            atomic.write_json(stage / "provenance.json", self.provenance)
        return out_dir


def _netcdf_safe(tree: xr.DataTree) -> xr.DataTree:
    """Drop object-typed sampler stats (messages) that netCDF cannot store."""
    groups = {}
    for name, node in tree.children.items():
        ds = node.to_dataset()
        groups[name] = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype == object])
    return xr.DataTree.from_dict(groups)


def load_result(path: str | Path) -> FitResult:
    """Rebuild a :class:`FitResult` from a results folder written by :meth:`FitResult.save`."""
    path = Path(path)
    if not (path / "posterior.nc").exists():
        raise ResultsFolderError(f"{path} is not a results folder (no posterior.nc)")
    missing = [f for f in RESULT_FILES if not (path / f).is_file()]
    if missing:
        raise ResultsFolderError(
            f"{path} is not a complete results folder: no {', '.join(missing)}"
        )
    prov = json.loads((path / "provenance.json").read_text())
    est = Estimates.from_dict(json.loads((path / "estimates.json").read_text()))
    diag = Diagnostics.from_dict(json.loads((path / "diagnostics.json").read_text()))
    # relative paths in the config (data.dir) resolve against the project holding the results
    cfg = from_dict(
        prov["config"], source=str(path / "provenance.json"), root=find_root(path.resolve())
    )
    # the counts the model saw are in the per-study rows, so the draws stay on disk until used
    study = tuple(str(r.study) for r in est.studies)
    y = np.array([r.events for r in est.studies], dtype=np.int64)
    n = np.array([r.n for r in est.studies], dtype=np.int64)
    if (path / "data.csv").exists():
        table = pd.read_csv(path / "data.csv", keep_default_na=False, na_values=[""])
    else:
        table = pd.DataFrame({"study_id": study, "events": y, "n": n})
    data = StudyData(study, y, n, table, tuple(prov["data_steps"]))
    return FitResult(cfg, data, path / "posterior.nc", est, diag, prov)
