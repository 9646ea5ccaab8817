"""Calibration of bayesrca's credible intervals and prob_top, with DoWhy's bootstrap intervals side by side.

Protocol (truth as in ``/work/shared/METHOD.md``, "The truth used to check calibration"):

* Graph: one Erdős–Rényi DAG with 6 nodes, ``simulate.random_dag(6, "er", rng(--graph-seed))``,
  and a target with 3-5 ancestors (``pick_target``); default seed 2: target X5, 5 players.
* Settings (``--settings``): ``linear_gaussian``, ``linear_exponential``, ``nonlinear_gaussian``,
  ``nonlinear_exponential``. Each has ONE true SCM (``TrueSCM(..., seed=1)``).
* Bands (``--bands``): ``moderate`` (root cause's noise shifted 3-4 noise sd), ``far`` (8-10 sd)
  or ``LO-HI``; ``--shift LO HI`` runs one band instead. Per setting and band ``--outliers`` fixed
  outliers, outlier k caused by ancestor k mod #ancestors (``TrueSCM.inject``, true IT >= log 100,
  seeded rng; the moderate band has the outliers of the earlier protocol).
* Truth (``calibration_setup.exact_truth``): closed form for linear-Gaussian; otherwise the
  importance-sampling estimator of ``calibration_truth.is_truth`` (``--truth-mc`` samples shared by
  every coalition value, defensive mixture proposal with the TRUE noise laws, the target's noise
  integrated in closed form), which reaches the e^-40 coalition values of far outliers that plain
  Monte Carlo cannot, and reports its own standard errors (contributions, IT, mirror threshold).
  Cells where the truth's error is not below 10 % of the interval width are flagged (``truth_ok``).
  ``--truth-cache FILE`` keeps the truths between runs.
* For every size n in ``--sizes`` and repeat r < ``--repeats``: a fresh training set of n rows
  (rng seeded by (seed, setting, n, r)); bayesrca ``BayesianSCM(graph, "auto",
  num_draws).fit(train, seed=r)`` and one ``attribute_anomalies(scm, target, outliers, seed=r,
  num_mc_samples=--mc-samples)`` over the outliers of every band. For every outlier and player:
  does the equal-tailed 90 % interval (``summary(0.9)``) cover the truth; its width;
  |median - truth|; the same for the IT score (``it_score_summary``).
* DoWhy: for r < ``--dowhy-repeats`` and n in ``--dowhy-sizes``, ``harness.dowhy_runner.bootstrap``
  (``--dowhy-resamples`` refits on 75 % subsets, 5th-95th percentiles) on the same training set,
  for the first ``--dowhy-outliers`` outliers of each band (one call per outlier).
* prob_top: expected calibration error per setting (bins 0, .1, .3, .5, .7, .9, 1) with a 95 %
  bootstrap interval over training sets, Brier score, and the pooled reliability table.
* Monte Carlo floor: bayesrca's plain Monte Carlo path floors v(S) at log(1/(M+1)), M =
  ``--mc-samples``; we report the fraction of the truth's v(S) below that floor per setting and band.

Targets: bayesrca coverage in [0.85, 0.95] in every cell; mean width shrinking with n.

Run from the repository root::

    .venv/bin/python benchmarks/calibration.py                   # full run, several hours on 2 cores
    .venv/bin/python benchmarks/calibration.py --smoke           # CI smoke test, < 60 s
    .venv/bin/python benchmarks/calibration.py --sizes 100 1000 --repeats 6 --num-draws 50 \\
        --mc-samples 1000 --outliers 3 --dowhy-repeats 0 --truth-cache benchmarks/results/calibration_truth_cache.json
                                                                 # the medium run of docs/benchmarks.md (~25 min)

Runtime (2 shared CPU cores): the truth ~10-40 s per outlier off the closed form at 10^6 samples
(18 outliers by default, cached with ``--truth-cache``); bayesrca ~2-20 s per repeat; a DoWhy
bootstrap (10 refits) ~1 min per outlier at n <= 1000 but ~30 min for nonlinear settings at n =
10000 (gradient-boosting refits), hence ``--dowhy-sizes 100 1000`` and 2 DoWhy repeats by default.

Outputs under ``--out`` (default ``benchmarks/results/``): ``calibration.{md,csv}`` (coverage
tables), ``calibration_trials.csv`` (one row per repeat x outlier x node x method, with the
truth's standard error), ``calibration_ece.csv``, ``calibration_truth.csv`` (truth errors and MC
floor per setting and band), ``calibration_reliability.csv`` and
``calibration_{coverage,width,reliability}.png``; ``--smoke`` writes ``calibration_smoke*`` files.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from calibration_setup import BANDS, SETTINGS, TruthCache, make_setting, parse_band
from calibration_tables import (
    BAND,
    CI_PROB,
    coverage_table,
    display_table,
    ece_table,
    floor_table,
    plot_curves,
    plot_reliability,
    reliability_table,
)
from harness import bayes_runner, cli, dowhy_runner
from harness.logs import log, warnings_summary
from harness.outputs import Outputs, git_revision, package_version, utc_now
from harness.tables import heading, markdown_table
from harness.timing import Stopwatch, peak_rss_mib
from simulate import pick_target, random_dag

SMOKE = {"settings": ["linear_exponential"], "bands": ["far"], "sizes": [200], "repeats": 2,
         "dowhy_repeats": 1, "dowhy_sizes": [200], "dowhy_outliers": 1, "dowhy_resamples": 2, "num_draws": 30,
         "mc_samples": 300, "truth_mc": 100_000, "outliers": 2}
# DoWhy's bootstrap (one call per outlier, 10 refits each) costs minutes per repeat and hours at
# n = 10000 with gradient-boosting refits: by default it runs on the first 2 training sets at n <= 1000.
FULL = {"settings": list(SETTINGS), "bands": list(BANDS), "sizes": [100, 1000, 10000], "repeats": 20,
        "dowhy_repeats": 2, "dowhy_sizes": [100, 1000], "dowhy_outliers": 1, "dowhy_resamples": 10, "num_draws": 200,
        "mc_samples": 2000, "truth_mc": 1_000_000, "outliers": 3}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset options take the full (or ``--smoke``) defaults."""
    p = cli.parser(__doc__.split("\n\n")[0], raw=True, epilog=cli.defaults_epilog(FULL, SMOKE))
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="settings to run")
    p.add_argument("--bands", nargs="+", type=str,
                   help=f"outlier bands: {', '.join(f'{k} ({lo:g}-{hi:g} sd)' for k, (lo, hi) in BANDS.items())} "
                        "or LO-HI in noise sd")
    p.add_argument("--sizes", nargs="+", type=int, help="training-set sizes")
    p.add_argument("--repeats", type=int, help="bayesrca repeats (training sets) per setting and size")
    p.add_argument("--dowhy-repeats", type=int, help="DoWhy bootstrap runs on the first training sets (0 skips)")
    p.add_argument("--dowhy-sizes", nargs="+", type=int, help="sizes at which DoWhy runs")
    p.add_argument("--dowhy-resamples", type=int, help="DoWhy bootstrap resamples")
    p.add_argument("--dowhy-outliers", type=int, help="DoWhy bootstraps the first this many outliers of each band")
    p.add_argument("--outliers", type=int, help="fixed outliers per setting and band (pooled)")
    p.add_argument("--num-draws", type=int, help="bayesrca posterior draws")
    p.add_argument("--mc-samples", type=int, help="bayesrca num_mc_samples (Monte Carlo path)")
    p.add_argument("--truth-mc", type=int, help="importance samples per coalition for the truth (off linear-Gaussian)")
    p.add_argument("--truth-cache", type=Path, default=None,
                   help="JSON file caching the truths (read and written; keyed by setting, outlier noise, --truth-mc)")
    p.add_argument("--graph-seed", type=int, default=2, help="seed of the random DAG (default 2)")
    p.add_argument("--no-tail-pooling", action="store_true",
                   help="fit each GPD tail alone (BayesianSCM(tail_pooling=False)), for before/after comparisons")
    p.add_argument("--shift", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="one band of root-cause noise shifts LO-HI sd instead of --bands")
    cli.add_common(p, seed_help="base seed of training sets and outliers (default 0)",
                   smoke_help="tiny CI settings (explicit options still override)")
    args = cli.parse(p, argv, FULL, SMOKE, at_least_one=("repeats", "outliers", "num_draws", "mc_samples", "truth_mc",
                                                         "dowhy_resamples"))
    try:
        args.bands = [parse_band(b) for b in args.bands]
    except argparse.ArgumentTypeError as err:
        p.error(str(err))
    if args.shift is not None:
        args.bands = [parse_band(f"{args.shift[0]:g}-{args.shift[1]:g}")]
    return args


# --------------------------------------------------------------------------------------------
# one repeat
# --------------------------------------------------------------------------------------------
def run_bayesrca(graph, target, train, outliers, seed: int, args, caught: Counter):
    """Fit and attribute with bayesrca; return (summary, IT summary, engine, seconds)."""
    scm, fit_s = bayes_runner.fit(graph, train, mechanisms="auto", num_draws=args.num_draws, seed=seed, warnings=caught,
                                  tail_pooling=not args.no_tail_pooling)
    res, attribution_s = bayes_runner.attribute(scm, target, outliers, seed=seed, warnings=caught,
                                                num_mc_samples=args.mc_samples)
    summary, it_summary = res.summary(ci_prob=CI_PROB), res.it_score_summary(ci_prob=CI_PROB)
    return summary, it_summary, res.method_info["engine"], fit_s + attribution_s


def trial_rows(key: dict, setting: dict, summary: pd.DataFrame, it_summary, method: str, engine: str, seconds: float,
               rows_of: list | None = None):
    """Rows of the trials table for one repeat and method (contributions, then IT scores).

    ``rows_of`` maps the summary's anomaly index to the setting's outlier index (default: the same).
    """
    rows = []
    for rec in summary.itertuples(index=False):
        k = int(rec.anomaly) if rows_of is None else rows_of[int(rec.anomaly)]
        truth = setting["truth"][k]
        top = max(truth["phi"], key=truth["phi"].get)
        rows.append(dict(key, band=setting["band"][k], method=method, engine=engine, time_s=seconds, outlier=k,
                         quantity="contribution", node=rec.node, truth=truth["phi"][rec.node],
                         truth_se=truth["se_phi"][rec.node], median=rec.median, lower=rec.lower, upper=rec.upper,
                         prob_top=getattr(rec, "prob_top", np.nan), true_top=rec.node == top))
    for rec in [] if it_summary is None else it_summary.itertuples(index=False):
        k = int(rec.anomaly)
        truth = setting["truth"][k]
        rows.append(dict(key, band=setting["band"][k], method=method, engine=engine, time_s=seconds, outlier=k,
                         quantity="it_score", node="IT", truth=truth["it"], truth_se=truth["se_it"], median=rec.median,
                         lower=rec.lower, upper=rec.upper, prob_top=np.nan, true_top=False))
    return rows


def dowhy_summary(graph, target, train, setting: dict, seed: int, args):
    """DoWhy bootstrap of the first ``--dowhy-outliers`` outliers of each band: summary-like frame, rows, seconds."""
    chosen = [i for label, *_ in args.bands
              for i in [j for j, b in enumerate(setting["band"]) if b == label][: args.dowhy_outliers]]
    outliers = setting["outliers"].iloc[chosen].reset_index(drop=True)
    with Stopwatch() as watch:
        boot = dowhy_runner.bootstrap(graph, train, target, outliers, num_resamples=args.dowhy_resamples, seed=seed)
    rows = [{"anomaly": k, "node": node, "median": med[k], "lower": lo[k], "upper": hi[k]}
            for node, (med, lo, hi) in boot.items() for k in range(len(outliers))]
    return pd.DataFrame(rows), chosen, watch.seconds


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def run_trials(graph, target, args, caught: Counter) -> tuple[dict, pd.DataFrame, list]:
    """Every setting, size and repeat: (settings, trials, DoWhy cells skipped)."""
    cache = TruthCache(args.truth_cache)
    settings, trials, skipped = {}, [], []
    for name in args.settings:
        index = list(SETTINGS).index(name)  # seeds do not depend on which settings are run
        with Stopwatch() as watch:
            settings[name] = setting = make_setting(index, name, graph, target, args, cache)
        log(f"{name}: truth for {len(setting['truth'])} outliers in {watch.seconds:.1f} s")
        for size in args.sizes:
            for r in range(args.repeats):
                rng = np.random.default_rng([args.seed, index, size, r])
                train = setting["scm"].sample(size, rng)
                key = {"setting": name, "size": size, "repeat": r}
                summ, its, engine, sec = run_bayesrca(graph, target, train, setting["outliers"], r, args, caught)
                trials += trial_rows(key, setting, summ, its, "bayesrca", engine, sec)
                msg = f"{name} n={size} r={r}: bayesrca {sec:.1f} s ({engine})"
                if r < args.dowhy_repeats and size in args.dowhy_sizes:
                    summ, chosen, sec = dowhy_summary(graph, target, train, setting, r, args)
                    trials += trial_rows(key, setting, summ, None, "dowhy_bootstrap", "dowhy", sec, rows_of=chosen)
                    msg += f", DoWhy bootstrap {sec:.1f} s"
                log(msg)
            if args.dowhy_repeats and size not in args.dowhy_sizes:
                skipped.append(f"{name} n={size}")
    trials = pd.DataFrame(trials)
    trials["covered"] = (trials["lower"] <= trials["truth"]) & (trials["truth"] <= trials["upper"])
    trials["width"] = trials["upper"] - trials["lower"]
    trials["abs_err"] = (trials["median"] - trials["truth"]).abs()
    return settings, trials, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = Stopwatch()
    graph = random_dag(6, "er", np.random.default_rng(args.graph_seed))
    target = pick_target(graph, np.random.default_rng(args.graph_seed), min_ancestors=3, max_ancestors=5)
    caught: Counter = Counter()
    settings, trials, skipped = run_trials(graph, target, args, caught)

    coverage = coverage_table(trials, "contribution")
    it_cov = coverage_table(trials[trials["method"] == "bayesrca"], "it_score").drop(
        columns=["target_met", "time_per_repeat_s"])
    reliability = reliability_table(trials)
    ece = ece_table(trials, seed=args.seed)
    floors = floor_table(settings, args)

    out = Outputs.create(args.out, args.smoke)
    out.write_csv("calibration", pd.concat([coverage.assign(quantity="contribution"),
                                            it_cov.assign(quantity="it_score")]))
    out.write_csv("calibration_trials", trials)
    out.write_csv("calibration_reliability", reliability)
    out.write_csv("calibration_ece", ece)
    out.write_csv("calibration_truth", floors)
    plot_curves(coverage, "coverage", out.path("calibration_coverage", ".png"), "90 % interval coverage", band=True)
    plot_curves(coverage, "median_width", out.path("calibration_width", ".png"), "median interval width", band=False)
    plot_reliability(reliability, out.path("calibration_reliability", ".png"))

    bayes_rows = coverage[coverage["method"] == "bayesrca"]
    bands = ", ".join(f"{label} ({lo:g}-{hi:g} sd)" for label, lo, hi in args.bands)
    protocol = (
        f"ER DAG with 6 nodes (graph seed {args.graph_seed}), target {target}, players "
        f"{settings[args.settings[0]]['scm'].players(target)}; settings {', '.join(args.settings)}; sizes {args.sizes}; "
        f"bands {bands}, {args.outliers} fixed outliers per setting and band (true IT >= log 100); "
        f"{args.repeats} bayesrca repeats (num_draws={args.num_draws}, num_mc_samples={args.mc_samples}, mechanisms='auto'); "
        f"DoWhy bootstrap ({args.dowhy_resamples} resamples, 5-95 %) of the first {args.dowhy_outliers} outlier(s) per band "
        f"on the first {args.dowhy_repeats} training sets at sizes {args.dowhy_sizes}; truth: closed form "
        f"(linear-Gaussian), else importance sampling with {args.truth_mc:.0e} samples per coalition value; seed {args.seed}."
    )
    if not args.dowhy_repeats:
        notes = ["- DoWhy not run (--dowhy-repeats 0)."]
    else:
        notes = [f"- DoWhy bootstrap NOT run at: {', '.join(skipped)} (--dowhy-sizes {args.dowhy_sizes})." if skipped
                 else "- DoWhy bootstrap ran at every setting and size."]
    notes.append(f"- Warnings raised by bayesrca: {warnings_summary(caught, 8)}.")
    flagged = int((bayes_rows["truth_ok"] != "yes").sum())
    targets = [
        (f"- bayesrca contribution coverage in [{BAND[0]}, {BAND[1]}] with width shrinking with size: "
         f"{(bayes_rows['target_met'] == 'yes').sum()} of {len(bayes_rows)} setting x band x size cells."),
        f"- Cells whose truth error is not negligible (flagged, see truth_ok): {flagged} of {len(bayes_rows)}.",
    ]
    report = "\n\n".join([
        heading("Calibration of bayesrca's 90 % credible intervals and prob_top", args.smoke),
        (f"Run {utc_now()}; bayesrca {package_version('bayesrca')} (git {git_revision()}), "
         f"dowhy {package_version('dowhy')}; {start.elapsed():.0f} s wall, peak RSS {peak_rss_mib():.0f} MiB."),
        "Protocol: " + protocol,
        "### Targets\n\n" + "\n".join(targets),
        "### (a) Coverage per setting x band x size, bayesrca and DoWhy side by side\n\n"
        "Coverage of the truth by the 90 % interval over (repeat, outlier, player) pairs with its 95 % Wilson "
        "interval; IT = coverage of the IT score; mean / median width of the intervals; abs err = mean abs(median - truth) "
        "(nats). truth_ok: 'yes' when the truth's own standard error is below 10 % of the interval width for >= 95 % "
        "of the pairs (else FLAG with that fraction): a flagged cell's coverage is not evidence.\n\n"
        + markdown_table(display_table(coverage, it_cov)),
        "### (b) prob_top reliability: expected calibration error per setting\n\n"
        "ECE = sum over bins (edges 0, .1, .3, .5, .7, .9, 1) of (count / pairs) x |mean predicted - observed|, "
        "with a 95 % bootstrap interval resampling whole training sets (the outliers of one fit are not "
        "independent); Brier score beside. ECE is biased upwards at few pairs.\n\n"
        + markdown_table(ece),
        "### (c) prob_top reliability (bayesrca, pooled)\n\n" + markdown_table(reliability),
        "### (d) The truth and bayesrca's Monte Carlo floor, per setting x band\n\n"
        f"frac_v_below_floor: fraction of the true coalition values v(S) below log(1/(M+1)) = "
        f"{math.log(1 / (args.mc_samples + 1)):.2f} (M = {args.mc_samples}), where bayesrca's plain Monte Carlo path "
        "floors them; frac_v_under_10_hits: fewer than 10 expected hits among the M samples. Truth errors: "
        "max_se_phi / max_se_it = the largest standard error of a true contribution / IT score (delta method over "
        "the importance samples, with the error of the mirror threshold); max_abs_mirror = largest |log P(X_t <= lo) "
        "/ P(X_t >= hi)| on the empty coalition (0 when the two tails balance as they must).\n\n"
        + markdown_table(floors),
        "### (e) Full coverage table (also in calibration.csv)\n\n" + markdown_table(coverage),
        "### (f) IT-score coverage (bayesrca)\n\n" + markdown_table(it_cov),
        "### Notes\n\n" + "\n".join(notes),
    ])
    print(report, flush=True)
    out.write_text("calibration", report + "\n")
    log(f"wrote {out.folder}/calibration{out.suffix}.md, .csv, calibration_{{trials,ece,truth,reliability}}{out.suffix}.csv "
        "and 3 png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
