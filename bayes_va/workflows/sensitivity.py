"""Sensitivity analysis by config swap: fit many scenarios and lay them out in one table.

``run_sensitivity(["models/sensitivity/lin_low.toml", ...])`` fits the base config, every
scenario config and (optionally) leave-one-study-out refits of the base, and returns one row per
scenario: pooled and predictive proportions with 95 % intervals, τ (or φ), the classical GLMM
where it applies and the diagnostics verdict. A scenario whose fit fails its diagnostics is
marked, not dropped; one that cannot be fitted at all (bad config) raises before anything runs.

Scenarios that share a model structure reuse one compiled model (see
:mod:`bayes_va.engine.sampling`), so after the first of a structure each costs a fraction of a
second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm.auto import tqdm

from bayes_va.config.model import Config, load_config
from bayes_va.core import atomic
from bayes_va.data.dataset import build_dataset

if TYPE_CHECKING:
    from bayes_va.fitting.results import FitResult

COLUMNS = (
    "scenario",
    "kind",
    "description",
    "k",
    "family",
    "pooled_median",
    "pooled_lower",
    "pooled_upper",
    "predictive_median",
    "predictive_lower",
    "predictive_upper",
    "spread_name",
    "spread_median",
    "spread_lower",
    "spread_upper",
    "glmm_pooled",
    "glmm_lower",
    "glmm_upper",
    "diagnostics_ok",
    "diagnostics_failures",
    "compile_seconds",
    "sample_seconds",
    "fit_seconds",
)


@dataclass(frozen=True)
class Scenario:
    """One fit of a sensitivity analysis."""

    name: str
    kind: str  # "base", "scenario" or "leave-one-out"
    config: Config


def plan(
    configs: Sequence[str | Path],
    base: str | Path = "models/base.toml",
    leave_one_out: bool = True,
    overrides: dict[str, Any] | None = None,
) -> list[Scenario]:
    """List the fits of a sensitivity analysis, loading and validating every config first.

    Loading (and building each scenario's data set) before any fitting makes a typo fail at
    once rather than after hours of fits.

    Parameters
    ----------
    configs : sequence of str or Path
        Scenario configs; ``base`` among them is skipped (it is always the first scenario).
    base : str or Path
        The base model's config.
    leave_one_out : bool
        Add one scenario per study of the base data set, with that study excluded.
    overrides : dict, optional
        Dotted keys (e.g. ``{"sampler.draws": 500}``) applied to every scenario.

    Returns
    -------
    list of Scenario
        The base first, then the scenarios in the order given, then the leave-one-out fits.

    Raises
    ------
    ValueError
        When two scenarios share a name.
    """
    base_cfg = load_config(base, overrides)
    scenarios = [Scenario(base_cfg.name, "base", base_cfg)]
    for path in configs:
        if Path(path).resolve() == Path(base).resolve():
            continue
        cfg = load_config(path, overrides)
        build_dataset(cfg.data, cfg.data_dir)  # fail now on bad ids/variants
        scenarios.append(Scenario(cfg.name, "scenario", cfg))
    if leave_one_out:
        data = build_dataset(base_cfg.data, base_cfg.data_dir)
        for sid in data.study:
            cfg = base_cfg.replace(
                name=f"{base_cfg.name}_without_{sid}",
                description=f"leave out {sid}",
                **{"data.exclude": [*base_cfg.data.exclude, sid]},
            )
            scenarios.append(Scenario(cfg.name, "leave-one-out", cfg))
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"scenario names must be unique; repeated: {dupes}")
    return scenarios


def row(scenario: Scenario, result: FitResult) -> dict[str, Any]:
    """Summarise one fitted scenario as a table row (the keys of :data:`COLUMNS`)."""
    e, g, t = result.estimates, result.estimates.glmm, result.diagnostics.timings
    return {
        "scenario": scenario.name,
        "kind": scenario.kind,
        "description": scenario.config.description,
        "k": e.k,
        "family": scenario.config.model.family,
        "pooled_median": e.pooled.median,
        "pooled_lower": e.pooled.lower,
        "pooled_upper": e.pooled.upper,
        "predictive_median": e.predictive.median,
        "predictive_lower": e.predictive.lower,
        "predictive_upper": e.predictive.upper,
        "spread_name": e.spread_name,
        "spread_median": e.spread.median,
        "spread_lower": e.spread.lower,
        "spread_upper": e.spread.upper,
        "glmm_pooled": g.pooled if g is not None else None,
        "glmm_lower": g.pooled_ci[0] if g is not None else None,
        "glmm_upper": g.pooled_ci[1] if g is not None else None,
        "diagnostics_ok": result.ok,
        "diagnostics_failures": "; ".join(result.diagnostics.failures),
        "compile_seconds": t.compile_seconds if t is not None else float("nan"),
        "sample_seconds": t.sample_seconds if t is not None else float("nan"),
        "fit_seconds": t.fit_seconds if t is not None else float("nan"),
    }


def fit_scenario(scenario: Scenario) -> dict[str, Any]:
    """Fit one scenario and return its row (module-level so executors can pickle it).

    A fit that raises becomes a row marked failed with the error, so one broken scenario
    cannot sink a long run; nothing is dropped.
    """
    # lazy: planning (bayes-va paper's up-to-date check) must not import the sampler
    from bayes_va.fitting.run import fit

    try:
        # the table shows no quadrature reference, so the fit skips it
        return row(scenario, fit(scenario.config, reference=False))
    except Exception as exc:  # recorded in the table, not swallowed
        out: dict[str, Any] = dict.fromkeys(COLUMNS)
        out.update(
            scenario=scenario.name,
            kind=scenario.kind,
            description=scenario.config.description,
            family=scenario.config.model.family,
            diagnostics_ok=False,
            diagnostics_failures=f"fit raised {type(exc).__name__}: {exc}",
        )
        return out


def run_sensitivity(
    configs: Sequence[str | Path],
    base: str | Path = "models/base.toml",
    *,
    leave_one_out: bool = True,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    map_fn: Callable[[Callable[[Scenario], dict], list[Scenario]], list[dict]] | None = None,
) -> pd.DataFrame:
    """Fit the base, every scenario and the leave-one-study-out refits; return the table.

    Parameters
    ----------
    configs : sequence of paths
        Scenario configs (e.g. ``sorted(Path("models/sensitivity").glob("*.toml"))``).
    base : path
        The base config; its row comes first.
    leave_one_out : bool
        Add one refit of the base per study, leaving that study out.
    overrides : dict, optional
        Dotted-key overrides applied to every scenario (e.g. shorter chains in tests).
    progress : bool
        Show a progress bar (scenarios done).
    map_fn : callable, optional
        ``map_fn(fit_scenario, scenarios) -> rows`` to run elsewhere (e.g. on dask); the
        default runs in this process, in order, reusing compiled models.

    Returns
    -------
    pandas.DataFrame
        One row per scenario, columns :data:`COLUMNS`, plus ``attrs["wall_seconds"]``.
    """
    scenarios = plan(configs, base, leave_one_out, overrides)
    t0 = time.perf_counter()
    if map_fn is None:
        rows = [
            fit_scenario(s)
            for s in tqdm(scenarios, desc="scenarios", unit="fit", disable=not progress)
        ]
    else:
        rows = list(map_fn(fit_scenario, scenarios))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs["wall_seconds"] = time.perf_counter() - t0
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """Format the table as Markdown, proportions in percent, failed rows marked."""

    def pct(m: float, lo: float, hi: float) -> str:
        return f"{100 * m:.2f} ({100 * lo:.2f}–{100 * hi:.2f})"

    lines = [
        "| scenario | k | pooled % (95% CrI) | predictive % (95% PI) | τ / φ (95% CrI) "
        "| GLMM % (95% CI) | diagnostics |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        if pd.isna(r.pooled_median):
            lines.append(
                f"| {r.scenario} | – | – | – | – | – | **FAILED**: {r.diagnostics_failures} |"
            )
            continue
        glmm = pct(r.glmm_pooled, r.glmm_lower, r.glmm_upper) if pd.notna(r.glmm_pooled) else "–"
        spread = (
            f"{r.spread_name} {r.spread_median:.3g} ({r.spread_lower:.3g}–{r.spread_upper:.3g})"
        )
        status = "ok" if r.diagnostics_ok else f"**FAILED**: {r.diagnostics_failures}"
        lines.append(
            f"| {r.scenario} | {r.k} | {pct(r.pooled_median, r.pooled_lower, r.pooled_upper)} | "
            f"{pct(r.predictive_median, r.predictive_lower, r.predictive_upper)} | {spread} | "
            f"{glmm} | {status} |"
        )
    return "\n".join(lines) + "\n"




def write_outputs(table: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write ``sensitivity.csv``, ``sensitivity.md``, ``sensitivity.png`` and ``.svg``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "sensitivity.csv", table.to_csv(index=False, float_format="%.10g"))
    atomic.write_text(out_dir / "sensitivity.md", to_markdown(table))
    # lazy: planning (bayes-va paper's up-to-date check) must not import matplotlib
    from bayes_va.viz.plots import plot_sensitivity

    plot_sensitivity(table, out_dir / "sensitivity", ("png", "svg"))
    return out_dir
