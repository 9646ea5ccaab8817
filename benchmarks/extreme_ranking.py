"""Part (a) of ``benchmarks/extreme.py``: root-cause ranking with outliers of 6-12 sd, bayesrca vs DoWhy."""

from __future__ import annotations

import math
import traceback
from collections import Counter

import numpy as np
import pandas as pd
import simulate as sim
from extreme_setup import (
    DOWHY,
    DOWHY_CAP,
    DOWHY_SAMPLES,
    LINEAR_METHODS,
    MAX_SKIPS_PER_OUTLIER,
    NONLINEAR_METHODS,
    ORACLE,
    bin_label,
    closed_form,
    mechanism_families,
    sort_bins,
    target_z,
)
from harness import bayes_runner, dowhy_runner
from harness.logs import log
from harness.outputs import Outputs
from harness.timing import Stopwatch
from harness.stats import proportion
from harness.tables import ci_column, markdown_table

def make_ranking_problem(setting: dict, g: int, args) -> dict | None:
    """Graph, true SCM, target, training rows and per-bin outliers (same seeding as recall.py)."""
    rng, graph, truth, target, train, reference, players, tool_seed = sim.ground_truth_setup(
        setting, g, seed=args.seed, rows=args.rows, max_ancestors=args.max_ancestors
    )
    exact = setting["mechanism"] == "linear" and setting["noise"] == "gaussian"
    per_bin = args.per_bin if setting["mechanism"] == "linear" else args.nonlinear_per_bin
    rows, meta, skipped = [], [], 0
    for b in args.bins:
        kept = 0
        while kept < per_bin and skipped < MAX_SKIPS_PER_OUTLIER * per_bin * len(args.bins):
            root = players[int(rng.integers(len(players)))]
            event = truth.inject(target, root, rng, shift=b, reference=reference)
            if event is None:
                skipped += 1
                continue
            row, noise = event
            x = float(row[target].iloc[0])
            if exact:
                phi, it, z = closed_form(truth, target, noise)
                order = sorted(players, key=lambda n: -phi[n])
            else:
                it, z, order = float("nan"), target_z(reference, x), None
            rows.append(row)
            meta.append({"bin": bin_label(b), "root_cause": root, "true_it": it, "target_z": z, "oracle_order": order})
            kept += 1
    if not rows:
        return None
    return {"graph": graph, "truth": truth, "target": target, "train": train, "players": players,
            "outliers": pd.concat(rows, ignore_index=True), "meta": meta, "skipped": skipped, "exact": exact,
            "seed": tool_seed}


def ranking_graph(setting: dict, g: int, args, caught: Counter) -> list[dict]:
    """All methods on one graph: one record per outlier and method."""
    problem = make_ranking_problem(setting, g, args)
    if problem is None:
        log(f"{setting['name']} graph {g}: no outlier could be injected; skipped")
        return []
    target, outliers, players, seed = problem["target"], problem["outliers"], problem["players"], problem["seed"]
    methods = LINEAR_METHODS if setting["mechanism"] == "linear" else NONLINEAR_METHODS
    results = {}  # method -> (order per outlier, estimated IT per outlier, fit s, attribution s, tail, error)
    fitted = {}
    for label, (mechanisms, tail) in methods.items():
        try:
            if mechanisms not in fitted:
                fitted[mechanisms] = bayes_runner.fit(problem["graph"], problem["train"], mechanisms=mechanisms,
                                                      num_draws=args.num_draws, seed=seed, warnings=caught)
            scm, fit_s = fitted[mechanisms]
            res, attr_s = bayes_runner.attribute(scm, target, outliers, seed=seed, warnings=caught,
                                                 num_mc_samples=args.num_mc_samples, tail=tail)
        except Exception:  # noqa: BLE001 - a benchmark records failures and goes on
            log(f"  {label} FAILED on {setting['name']} graph {g}:\n{traceback.format_exc(limit=3)}")
            results[label] = (None, None, np.nan, np.nan, "error", True)
            continue
        med = np.median(res.contributions, axis=0)  # (anomalies, nodes)
        nodes = list(res.nodes)
        orders = [[nodes[j] for j in np.argsort(-med[k], kind="stable")] for k in range(len(outliers))]
        results[label] = (orders, np.median(res.it_scores, axis=0), fit_s, attr_s, res.method_info["tail"], False)
        if label == "bayesrca auto (default)":
            problem["families"] = mechanism_families(scm)
    try:
        watch = Stopwatch()
        dscm = dowhy_runner.fit(problem["graph"], problem["train"], seed=seed)
        fit_s = watch.lap()
        contrib = dowhy_runner.attribute(dscm, target, outliers, seed=seed)
        attr_s = watch.lap()
        orders = dowhy_runner.ranked(contrib, players, len(outliers))
        total = sum(contrib[n] for n in players if n in contrib)
        results[DOWHY] = (orders, total, fit_s, attr_s, f"(count+0.5)/(N+0.5), N={DOWHY_SAMPLES}", False)
    except Exception:  # noqa: BLE001
        log(f"  DoWhy FAILED on {setting['name']} graph {g}:\n{traceback.format_exc(limit=3)}")
        results[DOWHY] = (None, None, np.nan, np.nan, "error", True)
    if problem["exact"]:
        results[ORACLE] = ([m["oracle_order"] for m in problem["meta"]], [m["true_it"] for m in problem["meta"]],
                           0.0, 0.0, "closed form (true parameters)", False)
    records = []
    for method, (orders, its, fit_s, attr_s, tail, err) in results.items():
        for k, m in enumerate(problem["meta"]):
            rank = orders[k].index(m["root_cause"]) + 1 if orders is not None else np.nan
            records.append({
                "setting": setting["name"], "mechanism": setting["mechanism"], "graph": g, "outlier": k, "bin": m["bin"],
                "method": method, "tail": tail, "target": target, "players": len(players), "root_cause": m["root_cause"],
                "true_it": m["true_it"], "target_z": m["target_z"], "est_it": float(its[k]) if its is not None else np.nan,
                "rank": rank, "top_node": orders[k][0] if orders is not None else None, "fit_s": fit_s,
                "attribution_s": attr_s, "error": err, "skipped_draws": problem["skipped"],
                "families": problem.get("families", ""),
            })
    top1 = {m: np.mean([r["rank"] == 1 for r in records if r["method"] == m]) for m in results}
    log(f"{setting['name']} graph {g}: target {target} ({len(players)} players), {len(outliers)} outliers "
        f"({problem['skipped']} skipped draws); " + ", ".join(
            f"{m.replace('bayesrca ', '')} {top1[m]:.2f} ({results[m][2] + results[m][3]:.1f} s)" for m in results))
    return records


def ranking_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Top-1 / top-3 recall with Wilson intervals, estimated vs true IT and seconds, per setting x bin x method."""
    rows = []
    both = pd.concat([trials, trials.assign(bin="all bins")])
    for (setting, b, method), t in both.groupby(["setting", "bin", "method"], sort=False):
        n, top1, top3 = len(t), int((t["rank"] == 1).sum()), int((t["rank"] <= 3).sum())
        per_graph = t.drop_duplicates("graph")
        rows.append({
            "setting": setting, "bin": b, "method": method, "tail": t["tail"].iloc[0], "outliers": n,
            **proportion("top1", top1, n), **proportion("top3", top3, n),
            "true_it_median": float(t["true_it"].median()), "true_it_max": float(t["true_it"].max()),
            "target_z_median": float(t["target_z"].abs().median()),
            "est_it_median": float(t["est_it"].median()), "est_it_max": float(t["est_it"].max()),
            "fit_s_per_graph": float(per_graph["fit_s"].mean()), "attribution_s_per_graph": float(per_graph["attribution_s"].mean()),
            "graphs": t["graph"].nunique(), "errors": int(t["error"].sum()),
        })
    return sort_bins(pd.DataFrame(rows), trials, "setting")


def ranking_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "setting": table["setting"], "bin": table["bin"], "method": table["method"], "n": table["outliers"],
        "top-1 [95% CI]": ci_column(table["top1"], table["top1_lo"], table["top1_hi"]),
        "top-3 [95% CI]": ci_column(table["top3"], table["top3_lo"], table["top3_hi"]),
        "true IT (median)": table["true_it_median"], "est. IT (median)": table["est_it_median"],
        "|target z| (median)": table["target_z_median"],
        "fit s/graph": table["fit_s_per_graph"], "attr. s/graph": table["attribution_s_per_graph"],
        "errors": table["errors"],
    })


def run_ranking(args, caught: Counter, out: Outputs, summary: dict, timings: dict) -> str:
    """Part (a) on every setting: writes its CSVs, fills ``summary`` and ``timings``; returns the report section."""
    plain_cap = math.log(args.num_mc_samples + 1)
    part = Stopwatch()
    records = []
    for setting in args.settings:
        with Stopwatch() as watch:
            graphs = args.graphs if setting["mechanism"] == "linear" else args.nonlinear_graphs
            for g in range(graphs):
                records += ranking_graph(setting, g, args, caught)
        timings[f"ranking {setting['name']}"] = watch.seconds
    trials = pd.DataFrame(records)
    table = ranking_summary(trials)
    out.write_csv("extreme_ranking_trials", trials)
    out.write_csv("extreme_ranking", table)
    summary["ranking"] = table.to_dict(orient="records")
    timings["ranking"] = part.elapsed()
    families = trials.loc[trials["method"] == "bayesrca auto (default)"].drop_duplicates(["setting", "graph"])
    fam_text = "; ".join(f"{r.setting} g{r.graph} ({r.tail}): {r.families}" for r in families.itertuples())
    return (
        "### (a) Root-cause ranking\n\n"
        f"{', '.join(s['name'] for s in args.settings)}; {args.graphs} graphs per linear setting x {args.per_bin} "
        f"outliers per bin, {args.nonlinear_graphs} graphs per nonlinear setting x {args.nonlinear_per_bin} per bin; "
        f"{args.rows} training rows; target with 3-{args.max_ancestors} ancestors; root cause uniform over the "
        f"target's ancestors and itself, its noise shifted by the bin's range of noise sd, kept when a but-for cause. "
        f"bayesrca num_draws={args.num_draws}, num_mc_samples={args.num_mc_samples} (plain cap log(M+1) = "
        f"{plain_cap:.2f} nats); DoWhy cap log(2N+1) = {DOWHY_CAP:.2f} nats. Ranked by posterior median "
        "(DoWhy: its contribution). true IT: closed form (linear-Gaussian only); est. IT: median over outliers of "
        "the posterior median IT (DoWhy: sum of contributions); |target z|: the target's deviation in its sd. "
        "s/graph: mean seconds per graph (fit shared by the mechanisms='gaussian' rows; attribution per call "
        f"for all {len(args.bins)} x per-bin outliers).\n\n"
        + markdown_table(ranking_display(table), digits=2)
        + f"\n\nFitted families under mechanisms='auto' (first graph of each setting): {fam_text}\n")
