"""Build the paper: run the declared analyses, write ``results.json`` and figures, compile Typst.

``paper/analyses.toml`` declares what the paper needs. Each fit is cached by the hash of its
config, data and code (:mod:`bayes_va.cache`), so a rebuild after changing one config refits
only that config. ``paper/build/results.json`` holds every number the text shows (raw values and
the formatted strings Typst prints) and no timestamps: two builds give identical bytes. Wall
times go to ``paper/build/timings.json``.
"""

from __future__ import annotations

import glob
import hashlib
import shutil
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from . import atomic
from .cache import cached_fit
from .config import Config, find_root, load_config
from .data import load_table
from .diagnostics import CHECKED_VARS
from .plots import followup_curve, forest, subgroups
from .provenance import data_files_hash, package_versions
from .results import FitResult
from .sensitivity import plan, row
from .sensitivity import plot as plot_sensitivity

ANALYSES_KEYS = {
    "base",
    "sensitivity",
    "leave_one_out",
    "subgroups",
    "avf",
    "avf_horizons_months",
    "risk",
    "compare",
}
RISK_KEYS = {"revision_baseline", "transport", "avf_horizon_months", "threshold"}


# ----------------------------------------------------------------------------- formatting


def pct(x: float, digits: int = 1) -> str:
    """A proportion as a percentage string: 0.0403 -> '4.0 %'."""
    return f"{100 * x:.{digits}f} %"


def interval(s: dict[str, float], digits: int = 1, key: str = "median") -> str:
    """'4.0 % (2.3–6.8 %)' from a summary with median/lower/upper."""
    m, lo, hi = (f"{100 * s[k]:.{digits}f}" for k in (key, "lower", "upper"))
    return f"{m} % ({lo}–{hi} %)"


def num(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def num_interval(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['lower']:.{digits}f}–{s['upper']:.{digits}f})"


def _round(obj: Any, sig: int = 10) -> Any:
    """Round floats to ``sig`` significant digits so results.json is stable across platforms'
    last-bit differences; the text shows far fewer digits."""
    if isinstance(obj, float):
        return float(f"{obj:.{sig}g}") if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _round(v, sig) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v, sig) for v in obj]
    if isinstance(obj, np.generic):
        return _round(obj.item(), sig)
    return obj


# ----------------------------------------------------------------------------- analyses


def load_analyses(path: Path) -> dict[str, Any]:
    """Read and check ``paper/analyses.toml``."""
    with path.open("rb") as fh:
        spec = tomllib.load(fh)
    unknown = set(spec) - ANALYSES_KEYS
    unknown |= {f"risk.{k}" for k in set(spec.get("risk", {})) - RISK_KEYS}
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {sorted(unknown)}; allowed {sorted(ANALYSES_KEYS)}"
        )
    return spec


def _expand(root: Path, patterns: list[str]) -> list[Path]:
    out: list[Path] = []
    for pat in patterns:
        hits = sorted(Path(p) for p in glob.glob(str(root / pat)))
        if not hits:
            raise FileNotFoundError(f"paper/analyses.toml: {pat!r} matches no file")
        out.extend(hits)
    return out


class _Runner:
    """Fits configs through the cache and keeps the wall times."""

    def __init__(self, cache_dir: Path, refresh: bool) -> None:
        self.cache_dir, self.refresh = cache_dir, refresh
        self.timings: dict[str, dict[str, Any]] = {}

    def fit(self, cfg: Config) -> FitResult:
        t0 = time.perf_counter()
        result, hit = cached_fit(cfg, self.cache_dir, self.refresh)
        self.timings[cfg.name] = {"seconds": time.perf_counter() - t0, "cached": hit}
        status = "cached" if hit else f"fitted in {time.perf_counter() - t0:.1f} s"
        print(f"  {cfg.name}: {status}", file=sys.stderr, flush=True)
        return result


def _diagnostics_row(name: str, r: FitResult) -> dict[str, Any]:
    d = r.diagnostics
    return {
        "name": name,
        "k": r.estimates["k"],
        "max_rhat": d["max_rhat"],
        "min_ess_bulk": d["min_ess_bulk"],
        "min_ess_tail": d["min_ess_tail"],
        "divergences": d["divergences"],
        "min_bfmi": d["min_bfmi"],
        "ok": d["ok"],
        "fmt": {
            "max_rhat": f"{d['max_rhat']:.3f}",
            "min_ess_bulk": f"{d['min_ess_bulk']:.0f}",
            "min_ess_tail": f"{d['min_ess_tail']:.0f}",
            "min_bfmi": f"{d['min_bfmi']:.2f}",
        },
    }


def _data_section(data_dir: Path) -> dict[str, Any]:
    rev = load_table("revision", data_dir)
    arms = load_table("revision_arms", data_dir)
    variants = load_table("revision_variants", data_dir)
    pub = load_table("published_estimates", data_dir).set_index("estimate_id")
    review = pub.loc["review_pooled_revision"]
    studies = []
    for r in rev.itertuples():
        studies.append(
            {
                "study_id": r.study_id,
                "author": r.author,
                "year": int(r.year),
                "ref": int(r.review_ref),
                "procedure": r.procedure,
                "design": r.design,
                "database": r.database,
                "n": int(r.n),
                "events": int(r.events),
                "rate_text": r.rate_text,
                "followup_text": r.followup_text,
                "outcome": r.outcome,
                "rob_selection": r.rob_selection,
                "rob_reporting": r.rob_reporting,
                "n_fmt": f"{int(r.n):,}",
                "events_fmt": f"{int(r.events):,}",
            }
        )
    return {
        "k": len(rev),
        "n_total": int(rev["n"].sum()),
        "events_total": int(rev["events"].sum()),
        "n_total_fmt": f"{int(rev['n'].sum()):,}",
        "n_database": int((rev["database"] == "yes").sum()),
        "studies": studies,
        "hazzard_arms": [
            {"arm": a.arm, "n": int(a.n), "events": int(a.events), "rate_text": a.rate_text}
            for a in arms.itertuples()
        ],
        "lin_variants": [
            {
                "variant": v.variant_id,
                "action": v.action,
                "events": None if pd.isna(v.events) else int(v.events),
                "resolution": v.resolution,
            }
            for v in variants.itertuples()
        ],
        "review": {
            "value": float(review["value"]),
            "lower": float(review["lower"]),
            "upper": float(review["upper"]),
            "fmt": f"{float(review['value']):.2f} ({float(review['lower']):.2f}–"
            f"{float(review['upper']):.2f})",
        },
        "files": data_files_hash(data_dir),
    }


def _fit_section(r: FitResult) -> dict[str, Any]:
    e = r.estimates
    b = e["bayes"]
    out: dict[str, Any] = {
        "name": r.config.name,
        "k": e["k"],
        "family": e["family"],
        "bayes": b,
        "exact": e["exact"],
        "glmm": e["glmm"],
        "config": r.config.to_dict(),
        "fmt": {
            "pooled": interval(b["pooled"]),
            "predictive": interval(b["predictive"]),
            "pooled_median": pct(b["pooled"]["median"]),
        },
    }
    if "tau" in b:
        out["fmt"]["tau"] = num_interval(b["tau"])
    if "phi" in b:
        out["fmt"]["phi"] = num_interval(b["phi"], 1)
    if e["glmm"]:
        g = e["glmm"]
        out["fmt"]["glmm"] = (
            f"{100 * g['pooled']:.2f} % ({100 * g['pooled_ci'][0]:.2f}–"
            f"{100 * g['pooled_ci'][1]:.2f} %)"
        )
        out["fmt"]["glmm_tau2"] = f"{g['tau2']:.3f}"
        out["fmt"]["glmm_tau"] = f"{g['tau']:.3f}"
    if e["exact"]:
        out["fmt"]["exact_pooled"] = interval(e["exact"]["pooled"], 2)
        out["fmt"]["exact_tau"] = num_interval(e["exact"]["tau"], 3)
        out["fmt"]["exact_predictive"] = interval(e["exact"]["predictive"], 2)
        out["fmt"]["mcmc_pooled_2"] = interval(b["pooled"], 2)
        out["fmt"]["mcmc_tau_3"] = num_interval(b["tau"], 3)
        out["fmt"]["mcmc_predictive_2"] = interval(b["predictive"], 2)
    mods = e.get("moderators", {})
    if mods.get("coefficients"):
        out["coefficients"] = [
            {**v, "fmt": f"{v['or_median']:.2f} ({v['or_lower']:.2f}–{v['or_upper']:.2f})"}
            for v in mods["coefficients"]
        ]
        out["subgroups"] = [{**s, "fmt": interval(s)} for s in mods["subgroups"]]
    return out


def _avf_section(results: list[FitResult], horizons: list[float]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        sec = _fit_section(r)
        sec["description"] = r.config.description
        sec["horizons"] = []
        if r.config.model.moderators:
            mod = r.config.model.moderators[0]
            for h in horizons:
                draws = expit(r.linear_predictor({mod: h}).values.ravel())
                lo, med, hi = np.quantile(draws, [0.025, 0.5, 0.975])
                s = {"median": float(med), "lower": float(lo), "upper": float(hi)}
                sec["horizons"].append(
                    {"months": h, "months_fmt": f"{h:g}", **s, "fmt": interval(s)}
                )
            ref = r.config.model.reference.get(mod)
            sec["reference_fmt"] = f"{ref:g} months" if ref is not None else "the median"
        out.append(sec)
    return out


def _compare_section(fits: list[FitResult], figures: Path) -> dict[str, Any]:
    """Marginal PSIS-LOO per model, checked against exact leave-one-study-out where it exists,
    and the ``az.compare`` table."""
    import warnings

    from .compare import compare_models, plot_comparison
    from .loo import LooReliabilityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LooReliabilityWarning)  # reported in the table instead
        cmp = compare_models({f.config.name: f for f in fits})
    plot_comparison(cmp, figures / "compare.svg")
    rows = []
    for rec in cmp.to_dict()["table"]:
        loo = cmp.loos[rec["model"]]
        rows.append(
            {
                "model": rec["model"],
                "description": next(
                    f.config.description for f in fits if f.config.name == rec["model"]
                ),
                "elpd": rec["elpd"],
                "se": rec["se"],
                "elpd_diff": rec["elpd_diff"],
                "dse": rec["dse"],
                "weight": rec["weight"],
                "max_k": loo.max_k,
                "reliable": loo.reliable,
                "exact": loo.exact_elpd,
                "fmt": {
                    "elpd": f"{rec['elpd']:.1f} ({rec['se']:.1f})",
                    "diff": f"{rec['elpd_diff']:.1f} ({rec['dse']:.1f})",
                    "weight": f"{rec['weight']:.2f}",
                    "max_k": f"{loo.max_k:.2f}",
                    "exact": f"{loo.exact_elpd:.1f}" if loo.exact_elpd is not None else "–",
                },
            }
        )
    return {"rows": rows, "reliable": cmp.reliable, "caveats": cmp.caveats(), "best": cmp.best}


def _risk_section(
    spec: dict[str, Any], base: FitResult, avf: FitResult | None, figures: Path
) -> dict[str, Any]:
    """Example-profile risks for recompression, revision and AVF, the within-study AVF
    contrasts and what a repeat procedure achieves (Gaughen 2002)."""
    import warnings

    from .outcomes import avf_contrasts, contrast_table, gaughen_table
    from .risk import (
        EXAMPLE_PROFILES,
        TransportPrior,
        avf_model,
        recompression_model,
        revision_model,
        write_figures,
    )

    threshold = float(spec.get("threshold", 0.1))
    models = {
        "recompression": recompression_model(),
        "revision": revision_model(
            base,
            baseline=spec.get("revision_baseline", "pooled"),
            transport=TransportPrior.parse(spec.get("transport", "beta:2,2")),
        ),
    }
    if avf is not None and avf.config.model.moderators:
        models["avf"] = avf_model(avf, horizon_months=float(spec.get("avf_horizon_months", 12)))
    profiles = [{"id": k, **v} for k, v in EXAMPLE_PROFILES.items()]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # example profiles lie inside the cohort's range
        for outcome, m in models.items():
            for r in m.summarise(profiles, threshold=threshold).to_dict(orient="records"):
                s = {"median": r["median"], "lower": r["lower"], "upper": r["upper"]}
                rows.append(
                    {
                        "outcome": outcome,
                        "profile": r["id"],
                        **s,
                        "p_above": r["p_above_threshold"],
                        "per_1000": r["per_1000"],
                        "fmt": interval(s),
                        "p_above_fmt": f"{r['p_above_threshold']:.2f}",
                        "per_1000_fmt": f"{r['per_1000']:.0f}",
                    }
                )
        write_figures(figures / "risk", models, EXAMPLE_PROFILES, threshold=threshold)
    contrasts = []
    for c in contrast_table(avf_contrasts()).to_dict(orient="records"):
        c = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in c.items()}
        c["fmt"] = f"{c['or_median']:.2f} ({c['or_lower']:.2f}–{c['or_upper']:.2g})"
        c["counts_fmt"] = f"{c['events1']}/{c['n1']} vs {c['events0']}/{c['n0']}"
        contrasts.append(c)
    gaughen = []
    for g in gaughen_table().to_dict(orient="records"):
        g["fmt"] = interval(g)
        g["mean_fmt"] = f"{g['mean']:.2f}"
        gaughen.append(g)
    profile_text = {
        k: ", ".join(f"{c} {v}" for c, v in p.items()) for k, p in EXAMPLE_PROFILES.items()
    }
    return {
        "threshold_fmt": f"{threshold:g}",
        "transport": spec.get("transport", "beta:2,2"),
        "revision_baseline": spec.get("revision_baseline", "pooled"),
        "avf_horizon_fmt": f"{float(spec.get('avf_horizon_months', 12)):g}",
        "profiles": [{"id": k, "text": t} for k, t in profile_text.items()],
        "rows": rows,
        "outcomes": list(models),
        "contrasts": contrasts,
        "gaughen": gaughen,
    }


def build_paper(
    clean: bool = False, root: str | Path | None = None, compile_pdf: bool = True
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

    Returns
    -------
    int
        Exit code: 0 when every analysis ran (fits failing diagnostics are reported in the
        paper, not hidden).
    """
    t_start = time.perf_counter()
    root = Path(root) if root else find_root(Path.cwd().resolve())
    paper_dir = root / "paper"
    build = paper_dir / "build"
    figures = build / "figures"
    if clean and build.exists():
        shutil.rmtree(build)
    figures.mkdir(parents=True, exist_ok=True)
    cache_dir = root / "results" / "cache"
    spec = load_analyses(paper_dir / "analyses.toml")
    runner = _Runner(cache_dir, refresh=clean)

    print("bayes-va paper: running analyses", file=sys.stderr)
    base_cfg = load_config(root / spec["base"])
    base = runner.fit(base_cfg)

    scen = plan(
        _expand(root, spec.get("sensitivity", [])),
        root / spec["base"],
        spec.get("leave_one_out", True),
    )
    sens_results: dict[str, FitResult] = {}
    sens_rows = []
    for s in scen:
        res = base if s.kind == "base" else runner.fit(s.config)
        sens_results[s.name] = res
        sens_rows.append(row(s, res))

    sens_table = pd.DataFrame(sens_rows)
    sub_results = {
        load_config(p).name: runner.fit(load_config(p))
        for p in _expand(root, spec.get("subgroups", []))
    }
    avf_results = [runner.fit(load_config(p)) for p in _expand(root, spec.get("avf", []))]
    horizons = [float(h) for h in spec.get("avf_horizons_months", [12.0])]

    # ---- figures
    labels = {s: s for s in base.data.study}
    forest(base, figures / "forest.svg", labels)
    plot_sensitivity(sens_table, figures / "sensitivity.svg")
    if sub_results:
        subgroups(
            {k: v for k, v in sub_results.items() if v.estimates["moderators"]["subgroups"]},
            figures / "subgroups.svg",
        )
    if avf_results and avf_results[0].config.model.moderators:
        followup_curve(avf_results[0], figures / "avf_followup.svg", outcome="AVF risk")

    compare_fits = []
    for p in _expand(root, spec.get("compare", {}).get("models", [])):
        cfg = load_config(p)
        compare_fits.append(base if cfg.name == base_cfg.name else runner.fit(cfg))
    comparison = _compare_section(compare_fits, figures) if compare_fits else None
    risk = _risk_section(
        spec.get("risk", {}), base, avf_results[0] if avf_results else None, figures
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
        "ci_pct": f"{100 * base.estimates['ci_prob']:g} %",
        "data": _data_section(base_cfg.data_dir),
        "base": _fit_section(base),
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
        "thresholds": {k: v for k, v in base.diagnostics["thresholds"].items()},
        "base_diagnostics": _diagnostics_row("base", base),
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
            _fit_section(r) | {"description": r.config.description} for r in sub_results.values()
        ],
        "avf": _avf_section(avf_results, horizons),
        "risk": risk,
        "compare": comparison,
        "diagnostics": [_diagnostics_row(k, v) for k, v in all_fits.items()],
        "reproducibility": {
            "versions": package_versions(),
            "checked_vars": list(CHECKED_VARS),
            "data_hash": hashlib.sha256(
                "".join(sorted(data_files_hash(base_cfg.data_dir).values())).encode()
            ).hexdigest(),
            "n_fits": len(all_fits),
        },
    }
    atomic.write_json(build / "results.json", _round(results))
    runner_total = time.perf_counter() - t_start
    atomic.write_json(
        build / "timings.json",
        {
            "fits": runner.timings,
            "analyses_seconds": runner_total,
            "fit_seconds_by_name": {k: v.diagnostics["timings"] for k, v in all_fits.items()},
        },
    )

    if compile_pdf:
        import typst

        t0 = time.perf_counter()
        pdf = typst.compile(str(paper_dir / "paper.typ"), root=str(root))
        atomic.write_bytes(build / "paper.pdf", pdf)
        print(
            f"bayes-va paper: wrote {build / 'paper.pdf'} (typst {time.perf_counter() - t0:.2f} s)",
            file=sys.stderr,
        )
    print(
        f"bayes-va paper: done in {time.perf_counter() - t_start:.1f} s "
        f"({sum(not t['cached'] for t in runner.timings.values())} fits run, "
        f"{sum(t['cached'] for t in runner.timings.values())} from cache)",
        file=sys.stderr,
    )
    return 0
