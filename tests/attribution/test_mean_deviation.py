"""attribute_mean_deviation: exact on linear models, efficient per draw, and DoWhy's answer."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.exceptions import ConfigError, DataError

GRAPH = nx.DiGraph([("X0", "X1"), ("X1", "X2"), ("X0", "X2")])
ANOMALIES = pd.DataFrame({"X0": [3.0, 0.0], "X1": [6.0, 5.0], "X2": [4.5, 5.0]})


def _data(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = 2 * x0 + rng.normal(size=n)
    x2 = x1 - 0.5 * x0 + rng.normal(size=n)
    return pd.DataFrame({"X0": x0, "X1": x1, "X2": x2})


@pytest.fixture(scope="module")
def linear():
    return br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=60).fit(_data(), seed=0)


def test_linear_value_is_exact_and_sums_to_the_deviation_from_the_mean(linear):
    res = br.attribute_mean_deviation(linear, "X2", ANOMALIES, seed=0)
    assert res.method_info["engine"] == "analytic" and np.all(res.mc_std_error == 0)
    # per draw: the contributions add up to x_t - E[X_t] under that draw's parameters
    sample = br.attribute_mean_deviation(linear, "X2", ANOMALIES, seed=1)
    np.testing.assert_allclose(res.contributions, sample.contributions)  # no randomness on this path
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-10)
    # truth: E[X2] = 0, so the totals are x2; contributions a_j * n_j with the true a = (1.5, 1, 1)
    np.testing.assert_allclose(np.median(res.it_scores, 0), ANOMALIES["X2"], atol=0.15)
    med = res.summary().set_index(["anomaly", "node"])["median"]
    truth = {(0, "X0"): 4.5, (0, "X1"): 0.0, (0, "X2"): 0.0, (1, "X0"): 0.0, (1, "X1"): 5.0, (1, "X2"): 0.0}
    for key, value in truth.items():
        assert abs(med[key] - value) < 0.25, (key, med[key])


def test_monte_carlo_path_is_efficient_per_draw_and_agrees_with_the_exact_one(linear):
    spline = br.BayesianSCM(GRAPH, mechanisms="spline", num_draws=30).fit(_data(), seed=0)
    res = br.attribute_mean_deviation(spline, "X2", ANOMALIES, seed=0, num_mc_samples=1000)
    assert res.method_info["engine"] == "mc" and np.all(res.mc_std_error > 0)
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-8)
    exact = br.attribute_mean_deviation(linear, "X2", ANOMALIES, seed=0).summary().set_index(["anomaly", "node"])
    approx = res.summary().set_index(["anomaly", "node"])
    assert (approx["median"] - exact["median"]).abs().max() < 0.5


def test_median_cdf_score_lies_in_minus_one_one_and_null_player_gets_zero(linear):
    graph = nx.DiGraph([("X0", "X1"), ("X1", "X2"), ("X0", "X2"), ("Z", "X2")])
    data = _data().assign(Z=0.0)  # a constant parent: its noise cannot move X2
    with pytest.warns(br.exceptions.ConstantColumnWarning):
        scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=20).fit(data, seed=0)
    res = br.attribute_mean_deviation(scm, "X2", ANOMALIES.assign(Z=0.0), score="median_cdf", seed=0, num_mc_samples=2000)
    assert np.all(np.abs(res.it_scores) <= 1) and np.all(res.it_scores[:, 0] > 0.4)
    z = list(res.nodes).index("Z")
    assert np.abs(res.contributions[..., z]).max() < 0.02


def test_bad_arguments_are_our_errors(linear):
    with pytest.raises(ConfigError, match="score"):
        br.attribute_mean_deviation(linear, "X2", ANOMALIES, score="density")
    with pytest.raises(DataError, match="X1"):
        br.attribute_mean_deviation(linear, "X2", ANOMALIES.drop(columns="X1"))
    with pytest.raises(DataError, match="duplicate"):
        br.attribute_mean_deviation(linear, "X2", pd.concat([ANOMALIES, ANOMALIES]))


@pytest.mark.slow
def test_agrees_with_dowhy_attribute_mean_deviation(linear):
    gcm = pytest.importorskip("dowhy.gcm")
    data = _data()
    model = gcm.InvertibleStructuralCausalModel(GRAPH)
    model.set_causal_mechanism("X0", gcm.EmpiricalDistribution())
    for node in ("X1", "X2"):
        model.set_causal_mechanism(node, gcm.AdditiveNoiseModel(gcm.ml.create_linear_regressor()))
    np.random.seed(0)
    gcm.fit(model, data)
    theirs = gcm.attribute_anomalies(model, "X2", ANOMALIES, attribute_mean_deviation=True, num_distribution_samples=3000)
    ours = br.attribute_mean_deviation(linear, "X2", ANOMALIES, score="median_cdf", seed=0, num_mc_samples=4000)
    med = ours.summary().set_index(["anomaly", "node"])
    for node, values in theirs.items():
        for k, value in enumerate(values):
            row = med.loc[(k, node)]
            assert row["lower"] - 0.03 <= value <= row["upper"] + 0.03, (node, k, value, row["median"])
