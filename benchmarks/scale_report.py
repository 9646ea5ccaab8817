"""Tables and figures of ``benchmarks/scale.py``: verdicts, the three parts' markdown, time plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from harness.plots import pyplot, save_figure
from harness.tables import fmt, markdown_table

TARGET_S = 60.0
INTS = {"anomalies", "ancestors", "ancestors_found", "nodes", "permutations", "peak_rss_mib"}  # table columns
TIMES = {"fit_s": "fit s", "attribution_s": "attribution s", "total_s": "total s"}
RSS = {"peak_rss_mib": "peak RSS MiB"}
COLOURS = {"bayesrca": "tab:blue", "DoWhy": "tab:orange"}


def extrapolate(ns, fits, attributions, n: int) -> float:
    """Total time at ``n`` anomalies: mean fit time + a least-squares line through the attribution times.

    With one measured point the attribution time is taken proportional to the number of anomalies.
    """
    ns, attributions = np.asarray(ns, float), np.asarray(attributions, float)
    if len(ns) == 0:
        return math.nan
    if len(ns) == 1:
        return float(np.mean(fits) + attributions[0] * n / ns[0])
    slope, intercept = np.polyfit(ns, attributions, 1)
    return float(np.mean(fits) + intercept + slope * n)


def verdict(row) -> str:
    if row.get("status") != "ok":
        return "missed"
    if row["total_s"] <= TARGET_S:
        return "met"
    return "met (attribution only)" if row["attribution_s"] <= TARGET_S else "missed"


def table(frame: pd.DataFrame, columns: dict, digits: int = 2) -> str:
    """Markdown of the ``columns`` (csv name -> title) of ``frame`` that exist; counts as integers."""
    present = {k: v for k, v in columns.items() if k in frame}
    sub = frame[list(present)].astype(object)
    for col in INTS & set(present):
        sub[col] = pd.Series([None if pd.isna(v) else round(float(v)) for v in sub[col]], sub.index, dtype=object)
    return markdown_table(sub.rename(columns=present), digits)


def anomalies_report(frame: pd.DataFrame, args) -> str:
    frame = frame.copy()
    frame["ms_per_anomaly"] = 1000 * frame["attribution_s"] / frame["anomalies"]
    frame["target"] = ""
    big = (frame["tool"] == "bayesrca") & (frame["anomalies"] == 1000)
    frame.loc[big, "target"] = [verdict(r) for _, r in frame[big].iterrows()]
    lines = []
    for mech in args.mechanisms:
        sub = frame[(frame["tool"] == "bayesrca") & (frame["setting"] == mech)]
        ok = sub[sub["status"] == "ok"]
        at = sub[sub["anomalies"] == 1000]
        if len(at):
            row = at.iloc[0]
            lines.append(f"{mech}: {verdict(row)} ({fmt(row['total_s'], 1)} s)" if row["status"] == "ok"
                         else f"{mech}: missed ({row['status']})")
        elif len(ok):
            guess = extrapolate(ok["anomalies"], ok["fit_s"], ok["attribution_s"], 1000)
            lines.append(f"{mech}: not run (linear extrapolation to 1000 anomalies: ~{guess:.0f} s)")
    cols = {"tool": "tool", "setting": "mechanisms", "anomalies": "anomalies", **TIMES, "ms_per_anomaly": "attribution ms/anomaly",
            **RSS, "engine": "engine", "top_cause": "top cause (slowest row)", "status": "status", "target": "target ≤ 60 s"}
    return ("### 1. Many anomalies (microservice, target Website)\n\nTarget: 1000 anomalies with bayesrca ≤ 60 s "
            f"(fit + attribution): {'; '.join(lines) or 'no bayesrca run'}.\n\n" + table(frame, cols))


def ancestors_report(frame: pd.DataFrame) -> str:
    cols = {"setting": "noise", "ancestors": "ancestors asked", "ancestors_found": "ancestors", "tool": "tool",
            "engine": "engine", "shapley": "Shapley", **TIMES, **RSS, "top_cause": "top cause", "true_cause": "true cause",
            "status": "status"}
    return "### 2. Time vs number of ancestors (1 outlier)\n\n" + table(frame, cols)


def large_report(frame: pd.DataFrame, errors: pd.DataFrame, args) -> str:
    frame = frame.copy()
    is_br = (frame["tool"] == "bayesrca") & (frame["run"] == "default")
    frame["target"] = ""
    frame.loc[is_br, "target"] = [verdict(r) for _, r in frame[is_br].iterrows()]
    cols = {"setting": "noise", "anomalies": "outliers", "nodes": "nodes", "ancestors_found": "ancestors", "tool": "tool",
            "run": "run", "engine": "engine", "permutations": "permutations", **TIMES, **RSS, "top_hits": "top cause = truth",
            "status": "status", "target": "target ≤ 60 s"}
    text = (f"### 3. Large graph ({args.large_nodes} nodes, target with ≥ {args.large_min_ancestors} ancestors)\n\n"
            "Target: bayesrca attribution with intervals ≤ 60 s (\"met\": fit + attribution ≤ 60 s).\n\n" + table(frame, cols))
    if len(errors):
        text += ("\n\nShapley approximation error: default vs long run, |difference| of the posterior medians (over "
                 "outliers and nodes) and of the per-draw contributions; on the closed-form engine the per-draw "
                 "difference is the permutation error alone, on the Monte Carlo engine both runs share the same "
                 "fresh noise (same seed).\n\n" + markdown_table(errors.drop(columns="part").rename(columns={"setting": "noise"}), 4))
    return text


def plain_log_ticks(axis) -> None:
    """Log-scale ticks at 1, 2, 5 x powers of ten, written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_anomalies(frame: pd.DataFrame, path: Path) -> None:
    """Fit + attribution time vs number of anomalies, log-log; DoWhy's extrapolation dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (tool, setting), sub in frame.groupby(["tool", "setting"], sort=False):
        ok = sub[sub["status"] == "ok"]
        extrapolated = "extrapolated_s" in sub and sub["extrapolated_s"].notna().any()
        if ok.empty and not extrapolated:
            continue
        line = ax.plot(ok["anomalies"], ok["total_s"], "o-", label=f"{tool} ({setting})")[0]
        if extrapolated:
            ext = pd.concat([ok.tail(1).assign(extrapolated_s=ok["total_s"].tail(1)), sub[sub["extrapolated_s"].notna()]])
            ax.plot(ext["anomalies"], ext["extrapolated_s"], "o--", mfc="none", color=line.get_color(),
                    label=f"{tool} extrapolated")
    ax.axhline(TARGET_S, color="grey", ls=":", label="60 s target")
    ax.set(xscale="log", yscale="log", xlabel="number of anomalies", ylabel="fit + attribution (s)",
           title="Microservice example: time vs number of anomalies")
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_ancestors(frame: pd.DataFrame, path: Path) -> None:
    """Fit + attribution time vs number of ancestors, one panel per noise, log time axis."""
    plt = pyplot()
    noises = list(dict.fromkeys(frame["setting"]))
    fig, axes = plt.subplots(1, len(noises), figsize=(5.5 * len(noises), 4.2), sharey=True, squeeze=False)
    for ax, noise in zip(axes[0], noises):
        for tool, colour in COLOURS.items():
            sub = frame[(frame["setting"] == noise) & (frame["tool"] == tool) & (frame["status"] == "ok")]
            if sub.empty:
                continue
            sub = sub.sort_values("ancestors_found")
            label = tool if tool == "DoWhy" else f"{tool} ({sub['engine'].iloc[0]} engine)"
            ax.plot(sub["ancestors_found"], sub["total_s"], "o-", label=label, color=colour)
        ax.set(yscale="log", xlabel="number of ancestors of the target", title=f"linear SCM, {noise} noise",
               xticks=sorted(frame["ancestors_found"].dropna().unique()))
        plain_log_ticks(ax.yaxis)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("fit + attribution (s)")
    save_figure(fig, path)
