"""Worker side of ``benchmarks/scale.py``: build one problem, warm up, time one configuration.

Every configuration runs in its own process (see :class:`ForkServer`): a child forked from a
``multiprocessing`` fork server that has only imported torch, Pyro, DoWhy and bayesrca, so each
child's ``ru_maxrss`` is the peak RSS of that configuration alone and no child pays the imports.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import traceback

import networkx as nx
import numpy as np
import pandas as pd
from harness import bayes_runner, dowhy_runner
from harness.logs import quiet
from harness.timing import Stopwatch, peak_rss_mib
from simulate import TrueSCM, pick_target, random_dag

HARNESS = ["harness.bayes_runner", "harness.dowhy_runner", "harness.logs", "harness.timing"]
PRELOAD = ["torch", "pyro", "dowhy.gcm", "sklearn", "bayesrca", *HARNESS, "simulate", "scale_workers"]
MEAN_PARENTS = 2.0  # ER graphs of the ancestors and large parts
BAYESRCA_MECHANISMS = {"gaussian": "gaussian", "exponential": "linear"}  # closed form / Monte Carlo
MICROSERVICE_TARGET = "Website"


# --------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------
def graph_with_ancestors(count: int, *, tries: int = 500) -> tuple[nx.DiGraph, str, int]:
    """The ancestral graph of the first ER node with exactly ``count`` ancestors (else the nearest).

    Seeds 0, 1, ... of ``random_dag(count + 10, "er", mean_parents=2)`` are searched in order.
    Returns the subgraph of the target and its ancestors, the target and the seed.
    """
    best = None
    for seed in range(tries):
        graph = random_dag(count + 10, "er", np.random.default_rng(seed), mean_parents=MEAN_PARENTS)
        for node in graph.nodes:  # topological order: the first match has the fewest nodes before it
            gap = abs(len(nx.ancestors(graph, node)) - count)
            if best is None or gap < best[0]:
                best = (gap, graph, node, seed)
            if gap == 0:
                break
        if best[0] == 0:
            break
    _, graph, target, seed = best
    return graph.subgraph(nx.ancestors(graph, target) | {target}).copy(), target, seed


def large_graph(num_nodes: int, min_ancestors: int, *, tries: int = 500) -> tuple[nx.DiGraph, str, int]:
    """An ER graph (seeds 0, 1, ...) with a node of at least ``min_ancestors`` ancestors; random such target."""
    for seed in range(tries):
        rng = np.random.default_rng(seed)
        graph = random_dag(num_nodes, "er", rng, mean_parents=MEAN_PARENTS)
        if max(len(nx.ancestors(graph, n)) for n in graph.nodes) >= min_ancestors:
            return graph, pick_target(graph, rng, min_ancestors=min_ancestors), seed
    raise RuntimeError(f"no {num_nodes}-node ER graph with a node of >= {min_ancestors} ancestors")


def simulated_problem(cfg: dict) -> tuple:
    """Data of the ``ancestors`` and ``large`` parts: a linear ground-truth SCM and injected outliers.

    Returns
    -------
    tuple
        ``(graph, training data, outliers, target, true root causes, number of ancestors)``.
    """
    if cfg["part"] == "ancestors":
        graph, target, graph_seed = graph_with_ancestors(cfg["ancestors"])
    else:
        graph, target, graph_seed = large_graph(cfg["num_nodes"], cfg["min_ancestors"])
    truth = TrueSCM(graph, "linear", cfg["noise"], seed=graph_seed)
    rng = np.random.default_rng(cfg["seed"])
    data = truth.sample(cfg["rows"], rng)
    players, reference = truth.players(target), truth.reference_target(target)
    rows, causes = [], []
    for _ in range(100 * cfg["n"]):  # random root causes; skip those that give no outlier
        cause = players[int(rng.integers(len(players)))]
        found = truth.inject(target, cause, rng, reference=reference)
        if found is not None:
            rows.append(found[0])
            causes.append(cause)
        if len(rows) == cfg["n"]:
            break
    outliers = pd.concat(rows, ignore_index=True)
    return graph, data, outliers, target, causes, len(players) - 1


def microservice_problem(cfg: dict) -> tuple:
    """Microservice data; the outliers are the ``n`` slowest Website rows of the normal data.

    Returns
    -------
    tuple
        As :func:`simulated_problem`, with no true root causes.
    """
    from bayesrca.datasets import load_microservice

    graph, normal, _ = load_microservice()
    if cfg["rows"]:
        normal = normal.head(cfg["rows"]).reset_index(drop=True)
    outliers = normal.nlargest(cfg["n"], MICROSERVICE_TARGET).reset_index(drop=True)
    return graph, normal, outliers, MICROSERVICE_TARGET, [], len(nx.ancestors(graph, MICROSERVICE_TARGET))


# --------------------------------------------------------------------------------------------
# the timed runs
# --------------------------------------------------------------------------------------------
def warm_up(tool: str, mechanisms: str | None) -> None:
    """Untimed tiny fit + attribution of one tool: lazy initialisation, sklearn and joblib workers."""
    graph = nx.DiGraph([("A", "B"), ("B", "C")])
    truth = TrueSCM(graph, "linear", "gaussian", seed=0)
    data = truth.sample(200, np.random.default_rng(0))
    bayes = tool == "bayesrca"
    bayes_runner.warm_up(graph, data, "C", anomalies=data.nlargest(1, "C"), mechanisms=[mechanisms] if bayes else [],
                         dowhy=not bayes, seed=1)


def top_causes(nodes, values: np.ndarray) -> list:
    """The node with the largest value per anomaly row of ``values`` (rows x nodes)."""
    return [nodes[int(i)] for i in np.argmax(values, axis=1)]


def run_bayesrca(cfg, graph, data, outliers, target) -> dict:
    """Time ``BayesianSCM.fit`` and ``attribute_anomalies`` (default options; more permutations if asked)."""
    import torch

    players = len(nx.ancestors(graph, target)) + 1
    default = max(2 * players, 32)
    default += default % 2  # bayesrca's default number of antithetic permutations
    factor = cfg.get("permutation_factor", 1)
    scm, fit_s = bayes_runner.fit(graph, data, mechanisms=cfg["mechanisms"], num_draws=cfg["num_draws"],
                                  seed=cfg["seed"])
    res, attribution_s = bayes_runner.attribute(scm, target, outliers, seed=cfg["seed"],
                                                num_mc_samples=cfg["num_mc_samples"],
                                                num_permutations=factor * default if factor != 1 else None)
    if cfg.get("save"):
        np.savez(cfg["save"], contributions=res.contributions, it_scores=res.it_scores)
    info = res.method_info
    return {"fit_s": fit_s, "attribution_s": attribution_s, "engine": info["engine"], "shapley": info["shapley"],
            "permutations": factor * default if info["shapley"] == "permutation" else None,
            "top": top_causes(res.nodes, np.median(res.contributions, axis=0)), "threads": torch.get_num_threads()}


def run_dowhy(cfg, graph, data, outliers, target) -> dict:
    """Time DoWhy's mechanism assignment + fit, and its ``attribute_anomalies`` (defaults)."""
    watch = Stopwatch()
    scm = dowhy_runner.fit(graph, data, seed=cfg["seed"])
    fit_s = watch.lap()
    contrib = dowhy_runner.attribute(scm, target, outliers, seed=cfg["seed"])
    attribution_s = watch.lap()
    nodes = list(contrib)
    return {"fit_s": fit_s, "attribution_s": attribution_s, "engine": "dowhy", "shapley": "dowhy auto",
            "top": top_causes(nodes, np.stack([contrib[n] for n in nodes], axis=1))}


def run_config(cfg: dict) -> dict:
    """Build the problem, warm up, time fit and attribution; add the peak RSS of this process."""
    if cfg["part"] == "baseline":
        return {"peak_rss_mib": peak_rss_mib()}
    build = microservice_problem if cfg["part"] == "anomalies" else simulated_problem
    graph, data, outliers, target, causes, ancestors = build(cfg)
    warm_up(cfg["tool"], cfg.get("mechanisms"))
    with quiet():
        run = run_bayesrca if cfg["tool"] == "bayesrca" else run_dowhy
        out = run(cfg, graph, data, outliers, target)
    hits = sum(t == c for t, c in zip(out["top"], causes))
    return dict(out, top_cause=out.pop("top")[0], true_cause=causes[0] if causes else "", ancestors_found=ancestors,
                top_hits=f"{hits}/{len(causes)}" if causes else "", nodes=graph.number_of_nodes(),
                total_s=out["fit_s"] + out["attribution_s"], peak_rss_mib=peak_rss_mib())


# --------------------------------------------------------------------------------------------
# process isolation
# --------------------------------------------------------------------------------------------
def _child(cfg: dict, conn) -> None:
    os.setpgrp()  # own process group: a timeout kills DoWhy's joblib workers too
    try:
        result = run_config(cfg)
    except Exception as exc:  # noqa: BLE001 -- any failure becomes the row's status; the sweep goes on
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    conn.send(result)
    conn.close()
    _stop_joblib_workers()


def _stop_joblib_workers() -> None:
    """Stop DoWhy's joblib workers and run the exit handlers that delete their memmap folders.

    A forked child joins its non-daemonic children when it exits (the workers would only leave after
    their 300 s idle timeout) and skips atexit handlers (the folders would be reported leaked).
    """
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True)
        atexit._run_exitfuncs()  # joblib deletes its memmap folders at exit


class ForkServer:
    """Runs :func:`run_config` in fresh children of one ``multiprocessing`` fork server.

    The server is started on the first :meth:`run` and has imported only ``PRELOAD``.
    """

    def __init__(self) -> None:
        self._context = None

    def run(self, cfg: dict, timeout: float) -> dict:
        """Run one configuration in a fresh child; errors and timeouts become ``error``."""
        import multiprocessing as mp

        if self._context is None:
            self._context = mp.get_context("forkserver")
            self._context.set_forkserver_preload(PRELOAD)
        recv, send = self._context.Pipe(duplex=False)
        proc = self._context.Process(target=_child, args=(cfg, send))  # not daemonic: DoWhy starts joblib workers
        proc.start()
        send.close()
        result, timed_out = None, False
        try:
            timed_out = not recv.poll(timeout)
            if not timed_out:
                result = recv.recv()
        except EOFError:  # the child exited without sending a result (e.g. killed for memory)
            pass
        finally:  # also on KeyboardInterrupt / SystemExit: never leave a configuration running
            if proc.is_alive() and result is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.kill()  # in case it had not yet made its own process group
            proc.join()
        if timed_out:
            return {"error": f"timeout (> {timeout:g} s)"}
        return result if result is not None else {"error": f"worker died (exit code {proc.exitcode})"}
