"""Reliability: determinism, global state left alone, scale invariance, degenerate data, invariants."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pyro
import pytest
import torch

import bayesrca as br


def _chain(seed=0, n=400, scale=1.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n)
    b = 0.8 * a + rng.normal(0, 0.5, n)
    c = b - 0.3 * a + rng.normal(0, 0.5, n)
    frame = pd.DataFrame({"a": a, "b": b, "c": c}) * scale
    return nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")]), frame


ANOMALY = pd.DataFrame({"a": [0.2], "b": [3.5], "c": [3.9]})


@pytest.mark.parametrize("mechanisms", ["gaussian", "linear"])
def test_same_seed_same_numbers_and_global_state_untouched(mechanisms):
    graph, frame = _chain()
    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    pyro.get_param_store().clear()
    pyro.param("user_param", torch.tensor(1.5))
    runs = []
    for _ in range(2):
        scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=40).fit(frame, seed=5)
        runs.append(br.attribute_anomalies(scm, "c", ANOMALY, seed=9, num_mc_samples=500).contributions)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert torch.equal(torch.get_rng_state(), before)  # torch's global generator was not advanced
    assert list(pyro.get_param_store().keys()) == ["user_param"]
    assert float(pyro.param("user_param").detach()) == 1.5
    pyro.get_param_store().clear()


@pytest.mark.parametrize("scale", [1e-9, 3600.0])
def test_units_do_not_change_the_answer(scale):
    """Latencies in nanoseconds or in hours: IT scores and contributions are unit-free."""
    graph, frame = _chain()
    ref = br.attribute_anomalies(br.BayesianSCM(graph, mechanisms="gaussian", num_draws=40).fit(frame, seed=1), "c", ANOMALY, seed=2)
    scaled_graph, scaled = _chain(scale=scale)
    res = br.attribute_anomalies(
        br.BayesianSCM(scaled_graph, mechanisms="gaussian", num_draws=40).fit(scaled, seed=1), "c", ANOMALY * scale, seed=2
    )
    assert np.all(np.isfinite(res.contributions))
    np.testing.assert_allclose(res.contributions, ref.contributions, rtol=1e-3, atol=1e-3)


def test_near_deterministic_and_collinear_mechanisms_give_finite_results():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 300)
    frame = pd.DataFrame({"a": a, "a2": 2.0 * a, "b": a + 1e-9 * rng.normal(size=300)})  # a2 = 2a exactly
    frame["c"] = frame["b"] + frame["a2"] + rng.normal(0, 0.1, 300)
    graph = nx.DiGraph([("a", "a2"), ("a", "b"), ("a2", "c"), ("b", "c"), ("a", "c")])
    for mechanisms in ("gaussian", "linear"):
        scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=30).fit(frame, seed=0)
        res = br.attribute_anomalies(scm, "c", pd.DataFrame({"a": [1.0], "a2": [2.0], "b": [1.0], "c": [6.0]}), seed=0)
        assert np.all(np.isfinite(res.contributions)) and np.all(np.isfinite(res.it_scores)), mechanisms
        np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, rtol=1e-3, atol=1e-3)


def test_relabelling_nodes_permutes_the_results():
    graph, frame = _chain()
    names = {"a": "zeta", "b": "alpha", "c": "mid"}
    res = br.attribute_anomalies(br.BayesianSCM(graph, mechanisms="gaussian", num_draws=40).fit(frame, seed=1), "c", ANOMALY, seed=2)
    renamed = br.attribute_anomalies(
        br.BayesianSCM(nx.relabel_nodes(graph, names), mechanisms="gaussian", num_draws=40).fit(frame.rename(columns=names), seed=1),
        "mid", ANOMALY.rename(columns=names), seed=2,
    )
    left = res.summary().set_index("node")[["median", "lower", "upper", "prob_top"]].rename(index=names).sort_index()
    right = renamed.summary().set_index("node")[["median", "lower", "upper", "prob_top"]].sort_index()
    pd.testing.assert_frame_equal(left, right, rtol=1e-3, atol=1e-3)


def test_an_unrelated_node_changes_nothing():
    graph, frame = _chain()
    res = br.attribute_anomalies(br.BayesianSCM(graph, mechanisms="gaussian", num_draws=40).fit(frame, seed=1), "c", ANOMALY, seed=2)
    bigger = nx.DiGraph(graph)
    bigger.add_edge("c", "downstream")  # not an ancestor of the target: not a player
    bigger.add_node("elsewhere")
    rng = np.random.default_rng(7)
    more = frame.assign(downstream=frame["c"] + rng.normal(size=len(frame)), elsewhere=rng.normal(size=len(frame)))
    out = br.attribute_anomalies(
        br.BayesianSCM(bigger, mechanisms="gaussian", num_draws=40).fit(more, seed=1), "c",
        ANOMALY.assign(downstream=[0.0], elsewhere=[0.0]), seed=2,
    )
    assert set(out.nodes) == {"a", "b", "c"}
    np.testing.assert_allclose(out.it_scores, res.it_scores, rtol=1e-6)
    np.testing.assert_allclose(out.contributions, res.contributions, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Degenerate graphs and extreme inputs (issue 7). Validation errors naming the offending node,
# column or value are tested in test_validation.py (single training row, unicode and spaces in
# names, graph changed after fit, unfitted model, ci_prob, num_draws) and test_cli.py.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mechanisms", ["gaussian", "linear"])
def test_anomalies_far_outside_the_training_range_give_finite_results(mechanisms):
    graph, frame = _chain()
    scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=20).fit(frame, seed=0)
    far = pd.DataFrame({"a": [0.0, 1e6, -1e8], "b": [1e4, 0.0, 1e8], "c": [1e5, -1e7, 1e8]})
    res = br.attribute_anomalies(scm, "c", far, seed=0, num_mc_samples=300)
    assert np.all(np.isfinite(res.contributions)) and np.all(np.isfinite(res.it_scores))
    assert np.all(res.it_scores > 4)  # the target is far in the tail in every row: a large, finite score
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mechanisms", ["gaussian", "linear"])
def test_one_node_graph(mechanisms):
    graph = nx.DiGraph()
    graph.add_node("only")
    frame = pd.DataFrame({"only": np.random.default_rng(0).normal(size=200)})
    scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=20).fit(frame, seed=0)
    res = br.attribute_anomalies(scm, "only", pd.DataFrame({"only": [4.0, 0.0]}), seed=0, num_mc_samples=300)
    assert res.nodes == ("only",)
    np.testing.assert_allclose(res.contributions[..., 0], res.it_scores, atol=1e-9)  # the only player takes it all
    assert np.median(res.it_scores[:, 0]) > np.median(res.it_scores[:, 1])


def test_disconnected_graph_attributes_within_the_target_component():
    graph, frame = _chain()
    graph = nx.DiGraph(graph)
    graph.add_edge("x", "y")  # a second component
    graph.add_node("alone")  # and an isolated node
    rng = np.random.default_rng(1)
    x = rng.normal(size=len(frame))
    frame = frame.assign(x=x, y=x + rng.normal(size=len(frame)), alone=rng.normal(size=len(frame)))
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=20).fit(frame, seed=0)
    res = br.attribute_anomalies(scm, "c", ANOMALY.assign(x=[9.0], y=[9.0], alone=[9.0]), seed=0)
    assert set(res.nodes) == {"a", "b", "c"}  # the other component cannot be a cause
    other = br.attribute_anomalies(scm, "y", pd.DataFrame({"x": [0.0], "y": [5.0]}), seed=0)
    assert set(other.nodes) == {"x", "y"}
    assert other.summary().iloc[0]["node"] == "y"
    with pytest.raises(br.DataError, match="'x'"):  # the target's component must be complete
        br.attribute_anomalies(scm, "y", pd.DataFrame({"y": [5.0]}), seed=0)


@pytest.mark.parametrize("scale", [1e-9, 1e9])
def test_monte_carlo_path_with_bootstrap_noise_at_tiny_and_huge_scales(scale):
    """Skewed noise, bootstrap mechanisms, Monte Carlo tails: values of order 1e-9 or 1e9 give finite
    contributions that sum to the IT score, and the same ranking as at unit scale."""
    rng = np.random.default_rng(4)
    n = 400
    a = rng.exponential(1.0, n)
    b = 0.7 * a + rng.exponential(0.5, n)
    c = b + 0.4 * a + rng.exponential(0.5, n)
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    anomaly = pd.DataFrame({"a": [1.0], "b": [5.0], "c": [6.0]})
    ranks = []
    for s in (1.0, scale):
        frame = pd.DataFrame({"a": a, "b": b, "c": c}) * s
        scm = br.BayesianSCM(graph, mechanisms="linear", num_draws=20).fit(frame, seed=0)
        res = br.attribute_anomalies(scm, "c", anomaly * s, seed=0, num_mc_samples=400)
        assert res.method_info["engine"] == "mc"
        assert np.all(np.isfinite(res.contributions)) and np.all(np.isfinite(res.it_scores))
        np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, rtol=1e-5, atol=1e-5)
        ranks.append(res.summary()["node"].tolist())
    assert ranks[0][0] == ranks[1][0] == "b"
