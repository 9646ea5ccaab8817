"""Causal graph validation and the structural helpers the rest of the package uses."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx

from .exceptions import GraphError

__all__ = ["validate_graph", "players_of", "graph_fingerprint", "parents_of"]


def validate_graph(graph: object) -> nx.DiGraph:
    """Check that ``graph`` is a usable causal DAG and return a frozen copy.

    Parameters
    ----------
    graph : networkx.DiGraph
        Directed graph whose node names are the data frame's columns; an edge ``a -> b``
        means ``a`` causes ``b``.

    Returns
    -------
    networkx.DiGraph
        A frozen copy, so later changes to the caller's graph cannot leak into a fitted model.

    Raises
    ------
    GraphError
        If the graph is not a ``DiGraph``, is empty, has a self-loop or a cycle.
    """
    if isinstance(graph, nx.MultiDiGraph) or not isinstance(graph, nx.DiGraph):
        raise GraphError(
            f"the causal graph must be a networkx.DiGraph, got {type(graph).__name__}; "
            "build one with networkx.DiGraph([(cause, effect), ...])"
        )
    if graph.number_of_nodes() == 0:
        raise GraphError("the causal graph has no nodes; add one node per data column")
    loops = list(nx.selfloop_edges(graph))
    if loops:
        node = loops[0][0]
        raise GraphError(f"node {node!r} has a self-loop ({node!r} -> {node!r}); remove that edge")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        path = " -> ".join(repr(u) for u, _ in cycle) + f" -> {cycle[0][0]!r}"
        raise GraphError(f"the causal graph has a cycle: {path}; a causal graph must be acyclic")
    frozen = nx.DiGraph()
    frozen.add_nodes_from(graph.nodes)
    frozen.add_edges_from(graph.edges)
    return nx.freeze(frozen)


def parents_of(graph: nx.DiGraph, node: Hashable) -> tuple[Hashable, ...]:
    """Parents of ``node`` in a deterministic order (the order of ``graph.nodes``)."""
    preds = set(graph.predecessors(node))
    return tuple(n for n in graph.nodes if n in preds)


def topological_order(graph: nx.DiGraph, nodes: Sequence[Hashable] | None = None) -> list[Hashable]:
    """A deterministic topological order of ``graph`` (ties broken by node order), restricted to ``nodes``."""
    position = {n: i for i, n in enumerate(graph.nodes)}
    order = list(nx.lexicographical_topological_sort(graph, key=lambda n: position[n]))
    if nodes is None:
        return order
    keep = set(nodes)
    return [n for n in order if n in keep]


def check_known_nodes(graph: nx.DiGraph, nodes: Sequence[Hashable], what: str) -> None:
    """Raise a :class:`GraphError` naming the entries of ``nodes`` (an argument called ``what``)
    that are not nodes of ``graph``, and the nodes to choose from."""
    unknown = [n for n in nodes if n not in graph]
    if unknown:
        raise GraphError(
            f"{what} names nodes {unknown!r} that are not in the causal graph; choose from {sorted(map(str, graph.nodes))}"
        )


def players_of(graph: nx.DiGraph, target: Hashable) -> list[Hashable]:
    """The target's ancestors and the target itself, in topological order.

    Raises
    ------
    GraphError
        If ``target`` is not a node of the graph.
    """
    if target not in graph:
        raise GraphError(
            f"target node {target!r} is not in the causal graph; choose one of {sorted(map(str, graph.nodes))}"
        )
    return topological_order(graph, nx.ancestors(graph, target) | {target})


def graph_fingerprint(graph: nx.DiGraph) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """A hashable summary (nodes, edges) used to detect a graph changed after ``fit``."""
    return (
        tuple(sorted(repr(n) for n in graph.nodes)),
        tuple(sorted((repr(u), repr(v)) for u, v in graph.edges)),
    )
