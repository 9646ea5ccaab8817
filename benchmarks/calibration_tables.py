"""Tables and figures of ``benchmarks/calibration.py``: coverage, prob_top reliability, Monte Carlo floor."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from harness.plots import pyplot, save_figure
from harness.stats import wilson

CI_PROB = 0.9
BAND = (0.85, 0.95)
BINS = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])


def coverage_table(trials: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """Coverage, 95 % Wilson interval, mean width and mean |median - truth| per setting, size and method."""
    rows = []
    part = trials[trials["quantity"] == quantity]
    for (setting, size, method), g in part.groupby(["setting", "size", "method"], sort=False):
        hits = int(g["covered"].sum())
        lo, hi = wilson(hits, len(g))
        rows.append({
            "setting": setting, "size": size, "method": method, "repeats": g["repeat"].nunique(), "pairs": len(g),
            "coverage": hits / len(g), "wilson_lo": lo, "wilson_hi": hi, "mean_width": g["width"].mean(),
            "mae_median": g["abs_err"].mean(), "time_per_repeat_s": g.groupby("repeat")["time_s"].first().mean(),
            "analytic_engine": (g["engine"] == "analytic").mean() if method == "bayesrca" else np.nan,
        })
    table = pd.DataFrame(rows).sort_values(["setting", "method", "size"], kind="stable")
    shrinks = table.groupby(["setting", "method"])["mean_width"].diff()
    in_band = table["coverage"].between(*BAND)
    met = np.where(in_band & ~(shrinks >= 0), "yes", "no")
    table["target_met"] = np.where(table["method"] == "bayesrca", met, "—")
    return table.reset_index(drop=True)


def reliability_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Reliability of prob_top: per bin, mean predicted, observed top frequency (Wilson CI), count."""
    part = trials[(trials["method"] == "bayesrca") & (trials["quantity"] == "contribution")]
    bins = np.clip(np.digitize(part["prob_top"], BINS[1:-1], right=False), 0, len(BINS) - 2)
    rows = []
    for b in range(len(BINS) - 1):
        g = part[bins == b]
        hits = int(g["true_top"].sum())
        lo, hi = wilson(hits, len(g))
        closing = "]" if b == len(BINS) - 2 else ")"
        rows.append({"bin": f"[{BINS[b]:.1f}, {BINS[b + 1]:.1f}{closing}", "count": len(g),
                     "mean_predicted": g["prob_top"].mean() if len(g) else np.nan,
                     "observed": hits / len(g) if len(g) else np.nan, "wilson_lo": lo, "wilson_hi": hi})
    return pd.DataFrame(rows)


def floor_table(settings: dict, names: list, args) -> pd.DataFrame:
    """Per setting: true IT scores and the fraction of the truth's v(S) below bayesrca's MC floor."""
    floor = math.log(1.0 / (args.mc_samples + 1))
    truth_floor = math.log(0.5 / args.truth_mc)
    rows = []
    for name in names:
        s = settings[name]
        v = np.concatenate(s["values"])
        closed = (s["scm"].mechanism, s["scm"].noise) == ("linear", "gaussian")
        rows.append({
            "setting": name, "truth": "closed form" if closed else f"MC {args.truth_mc:.0e}", "outliers": len(s["it"]),
            "root_causes": " ".join(s["causes"]), "true_it": " ".join(f"{x:.2f}" for x in s["it"]), "mc_floor": floor,
            "frac_v_below_floor": float(np.mean(v < floor)),
            "frac_v_under_10_hits": float(np.mean(args.mc_samples * np.exp(v) < 10)),
            "frac_truth_at_own_floor": np.nan if closed else float(np.mean(v <= truth_floor + 1e-9)),
        })
    return pd.DataFrame(rows)


def plot_curves(table: pd.DataFrame, column: str, path: Path, ylabel: str, band: bool) -> None:
    """One panel per setting: ``column`` against training size, one line per method."""
    plt = pyplot()
    names = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        for method, g in table[table["setting"] == name].groupby("method"):
            if column == "coverage":
                err = np.clip([g["coverage"] - g["wilson_lo"], g["wilson_hi"] - g["coverage"]], 0, None)
                ax.errorbar(g["size"], g["coverage"], yerr=err, marker="o", capsize=3, label=method)
            else:
                ax.plot(g["size"], g[column], marker="o", label=method)
        if band:
            ax.axhspan(*BAND, color="tab:green", alpha=0.15, label="target band")
            ax.axhline(CI_PROB, color="grey", ls="--", lw=0.8)
        else:
            ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("training rows")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8)
    save_figure(fig, path)


def plot_reliability(table: pd.DataFrame, path: Path) -> None:
    """Reliability diagram of prob_top (marker area ~ count, Wilson error bars)."""
    plt = pyplot()
    g = table[table["count"] > 0]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="perfect calibration")
    yerr = np.clip([g["observed"] - g["wilson_lo"], g["wilson_hi"] - g["observed"]], 0, None)
    ax.errorbar(g["mean_predicted"], g["observed"], yerr=yerr, fmt="none", ecolor="tab:blue", capsize=3)
    ax.scatter(g["mean_predicted"], g["observed"], s=20 + 200 * g["count"] / g["count"].max(), label="bayesrca prob_top")
    for row in g.itertuples():
        ax.annotate(f"n={row.count}", (row.mean_predicted, row.observed), textcoords="offset points", xytext=(6, -10),
                    fontsize=7)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="mean predicted prob_top",
           ylabel="observed frequency of true top")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
