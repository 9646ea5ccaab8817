"""Root-cause recall when one true edge is missing from the given graph, with and without marking it uncertain.

Protocol: the hidden-root-cause simulations of ``recall.py`` (same settings, graphs, targets,
training rows and injected outliers: :func:`recall.make_problem`). Per graph, one true edge
``u -> v`` into the target's ancestry (``v`` among the target and its ancestors) is drawn at
random and removed from the graph handed to bayesrca. Three conditions, same data and seed:

* ``true graph``: ``BayesianSCM(graph)``;
* ``edge missing``: ``BayesianSCM(graph - edge)``; if the root cause is no longer an ancestor
  of the target it cannot be ranked and counts as a miss;
* ``edge uncertain``: ``GraphEnsemble(edge_probs=..., base_graph=graph - edge)`` with the
  removed edge and ``--decoys`` absent edges (random non-adjacent pairs among the target's
  ancestors and itself, oriented along a topological order of the true graph), each with prior
  probability 0.5 (``2**(1 + decoys)`` candidate graphs, weighted by held-out density), then
  ``ensemble.attribute_anomalies``;
* ``true graph, decoys uncertain``: the price of doubt, the true graph with only the decoys
  marked uncertain (p = 0.5).

Nodes are ranked per outlier by posterior median contribution. Top-k recall = share of outliers
whose true root cause is among the k highest-ranked nodes (95 % Wilson intervals). The table
also gives the mean posterior probability of the removed edge and of the decoys.

Mechanisms: ``--mechanisms`` (default ``gaussian``, the linear-Gaussian family, closed-form
attributions) on linear-Gaussian settings, to keep the run to a few minutes on 2 cores.

Run from the repository root::

    .venv/bin/python benchmarks/graph_uncertainty.py            # 3 settings x 30 graphs x 10 outliers
    .venv/bin/python benchmarks/graph_uncertainty.py --smoke    # CI smoke test, < 60 s

Outputs under ``--out``: ``graph_uncertainty.csv`` (setting x condition),
``graph_uncertainty_trials.csv`` (one row per outlier and condition) and ``graph_uncertainty.md``.
"""

from __future__ import annotations

import sys
import warnings
import zlib

import networkx as nx
import numpy as np
import pandas as pd
from harness import cli
from harness.logs import log
from harness.outputs import Outputs, git_revision, utc_now
from harness.stats import wilson
from harness.tables import heading, markdown_table
from harness.timing import Stopwatch
from recall import DEFAULT_SHIFT, make_problem
from simulate import parse_setting

import bayesrca as br

FULL = {"settings": ["er-10-linear-gaussian", "er-10-linear-uniform", "er-20-linear-gaussian"], "graphs": 30, "outliers": 10, "rows": 500,
        "max_ancestors": 5, "num_draws": 100, "decoys": 2}
SMOKE = {"settings": ["er-6-linear-gaussian"], "graphs": 2, "outliers": 3, "rows": 200, "max_ancestors": 4,
         "num_draws": 40, "decoys": 1}
CONDITIONS = ("true graph", "edge missing", "edge uncertain", "true graph, decoys uncertain")


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", type=parse_setting, help=f"default {' '.join(FULL['settings'])}")
    cli.add_sized(p, FULL, SMOKE, [("--graphs", "random SCMs per setting"), ("--outliers", "outliers per graph"),
                                   ("--rows", "training rows per graph"),
                                   ("--max-ancestors", "largest number of the target's ancestors"),
                                   ("--num-draws", "posterior draws"), ("--decoys", "absent edges also marked uncertain")])
    p.add_argument("--mechanisms", default="gaussian", help="bayesrca mechanisms (default gaussian)")
    cli.add_common(p, smoke_help="tiny CI run (< 60 s), writes graph_uncertainty_smoke.*")
    args = cli.parse(p, argv, FULL, SMOKE, convert={"settings": lambda names: [parse_setting(n) for n in names]},
                     at_least_one=("graphs", "outliers", "rows", "num_draws", "max_ancestors"))
    args.shift = DEFAULT_SHIFT
    return args


def pick_edges(problem: dict, rng: np.random.Generator, decoys: int) -> tuple[tuple, list[tuple]]:
    """The removed true edge (into the target's ancestry) and ``decoys`` absent edges among the players."""
    graph, players = problem["graph"], problem["players"]
    into = sorted((e for e in graph.edges if e[1] in players), key=repr)
    removed = into[int(rng.integers(len(into)))]
    order = {n: i for i, n in enumerate(nx.topological_sort(graph))}
    absent = sorted(((u, v) for u in players for v in players if order[u] < order[v] and not graph.has_edge(u, v)),
                    key=repr)
    pick = rng.choice(len(absent), size=min(decoys, len(absent)), replace=False) if absent else []
    return removed, [absent[i] for i in pick]


def ranks(result, causes: list) -> list[float]:
    """Rank of the true cause by posterior median per outlier (inf when it is not a player)."""
    table = result.summary()
    out = []
    for k, cause in enumerate(causes):
        order = list(table[table["anomaly"] == result.anomalies[k]]["node"])  # sorted by median, descending
        out.append(order.index(str(cause)) + 1 if str(cause) in order else float("inf"))
    return out


def run_graph(setting: dict, g: int, args) -> list[dict]:
    problem = make_problem(setting, g, args)
    if problem is None:
        return []
    rng = np.random.default_rng([args.seed, zlib.crc32(setting["name"].encode()), g, 17])
    removed, decoys = pick_edges(problem, rng, args.decoys)
    given = nx.DiGraph(problem["graph"])
    given.remove_edge(*removed)
    train, outliers, target, seed = problem["train"], problem["outliers"], problem["target"], problem["seed"]
    results, info = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, graph in (("true graph", problem["graph"]), ("edge missing", given)):
            watch = Stopwatch()
            scm = br.BayesianSCM(graph, mechanisms=args.mechanisms, num_draws=args.num_draws).fit(train, seed=seed)
            res = br.attribute_anomalies(scm, target, outliers, seed=seed)
            results[name] = (ranks(res, problem["causes"]), watch.lap())
        watch = Stopwatch()
        ens = br.GraphEnsemble(edge_probs={e: 0.5 for e in [removed, *decoys]}, base_graph=given,
                               mechanisms=args.mechanisms, num_draws=args.num_draws).fit(train, seed=seed)
        res = ens.attribute_anomalies(target, outliers, seed=seed)
        results["edge uncertain"] = (ranks(res, problem["causes"]), watch.lap())
        if decoys:  # the price of doubt: the true graph with only absent edges marked uncertain
            watch = Stopwatch()
            alone = br.GraphEnsemble(edge_probs={e: 0.5 for e in decoys}, base_graph=problem["graph"],
                                     mechanisms=args.mechanisms, num_draws=args.num_draws).fit(train, seed=seed)
            res = alone.attribute_anomalies(target, outliers, seed=seed)
            results[CONDITIONS[3]] = (ranks(res, problem["causes"]), watch.lap())
    post = ens.edge_probs_.set_index("edge")["posterior"]
    info = {"removed_edge": f"{removed[0]}->{removed[1]}", "p_removed": float(post[f"{removed[0]}->{removed[1]}"]),
            "p_decoys": float(np.mean([post[f"{u}->{v}"] for u, v in decoys])) if decoys else float("nan"),
            "graphs": len(ens.graphs_)}
    log(f"{setting['name']} graph {g}: target {target}, removed {info['removed_edge']} "
        f"(posterior {info['p_removed']:.2f}, decoys {info['p_decoys']:.2f}); top-1 "
        + ", ".join(f"{c} {np.mean([r == 1 for r in results[c][0]]):.2f}" for c in CONDITIONS))
    records = []
    for cond in [c for c in CONDITIONS if c in results]:
        rk, secs = results[cond]
        for k, (cause, rank) in enumerate(zip(problem["causes"], rk)):
            records.append({"setting": setting["name"], "graph": g, "outlier": k, "condition": cond,
                            "root_cause": cause, "rank": rank, "seconds": secs, **info})
    return records


def summarise(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (setting, cond), grp in trials.groupby(["setting", "condition"], sort=False):
        n = len(grp)
        row = {"setting": setting, "condition": cond, "outliers": n}
        for k in (1, 3):
            hits = int((grp["rank"] <= k).sum())
            lo, hi = wilson(hits, n)
            row[f"top-{k}"] = hits / n
            row[f"top-{k} 95% CI"] = f"[{lo:.2f}, {hi:.2f}]"
        row["cause not a player"] = int(np.isinf(grp["rank"]).sum())
        per_graph = grp.drop_duplicates("graph")
        row["P(removed edge)"] = per_graph["p_removed"].mean() if cond == "edge uncertain" else np.nan
        row["P(decoy edge)"] = per_graph["p_decoys"].mean() if cond == "edge uncertain" else np.nan
        row["s/graph"] = per_graph["seconds"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = Stopwatch()
    records = []
    for setting in args.settings:
        for g in range(args.graphs):
            records += run_graph(setting, g, args)
    trials = pd.DataFrame(records)
    table = summarise(trials)
    out = Outputs.create(args.out, args.smoke)
    out.write_csv("graph_uncertainty", table)
    out.write_csv("graph_uncertainty_trials", trials)
    elapsed = start.elapsed()
    notes = (
        f"Protocol: {len(args.settings)} settings x {args.graphs} random SCMs x {args.outliers} outliers (recall.py's "
        f"simulations: {args.rows} training rows, target with 3-{args.max_ancestors} ancestors, root cause shifted by "
        f"{args.shift[0]:g}-{args.shift[1]:g} noise sd). One true edge into the target's ancestry removed per graph; "
        f"'edge uncertain' marks it and {args.decoys} absent edge(s) with p = 0.5. mechanisms={args.mechanisms!r}, "
        f"num_draws={args.num_draws}, ranking by posterior median. Seed {args.seed}.\n\n"
        f"Run {utc_now()}, git {git_revision()}, {elapsed:.0f} s in all. 'cause not a player': outliers whose root "
        "cause is not an ancestor of the target in the given graph (a miss whatever the method). P(removed edge), "
        "P(decoy edge): mean posterior probability of the uncertain edges."
    )
    text = f"{heading('Recall with a missing edge, with and without marking it uncertain', args.smoke)}\n\n{notes}\n\n"
    text += markdown_table(table, digits=2) + "\n"
    out.write_text("graph_uncertainty", text)
    print(markdown_table(table, digits=2), flush=True)
    log(f"wrote {out.folder}/graph_uncertainty{out.suffix}.{{csv,md}} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
