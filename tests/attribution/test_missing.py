"""Anomalies with missing values: integrated out per posterior draw, checked against the complete row."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesrca as br
from bayesrca.exceptions import DataError, ImputationWarning


@pytest.fixture(scope="module")
def scm():
    """x0 -> x1 -> x2 <- x3, linear-Gaussian (closed-form tails)."""
    rng = np.random.default_rng(0)
    n = 500
    x0, x3 = rng.normal(size=n), rng.normal(size=n)
    x1 = x0 + 0.5 * rng.normal(size=n)
    x2 = x1 + x3 + 0.5 * rng.normal(size=n)
    graph = nx.DiGraph([("x0", "x1"), ("x1", "x2"), ("x3", "x2")])
    frame = pd.DataFrame({"x0": x0, "x1": x1, "x3": x3, "x2": x2})
    return br.BayesianSCM(graph, mechanisms="gaussian", num_draws=200).fit(frame, seed=0)


#: x0 is the root cause (3.5 sd); x1 and x2 follow it, x3 is ordinary
ANOMALY = pd.DataFrame({"x0": [3.5], "x1": [3.6], "x3": [0.2], "x2": [3.9]})


def _summary(scm, row):
    result = br.attribute_anomalies(scm, "x2", row, seed=1)
    return result, result.summary().set_index("node")


@pytest.fixture(scope="module")
def complete(scm):
    return _summary(scm, ANOMALY)


def test_complete_row_blames_the_root_cause(complete):
    _, table = complete
    assert table["prob_top"].idxmax() == "x0" and table.loc["x0", "prob_top"] > 0.99


def test_missing_value_that_does_not_matter_keeps_the_top_node(scm, complete):
    result, table = _summary(scm, ANOMALY.assign(x3=np.nan))
    assert table["prob_top"].idxmax() == complete[1]["prob_top"].idxmax() == "x0"
    assert result.method_info["missing"] == [["x3"]]
    assert result.method_info["impute_ess_min"][0] > 10 and result.method_info["unreliable_imputation"] == []
    # x3's own contribution now spreads over its conditional distribution given x2
    width = table["upper"] - table["lower"]
    assert width["x3"] > (complete[1]["upper"] - complete[1]["lower"])["x3"]


def test_missing_root_cause_lowers_its_prob_top_and_widens_its_interval(scm, complete):
    result, table = _summary(scm, ANOMALY.assign(x0=np.nan))
    before = complete[1]
    assert table.loc["x0", "prob_top"] < before.loc["x0", "prob_top"]
    assert table.loc["x0", "upper"] - table.loc["x0", "lower"] > 2 * (before.loc["x0", "upper"] - before.loc["x0", "lower"])
    assert table["prob_top"].idxmax() == "x0"  # x1 = 3.6 still points upstream
    assert table.loc["x1", "prob_top"] > 0  # part of the blame can now go to x1's own noise
    assert result.method_info["missing"] == [["x0"]]
    # efficiency per draw still holds: each draw's completed row is reproduced
    np.testing.assert_allclose(result.contributions.sum(-1), result.it_scores, rtol=1e-9, atol=1e-9)


def test_missing_target_is_a_data_error(scm):
    with pytest.raises(DataError, match="target 'x2' is missing"):
        br.attribute_anomalies(scm, "x2", ANOMALY.assign(x2=np.nan))


def test_infinite_value_is_still_a_data_error(scm):
    with pytest.raises(DataError, match="infinite"):
        br.attribute_anomalies(scm, "x2", ANOMALY.assign(x0=np.inf))


def test_poorly_covered_imputation_warns_and_is_flagged(scm):
    """Two candidates cannot represent x0 | x1 = 3.6: flagged, not silently trusted."""
    with pytest.warns(ImputationWarning, match="effective candidates"):
        result = br.attribute_anomalies(scm, "x2", ANOMALY.assign(x0=np.nan), seed=1, num_impute_candidates=2)
    assert result.method_info["unreliable_imputation"] == [0]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.floats(-4, 4), min_size=4, max_size=4), hole=st.sampled_from(["x0", "x1", "x3"]))
def test_complete_rows_are_unchanged_by_an_incomplete_row_beside_them(scm, values, hole):
    """Complete anomalies give the same numbers whether or not a row with a missing value is attributed with them."""
    row = pd.DataFrame([dict(zip(["x0", "x1", "x3", "x2"], values))])
    alone = br.attribute_anomalies(scm, "x2", row, seed=2)
    both = br.attribute_anomalies(scm, "x2", pd.concat([row, ANOMALY.assign(**{hole: np.nan})], ignore_index=True), seed=2)
    np.testing.assert_array_equal(alone.contributions[:, 0], both.contributions[:, 0])
    np.testing.assert_array_equal(alone.it_scores[:, 0], both.it_scores[:, 0])
    assert "missing" not in alone.method_info and both.method_info["missing"] == [[], [hole]]


@pytest.mark.filterwarnings("ignore::bayesrca.TailEstimateWarning")  # 400 samples, a far anomaly: not the point here
def test_monte_carlo_path_integrates_missing_values_too():
    """Non-Gaussian noise (Monte Carlo tails): per-draw completed rows flow through abduction and the tails."""
    rng = np.random.default_rng(3)
    n = 300
    x0 = rng.gumbel(size=n)
    x1 = np.tanh(x0) + 0.3 * rng.gumbel(size=n)
    x2 = x1 + 0.3 * rng.gumbel(size=n)
    graph = nx.DiGraph([("x0", "x1"), ("x1", "x2")])
    model = br.BayesianSCM(graph, mechanisms="spline", num_draws=20).fit(pd.DataFrame({"x0": x0, "x1": x1, "x2": x2}), seed=0)
    row = pd.DataFrame({"x0": [np.nan], "x1": [2.0], "x2": [2.5]})
    result = br.attribute_anomalies(model, "x2", row, seed=0, num_mc_samples=400, num_impute_candidates=200)
    assert result.method_info["engine"] == "mc" and result.method_info["missing"] == [["x0"]]
    assert np.isfinite(result.contributions).all()
    assert result.contributions[:, 0, 0].std() > 0  # x0's value differs between draws
