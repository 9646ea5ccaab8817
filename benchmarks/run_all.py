"""Run the whole evaluation suite with one command and collect one report.

Each benchmark runs in its own process (so each one's peak memory is its own), in this order:

* ``microservice_speed.py``: the 11-node microservice example, bayesrca vs DoWhy point and bootstrap;
* ``recall.py``: root-cause recall on random SCMs (the ICML 2022 protocol), bayesrca vs DoWhy;
* ``calibration.py``: coverage of 90 % intervals and reliability of ``prob_top`` against exact
  truths, bayesrca vs DoWhy's bootstrap;
* ``scale.py``: many anomalies, number of ancestors, a 50-node graph, peak memory;
* ``memory.py``: attribution on a 50-node graph with 1000 draws and 200 anomalies under memory
  budgets (``max_memory_mb``), peak RSS per run;
* ``petshop.py``: top-1 / top-3 recall on the PetShop microservice issues (real data), bayesrca
  vs the anomaly-traversal baseline vs DoWhy;
* ``nezha.py``: top-1 / top-3 recall on the Nezha microservice faults (real data; the smoke run
  uses the 5-case subset shipped in ``examples/data/nezha``), bayesrca vs score ordering,
  anomaly traversal, smooth traversal and DoWhy;
* ``change.py``: distribution change and intrinsic causal influence (recall, coverage of 90 %
  intervals against exact truths on linear-Gaussian SCMs; DoWhy's supply-chain and microservice
  data), bayesrca vs DoWhy;
* ``extreme.py``: the ranking and calibration tables repeated with outliers of 6-12 sd (closed
  form, conditional and plain Monte Carlo tails), bayesrca vs DoWhy;
* ``scaling_out.py``: the same fit and attribution serial, on a process pool and on a Dask
  cluster (times, and whether every number is bit-identical);
* ``graph_uncertainty.py``: root-cause recall when one true edge is missing from the given graph,
  with and without marking it uncertain (``GraphEnsemble``).

Every script writes ``<name>.md``, ``<name>.csv`` and its figures into ``--out``; this runner then
writes ``report.md`` there: every table in order, with links to the figures. Run from the
repository root::

    .venv/bin/python benchmarks/run_all.py            # the full suite (about an hour on 2 cores)
    .venv/bin/python benchmarks/run_all.py --smoke    # tiny settings (CI), a few minutes
    .venv/bin/python benchmarks/run_all.py --only recall calibration

Arguments after ``--`` are passed to every script (e.g. ``-- --seed 1``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from harness import cli
from harness.outputs import git_revision, utc_now
from harness.timing import Stopwatch

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "microservice_speed": "microservice_speed.py",
    "recall": "recall.py",
    "calibration": "calibration.py",
    "scale": "scale.py",
    "memory": "memory.py",
    "petshop": "petshop.py",
    "nezha": "nezha.py",
    "change": "change.py",
    "extreme": "extreme.py",
    "scaling_out": "scaling_out.py",
    "graph_uncertainty": "graph_uncertainty.py",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__.split("\n")[0])
    cli.add_common(p, smoke_help="tiny settings of every script (CI)", seed=None,
                   out_help="output directory of every script and of report.md")
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS), help="scripts to run")
    p.add_argument("--collect-only", action="store_true",
                   help="run nothing: assemble report.md from the outputs already in --out (scripts run separately)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="arguments after -- go to every script")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_smoke" if args.smoke else ""
    sections, failed = [], []
    for name in args.only:
        command = [sys.executable, str(HERE / SCRIPTS[name]), "--out", str(args.out), *(["--smoke"] if args.smoke else []), *extra]
        if args.collect_only:
            code, seconds = 0, float("nan")
        else:
            print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
            with Stopwatch() as watch:
                code = subprocess.run(command, cwd=HERE.parent, check=False).returncode
            seconds = watch.seconds
            print(f"=== {name}: exit {code} after {seconds:.0f} s", flush=True)
        if code:
            failed.append(name)
            sections.append(f"## {name}\n\nFAILED (exit {code}) after {seconds:.0f} s.\n")
            continue
        md = args.out / f"{name}{suffix}.md"
        text = md.read_text() if md.exists() else f"## {name}\n\n(no {md.name} written)\n"
        figures = sorted(p.name for p in args.out.glob(f"{name.split('_')[0]}*{suffix}.png"))
        if not args.smoke:
            figures = [f for f in figures if "_smoke" not in f]
        links = "\n".join(f"![{f}]({f})" for f in figures)
        timing = "" if args.collect_only else f"_Run time: {seconds:.0f} s._\n\n"
        sections.append(f"{text.strip()}\n\n{timing}{links}\n")
    header = (
        f"# bayesrca evaluation suite{' (smoke settings)' if args.smoke else ''}\n\n"
        f"git {git_revision()}, {utc_now()}, Python {sys.version.split()[0]}.\n"
    )
    report = args.out / f"report{suffix}.md"
    report.write_text(header + "\n" + "\n\n".join(sections))
    print(f"\nreport: {report}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
