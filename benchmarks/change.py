"""Distribution change and intrinsic causal influence: bayesrca vs DoWhy, against exact truths.

Protocol:

* **Simulated** (``--graphs`` problems): an Erdős–Rényi DAG (``simulate.random_dag``) cut down to a
  target with at least two ancestors and its ancestors (at most ``--nodes`` nodes), linear-Gaussian
  mechanisms ``X_j = c_j + sum_i w_ij X_i + N_j`` (weights ±U(0.5, 1.5), intercepts U(-1, 1), noise sd
  U(0.5, 1)). Between the "old" and "new" data two random nodes change: a root's intercept moves by
  ±U(1, 2) noise sd, a non-root either so or one of its weights is multiplied by U(1.5, 2.5).
  ``--rows`` rows of each period.

  - Distribution change of the target's mean. Truth: exact Shapley values over mechanism swaps with
    the true old and new parameters (means propagate exactly through a linear SCM). bayesrca:
    ``distribution_change(graph, old, new, target, mechanisms="gaussian")``; DoWhy:
    ``gcm.distribution_change`` (mechanisms from ``auto.assign_causal_mechanisms`` on the old data,
    difference of means), intervals from ``--dowhy-resamples`` runs on random 60 % subsamples (the
    notebook's protocol) at ``confidence_level=0.9``.
  - Intrinsic causal influence on the target's variance, in the old SCM. Truth: ``a_j**2 sigma_j**2``
    (a_j: total effect of N_j on the target). bayesrca: ``BayesianSCM(graph, "gaussian").fit(old)`` +
    ``intrinsic_causal_influence``; DoWhy: ``gcm.intrinsic_causal_influence(prediction_model="exact")``
    on its fitted model, intervals from ``fit_and_compute`` (75 % subsamples) resamples.
  - Metrics: top-1 recall (the node with the largest |true contribution| has the largest |median|),
    coverage of the 90 % intervals (changed and unchanged nodes separately for the change), mean
    absolute error of the median (point estimate for DoWhy), seconds per problem.

* **Real data** (DoWhy's notebooks; truth from the data's README): supply chain week over week
  (target ``received``; changed: demand, confirmed) and the microservice degradation (1000 degraded
  rows against 10,000 normal ones, target ``Website``; changed: Caching Service). DoWhy's
  ``distribution_change`` gets at most 2000 random rows per period there (its kernel change tests
  grow quadratically with the rows; on all 11,000 it did not finish in 15 minutes).

Run from the repository root::

    .venv/bin/python benchmarks/change.py            # full run (several minutes on 2 cores)
    .venv/bin/python benchmarks/change.py --smoke    # CI smoke test, < 60 s, no DoWhy on real data

Outputs under ``--out``: ``change.md`` and ``change.csv`` (``change_smoke.*`` with ``--smoke``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import _common as common
import networkx as nx
import numpy as np
import pandas as pd
import simulate as sim

import bayesrca as br
from bayesrca.datasets import load_microservice_degradation, load_supply_chain

FULL = {"graphs": 10, "nodes": 6, "rows": 500, "num_draws": 200, "dowhy_resamples": 5, "real": True}
DOWHY_MAX_ROWS = 2000  # rows per period given to DoWhy's distribution_change on the real data
SMOKE = {"graphs": 2, "nodes": 5, "rows": 200, "num_draws": 40, "dowhy_resamples": 0, "real": False}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for key in ("graphs", "nodes", "rows", "num_draws", "dowhy_resamples"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, default=None, help=f"default {FULL[key]} (--smoke: {SMOKE[key]})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--smoke", action="store_true", help="tiny CI run (< 60 s)")
    args = p.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


# -- simulated linear-Gaussian problems --------------------------------------------------------------
def make_problem(index: int, args) -> dict:
    rng = np.random.default_rng([args.seed, 8, index])
    while True:
        dag = sim.random_dag(args.nodes + 3, "er", rng)
        candidates = [n for n in dag.nodes if 2 <= len(nx.ancestors(dag, n)) <= args.nodes - 1]
        if candidates:
            break
    target = candidates[int(rng.integers(len(candidates)))]
    players = [n for n in nx.topological_sort(dag) if n in nx.ancestors(dag, target) | {target}]
    graph = nx.DiGraph(dag.subgraph(players))
    old = {"c": {n: rng.uniform(-1, 1) for n in players}, "sd": {n: rng.uniform(0.5, 1.0) for n in players},
           "w": {(u, v): rng.choice([-1, 1]) * rng.uniform(0.5, 1.5) for u, v in graph.edges}}
    new = {k: dict(v) for k, v in old.items()}
    changed = list(rng.choice(players, 2, replace=False))
    for node in changed:
        parents = list(graph.predecessors(node))
        if parents and rng.random() < 0.5:
            edge = (parents[int(rng.integers(len(parents)))], node)
            new["w"][edge] = old["w"][edge] * rng.uniform(1.5, 2.5)
        else:
            new["c"][node] = old["c"][node] + rng.choice([-1, 1]) * rng.uniform(1, 2) * old["sd"][node]
    data = [_sample(graph, players, prm, args.rows, rng) for prm in (old, new)]
    return {"graph": graph, "target": target, "players": players, "old": old, "new": new, "changed": changed,
            "data": data, "truth_change": _true_change(graph, players, target, old, new),
            "truth_ici": _true_ici(graph, players, target, old)}


def _sample(graph, players, prm, n, rng) -> pd.DataFrame:
    values = {}
    for node in players:
        values[node] = prm["c"][node] + prm["sd"][node] * rng.standard_normal(n)
        for parent in graph.predecessors(node):
            values[node] = values[node] + prm["w"][(parent, node)] * values[parent]
    return pd.DataFrame(values)


def _mean(graph, players, target, old, new, swapped) -> float:
    mu = {}
    for node in players:
        prm = new if node in swapped else old
        mu[node] = prm["c"][node] + sum(prm["w"][(p, node)] * mu[p] for p in graph.predecessors(node))
    return mu[target]


def _true_change(graph, players, target, old, new) -> dict:
    n = len(players)
    phi = dict.fromkeys(players, 0.0)
    for node in players:
        rest = [p for p in players if p != node]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(rest, size):
                gain = _mean(graph, players, target, old, new, set(subset) | {node}) - _mean(graph, players, target, old, new, set(subset))
                phi[node] += weight * gain
    return phi


def _true_ici(graph, players, target, prm) -> dict:
    effect = {}
    for source in players:  # total effect of N_source on the target
        unit = dict.fromkeys(players, 0.0)
        for node in players:
            unit[node] = (1.0 if node == source else 0.0) + sum(prm["w"][(p, node)] * unit[p] for p in graph.predecessors(node))
        effect[source] = unit[target]
    return {n: effect[n] ** 2 * prm["sd"][n] ** 2 for n in players}


def _bayes_rows(result) -> dict:
    table = result.summary(0.9).set_index("node")
    return {n: (table.loc[n, "median"], table.loc[n, "lower"], table.loc[n, "upper"]) for n in table.index}


def _dowhy_change(graph, old, new, target, resamples, seed):
    from dowhy import gcm
    from dowhy.gcm.util.general import set_random_seed

    def diff(a, b):
        return float(np.mean(b) - np.mean(a))

    with common.quiet():
        gcm.config.disable_progress_bars()
        set_random_seed(seed)
        scm = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph.edges))
        scm.graph.add_nodes_from(graph.nodes)
        gcm.auto.assign_causal_mechanisms(scm, old)
        point = gcm.distribution_change(scm, old, new, target, difference_estimation_func=diff)
        if not resamples:
            return {n: (float(v), np.nan, np.nan) for n, v in point.items()}
        _, intervals = gcm.confidence_intervals(
            lambda: gcm.distribution_change(scm, old.sample(frac=0.6), new.sample(frac=0.6), target,
                                            difference_estimation_func=diff),
            confidence_level=0.9, num_bootstrap_resamples=resamples)
    return {n: (float(v), *map(float, np.ravel(intervals[n])[:2])) for n, v in point.items()}


def _dowhy_ici(graph, old, target, resamples, seed):
    from dowhy import gcm

    scm = common.dowhy_fit(graph, old, seed=seed)
    with common.quiet():
        point = gcm.intrinsic_causal_influence(scm, target, prediction_model="exact")
        if not resamples:
            return {n: (float(v), np.nan, np.nan) for n, v in point.items()}
        _, intervals = gcm.confidence_intervals(
            gcm.fit_and_compute(gcm.intrinsic_causal_influence, scm, bootstrap_training_data=old, target_node=target,
                                prediction_model="exact"),
            confidence_level=0.9, num_bootstrap_resamples=resamples)
    return {n: (float(v), *map(float, np.ravel(intervals[n])[:2])) for n, v in point.items()}


def _score(estimates: dict, truth: dict, changed: list | None) -> dict:
    nodes = list(truth)
    med = np.array([estimates[n][0] for n in nodes])
    true = np.array([truth[n] for n in nodes])
    lo, hi = (np.array([estimates[n][k] for n in nodes]) for k in (1, 2))
    inside = (lo - 1e-9 <= true) & (true <= hi + 1e-9)
    is_changed = np.array([n in (changed or nodes) for n in nodes])
    has_ci = not np.isnan(lo).any()
    return {"top1": float(np.argmax(np.abs(med)) == np.argmax(np.abs(true))),
            "cov_changed": float(inside[is_changed].mean()) if has_ci else np.nan,
            "cov_unchanged": float(inside[~is_changed].mean()) if has_ci and (~is_changed).any() else np.nan,
            "mae": float(np.abs(med - true).mean())}


def run_simulated(args) -> pd.DataFrame:
    records = []
    for index in range(args.graphs):
        prob = make_problem(index, args)
        old, new = prob["data"]
        g, t = prob["graph"], prob["target"]
        start = time.perf_counter()
        res = br.distribution_change(g, old, new, t, mechanisms="gaussian", num_draws=args.num_draws, seed=index)
        records.append({"task": "distribution change (mean)", "method": "bayesrca", "seconds": time.perf_counter() - start,
                        **_score(_bayes_rows(res), prob["truth_change"], prob["changed"])})
        start = time.perf_counter()
        est = _dowhy_change(g, old, new, t, args.dowhy_resamples, index)
        records.append({"task": "distribution change (mean)", "method": "DoWhy", "seconds": time.perf_counter() - start,
                        **_score(est, prob["truth_change"], prob["changed"])})
        start = time.perf_counter()
        scm = br.BayesianSCM(g, mechanisms="gaussian", num_draws=args.num_draws).fit(old, seed=index)
        ici = br.intrinsic_causal_influence(scm, t, seed=index)
        records.append({"task": "intrinsic causal influence", "method": "bayesrca", "seconds": time.perf_counter() - start,
                        **_score(_bayes_rows(ici), prob["truth_ici"], None)})
        start = time.perf_counter()
        est = _dowhy_ici(g, old, t, args.dowhy_resamples, index)
        records.append({"task": "intrinsic causal influence", "method": "DoWhy", "seconds": time.perf_counter() - start,
                        **_score(est, prob["truth_ici"], None)})
        print(f"problem {index}: {len(prob['players'])} players, changed {prob['changed']}", file=sys.stderr, flush=True)
    frame = pd.DataFrame(records)
    return frame.groupby(["task", "method"], sort=False).agg(
        problems=("top1", "size"), top1_recall=("top1", "mean"), coverage90_changed=("cov_changed", "mean"),
        coverage90_unchanged=("cov_unchanged", "mean"), mae=("mae", "mean"), seconds=("seconds", "mean")).reset_index()


# -- real data -------------------------------------------------------------------------------------
def run_real(args) -> list[tuple[str, pd.DataFrame]]:
    tables = []
    cases = [("supply chain, mean of received, w1 -> w2", *load_supply_chain(), "received")]
    graph, normal, degraded = load_microservice_degradation()
    cases.append(("microservice, mean of Website, normal -> degraded", graph, normal, degraded, "Website"))
    for title, graph, old, new, target in cases:
        start = time.perf_counter()
        res = br.distribution_change(graph, old, new, target, mechanisms="linear", num_draws=args.num_draws, seed=0)
        seconds = time.perf_counter() - start
        table = res.summary(0.9)[["node", "median", "lower", "upper", "prob_top", "prob_changed"]]
        total = res.total_summary(0.9).iloc[0]
        title += (f" (observed change {new[target].mean() - old[target].mean():.3f}; bayesrca total "
                  f"{total['median']:.3f} [{total['lower']:.3f}, {total['upper']:.3f}], {seconds:.1f} s")
        if args.real:  # DoWhy's kernel change tests grow quadratically: at most DOWHY_MAX_ROWS rows per period
            start = time.perf_counter()
            est = _dowhy_change(graph, *(f.sample(min(len(f), DOWHY_MAX_ROWS), random_state=0) for f in (old, new)), target, 0, 0)
            table["DoWhy (point)"] = table["node"].map({n: v[0] for n, v in est.items()})
            title += f"; DoWhy {time.perf_counter() - start:.1f} s"
        tables.append((title + ")", table))
    graph, normal, _ = load_microservice_degradation()
    start = time.perf_counter()
    scm = br.BayesianSCM(graph, mechanisms="linear", num_draws=args.num_draws).fit(normal, seed=0)
    ici = br.intrinsic_causal_influence(scm, "Website", seed=0)
    seconds = time.perf_counter() - start
    table = ici.summary(0.9)[["node", "median", "lower", "upper", "prob_top"]]
    title = f"microservice, intrinsic causal influence on Var(Website) (bayesrca fit + ICI {seconds:.1f} s"
    if args.real:
        start = time.perf_counter()
        est = _dowhy_ici(graph, normal, "Website", 0, 0)
        table["DoWhy (point)"] = table["node"].map({n: v[0] for n, v in est.items()})
        title += f"; DoWhy fit + ICI {time.perf_counter() - start:.1f} s"
    tables.append((title + ")", table))
    return tables


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_smoke" if args.smoke else ""
    start = time.perf_counter()
    summary = run_simulated(args)
    print(common.markdown_table(summary), flush=True)
    real = run_real(args)
    lines = [f"## Distribution change and intrinsic causal influence{' (smoke)' if args.smoke else ''}", "",
             (f"{args.graphs} simulated linear-Gaussian problems (<= {args.nodes} nodes, {args.rows} rows per period, "
              f"{args.num_draws} posterior draws, DoWhy intervals from {args.dowhy_resamples} resamples; "
              f"git {common.git_revision()})."), "", common.markdown_table(summary), ""]
    for title, table in real:
        lines += [f"### {title}", "", common.markdown_table(table), ""]
    lines.append(f"_Total {time.perf_counter() - start:.0f} s._")
    text = "\n".join(lines)
    print(text)
    (args.out / f"change{suffix}.md").write_text(text + "\n")
    summary.to_csv(args.out / f"change{suffix}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
