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

import networkx as nx
import numpy as np
import pandas as pd
import simulate as sim
from harness import cli, dowhy_runner
from harness.logs import log
from harness.outputs import Outputs, git_revision
from harness.tables import heading, markdown_table
from harness.timing import Stopwatch

import bayesrca as br
from bayesrca.datasets import load_microservice_degradation, load_supply_chain

FULL = {"graphs": 10, "nodes": 6, "rows": 500, "num_draws": 200, "dowhy_resamples": 5, "real": True}
DOWHY_MAX_ROWS = 2000  # rows per period given to DoWhy's distribution_change on the real data
SMOKE = {"graphs": 2, "nodes": 5, "rows": 200, "num_draws": 40, "dowhy_resamples": 0, "real": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones take the FULL values, or the SMOKE values with ``--smoke``."""
    p = cli.parser(__doc__.split("\n")[0])
    cli.add_sized(p, FULL, SMOKE, [("--graphs", "simulated problems"), ("--nodes", "largest number of nodes"),
                                   ("--rows", "rows per period"), ("--num-draws", "bayesrca posterior draws"),
                                   ("--dowhy-resamples", "DoWhy resamples of the intervals")])
    cli.add_common(p, smoke_help="tiny CI run (< 60 s)")
    return cli.parse(p, argv, FULL, SMOKE)


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

    def record(task: str, method: str, watch: Stopwatch, estimates: dict, truth: dict, changed: list | None) -> None:
        records.append({"task": task, "method": method, "seconds": watch.elapsed(), **_score(estimates, truth, changed)})

    change, ici = "distribution change (mean)", "intrinsic causal influence"
    for index in range(args.graphs):
        prob = make_problem(index, args)
        old, new = prob["data"]
        g, t = prob["graph"], prob["target"]
        watch = Stopwatch()
        res = br.distribution_change(g, old, new, t, mechanisms="gaussian", num_draws=args.num_draws, seed=index)
        record(change, "bayesrca", watch, _bayes_rows(res), prob["truth_change"], prob["changed"])
        watch = Stopwatch()
        est = dowhy_runner.distribution_change(g, old, new, t, resamples=args.dowhy_resamples, seed=index)
        record(change, "DoWhy", watch, est, prob["truth_change"], prob["changed"])
        watch = Stopwatch()
        scm = br.BayesianSCM(g, mechanisms="gaussian", num_draws=args.num_draws).fit(old, seed=index)
        influence = br.intrinsic_causal_influence(scm, t, seed=index)
        record(ici, "bayesrca", watch, _bayes_rows(influence), prob["truth_ici"], None)
        watch = Stopwatch()
        est = dowhy_runner.intrinsic_causal_influence(g, old, t, resamples=args.dowhy_resamples, seed=index)
        record(ici, "DoWhy", watch, est, prob["truth_ici"], None)
        log(f"problem {index}: {len(prob['players'])} players, changed {prob['changed']}")
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
        watch = Stopwatch()
        res = br.distribution_change(graph, old, new, target, mechanisms="linear", num_draws=args.num_draws, seed=0)
        seconds = watch.elapsed()
        table = res.summary(0.9)[["node", "median", "lower", "upper", "prob_top_abs", "prob_changed"]]
        total = res.total_summary(0.9).iloc[0]
        title += (f" (observed change {new[target].mean() - old[target].mean():.3f}; bayesrca total "
                  f"{total['median']:.3f} [{total['lower']:.3f}, {total['upper']:.3f}], {seconds:.1f} s")
        if args.real:  # DoWhy's kernel change tests grow quadratically: at most DOWHY_MAX_ROWS rows per period
            watch = Stopwatch()
            old_rows, new_rows = (f.sample(min(len(f), DOWHY_MAX_ROWS), random_state=0) for f in (old, new))
            est = dowhy_runner.distribution_change(graph, old_rows, new_rows, target, resamples=0, seed=0)
            table["DoWhy (point)"] = table["node"].map({n: v[0] for n, v in est.items()})
            title += f"; DoWhy {watch.elapsed():.1f} s"
        tables.append((title + ")", table))
    graph, normal, _ = load_microservice_degradation()
    watch = Stopwatch()
    scm = br.BayesianSCM(graph, mechanisms="linear", num_draws=args.num_draws).fit(normal, seed=0)
    ici = br.intrinsic_causal_influence(scm, "Website", seed=0)
    seconds = watch.elapsed()
    table = ici.summary(0.9)[["node", "median", "lower", "upper", "prob_top_abs"]]
    title = f"microservice, intrinsic causal influence on Var(Website) (bayesrca fit + ICI {seconds:.1f} s"
    if args.real:
        watch = Stopwatch()
        est = dowhy_runner.intrinsic_causal_influence(graph, normal, "Website", resamples=0, seed=0)
        table["DoWhy (point)"] = table["node"].map({n: v[0] for n, v in est.items()})
        title += f"; DoWhy fit + ICI {watch.elapsed():.1f} s"
    tables.append((title + ")", table))
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Outputs.create(args.out, args.smoke)
    watch = Stopwatch()
    summary = run_simulated(args)
    print(markdown_table(summary), flush=True)
    real = run_real(args)
    lines = [heading("Distribution change and intrinsic causal influence", args.smoke), "",
             (f"{args.graphs} simulated linear-Gaussian problems (<= {args.nodes} nodes, {args.rows} rows per period, "
              f"{args.num_draws} posterior draws, DoWhy intervals from {args.dowhy_resamples} resamples; "
              f"git {git_revision()})."), "", markdown_table(summary), ""]
    for title, table in real:
        lines += [f"### {title}", "", markdown_table(table), ""]
    lines.append(f"_Total {watch.elapsed():.0f} s._")
    text = "\n".join(lines)
    print(text)
    out.write_text("change", text + "\n")
    out.write_csv("change", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
