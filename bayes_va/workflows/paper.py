"""Build the paper: run the declared analyses, write ``results.json`` and figures, compile Typst.

``paper/analyses.toml`` declares what the paper needs. Each fit is cached by the hash of its
config, data and code (:mod:`bayes_va.fitting.cache`), so a rebuild after changing one config refits
only that config. ``paper/build/results.json`` holds every number the text shows (raw values and
the formatted strings Typst prints) and no timestamps: two builds give identical bytes. Wall
times go to ``paper/build/timings.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_va.config.model import Config, find_root, load_config
from bayes_va.config.paper import PaperConfig, PaperOutcome
from bayes_va.core import atomic
from bayes_va.fitting.cache import cached_fit, fit_key
from bayes_va.fitting.diagnostics import CHECKED_VARS
from bayes_va.fitting.provenance import (
    data_folder_hash,
    lock_hash,
    package_versions,
)
from bayes_va.fitting.results import FitResult
from bayes_va.viz.plots import followup_curve, forest, plot_sensitivity, subgroups
from bayes_va.workflows.executor import ClusterSpec, dask_map, default_workers
from bayes_va.workflows.paper_layout import short_pages
from bayes_va.workflows.paper_plan import (
    build_key,
    current_build,
    expand,
    inputs_hash,
    load_analyses,
    planned_configs,
    record_build,
    up_to_date_message,
)
from bayes_va.workflows.paper_sections import (
    avf_section,
    compare_section,
    data_section,
    diagnostics_row,
    fit_section,
    interval,
    outcome_section,
    paper_risk_models,
    pct,
    risk_section,
    robustness_section,
    round_floats,
    sbc_section,
)
from bayes_va.workflows.risk_page import default_data_hash, write_paper_risk_page
from bayes_va.workflows.sensitivity import plan, row

# ----------------------------------------------------------------------------- analyses


class _Runner:
    """Fits configs through the cache and keeps the wall times."""

    def __init__(self, cache_dir: Path, refresh: bool) -> None:
        self.cache_dir, self.refresh = cache_dir, refresh
        self.timings: dict[str, dict[str, Any]] = {}
        #: wall times of the fits the parallel pass ran (they reach the serial pass as hits)
        self.prefitted: dict[str, float] = {}

    def fit(self, cfg: Config) -> FitResult:
        t0 = time.perf_counter()
        result, hit = cached_fit(cfg, self.cache_dir, self.refresh)
        if hit and cfg.name in self.prefitted:
            self.timings[cfg.name] = {"seconds": self.prefitted[cfg.name], "cached": False}
            return result
        self.timings[cfg.name] = {"seconds": time.perf_counter() - t0, "cached": hit}
        if not hit and self.prefitted:
            # the parallel pass fits what planned_configs lists; a miss here means the list
            # and this build have drifted apart (still correct, only serial for this fit)
            warnings.warn(f"{cfg.name} was not in the parallel plan", stacklevel=2)
        status = "cached" if hit else f"fitted in {time.perf_counter() - t0:.1f} s"
        print(f"  {cfg.name}: {status}", file=sys.stderr, flush=True)
        return result


def _fit_into_cache(item: tuple[Config, str, bool]) -> float:
    """Worker side: fit one config into the cache; return its wall time (the result stays there)."""
    cfg, cache_dir, refresh = item
    t0 = time.perf_counter()
    cached_fit(cfg, cache_dir, refresh)
    return time.perf_counter() - t0


def prefit_parallel(
    root: Path, spec: PaperConfig, cache_dir: Path, refresh: bool, workers: int
) -> dict[str, float]:
    """Fit the paper's configs missing from the cache on a local dask cluster.

    Each fit has its config's own seed and writes the folder :func:`cached_fit` would, so the
    serial pass after it reads every fit from the cache and ``results.json`` is unchanged.

    Parameters
    ----------
    root : Path
        Project root.
    spec : PaperConfig
        The paper's analyses.
    cache_dir : Path
        The fit cache (``results/cache``).
    refresh : bool
        Refit configs found in the cache too (``--clean``).
    workers : int
        Single-threaded worker processes.

    Returns
    -------
    dict of str to float
        Wall time of each fit run, by config name.
    """
    todo = [
        c
        for c in planned_configs(root, spec)
        if refresh or not (cache_dir / f"{c.name}-{fit_key(c)}" / "estimates.json").exists()
    ]
    if len(todo) < 2:  # one fit: starting a cluster costs more than it saves
        return {}
    n = min(workers, len(todo))
    print(f"bayes-va paper: {len(todo)} fits on {n} dask workers", file=sys.stderr, flush=True)
    map_fn = dask_map(ClusterSpec(n_workers=n), desc="paper fits")
    seconds = map_fn(_fit_into_cache, [(c, str(cache_dir), refresh) for c in todo])
    return {c.name: s for c, s in zip(todo, seconds, strict=True)}


def outcomes_sections(
    root: Path,
    outcomes: Sequence[PaperOutcome],
    fit: Callable[[Config], FitResult],
    figures: Path | None = None,
) -> list[dict[str, Any]]:
    """Fit each ``[[outcomes]]`` entry's configs and report them (``results.json`` ``outcomes``).

    Generic: an outcome is its config (any table the config can name) and optional sensitivity
    configs; nothing here depends on which outcome it is.

    Parameters
    ----------
    root : Path
        Project root (the entries' paths are relative to it).
    outcomes : sequence of PaperOutcome
        The declared entries, in the order the paper shows them.
    fit : callable
        Fits a config (the paper's cache-backed runner; tests may pass :func:`fitting.run.fit`).
    figures : Path, optional
        Folder for each outcome's forest plot, ``outcome_<key>.svg`` (None: no figures).

    Returns
    -------
    list of dict
        One :func:`~bayes_va.workflows.paper_sections.outcome_section` per entry.
    """
    out = []
    for o in outcomes:
        main = fit(load_config(root / o.config))
        sens = [fit(load_config(p)) for p in expand(root, o.sensitivity)]
        name = f"outcome_{o.key}.svg"
        sec = outcome_section(o.key, o.title, main, sens, figure=None)
        if figures is not None:
            forest(main, figures / name, {r["study"]: r["label"] for r in sec["studies"]})
            sec["figure"] = f"{figures.name}/{name}"
        out.append(sec)
    return out


def _rel(root: Path, path: Path) -> str:
    """Return ``path`` relative to the project root, as captions print it.

    Lexically (``absolute``, not ``resolve``): a ``models/`` that is a symlink stays ``models/``.
    """
    return path.absolute().relative_to(root.absolute()).as_posix()


def _source(fits: Sequence[FitResult], config_of: dict[str, str]) -> dict[str, Any]:
    """Name the configs behind a figure or table and say whether all its fits passed."""
    names = [f.config.name for f in fits]
    failed = [n for f, n in zip(fits, names, strict=True) if not f.diagnostics.ok]
    configs = list(dict.fromkeys(config_of.get(n, n) for n in names))
    return {"configs": configs, "ok": not failed, "failed": failed}


def provenance_section(
    fits: dict[str, FitResult],
    config_of: dict[str, str],
    spec: PaperConfig,
    compare_fits: Sequence[FitResult],
    sub_results: dict[str, FitResult],
    avf_results: Sequence[FitResult],
    outcomes: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Say which config produced each figure and table and whether its fits passed their checks.

    Parameters
    ----------
    fits : dict of str to FitResult
        Every fit of the main analyses, by name (``base`` first).
    config_of : dict of str to str
        The config file (relative to the project root) of each fit, by config name.
    spec : PaperConfig
        The analyses declaration (outcomes' configs).
    compare_fits, sub_results, avf_results
        The fits behind the comparison, subgroup and AVF tables and figures.
    outcomes : sequence of dict
        The ``[[outcomes]]`` sections (:func:`outcomes_sections`), in ``spec``'s order.

    Returns
    -------
    dict
        ``sources``: per figure/table key, its ``configs``, ``ok`` and the ``failed`` fit names;
        ``fits``: every fit's name, config, seed and ``ok`` (the appendix). A headline number is
        marked in the text where its source is not ``ok``.
    """
    base = fits["base"]
    other = set(sub_results) | {f.config.name for f in avf_results}
    sens = [f for k, f in fits.items() if k not in other]  # base and its sensitivity fits
    outcome_cfg = {o.key: o for o in spec.outcomes}
    sources: dict[str, Any] = {
        "base": _source([base], config_of),
        # the declared patterns, not one name per scenario: a caption stays short
        "sensitivity": _source(sens, config_of)
        | {"configs": [spec.base, *spec.sensitivity, f"{spec.base} (leave-one-out)"]},
        "subgroups": _source(list(sub_results.values()), config_of),
        "avf": _source(list(avf_results), config_of),
        "avf_main": _source(list(avf_results[:1]), config_of),
        "compare": _source(list(compare_fits), config_of),
        "risk": _source([base, *avf_results[:1]], config_of),
        "all": _source(list(fits.values()), config_of),
    }
    sources["risk"]["configs"].insert(0, "paper/analyses.toml [risk]")
    for sec in outcomes:
        o = outcome_cfg[sec["key"]]
        diags = [x["diagnostics"] for x in (sec, *sec["sensitivity"])]
        failed = [x["name"] for x in diags if not x["ok"]]
        sources[f"outcome_{sec['key']}"] = {
            "configs": [o.config, *o.sensitivity],
            "ok": not failed,
            "failed": failed,
        }
    rows = []
    for name, f in fits.items():
        cfg = f.config
        rows.append(
            {
                "name": name,
                "config": config_of.get(cfg.name, cfg.name),
                "seed": cfg.sampler.seed,
                "ok": f.diagnostics.ok,
            }
        )
    for sec in outcomes:
        for x in (sec, *sec["sensitivity"]):
            name = x["diagnostics"]["name"]
            rows.append(
                {
                    "name": name,
                    "config": config_of.get(name, name),
                    "seed": x["config"]["sampler"]["seed"],
                    "ok": x["diagnostics"]["ok"],
                }
            )
    return {"sources": sources, "fits": rows}


def check_layout(pdf: Path, min_fill: float = 0.75) -> bool:
    """Check that no page of ``pdf`` ends early except at a major break, saying which do.

    Parameters
    ----------
    pdf : Path
        The built paper.
    min_fill : float
        Least fill of a page (fraction of the text area) not at the end of a level-1 section.

    Returns
    -------
    bool
        True when the layout passes, or when poppler-utils is missing (a warning says so).
    """
    try:
        short = short_pages(pdf, min_fill)
    except FileNotFoundError as exc:
        print(f"bayes-va paper: layout not checked: {exc}", file=sys.stderr)
        return True
    if short:
        pages = ", ".join(f"page {p.page} ({100 * p.fill:.0f} % full)" for p in short)
        print(
            f"bayes-va paper: layout check failed: {pages} ends before {100 * min_fill:.0f} % "
            "of the text area without a new major section on the next page (a figure or table "
            "left a gap; see paper.typ's placement rules)",
            file=sys.stderr,
        )
        return False
    return True


#: What the risk layer reads besides its two fits and the data tables (``data_hash``).
RISK_INPUTS = ("models/risk",)


def risk_outputs(
    root: Path,
    spec: dict[str, Any],
    base: FitResult,
    avf: FitResult | None,
    build: Path,
    *,
    data_hash: str,
) -> dict[str, Any]:
    """Write the risk figures and ``risk.html`` into ``build``; return the risk section.

    Building the risk models (copula calibration, integration error, variance split) costs
    several seconds and depends only on the base and AVF fits, the ``[risk]`` declaration,
    the data tables, ``models/risk/`` and the code: the outputs are kept in ``results/cache``
    under a key of those, so a rebuild after, say, a sensitivity config changed copies them. The
    section is always read back from its JSON file, so both routes give the same bytes.
    """
    h = hashlib.sha256()
    h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for fit_ in (base, avf):
        h.update(b"-" if fit_ is None else fit_key(fit_.config).encode())
    h.update(inputs_hash(root, RISK_INPUTS).encode())
    h.update(data_hash.encode())
    folder = root / "results" / "cache" / f"paper-risk-{h.hexdigest()[:20]}"
    cached = (folder / "risk.json").is_file()
    if not cached:
        with atomic.staged_dir(folder) as stage:
            models = paper_risk_models(spec, base, avf)
            fresh = risk_section(spec, base, avf, stage / "figures", models=models)
            atomic.write_json(stage / "risk.json", fresh)
            write_paper_risk_page(
                stage / "risk.html", spec, base, avf, data_hash=data_hash, models=models, quiet=True
            )
    shutil.copytree(folder / "figures", build / "figures", dirs_exist_ok=True)
    atomic.write_bytes(build / "risk.html", (folder / "risk.html").read_bytes())
    origin = "its inputs unchanged: from results/cache" if cached else "built"
    print(f"bayes-va paper: wrote {build / 'risk.html'} ({origin})", file=sys.stderr)
    section: dict[str, Any] = json.loads((folder / "risk.json").read_text())
    return section


def build_paper(
    clean: bool = False,
    root: str | Path | None = None,
    compile_pdf: bool = True,
    workers: int | None = None,
    inputs_key: str | None = None,
) -> int:
    """Run the analyses of ``paper/analyses.toml`` and build ``paper/build/paper.pdf``.

    Parameters
    ----------
    clean : bool
        Ignore cached fits and refit everything.
    root : path, optional
        Project root (default: found from the current directory).
    compile_pdf : bool
        Compile the Typst source (tests may skip it).
    workers : int, optional
        Fit the configs missing from the cache on a local dask cluster of this many
        single-threaded workers first (default: one per core); 1 fits them one after another
        in this process. Either way ``results.json`` is the same, byte for byte.
    inputs_key : str, optional
        :func:`~bayes_va.workflows.paper_plan.build_key` of the project, when the caller has
        computed it already (the CLI, which checks before importing this module).

    Returns
    -------
    int
        Exit code: 0 when every analysis ran (fits failing diagnostics are reported in the
        paper, not hidden); 1 when the PDF has a short page (:func:`check_layout`).
    """
    t_start = time.perf_counter()
    root = Path(root) if root else find_root(Path.cwd().resolve())
    paper_dir = root / "paper"
    build = paper_dir / "build"
    key = inputs_key or build_key(root)
    if not clean and (code := current_build(root, key, compile_pdf)) is not None:
        print(up_to_date_message(time.perf_counter() - t_start), file=sys.stderr)
        return code
    (build / "build.json").unlink(missing_ok=True)  # a build cut short must not look current
    figures = build / "figures"
    if clean and build.exists():
        shutil.rmtree(build)
    figures.mkdir(parents=True, exist_ok=True)
    cache_dir = root / "results" / "cache"
    spec = load_analyses(paper_dir / "analyses.toml")
    runner = _Runner(cache_dir, refresh=clean)
    n_workers = default_workers() if workers is None else workers
    if n_workers > 1:
        runner.prefitted = prefit_parallel(root, spec, cache_dir, clean, n_workers)
        runner.refresh = runner.refresh and not runner.prefitted  # refitted just now

    print("bayes-va paper: running analyses", file=sys.stderr)
    base_cfg = load_config(root / spec.base)
    base = runner.fit(base_cfg)

    sens_paths = expand(root, spec.sensitivity)
    scen = plan(sens_paths, root / spec.base, spec.leave_one_out)
    # the config file behind each fit, for the captions and the appendix (provenance)
    config_of = {base_cfg.name: spec.base}
    config_of |= {load_config(q).name: _rel(root, q) for q in sens_paths}
    config_of |= {s.name: f"{spec.base} (leave-one-out)" for s in scen if s.kind == "leave-one-out"}
    config_of |= {load_config(q).name: _rel(root, q) for q in expand(root, spec.subgroups)}
    config_of |= {load_config(q).name: _rel(root, q) for q in expand(root, spec.avf)}
    config_of |= {load_config(q).name: _rel(root, q) for q in expand(root, spec.compare.models)}
    sens_results: dict[str, FitResult] = {}
    sens_rows = []
    for s in scen:
        res = base if s.kind == "base" else runner.fit(s.config)
        sens_results[s.name] = res
        sens_rows.append(row(s, res))

    sens_table = pd.DataFrame(sens_rows)
    sub_results = {
        load_config(p).name: runner.fit(load_config(p)) for p in expand(root, spec.subgroups)
    }
    avf_results = [runner.fit(load_config(p)) for p in expand(root, spec.avf)]
    horizons = list(spec.avf_horizons_months)

    # ---- figures
    forest(base, figures / "forest.svg")  # studies as "Author Year" from the table
    plot_sensitivity(sens_table, figures / "sensitivity.svg")
    if sub_results:
        subgroups(
            {k: v for k, v in sub_results.items() if v.estimates.moderators.subgroups},
            figures / "subgroups.svg",
        )
    if avf_results and avf_results[0].config.model.moderators:
        followup_curve(avf_results[0], figures / "avf_followup.svg", outcome="AVF risk")

    # further outcomes ([[outcomes]]): their own section, kept out of the fit lists above
    outcomes = outcomes_sections(root, spec.outcomes, runner.fit, figures)
    for o in spec.outcomes:
        config_of[load_config(root / o.config).name] = o.config
        config_of |= {load_config(q).name: _rel(root, q) for q in expand(root, o.sensitivity)}

    compare_fits = []
    for p in expand(root, spec.compare.models):
        cfg = load_config(p)
        compare_fits.append(base if cfg.name == base_cfg.name else runner.fit(cfg))
    comparison = compare_section(compare_fits, figures) if compare_fits else None
    risk = risk_outputs(
        root,
        spec.risk.model_dump(),
        base,
        avf_results[0] if avf_results else None,
        build,
        data_hash=default_data_hash(base_cfg.data_dir),
    )

    # ---- results.json
    sens_json = []
    for r in sens_table.to_dict(orient="records"):
        r = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for k in ("compile_seconds", "sample_seconds", "fit_seconds"):
            r.pop(k)
        r["fmt"] = {
            "pooled": interval(
                {
                    "median": r["pooled_median"],
                    "lower": r["pooled_lower"],
                    "upper": r["pooled_upper"],
                }
            ),
            "predictive": interval(
                {
                    "median": r["predictive_median"],
                    "lower": r["predictive_lower"],
                    "upper": r["predictive_upper"],
                }
            ),
            "spread": f"{r['spread_name'].replace('tau', 'τ').replace('phi', 'φ')} "
            f"{r['spread_median']:.2f} ({r['spread_lower']:.2f}–{r['spread_upper']:.2f})",
            "glmm": (
                interval(
                    {"median": r["glmm_pooled"], "lower": r["glmm_lower"], "upper": r["glmm_upper"]}
                )
                if r["glmm_pooled"] is not None
                else "–"
            ),
            "status": "ok" if r["diagnostics_ok"] else "failed",
        }
        sens_json.append(r)
    loo = [r for r in sens_json if r["kind"] == "leave-one-out"]
    pooled_loo = [r["pooled_median"] for r in loo]
    n_failed = sum(not r["diagnostics_ok"] for r in sens_json)

    all_fits = {
        "base": base,
        **{k: v for k, v in sens_results.items() if k != base_cfg.name},
        **sub_results,
        **{r.config.name: r for r in avf_results},
    }
    cfg_b = base.config
    results = {
        "ci_pct": f"{100 * base.estimates.ci_prob:g} %",
        "data": data_section(base_cfg.data_dir),
        "base": fit_section(base),
        "base_priors": {"mu": str(cfg_b.priors.mu), "tau": str(cfg_b.priors.tau)},
        "sampler": {
            "backend": cfg_b.sampler.backend,
            "chains": cfg_b.sampler.chains,
            "tune": cfg_b.sampler.tune,
            "draws": cfg_b.sampler.draws,
            "seed": cfg_b.sampler.seed,
            "target_accept": cfg_b.sampler.target_accept,
            "parametrisation": cfg_b.model.parametrisation,
        },
        "thresholds": base.diagnostics.thresholds.to_dict(),
        "base_diagnostics": diagnostics_row("base", base),
        "sensitivity": sens_json,
        "sensitivity_summary": {
            "n_scenarios": sum(r["kind"] == "scenario" for r in sens_json),
            "n_loo": len(loo),
            "n_failed": n_failed,
            "loo_pooled_min": pct(min(pooled_loo), 2) if loo else "–",
            "loo_pooled_max": pct(max(pooled_loo), 2) if loo else "–",
            "scenario_pooled_min": pct(min(r["pooled_median"] for r in sens_json), 2),
            "scenario_pooled_max": pct(max(r["pooled_median"] for r in sens_json), 2),
        },
        "subgroups": [
            fit_section(r) | {"description": r.config.description} for r in sub_results.values()
        ],
        "avf": avf_section(avf_results, horizons),
        "risk": risk,
        "compare": comparison,
        "diagnostics": [diagnostics_row(k, v) for k, v in all_fits.items()],
        "reproducibility": {
            "versions": package_versions(),
            "checked_vars": list(CHECKED_VARS),
            "data_hash": data_folder_hash(base_cfg.data_dir),
            "lock_hash": lock_hash(root),
            "n_fits": len(all_fits),
        },
        "outcomes": outcomes,
        "robustness": robustness_section(root),
        "sbc": sbc_section(root),
        "provenance": provenance_section(
            all_fits, config_of, spec, compare_fits, sub_results, avf_results, outcomes
        ),
    }
    atomic.write_json(build / "results.json", round_floats(results))
    runner_total = time.perf_counter() - t_start
    atomic.write_json(
        build / "timings.json",
        {
            "fits": runner.timings,
            "analyses_seconds": runner_total,
            "fit_seconds_by_name": {
                k: None if (t := v.diagnostics.timings) is None else t.to_dict()
                for k, v in all_fits.items()
            },
        },
    )

    if compile_pdf:
        # lazy: the Typst compiler only when the PDF is built
        import typst

        t0 = time.perf_counter()
        pdf = typst.compile(str(paper_dir / "paper.typ"), root=str(root))
        atomic.write_bytes(build / "paper.pdf", pdf)
        print(
            f"bayes-va paper: wrote {build / 'paper.pdf'} (typst {time.perf_counter() - t0:.2f} s)",
            file=sys.stderr,
        )
        if not check_layout(build / "paper.pdf"):
            record_build(root, key, 1, compile_pdf)
            return 1
    record_build(root, key, 0, compile_pdf)
    print(
        f"bayes-va paper: done in {time.perf_counter() - t_start:.1f} s "
        f"({sum(not t['cached'] for t in runner.timings.values())} fits run, "
        f"{sum(t['cached'] for t in runner.timings.values())} from cache)",
        file=sys.stderr,
    )
    return 0
