"""What the loaders keep missing: a column is left with NaN only where its mechanism can still be fitted."""

from __future__ import annotations

import networkx as nx
import pandas as pd

__all__ = ["MIN_OBSERVED_ROWS", "too_sparse"]

#: Under ``nan_policy="missing"`` a node keeps its NaNs only if at least this many normal rows
#: observe it together with its parents; a sparser node is filled (it could not be fitted, or
#: only on a handful of rows).
MIN_OBSERVED_ROWS = 20


def too_sparse(normal: pd.DataFrame, graph: nx.DiGraph, minimum: int = MIN_OBSERVED_ROWS) -> list:
    """Nodes observed with all their parents in fewer than ``minimum`` rows, parents first.

    A node found too sparse counts as filled (observed everywhere) for its children.
    """
    observed = normal.notna()
    sparse = []
    for node in nx.topological_sort(graph):
        if node not in observed.columns:
            continue
        parents = [p for p in graph.predecessors(node) if p in observed.columns]
        if int(observed[[node, *parents]].all(axis=1).sum()) < minimum:
            sparse.append(node)
            observed[node] = True
    return sparse
