"""Small statistics of the benchmark tables: Wilson intervals, proportions, medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (NaN, NaN without trials)."""
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(name: str, successes: int, trials: int) -> dict[str, float]:
    """``{name: successes / trials, name_lo: ..., name_hi: ...}`` with the Wilson interval."""
    lo, hi = wilson(successes, trials)
    return {name: successes / trials, f"{name}_lo": lo, f"{name}_hi": hi}


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")
