"""Tables and figure of ``benchmarks/recall.py``: recall per setting and method, the report's view, the plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from harness.plots import pyplot, save_figure
from harness.stats import proportion
from harness.tables import ci_column

METHODS = ("bayesrca (median)", "bayesrca (prob_top)", "DoWhy", "oracle (true model)")
LINEAR_TARGET = 0.9  # top-1 recall bayesrca should reach in linear settings


def summarise(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and method, plus rows pooled over all settings.

    Parameters
    ----------
    trials : pandas.DataFrame
        One row per outlier and method (the ``recall_trials.csv`` layout).

    Returns
    -------
    pandas.DataFrame
        Trials, top-1 / top-3 recall with Wilson bounds, mean seconds per graph (fit, attribution,
        total), errors, skipped root-cause draws, mean players, mean prob_top of the true cause,
        the ``prob_top < 0.5`` diagnostics and ``target_met``.
    """
    rows = []
    groups = pd.concat([trials.assign(group=trials["setting"]), trials.assign(group="all settings")])
    for (setting, method), t in groups.groupby(["group", "method"], sort=False):
        n, top1, top3 = len(t), int((t["rank"] == 1).sum()), int((t["rank"] <= 3).sum())
        per_graph = t.drop_duplicates(["setting", "graph"])
        uncertain = t[t["top_prob_top"] < 0.5]
        confident = t[t["top_prob_top"] >= 0.5]
        rows.append({
            "setting": setting, "method": method, "trials": n,
            **proportion("top1", top1, n), **proportion("top3", top3, n),
            "s_per_graph": float((per_graph["fit_s"] + per_graph["attribution_s"]).mean()),
            "fit_s": float(per_graph["fit_s"].mean()), "attribution_s": float(per_graph["attribution_s"].mean()),
            "players": float(t["players"].mean()), "errors": int(t["error"].sum()),
            "skipped_draws": int(per_graph["skipped_draws"].sum()),
            "true_prob_top": float(t["true_prob_top"].mean()),
            "uncertain": len(uncertain) if method.startswith("bayesrca") else np.nan,
            "wrong_if_uncertain": float((uncertain["rank"] != 1).mean()) if len(uncertain) else np.nan,
            "wrong_if_confident": float((confident["rank"] != 1).mean()) if len(confident) else np.nan,
            "linear": bool((t["mechanism"] == "linear").all()),
        })
    table = pd.DataFrame(rows)
    dowhy = table[table["method"] == "DoWhy"].set_index("setting")["top1"]
    met = []
    for row in table.itertuples():
        if not row.method.startswith("bayesrca"):
            met.append("—")
        else:
            ok = row.top1 >= dowhy.get(row.setting, np.nan) and (not row.linear or row.top1 >= LINEAR_TARGET)
            met.append("yes" if ok else "no")
    return table.assign(target_met=met).drop(columns="linear")


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The summary with recalls as 'value [lo, hi]' strings for the markdown report."""
    return pd.DataFrame({
        "setting": table["setting"], "method": table["method"], "trials": table["trials"], "players": table["players"],
        "top-1 recall [95% CI]": ci_column(table["top1"], table["top1_lo"], table["top1_hi"]),
        "top-3 recall [95% CI]": ci_column(table["top3"], table["top3_lo"], table["top3_hi"]),
        "s/graph": table["s_per_graph"], "prob_top(true)": table["true_prob_top"],
        "top prob_top<0.5": table["uncertain"].map(lambda v: "—" if pd.isna(v) else str(int(v))),
        "wrong if <0.5": table["wrong_if_uncertain"], "wrong if >=0.5": table["wrong_if_confident"],
        "errors": table["errors"], "target met": table["target_met"],
    })


def plot(table: pd.DataFrame, path: Path) -> None:
    """Top-1 recall with Wilson error bars per setting and method."""
    plt = pyplot()
    settings = list(dict.fromkeys(table["setting"]))
    x = np.arange(len(settings))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(settings) + 2), 4.2))
    for i, (method, marker) in enumerate(zip(METHODS, ("o", "s", "D", "x"))):
        t = table[table["method"] == method].set_index("setting").reindex(settings)
        err = np.clip(np.vstack([t["top1"] - t["top1_lo"], t["top1_hi"] - t["top1"]]), 0, None)
        ax.errorbar(x + (i - 1.5) * 0.18, t["top1"], yerr=err, fmt=marker, capsize=3, label=method)
    if "all settings" in settings:
        ax.axvline(settings.index("all settings") - 0.5, color="lightgrey", lw=0.8)
    ax.axhline(LINEAR_TARGET, color="grey", ls="--", lw=0.8, label=f"linear target {LINEAR_TARGET:g}")
    ax.set_xticks(x, settings, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("top-1 recall (95% Wilson CI)")
    ax.set_title("Root-cause recall on random SCMs")
    ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path)
