"""Provenance in the paper: captions name config and checks; a failed fit's number is marked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import typst

from bayes_va.config.paper import load_paper_config
from bayes_va.workflows.paper import provenance_section

ROOT = Path(__file__).resolve().parent.parent


def _fit(name: str, ok: bool, seed: int = 1) -> SimpleNamespace:
    cfg = SimpleNamespace(name=name, sampler=SimpleNamespace(seed=seed))
    return SimpleNamespace(config=cfg, diagnostics=SimpleNamespace(ok=ok))


def test_a_failed_fit_is_flagged_in_its_sources_and_the_fit_list(tmp_path):
    (tmp_path / "analyses.toml").write_text('base = "models/base.toml"\n')
    spec = load_paper_config(tmp_path / "analyses.toml")
    base, bad, sub = _fit("base", True, 7), _fit("noncentred", False), _fit("procedure", True)
    config_of = {
        "base": "models/base.toml",
        "noncentred": "models/sensitivity/noncentred.toml",
        "procedure": "models/subgroups/procedure.toml",
    }
    outcome = {
        "key": "x",
        "diagnostics": {"name": "x", "ok": True},
        "config": {"sampler": {"seed": 3}},
        "sensitivity": [
            {"diagnostics": {"name": "x_tight", "ok": False}, "config": {"sampler": {"seed": 4}}}
        ],
    }
    spec = spec.model_copy(
        update={"outcomes": (SimpleNamespace(key="x", config="models/x.toml", sensitivity=()),)}
    )
    p = provenance_section(
        {"base": base, "noncentred": bad, "procedure": sub},
        config_of,
        spec,
        compare_fits=[base, sub],
        sub_results={"procedure": sub},
        avf_results=[],
        outcomes=[outcome],
    )
    s = p["sources"]
    assert s["base"] == {"configs": ["models/base.toml"], "ok": True, "failed": []}
    assert s["sensitivity"]["ok"] is False and s["sensitivity"]["failed"] == ["noncentred"]
    assert s["subgroups"]["ok"] and s["compare"]["ok"]
    assert s["all"]["failed"] == ["noncentred"]
    assert s["outcome_x"] == {"configs": ["models/x.toml"], "ok": False, "failed": ["x_tight"]}
    assert {r["name"]: (r["config"], r["seed"], r["ok"]) for r in p["fits"]} == {
        "base": ("models/base.toml", 7, True),
        "noncentred": ("models/sensitivity/noncentred.toml", 1, False),
        "procedure": ("models/subgroups/procedure.toml", 1, True),
        "x": ("x", 3, True),
        "x_tight": ("x_tight", 4, False),
    }


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_the_typst_helpers_mark_a_number_from_a_failed_fit(tmp_path):
    shutil.copy(ROOT / "paper" / "provenance.typ", tmp_path / "provenance.typ")
    (tmp_path / "doc.typ").write_text(
        '#import "provenance.typ": mark, src-note\n'
        "Sound: #mark([4.0 %], true). Unsound: #mark([7.7 %], false).\n\n"
        '#src-note((configs: ("models/base.toml",), ok: true, failed: ()))\n\n'
        '#src-note((configs: ("models/a.toml", "models/b.toml"), ok: false, failed: ("b",)))\n'
    )
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(typst.compile(str(tmp_path / "doc.typ")))
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    text = " ".join(text.split())
    assert "Sound: 4.0 %." in text
    assert "Unsound: 7.7 %†" in text
    assert "(Config: models/base.toml; all fits passed their checks.)" in text
    assert "(Config: models/a.toml, models/b.toml; † failed checks: b.)" in text
