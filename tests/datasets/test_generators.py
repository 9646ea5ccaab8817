"""The shipped example data sets load with the documented shapes, graphs and types."""

from __future__ import annotations

import networkx as nx
import numpy as np

from bayesrca.datasets import (
    MICROSERVICE_EDGES,
    ONLINE_SHOP_EDGES,
    load_microservice,
    load_online_shop,
    load_online_shop_first_quarter,
)


def test_microservice():
    graph, normal, anomaly = load_microservice()
    assert set(graph.edges) == set(MICROSERVICE_EDGES) and nx.is_directed_acyclic_graph(graph)
    assert normal.shape == (10_000, 11) and anomaly.shape == (1, 11)
    assert set(normal.columns) == set(graph.nodes)


def test_online_shop():
    graph, normal, first_day = load_online_shop()
    quarter = load_online_shop_first_quarter()
    assert set(graph.edges) == set(ONLINE_SHOP_EDGES) and len(ONLINE_SHOP_EDGES) == 13
    assert normal.shape == (365, 8) and first_day.shape == (1, 8) and quarter.shape == (90, 8)
    for frame in (normal, first_day, quarter):
        assert set(frame.columns) == set(graph.nodes)
        assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert set(np.unique(normal["Shopping Event?"])) == {0.0, 1.0}  # the boolean root as 0/1
    assert int(normal["Shopping Event?"].sum()) == 15
    assert (normal["Page Views"] == np.round(normal["Page Views"])).all()  # integer counts kept exact


def test_supply_chain_and_microservice_degradation():
    from bayesrca.datasets import (
        SUPPLY_CHAIN_CHANGED,
        load_microservice_degradation,
        load_supply_chain,
    )

    graph, week1, week2 = load_supply_chain()
    assert week1.shape == week2.shape == (1000, 5) and set(week1.columns) == set(graph.nodes)
    assert set(SUPPLY_CHAIN_CHANGED) <= set(graph.nodes)
    assert 6.0 < week2["received"].mean() - week1["received"].mean() < 6.4
    graph, normal, degraded = load_microservice_degradation()
    assert normal.shape == (10_000, 11) and degraded.shape == (1000, 11)
    assert list(degraded.columns) == list(normal.columns)
    assert 1.8 < degraded["Website"].mean() - normal["Website"].mean() < 2.1
