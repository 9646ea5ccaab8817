"""Number formatting and markdown tables of the benchmark reports."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

MISSING = "—"


def fmt(x: object, digits: int = 3) -> str:
    """One table cell: floats with ``digits`` decimals, integers as such, ``"—"`` when missing.

    Parameters
    ----------
    x : object
        The value; None and NaN are missing, other non-numbers are written with ``str``.
    digits : int, default 3
        Decimals of a float.

    Returns
    -------
    str
    """
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return MISSING
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}" if isinstance(x, (float, np.floating)) else str(x)


def fmt_ci(p: float, lo: float, hi: float) -> str:
    """A proportion with its interval, ``"0.75 [0.30, 0.95]"`` (``"—"`` when ``p`` is missing)."""
    return MISSING if math.isnan(float(p)) else f"{p:.2f} [{lo:.2f}, {hi:.2f}]"


def ci_column(values: Iterable[float], lower: Iterable[float], upper: Iterable[float]) -> list[str]:
    """:func:`fmt_ci` of every (value, lower, upper) triple: a column of a displayed table."""
    return [fmt_ci(*v) for v in zip(values, lower, upper)]


def markdown_rows(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub markdown table of cells written with ``str`` (format them first).

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        The cells, row by row.

    Returns
    -------
    str
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A pandas DataFrame as a GitHub markdown table, every cell written with :func:`fmt`."""
    rows = ([fmt(v, digits) for v in row] for row in frame.itertuples(index=False))
    return markdown_rows([str(c) for c in frame.columns], rows)


def heading(title: str, smoke: bool, level: int = 2) -> str:
    """A report's markdown heading, marked ``(smoke)`` for a smoke run."""
    return f"{'#' * level} {title}{' (smoke)' if smoke else ''}"
