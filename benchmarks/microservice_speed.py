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
import sys

import pandas as pd
from harness import bayes_runner, cli, dowhy_runner
from harness.logs import log
from harness.timing import Stopwatch, load_average, peak_rss_mib
from microservice_report import TARGET, TIMING_COLUMNS, Runs, build_report, first_anomaly_summary, write_outputs

SMOKE = {"repeats": 1, "bootstrap": 0, "num_draws": 20, "num_mc_samples": 200, "rows": 500}
FULL = {"repeats": 3, "bootstrap": 10, "num_draws": 200, "num_mc_samples": 2000, "rows": None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones take the FULL values, or the SMOKE values with ``--smoke``."""
    p = cli.parser("Time bayesrca against DoWhy gcm on DoWhy's microservice example (one process).")
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
    cli.add_common(p, seed_help="seed for both libraries",
                   smoke_help="tiny CI settings: num_draws=20, num_mc_samples=200, 500 rows, no bootstrap, 1 repeat "
                   "(explicit flags still override)")
    args = cli.parse(p, argv, FULL, SMOKE, at_least_one=("repeats", "bootstrap_repeats"))
    if args.bootstrap < 0:
        p.error("--bootstrap must be >= 0")
    return args


def load_data(rows: int | None) -> tuple:
    """The microservice graph, its normal data (the first ``rows`` rows; all for None) and the anomaly row."""
    from bayesrca.datasets import load_microservice

    graph, normal, anomaly = load_microservice()
    if rows is not None:
        normal = normal.head(rows).reset_index(drop=True)
    return graph, normal, anomaly


# --------------------------------------------------------------------------------------------
# the timed runs: each returns (fit_s, attribution_s, payload)
# --------------------------------------------------------------------------------------------
def dowhy_point(graph, normal, anomaly, seed: int) -> tuple[float, float, dict]:
    """DoWhy assignment + fit, then ``attribute_anomalies`` (one seed for both); first-row contributions."""
    watch = Stopwatch()
    scm = dowhy_runner.fit(graph, normal, seed=seed)
    fit_s = watch.lap()
    contrib = dowhy_runner.attribute(scm, TARGET, anomaly, seed=None)
    attribution_s = watch.lap()
    return fit_s, attribution_s, {node: float(v[0]) for node, v in contrib.items()}  # first anomaly row


def dowhy_bootstrap(graph, normal, anomaly, seed: int, num_resamples: int) -> tuple[float, float, dict]:
    """DoWhy bootstrap (one assignment, ``num_resamples`` refits); node -> (median, lower, upper) of the first row.

    "fit" is the assignment and every refit, "attribution" the summed attribution calls.
    """
    attribution = [0.0]

    def add(seconds: float) -> None:
        attribution[0] += seconds

    with Stopwatch() as watch:
        boot = dowhy_runner.bootstrap(graph, normal, TARGET, anomaly, num_resamples=num_resamples, seed=seed,
                                      confidence_level=0.95, on_attribution=add)
    summary = {node: (float(med[0]), float(lo[0]), float(hi[0])) for node, (med, lo, hi) in boot.items()}
    return watch.seconds - attribution[0], attribution[0], summary


def bayesrca_run(graph, normal, anomaly, mechanisms: str, num_draws: int, num_mc_samples: int, seed: int):
    """``BayesianSCM.fit`` and ``attribute_anomalies``: (fit_s, attribution_s, result)."""
    scm, fit_s = bayes_runner.fit(graph, normal, mechanisms=mechanisms, num_draws=num_draws, seed=seed)
    res, attribution_s = bayes_runner.attribute(scm, TARGET, anomaly, seed=seed, num_mc_samples=num_mc_samples)
    return fit_s, attribution_s, res


def repeat_timed(label: str, repeats: int, run, runs: list) -> Runs:
    """Run ``run()`` -> (fit_s, attr_s, payload) ``repeats`` times; every repeat is added to ``runs``."""
    timed = Runs(label)
    for r in range(repeats):
        gc.collect()
        fit_s, attr_s, payload = run()
        timed.add(fit_s, attr_s, payload)
        runs.append(dict(method=label, repeat=r, fit_s=fit_s, attribution_s=attr_s))
        log(f"{label:<20} repeat {r}: fit {fit_s:.2f} s, attribution {attr_s:.2f} s")
    return timed


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    graph, normal, anomaly = load_data(args.rows)
    rss, runs = {}, []  # peak RSS after each block; every repeat, for the raw CSV
    load_start = load_average()
    log(f"data: {len(normal)} training rows, {len(anomaly)} anomaly row(s); repeats={args.repeats}")

    with Stopwatch() as watch:  # untimed warm-up of both libraries (torch/Pyro, sklearn, joblib)
        bayes_runner.warm_up(graph, normal.head(200), TARGET, anomalies=anomaly, mechanisms=args.mechanisms, seed=123)
    log(f"warm-up done in {watch.seconds:.1f} s (untimed)")
    rss["after warm-up"] = peak_rss_mib()

    point = repeat_timed("DoWhy point", args.repeats, lambda: dowhy_point(graph, normal, anomaly, args.seed), runs)
    rss["after DoWhy point"] = peak_rss_mib()
    boot = None
    if args.bootstrap > 0:
        boot = repeat_timed(f"DoWhy bootstrap {args.bootstrap}", args.bootstrap_repeats,
                            lambda: dowhy_bootstrap(graph, normal, anomaly, args.seed, args.bootstrap), runs)
        rss["after DoWhy bootstrap"] = peak_rss_mib()
    bayes = {}
    for mech in args.mechanisms:
        bayes[mech] = repeat_timed(
            f"bayesrca {mech}", args.repeats,
            lambda mech=mech: bayesrca_run(graph, normal, anomaly, mech, args.num_draws, args.num_mc_samples, args.seed),
            runs)
        bayes[mech].first = first_anomaly_summary(bayes[mech].first)  # keep the summary, not the draws
        rss[f"after bayesrca {mech}"] = peak_rss_mib()

    report, rows, contributions = build_report(args, normal, anomaly, point, boot, bayes, rss, load_start)
    print(report, flush=True)
    write_outputs(args, report, pd.DataFrame(rows)[[key for key, _ in TIMING_COLUMNS]], pd.DataFrame(contributions),
                  pd.DataFrame(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
