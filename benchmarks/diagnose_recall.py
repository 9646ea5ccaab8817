"""Diagnose recall.py trials: refit one graph and attribute chosen outliers, printing why a node is blamed.

Rebuilds the exact problem of ``recall.py`` (same seeds), fits ``BayesianSCM(mechanisms="auto")``
as the benchmark does, and for each chosen outlier prints the true cause, the per-node posterior
summary with ``prob_top``, the IT score, the parents' values against their training range, the
warnings raised (``ExtrapolationWarning``, ``TailEstimateWarning``) and the mechanism families
``auto`` chose for the players with their averaging weights.

    python benchmarks/diagnose_recall.py --setting tree-10-nonlinear-exponential --graph 2 --outliers 3 7
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recall  # noqa: E402
from simulate import parse_setting  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setting", type=parse_setting, required=True)
    p.add_argument("--graph", type=int, required=True)
    p.add_argument("--outliers", type=int, nargs="*", help="outlier indices (default all)")
    p.add_argument("--num-draws", type=int, default=200)
    p.add_argument("--num-mc-samples", type=int, default=2000)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--n-outliers", type=int, default=20)
    p.add_argument("--max-ancestors", type=int, default=5)
    p.add_argument("--shift", type=float, nargs=2, default=[3.0, 5.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--linear", action="store_true", help="also attribute with mechanisms='linear' for comparison")
    p.add_argument("--extreme", action="store_true",
                   help="the problem of extreme.py's ranking part (its defaults: 1000 rows, bins 6-8 8-10 10-12, "
                   "2 outliers per bin, 100 draws unless given)")
    args = p.parse_args(argv)
    if args.extreme:
        from extreme_ranking import make_ranking_problem
        from extreme_setup import FULL as EXTREME

        rows = args.rows if args.rows != 2000 else EXTREME["rows"]
        ns = argparse.Namespace(seed=args.seed, max_ancestors=args.max_ancestors, rows=rows, bins=EXTREME["bins"],
                                per_bin=EXTREME["per_bin"], nonlinear_per_bin=EXTREME["nonlinear_per_bin"])
        problem = make_ranking_problem(args.setting, args.graph, ns)
        problem["causes"] = [m["root_cause"] for m in problem["meta"]]
        problem["it"] = [m["true_it"] for m in problem["meta"]]
        problem["noises"] = None
        print("bins:", [m["bin"] for m in problem["meta"]], "target z:", [round(m["target_z"], 1) for m in problem["meta"]])
    else:
        ns = argparse.Namespace(seed=args.seed, max_ancestors=args.max_ancestors, rows=args.rows,
                                outliers=args.n_outliers, shift=tuple(args.shift))
        problem = recall.make_problem(args.setting, args.graph, ns)
    import bayesrca as br

    graph, target, players, train = problem["graph"], problem["target"], problem["players"], problem["train"]
    picks = args.outliers if args.outliers else list(range(len(problem["causes"])))
    rows = problem["outliers"].iloc[picks].reset_index(drop=True)
    print(f"target {target}, players {players}")
    print("edges among players:", [(u, v) for u, v in graph.edges if v in players])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scm = br.BayesianSCM(graph, mechanisms="auto", num_draws=args.num_draws).fit(train, seed=problem["seed"])
    sel = scm.selection_
    cols = [c for c in ("node", "candidate", "elpd_diff", "se_diff", "chosen", "weight", "averaged_weight") if c in sel.columns]
    print("selection (players):")
    print(sel[sel["node"].isin(players)][cols].to_string(index=False) if "node" in sel else sel.to_string())
    for n in players:
        print(f"  {n}: {scm.mechanisms_[n]!r}"[:300])
    scms = {"auto": scm}
    if args.linear:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scms["linear"] = br.BayesianSCM(graph, mechanisms="linear", num_draws=args.num_draws).fit(train, seed=problem["seed"])
    for name, model in scms.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = br.attribute_anomalies(model, target, rows, seed=problem["seed"], num_mc_samples=args.num_mc_samples)
        print(f"\n===== mechanisms={name}; warnings: " + " | ".join(f"{w.category.__name__}: {str(w.message)[:400]}" for w in caught))
        table = res.summary()
        its = res.it_score_summary()
        for pos, k in enumerate(picks):
            cause = problem["causes"][k]
            t = table[table["anomaly"] == pos]
            print(f"\n-- outlier {k}: true cause {cause}, true IT {problem['it'][k]:.2f}, est IT "
                  f"{float(its.iloc[pos]['median']):.2f}" + ("" if problem["noises"] is None else
                  f"; shifted noise {problem['noises'][k][cause]:+.2f}"))
            print(t[["node", "median", "lower", "upper", "prob_top"]].to_string(index=False))
            vals = {n: float(rows.loc[pos, n]) for n in players}
            print("   values vs training [min, max]: " + ", ".join(
                f"{n}={vals[n]:.2f} [{train[n].min():.2f}, {train[n].max():.2f}]" for n in players))
            if problem["noises"] is not None:
                print("   true noise: " + ", ".join(f"{n}={problem['noises'][k][n]:+.2f}" for n in players))
    return 0


if __name__ == "__main__":
    sys.exit(main())
