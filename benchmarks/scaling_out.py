"""Scaling out: the same fit and attribution serial, on a process pool and on a Dask cluster.

DoWhy's microservice example (11 nodes, target ``Website``) with ``mechanisms="auto"``: the fit
(every node a task) and the attribution of the ``--anomalies`` slowest ``Website`` rows of the
normal data (``batch_size = ceil(anomalies / workers)``, one task per worker), each timed

* serial (``executor=None``),
* on a ``concurrent.futures.ProcessPoolExecutor(--workers)`` (spawned processes),
* on a ``distributed.LocalCluster(n_workers=--workers, threads_per_worker=1)`` through
  ``Client.get_executor()``,

all with the same seed and the same batches; "identical" checks that every contribution draw
equals the serial one bit for bit. Pool and cluster start-up, with bayesrca imported in every
worker, is timed apart (``start s``): a long-lived cluster pays it once. On a 2-core machine two workers can at best halve the time;
the table says what they did.

Run from the repository root::

    .venv/bin/python benchmarks/scaling_out.py              # 200 draws, 10,000 rows, 16 anomalies
    .venv/bin/python benchmarks/scaling_out.py --smoke      # CI: 20 draws, 600 rows, 2 anomalies

Writes ``scaling_out.md`` / ``.csv`` (``scaling_out_smoke.*`` with ``--smoke``) under ``--out``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from harness import cli
from harness.logs import log
from harness.outputs import Outputs, git_revision, utc_now
from harness.tables import heading, markdown_table
from harness.timing import Stopwatch, load_average

FULL = {"draws": 200, "rows": 10000, "anomalies": 16, "workers": 2, "mc_samples": 2000}
SMOKE = {"draws": 20, "rows": 600, "anomalies": 2, "workers": 2, "mc_samples": 300}


def parse_args(argv: list[str] | None = None):
    p = cli.parser(__doc__.split("\n")[0], epilog=cli.defaults_epilog(FULL, SMOKE))
    cli.add_common(p, smoke_help="small settings (CI)")
    cli.add_sized(p, FULL, SMOKE, [("--draws", "posterior draws"), ("--rows", "training rows"),
                                   ("--anomalies", "anomalies attributed"), ("--workers", "worker processes"),
                                   ("--mc-samples", "Monte Carlo samples per draw")])
    return cli.parse(p, argv, FULL, SMOKE, at_least_one=["draws", "rows", "anomalies", "workers", "mc_samples"])


def _warm(_: object = None) -> None:
    """Import bayesrca in a worker (and return nothing: a module does not pickle)."""
    import bayesrca  # noqa: F401


def run(name: str, executor, graph, normal, anomalies, args, reference=None) -> dict:
    import bayesrca as br

    watch = Stopwatch()
    scm = br.BayesianSCM(graph, num_draws=args.draws).fit(normal, seed=args.seed, progress=False, executor=executor)
    fit_s = watch.lap()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", br.TailEstimateWarning)  # reported by the other benchmarks
        res = br.attribute_anomalies(scm, "Website", anomalies, seed=args.seed, num_mc_samples=args.mc_samples,
                                     batch_size=math.ceil(len(anomalies) / args.workers), executor=executor,
                                     progress=False)
    attr_s = watch.lap()
    same = "—" if reference is None else ("yes" if np.array_equal(reference.contributions, res.contributions)
                                           and np.array_equal(reference.it_scores, res.it_scores) else "NO")
    log(f"{name}: fit {fit_s:.1f} s, attribution {attr_s:.1f} s, identical {same}")
    return {"how": name, "fit s": fit_s, "attribution s": attr_s, "total s": fit_s + attr_s, "identical": same,
            "_result": res}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bayesrca.datasets import load_microservice

    graph, normal, _ = load_microservice()
    normal = normal.head(args.rows)
    anomalies = normal.nlargest(args.anomalies, "Website").reset_index(drop=True)
    sweep, load = Stopwatch(), load_average()
    rows = [run("serial (executor=None)", None, graph, normal, anomalies, args)]
    reference = rows[0]["_result"]
    watch = Stopwatch()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        # start the workers and import bayesrca in them before timing (a long-lived pool has)
        list(pool.map(_warm, range(4 * args.workers)))
        start_s = watch.lap()
        rows.append(run(f"ProcessPoolExecutor({args.workers})", pool, graph, normal, anomalies, args, reference))
        rows[-1]["start s"] = start_s
    try:
        import distributed
    except ImportError:
        log("distributed is not installed: no Dask row (pip install 'bayesrca[dask]')")
    else:
        watch.lap()
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            client.run(_warm)  # as for the pool
            start_s = watch.lap()
            rows.append(run(f"Dask LocalCluster({args.workers} workers)", client.get_executor(), graph, normal,
                            anomalies, args, reference))
            rows[-1]["start s"] = start_s
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "_result"} for r in rows])
    frame["speed-up"] = frame["total s"].iloc[0] / frame["total s"]
    out = Outputs.create(args.out, args.smoke)
    out.write_csv("scaling_out", frame)
    report = "\n\n".join([
        heading("Scaling out: serial, process pool, Dask", args.smoke),
        (f"Run {utc_now()}, git {git_revision()}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
         f"1-min load {load:.1f} at start; {sweep.elapsed():.0f} s. Microservice example, mechanisms='auto', "
         f"{args.rows} training rows, {args.draws} posterior draws, {args.anomalies} anomalies in batches of "
         f"{math.ceil(args.anomalies / args.workers)}, {args.mc_samples} Monte Carlo samples, seed {args.seed}; "
         "start s: pool / cluster start-up, not in total s."),
        markdown_table(frame, 2),
    ])
    print(report)
    out.write_text("scaling_out", report + "\n")
    return 0 if (frame["identical"] != "NO").all() else 1


if __name__ == "__main__":
    sys.exit(main())
