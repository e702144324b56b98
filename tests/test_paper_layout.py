"""The paper's layout check: a page that ends early fails, except before a major section."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import typst

from bayes_va.workflows.paper_layout import page_fill, short_pages

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "paper"

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="poppler-utils (pdftoppm, pdftotext) not installed: apt-get install poppler-utils "
    "(scripts/setup-venv.sh does it when it can)",
)

_PAGE = (
    '#set page(paper: "a4", margin: (x: 2.2cm, y: 2.4cm), numbering: "1")\n'
    '#set heading(numbering: "1.")\n'
)
_LINE = "Some text that fills a line of the page, and then some more words to wrap. "


def _pdf(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "doc.typ"
    src.write_text(_PAGE + body)
    out = tmp_path / "doc.pdf"
    out.write_bytes(typst.compile(str(src)))
    return out


def test_a_page_left_half_empty_by_a_big_block_fails(tmp_path):
    # half a page of text, then a block too tall to fit: it moves on and leaves a gap
    body = "= Intro\n" + _LINE * 20 + "\n\n#block(height: 18cm, fill: gray)[]\n" + _LINE * 5
    pages = page_fill(_pdf(tmp_path, body))
    assert len(pages) == 2
    assert pages[0].fill < 0.6 and not pages[0].allowed_short
    assert [p.page for p in short_pages(_pdf(tmp_path, body))] == [1]


def test_a_short_page_before_a_major_section_or_at_the_end_passes(tmp_path):
    body = "= Intro\n" + _LINE * 20 + "\n#pagebreak()\n= Methods\n" + _LINE * 10
    pages = page_fill(_pdf(tmp_path, body))
    assert [p.allowed_short for p in pages] == [True, True]
    assert all(p.fill < 0.6 for p in pages)
    assert short_pages(_pdf(tmp_path, body)) == []
    full = "= Intro\n" + _LINE * 150
    assert all(p.fill > 0.9 for p in page_fill(_pdf(tmp_path, full))[:-1])


def test_the_paper_has_no_page_less_than_three_quarters_full(tmp_path):
    """Compile paper.typ from the last build's results.json (no fitting) and check every page."""
    if not (PAPER / "build" / "results.json").exists():
        pytest.skip("paper/build/results.json missing: run `make paper` once")
    t0 = time.perf_counter()
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(typst.compile(str(PAPER / "paper.typ"), root=str(ROOT)))
    short = short_pages(pdf)
    assert not short, f"short pages: {short} ({time.perf_counter() - t0:.1f} s)"
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Config: models/base.toml" in text.replace("\n", " ")  # provenance in captions
