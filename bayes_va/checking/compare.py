"""Model comparison by marginal PSIS-LOO (``az.compare``), with its reliability stated.

:func:`compare_models` runs :func:`bayes_va.checking.loo.marginal_loo` on each fit
(leave-one-*study*-out on the marginal log-likelihood, see :mod:`bayes_va.checking.loo`) and
passes the pointwise results to :func:`arviz.compare` with rounding turned off, so the stored
numbers keep every digit. The table gains, per model, the largest Pareto k, the number of
studies above the threshold and the exact leave-one-study-out elpd where the quadrature engine
gives one.

A comparison in which any model has a bad Pareto k is never presented silently:
:class:`~bayes_va.checking.loo.LooReliabilityWarning` is emitted, ``Comparison.reliable`` is
False, and the Markdown, the JSON and the CLI output open with the caveat.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayes_va.checking.loo import LooReliabilityWarning, LooResult, marginal_loo, replace_bad_k
from bayes_va.core import atomic
from bayes_va.core.errors import ComparisonError
from bayes_va.core.serialize import json_safe, markdown_table

if TYPE_CHECKING:
    from bayes_va.fitting.results import FitResult

__all__ = ["Comparison", "compare_models"]


@dataclass(frozen=True)
class Comparison:
    """An ``az.compare`` table of fits and the LOO results behind it.

    Attributes
    ----------
    table : pandas.DataFrame
        Indexed by model name, best first. ArviZ's columns (``rank``, ``elpd_diff``, ``dse``,
        ``p_worse``, ``diag_diff``, ``diag_elpd``, ``p``, ``elpd``, ``se``, ``weight``),
        unrounded, plus ``max_pareto_k``, ``n_bad_k`` (not replaced), ``n_replaced``,
        ``loo_reliable`` and ``elpd_exact`` (NaN where no exact reference exists).
    loos : dict of str to LooResult
        Per model.
    method : str
        Weighting method passed to ``az.compare``.
    """

    table: pd.DataFrame
    loos: dict[str, LooResult]
    method: str

    @property
    def reliable(self) -> bool:
        """Whether every model's Pareto k values are good."""
        return all(loo.reliable for loo in self.loos.values())

    @property
    def best(self) -> str:
        """The model ranked first."""
        return str(self.table.index[0])

    def caveats(self) -> list[str]:
        """Plain-language warnings: bad Pareto k per model, and the small-k caution."""
        out = [c for loo in self.loos.values() if (c := loo.caveat())]
        out += [c for loo in self.loos.values() if (c := loo.replacement_note())]
        if not self.reliable:
            elpd = self.table["elpd"].copy()
            unresolved = []
            for m in self.table.index:
                loo = self.loos[m]
                if loo.reliable:
                    continue
                if loo.exact_elpd is None:
                    unresolved.append(str(m))
                else:
                    elpd[m] = loo.exact_elpd
            if unresolved:
                out.append(
                    f"The rank of {', '.join(unresolved)} cannot be confirmed from these draws: "
                    "refit leaving out each flagged study (exact LOSO) before ranking it."
                )
            else:
                order = [str(m) for m in elpd.sort_values(ascending=False).index]
                same = order == [str(m) for m in self.table.index]
                out.append(
                    "With the exact leave-one-study-out elpd in place of each unreliable PSIS "
                    "estimate the order is "
                    + " > ".join(order)
                    + (": the same ranking." if same else ": a DIFFERENT ranking.")
                )
        n = next(iter(self.loos.values())).studies.shape[0]
        if n < 100:
            out.append(
                f"With {n} studies the normal approximation behind dse and p_worse is rough "
                "(ArviZ's 'N < 100'); read differences of a few SEs as indicative."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Unrounded, JSON-ready: the table, the caveats and each model's LOO."""
        table = self.table.reset_index(names="model")
        return {
            "method": self.method,
            "reliable": self.reliable,
            "best": self.best,
            "caveats": self.caveats(),
            "table": _records(table),
            "loo": {name: loo.to_dict() for name, loo in self.loos.items()},
        }

    def markdown(self) -> str:
        """Render the comparison as Markdown, caveats first."""
        lines = ["# Model comparison (marginal PSIS-LOO, leave one study out)", ""]
        if not self.reliable:
            lines += [
                "> **This comparison is NOT reliable.** At least one model has Pareto k values "
                "above the threshold, so its elpd, and its rank, may be wrong. See below.",
                "",
            ]
        cols = [
            "rank",
            "elpd",
            "se",
            "elpd_diff",
            "dse",
            "p_worse",
            "weight",
            "p",
            "max_pareto_k",
            "n_bad_k",
            "n_replaced",
            "loo_reliable",
            "elpd_exact",
        ]
        lines += [
            markdown_table(self.table.reset_index(names="model")[["model", *cols]]),
            "",
            f"Weights: {self.method}. Best model: **{self.best}**.",
            "",
            "![Comparison](figures/compare.png)",
            "",
        ]
        lines += [f"- {c}" for c in self.caveats()]
        lines += ["", "Unrounded numbers: `compare.json` and `compare.csv`.", ""]
        return "\n".join(lines)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``compare.md``, ``compare.json`` and ``compare.csv``.

        The figure ``compare.md`` shows is drawn by
        :func:`bayes_va.workflows.report.write_comparison`, which also calls this.

        Returns the path of ``compare.md``.
        """
        out_dir = Path(out_dir)
        csv = self.table.reset_index(names="model").to_csv(index=False, float_format="%.17g")
        atomic.write_text(out_dir / "compare.csv", csv)
        atomic.write_json(out_dir / "compare.json", json_safe(self.to_dict()))
        atomic.write_text(out_dir / "compare.md", self.markdown())
        return out_dir / "compare.md"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, float | np.floating):
                v = float(v) if np.isfinite(v) else None
            elif isinstance(v, np.integer):
                v = int(v)
            elif isinstance(v, np.bool_):
                v = bool(v)
            elif v is pd.NA:
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


def _fit_or_none(model: FitResult | xr.DataTree) -> FitResult | None:
    """Return the FitResult, or None for a bare DataTree (it cannot be refitted)."""
    return None if isinstance(model, xr.DataTree) else model


def _observed(tree: xr.DataTree) -> tuple[list[str], np.ndarray, np.ndarray]:
    obs = tree["observed_data"].dataset
    return (
        [str(s) for s in obs["study"].values],
        np.asarray(obs["y"].values),
        np.asarray(obs["n"].values),
    )


def compare_models(
    models: Mapping[str, FitResult | xr.DataTree],
    *,
    method: str = "stacking",
    replace_bad: bool = False,
) -> Comparison:
    """Compare fits of the same studies by marginal PSIS-LOO.

    Parameters
    ----------
    models : mapping of name to FitResult or DataTree
        At least two fits of the *same* studies (same ids, events and sizes).
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        Weights, as in :func:`arviz.compare`.
    replace_bad : bool
        Replace the PSIS values of studies with bad Pareto k by exact leave-one-study-out
        values (:func:`bayes_va.checking.loo.replace_bad_k`: quadrature where it applies, else
        one refit per such study, which needs FitResults). Off by default: the table then shows PSIS
        values and says which are unreliable.

    Returns
    -------
    Comparison

    Raises
    ------
    ComparisonError
        Fewer than two models, or models fitted to different data (bad input: exit 2 in the
        CLI; a ``ValueError`` too).

    Warns
    -----
    LooReliabilityWarning
        When any model has a Pareto k above the threshold (once, naming every such model).
    """
    if len(models) < 2:
        raise ComparisonError(f"need at least two models to compare, got {len(models)}")
    names = list(models)
    ref_name = names[0]
    ref = _observed(_tree(models[ref_name]))
    for name in names[1:]:
        other = _observed(_tree(models[name]))
        if other[0] != ref[0]:
            raise ComparisonError(
                f"{name} and {ref_name} were fitted to different studies: "
                f"{sorted(set(other[0]) ^ set(ref[0]))} differ"
            )
        differ = [s for s, a, b in zip(ref[0], ref[1], other[1], strict=True) if a != b]
        differ += [s for s, a, b in zip(ref[0], ref[2], other[2], strict=True) if a != b]
        if differ:
            raise ComparisonError(
                f"{name} and {ref_name} were fitted to different counts for "
                f"{', '.join(sorted(set(differ)))}: LOO values are not comparable"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LooReliabilityWarning)  # one warning below, for all
        loos = {name: marginal_loo(models[name], name=name) for name in names}
    if replace_bad:
        loos = {name: replace_bad_k(loo, _fit_or_none(models[name])) for name, loo in loos.items()}
    table = az.compare(
        {name: loo.elpd_data for name, loo in loos.items()}, method=method, round_to="none"
    )
    table["max_pareto_k"] = [loos[m].max_k for m in table.index]
    table["n_bad_k"] = [len(loos[m].bad_studies) for m in table.index]
    table["n_replaced"] = [len(loos[m].replaced) for m in table.index]
    table["loo_reliable"] = [loos[m].reliable for m in table.index]
    table["elpd_exact"] = [
        np.nan if loos[m].exact_elpd is None else loos[m].exact_elpd for m in table.index
    ]
    out = Comparison(table, loos, method)
    if not out.reliable:
        bad = [
            f"{m} ({len(loo.bad_studies)} studies)" for m, loo in loos.items() if not loo.reliable
        ]
        warnings.warn(
            "LOO comparison is not reliable: Pareto k above the threshold for "
            + ", ".join(bad)
            + "; see Comparison.caveats()",
            LooReliabilityWarning,
            stacklevel=2,
        )
    return out


def _tree(obj: FitResult | xr.DataTree) -> xr.DataTree:
    return obj if isinstance(obj, xr.DataTree) else obj.tree


