"""The forest plot in the form researchers know: text columns, pooled rows, τ and k."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pandas as pd

from bayes_va.fitting.estimates import Estimates, StudyRow, Summary
from bayes_va.numerics.glmm import GLMMResult
from bayes_va.risk import describe_profile
from bayes_va.viz.plots import MIN_FONT_PT, forest, study_label


def _summary(m: float, lo: float, hi: float) -> Summary:
    return Summary(median=m, lower=lo, upper=hi, mean=m, sd=(hi - lo) / 4)


def _fake_fit(with_authors: bool = True) -> SimpleNamespace:
    """A stand-in for a FitResult with three studies (the plot reads only these fields)."""
    rows = [("a1", 10, 200, 0.05), ("b2", 0, 150, 0.0), ("c3", 1200, 9000, 1200 / 9000)]
    studies = tuple(
        StudyRow(s, n, e, obs, max(obs, 0.01), max(obs, 0.01) / 2, max(obs, 0.01) * 1.5, 0, n, 0.5)
        for s, e, n, obs in rows
    )
    est = Estimates(
        k=3,
        family="binomial",
        ci_prob=0.95,
        pooled=_summary(0.06, 0.03, 0.11),
        predictive=_summary(0.06, 0.01, 0.30),
        mu=_summary(-2.75, -3.5, -2.1),
        tau=_summary(0.9, 0.4, 2.1),
        glmm=GLMMResult(
            mu=-2.8,
            se_mu=0.3,
            tau=0.85,
            tau2=0.7225,
            ci_level=0.95,
            mu_ci=(-3.4, -2.2),
            pooled=0.057,
            pooled_ci=(0.032, 0.1),
            loglik=-10.0,
            converged=True,
            n_studies=3,
        ),
        studies=studies,
    )
    table = pd.DataFrame({"study_id": ["a1", "b2", "c3"]})
    if with_authors:
        table["author"] = ["Alpha", "Beta", "Gamma"]
        table["year"] = [2001, 2002, 2003]
    return SimpleNamespace(
        estimates=est,
        studies=lambda: pd.DataFrame([r.to_dict() for r in studies]),
        data=SimpleNamespace(table=table),
    )


def _svg_texts(path) -> tuple[list[str], list[float]]:
    svg = path.read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    sizes = [float(x) for x in re.findall(r"font-size:\s*([\d.]+)px", svg)]
    return [t.strip() for t in texts], sizes


def test_the_forest_plot_has_the_columns_and_rows_of_a_published_forest(tmp_path):
    path = forest(_fake_fit(), tmp_path / "forest.svg")
    texts, sizes = _svg_texts(path)
    for expected in [
        "Study",
        "Events/n",
        "Observed [95% CI]",
        "Posterior [95% CrI]",
        "Weight %",
        "Alpha 2001",
        "Beta 2002",
        "Gamma 2003",
        "10 / 200",
        "0 / 150",
        "1,200 / 9,000",
        "5.00 [2.42, 9.00]",
        "Pooled",
        "6.0 [3.0, 11.0]",
        "Prediction (new study)",
        "6.0 [1.0, 30.0]",
        "Classical GLMM (ML, Wald CI)",
        "5.7 [3.2, 10.0]",
    ]:
        assert expected in texts, (expected, texts)
    het = [t for t in texts if t.startswith("Heterogeneity")]
    assert het == ["Heterogeneity: τ = 0.90 [0.40, 2.10]; GLMM τ̂ = 0.85; k = 3 studies"]
    # weights are percentages that add up to 100 (rounded per row)
    weights = [float(t) for t in texts[texts.index("Alpha 2001") :] if re.fullmatch(r"\d+\.\d", t)]
    assert abs(sum(weights[-3:]) - 100) < 0.2
    # printed at its own width: every text at least 7 pt (SVG px are 1/72 in at 72 dpi)
    assert sizes and min(sizes) >= MIN_FONT_PT


def test_without_author_and_year_the_forest_uses_study_ids(tmp_path):
    texts, _ = _svg_texts(forest(_fake_fit(with_authors=False), tmp_path / "f.svg"))
    assert {"a1", "b2", "c3"} <= set(texts)
    assert study_label({"author": "Chou", "year": 2014.0}, "chou2014") == "Chou 2014"
    assert study_label({"author": float("nan"), "year": 2014}, "chou2014") == "chou2014"


def test_a_profile_is_described_in_clinical_words():
    text = describe_profile(
        {
            "bmd": -2.8,
            "ivc": "yes",
            "procedure": "PKP",
            "cement_volume": 3,
            "endplate_contact": "no",
        }
    )
    assert text == (
        "BMD T-score \u22122.8, intravertebral cleft, kyphoplasty, 3.0 mL cement, "
        "no endplate contact"
    )
    assert describe_profile({"id": "x", "brace": "no", "other_thing": 1}) == (
        "no brace, other thing 1"
    )
