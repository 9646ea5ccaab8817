"""DoWhy's microservice-latency example (MIT licence, PyWhy contributors).

Synthetic latencies (seconds) of 11 services under normal operation, and one outlier at
``Website`` whose root cause is ``Caching Service`` (its intrinsic latency was shifted by +2 s).
A second anomalous set of 1000 rows (a persistent degradation, the same shift) comes with
:func:`load_microservice_degradation`. Data copied byte for byte from the DoWhy example notebook
``gcm_rca_microservice_architecture.ipynb``.
"""

from __future__ import annotations

from importlib import resources

import networkx as nx
import pandas as pd

__all__ = ["MICROSERVICE_EDGES", "load_microservice", "load_microservice_degradation"]

#: Causal edges ``cause -> effect``: the service-call graph with its arrows reversed.
MICROSERVICE_EDGES = (
    ("www", "Website"),
    ("Auth Service", "www"),
    ("API", "www"),
    ("Customer DB", "Auth Service"),
    ("Customer DB", "API"),
    ("Product Service", "API"),
    ("Auth Service", "API"),
    ("Order Service", "API"),
    ("Shipping Cost Service", "Product Service"),
    ("Caching Service", "Product Service"),
    ("Product DB", "Caching Service"),
    ("Customer DB", "Product Service"),
    ("Order DB", "Order Service"),
)


def load_microservice() -> tuple[nx.DiGraph, pd.DataFrame, pd.DataFrame]:
    """Load the microservice example.

    Returns
    -------
    graph : networkx.DiGraph
        The causal graph (13 edges, 11 nodes).
    normal : pandas.DataFrame
        10,000 rows of normal-operation latencies.
    anomaly : pandas.DataFrame
        The single outlier row (Website about 2 s slower than usual).
    """
    data = resources.files(__package__) / "data"
    with (data / "microservice_latencies.csv").open("rb") as fh:
        normal = pd.read_csv(fh)
    with (data / "microservice_anomaly.csv").open("rb") as fh:
        anomaly = pd.read_csv(fh)
    return nx.DiGraph(list(MICROSERVICE_EDGES)), normal, anomaly


def load_microservice_degradation() -> tuple[nx.DiGraph, pd.DataFrame, pd.DataFrame]:
    """Load the microservice example's persistent degradation (DoWhy's scenario 2).

    Returns
    -------
    graph : networkx.DiGraph
        The causal graph (13 edges, 11 nodes).
    normal : pandas.DataFrame
        10,000 rows of normal-operation latencies (as :func:`load_microservice`).
    degraded : pandas.DataFrame
        1,000 rows generated with Caching Service's intrinsic latency shifted by +2 s; the mean
        Website latency is up by about 1.9 s. The columns are in the order of ``normal``.
    """
    graph, normal, _ = load_microservice()
    with (resources.files(__package__) / "data" / "microservice_anomaly_1000.csv").open("rb") as fh:
        degraded = pd.read_csv(fh)
    return graph, normal, degraded[list(normal.columns)]
