"""The interactive risk supplement: one self-contained HTML page (``paper/build/risk.html``).

The page scores a patient in the browser from the posterior draws of the risk layer
(:mod:`bayes_va.risk`), embedded in the file: per draw the calibrated intercept ``alpha_s``, the
effect vector ``beta_s`` (transported effects already times ``lambda_s``) and the reference
profile ``x_ref``, so the page computes ``expit(alpha_s + (x - x_ref) . beta_s)`` exactly as
:meth:`~bayes_va.risk.RiskModel.summarise` does, and the same quantile rule (numpy's
``linear``). Draws are float64, base64-encoded; with every draw embedded the page reproduces the
CLI to rounding. Fewer draws (``max_draws``) keep every ``k``-th draw and cost the Monte-Carlo
error the page states (:func:`quantile_mcse`).

The covariates (levels, accepted spellings, allowed limits), the cohort ranges beyond which a
value is an extrapolation, and :data:`~bayes_va.risk.constants.EXTRAPOLATION_SDS` are exported
from the risk layer into the page data: one definition for the CLI and the page.
"""

from __future__ import annotations

import base64
import html
import json
import math
import sys
import warnings
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bayes_va.config.risk import TransportPrior
from bayes_va.core import atomic
from bayes_va.data.tables import default_data_dir
from bayes_va.fitting.provenance import data_folder_hash
from bayes_va.risk import (
    CI_PROB,
    COVARIATES,
    DEFAULT_SEED,
    EXAMPLE_PROFILES,
    EXTRAPOLATION_SDS,
    RiskModel,
)
from bayes_va.risk.constants import FloatArray
from bayes_va.workflows.paper_sections import paper_risk_models

#: Pages above this size print a warning (the issue's budget: about 2 MB).
MAX_PAGE_BYTES = 2_000_000
#: Sections of ``paper/paper.typ`` the page refers to, by name.
PAPER_SECTIONS = {
    "risk": "Patient-level risk",
    "data": "Data and provenance",
    "methods": "Methods",
    "limitations": "Limitations",
    "reproducibility": "Reproducibility",
}
_TEMPLATE = "risk_page.html"
_DATA_MARK = "/*__RISK_DATA__*/"




def quantile_mcse(draws: FloatArray, prob: float) -> float:
    """Return the Monte-Carlo standard error of the ``prob`` quantile of independent draws.

    Order-statistic method: the ranks ``S p -+ z sqrt(S p (1 - p))`` (z of a central 68.3 %
    interval) bracket the quantile with that probability; half their distance is the SE.
    """
    x = np.sort(np.asarray(draws, dtype=float))
    s = x.size
    half = math.sqrt(s * prob * (1.0 - prob))
    lo = int(np.clip(math.floor(s * prob - half), 0, s - 1))
    hi = int(np.clip(math.ceil(s * prob + half), 0, s - 1))
    return float((x[hi] - x[lo]) / 2.0)


def _b64(values: FloatArray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def _thin(n: int, max_draws: int) -> tuple[np.ndarray, int]:
    step = max(1, math.ceil(n / max_draws))
    return np.arange(0, n, step), step


def _covariate_data() -> dict[str, Any]:
    out = {}
    for name, c in COVARIATES.items():
        out[name] = {
            "label": c.label,
            "kind": c.kind,
            "levels": list(c.levels),
            "aliases": dict(c.aliases),
            "limits": list(c.limits) if c.limits else None,
            "required": c.required,
            "allowed": c.allowed(),
            "columns": list(c.columns),
        }
    return out


def _interval(values: FloatArray, ci_prob: float = CI_PROB) -> dict[str, float]:
    a = (1.0 - ci_prob) / 2.0
    lo, med, hi = np.quantile(values, [a, 0.5, 1.0 - a])
    return {"median": float(med), "lower": float(lo), "upper": float(hi)}


def _outcome_data(
    key: str, model: RiskModel, threshold: float, max_draws: int, transport: str | None
) -> dict[str, Any]:
    idx, step = _thin(model.n_draws, max_draws)
    lay = model.layer
    profiles = [{"id": k, **v} for k, v in EXAMPLE_PROFILES.items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # example profiles lie inside the cohort's range
        full = model.summarise(profiles, threshold=threshold)
        risk = model.risk(profiles).values  # (S, P), the same draws
    a = (1.0 - CI_PROB) / 2.0
    examples = {}
    for j, row in enumerate(full.to_dict(orient="records")):
        r_all, r_page = risk[:, j], risk[idx, j]
        mcse = {
            q: {"full": quantile_mcse(r_all, p), "page": quantile_mcse(r_page, p)}
            for q, p in (("lower", a), ("median", 0.5), ("upper", 1.0 - a))
        }
        examples[row["id"]] = {
            "profile": {k: v for k, v in EXAMPLE_PROFILES[row["id"]].items() if k in model.used},
            "cli": {
                k: float(row[k])
                for k in ("median", "lower", "upper", "mean", "p_above_threshold", "per_1000")
            },
            "mcse": mcse,
        }
    data: dict[str, Any] = {
        "key": key,
        "description": model.description,
        "used": list(model.used),
        "columns": list(lay.columns),
        "x_ref": [float(v) for v in lay.x_ref],
        "defaults": dict(model.defaults),
        "cohort_ranges": {k: list(v) for k, v in model.cohort_ranges.items()},
        "notes": [*model.notes, *_integration_note(model)],
        "integration": model.integration(),
        "draws_full": model.n_draws,
        "draws": int(idx.size),
        "thin_step": step,
        "alpha": _b64(lay.alpha[idx]),
        "beta": _b64(lay.beta[idx]),  # row-major (draw, column)
        "population": _interval(model.components["baseline"]),
        "examples": examples,
    }
    if "lambda" in model.components:
        lam = model.components["lambda"]
        data["transport"] = {"prior": transport or "", **_interval(lam)}
    return data


def _integration_note(model: RiskModel) -> list[str]:
    """Return the calibrated intercept's integration error in words (none for exact cohorts)."""
    info = model.integration()
    if info is None or info["exact"]:
        return []
    return [
        f"integration error: MCSE of the calibrated intercept {info['mcse']:.2g} (logit), "
        f"{info['ratio']:.3f} of its posterior SD (warning level {info['fraction']:g}; "
        f"{info['replicates']} scrambled Sobol' replicates of {info['points']} points)"
    ]


def default_data_hash(data_dir: str | Path | None = None) -> str:
    """Return the data hash ``results.json`` reports (SHA-256 over the table files' hashes)."""
    return data_folder_hash(Path(data_dir) if data_dir else default_data_dir())


def page_data(
    models: Mapping[str, RiskModel],
    *,
    threshold: float = 0.1,
    max_draws: int = 4000,
    data_hash: str | None = None,
    transport: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the JSON the page embeds (draws base64 float64; everything else plain).

    Parameters
    ----------
    models : mapping
        Outcome → :class:`~bayes_va.risk.RiskModel`, in the order the selector shows them.
    threshold : float
        Default threshold of P(risk > threshold).
    max_draws : int
        At most this many draws per outcome (every ``k``-th draw when thinned).
    data_hash : str, optional
        The data hash of ``results.json`` (default: :func:`default_data_hash`).
    transport : str, optional
        The transport prior as the paper writes it (``beta:2,2``).
    sources : mapping, optional
        Outcome → where its baseline came from (e.g. the fit's name).
    """
    if not models:
        raise ValueError("no risk models to put on the page")
    return {
        "threshold": threshold,
        "ci_prob": CI_PROB,
        "extrapolation_sds": EXTRAPOLATION_SDS,
        "covariates": _covariate_data(),
        "outcomes": {
            k: _outcome_data(k, m, threshold, max_draws, transport) for k, m in models.items()
        },
        "data_hash": data_hash or default_data_hash(),
        "sources": dict(sources or {}),
        "sections": PAPER_SECTIONS,
        "seed_note": "",
    }


def render_page(data: Mapping[str, Any], title: str = "bayes_va: patient-level risk") -> str:
    """Return the page's HTML: the template with ``data`` inlined as JSON."""
    template = resources.files("bayes_va.workflows").joinpath(_TEMPLATE).read_text("utf-8")
    # "</" would end the inline <script> early; JSON allows the escaped form
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return template.replace("__TITLE__", html.escape(title)).replace(_DATA_MARK, payload)


def write_risk_page(
    path: str | Path,
    models: Mapping[str, RiskModel],
    *,
    threshold: float = 0.1,
    max_draws: int = 4000,
    data_hash: str | None = None,
    transport: str | None = None,
    sources: Mapping[str, str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
) -> Path:
    """Write the self-contained risk page (inline CSS/JS, draws embedded) to ``path``.

    Parameters
    ----------
    path : str or Path
        Output file (``paper/build/risk.html``).
    models : mapping
        Outcome → risk model (:func:`paper_risk_models` for the paper's).
    threshold, max_draws, data_hash, transport, sources
        See :func:`page_data`.
    seed : int, optional
        The risk layer's seed, stated on the page.
    quiet : bool
        Do not print the page's size and draws.

    Returns
    -------
    Path
        The file written.
    """
    data = page_data(
        models,
        threshold=threshold,
        max_draws=max_draws,
        data_hash=data_hash,
        transport=transport,
        sources=sources,
    )
    if seed is not None:
        data["seed_note"] = f"seed {seed}"
    text = render_page(data)
    path = Path(path)
    atomic.write_text(path, text)
    size = len(text.encode("utf-8"))
    if not quiet:
        draws = ", ".join(
            f"{k} {o['draws']} of {o['draws_full']}" for k, o in data["outcomes"].items()
        )
        print(f"bayes-va: wrote {path} ({size / 1e6:.2f} MB; draws {draws})", file=sys.stderr)
    if size > MAX_PAGE_BYTES:
        warnings.warn(f"{path} is {size / 1e6:.2f} MB (> 2 MB): lower max_draws", stacklevel=2)
    return path


def write_paper_risk_page(
    path: str | Path,
    spec: Mapping[str, Any],
    base: Any,
    avf: Any | None,
    *,
    data_hash: str | None = None,
    models: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> Path:
    """Write the page of the paper's risk models (:func:`paper_risk_models` unless given)."""
    models = paper_risk_models(spec, base, avf) if models is None else models
    sources = {"revision": _name(base), "avf": _name(avf)}
    return write_risk_page(
        path,
        models,
        threshold=float(spec.get("threshold", 0.1)),
        data_hash=data_hash,
        transport=str(TransportPrior.parse(spec.get("transport", "beta:2,2"))),
        sources=sources,
        seed=DEFAULT_SEED,
        quiet=quiet,
    )


def _name(result: Any) -> str:
    cfg = getattr(result, "config", None)
    if cfg is None:
        return str(result) if result is not None else ""
    return f"fit '{cfg.name}' ({getattr(cfg, 'description', '') or 'pooled fit'})"
