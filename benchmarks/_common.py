"""Shared helpers of the benchmark scripts: tables, outputs, peak memory, and the DoWhy baseline.

DoWhy is a benchmark extra only (``pip install -e ".[bench]"``); it is imported inside functions.
"""

from __future__ import annotations

import contextlib
import math
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def peak_rss_mib() -> float:
    """Process high-water mark of the resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}" if isinstance(x, (float, np.floating)) else str(x)


def fmt_ci(p, lo, hi) -> str:
    """A proportion with its interval, ``"0.75 [0.30, 0.95]"`` (``"—"`` when missing)."""
    return "—" if math.isnan(float(p)) else f"{p:.2f} [{lo:.2f}, {hi:.2f}]"


def markdown_table(frame, digits: int = 3) -> str:
    """A pandas DataFrame as a GitHub markdown table."""
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bayesrca"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in bayesrca/" if dirty else "")


@contextlib.contextmanager
def quiet():
    """Silence warnings (DoWhy, sklearn) inside benchmark loops."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _dowhy_assigned(graph: nx.DiGraph, data, seed: int, quality: str):
    """A DoWhy ``InvertibleStructuralCausalModel`` with ``auto.assign_causal_mechanisms`` done (not fitted).

    A fresh copy of the graph is used: DoWhy writes the mechanisms into node attributes. Call
    inside :func:`quiet`.
    """
    from dowhy import gcm
    from dowhy.gcm.util.general import set_random_seed

    level = {"good": gcm.auto.AssignmentQuality.GOOD, "better": gcm.auto.AssignmentQuality.BETTER}[quality]
    gcm.config.disable_progress_bars()
    set_random_seed(seed)
    scm = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph.edges))
    scm.graph.add_nodes_from(graph.nodes)
    gcm.auto.assign_causal_mechanisms(scm, data, quality=level)
    return scm


def dowhy_fit(graph: nx.DiGraph, data, *, seed: int = 0, quality: str = "good"):
    """A fitted DoWhy ``InvertibleStructuralCausalModel`` with ``auto.assign_causal_mechanisms``."""
    from dowhy import gcm

    with quiet():
        scm = _dowhy_assigned(graph, data, seed, quality)
        gcm.fit(scm, data)
    return scm


def dowhy_attribute(scm, target, anomalies, *, seed: int = 0) -> dict:
    """DoWhy point contributions: node -> array over anomaly rows."""
    from dowhy import gcm
    from dowhy.gcm.util.general import set_random_seed

    with quiet():
        gcm.config.disable_progress_bars()
        set_random_seed(seed)
        return {k: np.asarray(v, dtype=float) for k, v in gcm.attribute_anomalies(scm, target, anomaly_samples=anomalies).items()}


def dowhy_bootstrap(graph: nx.DiGraph, data, target, anomalies, *, num_resamples: int = 10, seed: int = 0,
                    quality: str = "good") -> dict:
    """DoWhy bootstrap: node -> (median, lower, upper), arrays over anomaly rows.

    ``confidence_intervals(fit_and_compute(attribute_anomalies, ...))`` with its default 75 %
    subsamples; ``confidence_level=0.90`` gives the 5th-95th percentiles, the same nominal level as
    bayesrca's 90 % intervals. DoWhy's ``confidence_intervals`` handles one anomaly per call, so rows
    are bootstrapped one at a time (the mechanism assignment is done once).
    """
    from dowhy import gcm

    rows: dict = {}
    with quiet():
        scm = _dowhy_assigned(graph, data, seed, quality)  # once; fit_and_compute refits per resample
        for i in range(len(anomalies)):
            medians, intervals = gcm.confidence_intervals(
                gcm.fit_and_compute(
                    gcm.attribute_anomalies,
                    scm,
                    bootstrap_training_data=data,
                    target_node=target,
                    anomaly_samples=anomalies.iloc[i : i + 1],
                ),
                confidence_level=0.90,
                num_bootstrap_resamples=num_resamples,
            )
            for node, med in medians.items():
                lo, hi = (float(b) for b in np.asarray(intervals[node], dtype=float).ravel()[:2])
                rows.setdefault(node, []).append((float(np.ravel(med)[0]), lo, hi))
    return {node: tuple(np.array(col) for col in zip(*vals)) for node, vals in rows.items()}
