"""The sections of ``paper/build/results.json``, built from fitted results.

Each section holds the raw numbers and the formatted strings (``fmt``) the Typst source prints
(see :mod:`bayes_va.workflows.paper`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from bayes_va.checking.compare import compare_models
from bayes_va.checking.loo import LooReliabilityWarning
from bayes_va.data.tables import load_table
from bayes_va.fitting.estimates import Interval
from bayes_va.fitting.provenance import data_files_hash
from bayes_va.fitting.results import FitResult
from bayes_va.numerics.outcomes import avf_contrasts, contrast_table, gaughen_table
from bayes_va.risk import (
    EXAMPLE_PROFILES,
    PROFILE_QUANTITY,
    SOURCES,
    RiskModel,
    TransportPrior,
    avf_model,
    describe_profile,
    recompression_model,
    revision_model,
)
from bayes_va.viz.checks import plot_comparison
from bayes_va.viz.plots import study_label
from bayes_va.viz.risk import write_figures

# ----------------------------------------------------------------------------- formatting


def pct(x: float, digits: int = 1) -> str:
    """Format a proportion as a percentage string: 0.0403 -> '4.0 %'."""
    return f"{100 * x:.{digits}f} %"


def interval(s: Mapping[str, float] | Interval, digits: int = 1, key: str = "median") -> str:
    """Format a summary with ``key``/lower/upper as percentages: '4.0 % (2.3–6.8 %)'."""
    d = s.to_dict() if isinstance(s, Interval) else s
    m, lo, hi = (f"{100 * d[k]:.{digits}f}" for k in (key, "lower", "upper"))
    return f"{m} % ({lo}–{hi} %)"


def num(x: float, digits: int = 2) -> str:
    """Format a number with ``digits`` decimals."""
    return f"{x:.{digits}f}"


def num_interval(s: Interval, digits: int = 2) -> str:
    """Format a summary with median/lower/upper on its own scale: '0.91 (0.55–1.52)'."""
    return f"{s.median:.{digits}f} ({s.lower:.{digits}f}–{s.upper:.{digits}f})"


def round_floats(obj: Any, sig: int = 10) -> Any:
    """Round every float in a nested result to ``sig`` significant digits (NaN/inf to None).

    This keeps results.json stable across platforms' last-bit differences; the text shows far
    fewer digits. Numpy scalars become Python ones, tuples become lists.
    """
    if isinstance(obj, float):
        return float(f"{obj:.{sig}g}") if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: round_floats(v, sig) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_floats(v, sig) for v in obj]
    if isinstance(obj, np.generic):
        return round_floats(obj.item(), sig)
    return obj


# ----------------------------------------------------------------------------- sections


def diagnostics_row(name: str, r: FitResult) -> dict[str, Any]:
    """Summarise a fit's convergence diagnostics as one row of the paper's diagnostics table."""
    d = r.diagnostics
    return {
        "name": name,
        "k": r.estimates.k,
        "max_rhat": d.max_rhat,
        "min_ess_bulk": d.min_ess_bulk,
        "min_ess_tail": d.min_ess_tail,
        "divergences": d.divergences,
        "min_bfmi": d.min_bfmi,
        "ok": d.ok,
        "fmt": {
            "max_rhat": f"{d.max_rhat:.3f}",
            "min_ess_bulk": f"{d.min_ess_bulk:.0f}",
            "min_ess_tail": f"{d.min_ess_tail:.0f}",
            "min_bfmi": f"{d.min_bfmi:.2f}",
        },
    }


def data_section(data_dir: Path) -> dict[str, Any]:
    """Describe the evidence: the revision studies, Hazzard's arms, Lin's variants, the review.

    Also the hash of the data files, so the paper names the data it was built from.
    """
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


def fit_section(r: FitResult) -> dict[str, Any]:
    """Report one fit: its estimates (Bayesian, exact, GLMM), config and moderator effects."""
    e = r.estimates
    raw = e.to_dict()  # the numbers as estimates.json holds them
    out: dict[str, Any] = {
        "name": r.config.name,
        "k": e.k,
        "family": e.family,
        "bayes": raw["bayes"],
        "exact": raw["exact"],
        "glmm": raw["glmm"],
        "config": r.config.to_dict(),
        "fmt": {
            "pooled": interval(e.pooled),
            "predictive": interval(e.predictive),
            "pooled_median": pct(e.pooled.median),
        },
    }
    if e.tau is not None:
        out["fmt"]["tau"] = num_interval(e.tau)
    if e.phi is not None:
        out["fmt"]["phi"] = num_interval(e.phi, 1)
    if (g := e.glmm) is not None:
        out["fmt"]["glmm"] = (
            f"{100 * g.pooled:.2f} % ({100 * g.pooled_ci[0]:.2f}–{100 * g.pooled_ci[1]:.2f} %)"
        )
        out["fmt"]["glmm_tau2"] = f"{g.tau2:.3f}"
        out["fmt"]["glmm_tau"] = f"{g.tau:.3f}"
    if (x := e.exact) is not None and x.tau is not None and e.tau is not None:
        out["fmt"]["exact_pooled"] = interval(x.pooled, 2)
        out["fmt"]["exact_tau"] = num_interval(x.tau, 3)
        out["fmt"]["exact_predictive"] = interval(x.predictive, 2)
        out["fmt"]["mcmc_pooled_2"] = interval(e.pooled, 2)
        out["fmt"]["mcmc_tau_3"] = num_interval(e.tau, 3)
        out["fmt"]["mcmc_predictive_2"] = interval(e.predictive, 2)
    if e.moderators.coefficients:
        out["coefficients"] = [
            {**c.to_dict(), "fmt": f"{c.or_median:.2f} ({c.or_lower:.2f}–{c.or_upper:.2f})"}
            for c in e.moderators.coefficients
        ]
        out["subgroups"] = [{**s.to_dict(), "fmt": interval(s)} for s in e.moderators.subgroups]
    return out


def avf_section(results: list[FitResult], horizons: list[float]) -> list[dict[str, Any]]:
    """Report each AVF fit, with the pooled risk at each follow-up horizon (months).

    The horizons apply to fits with a moderator (the first one is taken as follow-up).
    """
    out = []
    for r in results:
        sec = fit_section(r)
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


def outcome_section(
    key: str,
    title: str,
    result: FitResult,
    sensitivity: Sequence[FitResult] = (),
    figure: str | None = None,
) -> dict[str, Any]:
    """Report one further outcome of ``paper/analyses.toml``'s ``[[outcomes]]``, from its fits.

    Nothing here knows the outcome: the section is the main fit's :func:`fit_section` plus the
    totals, a crude pooled proportion, the diagnostics, one row per study and one row per
    sensitivity fit, so that ``paper.typ`` renders any outcome the same way.

    Parameters
    ----------
    key, title : str
        The entry's identifier and heading.
    result : FitResult
        The outcome's main fit.
    sensitivity : sequence of FitResult
        Its sensitivity fits, in the declared order.
    figure : str, optional
        The forest plot's path relative to ``paper/build`` (None: no figure).

    Returns
    -------
    dict
        Raw numbers and the formatted strings (``fmt``) the text prints.
    """
    data, e = result.data, result.estimates
    events, n = int(data.y.sum()), int(data.n.sum())
    rows = {str(r["study_id"]): r for r in data.table.to_dict(orient="records")}
    studies = []
    for s in e.studies:
        studies.append(
            {
                **s.to_dict(),
                "label": study_label(rows.get(s.study, {}), s.study),
                "fmt": {
                    "n": f"{s.n:,}",
                    "events": f"{s.events:,}",
                    "observed": pct(s.observed),
                    "shrunken": interval(
                        {
                            "median": s.shrunken_median,
                            "lower": s.shrunken_lower,
                            "upper": s.shrunken_upper,
                        }
                    ),
                    "ppc_p": f"{s.ppc_p:.2f}",
                },
            }
        )

    out = _outcome_fit(result)
    out.update(
        key=key,
        title=title,
        table=str(result.config.data.table),
        n_total=n,
        events_total=events,
        crude=events / n,
        studies=studies,
        sensitivity=[_outcome_fit(r) for r in sensitivity],
        figure=figure,
    )
    out["fmt"].update(
        n_total=f"{n:,}",
        events_total=f"{events:,}",
        crude=pct(events / n, 2),
    )
    return out


def _outcome_fit(r: FitResult) -> dict[str, Any]:
    """Report one fit of an outcome: :func:`fit_section`, its description and diagnostics."""
    e = r.estimates
    sec = fit_section(r)
    sec["description"] = r.config.description
    sec["diagnostics"] = diagnostics_row(r.config.name, r)
    # the spread by name, so one table column serves logit-normal and beta-binomial fits
    spread = (
        f"τ {num_interval(e.spread)}" if e.tau is not None else f"φ {num_interval(e.spread, 1)}"
    )
    sec["fmt"]["spread"] = spread
    sec["fmt"]["status"] = "ok" if r.diagnostics.ok else "failed"
    return sec


def compare_section(fits: list[FitResult], figures: Path) -> dict[str, Any]:
    """Compare models by marginal PSIS-LOO (``az.compare``) and draw the comparison figure.

    Each model's LOO is checked against exact leave-one-study-out where it exists.
    """
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


def risk_section(
    spec: dict[str, Any],
    base: FitResult,
    avf: FitResult | None,
    figures: Path,
    models: dict[str, RiskModel] | None = None,
) -> dict[str, Any]:
    """Report example-profile risks for recompression, revision and AVF, and write their figures.

    Also the within-study AVF contrasts and what a repeat procedure achieves (Gaughen 2002).
    ``models``: :func:`paper_risk_models` of the same arguments, when the caller built them.
    """
    threshold = float(spec.get("threshold", 0.1))
    models = paper_risk_models(spec, base, avf) if models is None else models
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
                        "quantity": PROFILE_QUANTITY,
                        **s,
                        "p_above": r["p_above_threshold"],
                        "per_1000": r["per_1000"],
                        "fmt": interval(s),
                        "p_above_fmt": f"{r['p_above_threshold']:.2f}",
                        "per_1000_fmt": f"{r['per_1000']:.0f}",
                    }
                )
        write_figures(figures / "risk", models, EXAMPLE_PROFILES, threshold=threshold)
        decomposition = risk_decomposition(models, profiles)
    population = [
        {
            "outcome": outcome,
            **(pop := m.population_risk()),
            "fmt": interval(pop),
        }
        for outcome, m in models.items()
    ]
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
        "profiles": [
            {"id": k, "text": t, "clinical": describe_profile(EXAMPLE_PROFILES[k])}
            for k, t in profile_text.items()
        ],
        "rows": rows,
        "population": population,
        "decomposition": decomposition,
        "outcomes": list(models),
        "contrasts": contrasts,
        "gaughen": gaughen,
    }


#: Columns of the paper's variance-split table, in order (keys of ``bayes_va.risk.SOURCES``).
DECOMPOSITION_SOURCES = ("baseline", "effects", "transport", "cohort", "integration", "remainder")


def risk_decomposition(
    models: Mapping[str, RiskModel], profiles: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Split each example profile's risk variance over its sources, for ``results.json``.

    Parameters
    ----------
    models : mapping
        Outcome → risk model (:func:`paper_risk_models`).
    profiles : sequence of mapping
        Profiles with an ``id`` (the paper's examples).

    Returns
    -------
    dict
        ``correlation`` (the copula's correlation prior in words), ``sources`` (key →
        words), ``rows``: per outcome and profile the ``logit`` and
        ``risk`` shares of each source (absent sources 0), the total variances, and ``fmt``
        (risk-scale shares as whole percentages, "–" for a source the outcome does not have).
    """
    rows = []
    for outcome, m in models.items():
        if m.calibration is None:
            continue
        table = m.explain(list(profiles), warn=False)
        for pid, part in table.groupby("id", sort=False):
            by = part.set_index(["scale", "source"])
            row: dict[str, Any] = {
                "outcome": outcome,
                "profile": pid,
                "quantity": PROFILE_QUANTITY,
            }
            fmt = {}
            for scale in ("logit", "risk"):
                shares = {
                    src: float(by.loc[(scale, src), "share"]) if (scale, src) in by.index else 0.0
                    for src in DECOMPOSITION_SOURCES
                }
                row[scale] = {**shares, "total": float(by.loc[(scale, "total"), "variance"])}
            for src in DECOMPOSITION_SOURCES:
                present = ("risk", src) in by.index
                text = f"{100 * row['risk'][src]:.0f} %".replace("-0 %", "0 %")
                fmt[src] = text if present else "–"
            row["fmt"] = fmt
            rows.append(row)
    specs = [m.calibration.spec for m in models.values() if m.calibration is not None]
    correlation = next((s.correlation for s in specs if s is not None), "none")
    return {
        "sources": {k: SOURCES[k] for k in DECOMPOSITION_SOURCES},
        "rows": rows,
        "correlation": correlation,
    }


def _bench_report(root: Path, name: str) -> dict[str, Any] | None:
    """Read a committed benchmark report (``bench/reports/NAME.json``); None if not measured."""
    path = root / "bench" / "reports" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def robustness_section(root: Path) -> dict[str, Any] | None:
    """Report the headline of ``bench/bench_robustness.py`` for the paper (None if not run)."""
    rep = _bench_report(root, "robustness")
    if rep is None:
        return None
    g = rep["grid"][rep["default"]]

    def div_pct(par: str) -> str:
        s = rep["grid"].get(par)
        return pct(s["fits_with_divergences"] / s["fits"], 1) if s else "–"

    public = [r for r in rep["public"] if r["parametrisation"] == rep["default"]]
    d = rep["design"]
    ks = [x[1:] for x in d["designs"] if x.startswith("k")]
    zeros = max((r["zero_event_studies"] for r in public), default=0)
    return {
        "date": rep["date"],
        "grid_fits": f"{g['fits']:,}",
        "design": (
            f"k = {', '.join(ks)} studies with sizes log-uniform from {d['n_range'][0]:,} to "
            f"{d['n_range'][1]:,}, or the {d['revision_k']} revision studies' sizes; pooled "
            f"proportion {', '.join(f'{100 * p:g} %' for p in d['pooled'])}; τ "
            f"{', '.join(f'{t:g}' for t in d['tau'])}; zero-event studies as they fell"
        ),
        "pass_pct": pct(g["pass_rate"], 1),
        "target_pass": pct(d["target_pass"], 1),
        "div_fits": f"{g['fits_with_divergences']:,}",
        "agree_pct": pct(g["agree_rate"], 1),
        "target_agree": pct(d["target_agree"], 0),
        "z_max": f"{d['z_max']:g}",
        "centred_div_pct": div_pct("centred"),
        "noncentred_div_pct": div_pct("noncentred"),
        "public_n": len(public),
        "public_ok": sum(r["ok"] for r in public),
        "public_max_zero": zeros,
        "ess_ratio": f"{rep['revision_ratio']['sampling']:.2f}",
        "ess_ratio_fit": f"{rep['revision_ratio']['whole_fit']:.2f}",
        "targets": rep["targets"],
    }


def sbc_section(root: Path) -> dict[str, Any] | None:
    """Report the headline of the base model's SBC benchmark (``bench/reports/sbc_base.json``)."""
    rep = _bench_report(root, "sbc_base")
    if rep is None or "verdict" not in rep:
        return None
    n = rep["fitted"]
    div = rep.get("fits_with_divergences")
    return {
        "n": f"{n:,}",
        "verdict": rep["verdict"],
        "div_fits": "–" if div is None else f"{div} ({pct(div / n, 2)})",
    }


def paper_risk_models(
    spec: Mapping[str, Any], base: Any, avf: Any | None = None
) -> dict[str, RiskModel]:
    """Build the paper's risk models (the one definition ``risk_section`` and the page use).

    Parameters
    ----------
    spec : mapping
        ``[risk]`` of ``paper/analyses.toml`` (``revision_baseline``, ``transport``,
        ``avf_horizon_months``).
    base : FitResult or revision baseline source
        The base fit (revision baseline).
    avf : FitResult, optional
        The AVF meta-regression; AVF is left out without it or without moderators.
    """
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
    return models
