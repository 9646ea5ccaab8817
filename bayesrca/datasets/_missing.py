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
    """Nodes to fill so that every node is observed with all its parents in at least ``minimum`` rows.

    In topological order, while a node and its parents are observed together in fewer than
    ``minimum`` rows, the one of them observed in the fewest rows is filled (then counts as
    observed everywhere); filling only adds rows, so nodes already checked stay fittable.
    """
    observed = normal.notna()
    sparse: list = []
    for node in nx.topological_sort(graph):
        if node not in observed.columns:
            continue
        columns = [node, *(p for p in graph.predecessors(node) if p in observed.columns)]
        while int(observed[columns].all(axis=1).sum()) < minimum:
            gaps = [c for c in columns if not observed[c].all()]
            if not gaps:
                break
            worst = min(gaps, key=lambda c: int(observed[c].sum()))
            sparse.append(worst)
            observed[worst] = True
    return sparse
