"""Memory benchmark: attribution under a memory budget (``max_memory_mb``), peak RSS measured.

A 50-node ER DAG (``scale_workers.large_graph``: mean 2 parents, a random target with at least 25
ancestors), a linear ground-truth SCM (``simulate.TrueSCM``), ``--rows`` training rows, fitted with
``--draws`` posterior draws (default 1000) on two paths:

* ``gaussian``: Gaussian noise, ``mechanisms="gaussian"`` (conjugate fit, closed-form tails);
* ``linear``: exponential noise, ``mechanisms="linear"`` (Bayesian-bootstrap noise, Monte Carlo
  tails with ``--mc-samples`` fresh samples per draw).

``--anomalies`` outliers (each row: one random ancestor's noise shifted by 4 noise sd) are then
attributed under each budget of ``--budgets`` (MiB; ``none`` = no budget, only the default
``max_elements``). Every (path, budget) runs in a fresh interpreter (a child process of this
script): it fits, records its resident set after the fit (``VmRSS``, the baseline), resets the
kernel's high-water mark (``/proc/self/clear_refs``), attributes, and reads the high-water mark
again (``VmHWM``): the attribution's peak. Each child also saves its contributions; the largest
difference from the unbudgeted run of the same path shows that chunking does not change the numbers.

A budget is planned for the attribution's live tensors. The resident set also holds what the C
allocator keeps after a free: glibc serves blocks below its adaptive mmap threshold (up to 32 MiB)
from its heap and returns them only from the top, so after many temporaries of a few MiB the
resident set exceeds what is live, by an amount that varies from run to run. Each budgeted run is
therefore made twice: with the default allocator (what a user sees) and with
``MALLOC_MMAP_THRESHOLD_=65536`` (every block of 64 KiB or more mapped on its own and returned at
free, so the resident set follows the live tensors). "within budget" compares the second's peak
above the baseline with the budget (the planner's promise); the first is reported beside it.

Run from the repository root::

    .venv/bin/python benchmarks/memory.py              # full: 1000 draws, 200 anomalies, ~5 min on 2 cores
    .venv/bin/python benchmarks/memory.py --smoke      # < 60 s

Writes ``memory.csv``, ``memory.json`` and ``memory.md`` (``memory_smoke.*`` with ``--smoke``)
under ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from harness import cli
from harness.logs import log
from harness.outputs import Outputs, git_revision, utc_now
from harness.tables import heading, markdown_table
from harness.timing import Stopwatch, load_average

HERE = Path(__file__).resolve().parent
PATHS = {"gaussian": ("gaussian", "gaussian"), "linear": ("exponential", "linear")}  # path: (true noise, mechanisms)
FULL = {"draws": 1000, "anomalies": 200, "mc_samples": 200, "rows": 2000, "budgets": ["256", "512", "1024", "none"]}
SMOKE = {"draws": 100, "anomalies": 20, "mc_samples": 100, "rows": 500, "budgets": ["128", "none"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones take the FULL values, or the SMOKE values with ``--smoke``."""
    p = cli.parser(__doc__, raw=True)
    p.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    p.add_argument("--budgets", nargs="+", help="budgets in MiB, 'none' for no budget (default: 256 512 1024 none)")
    p.add_argument("--draws", type=int, help="posterior draws (default 1000)")
    p.add_argument("--anomalies", type=int, help="number of outliers attributed (default 200)")
    p.add_argument("--mc-samples", type=int, help="Monte Carlo samples per draw on the linear path (default 200)")
    p.add_argument("--rows", type=int, help="training rows (default 2000)")
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--min-ancestors", type=int, default=25)
    p.add_argument("--timeout", type=float, default=600, help="seconds before a child is killed")
    cli.add_common(p, smoke_help="small settings (< 60 s): " + str(SMOKE))
    p.add_argument("--child", help=argparse.SUPPRESS)  # JSON configuration of one measured run
    return cli.parse(p, argv, FULL, SMOKE)


# --------------------------------------------------------------------------------------------
# the child: one measured run
# --------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def problem(cfg: dict):
    """Graph, training data, outliers and target of one configuration (numpy only, seeded)."""
    from scale_workers import large_graph
    from simulate import TrueSCM

    graph, target, graph_seed = large_graph(cfg["nodes"], cfg["min_ancestors"])
    truth = TrueSCM(graph, "linear", PATHS[cfg["path"]][0], seed=graph_seed)
    rng = np.random.default_rng(cfg["seed"])
    data = truth.sample(cfg["rows"], rng)
    players = truth.players(target)
    noise = truth.sample_noise(cfg["anomalies"], rng)
    causes = rng.choice(len(players), size=cfg["anomalies"])
    for i, c in enumerate(causes):
        node = players[int(c)]
        noise[node][i] += 4.0 * truth.sigma[node]
    values = truth.propagate(noise)
    outliers = pd.DataFrame({n: values[n] for n in truth.order})
    return graph, data, outliers, target, len(players)


def child(cfg: dict) -> dict:
    import torch

    import bayesrca as br

    graph, data, outliers, target, num_players = problem(cfg)
    watch = Stopwatch()
    scm = br.BayesianSCM(graph, mechanisms=PATHS[cfg["path"]][1], num_draws=cfg["draws"]).fit(data, seed=cfg["seed"])
    fit_s = watch.lap()
    del data
    gc.collect()
    baseline = _status_kib("VmRSS") / 1024
    fit_peak = _status_kib("VmHWM") / 1024
    reset = _reset_peak()
    row = {"fit_s": fit_s, "players": num_players, "baseline_rss_mib": baseline, "threads": torch.get_num_threads()}
    watch.lap()
    try:
        res = br.attribute_anomalies(scm, target, outliers, seed=cfg["seed"], num_mc_samples=cfg["mc_samples"],
                                     max_memory_mb=cfg["budget"])
    except br.ConfigError as err:
        return dict(row, status=f"ConfigError: {err}")
    row["attribution_s"] = watch.lap()
    peak = _status_kib("VmHWM") / 1024
    row["peak_rss_mib"] = peak if reset else max(peak, fit_peak)
    row["peak_reset"] = reset
    row["engine"] = res.method_info["engine"]
    np.savez(cfg["save"], contributions=res.contributions, it_scores=res.it_scores)
    return dict(row, status="ok")


# --------------------------------------------------------------------------------------------
# the parent: every configuration in a fresh interpreter
# --------------------------------------------------------------------------------------------
#: the allocator setting under which the resident set follows the live tensors (see the docstring)
RETURN_FREED = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def run_child(cfg: dict, timeout: float, env: dict | None = None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(cfg)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=HERE, check=False,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        return {"status": f"failed (exit {proc.returncode})"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    sweep, load = Stopwatch(), load_average()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.paths:
            saved = {}
            for budget in args.budgets:
                mb = None if budget.lower() == "none" else float(budget)
                save = f"{tmp}/{path}_{budget}.npz"
                cfg = {"path": path, "budget": mb, "draws": args.draws, "anomalies": args.anomalies,
                       "mc_samples": args.mc_samples, "rows": args.rows, "nodes": args.nodes,
                       "min_ancestors": args.min_ancestors, "seed": args.seed, "save": save}
                watch = Stopwatch()
                default = run_child(cfg, args.timeout) if mb is not None else {}
                result = run_child(cfg, args.timeout, RETURN_FREED if mb is not None else None)
                if default.get("status") == "ok":
                    result["default_attribution_rss_mib"] = default["peak_rss_mib"] - default["baseline_rss_mib"]
                row = {"path": path, "mechanisms": PATHS[path][1], "budget_mib": mb, "anomalies": args.anomalies,
                       "draws": args.draws, "mc_samples": args.mc_samples if path == "linear" else 0, **result}
                if result.get("status") == "ok":
                    row["attribution_rss_mib"] = row["peak_rss_mib"] - row["baseline_rss_mib"]
                    row["within_budget"] = "—" if mb is None else ("yes" if row["attribution_rss_mib"] <= mb else "NO")
                    saved[budget] = save
                log(f"{path} budget={budget}: {row.get('status')[:200]}, attribution "
                    f"{row.get('attribution_s', float('nan')):.1f} s, peak {row.get('peak_rss_mib', float('nan')):.0f} MiB "
                    f"(baseline {row.get('baseline_rss_mib', float('nan')):.0f}) [{watch.elapsed():.0f} s wall]")
                rows.append(row)
            reference = next((saved[b] for b in saved if b.lower() == "none"), None)
            for row in rows:
                key = "none" if row["budget_mib"] is None else next(b for b in args.budgets if b.lower() != "none"
                                                                      and float(b) == row["budget_mib"])
                if row["path"] == path and reference and key in saved:
                    a, b = np.load(saved[key]), np.load(reference)
                    row["max_abs_diff_vs_unbudgeted"] = float(np.abs(a["contributions"] - b["contributions"]).max())
    frame = pd.DataFrame(rows)
    out = Outputs.create(args.out, args.smoke)
    out.write_csv("memory", frame)
    out.write_text("memory", json.dumps(rows, indent=1, default=str), tail=".json")
    shown = pd.DataFrame({
        "budget MiB": ["none" if pd.isna(b) else f"{b:g}" for b in frame["budget_mib"]],
        "path": [f"{m} ({e})" if isinstance(e, str) else m for m, e in zip(frame["mechanisms"], frame.get("engine", [None] * len(frame)))],
        "anomalies": frame["anomalies"],
        "seconds": frame.get("attribution_s"),
        "baseline RSS after fit MiB": frame.get("baseline_rss_mib"),
        "peak RSS MiB": frame.get("peak_rss_mib"),
        "attribution peak above baseline MiB": frame.get("attribution_rss_mib"),
        "same, default allocator MiB": frame.get("default_attribution_rss_mib"),
        "within budget": frame.get("within_budget"),
        "max |Δ| vs no budget": ["—" if pd.isna(v) else f"{v:.1e}"
                                 for v in frame.get("max_abs_diff_vs_unbudgeted", pd.Series([np.nan] * len(frame)))],
        "status": [s if s == "ok" else s[:160] for s in frame["status"]],
    })
    players = frame["players"].dropna().iloc[0] if "players" in frame and frame["players"].notna().any() else "?"
    report = "\n\n".join([
        heading("Memory benchmark", args.smoke),
        (f"Run {utc_now()}, git {git_revision()}, python "
         f"{platform.python_version()}, {os.cpu_count()} CPUs, 1-min load {load:.1f} at start; "
         f"sweep {sweep.elapsed():.0f} s."),
        (f"{args.nodes}-node ER graph, target with {players:.0f} players (ancestors + itself), {args.rows} training rows, "
         f"{args.draws} posterior draws, {args.anomalies} outliers, seed {args.seed}; Monte Carlo path with "
         f"{args.mc_samples} samples per draw. Each row is a fresh process; baseline = VmRSS after the fit, "
         "peak = VmHWM during attribution (reset after the fit); budgeted rows run with "
         "MALLOC_MMAP_THRESHOLD_=65536 (freed blocks returned: the resident set follows the live tensors), "
         "and once more with the default allocator (last column: what glibc also keeps after frees); "
         "within budget: peak - baseline <= budget."
         if players != "?" else "No successful run."),
        markdown_table(shown, 2),
    ])
    print(report)
    out.write_text("memory", report + "\n")
    failed = [r for r in rows if r.get("status") != "ok" and not str(r.get("status")).startswith("ConfigError")]
    over = [r for r in rows if r.get("within_budget") == "NO"]
    return 1 if failed or over else 0


if __name__ == "__main__":
    sys.exit(main())
