"""Part (b) of ``benchmarks/extreme.py``: calibration of bayesrca's tails against the exact truth."""

from __future__ import annotations

import math
import traceback
from collections import Counter

import numpy as np
import pandas as pd
import simulate as sim
from extreme_setup import CAL_METHODS, CI_PROB, DOWHY, DOWHY_CAP, DOWHY_SAMPLES, bin_label, closed_form, sort_bins
from harness import bayes_runner, dowhy_runner
from harness.logs import log
from harness.outputs import Outputs
from harness.timing import Stopwatch
from harness.stats import wilson
from harness.tables import ci_column, markdown_table

def make_calibration(args) -> dict:
    """The fixed graph, true SCM and outliers (both unit sets) with their exact truth."""
    graph = sim.random_dag(6, "er", np.random.default_rng(2))
    target = sim.pick_target(graph, np.random.default_rng(2), min_ancestors=3, max_ancestors=5)
    truth = sim.TrueSCM(graph, "linear", "gaussian", seed=1)
    players = truth.players(target)
    reference = truth.reference_target(target)
    _, effect = truth.total_effects(target)
    sd_target = math.sqrt(sum(effect[p] ** 2 * truth.sigma[p] ** 2 for p in players))
    rows, meta = [], []
    for u, units in enumerate(("noise", "target")):
        for i, b in enumerate(args.bins):
            for k in range(args.cal_per_bin):
                cause = players[k % len(players)]
                # "target": noise shift (in noise sd) such that the cause alone moves the target by b target sd
                scale = 1.0 if units == "noise" else sd_target / abs(effect[cause] * truth.sigma[cause])
                found = None
                for attempt in range(20):
                    rng = np.random.default_rng([args.seed, 77, u, i, k, attempt])
                    found = truth.inject(target, cause, rng, shift=(b[0] * scale, b[1] * scale), reference=reference)
                    if found is not None:
                        break
                if found is None:
                    log(f"calibration: no outlier with IT >= log 100 for {cause}, {units} units, bin {bin_label(b)}; left out")
                    continue
                row, noise = found
                phi, it, z = closed_form(truth, target, noise)
                rows.append(row)
                meta.append({"units": units, "bin": bin_label(b), "cause": cause, "truth": phi, "true_it": it, "target_z": z,
                             "noise_shift_sd": noise[cause] / truth.sigma[cause]})
    return {"graph": graph, "truth": truth, "target": target, "players": players, "outliers": pd.concat(rows, ignore_index=True),
            "meta": meta, "sd_target": sd_target}


def calibration_repeat(cal: dict, r: int, args, caught: Counter) -> list[dict]:
    """All methods on training set r: one row per (outlier, node or IT, method)."""
    graph, target, outliers, meta = cal["graph"], cal["target"], cal["outliers"], cal["meta"]
    train = cal["truth"].sample(args.cal_rows, np.random.default_rng([args.seed, 99, r]))
    out, msg = [], []

    def add(method, tail, seconds, med, lower, upper, it_med, it_lo, it_hi):
        for k, m in enumerate(meta):
            base = {"repeat": r, "outlier": k, "units": m["units"], "bin": m["bin"], "cause": m["cause"], "method": method,
                    "tail": tail, "time_s": seconds, "true_it": m["true_it"], "target_z": m["target_z"]}
            for node, true in m["truth"].items():
                out.append(dict(base, quantity="contribution", node=node, truth=true, median=med[node][k],
                                lower=lower[node][k], upper=upper[node][k]))
            out.append(dict(base, quantity="it_score", node="IT", truth=m["true_it"], median=it_med[k], lower=it_lo[k],
                            upper=it_hi[k]))

    fitted = {}
    for label, (mechanisms, tail) in CAL_METHODS.items():
        try:
            if mechanisms not in fitted:
                fitted[mechanisms] = bayes_runner.fit(graph, train, mechanisms=mechanisms, num_draws=args.cal_num_draws,
                                                      seed=r, warnings=caught)
            scm, fit_s = fitted[mechanisms]
            res, attr_s = bayes_runner.attribute(scm, target, outliers, seed=r, warnings=caught,
                                                 num_mc_samples=args.num_mc_samples, tail=tail)
        except Exception:  # noqa: BLE001
            log(f"  {label} FAILED on calibration repeat {r}:\n{traceback.format_exc(limit=3)}")
            continue
        s = res.summary(ci_prob=CI_PROB)
        piv = {c: s.pivot(index="anomaly", columns="node", values=c) for c in ("median", "lower", "upper")}
        its = res.it_score_summary(ci_prob=CI_PROB).set_index("anomaly")
        add(label, res.method_info["tail"], fit_s + attr_s, *(piv[c] for c in ("median", "lower", "upper")),
            its["median"].to_numpy(), its["lower"].to_numpy(), its["upper"].to_numpy())
        msg.append(f"{label.replace('bayesrca ', '')} {fit_s:.1f}+{attr_s:.1f} s")
    if r < args.dowhy_repeats:
        try:
            with Stopwatch() as watch:
                dscm = dowhy_runner.fit(graph, train, seed=r)
                contrib = dowhy_runner.attribute(dscm, target, outliers, seed=r)
            seconds = watch.seconds
            nan = {n: np.full(len(outliers), np.nan) for n in contrib}
            total = sum(contrib[n] for n in cal["players"])
            add(DOWHY, f"(count+0.5)/(N+0.5), N={DOWHY_SAMPLES}", seconds, contrib, nan, nan, total,
                np.full(len(outliers), np.nan), np.full(len(outliers), np.nan))
            msg.append(f"DoWhy {seconds:.1f} s")
        except Exception:  # noqa: BLE001
            log(f"  DoWhy FAILED on calibration repeat {r}:\n{traceback.format_exc(limit=3)}")
    log(f"calibration repeat {r}: " + ", ".join(msg))
    return out


def calibration_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Per units x bin x method: coverage (contributions, IT), IT error, contribution error, seconds."""
    rows = []
    both = pd.concat([trials, trials.assign(bin="all bins")])
    for (units, b, method), g in both.groupby(["units", "bin", "method"], sort=False):
        c, it = g[g["quantity"] == "contribution"], g[g["quantity"] == "it_score"]
        interval = not it["lower"].isna().all()
        c_hits, it_hits = int(c["covered"].sum()), int(it["covered"].sum())
        norm_l1 = c.groupby(["repeat", "outlier"]).apply(lambda x: x["abs_err"].sum() / x["truth"].sum(), include_groups=False)
        err = it["median"] - it["truth"]
        rows.append({
            "units": units, "bin": b, "method": method, "tail": g["tail"].iloc[0], "repeats": g["repeat"].nunique(),
            "outliers": it["outlier"].nunique(),
            "true_it_median": float(it["truth"].median()), "true_it_min": float(it["truth"].min()),
            "true_it_max": float(it["truth"].max()), "target_z_median": float(it["target_z"].abs().median()),
            "est_it_median": float(it["median"].median()), "est_it_max": float(it["median"].max()),
            "contribution_coverage": c_hits / len(c) if interval else np.nan,
            **dict(zip(("contribution_cov_lo", "contribution_cov_hi"), wilson(c_hits, len(c)) if interval else (np.nan, np.nan))),
            "it_coverage": it_hits / len(it) if interval else np.nan,
            **dict(zip(("it_cov_lo", "it_cov_hi"), wilson(it_hits, len(it)) if interval else (np.nan, np.nan))),
            "it_width": float((it["upper"] - it["lower"]).mean()),
            "it_bias_nats": float(err.mean()), "it_mae_nats": float(err.abs().mean()),
            "it_rel_err": float((err.abs() / it["truth"]).mean()),
            "contribution_mae": float(c["abs_err"].mean()), "contribution_l1_rel": float(norm_l1.mean()),
            "s_per_repeat": float(g.groupby("repeat")["time_s"].first().mean()),
        })
    return sort_bins(pd.DataFrame(rows), trials, "units")


def calibration_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "units": table["units"], "bin": table["bin"], "method": table["method"], "reps": table["repeats"],
        "contrib. coverage [95% CI]": ci_column(table["contribution_coverage"], table["contribution_cov_lo"],
                                                table["contribution_cov_hi"]),
        "IT coverage [95% CI]": ci_column(table["it_coverage"], table["it_cov_lo"], table["it_cov_hi"]),
        "IT bias (nats)": table["it_bias_nats"], "IT MAE (nats)": table["it_mae_nats"], "IT rel. err": table["it_rel_err"],
        "contrib. MAE": table["contribution_mae"], "contrib. L1 / IT": table["contribution_l1_rel"],
        "s/repeat": table["s_per_repeat"],
    })


def it_table(cal_table: pd.DataFrame) -> pd.DataFrame:
    """True IT scores per units x bin against each method's median estimate (wide)."""
    part = cal_table[cal_table["bin"] != "all bins"]
    wide = part.pivot_table(index=["units", "bin"], columns="method", values="est_it_median", sort=False)
    first = part.drop_duplicates(["units", "bin"]).set_index(["units", "bin"])
    out = pd.DataFrame({
        "true IT median": first["true_it_median"], "true IT min": first["true_it_min"], "true IT max": first["true_it_max"],
        "|target z| median": first["target_z_median"],
    })
    short = {m: m.replace("bayesrca gaussian, ", "").replace("bayesrca ", "") for m in wide.columns}
    for m in wide.columns:
        out[f"{short[m]}"] = wide[m]
    return out.reset_index()


def run_calibration(args, caught: Counter, out: Outputs, summary: dict, timings: dict) -> str:
    """Part (b): writes its CSVs, fills ``summary`` and ``timings``; returns the report section."""
    plain_cap = math.log(args.num_mc_samples + 1)
    part = Stopwatch()
    cal = make_calibration(args)
    log(f"calibration: target {cal['target']}, players {cal['players']}, {len(cal['outliers'])} outliers, "
        f"true IT {[round(m['true_it'], 1) for m in cal['meta']]}")
    records = []
    for r in range(args.cal_repeats):
        records += calibration_repeat(cal, r, args, caught)
    trials = pd.DataFrame(records)
    trials["covered"] = (trials["lower"] <= trials["truth"]) & (trials["truth"] <= trials["upper"])
    trials["abs_err"] = (trials["median"] - trials["truth"]).abs()
    table = calibration_summary(trials)
    its = it_table(table)
    out.write_csv("extreme_calibration_trials", trials)
    out.write_csv("extreme_calibration", table)
    out.write_csv("extreme_it", its)
    summary["calibration"] = table.to_dict(orient="records")
    summary["it_scores"] = its.to_dict(orient="records")
    summary["calibration_outliers"] = [
        {k: v for k, v in m.items() if k != "truth"} | {"truth": {str(n): float(x) for n, x in m["truth"].items()}}
        for m in cal["meta"]]
    timings["calibration"] = part.elapsed()
    return (
        "### (b) Calibration against the exact truth (linear-Gaussian, closed form)\n\n"
        f"ER DAG with 6 nodes (graph seed 2), target {cal['target']}, players {cal['players']}; "
        f"{len(cal['outliers'])} fixed outliers ({args.cal_per_bin} per bin and units; cause k = player k mod "
        f"{len(cal['players'])}); units 'noise': the cause's noise shifted by the bin's range of noise sd; 'target': "
        f"shifted so that the cause alone moves the target by the bin's range of target sd. {args.cal_repeats} "
        f"training sets of {args.cal_rows} rows; bayesrca num_draws={args.cal_num_draws}, num_mc_samples="
        f"{args.num_mc_samples}; DoWhy (point estimates) on the first {min(args.dowhy_repeats, args.cal_repeats)}. "
        "Coverage of the truth by equal-tailed 90 % intervals, 95 % Wilson intervals; IT bias / MAE: posterior "
        "median (DoWhy: sum of contributions) minus the true IT; IT rel. err = mean |error| / true IT; contrib. "
        "L1 / IT = sum over players of |median - truth| / true IT; s/repeat = fit + attribution seconds.\n\n"
        + markdown_table(calibration_display(table), digits=2)
        + "\n\n#### True IT scores against the estimates (median over outliers and repeats, nats)\n\n"
        + f"Plain Monte Carlo cap log(M+1) = {plain_cap:.2f}; DoWhy cap log(2N+1) = {DOWHY_CAP:.2f}.\n\n"
        + markdown_table(its, digits=1) + "\n")
