"""GraphEnsemble: candidate graphs and uncertain edges, shared fits, graph weights, averaged attribution."""

from __future__ import annotations


import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca import ensemble as ensemble_module
from bayesrca.ensemble import MAX_UNCERTAIN_EDGES, GraphEnsemble
from bayesrca.exceptions import ConfigError, GraphError, NotFittedError

TRUE = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])
MISSING = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d")])  # a -> c left out
ANOMALY = pd.DataFrame({"a": [3.5], "b": [3.0], "c": [9.0], "d": [9.5]})


def _data(n=300, seed=0, a_to_c=1.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(size=n)
    c = 2 * b + a_to_c * a + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": c + rng.normal(size=n)})


def test_the_weights_favour_the_true_graph():
    # d -> c instead of c -> d: a collider b -> c <- d the data contradict (b -> c <- a would be
    # Markov equivalent to TRUE, and a linear-Gaussian model cannot tell such graphs apart)
    wrong = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")])
    ens = GraphEnsemble([MISSING, TRUE, wrong], mechanisms="gaussian", num_draws=50).fit(_data(), seed=0)
    weights = ens.weights_.set_index("graph")["weight"]
    assert weights["g1"] > 0.95
    assert weights.sum() == pytest.approx(1.0)
    assert ens.weights_.loc[ens.weights_["graph"] == "g1", "elpd_diff"].item() == 0.0
    assert ens.best_model.graph_.edges == TRUE.edges


def test_an_uncertain_edge_goes_to_one_when_real_and_drops_when_absent():
    def posterior(a_to_c):
        ens = GraphEnsemble(edge_probs={("a", "c"): 0.5}, base_graph=MISSING, mechanisms="gaussian", num_draws=50)
        return ens.fit(_data(a_to_c=a_to_c), seed=1).edge_probs_.set_index("edge").loc["a->c"]

    real, absent = posterior(1.0), posterior(0.0)
    assert real["prior"] == 0.5 and real["posterior"] > 0.999
    assert absent["posterior"] < 0.75 and absent["posterior"] < real["posterior"] - 0.25


def test_one_candidate_gives_the_plain_model_and_attribution():
    data = _data()
    ens = GraphEnsemble([TRUE], mechanisms="gaussian", num_draws=40).fit(data, seed=7)
    scm = br.BayesianSCM(TRUE, mechanisms="gaussian", num_draws=40).fit(data, seed=7)
    mine = ens.attribute_anomalies("d", ANOMALY, seed=3)
    plain = br.attribute_anomalies(scm, "d", ANOMALY, seed=3)
    np.testing.assert_array_equal(mine.contributions, plain.contributions)
    np.testing.assert_array_equal(mine.it_scores, plain.it_scores)
    assert mine.nodes == plain.nodes
    assert mine.method_info["graph_weights"] == {"g0": 1.0}


def test_a_node_with_the_same_parents_is_fitted_once(monkeypatch):
    calls = []
    real = ensemble_module.fit_node

    def counting(node, *args, **kwargs):
        calls.append(node)
        return real(node, *args, **kwargs)

    monkeypatch.setattr(ensemble_module, "fit_node", counting)
    # 4 graphs; distinct (node, parents): a, b, c|b, c|a,b, d|c, d|b,c -> 6 fits
    ens = GraphEnsemble(edge_probs={("a", "c"): 0.5, ("b", "d"): 0.3}, base_graph=MISSING, mechanisms="gaussian",
                        num_draws=20).fit(_data(n=120), seed=0)
    assert len(ens.graphs_) == 4 and len(calls) == 6 == len(ens.mechanisms_)
    assert sorted(calls) == ["a", "b", "c", "c", "d", "d"]
    models = list(ens.models_.values())
    assert all(m.mechanisms_["a"] is models[0].mechanisms_["a"] for m in models)
    np.testing.assert_allclose(ens.weights_["prior"], [0.15, 0.35, 0.15, 0.35])


def test_the_averaged_attribution_stacks_each_graphs_draws():
    data = _data(a_to_c=0.15, n=150)  # a weak edge: both graphs keep weight
    ens = GraphEnsemble([TRUE, MISSING], mechanisms="gaussian", num_draws=60).fit(data, seed=2)
    res = ens.attribute_anomalies("d", ANOMALY, seed=4, min_weight=0.0)
    draws = res.method_info["graph_draws"]
    assert sum(draws.values()) == 60 == res.contributions.shape[0]
    assert sum(res.method_info["graph_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    # the draws of each graph are a subset of that graph's own attribution (the same seed)
    own = br.attribute_anomalies(ens.models_["g0"], "d", ANOMALY, seed=4)
    first = _block(res, "g0")
    rows = {tuple(np.round(r, 10)) for r in own.contributions[:, 0, :]}
    assert all(tuple(np.round(r, 10)) in rows for r in first[:, 0, :])
    # efficiency holds draw by draw whatever the graph
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


def _block(res, label):
    """The draws one graph supplied (stacked in the order of method_info["graph_draws"])."""
    draws = res.method_info["graph_draws"]
    start = sum(draws[k] for k in list(draws)[: list(draws).index(label)])
    return res.contributions[start : start + draws[label]]


def test_a_node_outside_a_graphs_players_contributes_zero_there():
    rng = np.random.default_rng(5)
    a = rng.normal(size=100)
    b = 0.1 * a + rng.normal(size=100)  # a weak edge a -> b: both graphs keep weight
    c = 2 * b + rng.normal(size=100)
    data = pd.DataFrame({"a": a, "b": b, "c": c, "d": c + rng.normal(size=100)})
    with_a = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d")])
    without_a = nx.DiGraph([("b", "c"), ("c", "d")])
    without_a.add_node("a")
    ens = GraphEnsemble([with_a, without_a], mechanisms="gaussian", num_draws=40).fit(data, seed=0)
    assert ens.weights_["weight"].min() > 0.1
    res = ens.attribute_anomalies("d", ANOMALY, seed=0, min_weight=0.0)
    assert set(res.method_info["graph_draws"]) == {"g0", "g1"} and set(res.nodes) == {"a", "b", "c", "d"}
    assert np.all(_block(res, "g1")[:, :, res.nodes.index("a")] == 0.0)
    assert np.all(_block(res, "g0")[:, :, res.nodes.index("a")] != 0.0)
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


def test_cyclic_graphs_are_refused_or_dropped():
    cyclic = nx.DiGraph([("a", "b"), ("b", "a"), ("c", "d"), ("a", "c")])
    with pytest.raises(GraphError, match="cycle"):
        GraphEnsemble([TRUE, cyclic]).fit(_data(n=50))
    ens = GraphEnsemble(edge_probs={("d", "a"): 0.5, ("a", "c"): 0.5}, base_graph=MISSING, mechanisms="gaussian",
                        num_draws=20).fit(_data(n=100), seed=0)
    assert len(ens.graphs_) == 2  # every graph with d -> a has a cycle
    assert ens.edge_probs_.set_index("edge").loc["d->a", "prior"] == 0.0
    assert ens.weights_["prior"].sum() == pytest.approx(1.0)


def test_bad_configurations_are_refused():
    data = _data(n=50)
    many = {(f"x{i}", "a"): 0.5 for i in range(MAX_UNCERTAIN_EDGES + 1)}
    big = nx.DiGraph([(f"x{i}", "a") for i in range(MAX_UNCERTAIN_EDGES + 1)])
    with pytest.raises(ConfigError, match="candidates"):
        GraphEnsemble(edge_probs=many, base_graph=big).fit(data)
    with pytest.raises(ConfigError, match="either"):
        GraphEnsemble().fit(data)
    with pytest.raises(ConfigError, match="either"):
        GraphEnsemble([TRUE], edge_probs={("a", "c"): 0.5}).fit(data)
    with pytest.raises(ConfigError, match="base_graph"):
        GraphEnsemble(edge_probs={("a", "c"): 0.5}).fit(data)
    with pytest.raises(ConfigError, match="0 < p < 1"):
        GraphEnsemble(edge_probs={("a", "c"): 1.0}, base_graph=MISSING).fit(data)
    with pytest.raises(ConfigError, match="pair"):
        GraphEnsemble(edge_probs={("a", "zz"): 0.5}, base_graph=MISSING).fit(data)
    with pytest.raises(ConfigError, match="prior"):
        GraphEnsemble([TRUE, MISSING], prior=[1.0]).fit(data)
    with pytest.raises(GraphError, match="same nodes"):
        GraphEnsemble([TRUE, nx.DiGraph([("a", "b")])]).fit(data)
    with pytest.raises(NotFittedError):
        GraphEnsemble([TRUE]).attribute_anomalies("d", ANOMALY)
    assert "not fitted" in repr(GraphEnsemble([TRUE]))
    with pytest.raises(ConfigError, match="no parameter"):
        GraphEnsemble([TRUE]).set_params(graph=TRUE)
    ens = GraphEnsemble([TRUE]).set_params(num_draws=7)
    assert ens.get_params()["num_draws"] == 7 and set(ens.get_params()) >= {"candidates", "edge_probs", "mechanisms"}
