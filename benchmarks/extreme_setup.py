"""Settings and shared helpers of ``benchmarks/extreme.py``: bins, method tables, closed-form truth.

The script's two parts live in ``extreme_ranking.py`` (a) and ``extreme_calibration.py`` (b).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import simulate as sim

BINS = [(6.0, 8.0), (8.0, 10.0), (10.0, 12.0)]
CI_PROB = 0.9
DOWHY_SAMPLES = 3000  # DoWhy's default num_distribution_samples
DOWHY_CAP = math.log((DOWHY_SAMPLES + 0.5) / 0.5)  # IT score when no sample is in the event (two-sided: ~)
FULL = {"settings": ["er-10-linear-gaussian", "er-10-nonlinear-gaussian"], "bins": BINS, "graphs": 5,
        "nonlinear_graphs": 2, "per_bin": 5, "nonlinear_per_bin": 2, "rows": 1000, "max_ancestors": 5, "num_draws": 100,
        "num_mc_samples": 2000, "cal_repeats": 5, "cal_per_bin": 5, "cal_rows": 1000, "cal_num_draws": 100,
        "dowhy_repeats": 2}
SMOKE = {"settings": ["er-6-linear-gaussian"], "bins": [(10.0, 12.0)], "graphs": 1, "nonlinear_graphs": 1, "per_bin": 1, "nonlinear_per_bin": 1,
         "rows": 300, "max_ancestors": 4, "num_draws": 20, "num_mc_samples": 200, "cal_repeats": 1, "cal_per_bin": 1,
         "cal_rows": 300, "cal_num_draws": 20, "dowhy_repeats": 1}
LINEAR_METHODS = {  # label -> (mechanisms, tail)
    "bayesrca gaussian, closed form": ("gaussian", "auto"),
    "bayesrca gaussian, tail=mc (conditional MC)": ("gaussian", "mc"),
    "bayesrca gaussian, tail=plain": ("gaussian", "plain"),
    "bayesrca auto (default)": ("auto", "auto"),
}
NONLINEAR_METHODS = {
    "bayesrca auto (default)": ("auto", "auto"),
    "bayesrca auto, tail=plain": ("auto", "plain"),
}
CAL_METHODS = {
    "bayesrca gaussian, closed form": ("gaussian", "auto"),
    "bayesrca gaussian, tail=mc (conditional MC)": ("gaussian", "mc"),
    "bayesrca gaussian, tail=plain": ("gaussian", "plain"),
    "bayesrca linear (bootstrap noise)": ("linear", "auto"),
}
DOWHY, ORACLE = "DoWhy", "oracle (true model)"
MAX_SKIPS_PER_OUTLIER = 20


def parse_bin(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a bin looks like '6-8', got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"a bin needs 0 < lo <= hi, got {text!r}")
    return lo, hi


def bin_label(b: tuple[float, float]) -> str:
    return f"{b[0]:g}-{b[1]:g} sd"


def closed_form(truth: sim.TrueSCM, target, noise: dict) -> tuple[dict, float, float]:
    """Exact contributions, IT score and the target's z-score (linear-Gaussian truth)."""
    phi, it = truth.true_contributions(target, noise)
    _, a = truth.total_effects(target)
    sd = math.sqrt(sum(a[p] ** 2 * truth.sigma[p] ** 2 for p in truth.players(target)))
    z = sum(a[p] * noise[p] for p in truth.players(target)) / sd
    return phi, it, z


def target_z(reference: np.ndarray, x: float) -> float:
    """(x - median) / sd of the target's true marginal, from sorted reference samples."""
    return float((x - np.median(reference)) / reference.std())


def mechanism_families(scm) -> str:
    """Per node: the fitted family (``LinearANM``, ``SplineANM``, ...) and its noise, as one string."""
    names = []
    for node, mech in scm.mechanisms_.items():
        noise = "gauss" if getattr(mech, "noise_is_gaussian", False) else "other"
        names.append(f"{node}:{type(mech).__name__}/{noise}")
    return " ".join(names)


def sort_bins(table: pd.DataFrame, trials: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows by ``by``, then bins in the order of the trials with "all bins" last."""
    order = {b: i for i, b in enumerate(list(dict.fromkeys(trials["bin"])) + ["all bins"])}
    return table.sort_values([by, "bin"], key=lambda s: s.map(order) if s.name == "bin" else s, kind="stable").reset_index(drop=True)
