"""Tables and figures of ``benchmarks/calibration.py``: coverage, prob_top reliability and ECE, truth errors, Monte Carlo floor."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from harness.plots import pyplot, save_figure
from harness.stats import wilson
from harness.tables import fmt_ci

CI_PROB = 0.9
BAND = (0.85, 0.95)
BINS = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])


TRUTH_REL = 0.1  # a truth's standard error is negligible below this fraction of the interval width
TRUTH_SHARE = 0.95  # ... for at least this share of a cell's pairs


def coverage_table(trials: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """Coverage, 95 % Wilson interval, mean width and mean |median - truth| per setting, band, size and method.

    ``truth_ok`` is "yes" when the truth's own standard error is below ``TRUTH_REL`` x the interval
    width for at least ``TRUTH_SHARE`` of the cell's pairs, else "FLAG (share)".
    """
    rows = []
    part = trials[trials["quantity"] == quantity]
    for (setting, band, size, method), g in part.groupby(["setting", "band", "size", "method"], sort=False):
        hits = int(g["covered"].sum())
        lo, hi = wilson(hits, len(g))
        share = float((g["truth_se"] <= TRUTH_REL * g["width"]).mean())
        rows.append({
            "setting": setting, "band": band, "size": size, "method": method, "repeats": g["repeat"].nunique(),
            "pairs": len(g), "coverage": hits / len(g), "wilson_lo": lo, "wilson_hi": hi,
            "mean_width": g["width"].mean(), "median_width": g["width"].median(), "mae_median": g["abs_err"].mean(),
            "max_truth_se": g["truth_se"].max(), "truth_ok": "yes" if share >= TRUTH_SHARE else f"FLAG ({share:.2f})",
            "time_per_repeat_s": g.groupby("repeat")["time_s"].first().mean(),
            "analytic_engine": (g["engine"] == "analytic").mean() if method == "bayesrca" else np.nan,
        })
    table = pd.DataFrame(rows)
    order = {b: i for i, b in enumerate(dict.fromkeys(part["band"]))}  # bands in the order they were run
    table = table.sort_values(["setting", "band", "method", "size"], kind="stable",
                              key=lambda col: col.map(order) if col.name == "band" else col)
    shrinks = table.groupby(["setting", "band", "method"])["mean_width"].diff()
    in_band = table["coverage"].between(*BAND)
    met = np.where(in_band & ~(shrinks >= 0), "yes", "no")
    table["target_met"] = np.where(table["method"] == "bayesrca", met, "—")
    return table.reset_index(drop=True)


def display_table(coverage: pd.DataFrame, it_cov: pd.DataFrame) -> pd.DataFrame:
    """One row per setting x band x size: bayesrca's coverage, IT coverage, width, error; DoWhy's beside."""
    bayes = coverage[coverage["method"] == "bayesrca"]
    keys = ["setting", "band", "size"]
    it = it_cov.set_index(keys)
    dowhy = coverage[coverage["method"] != "bayesrca"].set_index(keys)
    rows = []
    for rec in bayes.itertuples(index=False):
        key = (rec.setting, rec.band, rec.size)
        row = {"setting": rec.setting, "band": rec.band, "n": rec.size, "pairs": rec.pairs,
               "bayesrca coverage [95 % CI]": fmt_ci(rec.coverage, rec.wilson_lo, rec.wilson_hi)}
        if key in it.index:
            i = it.loc[key]
            row["IT coverage [95 % CI]"] = fmt_ci(i["coverage"], i["wilson_lo"], i["wilson_hi"])
        row.update({"mean width": rec.mean_width, "median width": rec.median_width, "mean abs err": rec.mae_median,
                    "truth_ok": rec.truth_ok})
        if key in dowhy.index:
            d = dowhy.loc[key]
            row.update({"DoWhy coverage [95 % CI]": fmt_ci(d["coverage"], d["wilson_lo"], d["wilson_hi"]),
                        "DoWhy mean width": d["mean_width"], "DoWhy abs err": d["mae_median"]})
        else:
            row.update({"DoWhy coverage [95 % CI]": "not run", "DoWhy mean width": np.nan, "DoWhy abs err": np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def expected_calibration_error(predicted: np.ndarray, observed: np.ndarray, bins: np.ndarray = BINS) -> float:
    """ECE: sum over bins of (count / total) x |mean predicted - observed frequency| (NaN without pairs)."""
    predicted, observed = np.asarray(predicted, dtype=float), np.asarray(observed, dtype=float)
    if len(predicted) == 0:
        return float("nan")
    index = np.clip(np.digitize(predicted, bins[1:-1], right=False), 0, len(bins) - 2)
    gap = np.abs(np.bincount(index, predicted, len(bins) - 1) - np.bincount(index, observed, len(bins) - 1))
    return float(gap.sum() / len(predicted))  # sum_b n_b/N |mean_pred_b - obs_b| = sum_b |sum pred - sum obs| / N


def ece_bootstrap(predicted, observed, clusters, *, num: int = 1000, seed: int = 0, bins: np.ndarray = BINS):
    """ECE with a 95 % percentile bootstrap interval resampling whole clusters: (ece, lo, hi)."""
    predicted, observed = np.asarray(predicted, dtype=float), np.asarray(observed, dtype=float)
    labels, index = np.unique(np.asarray(clusters), return_inverse=True)
    point = expected_calibration_error(predicted, observed, bins)
    if len(labels) < 2:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(index == g) for g in range(len(labels))]
    stats = []
    for _ in range(num):
        pick = np.concatenate([groups[g] for g in rng.integers(len(groups), size=len(groups))])
        stats.append(expected_calibration_error(predicted[pick], observed[pick], bins))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return point, float(lo), float(hi)


def ece_table(trials: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """prob_top's ECE (bootstrap over training sets) and Brier score per setting, then over all settings."""
    part = trials[(trials["method"] == "bayesrca") & (trials["quantity"] == "contribution")]
    rows = []
    groups = [(name, g) for name, g in part.groupby("setting", sort=False)] + [("all settings", part)]
    for name, g in groups:
        clusters = g["setting"] + "|" + g["size"].astype(str) + "|" + g["repeat"].astype(str)
        ece, lo, hi = ece_bootstrap(g["prob_top"], g["true_top"], clusters, seed=seed)
        rows.append({"setting": name, "training_sets": clusters.nunique(), "pairs": len(g),
                     "ece [95 % bootstrap CI]": fmt_ci(ece, lo, hi), "ece": ece, "ece_lo": lo, "ece_hi": hi,
                     "brier": float(((g["prob_top"] - g["true_top"]) ** 2).mean())})
    return pd.DataFrame(rows)


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


def floor_table(settings: dict, args) -> pd.DataFrame:
    """Per setting and band: true IT scores, the truth's own errors, the share of v(S) below bayesrca's MC floor."""
    floor = math.log(1.0 / (args.mc_samples + 1))
    rows = []
    for name, s in settings.items():
        for label, *_ in args.bands:
            ks = [k for k, b in enumerate(s["band"]) if b == label]
            truths = [s["truth"][k] for k in ks]
            v = np.concatenate([t["v"] for t in truths])
            rows.append({
                "setting": name, "band": label, "truth": truths[0]["method"], "outliers": len(ks),
                "root_causes": " ".join(s["cause"][k] for k in ks),
                "true_it": " ".join(f"{t['it']:.2f}" for t in truths), "min_true_v": float(v.min()),
                "max_se_phi": max(max(t["se_phi"].values()) for t in truths),
                "max_se_it": max(t["se_it"] for t in truths),
                "max_abs_mirror": max(abs(t["mirror_check"]) for t in truths), "mc_floor": floor,
                "frac_v_below_floor": float(np.mean(v < floor)),
                "frac_v_under_10_hits": float(np.mean(args.mc_samples * np.exp(v) < 10)),
            })
    return pd.DataFrame(rows)


def plot_curves(table: pd.DataFrame, column: str, path: Path, ylabel: str, band: bool) -> None:
    """One panel per setting: ``column`` against training size, one line per method."""
    plt = pyplot()
    names = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        for (method, band), g in table[table["setting"] == name].groupby(["method", "band"]):
            label = f"{method}, {band}"
            if column == "coverage":
                err = np.clip([g["coverage"] - g["wilson_lo"], g["wilson_hi"] - g["coverage"]], 0, None)
                ax.errorbar(g["size"], g["coverage"], yerr=err, marker="o", capsize=3, label=label)
            else:
                ax.plot(g["size"], g[column], marker="o", label=label)
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
