"""Tests of bayesrca.graph: DAG validation, parent and topological orders, players and fingerprints."""

from __future__ import annotations

import networkx as nx
import pytest

from bayesrca.exceptions import BayesRCAError, GraphError
from bayesrca.graph import graph_fingerprint, parents_of, players_of, topological_order, validate_graph


def _diamond() -> nx.DiGraph:
    """A -> B, A -> C, B -> D, C -> D, plus an unrelated root E -> F."""
    return nx.DiGraph([("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("E", "F")])


# ---------------------------------------------------------------------------------------------
# validate_graph
# ---------------------------------------------------------------------------------------------
def test_validate_graph_returns_frozen_copy_with_same_structure():
    g = _diamond()
    out = validate_graph(g)
    assert out is not g
    assert nx.is_frozen(out)
    assert not nx.is_frozen(g)
    assert list(out.nodes) == list(g.nodes)
    assert set(out.edges) == set(g.edges)
    with pytest.raises(nx.NetworkXError):
        out.add_edge("D", "E")


def test_validate_graph_copy_does_not_follow_later_changes():
    g = _diamond()
    out = validate_graph(g)
    g.add_edge("D", "E")
    g.add_node("Z")
    assert not out.has_edge("D", "E")
    assert "Z" not in out


def test_validate_graph_drops_attributes_and_keeps_isolated_nodes():
    g = nx.DiGraph()
    g.add_node("lonely", color="red")
    g.add_edge("a", "b", weight=3.0)
    out = validate_graph(g)
    assert set(out.nodes) == {"lonely", "a", "b"}
    assert out.nodes["lonely"] == {}
    assert out.edges["a", "b"] == {}


def test_validate_graph_single_node():
    g = nx.DiGraph()
    g.add_node(0)
    assert list(validate_graph(g).nodes) == [0]


@pytest.mark.parametrize(
    "bad",
    [nx.Graph([("a", "b")]), nx.MultiDiGraph([("a", "b")]), [("a", "b")], {"a": ["b"]}, None, "a->b"],
    ids=["Graph", "MultiDiGraph", "list", "dict", "None", "str"],
)
def test_validate_graph_rejects_non_digraphs(bad):
    with pytest.raises(GraphError, match="must be a networkx.DiGraph") as info:
        validate_graph(bad)
    assert type(bad).__name__ in str(info.value)


def test_validate_graph_rejects_empty_graph():
    with pytest.raises(GraphError, match="no nodes"):
        validate_graph(nx.DiGraph())


def test_validate_graph_rejects_self_loop_naming_the_node():
    g = nx.DiGraph([("a", "b"), ("b", "b")])
    with pytest.raises(GraphError, match="self-loop") as info:
        validate_graph(g)
    assert "'b'" in str(info.value)


def test_validate_graph_rejects_cycle_and_shows_it():
    g = nx.DiGraph([("root", "x"), ("x", "y"), ("y", "z"), ("z", "x")])
    with pytest.raises(GraphError, match="cycle") as info:
        validate_graph(g)
    msg = str(info.value)
    for node in ("'x'", "'y'", "'z'"):
        assert node in msg
    assert "'root'" not in msg


def test_validate_graph_two_cycle():
    with pytest.raises(GraphError, match="cycle"):
        validate_graph(nx.DiGraph([("a", "b"), ("b", "a")]))


def test_graph_error_is_a_value_error_and_library_error():
    with pytest.raises(ValueError):
        validate_graph(nx.DiGraph())
    with pytest.raises(BayesRCAError):
        validate_graph(nx.DiGraph())


# ---------------------------------------------------------------------------------------------
# parents_of
# ---------------------------------------------------------------------------------------------
def test_parents_of_follows_node_order_not_edge_order():
    g = nx.DiGraph()
    g.add_nodes_from(["B", "A", "C"])
    g.add_edge("A", "C")  # A's edge is added first ...
    g.add_edge("B", "C")
    assert parents_of(g, "C") == ("B", "A")  # ... but B comes first in the node order
    assert parents_of(g, "A") == ()


def test_parents_of_diamond():
    g = _diamond()
    assert parents_of(g, "D") == ("B", "C")
    assert parents_of(g, "B") == ("A",)
    assert parents_of(g, "E") == ()
    assert isinstance(parents_of(g, "D"), tuple)


# ---------------------------------------------------------------------------------------------
# topological_order
# ---------------------------------------------------------------------------------------------
def _is_topological(graph: nx.DiGraph, order: list) -> bool:
    pos = {n: i for i, n in enumerate(order)}
    return all(pos[u] < pos[v] for u, v in graph.edges if u in pos and v in pos)


def test_topological_order_is_valid_and_complete():
    g = _diamond()
    order = topological_order(g)
    assert sorted(order) == sorted(g.nodes)
    assert _is_topological(g, order)


def test_topological_order_breaks_ties_by_node_order():
    g = nx.DiGraph()
    g.add_nodes_from(["z", "y", "x"])
    assert topological_order(g) == ["z", "y", "x"]
    g2 = nx.DiGraph()
    g2.add_nodes_from(["c", "a", "b"])
    g2.add_edge("b", "c")
    # a and b are free first; a comes before b in node order, c waits for b
    assert topological_order(g2) == ["a", "b", "c"]


def test_topological_order_depends_on_node_order_only_not_on_names():
    g1 = nx.DiGraph()
    g1.add_nodes_from(["r2", "r1", "leaf"])
    g1.add_edges_from([("r1", "leaf"), ("r2", "leaf")])
    g2 = nx.DiGraph()
    g2.add_nodes_from(["r1", "r2", "leaf"])
    g2.add_edges_from([("r2", "leaf"), ("r1", "leaf")])
    assert topological_order(g1) == ["r2", "r1", "leaf"]
    assert topological_order(g2) == ["r1", "r2", "leaf"]


def test_topological_order_of_a_subset():
    g = _diamond()
    full = topological_order(g)
    sub = topological_order(g, ["D", "A", "F"])
    assert sub == [n for n in full if n in {"D", "A", "F"}]
    assert sub.index("A") < sub.index("D")
    # input order does not matter
    assert topological_order(g, ["F", "A", "D"]) == sub
    assert topological_order(g, []) == []


def test_topological_order_chain_reversed_input():
    g = nx.DiGraph([(i, i + 1) for i in range(6)])
    assert topological_order(g, [5, 3, 1]) == [1, 3, 5]
    assert topological_order(g) == list(range(7))


# ---------------------------------------------------------------------------------------------
# players_of
# ---------------------------------------------------------------------------------------------
def test_players_of_are_ancestors_and_target_in_order():
    g = _diamond()
    players = players_of(g, "D")
    assert set(players) == {"A", "B", "C", "D"}
    assert players[-1] == "D"
    assert players[0] == "A"
    assert _is_topological(g, players)


def test_players_of_excludes_descendants_and_unrelated_nodes():
    g = _diamond()
    assert players_of(g, "B") == ["A", "B"]
    assert players_of(g, "A") == ["A"]
    assert players_of(g, "F") == ["E", "F"]


def test_players_of_unknown_target_raises_naming_it():
    with pytest.raises(GraphError, match="'Q'") as info:
        players_of(_diamond(), "Q")
    assert "choose one of" in str(info.value)


# ---------------------------------------------------------------------------------------------
# graph_fingerprint
# ---------------------------------------------------------------------------------------------
def test_fingerprint_is_hashable_and_stable():
    g = _diamond()
    fp = graph_fingerprint(g)
    hash(fp)
    assert graph_fingerprint(g) == fp
    assert graph_fingerprint(validate_graph(g)) == fp
    assert graph_fingerprint(g.copy()) == fp


def test_fingerprint_ignores_insertion_order_and_attributes():
    g1 = nx.DiGraph([("a", "b"), ("b", "c")])
    g2 = nx.DiGraph()
    g2.add_nodes_from(["c", "b", "a"], color="blue")
    g2.add_edge("b", "c", weight=2)
    g2.add_edge("a", "b")
    assert graph_fingerprint(g1) == graph_fingerprint(g2)


def test_fingerprint_changes_when_an_edge_changes():
    g = _diamond()
    fp = graph_fingerprint(g)
    added = g.copy()
    added.add_edge("A", "D")
    removed = g.copy()
    removed.remove_edge("B", "D")
    reversed_ = g.copy()
    reversed_.remove_edge("E", "F")
    reversed_.add_edge("F", "E")
    fps = {fp, graph_fingerprint(added), graph_fingerprint(removed), graph_fingerprint(reversed_)}
    assert len(fps) == 4


def test_fingerprint_changes_when_a_node_is_added_or_renamed():
    g = _diamond()
    fp = graph_fingerprint(g)
    more = g.copy()
    more.add_node("G")
    renamed = nx.relabel_nodes(g, {"F": "F2"})
    assert graph_fingerprint(more) != fp
    assert graph_fingerprint(renamed) != fp


def test_fingerprint_distinguishes_int_and_str_names():
    assert graph_fingerprint(nx.DiGraph([(1, 2)])) != graph_fingerprint(nx.DiGraph([("1", "2")]))


def test_fingerprint_mixed_name_types_do_not_break_sorting():
    g = nx.DiGraph([(1, "a"), (("t", 2), 1)])
    nodes, edges = graph_fingerprint(g)
    assert len(nodes) == 3 and len(edges) == 2


def test_check_known_nodes_names_the_unknown_ones_and_the_choices():
    from bayesrca.graph import check_known_nodes

    graph = nx.DiGraph([("a", "b")])
    check_known_nodes(graph, ["a", "b"], "nodes")  # all known: nothing raised
    with pytest.raises(GraphError, match=r"invariant_nodes names nodes \['z'\].*choose from \['a', 'b'\]"):
        check_known_nodes(graph, ["a", "z"], "invariant_nodes")
