"""Speed benchmark: bayesrca vs DoWhy's gcm on DoWhy's microservice-latency example.

Both libraries run side by side in ONE process on the same data (the package copy of DoWhy's
example, ``bayesrca/datasets/data/microservice_*.csv``):

* DoWhy point estimate: ``InvertibleStructuralCausalModel`` + ``auto.assign_causal_mechanisms``
  + ``fit`` (timed together as "fit"), then ``attribute_anomalies`` (timed as "attribution").
* DoWhy bootstrap intervals (``--bootstrap N``, default 10; ``0`` skips):
  ``confidence_intervals(fit_and_compute(attribute_anomalies, ...), num_bootstrap_resamples=N)``.
  "fit" is the one-off mechanism assignment plus every refit on a 75 % subset, "attribution"
  is the summed time of the N attribution calls.
* bayesrca: ``BayesianSCM(graph, mechanisms=M, num_draws=200).fit(normal, seed=0)`` and
  ``attribute_anomalies(scm, "Website", anomaly, seed=0)`` for each ``M`` in ``--mechanisms``.

Every timed block runs ``--repeats`` times (default 3; the bootstrap ``--bootstrap-repeats``
times, default 1, because one run is already N fits) and the median is reported. An untimed
bayesrca warm-up (tiny fit + attribution) runs first so torch/Pyro lazy initialisation is not
counted (and a tiny untimed DoWhy assign + fit, for sklearn/joblib first-call costs). Peak RSS comes from ``resource.getrusage`` (no tracemalloc: it slows torch down).

Run from the repository root::

    .venv/bin/python benchmarks/microservice_speed.py              # full run, a few minutes
    .venv/bin/python benchmarks/microservice_speed.py --smoke      # CI smoke test, < 60 s
    .venv/bin/python benchmarks/microservice_speed.py --help

Results are printed as markdown and written to ``--out`` (default ``benchmarks/results/``):
``microservice_speed.{md,csv}``, ``microservice_contributions.csv`` and
``microservice_speed_runs.csv`` (every repeat); ``--smoke`` writes ``*_smoke.*`` files instead.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from _common import git_revision, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "bayesrca" / "datasets" / "data"
TARGET = "Website"
# Targets: bayesrca total <= POINT_TARGET x DoWhy point total; >= BOOT_TARGET x faster than bootstrap.
POINT_TARGET = 0.25
BOOT_TARGET = 20.0
TIMING_COLUMNS = [  # (row key, table title)
    ("method", "method"),
    ("fit_s", "fit_s"),
    ("attribution_s", "attribution_s"),
    ("total_s", "total_s"),
    ("ratio_to_dowhy_point", "ratio_to_dowhy_point"),
    ("intervals", "intervals"),
    ("top_cause", "top cause"),
    ("top_value", "top-cause value"),
    ("runs", "runs"),
    ("total_min_s", "total_min_s"),
]
CI_PROB = 0.9  # bayesrca [5 %, 95 %]; DoWhy confidence_level=0.95 gives the same percentiles.


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time bayesrca against DoWhy gcm on DoWhy's microservice example (one process).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per block (median reported); default 3")
    p.add_argument(
        "--bootstrap", type=int, default=None, help="DoWhy bootstrap resamples (0 skips the bootstrap); default 10"
    )
    p.add_argument("--bootstrap-repeats", type=int, default=1, help="timed repeats of the DoWhy bootstrap block")
    p.add_argument(
        "--mechanisms", nargs="+", default=["auto", "linear"], help="bayesrca mechanisms settings to benchmark"
    )
    p.add_argument("--num-draws", type=int, default=None, help="bayesrca posterior draws; default 200")
    p.add_argument(
        "--num-mc-samples", type=int, default=None, help="bayesrca Monte Carlo samples per draw; default 2000"
    )
    p.add_argument("--rows", type=int, default=None, help="use only the first ROWS training rows; default all")
    p.add_argument("--seed", type=int, default=0, help="seed for both libraries")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny CI settings: num_draws=20, num_mc_samples=200, 500 rows, no bootstrap, 1 repeat "
        "(explicit flags still override)",
    )
    args = p.parse_args(argv)
    smoke = dict(repeats=1, bootstrap=0, num_draws=20, num_mc_samples=200, rows=500)
    full = dict(repeats=3, bootstrap=10, num_draws=200, num_mc_samples=2000, rows=None)
    for key, value in (smoke if args.smoke else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("repeats", "bootstrap_repeats"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.bootstrap < 0:
        p.error("--bootstrap must be >= 0")
    return args


def median(values):
    return statistics.median(values) if values else float("nan")


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    return f"{x:.{digits}f}"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_data(rows):
    import pandas as pd

    normal = pd.read_csv(DATA_DIR / "microservice_latencies.csv")
    anomaly = pd.read_csv(DATA_DIR / "microservice_anomaly.csv")
    if rows is not None:
        normal = normal.head(rows).reset_index(drop=True)
    return normal, anomaly


def make_graph():
    import networkx as nx

    from bayesrca.datasets import MICROSERVICE_EDGES

    return nx.DiGraph(list(MICROSERVICE_EDGES))


# --------------------------------------------------------------------------------------------
# DoWhy
# --------------------------------------------------------------------------------------------
def dowhy_point(normal, anomaly, seed):
    from dowhy import gcm
    from dowhy.gcm.util.general import set_random_seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        set_random_seed(seed)
        t0 = time.perf_counter()
        # A fresh graph each time: DoWhy writes the assigned mechanisms into the node-attribute
        # dicts it shares with the graph it was given, so a reused graph would skip assignment.
        scm = gcm.InvertibleStructuralCausalModel(make_graph())
        gcm.auto.assign_causal_mechanisms(scm, normal)
        gcm.fit(scm, normal)
        t1 = time.perf_counter()
        contrib = gcm.attribute_anomalies(scm, TARGET, anomaly_samples=anomaly)
        t2 = time.perf_counter()
    values = {node: float(v[0]) for node, v in contrib.items()}  # first anomaly row
    return t1 - t0, t2 - t1, values


def dowhy_bootstrap(normal, anomaly, seed, num_resamples):
    from dowhy import gcm
    from dowhy.gcm.util.general import set_random_seed

    attribution_time = [0.0]

    def timed_attribution(*a, **kw):
        t = time.perf_counter()
        try:
            return gcm.attribute_anomalies(*a, **kw)
        finally:
            attribution_time[0] += time.perf_counter() - t

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        set_random_seed(seed)
        t0 = time.perf_counter()
        scm = gcm.InvertibleStructuralCausalModel(make_graph())  # fresh graph, see dowhy_point
        gcm.auto.assign_causal_mechanisms(scm, normal)  # once; fit_and_compute refits per resample
        medians, intervals = gcm.confidence_intervals(
            gcm.fit_and_compute(
                timed_attribution,
                scm,
                bootstrap_training_data=normal,
                target_node=TARGET,
                anomaly_samples=anomaly,
            ),
            confidence_level=0.95,
            num_bootstrap_resamples=num_resamples,
        )
        total = time.perf_counter() - t0
    summary = {}
    for node, med in medians.items():
        lo, hi = (float(x) for x in intervals[node].ravel()[:2])
        summary[node] = (float(med.ravel()[0]) if hasattr(med, "ravel") else float(med), lo, hi)
    return total - attribution_time[0], attribution_time[0], summary


# --------------------------------------------------------------------------------------------
# bayesrca
# --------------------------------------------------------------------------------------------
def bayesrca_run(normal, anomaly, mechanisms, num_draws, num_mc_samples, seed):
    import bayesrca as br

    graph = make_graph()
    t0 = time.perf_counter()
    scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=num_draws).fit(normal, seed=seed)
    t1 = time.perf_counter()
    res = br.attribute_anomalies(
        scm, target_node=TARGET, anomaly_samples=anomaly, seed=seed, num_mc_samples=num_mc_samples
    )
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, res


def bayesrca_warmup(normal, anomaly, mechanisms):
    """Untimed: import torch/Pyro and run a tiny fit + attribution per mechanisms setting."""
    import bayesrca as br

    small = normal.head(200)
    for mech in mechanisms:
        scm = br.BayesianSCM(make_graph(), mechanisms=mech, num_draws=4).fit(small, seed=123)
        br.attribute_anomalies(scm, target_node=TARGET, anomaly_samples=anomaly, seed=123, num_mc_samples=20)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def repeat_timed(label, repeats, run, runs, log):
    """Run ``run()`` -> (fit_s, attr_s, payload) ``repeats`` times; return fits, attrs, totals, first payload."""
    fits, attrs, totals, first = [], [], [], None
    for r in range(repeats):
        gc.collect()
        fit_s, attr_s, payload = run()
        fits.append(fit_s)
        attrs.append(attr_s)
        totals.append(fit_s + attr_s)
        runs.append(dict(method=label, repeat=r, fit_s=fit_s, attribution_s=attr_s))
        if first is None:
            first = payload
        log(f"{label:<20} repeat {r}: fit {fit_s:.2f} s, attribution {attr_s:.2f} s")
    return fits, attrs, totals, first


def timing_row(method, fits, attrs, totals, intervals, top_cause, top_value):
    """One row of the timing table: medians over repeats plus the fastest total."""
    return dict(
        method=method,
        fit_s=median(fits),
        attribution_s=median(attrs),
        total_s=median(totals),
        total_min_s=min(totals),
        intervals=intervals,
        top_cause=top_cause,
        top_value=top_value,
        runs=len(totals),
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import pandas as pd

    normal, anomaly = load_data(args.rows)
    suffix = "_smoke" if args.smoke else ""
    rss = {}
    runs = []  # every repeat, for the raw CSV

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    log(f"data: {len(normal)} training rows, {len(anomaly)} anomaly row(s); repeats={args.repeats}")

    # -- warm-up (untimed) -----------------------------------------------------------------
    t = time.perf_counter()
    bayesrca_warmup(normal, anomaly, args.mechanisms)
    import dowhy
    from dowhy import gcm

    gcm.config.disable_progress_bars()
    with warnings.catch_warnings():  # DoWhy warm-up too (sklearn imports, joblib), also untimed
        warnings.simplefilter("ignore")
        dw = gcm.InvertibleStructuralCausalModel(make_graph())
        gcm.auto.assign_causal_mechanisms(dw, normal.head(200))
        gcm.fit(dw, normal.head(200))
    log(f"warm-up done in {time.perf_counter() - t:.1f} s (untimed)")
    rss["after warm-up"] = peak_rss_mib()

    rows = []  # timing table rows (dicts)

    # -- DoWhy point estimate --------------------------------------------------------------
    fits, attrs, totals, dowhy_values = repeat_timed(
        "DoWhy point", args.repeats, lambda: dowhy_point(normal, anomaly, args.seed), runs, log
    )
    top = max(dowhy_values, key=dowhy_values.get)
    rows.append(timing_row("DoWhy point", fits, attrs, totals, "none", top, dowhy_values[top]))
    dowhy_total = median(totals)
    rss["after DoWhy point"] = peak_rss_mib()

    # -- DoWhy bootstrap -------------------------------------------------------------------
    boot = None
    if args.bootstrap > 0:
        fits, attrs, totals, boot = repeat_timed(
            f"DoWhy bootstrap {args.bootstrap}",
            args.bootstrap_repeats,
            lambda: dowhy_bootstrap(normal, anomaly, args.seed, args.bootstrap),
            runs,
            log,
        )
        top = max(boot, key=lambda n: boot[n][0])
        rows.append(timing_row("DoWhy bootstrap", fits, attrs, totals, f"bootstrap {args.bootstrap}", top, boot[top][0]))
        rss["after DoWhy bootstrap"] = peak_rss_mib()
    boot_total = rows[-1]["total_s"] if boot is not None else None

    # -- bayesrca --------------------------------------------------------------------------
    summaries = {}
    engines = {}
    for mech in args.mechanisms:
        fits, attrs, totals, res = repeat_timed(
            f"bayesrca {mech}",
            args.repeats,
            lambda mech=mech: bayesrca_run(normal, anomaly, mech, args.num_draws, args.num_mc_samples, args.seed),
            runs,
            log,
        )
        table = res.summary(ci_prob=CI_PROB)
        table = table[table["anomaly"] == table["anomaly"].iloc[0]]  # first anomaly row
        summaries[mech] = table.set_index("node")
        engines[mech] = res.method_info.get("engine", "?")
        first = table.iloc[0]  # sorted by median, descending
        rows.append(
            timing_row(
                f"bayesrca ({mech})",
                fits,
                attrs,
                totals,
                f"posterior {args.num_draws} draws",
                first["node"],
                float(first["median"]),
            )
        )
        rss[f"after bayesrca {mech}"] = peak_rss_mib()

    for row in rows:
        row["ratio_to_dowhy_point"] = row["total_s"] / dowhy_total

    # -- targets ---------------------------------------------------------------------------
    target_lines = [
        f"- Target 1: bayesrca total <= {POINT_TARGET:g} x DoWhy point-estimate total "
        f"({POINT_TARGET * dowhy_total:.2f} s)",
        f"- Target 2: bayesrca >= {BOOT_TARGET:g} x faster than DoWhy bootstrap "
        + (
            f"({args.bootstrap} resamples; total <= {boot_total / BOOT_TARGET:.2f} s)"
            if boot_total
            else "(bootstrap not run)"
        ),
    ]
    verdicts = []
    for row in rows:
        if not row["method"].startswith("bayesrca"):
            continue
        ratio = row["ratio_to_dowhy_point"]
        v1 = "PASS" if ratio <= POINT_TARGET else "MISS"
        verdicts.append(f"- {row['method']}: target 1 {v1} ({ratio:.3f} x DoWhy point)")
        if boot_total:
            speedup = boot_total / row["total_s"]
            v2 = "PASS" if speedup >= BOOT_TARGET else "MISS"
            verdicts.append(f"- {row['method']}: target 2 {v2} ({speedup:.1f} x faster than DoWhy bootstrap)")
        else:
            verdicts.append(f"- {row['method']}: target 2 n/a (bootstrap skipped)")

    # -- tables ----------------------------------------------------------------------------
    header = [title for _, title in TIMING_COLUMNS]
    timing_md = markdown_table(
        header,
        [
            [
                r["method"],
                fmt(r["fit_s"], 2),
                fmt(r["attribution_s"], 2),
                fmt(r["total_s"], 2),
                fmt(r["ratio_to_dowhy_point"], 3),
                r["intervals"],
                r["top_cause"],
                fmt(r["top_value"], 3),
                r["runs"],
                fmt(r["total_min_s"], 2),
            ]
            for r in rows
        ],
    )

    nodes = sorted(dowhy_values, key=dowhy_values.get, reverse=True)
    c_header = ["node", "DoWhy point"]
    if boot is not None:
        c_header.append(f"DoWhy bootstrap {args.bootstrap} median [5%, 95%]")
    for mech in args.mechanisms:
        c_header += [f"bayesrca {mech} median [5%, 95%]", f"bayesrca {mech} prob_top"]
    c_rows, c_csv = [], []
    for node in nodes:
        line = [node, fmt(dowhy_values[node])]
        rec = {"node": node, "dowhy_point": dowhy_values[node]}
        if boot is not None:
            med, lo, hi = boot[node]
            line.append(f"{fmt(med)} [{fmt(lo)}, {fmt(hi)}]")
            rec.update(dowhy_boot_median=med, dowhy_boot_lo=lo, dowhy_boot_hi=hi)
        for mech in args.mechanisms:
            s = summaries[mech].loc[node]
            line += [f"{fmt(s['median'])} [{fmt(s['lower'])}, {fmt(s['upper'])}]", fmt(s["prob_top"], 3)]
            rec.update(
                {
                    f"bayesrca_{mech}_median": s["median"],
                    f"bayesrca_{mech}_lower": s["lower"],
                    f"bayesrca_{mech}_upper": s["upper"],
                    f"bayesrca_{mech}_prob_top": s["prob_top"],
                }
            )
        c_rows.append(line)
        c_csv.append(rec)
    contrib_md = markdown_table(c_header, c_rows)

    import sklearn
    import torch

    import bayesrca

    env = (
        f"python {platform.python_version()}, bayesrca {bayesrca.__version__} (git {git_revision()}), dowhy {dowhy.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, pandas {pd.__version__}; {os.cpu_count()} CPUs, {platform.platform()}"
    )
    settings = (
        f"{len(normal)} training rows, {len(anomaly)} anomaly row(s) (contributions: first row), target "
        f"'{TARGET}'; bayesrca num_draws={args.num_draws}, num_mc_samples={args.num_mc_samples}, "
        f"seed={args.seed}, engine(s) {', '.join(f'{m}: {engines[m]}' for m in args.mechanisms)}; "
        f"DoWhy bootstrap resamples={args.bootstrap}; repeats={args.repeats} "
        f"(bootstrap {args.bootstrap_repeats if args.bootstrap else 0}){'; SMOKE settings' if args.smoke else ''}"
    )
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    env += f"; 1-min load average {load_start:.2f} at start, {load_end:.2f} at end"
    rss_line = "Peak RSS (ru_maxrss, process high-water mark): " + ", ".join(
        f"{k} {v:.0f} MiB" for k, v in rss.items()
    )
    notes = (
        "Times are medians over repeats in seconds (total_s = median of per-repeat fit + attribution; "
        "total_min_s = fastest repeat, less sensitive to other load on the machine). "
        "DoWhy fit includes auto.assign_causal_mechanisms; "
        + (
            f"DoWhy bootstrap fit = one assignment + {args.bootstrap} refits on 75 % subsets, attribution = "
            f"the {args.bootstrap} attribution calls; its value is DoWhy's geometric-median summary. "
            if args.bootstrap
            else ""
        )
        + "bayesrca top-cause value is the posterior median; "
        "intervals are equal-tailed 90 % (5 %-95 % percentiles) for both libraries."
    )
    report = "\n\n".join(
        [
            f"## Microservice RCA speed benchmark{' (smoke)' if args.smoke else ''}",
            f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. {env}.",
            f"Settings: {settings}.",
            "### Targets\n\n" + "\n".join(target_lines),
            "### Timings\n\n" + timing_md,
            notes,
            "### Verdicts\n\n" + "\n".join(verdicts),
            rss_line,
            "### Contributions to the Website outlier score (first anomaly)\n\n" + contrib_md,
        ]
    )
    print(report, flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"microservice_speed{suffix}.md").write_text(report + "\n")
    cols = [key for key, _ in TIMING_COLUMNS]
    pd.DataFrame(rows)[cols].to_csv(out / f"microservice_speed{suffix}.csv", index=False)
    pd.DataFrame(c_csv).to_csv(out / f"microservice_contributions{suffix}.csv", index=False)
    pd.DataFrame(runs).to_csv(out / f"microservice_speed_runs{suffix}.csv", index=False)
    log(f"wrote {out}/microservice_speed{suffix}.md, .csv, microservice_contributions{suffix}.csv, runs csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
