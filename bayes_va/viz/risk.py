"""Figures of the risk layer (matplotlib object API, no pyplot).

Risk distributions, risk against a covariate, effect forest plots, and the calibration's
integration error against the number of points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from bayes_va.risk.calibration import integration_error_curve
from bayes_va.risk.constants import CI_PROB
from bayes_va.risk.layer import RiskModel
from bayes_va.risk.profiles import COLUMN_LABELS, COVARIATES, EXAMPLE_PROFILES
from bayes_va.viz.figure import save_figure, subplots


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    """Return an empty figure: each caller adds its own axes (``fig.subplots``)."""
    fig, ax = subplots(figsize=(width, height))
    ax.remove()  # subplots() adds one; left in place it showed as a blank frame behind the plot
    return fig


def _percent_axis(axis: Any) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))


def _ratio_axis(axis: Any, low: float, high: float) -> None:
    fine = [0.1, 0.2, 0.5, 1, 2, 5, 10]
    ticks = fine if low >= 0.1 and high <= 10 else [10.0**k for k in range(-4, 5)]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def figure_risk_distributions(
    models: Mapping[str, RiskModel],
    profiles: Mapping[str, Mapping[str, Any]],
    *,
    threshold: float | None = None,
) -> Any:
    """Histograms of each profile's risk draws (log risk axis), one panel per model."""
    # one panel a row at the paper's text width: text stays >= 7 pt where it is printed
    fig = _figure(6.5, 1.9 * len(models) + 0.3)
    axes = np.atleast_1d(fig.subplots(len(models), 1, squeeze=False)[:, 0])
    names = list(profiles)
    bins = np.logspace(-4, 0, 81)
    for ax, (label, model) in zip(axes, models.items(), strict=True):
        risk = model.risk([{"id": n, **profiles[n]} for n in names], warn=False)
        for n in names:
            r = np.clip(risk.sel(patient=n).values, bins[0], 1.0)
            ax.hist(
                r,
                bins=bins,
                weights=np.full(r.size, 1.0 / r.size),
                histtype="stepfilled",
                alpha=0.45,
                label=f"{n} (median {100 * np.median(r):.1f}%)",
            )
        if threshold is not None:
            ax.axvline(threshold, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        _percent_axis(ax.xaxis)
        ax.set_title(model.description, fontsize=8, wrap=True)
        ax.set_xlabel(f"{label} risk at each profile", fontsize=8)
        ax.set_ylabel("share of draws", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    return fig


def figure_risk_vs_covariate(
    model: RiskModel,
    profile: Mapping[str, Any],
    covariate: str = "cement_volume",
    values: Sequence[float] | None = None,
    *,
    ci_prob: float = CI_PROB,
) -> Any:
    """Median risk with 50 % and ``ci_prob`` bands as one covariate varies (default 1-8 ml).

    Dotted lines mark the source cohort's range (Table 1 mean +- 3 SD) when it falls inside.
    """
    xs = np.asarray(values if values is not None else np.linspace(1.0, 8.0, 29), dtype=float)
    risk = model.risk([{**profile, covariate: float(x)} for x in xs], warn=False).values
    a = (1.0 - ci_prob) / 2.0
    lo, q1, med, q3, hi = np.quantile(risk, [a, 0.25, 0.5, 0.75, 1 - a], axis=0)
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    ax.fill_between(xs, lo, hi, alpha=0.25, color="C0", label=f"{ci_prob:.0%} interval")
    ax.fill_between(xs, q1, q3, alpha=0.35, color="C0", label="50% interval")
    ax.plot(xs, med, lw=2, color="C0", label="median")
    if covariate in model.cohort_ranges:
        for edge in model.cohort_ranges[covariate]:
            if xs.min() < edge < xs.max():
                ax.axvline(edge, color="grey", ls=":", lw=1)
    others = ", ".join(f"{k} {profile[k]}" for k in model.used if k in profile and k != covariate)
    ax.set_title(f"{model.outcome}; {others}", fontsize=8)
    ax.set_xlabel(COVARIATES[covariate].label)
    ax.set_ylabel(f"{model.outcome} risk")
    ax.set_ylim(0, min(1.0, 1.1 * float(hi.max())))
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return fig


def figure_effects(model: RiskModel, *, ci_prob: float = CI_PROB) -> Any:
    """Forest plot of the odds ratio of each covariate step (median, interval; log scale)."""
    eff = model.effects(ci_prob)
    fig = _figure(6.0, 0.45 * len(eff) + 1.3)
    ax = fig.subplots()
    y = np.arange(len(eff))[::-1]
    ax.errorbar(
        eff["or_median"],
        y,
        fmt="o",
        color="C0",
        xerr=[eff["or_median"] - eff["or_lower"], eff["or_upper"] - eff["or_median"]],
    )
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    _ratio_axis(ax.xaxis, float(eff["or_lower"].min()), float(eff["or_upper"].max()))
    ax.set_yticks(y, [COLUMN_LABELS[c] for c in eff["column"]])
    ax.set_xlabel(f"odds ratio (median, {ci_prob:.0%} interval)")
    ax.set_title(model.description, fontsize=8)
    return fig


def figure_integration_error(model: RiskModel, curve: Sequence[Mapping[str, Any]]) -> Any:
    """Integration MCSE of the intercept against points per replicate (log-log).

    ``curve`` is :func:`~bayes_va.risk.calibration.integration_error_curve`: scrambled
    Sobol' points and plain Monte Carlo, with a ``1/sqrt(n)`` guide through the plain MC's
    first point, the model's setting marked, and the warning level (``mcse_fraction`` x the
    intercept's posterior SD) as a dashed line.
    """
    assert model.calibration is not None
    info = model.calibration.integration()
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    for method, label, style in (
        ("sobol", "scrambled Sobol' (RQMC)", "o-"),
        ("plain", "plain Monte Carlo", "s--"),
    ):
        rows = [r for r in curve if r["method"] == method]
        ax.plot([r["points"] for r in rows], [r["mcse"] for r in rows], style, label=label)
    plain = [r for r in curve if r["method"] == "plain"]
    n = np.array([r["points"] for r in plain])
    ax.plot(n, plain[0]["mcse"] * np.sqrt(n[0] / n), ":", color="grey", label="1/sqrt(n)")
    ax.axhline(
        info["fraction"] * info["posterior_sd"],
        color="k",
        lw=0.8,
        ls="--",
        label=f"warning level ({info['fraction']:g} x posterior SD)",
    )
    ax.axvline(info["points"], color="C2", lw=0.8, label=f"used: {info['points']} points")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"points per replicate (all outcome groups), {info['replicates']} replicates")
    ax.set_ylabel("MCSE of the calibrated intercept (logit)")
    ax.set_title(f"{model.outcome}: integration error of the calibration", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def write_figures(
    folder: str | Path,
    models: Mapping[str, RiskModel],
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    threshold: float | None = None,
) -> list[Path]:
    """Write the risk figures as PNG files into ``folder``; returns their paths.

    ``risk_distributions.png`` (every model, every profile), ``risk_vs_cement_volume_<m>.png``
    (typical profile, 1-8 ml, for models that use cement volume), ``effects_<m>.png`` and, for
    models calibrated over a copula cohort, ``integration_error_<m>.png``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    profiles = profiles or EXAMPLE_PROFILES
    figs = {"risk_distributions": figure_risk_distributions(models, profiles, threshold=threshold)}
    middle = profiles[list(profiles)[len(profiles) // 2]]
    for label, model in models.items():
        if "cement_volume" in model.used:
            figs[f"risk_vs_cement_volume_{label}"] = figure_risk_vs_covariate(model, middle)
        figs[f"effects_{label}"] = figure_effects(model)
        cal = model.calibration
        if cal is not None and cal.spec is not None and cal.mode == "marginal":
            figs[f"integration_error_{label}"] = figure_integration_error(
                model, integration_error_curve(cal)
            )
    paths = []
    for name, fig in figs.items():
        paths += save_figure(fig, folder / f"{name}.png")
    return paths
