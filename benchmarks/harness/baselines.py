"""Graph- and score-based root-cause baselines that the real-data benchmarks share, and their scoring.

Every ranking is a DataFrame with columns ``node, median, lower, upper, prob_top`` (``median`` is
the method's score; the other columns are NaN for methods without posteriors), so one
:func:`topk_credit` scores bayesrca, DoWhy and these baselines alike.

* :func:`mad_scorer`: PetShop's MAD anomaly score (upstream's conventions);
* :func:`robust_z_scorer`: |robust z| (``bayesrca.datasets.robust_z``) with a threshold;
* :func:`quantile_it_scorer`: the two-sided empirical quantile IT score (DoWhy's
  ``RescaledMedianCDFQuantileScorer``), the score of the smooth traversal;
* :func:`score_ordering`, :func:`anomaly_traversal`, :func:`smooth_traversal`: the rankings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import networkx as nx
import numpy as np
import pandas as pd

#: A scorer maps one row (node -> value) to (score per node, anomalous flag per node).
Scorer = Callable[[pd.Series], "tuple[pd.Series, pd.Series]"]
COLUMNS = ["node", "median", "lower", "upper", "prob_top"]


def candidates(graph: nx.DiGraph, target) -> list:
    """The target's ancestors (sorted) and the target: who may be a root cause."""
    return sorted(nx.ancestors(graph, target)) + [target]


def ranking(scores: Iterable[tuple[object, float]]) -> pd.DataFrame:
    """A ranking table from (node, score) pairs, highest score first (stable for ties)."""
    table = pd.DataFrame(list(scores), columns=["node", "median"])
    table["median"] = table["median"].astype(float)
    table = table.sort_values("median", ascending=False, kind="stable").reset_index(drop=True)
    return table.assign(lower=np.nan, upper=np.nan, prob_top=np.nan)[COLUMNS]


def topk_credit(table: pd.DataFrame, column: str, truth, k: int) -> float:
    """Top-k recall credit of one ranking, ties counted fractionally.

    When m nodes tie with the true cause and g nodes score higher, the credit is
    ``clip((k - g) / m, 0, 1)``; a true cause that is not ranked (or scores NaN) gets 0.
    """
    scores = table.set_index("node")[column].astype(float)
    if truth not in scores.index or np.isnan(scores[truth]):
        return 0.0
    greater = int((scores > scores[truth]).sum())
    equal = int((scores == scores[truth]).sum())
    return float(np.clip((k - greater) / equal, 0.0, 1.0))


def mad_scorer(normal: pd.DataFrame, threshold: float = 5.0) -> Scorer:
    """MAD anomaly score per node, fitted on the observed (not filled) normal values, as PetShop's upstream.

    The score is ``|x - median| / MAD`` (no consistency constant). A column whose MAD is 0 scores
    infinity on any deviation from its median (DoWhy's ``MedianDeviationScorer``); a column that is
    constant scores its absolute deviation from the mean and is anomalous when that is > 0
    (upstream's fallback). A missing value scores 0 and is never anomalous.
    """
    median, mean, std = normal.median(), normal.mean(), normal.std(ddof=0)
    mad = (normal - median).abs().median()

    def score(row: pd.Series) -> tuple[pd.Series, pd.Series]:
        dev = (row - median).abs()
        value = (dev / mad.where(mad > 0)).where(mad > 0, np.where(dev > 0, np.inf, 0.0))
        value = value.where(std > 0, (row - mean).abs())
        flag = (value > threshold).where(std > 0, value > 0) & row.notna()
        return value.fillna(0.0), flag.astype(bool)

    return score


def robust_z_scorer(normal: pd.DataFrame, threshold: float = 5.0) -> Scorer:
    """``|robust z|`` against the observed normal values (``bayesrca.datasets.robust_z``), anomalous above ``threshold``.

    ``normal`` holds NaN where nothing was observed; a missing value in the scored row scores 0.
    """
    from bayesrca.datasets import robust_z

    def score(row: pd.Series) -> tuple[pd.Series, pd.Series]:
        z = robust_z(row.to_frame().T, normal).iloc[0].abs().fillna(0.0)
        return z, z > threshold

    return score


def quantile_it_scorer(normal: pd.DataFrame) -> Scorer:
    """Two-sided empirical quantile IT score, fitted per node on the observed normal values.

    ``-log(2 * min(P(X < x) + P(X = x) / 2, P(X > x) + P(X = x) / 2))`` with ``x`` counted among
    the samples (DoWhy's ``RescaledMedianCDFQuantileScorer``, the default scorer of the smooth
    traversal's reference code); at most ``log(n + 1)`` for ``n`` observed values. A missing value
    scores 0. The flag is always False (the method needs no threshold).
    """
    samples = {c: np.sort(normal[c].dropna().to_numpy(dtype=float)) for c in normal.columns}

    def score(row: pd.Series) -> tuple[pd.Series, pd.Series]:
        out = {}
        for node, x in row.items():
            ref = samples[node]
            if np.isnan(x):
                out[node] = 0.0
                continue
            below = np.searchsorted(ref, x, side="left")
            above = len(ref) - np.searchsorted(ref, x, side="right")
            equal = len(ref) - below - above + 1
            tail = 2 * min(below + equal / 2, above + equal / 2) / (len(ref) + 1)
            out[node] = float(-np.log(max(tail, np.finfo(float).eps)))
        scores = pd.Series(out, dtype=float)
        return scores, pd.Series(False, index=scores.index)

    return score


def score_ordering(scorer: Scorer, window: pd.DataFrame, nodes: list) -> pd.DataFrame:
    """Rank ``nodes`` by their own largest score over the rows of ``window``."""
    per_row = pd.DataFrame([scorer(window.iloc[i])[0] for i in range(len(window))])
    best = per_row.max()
    return ranking((n, float(best[n])) for n in nodes)


def anomaly_traversal(graph: nx.DiGraph, target, scores: pd.Series, anomalous: pd.Series) -> pd.DataFrame:
    """PetShop's anomaly traversal on one row's scores.

    Anomalous nodes without anomalous parents are root-cause candidates; a candidate is kept when a
    path of anomalous nodes leads from it to the target, and scored by the largest sum of anomaly
    scores along such a path. Nothing is ranked when the target is not anomalous.
    """
    rows = []
    if anomalous[target]:
        sub = graph.subgraph([n for n in graph if anomalous[n]])
        best = {target: float(scores[target])}  # largest score sum of an anomalous path to the target
        for node in reversed(list(nx.topological_sort(sub))):
            reach = [best[c] for c in sub.successors(node) if c in best]
            if node != target and reach:
                best[node] = float(scores[node]) + max(reach)
        for node, value in best.items():
            if not any(True for _ in sub.predecessors(node)):
                rows.append((node, value))
    return ranking(rows)


def smooth_traversal(graph: nx.DiGraph, target, scores: pd.Series) -> pd.DataFrame:
    """Smooth traversal (Orchard, Okati, Garrido Mejia, Blöbaum, Janzing, NeurIPS 2025, Algorithm 1).

    Each candidate (the target and its ancestors) gets its *score gap*: a root node its own
    anomaly score, any other node ``max(0, min over parents (score(node) - score(parent)))``; nodes
    are ranked by the gap. No threshold: a node is a likely root cause when it is much more
    anomalous than every parent. The paper's guarantees assume IT scores (:func:`quantile_it_scorer`)
    and a polytree.
    """
    nodes = candidates(graph, target)
    gaps = []
    for node in nodes:
        parents = list(graph.predecessors(node))
        if not parents:
            gaps.append((node, float(scores[node])))
        else:
            gaps.append((node, max(0.0, min(float(scores[node]) - float(scores[p]) for p in parents))))
    return ranking(gaps)
