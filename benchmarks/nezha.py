"""Nezha (ESEC/FSE 2023) root-cause recall: bayesrca vs score ordering, traversals and DoWhy on real faults.

For every system folder under ``--data-dir`` (``online_boutique``, ``train_ticket``; any folder in
the layout ``bayesrca.datasets.load_nezha`` reads), each method is fitted once on the system's
normal data and run on every case. Target: the entry node's latency; NaN (no request in a
minute) filled with the normal median (``--nan-policy``). Single-row methods analyse the window
row where the target's robust z is largest; the score ordering takes each node's largest score
over the window. Ties count fractionally. Writes ``nezha.csv`` (one row per system, case and
method: top1, top3, prob_top_true, ...), ``nezha.md`` (per system: top-1 / top-3 with 95 % Wilson
intervals over cases, and the reliability of bayesrca's P(top)) and ``nezha.json`` (rankings)::

    .venv/bin/python benchmarks/nezha.py --data-dir ../shared/data/nezha --out benchmarks/results
    .venv/bin/python benchmarks/nezha.py --smoke      # the shipped 5-case subset, < 1 min

Methods: ``score`` (nodes ranked by their own largest |robust z| in the window); ``traversal``
(PetShop's anomaly traversal on |robust z| > 5 of the analysed row); ``smooth_traversal``
(Orchard, Okati et al., NeurIPS 2025: score gaps of empirical quantile IT scores, analysed row);
``dowhy`` (``gcm.attribute_anomalies``, auto-assigned mechanisms, analysed row);
``bayesrca-<mechanisms>`` (``linear``, ``auto``, ...) ranked by median contribution and, from the
same run, by ``prob_top``. ``--budget-s`` caps the seconds a method spends on the cases of one
system: later cases are skipped and reported (cases run in a seeded random order, so the cases
run are a random subset).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from harness import baselines, bayes_runner, cli, dowhy_runner
from harness.logs import quiet
from harness.outputs import ROOT, Outputs, git_revision
from harness.stats import wilson
from harness.tables import fmt_ci, heading, markdown_rows, markdown_table
from harness.timing import Stopwatch

from bayesrca.datasets import load_nezha, nezha_systems

SHARED = ROOT.parent / "shared" / "data" / "nezha"
SHIPPED = ROOT / "examples" / "data" / "nezha"
THRESHOLD = 5.0
CI_PROB = 0.9
ALL_METHODS = ["score", "traversal", "smooth_traversal", "dowhy", "bayesrca-linear", "bayesrca-auto"]
FULL = {"methods": ALL_METHODS, "draws": 200, "budget_s": 1800.0}
SMOKE = {"methods": ["score", "traversal", "smooth_traversal", "bayesrca-linear"], "draws": 30, "budget_s": 60.0}
BANDS = [0.0, 0.5, 0.9, 1.0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones take the FULL values, or the SMOKE values with ``--smoke``."""
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"folder of system folders (default: {SHARED} when present, else {SHIPPED}; smoke: {SHIPPED})")
    p.add_argument("--systems", nargs="+", default=None, help="system folders (default: every one found)")
    p.add_argument("--methods", nargs="+", default=None,
                   help=f"default: {' '.join(FULL['methods'])} (smoke: {' '.join(SMOKE['methods'])})")
    p.add_argument("--draws", type=int, default=None, help="posterior draws of bayesrca; default 200 (smoke: 30)")
    p.add_argument("--nan-policy", default="median",
                   help="NaN fill: median, mean or a number; 'missing' keeps NaN (bayesrca methods only: the "
                        "score, traversal and DoWhy baselines here need filled frames)")
    p.add_argument("--max-cases", type=int, default=None, help="at most this many cases per system (a seeded random subset)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="seconds a method may spend on one system's cases; default 1800 (smoke: 60)")
    cli.add_common(p, smoke_help="tiny run for CI: the shipped 5-case Online Boutique subset, 30 draws")
    args = cli.parse(p, argv, FULL, SMOKE)
    if args.data_dir is None:
        args.data_dir = SHARED if SHARED.is_dir() and not args.smoke else SHIPPED
    return args


# -- methods: each returns a fit function (system -> state) and a rank function ------------------
def observed(frame: pd.DataFrame, filled: pd.DataFrame) -> pd.DataFrame:
    """The frame with its filled cells back to NaN."""
    return frame.where(~filled)


def score_method():
    def fit(system):
        return baselines.robust_z_scorer(observed(system.normal, system.normal_filled), THRESHOLD)

    def rank(scorer, system, case):
        nodes = baselines.candidates(system.graph, case.target)
        return baselines.score_ordering(scorer, case.frame, nodes), {}

    return fit, rank


def traversal_method():
    def fit(system):
        return baselines.robust_z_scorer(observed(system.normal, system.normal_filled), THRESHOLD)

    def rank(scorer, system, case):
        scores, anomalous = scorer(case.frame.iloc[case.row])
        return baselines.anomaly_traversal(system.graph, case.target, scores, anomalous), {"row": case.row}

    return fit, rank


def smooth_traversal_method():
    def fit(system):
        return baselines.quantile_it_scorer(observed(system.normal, system.normal_filled))

    def rank(scorer, system, case):
        scores, _ = scorer(case.frame.iloc[case.row])
        return baselines.smooth_traversal(system.graph, case.target, scores), {"row": case.row}

    return fit, rank


def bayesrca_method(mechanisms: str, draws: int, seed: int):
    return bayes_runner.ranking_method(mechanisms, draws, seed, target_of=lambda case: case.target, ci_prob=CI_PROB)


def dowhy_method(seed: int):
    def fit(system):
        return dowhy_runner.fit(system.graph, system.normal, seed=seed)

    def rank(scm, system, case):
        contributions = dowhy_runner.attribute(scm, case.target, case.anomaly, seed=seed)
        return baselines.ranking((n, float(v[0])) for n, v in contributions.items()), {}

    return fit, rank


def make_methods(args) -> dict:
    simple = {"score": score_method, "traversal": traversal_method, "smooth_traversal": smooth_traversal_method}
    methods = {}
    for name in args.methods:
        if name.startswith(("bayesrca-rcp-", "bayesrca-rcpsingle-")):  # root_cause_posterior (robust / not)
            methods[name] = bayes_runner.posterior_method(name.split("-", 2)[2], args.draws, args.seed,
                                                          target_of=lambda case: case.target, ci_prob=CI_PROB,
                                                          robust=not name.startswith("bayesrca-rcpsingle-"))
        elif name.startswith("bayesrca-"):
            methods[name] = bayesrca_method(name.split("-", 1)[1], args.draws, args.seed)
        elif name in simple:
            methods[name] = simple[name]()
        elif name == "dowhy":
            methods[name] = dowhy_method(args.seed)
        else:
            raise SystemExit(f"unknown method {name!r}; known: {' '.join(ALL_METHODS)} or bayesrca-<mechanisms>")
    return methods


# -- evaluation ------------------------------------------------------------------------------------
def nan_policy(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def run_method(method: str, fit, rank, system, cases, budget_s: float) -> tuple[list[dict], list[dict], list[str]]:
    """One method on one system: records, details and the ids of the cases skipped for the budget."""
    records, details, skipped = [], [], []
    with quiet(), Stopwatch() as fitting:
        state = fit(system)
    spent = 0.0
    for case in cases:
        if spent > budget_s:
            skipped.append(case.case_id)
            continue
        watch = Stopwatch()
        try:
            with quiet():
                table, extra = rank(state, system, case)
        except Exception as err:  # noqa: BLE001 - a method that fails on a case scores 0 there, with the reason
            table, extra = pd.DataFrame(columns=baselines.COLUMNS), {"error": f"{type(err).__name__}: {err}"}
            print(f"{method} failed on {system.name}/{case.case_id}: {extra['error']}", flush=True)
        seconds = watch.elapsed()
        spent += seconds
        orders = {method: "median"}
        if method.startswith("bayesrca"):
            orders[f"{method} (prob_top)"] = "prob_top"
        prob_top = table.set_index("node")["prob_top"].astype(float)
        for label, column in orders.items():
            records.append({
                "system": system.name, "case": case.case_id, "fault_type": case.fault_type,
                "root_cause": case.root_cause, "method": label, "failed": "error" in extra,
                "top1": baselines.topk_credit(table, column, case.root_cause, 1),
                "top3": baselines.topk_credit(table, column, case.root_cause, 3),
                "prob_top_true": float(prob_top.get(case.root_cause, np.nan)),
                "prob_top_first": float(prob_top.max()) if prob_top.notna().any() else np.nan,
                "fit_s": fitting.seconds, "seconds": seconds,
            })
        first = table["node"].iloc[0] if len(table) else "-"
        details.append({
            "system": system.name, "case": case.case_id, "method": method, "root_cause": case.root_cause,
            "fault_type": case.fault_type, "row": case.row, **extra,
            "ranking": [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
                        for r in table.to_dict("records")],
        })
        print(f"{system.name:16s} {case.case_id:22s} {method:18s} top1={records[-len(orders)]['top1']:.2f} "
              f"first={first} truth={case.root_cause} ({seconds:.1f} s)", flush=True)
    return records, details, skipped


def evaluate(args, partial: Path | None = None) -> tuple[pd.DataFrame, list[dict], list[str]]:
    methods = make_methods(args)
    names = args.systems or nezha_systems(args.data_dir)
    records, details, notes = [], [], []
    for name in names:
        system = load_nezha(args.data_dir / name, nan_policy=nan_policy(args.nan_policy))
        # a seeded random order, so that a budget or --max-cases cuts a random subset, not the first days
        order = np.random.default_rng(args.seed).permutation(len(system.cases))
        cases = [system.cases[i] for i in order][: args.max_cases]
        for method, (fit, rank) in methods.items():
            recs, dets, skipped = run_method(method, fit, rank, system, cases, args.budget_s)
            records += recs
            details += dets
            if skipped:
                notes.append(f"{name} / {method}: {len(skipped)} cases skipped after {args.budget_s:.0f} s "
                             f"({', '.join(skipped)})")
            if partial is not None:  # keep what is done if a later method crashes the process
                pd.DataFrame(records).to_csv(partial, index=False)
    return pd.DataFrame(records), details, notes


# -- tables ----------------------------------------------------------------------------------------
def recall_table(frame: pd.DataFrame) -> str:
    """Per method: cases, failed, top-1 and top-3 with 95 % Wilson intervals (fractional credit summed)."""
    rows = []
    for method, part in frame.groupby("method", sort=False):
        n = len(part)
        cells = [method, n, int(part["failed"].sum())]
        for k in ("top1", "top3"):
            hits = float(part[k].sum())
            cells.append(fmt_ci(hits / n, *wilson(hits, n)))  # type: ignore[arg-type]
        pt = part["prob_top_true"]
        cells += [f"{pt.mean():.2f}" if pt.notna().any() else "—", f"{part['seconds'].mean():.2f}",
                  f"{part['fit_s'].iloc[0]:.1f}"]
        rows.append(cells)
    return markdown_rows(["method", "cases", "failed", "top-1 [95 % CI]", "top-3 [95 % CI]", "mean P(top) of truth",
                          "s per case", "fit s"], rows)


def reliability(frame: pd.DataFrame) -> pd.DataFrame:
    """Is P(top) honest? Cases grouped by the P(top) of the node ranked first by P(top)."""
    rows = frame[frame["method"].str.endswith("(prob_top)") & frame["prob_top_first"].notna()].copy()
    if rows.empty:
        return pd.DataFrame()
    rows["band"] = pd.cut(rows["prob_top_first"], BANDS, include_lowest=True, right=False,
                          labels=["P(top) < 0.5", "0.5 to 0.9", ">= 0.9"])
    rows.loc[rows["prob_top_first"] >= 1.0, "band"] = ">= 0.9"
    return rows.groupby(["method", "band"], observed=True).agg(
        cases=("case", "count"), mean_prob_top=("prob_top_first", "mean"), fraction_right=("top1", "mean")).reset_index()


def report(frame: pd.DataFrame, notes: list[str], args, seconds: float) -> str:
    lines = [
        heading("Nezha root-cause recall", args.smoke, level=1), "",
        (f"git {git_revision()}, data {args.data_dir}, nan policy {args.nan_policy}, {args.draws} draws, seed "
         f"{args.seed}, {seconds:.0f} s in all."), "",
        ("Top-k recall over cases with fractional ties and 95 % Wilson intervals; `failed`: cases on which the "
         "method raised (scored 0, reason in the JSON); `mean P(top) of truth`: bayesrca's posterior probability "
         "that the true cause is the top contributor; `s per case`: after fitting; `fit s`: once per system."), "",
    ]
    for system, part in frame.groupby("system", sort=False):
        lines += [f"## {system} ({part['case'].nunique()} cases)", "", recall_table(part), ""]
        rel = reliability(part)
        if not rel.empty:
            lines += [("Reliability of P(top): cases grouped by the P(top) of the node ranked first by P(top); "
                       "`fraction_right`: how often that node is the true cause."), "", markdown_table(rel, 2), ""]
    if notes:
        lines += ["Skipped:", "", *[f"* {n}" for n in notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Outputs.create(args.out, args.smoke)
    watch = Stopwatch()
    frame, details, notes = evaluate(args, partial=out.path("nezha", ".partial.csv"))
    if frame.empty:
        print("no cases found", file=sys.stderr)
        return 1
    text = report(frame, notes, args, watch.elapsed())
    out.write_text("nezha", text)
    out.write_csv("nezha", frame)
    out.write_json("nezha", details)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
