"""Plain-data forms of results: JSON-safe values and Markdown tables (display only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["json_safe", "markdown_table"]


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """Format a data frame as a GitHub-flavoured Markdown table (display only).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; its column labels become the header, its index is dropped.
    floatfmt : str, default ".4g"
        Format spec of the floats that are not whole numbers.

    Returns
    -------
    str
        The table without a trailing newline: booleans as yes/no, NaN as an empty cell, whole
        floats below 1e9 as integers, other floats with ``floatfmt`` (the JSON outputs keep
        every digit).
    """

    def fmt(v: Any) -> str:
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, float | np.floating):
            f = float(v)
            if np.isnan(f):
                return ""
            if f.is_integer() and abs(f) < 1e9:
                return str(int(f))
            return format(f, floatfmt)
        return str(v)

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def json_safe(obj: Any) -> Any:
    """Convert a nested result to plain JSON values (the project's JSON allows no NaN).

    Parameters
    ----------
    obj : Any
        A scalar, or dicts, lists and tuples nesting them.

    Returns
    -------
    Any
        The same structure with dict keys as ``str``, tuples as lists, numpy booleans, integers
        and floats as Python ones, and NaN or infinite floats as None; other values unchanged.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if np.isfinite(f) else None
    return obj
