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
