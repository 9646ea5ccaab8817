"""Extreme outliers (6-12 sd): root-cause ranking and calibration of bayesrca's tails vs DoWhy.

The evaluation suite's recall and calibration tables (``recall.py``, ``calibration.py``) use
outliers of 3-5 noise sd, where plain Monte Carlo tail probabilities are still resolved. This
script repeats both, in one process and side by side, with outliers of 6-12 sd, where the true
IT scores (tens of nats) are far beyond what M Monte Carlo samples can resolve (plain Monte
Carlo caps near log(M + 1), DoWhy's ``(count + 0.5) / (N + 0.5)`` with N = 3000 near
log(6001) = 8.7 nats). Outliers are binned by their shift (``--bins``, default 6-8, 8-10, 10-12).

Part (a), ranking (the protocol of ``recall.py``, with the root cause's noise shifted by a bin's
range of noise sd instead of 3-5):

* Settings ``SHAPE-NODES-MECHANISM-NOISE`` (``--settings``). Per setting ``--graphs`` random SCMs
  (``--nonlinear-graphs`` for nonlinear settings), each seeded by ``SeedSequence([--seed,
  crc32(setting), graph])``: DAG, ``TrueSCM``, a target with 3 to ``--max-ancestors`` ancestors,
  ``--rows`` training rows. Per bin, ``--per-bin`` outliers (``--nonlinear-per-bin``): root cause
  uniform over the target's ancestors and itself, its noise shifted by the bin's range of noise sd
  (``TrueSCM.inject``), kept only when it is a but-for cause (true IT >= log 100 with the shift,
  < log 10 without).
* Methods, each fitted once per graph and called once for all outliers of the graph (all bins):
  linear-Gaussian settings: bayesrca ``mechanisms="gaussian"`` with ``tail="auto"`` (closed form),
  ``tail="mc"`` (conditional Monte Carlo) and ``tail="plain"`` (plain Monte Carlo), bayesrca
  ``mechanisms="auto"`` (the default, ``tail="auto"``), DoWhy point ``attribute_anomalies`` (auto
  assignment, quality GOOD), and the oracle (exact contributions under the true model, closed
  form). Nonlinear settings: bayesrca ``mechanisms="auto"`` with ``tail="auto"`` and
  ``tail="plain"``, and DoWhy. Nodes are ranked by posterior median contribution (DoWhy: by its
  contribution); top-k recall = share of outliers whose root cause is among the k first, with
  95 % Wilson intervals. Seconds: fit (shared by the ``mechanisms="gaussian"`` rows) and
  attribution per graph, after an untimed warm-up.

Part (b), calibration against the exact truth (linear-Gaussian, closed form; the graph of
``calibration.py``: ER DAG with 6 nodes, graph seed 2, target X5, 5 players, ``TrueSCM(...,
seed=1)``):

* Fixed outliers, two sets. ``noise`` units: per bin, ``--cal-per-bin`` outliers, outlier k caused
  by player k mod 5 (the target included), its noise shifted by the bin's range of noise sd (as in
  part a). ``target`` units: the same, but the shift is scaled so that the root cause alone moves
  the target by the bin's range of *target* sd (true IT ~ z^2/2, i.e. ~ 20-75 nats at 6-12 sd).
  Both kept only when true IT >= log 100. Exact contributions and IT scores: closed form.
* ``--cal-repeats`` training sets of ``--cal-rows`` rows; bayesrca ``mechanisms="gaussian"``
  (``--cal-num-draws`` draws) with ``tail="auto"`` (closed form), ``"mc"`` (conditional MC) and
  ``"plain"``, and bayesrca ``mechanisms="linear"`` (Bayesian-bootstrap noise: its kernel is no
  tail model, so its Monte Carlo keeps the floor); DoWhy point estimates on the first
  ``--dowhy-repeats`` training sets. Per (bin, method): coverage of the true contributions and of
  the true IT score by the equal-tailed 90 % intervals (``summary(0.9)``, ``it_score_summary(0.9)``),
  the IT-score error of the posterior median (DoWhy: the sum of its contributions) in nats and
  relative to the truth, and the contribution error (mean |median - truth|, and sum over players
  of |median - truth| / true IT).

Run from the repository root::

    .venv/bin/python benchmarks/extreme.py            # full run, about 20 minutes on 2 shared cores
    .venv/bin/python benchmarks/extreme.py --bins 3-5 --skip-ranking    # the same tables at the suite's 3-5 sd
    .venv/bin/python benchmarks/extreme.py --smoke    # CI smoke test, < 60 s
    .venv/bin/python benchmarks/extreme.py --skip-calibration --settings er-10-linear-gaussian --graphs 2

Outputs under ``--out`` (default ``benchmarks/results/``): ``extreme.md`` (all tables),
``extreme.json`` (summaries and run metadata), ``extreme_ranking.csv``, ``extreme_ranking_trials.csv``,
``extreme_calibration.csv``, ``extreme_calibration_trials.csv``, ``extreme_it.csv``; ``--smoke``
writes ``extreme_smoke*`` instead.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import simulate as sim
from extreme_calibration import run_calibration
from extreme_ranking import run_ranking
from extreme_setup import DOWHY_CAP, FULL, SMOKE, parse_bin
from harness import bayes_runner, cli
from harness.logs import log, warnings_summary
from harness.outputs import Outputs, git_revision, package_version, utc_now
from harness.tables import heading
from harness.timing import Stopwatch, peak_rss_mib
from simulate import parse_setting


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset options take the FULL (or ``--smoke``) values."""
    p = cli.parser(__doc__.split("\n")[0], raw=True, epilog=cli.defaults_epilog(FULL, SMOKE))
    p.add_argument("--settings", nargs="+", type=parse_setting, help="ranking settings SHAPE-NODES-MECHANISM-NOISE")
    p.add_argument("--bins", nargs="+", type=parse_bin, help="shift bins LO-HI in sd (default 6-8 8-10 10-12; --smoke: 10-12)")
    for flag, text in (("--graphs", "random SCMs per linear setting"), ("--nonlinear-graphs", "random SCMs per nonlinear setting"),
                       ("--per-bin", "outliers per bin and graph (linear)"), ("--nonlinear-per-bin", "outliers per bin and graph (nonlinear)"),
                       ("--rows", "training rows per graph"), ("--max-ancestors", "largest number of the target's ancestors"),
                       ("--num-draws", "bayesrca posterior draws (ranking)"), ("--num-mc-samples", "bayesrca num_mc_samples"),
                       ("--cal-repeats", "calibration training sets"), ("--cal-per-bin", "calibration outliers per bin and unit"),
                       ("--cal-rows", "calibration training rows"), ("--cal-num-draws", "bayesrca posterior draws (calibration)"),
                       ("--dowhy-repeats", "calibration training sets on which DoWhy runs")):
        p.add_argument(flag, type=int, help=text)
    p.add_argument("--skip-ranking", action="store_true", help="run part (b) only")
    p.add_argument("--skip-calibration", action="store_true", help="run part (a) only")
    cli.add_common(p, seed_help="master seed (default 0)", smoke_help="tiny CI run (< 60 s), writes extreme_smoke*")
    args = cli.parse(p, argv, FULL, SMOKE, convert={"settings": lambda names: [parse_setting(n) for n in names]},
                     at_least_one=[k for k in FULL if k not in ("settings", "bins", "dowhy_repeats")])
    args.bins = [tuple(b) for b in args.bins]
    return args


def warm_up() -> None:
    """Untimed first-call costs of torch/Pyro and sklearn/DoWhy."""
    graph = sim.random_dag(4, "er", np.random.default_rng(5))
    graph.add_edge("X0", "X3")
    truth = sim.TrueSCM(graph, "linear", "gaussian", seed=3)
    train = truth.sample(200, np.random.default_rng(0))
    bayes_runner.warm_up(graph, train, "X3", mechanisms=["gaussian"], tails=["auto", "mc"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = Stopwatch()
    if not args.smoke:  # the smoke run's seconds are not reported as timings; it skips the warm-up
        with Stopwatch() as watch:
            warm_up()
        log(f"warm-up done in {watch.seconds:.1f} s (untimed)")
    caught: Counter = Counter()
    out = Outputs.create(args.out, args.smoke)
    sections, summary_json, timings = [], {}, {}
    if not args.skip_ranking:
        sections.append(run_ranking(args, caught, out, summary_json, timings))
    if not args.skip_calibration:
        sections.append(run_calibration(args, caught, out, summary_json, timings))

    elapsed = start.elapsed()
    command = "python benchmarks/extreme.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"run_utc": utc_now().removesuffix(" UTC"), "git": git_revision(),
            "bayesrca": package_version("bayesrca"), "dowhy": package_version("dowhy"), "command": command.strip(),
            "elapsed_s": elapsed, "timings_s": timings, "peak_rss_mib": peak_rss_mib(),
            "args": {k: ([s["name"] for s in v] if k == "settings" else (str(v) if isinstance(v, Path) else v))
                     for k, v in vars(args).items()},
            "plain_cap_nats": math.log(args.num_mc_samples + 1), "dowhy_cap_nats": DOWHY_CAP,
            "warnings": dict(caught.most_common(10))}
    summary_json["meta"] = meta
    out.write_json("extreme", summary_json)
    header = (
        f"{heading('Extreme outliers (6-12 sd)', args.smoke)}\n\n"
        f"Run {meta['run_utc']} UTC; bayesrca {meta['bayesrca']} (git {meta['git']}), dowhy {meta['dowhy']}; "
        f"`{meta['command']}`; {elapsed:.0f} s wall ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"), peak RSS {meta['peak_rss_mib']:.0f} MiB.\n\n"
        + f"Warnings raised by bayesrca: {warnings_summary(caught, 5)}.\n")
    report = "\n".join([header, *sections])
    out.write_text("extreme", report)
    print(report, flush=True)
    log(f"wrote {out.folder}/extreme{out.suffix}.md, .json and the extreme_*{out.suffix}.csv files in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
