r"""``bayes-va risk``: a patient's risk of recompression, revision or adjacent fracture.

Argument handling only; the numbers come from :mod:`bayes_va.risk` and
:mod:`bayes_va.numerics.outcomes`. Wire it into :func:`bayes_va.cli.main.build_parser` with
``add_risk_parser(sub)``. Bad input raises :class:`~bayes_va.core.errors.BayesVAError`
subclasses, which the CLI turns into exit code 2 (:class:`bayes_va.cli.common.ExitCode`).

Examples
--------
::

    bayes-va risk --outcome revision --bmd -2.8 --ivc yes --procedure PKP \
        --cement-volume 3.0 --endplate-contact no [--baseline predictive] [--lambda 1]
    bayes-va risk --outcome recompression --profiles patients.csv --out table.csv
    bayes-va risk --outcome avf --brace no --intradiscal-leakage none --horizon 3
    bayes-va risk --outcome revision ... --explain     # where the uncertainty comes from

Every number printed or written says what it is: a *risk at this profile* (the patient's),
or the *population-average risk* of the outcome's reference population.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bayes_va.cli.common import ExitCode, run_command

#: Covariate options: flag → (profile key, help text).
_COVARIATE_FLAGS = {
    "--bmd": ("bmd", "BMD T-score (An 2021 measured it during follow-up)"),
    "--ivc": ("ivc", "intravertebral cleft before surgery: yes or no"),
    "--procedure": ("procedure", "PKP (balloon kyphoplasty) or PVP (vertebroplasty)"),
    "--cement-volume": ("cement_volume", "injected cement volume in ml"),
    "--endplate-contact": ("endplate_contact", "cement touches an endplate: yes or no"),
    "--anterior-height-recovery": (
        "anterior_height_recovery",
        "recovery of anterior column height in %% (default: the An cohort mean)",
    ),
    "--brace": ("brace", "AVF: brace for one month after surgery: yes or no"),
    "--intradiscal-leakage": (
        "intradiscal_leakage",
        "AVF: intradiscal cement leakage: none, spike, round or any (type not known)",
    ),
}


def add_risk_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``risk`` subcommand to an ``argparse`` subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "risk",
        help="a patient's risk of recompression, revision or adjacent fracture",
        description=(
            "Posterior risk for one patient (covariate options) or many (--profiles CSV): "
            "median, 95% interval, P(risk > threshold) and expected events per 1,000 such "
            "patients. Unknown covariates, bad levels and out-of-range values exit with code 2."
        ),
    )
    p.add_argument(
        "--outcome",
        required=True,
        choices=("recompression", "revision", "avf"),
        help="recompression (An 2021), revision (pooled revision studies) or avf",
    )
    cov = p.add_argument_group("patient (one profile)")
    for flag, (_, text) in _COVARIATE_FLAGS.items():
        cov.add_argument(flag, default=None, metavar="VALUE", help=text)
    many = p.add_argument_group("many patients")
    many.add_argument(
        "--profiles",
        type=Path,
        help="CSV with one patient per row; columns are covariate "
        "names (bmd, ivc, procedure, cement_volume, endplate_contact, ...) and optional id",
    )
    many.add_argument(
        "--out",
        type=Path,
        help="write the scored table here (CSV); with --explain also OUT_explain.csv",
    )
    model = p.add_argument_group("model")
    model.add_argument("--config", type=Path, help="risk config (default models/risk/default.toml)")
    model.add_argument(
        "--results",
        help="revision or AVF results folder (revision also takes "
        "exact:models/base.toml: exact quadrature, no MCMC); default from the config",
    )
    model.add_argument(
        "--baseline",
        choices=("pooled", "predictive"),
        help="population mean (pooled) or a new centre (predictive); default from the config",
    )
    model.add_argument(
        "--lambda",
        dest="transport",
        metavar="SPEC",
        help="revision: transport of the recompression effects: 1 (full), 0 (none), a number "
        "in [0, 1], or beta:A,B (default from the config, Beta(2, 2))",
    )
    model.add_argument("--horizon", type=float, metavar="MONTHS", help="AVF horizon in months")
    model.add_argument(
        "--endplate-reading",
        choices=("text", "table"),
        help="direction of the endplate effect: text = no contact is the risk (codebook), "
        "table = contact is the risk",
    )
    model.add_argument("--calibration", choices=("marginal", "mean_profile"))
    model.add_argument("--draws", type=int, help="posterior draws (default 4000)")
    model.add_argument("--seed", type=int)
    model.add_argument("--threshold", type=float, help="report P(risk > THRESHOLD) (default 0.1)")
    model.add_argument(
        "--correlation",
        metavar="SPEC",
        help="prior of the covariates' correlations in the calibration cohort: lkj:ETA "
        "(default lkj:2) or a fixed exchangeable rho (0 = independent)",
    )
    model.add_argument(
        "--cohort",
        choices=("copula", "permutation"),
        help="calibration cohort: Gaussian copula + Sobol' points (default) or the earlier "
        "independent-permutation cohort",
    )
    model.add_argument(
        "--explain",
        action="store_true",
        help="split each profile's risk variance over its sources (baseline, log odds ratios, "
        "transport, calibration cohort, integration); costs one recalibration per source",
    )
    model.add_argument("--figures", type=Path, metavar="DIR", help="write figures into DIR")
    model.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the interactive risk page of this outcome (self-contained HTML, the "
        "same draws; `bayes-va paper` writes paper/build/risk.html with every outcome)",
    )
    p.set_defaults(func=run_risk)
    return p


def _config(args: argparse.Namespace) -> Any:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.risk import TransportPrior, load_risk_config

    overrides: dict[str, Any] = {}
    for arg, key in (
        ("baseline", "baseline"),
        ("horizon", "horizon_months"),
        ("draws", "draws"),
        ("seed", "seed"),
        ("threshold", "threshold"),
        ("endplate_reading", "endplate_reading"),
        ("calibration", "calibration"),
    ):
        if getattr(args, arg) is not None:
            overrides[key] = getattr(args, arg)
    if args.transport is not None:
        overrides["transport"] = TransportPrior.parse(args.transport)
    if args.results is not None:
        overrides["revision_results" if args.outcome == "revision" else "avf_results"] = (
            args.results
        )
    cfg = load_risk_config(args.config, overrides)
    cohort: dict[str, Any] = {}
    if args.correlation is not None:
        cohort["correlation"] = _correlation(args.correlation)
    if args.cohort is not None:
        cohort["method"] = args.cohort
    if cohort:
        cfg = load_risk_config(
            args.config, {**overrides, "cohort": cfg.cohort.model_copy(update=cohort)}
        )
    return cfg


def _correlation(text: str) -> Any:
    """Parse ``lkj:ETA`` or a number (a fixed exchangeable rho)."""
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from pydantic import ValidationError

    from bayes_va.config.risk import ExchangeableCorrelation, LKJCorrelation
    from bayes_va.core.errors import ConfigError

    t = text.strip().lower()
    try:
        if t.startswith("lkj:"):
            return LKJCorrelation(dist="LKJ", eta=float(t[4:]))
        return ExchangeableCorrelation(dist="Exchangeable", rho=float(t))
    except (ValueError, ValidationError):
        raise ConfigError(
            f"--correlation {text!r}: give lkj:ETA with ETA > 0 (e.g. lkj:2) or a fixed "
            "exchangeable rho in [-0.2, 1) (0 = independent)"
        ) from None


def _profiles(args: argparse.Namespace) -> Any:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    import pandas as pd

    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.risk import RiskInputError

    given = {
        key: getattr(args, flag.lstrip("-").replace("-", "_"))
        for flag, (key, _) in _COVARIATE_FLAGS.items()
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.profiles is not None:
        if given:
            raise RiskInputError(
                f"give either --profiles or covariate options, not both (got {sorted(given)})"
            )
        try:
            frame = pd.read_csv(args.profiles, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise RiskInputError(f"profiles file not found: {args.profiles}") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise RiskInputError(f"{args.profiles}: not a readable CSV: {exc}") from None
        return frame.where(frame != "", None)
    if not given:
        raise RiskInputError(
            "no patient given: use covariate options (--bmd, --ivc, --procedure, "
            "--cement-volume, --endplate-contact; for AVF --brace, --intradiscal-leakage) "
            "or --profiles CSV"
        )
    return given


_UNITS = {"cement_volume": " ml", "anterior_height_recovery": " %"}


def _fmt(x: float) -> str:
    return f"{x:.3f}" if x >= 0.0095 else f"{x:.4f}"


def _single_text(model: Any, row: Any, cfg: Any, extra: list[str]) -> str:
    t = cfg.threshold
    pop = model.population_risk()
    lines = [
        f"bayes-va risk: {model.description}",
        "profile: " + ", ".join(f"{k} {row[k]}{_UNITS.get(k, '')}" for k in model.used),
        f"  risk at this profile     median {_fmt(row['median'])}, 95% interval "
        f"[{_fmt(row['lower'])}, {_fmt(row['upper'])}]  (posterior mean {_fmt(row['mean'])})",
        f"  P(risk > {t:g})" + " " * max(1, 15 - len(f"{t:g}")) + f"{row['p_above_threshold']:.3f}",
        f"  per 1,000 such patients  {row['per_1000']:.0f} expected events (95% interval "
        f"{row['per_1000_lower']:.0f}-{row['per_1000_upper']:.0f})",
        f"  population-average risk  median {_fmt(pop['median'])}, 95% interval "
        f"[{_fmt(pop['lower'])}, {_fmt(pop['upper'])}] in {pop['population']} (not this "
        "profile's risk)",
        *_integration_lines(model, row),
        *extra,
        "  how this was computed:",
        *(f"    - {n}" for n in model.notes),
        f"    - {model.n_draws} draws, seed {cfg.seed}",
    ]
    return "\n".join(lines)


def _integration_lines(model: Any, row: Any) -> list[str]:
    info = model.integration()
    if info is None:
        return []
    if info["exact"]:
        return ["  integration error        none (the reference population is a finite mix)"]
    return [
        f"  integration error        MCSE {row['integration_mcse']:.2g} on this profile's risk "
        f"({row['integration_ratio']:.3f} of its posterior SD; intercept "
        f"{info['ratio']:.3f}; warning level {info['fraction']:g}; {info['replicates']} "
        "scrambled Sobol' replicates)"
    ]


def _explain_lines(table: Any) -> list[str]:
    """Format the variance split of one profile as text (both scales side by side)."""
    logit = table[table["scale"] == "logit"].set_index("source")
    risk = table[table["scale"] == "risk"].set_index("source")
    out = [
        "  where this profile's risk uncertainty comes from (first-order variance shares, "
        "pick-freeze; shares of the total):",
        f"    {'source':<52}{'logit scale':>12}{'risk scale':>12}",
    ]
    for src in logit.index:
        if src == "total":
            continue
        out.append(
            f"    {logit.loc[src, 'label']:<52}{100 * logit.loc[src, 'share']:>10.1f} %"
            f"{100 * risk.loc[src, 'share']:>10.1f} %"
        )
    out.append(
        f"    {'total variance':<52}{logit.loc['total', 'variance']:>12.4g}"
        f"{risk.loc['total', 'variance']:>12.4g}"
    )
    return out


def _transport_lines(cfg: Any, source: Any, profile: Any) -> list[str]:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.risk import TransportPrior, transport_table

    priors = [TransportPrior("Fixed", value=0.0), cfg.transport, TransportPrior("Fixed", value=1.0)]
    seen: list[TransportPrior] = []
    for p in priors:
        if p not in seen:
            seen.append(p)
    table = transport_table(
        source,
        profile,
        priors=seen,
        threshold=cfg.threshold,
        baseline=cfg.baseline,
        n_draws=cfg.draws,
        seed=cfg.seed,
        endplate_reading=cfg.endplate_reading,
        calibration=cfg.calibration,
        replicates=cfg.replicates or None,
        cohort=cfg.cohort,
    )
    out = ["  effect of the transport factor lambda (same baseline, same draws):"]
    for _, r in table.iterrows():
        mark = "  <- used" if r["transport"] == str(cfg.transport) else ""
        out.append(
            f"    {r['transport']:<30} median {_fmt(r['median'])} [{_fmt(r['lower'])}, "
            f"{_fmt(r['upper'])}]{mark}"
        )
    return out


def _gaughen_lines() -> list[str]:
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.numerics.outcomes import JEFFREYS, gaughen_outcomes

    out = [
        "  what a repeat procedure achieved (Gaughen 2002: 6 patients, repeat vertebroplasty at a "
        "treated level; exact binomial, Jeffreys Beta(1/2, 1/2) prior):"
    ]
    for post in gaughen_outcomes(priors=(JEFFREYS,)):
        s = post.summary()
        out.append(
            f"    {s['description']}: {s['successes']}/{s['n']} -> P(next patient) "
            f"{s['mean']:.2f}; proportion median {s['median']:.2f} [{s['lower']:.2f}, "
            f"{s['upper']:.2f}]"
        )
    return out


def run_risk(args: argparse.Namespace) -> int:
    """Carry out ``bayes-va risk`` (see :func:`add_risk_parser`)."""
    # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
    from bayes_va.core import atomic
    from bayes_va.risk import ExtrapolationWarning, IntegrationWarning, build_model, load_source
    from bayes_va.risk.baselines import load_configured_source
    from bayes_va.viz.risk import write_figures

    cfg = _config(args)
    profiles = _profiles(args)
    source = None
    if args.outcome in ("revision", "avf"):
        spec = cfg.revision_results if args.outcome == "revision" else cfg.avf_results
        # a folder named with --results is the user's choice; the config's is checked
        if args.results is not None:
            source = load_source(spec)
        else:
            source = load_configured_source(spec, args.outcome)
    explained, explain_seconds = None, 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        warnings.simplefilter("always", IntegrationWarning)
        model = build_model(args.outcome, cfg, source=source)
        t0 = time.perf_counter()
        table = model.summarise(profiles, threshold=cfg.threshold)
        seconds = time.perf_counter() - t0
        if args.explain:
            t0 = time.perf_counter()
            explained = model.explain(profiles, warn=False)
            explain_seconds = time.perf_counter() - t0
    for w in caught:
        if issubclass(w.category, ExtrapolationWarning | IntegrationWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover - pass anything else on unchanged
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for flag, value, used_by in (
        ("--lambda", args.transport, "revision"),
        ("--horizon", args.horizon, "avf"),
        ("--endplate-reading", args.endplate_reading, "recompression and revision"),
    ):
        if value is not None and args.outcome not in used_by:
            print(f"note: {flag} applies to {used_by} only; ignored", file=sys.stderr)
    ignored, defaulted = table.attrs["ignored"], table.attrs["defaulted"]
    if ignored:
        print(f"note: not used for {args.outcome}: {', '.join(ignored)}", file=sys.stderr)
    for name in defaulted:
        print(
            f"note: {name} not given; using the An cohort mean {model.defaults[name]:g}",
            file=sys.stderr,
        )
    if args.profiles is None:
        extra: list[str] = []
        if explained is not None:
            extra += _explain_lines(explained)
        if args.outcome == "revision":
            extra += _transport_lines(cfg, source, profiles) + _gaughen_lines()
        print(_single_text(model, table.iloc[0], cfg, extra))
    else:
        # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
        from bayes_va.risk.explain import shares_wide

        if args.out is not None:
            atomic.write_text(args.out, table.to_csv(index=False, float_format="%.6g"))
            print(
                f"scored {len(table)} profile(s) ({table['quantity'].iloc[0]}) in "
                f"{seconds:.2f} s; wrote {args.out}"
            )
            if explained is not None:
                side = args.out.with_name(f"{args.out.stem}_explain.csv")
                atomic.write_text(side, explained.to_csv(index=False, float_format="%.6g"))
                print(f"variance split in {explain_seconds:.2f} s; wrote {side}")
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            if explained is not None:
                print("variance shares (first-order, pick-freeze) of each profile's risk:")
                print(
                    shares_wide(explained).to_string(
                        index=False, float_format=lambda v: f"{v:.3g}"
                    )
                )
        pop = model.population_risk()
        print(
            f"population-average risk (not a profile's): median {_fmt(pop['median'])}, 95% "
            f"interval [{_fmt(pop['lower'])}, {_fmt(pop['upper'])}] in {pop['population']}"
        )
    if args.figures is not None:
        # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
        from bayes_va.risk import EXAMPLE_PROFILES

        paths = write_figures(
            args.figures, {args.outcome: model}, EXAMPLE_PROFILES, threshold=cfg.threshold
        )
        print(f"figures: {', '.join(str(p) for p in paths)}")
    if args.html is not None:
        # lazy: a subcommand imports its layers only when it runs (`--help` stays fast)
        from bayes_va.workflows.risk_page import write_risk_page

        transport = str(cfg.transport) if args.outcome == "revision" else None
        write_risk_page(
            args.html,
            {args.outcome: model},
            threshold=cfg.threshold,
            transport=transport,
            seed=cfg.seed,
        )
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m bayes_va.cli.risk risk ...`` (stand-alone); exit like ``bayes-va``."""
    parser = argparse.ArgumentParser(prog="bayes-va")
    add_risk_parser(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
