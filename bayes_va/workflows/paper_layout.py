"""Check the built paper's page fill: no page ends early except at a major break.

A page whose content ends before ``min_fill`` of the text area is *short*. That is allowed on
the last page and on a page followed by a level-1 heading (a new major section starts on the
next page); anything else means a figure or table floated away and left a gap. The pages are
rendered with poppler's ``pdftoppm`` and read with ``pdftotext`` (Debian ``poppler-utils``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PageFill", "page_fill", "short_pages"]

#: A4 page height and the paper's top and bottom margins (``#set page`` in paper.typ), in cm.
PAGE_CM, MARGIN_CM = 29.7, 2.4
#: Render resolution (dots per inch): enough to see one text line.
_DPI = 40
# a level-1 heading as pdftotext prints it: "3. Results" alone on a line
_H1 = re.compile(r"^\s*\d+\.\s+[A-Z][^\n.]{0,60}$")


@dataclass(frozen=True)
class PageFill:
    """How full one page is and whether a short page there is allowed.

    Attributes
    ----------
    page : int
        Page number (from 1).
    fill : float
        Where the content ends, as a fraction of the text area's height (0 empty, 1 full).
    allowed_short : bool
        True on the last page and before a page that starts with a level-1 heading.
    """

    page: int
    fill: float
    allowed_short: bool


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise FileNotFoundError(
            f"{tool} not found: install poppler-utils (apt-get install poppler-utils)"
        )
    return path


def _read_pgm(path: Path) -> np.ndarray:
    """Read a binary (P5) PGM image as written by ``pdftoppm -gray``."""
    data = path.read_bytes()
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        m = re.compile(rb"\s*(#[^\n]*\n\s*)*(\S+)").match(data, pos)
        assert m is not None, f"{path}: not a PGM file"
        fields.append(m.group(2))
        pos = m.end()
    assert fields[0] == b"P5", f"{path}: not a binary PGM file"
    w, h = int(fields[1]), int(fields[2])
    return np.frombuffer(data[pos + 1 : pos + 1 + w * h], dtype=np.uint8).reshape(h, w)


def _first_lines(pdf: Path, pages: int) -> list[str]:
    """Return the first non-blank text line of each page."""
    text = subprocess.run(
        [_require("pdftotext"), "-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out = []
    for page in text.split("\f")[:pages]:
        lines = [ln for ln in page.splitlines() if ln.strip()]
        out.append(lines[0].strip() if lines else "")
    return out


def page_fill(pdf: str | Path) -> list[PageFill]:
    """Measure every page's fill from a rendering of ``pdf``.

    Parameters
    ----------
    pdf : str or Path
        The built paper.

    Returns
    -------
    list of PageFill
        One per page, in order. The footer (page number) is not content.
    """
    pdf = Path(pdf)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [_require("pdftoppm"), "-gray", "-r", str(_DPI), str(pdf), f"{tmp}/p"],
            check=True,
            capture_output=True,
        )
        images = [_read_pgm(p) for p in sorted(Path(tmp).glob("p-*.pgm"), key=_page_no)]
    first = _first_lines(pdf, len(images))
    out = []
    for i, img in enumerate(images):
        h = img.shape[0]
        top, bottom = (round(h * c / PAGE_CM) for c in (MARGIN_CM, PAGE_CM - MARGIN_CM))
        ink = np.flatnonzero((img[:bottom] < 200).any(axis=1))
        last = int(ink[-1]) if ink.size else top
        fill = max(0.0, min(1.0, (last - top) / (bottom - top)))
        allowed = i == len(images) - 1 or bool(_H1.match(first[i + 1]))
        out.append(PageFill(page=i + 1, fill=fill, allowed_short=allowed))
    return out


def _page_no(p: Path) -> int:
    return int(p.stem.rsplit("-", 1)[1])


def short_pages(pdf: str | Path, min_fill: float = 0.75) -> list[PageFill]:
    """Return the pages that end before ``min_fill`` of the text area where that is not allowed.

    Parameters
    ----------
    pdf : str or Path
        The built paper.
    min_fill : float
        Least fill of a page that is not at the end of a major section or the document.

    Returns
    -------
    list of PageFill
        The offending pages (empty when the layout passes).
    """
    return [p for p in page_fill(pdf) if p.fill < min_fill and not p.allowed_short]
