"""DoWhy's supply-chain week-over-week example (MIT licence, PyWhy contributors).

Synthetic order quantities of 1000 products in two weeks (``w1``, ``w2``). Per DoWhy's notebook
``gcm_supply_chain_dist_change.ipynb`` the data come from linear additive-noise models with Gamma
noise, and between the weeks exactly two mechanisms changed: **demand** (its mean 2 -> 4) and
**confirmed** (its coefficient on ``submitted`` 1 -> 2). The mean of ``received`` rises by about 6.2.
Data copied byte for byte from that notebook (``supply_chain_week_over_week.csv``).
"""

from __future__ import annotations

from importlib import resources

import networkx as nx
import pandas as pd

__all__ = ["SUPPLY_CHAIN_CHANGED", "SUPPLY_CHAIN_EDGES", "load_supply_chain"]

#: Causal edges ``cause -> effect`` of the notebook's graph (5 nodes, 4 edges).
SUPPLY_CHAIN_EDGES = (
    ("demand", "submitted"),
    ("constraint", "submitted"),
    ("submitted", "confirmed"),
    ("confirmed", "received"),
)
#: Nodes whose mechanism changed between the weeks (ground truth of the notebook's appendix).
SUPPLY_CHAIN_CHANGED = ("demand", "confirmed")


def load_supply_chain() -> tuple[nx.DiGraph, pd.DataFrame, pd.DataFrame]:
    """Load the supply-chain example.

    Returns
    -------
    graph : networkx.DiGraph
        The causal graph ``demand, constraint -> submitted -> confirmed -> received``.
    week1, week2 : pandas.DataFrame
        1000 rows each, one float64 column per graph node (the product id and the week label
        of the CSV are dropped; the rows of a week keep their order in the file).
    """
    with (resources.files(__package__) / "data" / "supply_chain_week_over_week.csv").open("rb") as fh:
        frame = pd.read_csv(fh)
    graph = nx.DiGraph(list(SUPPLY_CHAIN_EDGES))
    nodes = ["demand", "constraint", "submitted", "confirmed", "received"]
    weeks = [frame.loc[frame["week"] == w, nodes].astype("float64").reset_index(drop=True) for w in ("w1", "w2")]
    return graph, weeks[0], weeks[1]
