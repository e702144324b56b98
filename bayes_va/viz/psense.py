"""Figures of prior sensitivity: power-scaled posteriors and prior against posterior (arviz-plots).

The numbers behind them are :func:`bayes_va.checking.psense.power_scaling_sensitivity` (the
report's table) and the ``prior`` group a fit stores (:mod:`bayes_va.engine.prior`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from arviz_plots import plot_prior_posterior, plot_psense_dist

from bayes_va.checking.psense import QUANTITIES, with_log_prior
from bayes_va.viz.figure import save_plot_collection

if TYPE_CHECKING:
    from bayes_va.fitting.results import FitResult

__all__ = ["has_prior", "plot_power_scaling", "plot_prior_vs_posterior"]

#: Panels per row of the prior-posterior figure (arviz-plots' default).
_COL_WRAP = 4


def _names(result: FitResult, group: str = "posterior") -> list[str]:
    """Return the headline quantities in the posterior (and in ``group``), in report order."""
    post = result.tree["posterior"].data_vars
    have = result.tree[group].data_vars if group in result.tree.children else post
    return [q for q in QUANTITIES if q in post and q in have]


def _draws(result: FitResult) -> int:
    post = result.tree["posterior"]
    return int(post.sizes["chain"] * post.sizes["draw"])


def has_prior(result: FitResult) -> bool:
    """Whether the fit stores a ``prior`` group (results saved before it was added do not)."""
    return "prior" in result.tree.children


def plot_power_scaling(
    result: FitResult, path: str | Path, formats: Sequence[str] | None = None
) -> list[Path]:
    """Draw each headline quantity's posterior with the prior and the likelihood power-scaled.

    :func:`arviz_plots.plot_psense_dist` on the marginal likelihood ``y`` and the top-level
    priors (the ``log_prior`` group of :func:`bayes_va.checking.psense.with_log_prior`), as in
    the report's table.

    Returns
    -------
    list of Path
        The files written (:func:`bayes_va.viz.figure.save_figure`).
    """
    names = _names(result)
    rows = len(names) + sum(result.tree["posterior"][q].size // _draws(result) - 1 for q in names)
    plot = plot_psense_dist(
        with_log_prior(result),
        var_names=names,
        likelihood_var_names="y",
        backend="matplotlib",
        figure_kwargs={"figsize": (10, 1.9 * rows + 0.8), "layout": "constrained"},
    )
    return save_plot_collection(plot, path, formats)


def plot_prior_vs_posterior(
    result: FitResult, path: str | Path, formats: Sequence[str] | None = None
) -> list[Path]:
    """Draw each headline quantity's prior and posterior densities on one axis.

    :func:`arviz_plots.plot_prior_posterior` on the fit's ``prior`` and ``posterior`` groups.

    Raises
    ------
    ValueError
        If the fit has no ``prior`` group (see :func:`has_prior`).
    """
    if not has_prior(result):
        raise ValueError(f"{result.config.name}: the fit stores no prior group (refit it)")
    names = _names(result, "prior")
    panels = sum(result.tree["posterior"][q].size // _draws(result) for q in names)
    rows = -(-panels // _COL_WRAP)
    plot = plot_prior_posterior(
        result.tree,
        var_names=names,
        backend="matplotlib",
        col_wrap=_COL_WRAP,
        figure_kwargs={
            "figsize": (3.2 * min(panels, _COL_WRAP), 2.4 * rows + 0.6),
            "layout": "constrained",
        },
    )
    return save_plot_collection(plot, path, formats)
