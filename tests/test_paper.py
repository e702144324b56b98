"""The paper: no hand-typed results in the Typst source, and a deterministic results.json."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bayes_va.workflows.paper import build_paper
from bayes_va.workflows.paper_plan import build_key, current_build

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "paper"

#: Digits allowed in the Typst markup: layout (sizes, widths, column counts), array indices
#: into results, citations (years, the review's "Table 1/2"), Unicode/maths notation.
ALLOWED = [
    r"\b(19|20)\d\d\b",  # publication years in citations
    r"\bTables? [12]( and Table [12])?\b",  # the review's own tables
    r"\d+(\.\d+)?(pt|em|cm|mm|fr)",  # lengths and fractions of the line width
    r"width: \d+%",  # widths
    r"\^2",  # tau^2 notation
    r"\.at\(\d+\)",  # indexing into result arrays
    r"\.slice\(\d+, \d+\)",  # shortening the data hash
    r"columns: \d+",
    r"\"logit\"\^\(-1\)",  # notation
    r"\"Normal\"\(0, 1\)",  # definition of z, not a result
    r"numbering: \"1\.?\"",
    r"SHA-256",
    r"\$lambda = [01]\$",                     # definitions of the transport factor's ends
    r"[Pp]er 1,000",                          # the unit of expected events
    r"OR > 1",                                # a definition (harm), not a result
    r"digits: \d",                           # display precision
    r"\b[A-Za-z_][A-Za-z_]*\d\w*",  # identifiers such as f.mcmc_tau_3, a4
    r"size: \d+pt",
]


def _markup_numbers(text: str) -> list[tuple[int, str]]:
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        code = line.split("//", 1)[0]
        if not code.strip():
            continue
        for pat in ALLOWED:
            code = re.sub(pat, " ", code)
        if re.search(r"\d", code):
            hits.append((lineno, line.strip()))
    return hits


def test_the_typst_source_holds_no_hand_typed_numbers():
    sources = sorted(PAPER.glob("*.typ"))
    assert sources, "paper/*.typ missing"
    for src in sources:
        hits = _markup_numbers(src.read_text())
        assert not hits, f"{src.name}: numbers typed by hand: {hits}"


def test_the_number_check_catches_a_typed_result():
    assert _markup_numbers("The pooled proportion was 4.0 % (2.3–6.8 %).")
    assert _markup_numbers("k = 14 studies")
    assert _markup_numbers("a rate of 4% in Lin")
    assert not _markup_numbers("The pooled proportion was #f.pooled (Takahashi 2023, Table 1).")


def _mini_project(tmp: Path) -> Path:
    """A project root with the real data and models and a small analyses declaration."""
    root = tmp / "proj"
    (root / "paper").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    for d in ("data", "models"):
        (root / d).symlink_to(ROOT / d)
    (root / "paper" / "analyses.toml").write_text(
        'base = "models/base.toml"\n'
        'sensitivity = ["models/sensitivity/lin_low.toml"]\n'
        "leave_one_out = false\n"
        'subgroups = ["models/subgroups/procedure.toml"]\n'
        'avf = ["models/avf/base.toml"]\n'
        "avf_horizons_months = [3.0, 12.0]\n"
    )
    return root


@pytest.mark.sampling
def test_two_clean_builds_write_byte_identical_results_json(tmp_path, capsys):
    a = _mini_project(tmp_path / "a")
    b = _mini_project(tmp_path / "b")
    assert build_paper(clean=True, root=a, compile_pdf=False) == 0
    assert build_paper(clean=True, root=b, compile_pdf=False) == 0
    ra = (a / "paper" / "build" / "results.json").read_bytes()
    rb = (b / "paper" / "build" / "results.json").read_bytes()
    assert ra == rb
    assert b"seconds" not in ra  # wall times live in timings.json
    assert (a / "paper" / "build" / "timings.json").exists()
    assert (a / "paper" / "build" / "figures" / "forest.svg").exists()
    # nothing changed: the last build is current, and nothing runs
    timings = a / "paper" / "build" / "timings.json"
    stamp = timings.stat().st_mtime_ns
    capsys.readouterr()
    assert build_paper(root=a, compile_pdf=False) == 0
    assert "up to date" in capsys.readouterr().err
    assert timings.stat().st_mtime_ns == stamp
    # a PDF was never built: asking for one builds
    key = build_key(a)
    assert current_build(a, key, pdf=True) is None and current_build(a, key, pdf=False) == 0
    # any input changed (here a comment in analyses.toml): the analyses run again, every fit
    # from the cache, and give the same results.json
    analyses = a / "paper" / "analyses.toml"
    analyses.write_text(analyses.read_text() + "# a comment\n")
    assert current_build(a, build_key(a), pdf=False) is None
    assert build_paper(root=a, compile_pdf=False) == 0
    assert "up to date" not in capsys.readouterr().err
    assert timings.stat().st_mtime_ns != stamp
    assert (a / "paper" / "build" / "results.json").read_bytes() == ra
    # the risk layer's inputs did not change: its outputs came from the cache, and a build that
    # computed them afresh (b) wrote the same
    assert len(list((a / "results" / "cache").glob("paper-risk-*"))) == 1
    for f in ("risk.html", "figures/risk/risk_distributions.png"):
        assert (a / "paper" / "build" / f).read_bytes() == (b / "paper" / "build" / f).read_bytes()


@pytest.mark.sampling
def test_a_parallel_build_writes_the_serial_builds_results_json(tmp_path):
    import json

    par = _mini_project(tmp_path / "par")
    ser = _mini_project(tmp_path / "ser")
    assert build_paper(root=par, compile_pdf=False, workers=2) == 0
    assert build_paper(root=ser, compile_pdf=False, workers=1) == 0
    rp = (par / "paper" / "build" / "results.json").read_bytes()
    assert rp == (ser / "paper" / "build" / "results.json").read_bytes()
    # the dask pass ran the fits (the serial pass after it only read them from the cache)
    fits = json.loads((par / "paper" / "build" / "timings.json").read_text())["fits"]
    assert len(fits) == 4 and not any(t["cached"] for t in fits.values())
