"""Bad input gives bayesrca's own exceptions, with messages that name the offending thing."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.exceptions import (
    BayesRCAError,
    ConfigError,
    ConstantColumnWarning,
    DataError,
    GraphError,
    NotFittedError,
)

EDGES = [("a", "b"), ("b", "c"), ("a", "c")]


def make_graph() -> nx.DiGraph:
    return nx.DiGraph(EDGES)


def make_data(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.5 * a + rng.normal(size=n)
    c = b - a + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c})


@pytest.fixture(scope="module")
def fitted() -> br.BayesianSCM:
    return br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=20).fit(make_data(), seed=0)


def quick(graph=None, **kwargs) -> br.BayesianSCM:
    kwargs.setdefault("mechanisms", "gaussian")
    kwargs.setdefault("num_draws", 10)
    return br.BayesianSCM(make_graph() if graph is None else graph, **kwargs)


def test_exception_hierarchy():
    for exc in (GraphError, DataError, ConfigError, NotFittedError):
        assert issubclass(exc, BayesRCAError)
    assert issubclass(GraphError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(NotFittedError, AttributeError)
    assert issubclass(ConstantColumnWarning, br.BayesRCAWarning)
    assert issubclass(br.ConvergenceWarning, UserWarning)


# ---------------------------------------------------------------------------------------------
# Graphs
# ---------------------------------------------------------------------------------------------
def test_cycle_names_its_nodes():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(GraphError, match="cycle") as info:
        quick(graph).fit(make_data())
    for node in ("'a'", "'b'", "'c'"):
        assert node in str(info.value)


def test_cycle_not_through_every_node():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "b")])
    with pytest.raises(GraphError, match="cycle") as info:
        quick(graph).fit(make_data())
    assert "'b'" in str(info.value) and "'c'" in str(info.value)


def test_self_loop():
    graph = make_graph()
    graph.add_edge("b", "b")
    with pytest.raises(GraphError, match="self-loop") as info:
        quick(graph).fit(make_data())
    assert "'b'" in str(info.value)


@pytest.mark.parametrize("graph", [nx.Graph(EDGES), nx.MultiDiGraph(EDGES), EDGES, {"a": "b"}])
def test_not_a_digraph(graph):
    with pytest.raises(GraphError, match="DiGraph"):
        quick(graph).fit(make_data())


def test_empty_graph():
    with pytest.raises(GraphError, match="no nodes"):
        quick(nx.DiGraph()).fit(make_data())


def test_unknown_target_node(fitted):
    with pytest.raises(GraphError, match="'zzz'"):
        br.attribute_anomalies(fitted, "zzz", make_data(3))


def test_graph_changed_after_fit():
    graph = nx.DiGraph([("a", "b"), ("b", "c")])
    scm = quick(graph).fit(make_data(), seed=0)
    graph.add_edge("a", "c")
    with pytest.raises(GraphError, match="changed after fit"):
        br.attribute_anomalies(scm, "c", make_data(2))
    with pytest.raises(GraphError, match="changed after fit"):
        br.outlier_scores(scm, make_data(2))
    with pytest.raises(GraphError, match="changed after fit"):
        scm.sample(5)
    # the fitted copy is frozen and untouched; refitting picks up the new edge
    assert not scm.graph_.has_edge("a", "c")
    scm.fit(make_data(), seed=0)
    assert scm.parents_["c"] == ("a", "b")


def test_graph_node_added_after_fit():
    graph = make_graph()
    scm = quick(graph).fit(make_data(), seed=0)
    graph.add_node("d")
    with pytest.raises(GraphError, match="changed after fit"):
        br.outlier_scores(scm, make_data(2))


# ---------------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------------
def test_missing_column_in_training():
    with pytest.raises(DataError, match="'c'"):
        quick().fit(make_data().drop(columns=["c"]))


def test_extra_column_in_training():
    with pytest.raises(DataError, match="'extra'"):
        quick().fit(make_data().assign(extra=1.0))


def test_duplicate_columns_in_training():
    df = make_data()
    dup = pd.concat([df, df[["b"]]], axis=1)
    with pytest.raises(DataError, match="duplicate columns 'b'"):
        quick().fit(dup)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_non_finite_in_training_names_column_and_row(bad):
    """NaN marks a missing value (tests/test_scm.py); an infinite value stays an error."""
    df = make_data()
    df.loc[17, "b"] = bad
    df.loc[3, "a"] = np.nan
    with pytest.raises(DataError, match="infinite") as info:
        quick().fit(df)
    assert "'b'" in str(info.value) and "17" in str(info.value)
    assert "'a'" not in str(info.value) and "'c'" not in str(info.value)


def test_string_column():
    df = make_data().astype({"a": str})
    with pytest.raises(DataError, match="non-numeric columns 'a'"):
        quick().fit(df)


def test_too_few_rows():
    with pytest.raises(DataError, match="1 row"):
        quick().fit(make_data().iloc[:1])


def test_too_few_rows_for_parents():
    with pytest.raises(DataError, match="node 'b' has 1 parent"):
        quick().fit(make_data().iloc[:2])


@pytest.mark.parametrize("data", [np.zeros((10, 3)), [[1.0, 2.0, 3.0]], None])
def test_training_data_not_a_frame(data):
    with pytest.raises(DataError, match="DataFrame"):
        quick().fit(data)


def test_boolean_column_is_accepted():
    df = make_data().assign(a=lambda d: d["a"] > 0)
    scm = quick().fit(df, seed=0)
    assert scm.training_data_["a"].dtype == np.float64


# ---------------------------------------------------------------------------------------------
# Anomalies and scored rows
# ---------------------------------------------------------------------------------------------
def test_missing_column_in_anomalies(fitted):
    with pytest.raises(DataError, match="'b'"):
        br.attribute_anomalies(fitted, "c", make_data(2).drop(columns=["b"]))


def test_extra_column_in_anomalies(fitted):
    with pytest.raises(DataError, match="'oops'"):
        br.attribute_anomalies(fitted, "c", make_data(2).assign(oops=0.0))
    with pytest.raises(DataError, match="'oops'"):
        br.outlier_scores(fitted, make_data(2).assign(oops=0.0))


def test_duplicate_columns_in_anomalies(fitted):
    df = make_data(2)
    with pytest.raises(DataError, match="duplicate columns 'a'"):
        br.attribute_anomalies(fitted, "c", pd.concat([df, df[["a"]]], axis=1))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_in_anomalies(fitted, bad):
    df = make_data(3)
    df.loc[1, "c"] = bad
    with pytest.raises(DataError, match="'c'"):
        br.attribute_anomalies(fitted, "c", df)
    with pytest.raises(DataError, match="'c'"):
        br.outlier_scores(fitted, df)


def test_non_finite_in_an_unused_anomaly_column_is_ignored(fitted):
    """Only the target's ancestors are read: a NaN in an unrelated node does not matter."""
    df = make_data(2)
    df.loc[0, "c"] = np.nan
    res = br.attribute_anomalies(fitted, "b", df, seed=0)
    assert res.nodes == ("a", "b") and np.all(np.isfinite(res.contributions))


def test_string_column_in_anomalies(fitted):
    with pytest.raises(DataError, match="non-numeric"):
        br.attribute_anomalies(fitted, "c", make_data(2).astype({"b": str}))


def test_empty_anomalies(fitted):
    with pytest.raises(DataError, match="0 row"):
        br.attribute_anomalies(fitted, "c", make_data(2).iloc[:0])


def test_one_timestamp_column_becomes_the_index(fitted):
    stamps = pd.date_range("2026-01-01 12:00", periods=3, freq="min")
    rows = make_data(3).assign(timestamp=stamps)
    res = br.attribute_anomalies(fitted, "c", rows, seed=0)
    assert list(res.anomalies) == list(stamps)
    plain = br.attribute_anomalies(fitted, "c", make_data(3), seed=0)
    np.testing.assert_array_equal(res.contributions, plain.contributions)
    # training data with a timestamp column fit like the data without it
    quick().fit(make_data().assign(when=pd.date_range("2026-01-01", periods=200, freq="h")), seed=0)


def test_two_timestamp_columns_are_ambiguous(fitted):
    stamps = pd.date_range("2026-01-01", periods=3, freq="min")
    with pytest.raises(DataError, match="'start'"):
        br.attribute_anomalies(fitted, "c", make_data(3).assign(start=stamps, end=stamps), seed=0)


def test_series_is_one_anomaly(fitted):
    row = make_data(3).iloc[1]
    res = br.attribute_anomalies(fitted, "c", row, seed=0)
    assert res.contributions.shape == (20, 1, 3)


# ---------------------------------------------------------------------------------------------
# Not fitted
# ---------------------------------------------------------------------------------------------
def test_unfitted_model():
    scm = quick()
    with pytest.raises(NotFittedError, match="fit"):
        br.attribute_anomalies(scm, "c", make_data(2))
    with pytest.raises(NotFittedError, match="fit"):
        br.outlier_scores(scm, make_data(2))
    with pytest.raises(NotFittedError):
        scm.summary()
    with pytest.raises(NotFittedError):
        scm.sample(3)
    assert "not fitted" in repr(scm)


@pytest.mark.parametrize(
    "kwargs, data, exc",
    [
        ({"mechanisms": {"a": br.RootDistribution("lognormal")}}, make_data(), DataError),
        ({"num_draws": 0}, make_data(), ConfigError),
        ({}, make_data().assign(c=np.nan), DataError),
        ({"mechanisms": "bogus"}, make_data(), ConfigError),
    ],
)
def test_failed_fit_leaves_model_unfitted(kwargs, data, exc):
    scm = quick(**kwargs)
    with pytest.raises(exc):
        scm.fit(data)
    assert not hasattr(scm, "mechanisms_")
    with pytest.raises(NotFittedError):
        br.attribute_anomalies(scm, "c", make_data(2))
    with pytest.raises(NotFittedError):
        br.outlier_scores(scm, make_data(2))


def test_failing_mechanism_late_in_the_order_leaves_model_unfitted():
    """Nodes fitted before the failing one do not leave a half-fitted model behind."""
    df = make_data()
    df["c"] = np.abs(df["c"]) + 1.0
    graph = nx.DiGraph([("a", "b"), ("z", "b")])
    train = pd.DataFrame({"a": df["a"], "b": df["b"], "z": df["c"] - 5.0})
    scm = br.BayesianSCM(graph, mechanisms={"z": br.RootDistribution("lognormal")}, num_draws=5)
    with pytest.raises(DataError, match="'z'"):
        scm.fit(train)
    with pytest.raises(NotFittedError):
        br.outlier_scores(scm, train.iloc[:2])


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_draws", [0, -1, 2.5, True, "10", None])
def test_bad_num_draws(num_draws):
    with pytest.raises(ConfigError, match="num_draws"):
        quick(num_draws=num_draws).fit(make_data())


@pytest.mark.parametrize("scale", [0, -1e-3, "small"])
def test_bad_constant_noise_scale(scale):
    with pytest.raises(ConfigError, match="constant_noise_scale"):
        quick(constant_noise_scale=scale).fit(make_data())


@pytest.mark.parametrize("seed", [-1, 1.5, "x"])
def test_bad_seed(fitted, seed):
    with pytest.raises(ConfigError, match="seed"):
        quick().fit(make_data(), seed=seed)
    with pytest.raises(ConfigError, match="seed"):
        br.attribute_anomalies(fitted, "c", make_data(2), seed=seed)


def test_numpy_generator_seed(fitted):
    res1 = br.attribute_anomalies(fitted, "c", make_data(2), seed=np.random.default_rng(5))
    res2 = br.attribute_anomalies(fitted, "c", make_data(2), seed=np.random.default_rng(5))
    np.testing.assert_array_equal(res1.contributions, res2.contributions)


@pytest.mark.parametrize("num_mc_samples", [0, -5, 9, 2.0])
def test_bad_num_mc_samples(fitted, num_mc_samples):
    with pytest.raises(ConfigError, match="num_mc_samples"):
        br.attribute_anomalies(fitted, "c", make_data(2), num_mc_samples=num_mc_samples)
    with pytest.raises(ConfigError, match="num_mc_samples"):
        br.outlier_scores(fitted, make_data(2), num_mc_samples=num_mc_samples)


def test_unknown_shapley_method(fitted):
    with pytest.raises(ConfigError, match="'kernel'"):
        br.attribute_anomalies(fitted, "c", make_data(2), shapley="kernel")


def test_bad_num_permutations(fitted):
    with pytest.raises(ConfigError, match="num_permutations"):
        br.attribute_anomalies(fitted, "c", make_data(2), shapley="permutation", num_permutations=0)


def test_unknown_tail(fitted):
    with pytest.raises(ConfigError, match="'exact'"):
        br.attribute_anomalies(fitted, "c", make_data(2), tail="exact")


@pytest.mark.parametrize("spec", ["bogus", 3, None, ["linear"]])
def test_unknown_mechanism_name(spec):
    with pytest.raises(ConfigError, match="mechanism for node"):
        quick(mechanisms=spec).fit(make_data())


def test_unknown_mechanism_in_mapping():
    with pytest.raises(ConfigError, match="'b'.*'splines'"):
        quick(mechanisms={"b": "splines"}).fit(make_data())


def test_mechanisms_mapping_with_unknown_node():
    with pytest.raises(GraphError, match="'nope'"):
        quick(mechanisms={"nope": "linear", "a": "gaussian"}).fit(make_data())


def test_root_distribution_on_non_root():
    with pytest.raises(ConfigError, match="'b'.*RootDistribution"):
        quick(mechanisms={"b": br.RootDistribution("gaussian")}).fit(make_data())


def test_regression_mechanism_on_root():
    with pytest.raises(ConfigError, match="'a'.*needs a RootDistribution"):
        quick(mechanisms={"a": br.LinearANM("gaussian")}).fit(make_data())


@pytest.mark.parametrize(
    "mech, match",
    [
        (br.LinearANM("laplace"), "'laplace'"),
        (br.LinearANM("gaussian", inference="mcmc"), "'mcmc'"),
        (br.LinearANM("bootstrap", inference="svi"), "'svi'"),
        (br.SplineANM("gaussian", num_knots=2), "num_knots"),
        (br.SplineANM("lognormal"), "'lognormal'"),
    ],
)
def test_bad_mechanism_parameters(mech, match):
    with pytest.raises(ConfigError, match=match):
        quick(mechanisms={"b": mech}).fit(make_data())


@pytest.mark.parametrize("shift", [0.0, -1.0])
def test_lognormal_on_non_positive_data(shift):
    df = make_data()
    df["a"] = np.abs(df["a"]) + 0.1
    df.loc[3, "a"] = shift
    with pytest.raises(DataError, match="node 'a'.*strictly positive"):
        quick(mechanisms={"a": br.RootDistribution("lognormal")}).fit(df)


def test_lognormal_not_chosen_automatically_for_non_positive_data():
    scm = br.BayesianSCM(make_graph(), mechanisms={"b": "gaussian", "c": "gaussian"}, num_draws=5).fit(make_data(), seed=0)
    assert scm.mechanisms_["a"].describe() != "root/lognormal"


@pytest.mark.parametrize("ci_prob", [0, 1, 1.0, 1.5, -0.2, True, "0.9", None])
def test_bad_ci_prob(fitted, ci_prob):
    res = br.attribute_anomalies(fitted, "c", make_data(2), seed=0)
    with pytest.raises(ConfigError, match="ci_prob"):
        res.summary(ci_prob)
    scores = br.outlier_scores(fitted, make_data(2), seed=0)
    with pytest.raises(ConfigError, match="ci_prob"):
        scores.summary(ci_prob)


def test_bad_sample_size(fitted):
    with pytest.raises(ConfigError, match="num_samples"):
        fitted.sample(0)


# ---------------------------------------------------------------------------------------------
# Constant columns
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def constant_data() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 300
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "k": np.full(n, 5.0), "t": a + rng.normal(size=n)})


CONSTANT_EDGES = [("a", "k"), ("k", "t"), ("a", "t")]


@pytest.mark.parametrize("mechanisms", ["auto", "gaussian", "linear", "spline"])
def test_constant_column(constant_data, mechanisms):
    with pytest.warns(ConstantColumnWarning, match="'k'"):
        scm = br.BayesianSCM(nx.DiGraph(CONSTANT_EDGES), mechanisms=mechanisms, num_draws=20).fit(constant_data, seed=0)
    assert scm.mechanisms_["k"].describe().endswith("/constant")
    query = pd.DataFrame({"a": [0.0, 0.0], "k": [5.0, 5.5], "t": [0.0, 0.0]})
    # a later deviation at the constant node: finite but very surprising
    scores = br.outlier_scores(scm, query, seed=0, num_mc_samples=500)
    assert np.all(np.isfinite(scores.scores))
    k_scores = scores.scores[:, :, list(scores.nodes).index("k")]
    assert np.all(k_scores[:, 1] > 5.0)
    assert np.all(k_scores[:, 1] > k_scores[:, 0])
    # attribution of the deviation at the constant node: finite, efficient, the node on top
    res = br.attribute_anomalies(scm, "k", query.iloc[[1]], seed=0, num_mc_samples=500)
    assert np.all(np.isfinite(res.contributions))
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    table = res.summary()
    assert table.iloc[0]["node"] == "k" and table.iloc[0]["prob_top"] > 0.5
    if mechanisms in ("gaussian", "linear", "auto"):
        # k's mechanism ignores a (its coefficient is 0): a is a null player
        a_draws = res.contributions[..., list(res.nodes).index("a")]
        np.testing.assert_allclose(a_draws, 0.0, atol=1e-9)


@pytest.mark.parametrize("mechanisms", ["gaussian", "linear"])
def test_constant_parent_of_target_keeps_its_prior_effect(constant_data, mechanisms):
    """The constant parent's effect on the target is not identified: it keeps its prior, so its small
    deviation gets an uncertain share of the blame, not exactly 0; the target's own large deviation
    stays first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantColumnWarning)
        scm = br.BayesianSCM(nx.DiGraph(CONSTANT_EDGES), mechanisms=mechanisms, num_draws=20).fit(constant_data, seed=0)
    query = pd.DataFrame({"a": [0.0], "k": [5.5], "t": [3.0]})
    res = br.attribute_anomalies(scm, "t", query, seed=0, num_mc_samples=500)
    assert np.all(np.isfinite(res.contributions))
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    k_draws = res.contributions[..., list(res.nodes).index("k")]
    assert np.quantile(k_draws, 0.95) - np.quantile(k_draws, 0.05) > 0.5  # not a null player: uncertain
    table = res.summary()
    assert table.iloc[0]["node"] == "t" and table.iloc[0]["prob_top"] > 0.5


# ---------------------------------------------------------------------------------------------
# Node names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mechanisms", ["gaussian", "spline"])
def test_unicode_and_spaces_in_node_names(mechanisms):
    names = {"a": "Größe (cm)", "b": "temps de réponse µs", "c": "目标 node [x]"}
    graph = nx.relabel_nodes(make_graph(), names)
    train = make_data().rename(columns=names)
    scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=10).fit(train, seed=0)
    anomaly = pd.DataFrame({names["a"]: [4.0], names["b"]: [2.0], names["c"]: [-1.0]})
    res = br.attribute_anomalies(scm, names["c"], anomaly, seed=0, num_mc_samples=200)
    assert set(res.nodes) == set(names.values())
    assert res.target == names["c"]
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    assert res.summary().iloc[0]["node"] == names["a"]
    scores = br.outlier_scores(scm, anomaly, seed=0, num_mc_samples=200)
    assert scores.nodes == tuple(names.values())
    assert set(scm.summary()["node"]) == set(names.values())
    assert list(scm.sample(4, seed=0).columns) == list(graph.nodes)


def test_integer_node_names():
    graph = nx.relabel_nodes(make_graph(), {"a": 0, "b": 1, "c": 2})
    train = make_data().rename(columns={"a": 0, "b": 1, "c": 2})
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=10).fit(train, seed=0)
    res = br.attribute_anomalies(scm, 2, pd.DataFrame({0: [4.0], 1: [2.0], 2: [-1.0]}), seed=0)
    assert res.nodes == ("0", "1", "2") and res.target == "2"
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    assert res.summary().iloc[0]["node"] == "0"
    scores = br.outlier_scores(scm, train.iloc[:3], seed=0)
    assert scores.nodes == ("0", "1", "2") and scores.scores.shape == (10, 3, 3)
