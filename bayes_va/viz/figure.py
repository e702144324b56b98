"""The one figure helper: figures without pyplot's global state, saved deterministically.

Every plot in bayes_va draws on a :class:`matplotlib.figure.Figure` made by :func:`subplots`
(or on the figure of an arviz-plots ``PlotCollection``) and writes it with :func:`save_figure`.
Nothing here switches Matplotlib's backend: a ``Figure`` made without pyplot renders through
the Agg canvas on any machine, and a notebook user's backend is left alone.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from bayes_va.core import atomic
from bayes_va.viz import FIGURE_FORMATS

__all__ = ["DPI", "FIGURE_FORMATS", "save_figure", "save_plot_collection", "subplots"]

#: Raster resolution of every PNG the project writes.
DPI = 150
# Stable SVG element ids and text kept as text: the same figure gives the same bytes.
_RC: dict[RcKeyType, Any] = {"svg.hashsalt": "bayes_va", "svg.fonttype": "none"}


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """Make a new figure and its axes, like ``plt.subplots`` but without pyplot's state.

    Parameters
    ----------
    *args
        Passed to :meth:`Figure.subplots` (``nrows``, ``ncols``).
    **kwargs
        ``width_ratios`` and ``height_ratios`` go to the grid, ``sharex``/``sharey``/
        ``squeeze`` to :meth:`Figure.subplots`, everything else to :class:`Figure`.

    Returns
    -------
    tuple
        The figure (constrained layout) and its axes.
    """
    grid: dict[str, Any] = {
        k: kwargs.pop(k) for k in ("width_ratios", "height_ratios") if k in kwargs
    }
    sub = {k: kwargs.pop(k) for k in ("sharex", "sharey", "squeeze") if k in kwargs}
    kwargs.setdefault("layout", "constrained")
    fig = Figure(**kwargs)
    return fig, fig.subplots(*args, gridspec_kw=grid or None, **sub)


def save_figure(
    fig: Figure, path: str | Path, formats: Sequence[str] | None = None, *, dpi: int = DPI
) -> list[Path]:
    """Write ``fig`` atomically, once per format, and close it.

    Parameters
    ----------
    fig
        The figure.
    path
        Target file. With ``formats`` given, its suffix is replaced by each format's.
    formats
        File formats (``png``, ``svg``, ``pdf``). ``None``: the suffix of ``path``, or
        :data:`FIGURE_FORMATS` when it has none.
    dpi
        Raster resolution.

    Returns
    -------
    list of Path
        The files written.

    Notes
    -----
    Creation dates and software versions are left out of the metadata, so that rebuilding a
    figure gives identical bytes.
    """
    path = Path(path)
    if formats is None:
        formats = (path.suffix[1:],) if path.suffix else FIGURE_FORMATS
    written = []
    try:
        with matplotlib.rc_context(_RC):
            for fmt in formats:
                target = path.with_suffix(f".{fmt}")
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt, dpi=dpi, metadata=_metadata(fmt))
                atomic.write_bytes(target, buf.getvalue())
                written.append(target)
    finally:
        import matplotlib.pyplot as plt  # only to release figures pyplot manages (arviz-plots)

        plt.close(fig)
    return written


def save_plot_collection(
    plot: Any, path: str | Path, formats: Sequence[str] | None = None
) -> list[Path]:
    """Save the figure of an arviz-plots ``PlotCollection`` with :func:`save_figure`."""
    return save_figure(plot.get_viz("figure"), path, formats)


def _metadata(fmt: str) -> dict[str, Any]:
    """Return the metadata that blanks dates and versions in ``fmt`` (empty if it has none)."""
    if fmt in ("svg", "pdf"):
        return {"Date": None, "Creator": None} if fmt == "svg" else {"CreationDate": None}
    if fmt == "png":
        return {"Software": None}
    return {}
