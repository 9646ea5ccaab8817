"""Root-cause recall on random ground-truth SCMs (the ICML 2022 protocol): bayesrca vs DoWhy.

Protocol (Budhathoki et al., "Causal structure-based root cause analysis of outliers", ICML 2022):

* A setting is ``SHAPE-NODES-MECHANISM-NOISE``, e.g. ``er-10-linear-gaussian``: an Erdős–Rényi
  DAG (``er``) or a latency-like call tree (``tree``) with NODES nodes, ``linear`` or
  ``nonlinear`` additive-noise mechanisms and a noise family from ``simulate.NOISES``
  (see ``benchmarks/simulate.py``). Any such name is accepted by ``--settings``.
* Per setting, ``--graphs`` random SCMs (default 5). Each graph's randomness comes from
  ``SeedSequence([--seed, crc32(setting name), graph index])``, so a setting gives the same
  graphs whether it runs alone or within the whole grid. Per graph: the DAG, a ``TrueSCM``, a
  target with 3 to ``--max-ancestors`` ancestors (default 5, so that DoWhy's attribution, seconds
  per outlier and growing with the players, keeps the grid near half an hour; time against the
  number of ancestors is scale.py's job), ``--rows`` training rows (default 2000) and
  ``--outliers`` outliers (default 20). Each outlier draws its root cause uniformly among the
  target's ancestors and the target itself and shifts that node's noise by 3-5 noise sd
  (``TrueSCM.inject``; ``--shift LO HI`` changes the range, e.g. ``--shift 6 12``). The draw
  is kept only if the root cause is a but-for cause: the target is an outlier with the shift
  (true IT score >= log 100) and not without it (< log 10); otherwise a new root cause is drawn
  (counted in ``skipped_draws``).
* bayesrca: ``BayesianSCM(graph, mechanisms="auto", num_draws=200).fit(train)``, then one
  ``attribute_anomalies`` call for all outliers of the graph. Nodes are ranked per outlier by
  posterior median contribution ("bayesrca (median)") or by ``prob_top``, ties broken by the
  median ("bayesrca (prob_top)").
* DoWhy: ``auto.assign_causal_mechanisms`` (quality GOOD) + ``fit``, then one
  ``attribute_anomalies`` call for all outliers; nodes ranked by contribution.
* Top-k recall = share of outliers whose true root cause is among the k highest-ranked nodes,
  with 95 % Wilson intervals. A failed call counts its outliers as misses (column ``errors``).
  Fit and attribution are timed per graph (``time.perf_counter``) after an untimed warm-up.
* "oracle (true model)" (linear-Gaussian settings): the exact contributions under the true
  parameters, in closed form; the ceiling of any method, since an injected cause can still be
  outranked by the ordinary noise of a node with a larger effect on the target.
* Targets: bayesrca top-1 recall >= DoWhy's in every setting, and >= 0.9 in linear settings.

Run from the repository root::

    .venv/bin/python benchmarks/recall.py                 # default grid, 5 x 20 outliers per setting
    .venv/bin/python benchmarks/recall.py --settings er-10-linear-gaussian --graphs 2
    .venv/bin/python benchmarks/recall.py --smoke         # CI smoke test, < 60 s
    .venv/bin/python benchmarks/recall.py --help

Outputs under ``--out`` (default ``benchmarks/results/``): ``recall.csv`` (setting x method),
``recall_trials.csv`` (one row per outlier and method), ``recall.md`` and ``recall.png``;
``--smoke`` writes ``recall_smoke.*`` instead.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections import Counter

import numpy as np
import pandas as pd
import simulate as sim
from harness import bayes_runner, cli, dowhy_runner
from harness.logs import log
from harness.outputs import Outputs, git_revision, utc_now
from harness.tables import heading, markdown_table
from harness.timing import Stopwatch, peak_rss_mib
from recall_tables import LINEAR_TARGET, METHODS, display_table, plot, summarise
from simulate import parse_setting

DEFAULT_SETTINGS = [  # linear: four noise families, a 50-node ER graph, a latency-like tree; then nonlinear
    "er-10-linear-gaussian", "er-10-linear-uniform", "er-10-linear-exponential", "er-10-linear-student_t",
    "er-50-linear-gaussian", "tree-20-linear-half_normal",
    "er-10-nonlinear-gaussian", "tree-10-nonlinear-exponential",
]
# At most 5 ancestors (<= 6 players) keeps DoWhy, whose attribution costs seconds per outlier and
# grows with the players, at about 4 minutes per setting; time against the number of ancestors is
# measured by scale.py.
FULL = {"settings": DEFAULT_SETTINGS, "graphs": 5, "outliers": 20, "rows": 2000, "max_ancestors": 5,
        "num_draws": 200, "num_mc_samples": 2000}
# smoke: at most 4 ancestors keeps DoWhy on its exact Shapley path (<= 5 players), which is fast
SMOKE = {"settings": ["er-6-linear-gaussian", "tree-6-nonlinear-exponential"], "graphs": 1, "outliers": 3,
         "rows": 300, "max_ancestors": 4, "num_draws": 30, "num_mc_samples": 200}
ORACLE_MAX_PLAYERS = 14  # the oracle's exact Shapley values enumerate 2**players coalitions
MAX_SKIPS_PER_OUTLIER = 20  # give up on a graph's remaining outliers after this many skipped draws
DEFAULT_SHIFT = (3.0, 5.0)  # noise sd by which the root cause is shifted (--shift; the ICML 2022 protocol)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; options left unset take the FULL (or, with ``--smoke``, SMOKE) values."""
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", type=parse_setting,
                   help=f"settings SHAPE-NODES-MECHANISM-NOISE; default {' '.join(FULL['settings'])} "
                   f"(--smoke: {' '.join(SMOKE['settings'])})")
    cli.add_sized(p, FULL, SMOKE, [("--graphs", "random SCMs per setting"), ("--outliers", "outliers per graph"),
                                   ("--rows", "training rows per graph"),
                                   ("--max-ancestors", "largest number of the target's ancestors"),
                                   ("--num-draws", "bayesrca posterior draws"),
                                   ("--num-mc-samples", "bayesrca Monte Carlo samples per draw")])
    cli.add_shift(p, DEFAULT_SHIFT, "the root cause's noise is shifted by LO-HI noise sd (TrueSCM.inject)")
    cli.add_common(p, smoke_help="tiny CI run (< 60 s), writes recall_smoke.*")
    return cli.parse(p, argv, FULL, SMOKE, convert={"settings": lambda names: [parse_setting(n) for n in names]},
                     at_least_one=("graphs", "outliers", "rows", "num_draws", "num_mc_samples", "max_ancestors"))


def make_problem(setting: dict, graph_index: int, args) -> dict | None:
    """One ground-truth problem: graph, true SCM, target, training data and the injected outliers.

    Parameters
    ----------
    setting : dict
        A parsed setting (:func:`parse_setting`).
    graph_index : int
        Index of the graph within the setting; with ``args.seed`` and the setting name it seeds
        every random choice.
    args : argparse.Namespace
        Needs ``seed``, ``max_ancestors``, ``rows`` and ``outliers``; ``shift`` (noise sd of the
        injected shift, default ``DEFAULT_SHIFT``) is optional.

    Returns
    -------
    dict or None
        ``graph, target, players, train, outliers`` (one row per outlier), ``causes`` (the true
        root cause of each row), ``it`` (true IT scores), ``skipped`` (root-cause draws that gave
        no outlier) and ``seed`` (for both tools); None when no outlier could be injected.
    """
    rng, graph, truth, target, train, reference, players, tool_seed = sim.ground_truth_setup(
        setting, graph_index, seed=args.seed, rows=args.rows, max_ancestors=args.max_ancestors
    )
    rows, noises, causes, skipped = [], [], [], 0
    while len(rows) < args.outliers and skipped < MAX_SKIPS_PER_OUTLIER * args.outliers:
        root = players[int(rng.integers(len(players)))]
        event = truth.inject(target, root, rng, shift=tuple(getattr(args, "shift", DEFAULT_SHIFT)), reference=reference)
        if event is None:
            skipped += 1
            continue
        rows.append(event[0])
        noises.append(event[1])
        causes.append(root)
    if not rows:
        return None
    outliers = pd.concat(rows, ignore_index=True)
    return {"graph": graph, "target": target, "train": train, "outliers": outliers, "causes": causes,
            "truth": truth, "noises": noises,
            "skipped": skipped, "players": players, "it": [sim.empirical_it(reference, x) for x in outliers[target]],
            "seed": tool_seed}


def run_bayesrca(problem: dict, args, seen: set) -> tuple[dict, float, float, str | None]:
    """bayesrca fit, then one attribution call for all outliers of the problem.

    Parameters
    ----------
    problem : dict
        From :func:`make_problem`.
    args : argparse.Namespace
        Needs ``num_draws`` and ``num_mc_samples``.
    seen : set
        Warning messages already logged (each distinct warning is logged once per run).

    Returns
    -------
    results : dict
        Method name -> one ``(rank of the true cause, top node, prob_top of the top node,
        prob_top of the true cause)`` tuple per outlier; empty on failure.
    fit_s, attribution_s : float
        Wall-clock seconds (NaN on failure).
    error : str or None
        The traceback of a failure.
    """
    caught: Counter = Counter()
    try:
        scm, fit_s = bayes_runner.fit(problem["graph"], problem["train"], mechanisms="auto", num_draws=args.num_draws,
                                      seed=problem["seed"], warnings=caught, width=160)
        res, attribution_s = bayes_runner.attribute(scm, problem["target"], problem["outliers"], seed=problem["seed"],
                                                    warnings=caught, width=160, num_mc_samples=args.num_mc_samples)
    except Exception:  # noqa: BLE001 - a benchmark records failures and goes on
        return {}, float("nan"), float("nan"), traceback.format_exc(limit=3)
    for key in caught:
        if key not in seen:
            seen.add(key)
            log(f"  bayesrca warning (first occurrence): {key}")
    table = res.summary()
    out = {m: [] for m in METHODS[:2]}
    for k, cause in enumerate(problem["causes"]):
        rows = table[table["anomaly"] == k]
        prob = dict(zip(rows["node"], rows["prob_top"]))
        by_median = list(rows["node"])  # summary() sorts by median, descending
        by_prob = list(rows.sort_values(["prob_top", "median"], ascending=False, kind="stable")["node"])
        for method, order in zip(METHODS[:2], (by_median, by_prob)):
            out[method].append((order.index(cause) + 1, order[0], prob[order[0]], prob[cause]))
    return out, fit_s, attribution_s, None


def run_dowhy(problem: dict) -> tuple[dict, float, float, str | None]:
    """DoWhy fit, then one attribution call; same return layout as :func:`run_bayesrca` (prob_top NaN)."""
    try:
        watch = Stopwatch()
        scm = dowhy_runner.fit(problem["graph"], problem["train"], seed=problem["seed"])
        fit_s = watch.lap()
        contrib = dowhy_runner.attribute(scm, problem["target"], problem["outliers"], seed=problem["seed"])
        attribution_s = watch.lap()
    except Exception:  # noqa: BLE001
        return {}, float("nan"), float("nan"), traceback.format_exc(limit=3)
    orders = dowhy_runner.ranked(contrib, problem["players"], len(problem["causes"]))  # topological order breaks ties
    out = [(order.index(cause) + 1, order[0], float("nan"), float("nan"))
           for order, cause in zip(orders, problem["causes"])]
    return {"DoWhy": out}, fit_s, attribution_s, None


def run_oracle(problem: dict) -> dict:
    """Exact contributions under the true linear-Gaussian model (closed form); empty otherwise.

    The ceiling of any method: an injected cause can still be outranked by the ordinary noise of
    a node with a larger effect on the target.
    """
    truth = problem["truth"]
    if truth.mechanism != "linear" or truth.noise != "gaussian" or len(problem["players"]) > ORACLE_MAX_PLAYERS:
        return {}
    out = []
    for noise, cause in zip(problem["noises"], problem["causes"]):
        phi, _ = truth.true_contributions(problem["target"], noise)
        order = sorted(problem["players"], key=lambda n: -phi[n])
        out.append((order.index(cause) + 1, order[0], float("nan"), float("nan")))
    return {METHODS[3]: out}


def warm_up() -> None:
    """Untimed: torch/Pyro and sklearn/joblib first-call costs."""
    args = argparse.Namespace(seed=99, max_ancestors=4, rows=200, outliers=1)
    problem = make_problem(parse_setting("er-5-linear-gaussian"), 0, args)
    bayes_runner.warm_up(problem["graph"], problem["train"], problem["target"], anomalies=problem["outliers"])


def run_setting(setting: dict, args, seen: set) -> list[dict]:
    """All trials of one setting: one record per outlier and method."""
    records = []
    for g in range(args.graphs):
        problem = make_problem(setting, g, args)
        if problem is None:
            log(f"{setting['name']} graph {g}: no outlier could be injected; graph skipped")
            continue
        results = {}
        bayes, fit_b, attr_b, err_b = run_bayesrca(problem, args, seen)
        dowhy, fit_d, attr_d, err_d = run_dowhy(problem)
        for tool, err in (("bayesrca", err_b), ("DoWhy", err_d)):
            if err:
                log(f"  {tool} FAILED on {setting['name']} graph {g}:\n{err}")
        results.update(bayes)
        results.update(dowhy)
        results.update(run_oracle(problem))
        timing = {METHODS[0]: (fit_b, attr_b, err_b), METHODS[1]: (fit_b, attr_b, err_b),
                  METHODS[2]: (fit_d, attr_d, err_d), METHODS[3]: (0.0, 0.0, None)}
        for method in [m for m in METHODS if m in results or m != METHODS[3]]:
            fit_s, attr_s, err = timing[method]
            for k, cause in enumerate(problem["causes"]):
                rank, top, top_p, true_p = results[method][k] if method in results else (np.nan, None, np.nan, np.nan)
                records.append({
                    "setting": setting["name"], "mechanism": setting["mechanism"], "graph": g, "outlier": k,
                    "method": method, "target": problem["target"], "players": len(problem["players"]),
                    "root_cause": cause, "true_it": problem["it"][k], "rank": rank, "top_node": top,
                    "top_prob_top": top_p, "true_prob_top": true_p, "fit_s": fit_s, "attribution_s": attr_s,
                    "error": bool(err), "skipped_draws": problem["skipped"],
                })
        hits = {m: np.mean([r[0] == 1 for r in results.get(m, [(0,)])]) for m in METHODS if m in results}
        log(f"{setting['name']} graph {g}: target {problem['target']} ({len(problem['players'])} players), "
            f"{len(problem['causes'])} outliers, {problem['skipped']} skipped; bayesrca {fit_b:.1f}+{attr_b:.1f} s, "
            f"DoWhy {fit_d:.1f}+{attr_d:.1f} s; top-1 " + ", ".join(f"{m} {h:.2f}" for m, h in hits.items()))
    return records


def main(argv: list[str] | None = None) -> int:
    """Run every setting, then write and print the report."""
    args = parse_args(argv)
    start = Stopwatch()
    with Stopwatch() as watch:
        warm_up()
    log(f"warm-up done in {watch.seconds:.1f} s (untimed)")
    seen: set = set()
    records = []
    for setting in args.settings:
        with Stopwatch() as watch:
            records += run_setting(setting, args, seen)
        log(f"== {setting['name']} done in {watch.seconds:.1f} s")
    trials = pd.DataFrame(records)
    table = summarise(trials)
    shown = display_table(table)

    out = Outputs.create(args.out, args.smoke)
    out.write_csv("recall", table)
    out.write_csv("recall_trials", trials)
    plot(table, out.path("recall", ".png"))
    elapsed = start.elapsed()
    protocol = (
        f"{len(args.settings)} settings x {args.graphs} random SCMs x {args.outliers} outliers; {args.rows} training "
        f"rows; target with 3-{args.max_ancestors} ancestors; root cause uniform over the target's ancestors and "
        f"itself, noise shifted by {args.shift[0]:g}-{args.shift[1]:g} sd, kept when it is a but-for cause (true IT "
        f"score >= log 100 with the shift, < log 10 without). bayesrca mechanisms='auto', "
        f"num_draws={args.num_draws}, num_mc_samples={args.num_mc_samples}; DoWhy auto assignment (GOOD). "
        f"Seed {args.seed}."
    )
    notes = "\n".join([
        f"Protocol: {protocol}",
        "",
        f"Run {utc_now()}, git {git_revision()}, {elapsed:.0f} s in all, peak RSS {peak_rss_mib():.0f} MiB.",
        "",
        (f"Targets: bayesrca top-1 recall >= DoWhy's in every setting, and >= {LINEAR_TARGET:g} in linear settings "
         "(column 'target met'). players = mean size of the target's ancestors + itself; s/graph = mean fit + "
         "attribution seconds per graph. prob_top(true) = mean posterior "
         "probability that the true root cause is the top contributor. 'top prob_top<0.5' counts outliers whose "
         "top-ranked node has prob_top < 0.5; 'wrong if <0.5' / 'wrong if >=0.5' = share of those (and of the "
         "others) whose top-ranked node is not the root cause. Failed calls count as misses (errors)."),
    ])
    text = f"{heading('Root-cause recall on random SCMs', args.smoke)}\n\n{notes}\n\n"
    text += markdown_table(shown, digits=2) + "\n"
    out.write_text("recall", text)
    print(markdown_table(shown, digits=2), flush=True)
    log(f"wrote {out.folder}/recall{out.suffix}.{{csv,md,png}} and recall_trials{out.suffix}.csv in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
