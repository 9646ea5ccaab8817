"""Scale benchmark: speed and peak memory of bayesrca vs DoWhy's gcm, side by side in one run.

Three parts (``--parts``, default all):

1. ``anomalies`` -- many anomalies on DoWhy's microservice example (target ``Website``). Both
   tools fit on the shipped normal data; the anomalies are the N slowest ``Website`` rows of that
   same normal data (a real upper tail, not injected faults) for N in ``--anomalies``. bayesrca
   runs with each ``--mechanisms`` setting. DoWhy is skipped above ``--dowhy-max-anomalies``, and
   either tool after a run that failed or timed out; a skipped time is extrapolated (mean fit time
   + a least-squares line through the measured attribution times). Target: 1000 anomalies with
   bayesrca <= 60 s (fit + attribution).
2. ``ancestors`` -- time vs number of ancestors. For each count in ``--ancestors`` the target is
   the first node with exactly that many ancestors in ER DAGs (``simulate.random_dag``, count + 10
   nodes, 2 mean parents, seeds 0, 1, ...), keeping only it and its ancestors. Linear SCMs
   (``simulate.TrueSCM``) with Gaussian noise (bayesrca ``mechanisms="gaussian"``: closed-form
   engine) or exponential noise (``"linear"``: Monte Carlo engine); ``--rows`` training rows and
   one outlier from ``TrueSCM.inject`` with a random root cause.
3. ``large`` -- an ER graph of ``--large-nodes`` nodes (all fitted) and a random target with at
   least ``--large-min-ancestors`` ancestors; 1 and 10 outliers, both noises. bayesrca's default
   (antithetic permutations) is compared with a run of ``--long-factor`` x the permutations and
   the same seed (same fit, same Monte Carlo noise): their difference is the Shapley approximation
   error. Target: bayesrca attribution with intervals <= 60 s.

Protocol: every configuration is timed once (``time.perf_counter``) in a fresh process, a child
of a ``multiprocessing`` fork server that has only imported torch, Pyro, DoWhy and bayesrca; the
child builds its data, runs an untimed tiny fit + attribution (lazy initialisation, DoWhy's joblib
workers), then times the fit and the attribution. bayesrca: ``BayesianSCM(graph, mechanisms,
num_draws=200).fit`` and ``attribute_anomalies`` with default options (2000 Monte Carlo samples,
exact Shapley up to 12 players, else antithetic permutations). DoWhy: ``auto.assign_causal_mechanisms``
+ ``fit``, then ``attribute_anomalies``, all defaults. The row's peak RSS is the child's
``ru_maxrss`` (DoWhy's joblib worker processes are not counted); the report gives the baseline of
an idle child and of a fresh interpreter that only imports the same modules. A configuration
running past ``--timeout`` is killed and reported as such.

Run from the repository root::

    .venv/bin/python benchmarks/scale.py                     # full run, ~1-1.5 h on 2 busy cores
    .venv/bin/python benchmarks/scale.py --smoke --out DIR   # CI smoke test, 50-80 s
    .venv/bin/python benchmarks/scale.py --parts ancestors --ancestors 5 15 25

Writes ``scale.csv`` (every row), ``scale.md`` (the report, also printed),
``scale_shapley_error.csv`` (part 3), ``scale_anomalies.png`` and ``scale_ancestors.png`` under
``--out`` (default ``benchmarks/results``); ``--smoke`` writes ``scale_smoke*`` files instead.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from harness import cli
from harness.logs import log
from harness.outputs import Outputs, environment, utc_now
from harness.tables import fmt, heading
from harness.timing import Stopwatch, load_average
from scale_report import (
    ancestors_report,
    anomalies_report,
    extrapolate,
    large_report,
    plot_ancestors,
    plot_anomalies,
)
from scale_workers import BAYESRCA_MECHANISMS, HARNESS, PRELOAD, ForkServer

PARTS = ("anomalies", "ancestors", "large")
MICROSERVICE_ANCESTORS = 10  # of Website
SMOKE = {"anomalies": [1, 5], "mechanisms": ["gaussian", "linear", "auto"], "dowhy_max_anomalies": 1,
         "auto_max_anomalies": 5, "dowhy_max_ancestors": 5,
         "microservice_rows": 300, "ancestors": [5, 8], "rows": 300, "large_nodes": 20, "large_min_ancestors": 13,
         "large_anomalies": [1], "num_draws": 30, "num_mc_samples": 200}
FULL = {"anomalies": [1, 10, 100, 1000], "mechanisms": ["gaussian", "linear", "auto"], "dowhy_max_anomalies": 10,
        "auto_max_anomalies": 10,
        "dowhy_max_ancestors": None, "microservice_rows": None, "ancestors": [5, 10, 15, 20, 25, 30], "rows": 2000,
        "large_nodes": 50, "large_min_ancestors": 25, "large_anomalies": [1, 10], "num_draws": 200,
        "num_mc_samples": 2000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones take the FULL values, or the SMOKE values with ``--smoke``."""
    p = cli.parser(__doc__, raw=True)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default: all)")
    p.add_argument("--anomalies", nargs="+", type=int, help="part 1: numbers of anomalies (default: 1 10 100 1000)")
    p.add_argument("--mechanisms", nargs="*", help="part 1: bayesrca mechanisms settings; none: DoWhy only "
                   "(default: gaussian linear auto)")
    p.add_argument("--dowhy-max-anomalies", type=int, help="skip DoWhy above this many anomalies and extrapolate "
                   "its time (default: 10)")
    p.add_argument("--auto-max-anomalies", type=int, help="part 1: skip bayesrca 'auto' above this many anomalies "
                   "and extrapolate (default: 10)")
    p.add_argument("--dowhy-max-ancestors", type=int, help="skip DoWhy when the target has more ancestors "
                   "(default: no limit)")
    p.add_argument("--microservice-rows", type=int, help="part 1: use the first rows of the normal data "
                   "(default: all 10000)")
    p.add_argument("--ancestors", nargs="+", type=int, help="part 2: ancestor counts (default: 5 10 15 20 25 30)")
    p.add_argument("--noises", nargs="+", default=list(BAYESRCA_MECHANISMS), choices=list(BAYESRCA_MECHANISMS),
                   help="parts 2-3: noise of the linear ground-truth SCMs (default: both)")
    p.add_argument("--rows", type=int, help="parts 2-3: training rows (default: 2000)")
    p.add_argument("--large-nodes", type=int, help="part 3: graph size (default: 50)")
    p.add_argument("--large-min-ancestors", type=int, help="part 3: least ancestors of the target (default: 25)")
    p.add_argument("--large-anomalies", nargs="+", type=int, help="part 3: numbers of outliers (default: 1 10)")
    p.add_argument("--long-factor", type=int, default=10, help="part 3: permutations of the long run over the "
                   "default (default: 10)")
    p.add_argument("--num-draws", type=int, help="bayesrca posterior draws (default: 200)")
    p.add_argument("--num-mc-samples", type=int, help="bayesrca Monte Carlo samples per draw (default: 2000)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a configuration is killed "
                   "(default: 300)")
    cli.add_common(p, seed_help="seed of data, fits and attributions (default: 0)",
                   smoke_help="tiny CI settings, written to scale_smoke.*: "
                   + ", ".join(f"{k}={v}" for k, v in SMOKE.items()) + " (explicit options still override)")
    args = cli.parse(p, argv, FULL, SMOKE)
    args.anomalies, args.large_anomalies = sorted(set(args.anomalies)), sorted(set(args.large_anomalies))
    return args


def measure(server: ForkServer, cfg: dict, args, **labels) -> dict:
    """Run one configuration in its own process; the row is ``labels`` + the worker's result."""
    watch = Stopwatch()
    result = server.run(dict(cfg, seed=args.seed, num_draws=args.num_draws, num_mc_samples=args.num_mc_samples),
                        args.timeout)
    status = result.pop("error", "ok")
    if "traceback" in result:
        log(result.pop("traceback"))
    row = dict(labels, **result, status=status)
    log(f"{labels} -> {status}, total {fmt(row.get('total_s'), 2)} s, peak {fmt(row.get('peak_rss_mib'), 0)} MiB "
        f"({watch.elapsed():.1f} s wall)")
    return row


class Series:
    """Runs of one tool and setting over growing numbers of anomalies.

    Beyond ``max_n``, or once a run failed (e.g. timed out), larger runs are skipped and their time
    is extrapolated from the measured ones (:func:`extrapolate`).
    """

    def __init__(self, server: ForkServer, max_n: float = math.inf):
        self.server, self.max_n, self.points, self.failed = server, max_n, [], False

    def guess(self, n: int) -> float:
        return extrapolate(*zip(*self.points), n) if self.points else math.nan

    def run(self, cfg: dict, args, **labels) -> dict:
        n = cfg["n"]
        estimate = f"extrapolated ~{self.guess(n):.0f} s" if self.points else "nothing to extrapolate from"
        if self.failed or n > self.max_n:
            why = "after a failed smaller run; " if self.failed else ""
            return dict(labels, extrapolated_s=self.guess(n), status=f"skipped ({why}{estimate})")
        row = measure(self.server, cfg, args, **labels)
        if row["status"] == "ok":
            self.points.append((n, row["fit_s"], row["attribution_s"]))
        else:
            self.failed = True
            row.update(extrapolated_s=self.guess(n), status=f"{row['status']}; {estimate}")
        return row


def dowhy_row(series: Series, cfg: dict, args, num_ancestors: int, **labels) -> dict:
    """A DoWhy run of ``series``, skipped when the target has more than ``--dowhy-max-ancestors`` ancestors."""
    limit = args.dowhy_max_ancestors
    if limit is not None and num_ancestors > limit:
        return dict(labels, tool="DoWhy", status=f"skipped (> {limit} ancestors)")
    return series.run(dict(cfg, tool="dowhy"), args, tool="DoWhy", **labels)


def part_anomalies(args, server: ForkServer) -> list[dict]:
    rows = []
    base = {"part": "anomalies", "rows": args.microservice_rows}
    for mech in args.mechanisms:
        # "auto" picks splines here: every anomaly costs a propagation per coalition pattern
        series = Series(server, args.auto_max_anomalies if mech == "auto" else math.inf)
        rows += [series.run(dict(base, tool="bayesrca", mechanisms=mech, n=n), args, part="anomalies",
                            tool="bayesrca", setting=mech, anomalies=n) for n in args.anomalies]
    series = Series(server, args.dowhy_max_anomalies)
    rows += [dowhy_row(series, dict(base, n=n), args, MICROSERVICE_ANCESTORS, part="anomalies",
                       setting="auto, GOOD", anomalies=n) for n in args.anomalies]
    return rows


def part_ancestors(args, server: ForkServer) -> list[dict]:
    rows = []
    for noise in args.noises:
        for count in args.ancestors:
            cfg = {"part": "ancestors", "ancestors": count, "noise": noise, "rows": args.rows, "n": 1}
            labels = {"part": "ancestors", "setting": noise, "ancestors": count}
            rows.append(measure(server, dict(cfg, tool="bayesrca", mechanisms=BAYESRCA_MECHANISMS[noise]), args,
                                tool="bayesrca", **labels))
            rows.append(dowhy_row(Series(server), cfg, args, count, **labels))
    return rows


def part_large(args, server: ForkServer) -> tuple[list[dict], list[dict]]:
    rows, errors = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for noise in args.noises:
            dowhy = Series(server, args.dowhy_max_anomalies)
            for n in args.large_anomalies:
                cfg = {"part": "large", "noise": noise, "rows": args.rows, "n": n, "num_nodes": args.large_nodes,
                       "min_ancestors": args.large_min_ancestors}
                labels = {"part": "large", "setting": noise, "anomalies": n}
                saved = []
                for run, factor in (("default", 1), (f"{args.long_factor}x permutations", args.long_factor)):
                    saved.append(f"{tmp}/{noise}_{n}_{factor}.npz")
                    rows.append(measure(server, dict(cfg, tool="bayesrca", mechanisms=BAYESRCA_MECHANISMS[noise],
                                             permutation_factor=factor, save=saved[-1]), args, tool="bayesrca",
                                        run=run, **labels))
                if all(Path(f).exists() for f in saved):
                    errors.append(dict(labels, engine=rows[-1].get("engine"), **approximation_error(*saved)))
                rows.append(dowhy_row(dowhy, cfg, args, args.large_min_ancestors, run="default", **labels))
    return rows, errors


def approximation_error(default_file: str, long_file: str) -> dict:
    """Differences between the default and the long permutation run (same fit and Monte Carlo noise)."""
    a, b = np.load(default_file), np.load(long_file)
    diff_median = np.abs(np.median(a["contributions"], 0) - np.median(b["contributions"], 0))
    diff_draw = np.abs(a["contributions"] - b["contributions"])
    return {"max abs Δ median": diff_median.max(), "mean abs Δ median": diff_median.mean(),
            "max abs Δ draw": diff_draw.max(), "mean abs Δ draw": diff_draw.mean(),
            "largest abs median (long)": np.abs(np.median(b["contributions"], 0)).max(),
            "same IT draws": "yes" if np.array_equal(a["it_scores"], b["it_scores"]) else "no"}


def baseline_rss(server: ForkServer, fresh: bool) -> tuple[float | None, float]:
    """Peak RSS of an idle forked child and (if ``fresh``) of a fresh interpreter that only imports the same modules."""
    forked = server.run({"part": "baseline"}, 120).get("peak_rss_mib", float("nan"))
    if not fresh:
        return None, forked
    modules = [m for m in PRELOAD if m != "scale_workers" and m not in HARNESS]
    code = f"import {', '.join(modules)}; from harness.timing import peak_rss_mib; print(peak_rss_mib())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent)
    return (float(proc.stdout) if proc.returncode == 0 else None), forked


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed sweep stops its running worker
    watch, load_start = Stopwatch(), load_average()
    server = ForkServer()
    fresh_rss, forked_rss = baseline_rss(server, fresh=not args.smoke)
    rows, errors, sections = [], [], []
    if "anomalies" in args.parts:
        rows += part_anomalies(args, server)
    if "ancestors" in args.parts:
        rows += part_ancestors(args, server)
    if "large" in args.parts:
        large_rows, errors = part_large(args, server)
        rows += large_rows
    frame = pd.DataFrame(rows)
    out = Outputs.create(args.out, args.smoke)
    if "anomalies" in args.parts:
        sections.append(anomalies_report(frame[frame["part"] == "anomalies"], args))
        plot_anomalies(frame[frame["part"] == "anomalies"], out.path("scale_anomalies", ".png"))
    if "ancestors" in args.parts:
        sections.append(ancestors_report(frame[frame["part"] == "ancestors"]))
        plot_ancestors(frame[frame["part"] == "ancestors"], out.path("scale_ancestors", ".png"))
    if "large" in args.parts:
        sections.append(large_report(frame[frame["part"] == "large"], pd.DataFrame(errors), args))
    threads = frame["threads"].dropna().iloc[0] if "threads" in frame and frame["threads"].notna().any() else 0
    env = (f"{environment(threads=int(threads))}; 1-min load average {load_start:.1f} at start, "
           f"{load_average():.1f} at end")
    protocol = (f"Protocol: each configuration timed once in a fresh process forked from a server that only imported "
                f"torch, Pyro, DoWhy and bayesrca, after an untimed warm-up; bayesrca num_draws={args.num_draws}, "
                f"num_mc_samples={args.num_mc_samples}, default Shapley options (exact ≤ 12 players, else antithetic "
                f"permutations); DoWhy defaults; seed {args.seed}; {args.rows} training rows (parts 2-3). Peak RSS = "
                f"ru_maxrss of the configuration's process (DoWhy's joblib workers not included); an idle forked child "
                f"peaks at {forked_rss:.0f} MiB"
                + (f", a fresh interpreter that only imports the same modules at {fresh_rss:.0f} MiB." if fresh_rss
                   else "."))
    report = "\n\n".join([heading("Scale benchmark: bayesrca vs DoWhy", args.smoke),
                          f"Run {utc_now()}; {env}; sweep wall time {watch.elapsed():.0f} s.", protocol, *sections])
    print(report, flush=True)
    out.write_text("scale", report + "\n")
    out.write_csv("scale", frame)
    if errors:
        out.write_csv("scale", pd.DataFrame(errors), tail="_shapley_error.csv")
    log(f"wrote {out.folder}/scale{out.suffix}.md, .csv and plots in {watch.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
