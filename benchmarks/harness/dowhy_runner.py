"""The DoWhy baseline of the benchmarks: fits, attributions, bootstraps, change and influence.

DoWhy is a benchmark extra only (``pip install -e ".[bench]"``): every function imports it.
Each call builds its ``InvertibleStructuralCausalModel`` on a fresh copy of the graph, because
DoWhy writes the assigned mechanisms into node attributes it shares with the graph it was given.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
import pandas as pd

from .logs import quiet

QUALITIES = ("good", "better")


def assigned(graph: nx.DiGraph, data: pd.DataFrame, *, seed: int = 0, quality: str = "good"):
    """A DoWhy ``InvertibleStructuralCausalModel`` with ``auto.assign_causal_mechanisms`` done (not fitted).

    Sets DoWhy's global seed first. Call inside :func:`harness.logs.quiet`.
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


def fit(graph: nx.DiGraph, data: pd.DataFrame, *, seed: int = 0, quality: str = "good"):
    """A fitted DoWhy ``InvertibleStructuralCausalModel`` (auto assignment of quality ``quality``)."""
    from dowhy import gcm

    with quiet():
        scm = assigned(graph, data, seed=seed, quality=quality)
        gcm.fit(scm, data)
    return scm


def attribute(scm, target, anomalies: pd.DataFrame, *, seed: int | None = 0) -> dict:
    """DoWhy point contributions: node -> array over anomaly rows.

    ``seed=None`` keeps DoWhy's random state as the fit left it.
    """
    from dowhy import gcm
    from dowhy.gcm.util.general import set_random_seed

    with quiet():
        gcm.config.disable_progress_bars()
        if seed is not None:
            set_random_seed(seed)
        contributions = gcm.attribute_anomalies(scm, target, anomaly_samples=anomalies)
    return {k: np.asarray(v, dtype=float) for k, v in contributions.items()}


def ranked(contributions: dict, players: list, rows: int) -> list[list]:
    """Per anomaly row, the players by decreasing contribution (ties keep the order of ``players``)."""
    nodes = [n for n in players if n in contributions]
    return [sorted(nodes, key=lambda n: -contributions[n][k]) for k in range(rows)]


def bootstrap(graph: nx.DiGraph, data: pd.DataFrame, target, anomalies: pd.DataFrame, *, num_resamples: int = 10,
              seed: int = 0, quality: str = "good", confidence_level: float = 0.90,
              on_attribution: Callable[[float], None] | None = None) -> dict:
    """DoWhy bootstrap: node -> (median, lower, upper), arrays over anomaly rows.

    ``confidence_intervals(fit_and_compute(attribute_anomalies, ...))`` with its default 75 %
    subsamples; ``confidence_level=0.90`` gives the 5th-95th percentiles, the nominal level of
    bayesrca's 90 % intervals. DoWhy's ``confidence_intervals`` handles one anomaly per call, so rows
    are bootstrapped one at a time (the mechanism assignment is done once).

    Parameters
    ----------
    on_attribution : callable, optional
        Called with the seconds of every ``attribute_anomalies`` call (the rest is refitting).
    """
    import time

    from dowhy import gcm

    def attribution(*args, **kwargs):
        start = time.perf_counter()
        try:
            return gcm.attribute_anomalies(*args, **kwargs)
        finally:
            if on_attribution is not None:
                on_attribution(time.perf_counter() - start)

    rows: dict = {}
    with quiet():
        scm = assigned(graph, data, seed=seed, quality=quality)  # once; fit_and_compute refits per resample
        for i in range(len(anomalies)):
            medians, intervals = gcm.confidence_intervals(
                gcm.fit_and_compute(attribution, scm, bootstrap_training_data=data, target_node=target,
                                    anomaly_samples=anomalies.iloc[i : i + 1]),
                confidence_level=confidence_level,
                num_bootstrap_resamples=num_resamples,
            )
            for node, med in medians.items():
                lo, hi = (float(b) for b in np.asarray(intervals[node], dtype=float).ravel()[:2])
                rows.setdefault(node, []).append((float(np.ravel(med)[0]), lo, hi))
    return {node: tuple(np.array(col) for col in zip(*vals)) for node, vals in rows.items()}


def _with_intervals(point: dict, intervals: dict | None) -> dict:
    """node -> (point, lower, upper); NaN bounds without intervals."""
    if intervals is None:
        return {n: (float(v), np.nan, np.nan) for n, v in point.items()}
    return {n: (float(v), *map(float, np.ravel(intervals[n])[:2])) for n, v in point.items()}


def mean_difference(a, b) -> float:
    """Change of the mean, DoWhy's ``difference_estimation_func`` of the benchmarks."""
    return float(np.mean(b) - np.mean(a))


def distribution_change(graph: nx.DiGraph, old: pd.DataFrame, new: pd.DataFrame, target, *, resamples: int,
                        seed: int) -> dict:
    """``gcm.distribution_change`` of the target's mean: node -> (point, lower, upper).

    Mechanisms are assigned on the old data; intervals (``confidence_level=0.9``) come from
    ``resamples`` runs on random 60 % subsamples of both periods (DoWhy's notebook), none when 0.
    """
    from dowhy import gcm

    with quiet():
        scm = assigned(graph, old, seed=seed)
        point = gcm.distribution_change(scm, old, new, target, difference_estimation_func=mean_difference)
        if not resamples:
            return _with_intervals(point, None)
        _, intervals = gcm.confidence_intervals(
            lambda: gcm.distribution_change(scm, old.sample(frac=0.6), new.sample(frac=0.6), target,
                                            difference_estimation_func=mean_difference),
            confidence_level=0.9, num_bootstrap_resamples=resamples)
    return _with_intervals(point, intervals)


def intrinsic_causal_influence(graph: nx.DiGraph, data: pd.DataFrame, target, *, resamples: int, seed: int) -> dict:
    """``gcm.intrinsic_causal_influence(prediction_model="exact")``: node -> (point, lower, upper).

    Intervals (``confidence_level=0.9``) from ``fit_and_compute`` resamples (75 % subsamples),
    none when ``resamples`` is 0.
    """
    from dowhy import gcm

    scm = fit(graph, data, seed=seed)
    with quiet():
        point = gcm.intrinsic_causal_influence(scm, target, prediction_model="exact")
        if not resamples:
            return _with_intervals(point, None)
        _, intervals = gcm.confidence_intervals(
            gcm.fit_and_compute(gcm.intrinsic_causal_influence, scm, bootstrap_training_data=data, target_node=target,
                                prediction_model="exact"),
            confidence_level=0.9, num_bootstrap_resamples=resamples)
    return _with_intervals(point, intervals)
