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
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

import _common as common
import numpy as np
import pandas as pd
import simulate as sim

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
METHODS = ("bayesrca (median)", "bayesrca (prob_top)", "DoWhy", "oracle (true model)")
ORACLE_MAX_PLAYERS = 14  # the oracle's exact Shapley values enumerate 2**players coalitions
LINEAR_TARGET = 0.9  # top-1 recall bayesrca should reach in linear settings
MAX_SKIPS_PER_OUTLIER = 20  # give up on a graph's remaining outliers after this many skipped draws
DEFAULT_SHIFT = (3.0, 5.0)  # noise sd by which the root cause is shifted (--shift; the ICML 2022 protocol)


def parse_setting(name: str) -> dict:
    """``"er-10-linear-gaussian"`` -> ``{"name", "shape", "nodes", "mechanism", "noise"}``."""
    parts = name.split("-")
    if len(parts) != 4 or parts[0] not in ("er", "tree") or not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"setting must look like 'er-10-linear-gaussian', got {name!r}")
    if parts[2] not in sim.MECHANISMS or parts[3] not in sim.NOISES:
        raise argparse.ArgumentTypeError(f"mechanism in {sim.MECHANISMS}, noise in {sim.NOISES}; got {name!r}")
    return {"name": name, "shape": parts[0], "nodes": int(parts[1]), "mechanism": parts[2], "noise": parts[3]}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; options left unset take the FULL (or, with ``--smoke``, SMOKE) values."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=_Help)

    def sized(flag, help_text):
        key = flag[2:].replace("-", "_")
        p.add_argument(flag, type=int, help=f"{help_text}; default {FULL[key]} (--smoke: {SMOKE[key]})")

    p.add_argument("--settings", nargs="+", type=parse_setting,
                   help=f"settings SHAPE-NODES-MECHANISM-NOISE; default {' '.join(FULL['settings'])} "
                   f"(--smoke: {' '.join(SMOKE['settings'])})")
    sized("--graphs", "random SCMs per setting")
    sized("--outliers", "outliers per graph")
    sized("--rows", "training rows per graph")
    sized("--max-ancestors", "largest number of the target's ancestors")
    sized("--num-draws", "bayesrca posterior draws")
    sized("--num-mc-samples", "bayesrca Monte Carlo samples per draw")
    p.add_argument("--seed", type=int, default=0, help="master seed of every random choice")
    p.add_argument("--shift", nargs=2, type=float, default=list(DEFAULT_SHIFT), metavar=("LO", "HI"),
                   help="the root cause's noise is shifted by LO-HI noise sd (TrueSCM.inject)")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="output directory")
    p.add_argument("--smoke", action="store_true", help="tiny CI run (< 60 s), writes recall_smoke.*")
    args = p.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, [parse_setting(s) for s in value] if key == "settings" else value)
    for key in ("graphs", "outliers", "rows", "num_draws", "num_mc_samples", "max_ancestors"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if not 0 < args.shift[0] <= args.shift[1]:
        p.error("--shift LO HI needs 0 < LO <= HI")
    args.shift = tuple(args.shift)
    return args


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` only for options whose default is not None."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    import bayesrca as br

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            t0 = time.perf_counter()
            scm = br.BayesianSCM(problem["graph"], mechanisms="auto", num_draws=args.num_draws)
            scm.fit(problem["train"], seed=problem["seed"])
            t1 = time.perf_counter()
            res = br.attribute_anomalies(scm, problem["target"], problem["outliers"], seed=problem["seed"],
                                         num_mc_samples=args.num_mc_samples)
            t2 = time.perf_counter()
        except Exception:  # noqa: BLE001 - a benchmark records failures and goes on
            return {}, float("nan"), float("nan"), traceback.format_exc(limit=3)
    for w in caught:
        key = f"{w.category.__name__}: {str(w.message)[:160]}"
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
    return out, t1 - t0, t2 - t1, None


def run_dowhy(problem: dict) -> tuple[dict, float, float, str | None]:
    """DoWhy fit, then one attribution call; same return layout as :func:`run_bayesrca` (prob_top NaN)."""
    try:
        t0 = time.perf_counter()
        scm = common.dowhy_fit(problem["graph"], problem["train"], seed=problem["seed"])
        t1 = time.perf_counter()
        contrib = common.dowhy_attribute(scm, problem["target"], problem["outliers"], seed=problem["seed"])
        t2 = time.perf_counter()
    except Exception:  # noqa: BLE001
        return {}, float("nan"), float("nan"), traceback.format_exc(limit=3)
    nodes = [n for n in problem["players"] if n in contrib]  # topological order breaks ties
    out = []
    for k, cause in enumerate(problem["causes"]):
        order = sorted(nodes, key=lambda n: -contrib[n][k])
        out.append((order.index(cause) + 1, order[0], float("nan"), float("nan")))
    return {"DoWhy": out}, t1 - t0, t2 - t1, None


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
    import bayesrca as br

    setting = parse_setting("er-5-linear-gaussian")
    args = argparse.Namespace(seed=99, max_ancestors=4, rows=200, outliers=1)
    problem = make_problem(setting, 0, args)
    with common.quiet():
        scm = br.BayesianSCM(problem["graph"], num_draws=4).fit(problem["train"], seed=0)
        br.attribute_anomalies(scm, problem["target"], problem["outliers"], seed=0, num_mc_samples=20)
    common.dowhy_fit(problem["graph"], problem["train"])


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
            "top1": top1 / n, **dict(zip(("top1_lo", "top1_hi"), sim.wilson(top1, n))),
            "top3": top3 / n, **dict(zip(("top3_lo", "top3_hi"), sim.wilson(top3, n))),
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
    ci = common.fmt_ci
    return pd.DataFrame({
        "setting": table["setting"], "method": table["method"], "trials": table["trials"], "players": table["players"],
        "top-1 recall [95% CI]": [ci(*v) for v in zip(table["top1"], table["top1_lo"], table["top1_hi"])],
        "top-3 recall [95% CI]": [ci(*v) for v in zip(table["top3"], table["top3_lo"], table["top3_hi"])],
        "s/graph": table["s_per_graph"], "prob_top(true)": table["true_prob_top"],
        "top prob_top<0.5": table["uncertain"].map(lambda v: "—" if pd.isna(v) else str(int(v))),
        "wrong if <0.5": table["wrong_if_uncertain"], "wrong if >=0.5": table["wrong_if_confident"],
        "errors": table["errors"], "target met": table["target_met"],
    })


def plot(table: pd.DataFrame, path: Path) -> None:
    """Top-1 recall with Wilson error bars per setting and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """Run every setting, then write and print the report."""
    args = parse_args(argv)
    start = time.perf_counter()
    t = time.perf_counter()
    warm_up()
    log(f"warm-up done in {time.perf_counter() - t:.1f} s (untimed)")
    seen: set = set()
    records = []
    for setting in args.settings:
        t = time.perf_counter()
        records += run_setting(setting, args, seen)
        log(f"== {setting['name']} done in {time.perf_counter() - t:.1f} s")
    trials = pd.DataFrame(records)
    table = summarise(trials)
    shown = display_table(table)

    suffix = "_smoke" if args.smoke else ""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"recall{suffix}.csv", index=False)
    trials.to_csv(out / f"recall_trials{suffix}.csv", index=False)
    plot(table, out / f"recall{suffix}.png")
    elapsed = time.perf_counter() - start
    protocol = (
        f"{len(args.settings)} settings x {args.graphs} random SCMs x {args.outliers} outliers; {args.rows} training "
        f"rows; target with 3-{args.max_ancestors} ancestors; root cause uniform over the target's ancestors and "
        f"itself, noise shifted by {args.shift[0]:g}-{args.shift[1]:g} sd, kept when it is a but-for cause (true IT score >= log 100 with the shift, < log 10 without). bayesrca mechanisms='auto', "
        f"num_draws={args.num_draws}, num_mc_samples={args.num_mc_samples}; DoWhy auto assignment (GOOD). "
        f"Seed {args.seed}."
    )
    notes = "\n".join([
        f"Protocol: {protocol}",
        "",
        (f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, git {common.git_revision()}, "
         f"{elapsed:.0f} s in all, peak RSS {common.peak_rss_mib():.0f} MiB."),
        "",
        (f"Targets: bayesrca top-1 recall >= DoWhy's in every setting, and >= {LINEAR_TARGET:g} in linear settings "
         "(column 'target met'). players = mean size of the target's ancestors + itself; s/graph = mean fit + "
         "attribution seconds per graph. prob_top(true) = mean posterior "
         "probability that the true root cause is the top contributor. 'top prob_top<0.5' counts outliers whose "
         "top-ranked node has prob_top < 0.5; 'wrong if <0.5' / 'wrong if >=0.5' = share of those (and of the "
         "others) whose top-ranked node is not the root cause. Failed calls count as misses (errors)."),
    ])
    text = f"## Root-cause recall on random SCMs{' (smoke)' if args.smoke else ''}\n\n{notes}\n\n"
    text += common.markdown_table(shown, digits=2) + "\n"
    (out / f"recall{suffix}.md").write_text(text)
    print(common.markdown_table(shown, digits=2), flush=True)
    log(f"wrote {out}/recall{suffix}.{{csv,md,png}} and recall_trials{suffix}.csv in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
