"""Extreme outliers (6-12 sd): root-cause ranking and calibration of bayesrca's tails vs DoWhy.

The evaluation suite's recall and calibration tables (``recall.py``, ``calibration.py``) use
outliers of 3-5 noise sd, where plain Monte Carlo tail probabilities are still resolved. This
script repeats both, in one process and side by side, with outliers of 6-12 sd, where the true
IT scores (tens of nats) are far beyond what M Monte Carlo samples can resolve (plain Monte
Carlo caps near log(M + 1), DoWhy's ``(count + 0.5) / (N + 0.5)`` with N = 3000 near
log(6001) = 8.7 nats). Outliers are binned by their shift (``--bins``, default 6-8, 8-10, 10-12).

Part (a), ranking (the protocol of ``recall.py``, with the root cause's noise shifted by a bin's
range of noise sd instead of 3-5):

* Settings ``SHAPE-NODES-MECHANISM-NOISE`` (``--settings``). Per setting ``--graphs`` random SCMs
  (``--nonlinear-graphs`` for nonlinear settings), each seeded by ``SeedSequence([--seed,
  crc32(setting), graph])``: DAG, ``TrueSCM``, a target with 3 to ``--max-ancestors`` ancestors,
  ``--rows`` training rows. Per bin, ``--per-bin`` outliers (``--nonlinear-per-bin``): root cause
  uniform over the target's ancestors and itself, its noise shifted by the bin's range of noise sd
  (``TrueSCM.inject``), kept only when it is a but-for cause (true IT >= log 100 with the shift,
  < log 10 without).
* Methods, each fitted once per graph and called once for all outliers of the graph (all bins):
  linear-Gaussian settings: bayesrca ``mechanisms="gaussian"`` with ``tail="auto"`` (closed form),
  ``tail="mc"`` (conditional Monte Carlo) and ``tail="plain"`` (plain Monte Carlo), bayesrca
  ``mechanisms="auto"`` (the default, ``tail="auto"``), DoWhy point ``attribute_anomalies`` (auto
  assignment, quality GOOD), and the oracle (exact contributions under the true model, closed
  form). Nonlinear settings: bayesrca ``mechanisms="auto"`` with ``tail="auto"`` and
  ``tail="plain"``, and DoWhy. Nodes are ranked by posterior median contribution (DoWhy: by its
  contribution); top-k recall = share of outliers whose root cause is among the k first, with
  95 % Wilson intervals. Seconds: fit (shared by the ``mechanisms="gaussian"`` rows) and
  attribution per graph, after an untimed warm-up.

Part (b), calibration against the exact truth (linear-Gaussian, closed form; the graph of
``calibration.py``: ER DAG with 6 nodes, graph seed 2, target X5, 5 players, ``TrueSCM(...,
seed=1)``):

* Fixed outliers, two sets. ``noise`` units: per bin, ``--cal-per-bin`` outliers, outlier k caused
  by player k mod 5 (the target included), its noise shifted by the bin's range of noise sd (as in
  part a). ``target`` units: the same, but the shift is scaled so that the root cause alone moves
  the target by the bin's range of *target* sd (true IT ~ z^2/2, i.e. ~ 20-75 nats at 6-12 sd).
  Both kept only when true IT >= log 100. Exact contributions and IT scores: closed form.
* ``--cal-repeats`` training sets of ``--cal-rows`` rows; bayesrca ``mechanisms="gaussian"``
  (``--cal-num-draws`` draws) with ``tail="auto"`` (closed form), ``"mc"`` (conditional MC) and
  ``"plain"``, and bayesrca ``mechanisms="linear"`` (Bayesian-bootstrap noise: its kernel is no
  tail model, so its Monte Carlo keeps the floor); DoWhy point estimates on the first
  ``--dowhy-repeats`` training sets. Per (bin, method): coverage of the true contributions and of
  the true IT score by the equal-tailed 90 % intervals (``summary(0.9)``, ``it_score_summary(0.9)``),
  the IT-score error of the posterior median (DoWhy: the sum of its contributions) in nats and
  relative to the truth, and the contribution error (mean |median - truth|, and sum over players
  of |median - truth| / true IT).

Run from the repository root::

    .venv/bin/python benchmarks/extreme.py            # full run, about 20 minutes on 2 shared cores
    .venv/bin/python benchmarks/extreme.py --bins 3-5 --skip-ranking    # the same tables at the suite's 3-5 sd
    .venv/bin/python benchmarks/extreme.py --smoke    # CI smoke test, < 60 s
    .venv/bin/python benchmarks/extreme.py --skip-calibration --settings er-10-linear-gaussian --graphs 2

Outputs under ``--out`` (default ``benchmarks/results/``): ``extreme.md`` (all tables),
``extreme.json`` (summaries and run metadata), ``extreme_ranking.csv``, ``extreme_ranking_trials.csv``,
``extreme_calibration.csv``, ``extreme_calibration_trials.csv``, ``extreme_it.csv``; ``--smoke``
writes ``extreme_smoke*`` instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
import warnings
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import _common as common
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


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; unset options take the FULL (or ``--smoke``) values."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Defaults (full / --smoke): " + "; ".join(f"{k}={FULL[k]} / {SMOKE[k]}" for k in FULL))
    from recall import parse_setting

    p.add_argument("--settings", nargs="+", type=parse_setting, help="ranking settings SHAPE-NODES-MECHANISM-NOISE")
    p.add_argument("--bins", nargs="+", type=parse_bin, help="shift bins LO-HI in sd (default 6-8 8-10 10-12; --smoke: 10-12)")
    for flag, text in (("--graphs", "random SCMs per linear setting"), ("--nonlinear-graphs", "random SCMs per nonlinear setting"),
                       ("--per-bin", "outliers per bin and graph (linear)"), ("--nonlinear-per-bin", "outliers per bin and graph (nonlinear)"),
                       ("--rows", "training rows per graph"), ("--max-ancestors", "largest number of the target's ancestors"),
                       ("--num-draws", "bayesrca posterior draws (ranking)"), ("--num-mc-samples", "bayesrca num_mc_samples"),
                       ("--cal-repeats", "calibration training sets"), ("--cal-per-bin", "calibration outliers per bin and unit"),
                       ("--cal-rows", "calibration training rows"), ("--cal-num-draws", "bayesrca posterior draws (calibration)"),
                       ("--dowhy-repeats", "calibration training sets on which DoWhy runs")):
        p.add_argument(flag, type=int, help=text)
    p.add_argument("--skip-ranking", action="store_true", help="run part (b) only")
    p.add_argument("--skip-calibration", action="store_true", help="run part (a) only")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="output directory")
    p.add_argument("--smoke", action="store_true", help="tiny CI run (< 60 s), writes extreme_smoke*")
    args = p.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, [parse_setting(s) for s in value] if key == "settings" else value)
    for key in FULL:
        if key not in ("settings", "bins", "dowhy_repeats") and getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    args.bins = [tuple(b) for b in args.bins]
    return args


def warm_up() -> None:
    """Untimed first-call costs of torch/Pyro and sklearn/DoWhy."""
    import bayesrca as br

    graph = sim.random_dag(4, "er", np.random.default_rng(5))
    graph.add_edge("X0", "X3")
    truth = sim.TrueSCM(graph, "linear", "gaussian", seed=3)
    train = truth.sample(200, np.random.default_rng(0))
    with common.quiet():
        scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=4).fit(train, seed=0)
        for tail in ("auto", "mc"):
            br.attribute_anomalies(scm, "X3", train.iloc[:1], seed=0, num_mc_samples=20, tail=tail)
    common.dowhy_fit(graph, train)


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


def run_bayes(scm, target, outliers, seed: int, mc: int, tail: str, caught: Counter):
    """One attribution call: (result, seconds)."""
    import bayesrca as br

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        res = br.attribute_anomalies(scm, target, outliers, seed=seed, num_mc_samples=mc, tail=tail)
        seconds = time.perf_counter() - t0
    caught.update(f"{w.category.__name__}: {str(w.message)[:120]}" for w in seen)
    return res, seconds


def fit_bayes(graph, train, mechanisms: str, num_draws: int, seed: int, caught: Counter):
    import bayesrca as br

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=num_draws).fit(train, seed=seed)
        seconds = time.perf_counter() - t0
    caught.update(f"{w.category.__name__}: {str(w.message)[:120]}" for w in seen)
    return scm, seconds


def mechanism_families(scm) -> str:
    """Per node: the fitted family (``LinearANM``, ``SplineANM``, ...) and its noise, as one string."""
    names = []
    for node, mech in scm.mechanisms_.items():
        noise = "gauss" if getattr(mech, "noise_is_gaussian", False) else "other"
        names.append(f"{node}:{type(mech).__name__}/{noise}")
    return " ".join(names)


# --------------------------------------------------------------------------------------------
# (a) ranking
# --------------------------------------------------------------------------------------------
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
                fitted[mechanisms] = fit_bayes(problem["graph"], problem["train"], mechanisms, args.num_draws, seed, caught)
            scm, fit_s = fitted[mechanisms]
            res, attr_s = run_bayes(scm, target, outliers, seed, args.num_mc_samples, tail, caught)
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
        t0 = time.perf_counter()
        dscm = common.dowhy_fit(problem["graph"], problem["train"], seed=seed)
        t1 = time.perf_counter()
        contrib = common.dowhy_attribute(dscm, target, outliers, seed=seed)
        t2 = time.perf_counter()
        nodes = [n for n in players if n in contrib]
        orders = [sorted(nodes, key=lambda n: -contrib[n][k]) for k in range(len(outliers))]
        results[DOWHY] = (orders, sum(contrib[n] for n in nodes), t1 - t0, t2 - t1, f"(count+0.5)/(N+0.5), N={DOWHY_SAMPLES}", False)
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
            "top1": top1 / n, **dict(zip(("top1_lo", "top1_hi"), sim.wilson(top1, n))),
            "top3": top3 / n, **dict(zip(("top3_lo", "top3_hi"), sim.wilson(top3, n))),
            "true_it_median": float(t["true_it"].median()), "true_it_max": float(t["true_it"].max()),
            "target_z_median": float(t["target_z"].abs().median()),
            "est_it_median": float(t["est_it"].median()), "est_it_max": float(t["est_it"].max()),
            "fit_s_per_graph": float(per_graph["fit_s"].mean()), "attribution_s_per_graph": float(per_graph["attribution_s"].mean()),
            "graphs": t["graph"].nunique(), "errors": int(t["error"].sum()),
        })
    return _sort_bins(pd.DataFrame(rows), trials, "setting")


def _sort_bins(table: pd.DataFrame, trials: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows by ``by``, then bins in the order of the trials with "all bins" last."""
    order = {b: i for i, b in enumerate(list(dict.fromkeys(trials["bin"])) + ["all bins"])}
    return table.sort_values([by, "bin"], key=lambda s: s.map(order) if s.name == "bin" else s, kind="stable").reset_index(drop=True)


def ranking_display(table: pd.DataFrame) -> pd.DataFrame:
    ci = common.fmt_ci
    return pd.DataFrame({
        "setting": table["setting"], "bin": table["bin"], "method": table["method"], "n": table["outliers"],
        "top-1 [95% CI]": [ci(*v) for v in zip(table["top1"], table["top1_lo"], table["top1_hi"])],
        "top-3 [95% CI]": [ci(*v) for v in zip(table["top3"], table["top3_lo"], table["top3_hi"])],
        "true IT (median)": table["true_it_median"], "est. IT (median)": table["est_it_median"],
        "|target z| (median)": table["target_z_median"],
        "fit s/graph": table["fit_s_per_graph"], "attr. s/graph": table["attribution_s_per_graph"],
        "errors": table["errors"],
    })


# --------------------------------------------------------------------------------------------
# (b) calibration
# --------------------------------------------------------------------------------------------
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
                fitted[mechanisms] = fit_bayes(graph, train, mechanisms, args.cal_num_draws, r, caught)
            scm, fit_s = fitted[mechanisms]
            res, attr_s = run_bayes(scm, target, outliers, r, args.num_mc_samples, tail, caught)
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
            t0 = time.perf_counter()
            dscm = common.dowhy_fit(graph, train, seed=r)
            contrib = common.dowhy_attribute(dscm, target, outliers, seed=r)
            seconds = time.perf_counter() - t0
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
            **dict(zip(("contribution_cov_lo", "contribution_cov_hi"), sim.wilson(c_hits, len(c)) if interval else (np.nan, np.nan))),
            "it_coverage": it_hits / len(it) if interval else np.nan,
            **dict(zip(("it_cov_lo", "it_cov_hi"), sim.wilson(it_hits, len(it)) if interval else (np.nan, np.nan))),
            "it_width": float((it["upper"] - it["lower"]).mean()),
            "it_bias_nats": float(err.mean()), "it_mae_nats": float(err.abs().mean()),
            "it_rel_err": float((err.abs() / it["truth"]).mean()),
            "contribution_mae": float(c["abs_err"].mean()), "contribution_l1_rel": float(norm_l1.mean()),
            "s_per_repeat": float(g.groupby("repeat")["time_s"].first().mean()),
        })
    return _sort_bins(pd.DataFrame(rows), trials, "units")


def calibration_display(table: pd.DataFrame) -> pd.DataFrame:
    ci = common.fmt_ci
    return pd.DataFrame({
        "units": table["units"], "bin": table["bin"], "method": table["method"], "reps": table["repeats"],
        "contrib. coverage [95% CI]": [ci(*v) for v in zip(table["contribution_coverage"], table["contribution_cov_lo"],
                                                           table["contribution_cov_hi"])],
        "IT coverage [95% CI]": [ci(*v) for v in zip(table["it_coverage"], table["it_cov_lo"], table["it_cov_hi"])],
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


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    if not args.smoke:  # the smoke run's seconds are not reported as timings; it skips the warm-up
        t = time.perf_counter()
        warm_up()
        log(f"warm-up done in {time.perf_counter() - t:.1f} s (untimed)")
    caught: Counter = Counter()
    suffix = "_smoke" if args.smoke else ""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections, summary_json, timings = [], {}, {}
    plain_cap = math.log(args.num_mc_samples + 1)

    if not args.skip_ranking:
        t = time.perf_counter()
        records = []
        for setting in args.settings:
            ts = time.perf_counter()
            graphs = args.graphs if setting["mechanism"] == "linear" else args.nonlinear_graphs
            for g in range(graphs):
                records += ranking_graph(setting, g, args, caught)
            timings[f"ranking {setting['name']}"] = time.perf_counter() - ts
        trials = pd.DataFrame(records)
        table = ranking_summary(trials)
        trials.to_csv(out / f"extreme_ranking_trials{suffix}.csv", index=False)
        table.to_csv(out / f"extreme_ranking{suffix}.csv", index=False)
        summary_json["ranking"] = table.to_dict(orient="records")
        timings["ranking"] = time.perf_counter() - t
        families = trials.loc[trials["method"] == "bayesrca auto (default)"].drop_duplicates(["setting", "graph"])
        fam_text = "; ".join(f"{r.setting} g{r.graph} ({r.tail}): {r.families}" for r in families.itertuples())
        sections.append(
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
            + common.markdown_table(ranking_display(table), digits=2)
            + f"\n\nFitted families under mechanisms='auto' (first graph of each setting): {fam_text}\n")

    if not args.skip_calibration:
        t = time.perf_counter()
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
        trials.to_csv(out / f"extreme_calibration_trials{suffix}.csv", index=False)
        table.to_csv(out / f"extreme_calibration{suffix}.csv", index=False)
        its.to_csv(out / f"extreme_it{suffix}.csv", index=False)
        summary_json["calibration"] = table.to_dict(orient="records")
        summary_json["it_scores"] = its.to_dict(orient="records")
        summary_json["calibration_outliers"] = [
            {k: v for k, v in m.items() if k != "truth"} | {"truth": {str(n): float(x) for n, x in m["truth"].items()}}
            for m in cal["meta"]]
        timings["calibration"] = time.perf_counter() - t
        sections.append(
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
            + common.markdown_table(calibration_display(table), digits=2)
            + "\n\n#### True IT scores against the estimates (median over outliers and repeats, nats)\n\n"
            + f"Plain Monte Carlo cap log(M+1) = {plain_cap:.2f}; DoWhy cap log(2N+1) = {DOWHY_CAP:.2f}.\n\n"
            + common.markdown_table(its, digits=1) + "\n")

    elapsed = time.perf_counter() - start
    import dowhy

    import bayesrca

    command = "python benchmarks/extreme.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"run_utc": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}", "git": common.git_revision(),
            "bayesrca": bayesrca.__version__, "dowhy": dowhy.__version__, "command": command.strip(),
            "elapsed_s": elapsed, "timings_s": timings, "peak_rss_mib": common.peak_rss_mib(),
            "args": {k: ([s["name"] for s in v] if k == "settings" else (str(v) if isinstance(v, Path) else v))
                     for k, v in vars(args).items()},
            "plain_cap_nats": plain_cap, "dowhy_cap_nats": DOWHY_CAP,
            "warnings": dict(caught.most_common(10))}
    summary_json["meta"] = meta
    (out / f"extreme{suffix}.json").write_text(json.dumps(summary_json, indent=1, default=float))
    header = (
        f"## Extreme outliers (6-12 sd){' (smoke)' if args.smoke else ''}\n\n"
        f"Run {meta['run_utc']} UTC; bayesrca {meta['bayesrca']} (git {meta['git']}), dowhy {meta['dowhy']}; "
        f"`{meta['command']}`; {elapsed:.0f} s wall ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"), peak RSS {meta['peak_rss_mib']:.0f} MiB.\n\n"
        + "Warnings raised by bayesrca: " + ("; ".join(f"{m} (x{c})" for m, c in caught.most_common(5)) or "none") + ".\n")
    report = "\n".join([header, *sections])
    (out / f"extreme{suffix}.md").write_text(report)
    print(report, flush=True)
    log(f"wrote {out}/extreme{suffix}.md, .json and the extreme_*{suffix}.csv files in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
