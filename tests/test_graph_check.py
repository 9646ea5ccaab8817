"""Graph check: held-out density and PIT per node, the local Markov independences and their tests."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bayesrca as br
from bayesrca.exceptions import ConfigError
from bayesrca.graph_check import adjust_pvalues, check_graph, local_independences, partial_correlation_test

TRUE = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])
MISSING = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d")])  # a -> c left out


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(size=n)
    c = 2 * b + a + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": c + rng.normal(size=n)})


def test_local_independences_of_a_dag():
    found = local_independences(MISSING)
    assert ("c", "a", ("b",)) in found and ("d", "a", ("c",)) in found and ("d", "b", ("c",)) in found
    assert all(y not in nx.descendants(MISSING, x) and y not in p for x, y, p in found)
    assert len(found) == 3  # b ⊥ nothing (a is its parent), a has no non-descendants
    assert local_independences(nx.DiGraph([("x", "y")])) == []


def test_check_graph_flags_the_missing_edge_and_passes_the_true_graph():
    data = _data()
    true = check_graph(TRUE, data, mechanisms="gaussian", seed=1)
    missing = check_graph(MISSING, data, mechanisms="gaussian", seed=1)
    ind = missing[missing["check"] == "independence"].set_index(["node", "other"])
    assert bool(ind.loc[("c", "a"), "rejected"]) and ind.loc[("c", "a"), "p_adjusted"] < 1e-6
    assert not bool(ind.loc[("d", "a"), "rejected"])
    assert not true.loc[true["check"] == "independence", "rejected"].any()
    assert not true.loc[true["check"] == "ppc_pit", "rejected"].any()
    # the node missing a parent predicts worse on held-out rows; the others are unchanged
    elpd = {name: t[t["check"] == "heldout_elpd"].set_index("node")["statistic"] for name, t in
            (("true", true), ("missing", missing))}
    assert elpd["true"]["c"] - elpd["missing"]["c"] > 5 * true.set_index(["check", "node"]).loc[("heldout_elpd", "c"), "se"]
    assert elpd["true"]["d"] == pytest.approx(elpd["missing"]["d"])
    assert set(true.columns) == {"check", "node", "other", "given", "statistic", "se", "p_value", "p_adjusted", "rejected"}
    assert true.attrs["alpha"] == 0.05 and true.attrs["correction"] == "holm"


def test_the_predictive_check_flags_a_wrong_noise_family():
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    data = pd.DataFrame({"a": a, "b": a + rng.exponential(size=400) ** 2})
    table = check_graph(nx.DiGraph([("a", "b")]), data, mechanisms="gaussian", seed=0).set_index(["check", "node"])
    assert bool(table.loc[("ppc_pit", "b"), "rejected"])
    assert not bool(table.loc[("ppc_pit", "a"), "rejected"])


def test_check_graph_of_a_fitted_model_uses_its_graph_and_training_data():
    data = _data(n=200)
    scm = br.BayesianSCM(MISSING, mechanisms="gaussian", num_draws=50).fit(data, seed=0)
    table = check_graph(scm, seed=1, test="spearman", correction="bh")
    assert table.attrs["test"] == "spearman"
    ind = table[table["check"] == "independence"].set_index(["node", "other"])
    assert bool(ind.loc[("c", "a"), "rejected"])


def test_check_graph_refuses_bad_arguments():
    with pytest.raises(ConfigError, match="data"):
        check_graph(TRUE)
    with pytest.raises(ConfigError, match="test"):
        check_graph(TRUE, _data(50), test="kendall")
    with pytest.raises(ConfigError, match="correction"):
        check_graph(TRUE, _data(50), correction="bonferroni")


def test_partial_correlation_test():
    rng = np.random.default_rng(3)
    z = rng.normal(size=2000)
    x, y = z + rng.normal(size=2000), z + rng.normal(size=2000)
    r, p = partial_correlation_test(x, y, z[:, None])
    assert abs(r) < 0.06 and p > 0.01
    r, p = partial_correlation_test(x, y, np.empty((2000, 0)))  # marginally dependent through z
    assert r == pytest.approx(0.5, abs=0.05) and p < 1e-20
    assert np.isnan(partial_correlation_test(x[:4], y[:4], z[:4, None])[1])


def test_adjusted_pvalues_by_hand():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, np.nan, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, np.nan, 0.02])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.sampled_from(["holm", "bh"]))
def test_adjusted_pvalues_are_larger_bounded_and_keep_the_order(p, method):
    p = np.array(p)
    adj = adjust_pvalues(p, method)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)
    assert np.all(adjust_pvalues(p, "bh") <= adjust_pvalues(p, "holm") + 1e-15)


def test_the_pit_test_uses_the_fitted_mechanisms_and_flags_the_missing_edge():
    rng = np.random.default_rng(4)
    a = rng.uniform(-2, 2, size=400)
    data = pd.DataFrame({"a": a, "b": a**2 + 0.3 * rng.normal(size=400), "c": np.exp(a) + 0.3 * rng.normal(size=400)})
    fork = nx.DiGraph([("a", "b"), ("a", "c")])  # the true graph, nonlinear mechanisms
    # a linear residualisation on a leaves both curvatures behind: b ⊥ c | a is wrongly rejected
    linear = check_graph(fork, data, mechanisms="spline", test="fisher-z", seed=0)
    assert linear.loc[linear["check"] == "independence", "rejected"].all()
    # the held-out PIT is the noise as the (spline) mechanism sees it: no false rejection
    pit = check_graph(fork, data, mechanisms="spline", test="pit", seed=0)
    assert not pit.loc[pit["check"] == "independence", "rejected"].any()
    chain = nx.DiGraph([("a", "b"), ("b", "c")])  # c depends on a beyond b: c ⊥ a | b is false
    flagged = check_graph(chain, data, mechanisms="spline", test="pit", seed=0)
    ind = flagged[flagged["check"] == "independence"].set_index(["node", "other"])
    assert bool(ind.loc[("c", "a"), "rejected"])
