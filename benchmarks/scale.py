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
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from _common import RESULTS, fmt, git_revision, markdown_table
from _workers import BAYESRCA_MECHANISMS, PRELOAD, run_isolated

TARGET_S = 60.0
PARTS = ("anomalies", "ancestors", "large")
MICROSERVICE_ANCESTORS = 10  # of Website
INTS = {"anomalies", "ancestors", "ancestors_found", "nodes", "permutations", "peak_rss_mib"}  # table columns
TIMES = {"fit_s": "fit s", "attribution_s": "attribution s", "total_s": "total s"}
RSS = {"peak_rss_mib": "peak RSS MiB"}
COLOURS = {"bayesrca": "tab:blue", "DoWhy": "tab:orange"}
SMOKE = {"anomalies": [1, 5], "mechanisms": ["gaussian", "linear", "auto"], "dowhy_max_anomalies": 1,
         "auto_max_anomalies": 5, "dowhy_max_ancestors": 5,
         "microservice_rows": 300, "ancestors": [5, 8], "rows": 300, "large_nodes": 20, "large_min_ancestors": 13,
         "large_anomalies": [1], "num_draws": 30, "num_mc_samples": 200}
FULL = {"anomalies": [1, 10, 100, 1000], "mechanisms": ["gaussian", "linear", "auto"], "dowhy_max_anomalies": 10,
        "auto_max_anomalies": 10,
        "dowhy_max_ancestors": None, "microservice_rows": None, "ancestors": [5, 10, 15, 20, 25, 30], "rows": 2000,
        "large_nodes": 50, "large_min_ancestors": 25, "large_anomalies": [1, 10], "num_draws": 200,
        "num_mc_samples": 2000}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; unset ones take the FULL values, or the SMOKE values with ``--smoke``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--seed", type=int, default=0, help="seed of data, fits and attributions (default: 0)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a configuration is killed "
                   "(default: 300)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"output directory (default: {RESULTS})")
    p.add_argument("--smoke", action="store_true", help="tiny CI settings, written to scale_smoke.*: "
                   + ", ".join(f"{k}={v}" for k, v in SMOKE.items()) + " (explicit options still override)")
    args = p.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.anomalies, args.large_anomalies = sorted(set(args.anomalies)), sorted(set(args.large_anomalies))
    return args


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(cfg: dict, args, **labels) -> dict:
    """Run one configuration in its own process; the row is ``labels`` + the worker's result."""
    t = time.perf_counter()
    result = run_isolated(dict(cfg, seed=args.seed, num_draws=args.num_draws, num_mc_samples=args.num_mc_samples),
                          args.timeout)
    status = result.pop("error", "ok")
    if "traceback" in result:
        log(result.pop("traceback"))
    row = dict(labels, **result, status=status)
    log(f"{labels} -> {status}, total {fmt(row.get('total_s'), 2)} s, peak {fmt(row.get('peak_rss_mib'), 0)} MiB "
        f"({time.perf_counter() - t:.1f} s wall)")
    return row


def extrapolate(ns, fits, attributions, n: int) -> float:
    """Total time at ``n`` anomalies: mean fit time + a least-squares line through the attribution times.

    With one measured point the attribution time is taken proportional to the number of anomalies.
    """
    ns, attributions = np.asarray(ns, float), np.asarray(attributions, float)
    if len(ns) == 0:
        return math.nan
    if len(ns) == 1:
        return float(np.mean(fits) + attributions[0] * n / ns[0])
    slope, intercept = np.polyfit(ns, attributions, 1)
    return float(np.mean(fits) + intercept + slope * n)


class Series:
    """Runs of one tool and setting over growing numbers of anomalies.

    Beyond ``max_n``, or once a run failed (e.g. timed out), larger runs are skipped and their time
    is extrapolated from the measured ones (:func:`extrapolate`).
    """

    def __init__(self, max_n: float = math.inf):
        self.max_n, self.points, self.failed = max_n, [], False

    def guess(self, n: int) -> float:
        return extrapolate(*zip(*self.points), n) if self.points else math.nan

    def run(self, cfg: dict, args, **labels) -> dict:
        n = cfg["n"]
        estimate = f"extrapolated ~{self.guess(n):.0f} s" if self.points else "nothing to extrapolate from"
        if self.failed or n > self.max_n:
            why = "after a failed smaller run; " if self.failed else ""
            return dict(labels, extrapolated_s=self.guess(n), status=f"skipped ({why}{estimate})")
        row = measure(cfg, args, **labels)
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


def part_anomalies(args) -> list[dict]:
    rows = []
    base = {"part": "anomalies", "rows": args.microservice_rows}
    for mech in args.mechanisms:
        # "auto" picks splines here: every anomaly costs a propagation per coalition pattern
        series = Series(args.auto_max_anomalies if mech == "auto" else math.inf)
        rows += [series.run(dict(base, tool="bayesrca", mechanisms=mech, n=n), args, part="anomalies",
                            tool="bayesrca", setting=mech, anomalies=n) for n in args.anomalies]
    series = Series(args.dowhy_max_anomalies)
    rows += [dowhy_row(series, dict(base, n=n), args, MICROSERVICE_ANCESTORS, part="anomalies",
                       setting="auto, GOOD", anomalies=n) for n in args.anomalies]
    return rows


def part_ancestors(args) -> list[dict]:
    rows = []
    for noise in args.noises:
        for count in args.ancestors:
            cfg = {"part": "ancestors", "ancestors": count, "noise": noise, "rows": args.rows, "n": 1}
            labels = {"part": "ancestors", "setting": noise, "ancestors": count}
            rows.append(measure(dict(cfg, tool="bayesrca", mechanisms=BAYESRCA_MECHANISMS[noise]), args,
                                tool="bayesrca", **labels))
            rows.append(dowhy_row(Series(), cfg, args, count, **labels))
    return rows


def part_large(args) -> tuple[list[dict], list[dict]]:
    rows, errors = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for noise in args.noises:
            dowhy = Series(args.dowhy_max_anomalies)
            for n in args.large_anomalies:
                cfg = {"part": "large", "noise": noise, "rows": args.rows, "n": n, "num_nodes": args.large_nodes,
                       "min_ancestors": args.large_min_ancestors}
                labels = {"part": "large", "setting": noise, "anomalies": n}
                saved = []
                for run, factor in (("default", 1), (f"{args.long_factor}x permutations", args.long_factor)):
                    saved.append(f"{tmp}/{noise}_{n}_{factor}.npz")
                    rows.append(measure(dict(cfg, tool="bayesrca", mechanisms=BAYESRCA_MECHANISMS[noise],
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


def verdict(row) -> str:
    if row.get("status") != "ok":
        return "missed"
    if row["total_s"] <= TARGET_S:
        return "met"
    return "met (attribution only)" if row["attribution_s"] <= TARGET_S else "missed"


def table(frame: pd.DataFrame, columns: dict, digits: int = 2) -> str:
    """Markdown of the ``columns`` (csv name -> title) of ``frame`` that exist; counts as integers."""
    present = {k: v for k, v in columns.items() if k in frame}
    sub = frame[list(present)].astype(object)
    for col in INTS & set(present):
        sub[col] = pd.Series([None if pd.isna(v) else round(float(v)) for v in sub[col]], sub.index, dtype=object)
    return markdown_table(sub.rename(columns=present), digits)


def anomalies_report(frame: pd.DataFrame, args) -> str:
    frame = frame.copy()
    frame["ms_per_anomaly"] = 1000 * frame["attribution_s"] / frame["anomalies"]
    frame["target"] = ""
    big = (frame["tool"] == "bayesrca") & (frame["anomalies"] == 1000)
    frame.loc[big, "target"] = [verdict(r) for _, r in frame[big].iterrows()]
    lines = []
    for mech in args.mechanisms:
        sub = frame[(frame["tool"] == "bayesrca") & (frame["setting"] == mech)]
        ok = sub[sub["status"] == "ok"]
        at = sub[sub["anomalies"] == 1000]
        if len(at):
            row = at.iloc[0]
            lines.append(f"{mech}: {verdict(row)} ({fmt(row['total_s'], 1)} s)" if row["status"] == "ok"
                         else f"{mech}: missed ({row['status']})")
        elif len(ok):
            guess = extrapolate(ok["anomalies"], ok["fit_s"], ok["attribution_s"], 1000)
            lines.append(f"{mech}: not run (linear extrapolation to 1000 anomalies: ~{guess:.0f} s)")
    cols = {"tool": "tool", "setting": "mechanisms", "anomalies": "anomalies", **TIMES, "ms_per_anomaly": "attribution ms/anomaly",
            **RSS, "engine": "engine", "top_cause": "top cause (slowest row)", "status": "status", "target": "target ≤ 60 s"}
    return ("### 1. Many anomalies (microservice, target Website)\n\nTarget: 1000 anomalies with bayesrca ≤ 60 s "
            f"(fit + attribution): {'; '.join(lines) or 'no bayesrca run'}.\n\n" + table(frame, cols))


def ancestors_report(frame: pd.DataFrame) -> str:
    cols = {"setting": "noise", "ancestors": "ancestors asked", "ancestors_found": "ancestors", "tool": "tool",
            "engine": "engine", "shapley": "Shapley", **TIMES, **RSS, "top_cause": "top cause", "true_cause": "true cause",
            "status": "status"}
    return "### 2. Time vs number of ancestors (1 outlier)\n\n" + table(frame, cols)


def large_report(frame: pd.DataFrame, errors: pd.DataFrame, args) -> str:
    frame = frame.copy()
    is_br = (frame["tool"] == "bayesrca") & (frame["run"] == "default")
    frame["target"] = ""
    frame.loc[is_br, "target"] = [verdict(r) for _, r in frame[is_br].iterrows()]
    cols = {"setting": "noise", "anomalies": "outliers", "nodes": "nodes", "ancestors_found": "ancestors", "tool": "tool",
            "run": "run", "engine": "engine", "permutations": "permutations", **TIMES, **RSS, "top_hits": "top cause = truth",
            "status": "status", "target": "target ≤ 60 s"}
    text = (f"### 3. Large graph ({args.large_nodes} nodes, target with ≥ {args.large_min_ancestors} ancestors)\n\n"
            "Target: bayesrca attribution with intervals ≤ 60 s (\"met\": fit + attribution ≤ 60 s).\n\n" + table(frame, cols))
    if len(errors):
        text += ("\n\nShapley approximation error: default vs long run, |difference| of the posterior medians (over "
                 "outliers and nodes) and of the per-draw contributions; on the closed-form engine the per-draw "
                 "difference is the permutation error alone, on the Monte Carlo engine both runs share the same "
                 "fresh noise (same seed).\n\n" + markdown_table(errors.drop(columns="part").rename(columns={"setting": "noise"}), 4))
    return text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_ticks(axis) -> None:
    """Log-scale ticks at 1, 2, 5 x powers of ten, written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_anomalies(frame: pd.DataFrame, path: Path) -> None:
    """Fit + attribution time vs number of anomalies, log-log; DoWhy's extrapolation dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (tool, setting), sub in frame.groupby(["tool", "setting"], sort=False):
        ok = sub[sub["status"] == "ok"]
        extrapolated = "extrapolated_s" in sub and sub["extrapolated_s"].notna().any()
        if ok.empty and not extrapolated:
            continue
        line = ax.plot(ok["anomalies"], ok["total_s"], "o-", label=f"{tool} ({setting})")[0]
        if extrapolated:
            ext = pd.concat([ok.tail(1).assign(extrapolated_s=ok["total_s"].tail(1)), sub[sub["extrapolated_s"].notna()]])
            ax.plot(ext["anomalies"], ext["extrapolated_s"], "o--", mfc="none", color=line.get_color(),
                    label=f"{tool} extrapolated")
    ax.axhline(TARGET_S, color="grey", ls=":", label="60 s target")
    ax.set(xscale="log", yscale="log", xlabel="number of anomalies", ylabel="fit + attribution (s)",
           title="Microservice example: time vs number of anomalies")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_ancestors(frame: pd.DataFrame, path: Path) -> None:
    """Fit + attribution time vs number of ancestors, one panel per noise, log time axis."""
    plt = _pyplot()
    noises = list(dict.fromkeys(frame["setting"]))
    fig, axes = plt.subplots(1, len(noises), figsize=(5.5 * len(noises), 4.2), sharey=True, squeeze=False)
    for ax, noise in zip(axes[0], noises):
        for tool, colour in COLOURS.items():
            sub = frame[(frame["setting"] == noise) & (frame["tool"] == tool) & (frame["status"] == "ok")]
            if sub.empty:
                continue
            sub = sub.sort_values("ancestors_found")
            label = tool if tool == "DoWhy" else f"{tool} ({sub['engine'].iloc[0]} engine)"
            ax.plot(sub["ancestors_found"], sub["total_s"], "o-", label=label, color=colour)
        ax.set(yscale="log", xlabel="number of ancestors of the target", title=f"linear SCM, {noise} noise",
               xticks=sorted(frame["ancestors_found"].dropna().unique()))
        _plain_log_ticks(ax.yaxis)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("fit + attribution (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def baseline_rss(fresh: bool) -> tuple[float | None, float]:
    """Peak RSS of an idle forked child and (if ``fresh``) of a fresh interpreter that only imports the same modules."""
    forked = run_isolated({"part": "baseline"}, 120).get("peak_rss_mib", float("nan"))
    if not fresh:
        return None, forked
    code = f"import {', '.join(m for m in PRELOAD if m != '_workers')}; from _common import peak_rss_mib; print(peak_rss_mib())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent)
    return (float(proc.stdout) if proc.returncode == 0 else None), forked


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed sweep stops its running worker
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    fresh_rss, forked_rss = baseline_rss(fresh=not args.smoke)
    rows, errors, sections = [], [], []
    if "anomalies" in args.parts:
        rows += part_anomalies(args)
    if "ancestors" in args.parts:
        rows += part_ancestors(args)
    if "large" in args.parts:
        large_rows, errors = part_large(args)
        rows += large_rows
    frame = pd.DataFrame(rows)
    suffix = "_smoke" if args.smoke else ""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "anomalies" in args.parts:
        sections.append(anomalies_report(frame[frame["part"] == "anomalies"], args))
        plot_anomalies(frame[frame["part"] == "anomalies"], out / f"scale_anomalies{suffix}.png")
    if "ancestors" in args.parts:
        sections.append(ancestors_report(frame[frame["part"] == "ancestors"]))
        plot_ancestors(frame[frame["part"] == "ancestors"], out / f"scale_ancestors{suffix}.png")
    if "large" in args.parts:
        sections.append(large_report(frame[frame["part"] == "large"], pd.DataFrame(errors), args))
    threads = frame["threads"].dropna().iloc[0] if "threads" in frame and frame["threads"].notna().any() else 0
    env = (f"python {platform.python_version()}, bayesrca {version('bayesrca')} (git {git_revision()}), "
           f"dowhy {version('dowhy')}, torch {version('torch')} ({fmt(int(threads))} threads), "
           f"scikit-learn {version('scikit-learn')}; {os.cpu_count()} CPUs, {platform.platform()}; 1-min load average "
           f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    protocol = (f"Protocol: each configuration timed once in a fresh process forked from a server that only imported "
                f"torch, Pyro, DoWhy and bayesrca, after an untimed warm-up; bayesrca num_draws={args.num_draws}, "
                f"num_mc_samples={args.num_mc_samples}, default Shapley options (exact ≤ 12 players, else antithetic "
                f"permutations); DoWhy defaults; seed {args.seed}; {args.rows} training rows (parts 2-3). Peak RSS = "
                f"ru_maxrss of the configuration's process (DoWhy's joblib workers not included); an idle forked child "
                f"peaks at {forked_rss:.0f} MiB"
                + (f", a fresh interpreter that only imports the same modules at {fresh_rss:.0f} MiB." if fresh_rss
                   else "."))
    report = "\n\n".join([f"## Scale benchmark: bayesrca vs DoWhy{' (smoke)' if args.smoke else ''}",
                          (f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; {env}; sweep wall time "
                           f"{time.perf_counter() - start:.0f} s."), protocol, *sections])
    print(report, flush=True)
    (out / f"scale{suffix}.md").write_text(report + "\n")
    frame.to_csv(out / f"scale{suffix}.csv", index=False)
    if errors:
        pd.DataFrame(errors).to_csv(out / f"scale{suffix}_shapley_error.csv", index=False)
    log(f"wrote {out}/scale{suffix}.md, .csv and plots in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
