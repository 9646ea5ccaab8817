"""Tests of bayesrca.attribution.extrapolation: which anomalies feed a mechanism beyond its data."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesrca as br
from bayesrca.attribution.extrapolation import EXTRAPOLATION_RANGES, extrapolated_edges, learned_beyond_data

GRAPH = nx.DiGraph([("A", "T")])


def _train(rng: np.random.Generator, n: int = 300) -> pd.DataFrame:
    a = rng.normal(size=n)
    return pd.DataFrame({"A": a, "T": 2.0 * a + 0.5 * rng.normal(size=n)})


@pytest.fixture(scope="module")
def fitted() -> dict:
    """The same straight-line data fitted three ways: user-linear, spline, and "auto"."""
    train = _train(np.random.default_rng(3))
    root = br.RootDistribution("gaussian")
    return {
        "linear": br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=5).fit(train, seed=0),
        "spline": br.BayesianSCM(GRAPH, mechanisms={"A": root, "T": br.SplineANM("gaussian")}, num_draws=5).fit(train, seed=0),
        "auto": br.BayesianSCM(GRAPH, mechanisms="auto", num_draws=5).fit(train, seed=0),
    }


def test_auto_chooses_a_linear_mechanism_over_nonlinear_candidates_and_it_counts_as_learned(fitted):
    auto = fitted["auto"]
    rows = auto.selection_[auto.selection_["node"].astype(str) == "T"]
    assert (rows["cost_class"] == 2).any()  # nonlinear candidates were compared ...
    assert auto.mechanisms_["T"].is_linear  # ... and a straight line won inside the data
    assert learned_beyond_data(auto, "T")
    assert not learned_beyond_data(fitted["linear"], "T")  # the user asked for a straight line
    assert learned_beyond_data(fitted["spline"], "T")


def test_far_parents_are_flagged_per_edge_and_per_row(fitted):
    train = fitted["auto"].training_data_
    lo, hi = train["A"].min(), train["A"].max()
    frame = pd.DataFrame({"A": [0.0, hi + 2 * (hi - lo), np.nan, lo - 0.4 * (hi - lo)], "T": [0.0, 1.0, 2.0, 3.0]},
                         index=["in", "far", "missing", "near"])
    edges, rows = extrapolated_edges(fitted["auto"], ["A", "T"], frame)
    assert rows.tolist() == [False, True, False, False]
    assert len(edges) == 1 and edges[0].startswith("'A' -> 'T' (linear, chosen by 'auto') (1 row(s)")
    edges, rows = extrapolated_edges(fitted["spline"], ["A", "T"], frame)
    assert rows.tolist() == [False, True, False, False] and "(linear" not in edges[0]
    edges, rows = extrapolated_edges(fitted["linear"], ["A", "T"], frame)
    assert edges == [] and not rows.any()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.floats(-3.0, 3.0, allow_nan=False))
def test_a_value_is_flagged_exactly_when_it_lies_beyond_the_margin(fitted, offset):
    train = fitted["spline"].training_data_
    lo, hi = float(train["A"].min()), float(train["A"].max())
    value = hi + offset * (hi - lo) if offset >= 0 else lo + offset * (hi - lo)
    _, rows = extrapolated_edges(fitted["spline"], ["A", "T"], pd.DataFrame({"A": [value], "T": [0.0]}))
    beyond = value > hi + EXTRAPOLATION_RANGES * (hi - lo) or value < lo - EXTRAPOLATION_RANGES * (hi - lo)
    assert bool(rows[0]) == beyond


def test_attribute_anomalies_warns_for_an_auto_linear_child_and_lists_the_rows(fitted):
    train = fitted["auto"].training_data_
    far_a = float(train["A"].max()) + 3 * float(train["A"].max() - train["A"].min())
    rows = pd.DataFrame({"A": [far_a, 0.1], "T": [2 * far_a, 4.0]}, index=["far", "inside"])
    with pytest.warns(br.ExtrapolationWarning, match=r"'A' -> 'T' \(linear, chosen by 'auto'\)"):
        res = br.attribute_anomalies(fitted["auto"], "T", rows, seed=0)
    assert res.method_info["extrapolated"] == ["far"]
    with warnings.catch_warnings():  # a linear mechanism the user chose extrapolates by assumption
        warnings.simplefilter("error", br.ExtrapolationWarning)
        res = br.attribute_anomalies(fitted["linear"], "T", rows, seed=0)
    assert res.method_info["extrapolated"] == []


# ---------------------------------------------------------------------------------------------
# extrapolation="condition": a GP's behaviour beyond the data conditioned on the anomaly
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quadratic_gp():
    """A -> T with T = A^2 / 2 + N(0, 0.3^2): a GP fitted on |A| < 3 extrapolates a convex function."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=400)
    train = pd.DataFrame({"A": a, "T": 0.5 * a**2 + 0.3 * rng.normal(size=400)})
    mechanisms = {"A": br.RootDistribution("gaussian"), "T": br.GPANM("gaussian")}
    return br.BayesianSCM(GRAPH, mechanisms=mechanisms, num_draws=30).fit(train, seed=0)


def test_conditioning_moves_the_blame_of_a_far_root_cause_back_to_it(quadratic_gp):
    # the root cause A is 7 sd out; T's own noise is nominal (T = A^2 / 2 exactly)
    rows = pd.DataFrame({"A": [7.0, 0.5], "T": [24.5, 0.125 + 1.5]}, index=["far", "inside"])
    with pytest.warns(br.ExtrapolationWarning):
        prior = br.attribute_anomalies(quadratic_gp, "T", rows, seed=0, num_mc_samples=500, extrapolation="prior")
    with pytest.warns(br.ExtrapolationWarning):
        cond = br.attribute_anomalies(quadratic_gp, "T", rows, seed=0, num_mc_samples=500)
    assert cond.method_info["conditioned"] == ["far"] and prior.method_info["conditioned"] == []
    # efficiency per draw under the conditioned model too
    np.testing.assert_allclose(cond.contributions.sum(-1), cond.it_scores, atol=1e-6)
    share = lambda res: np.median(res.contributions[:, 0, 0] / res.it_scores[:, 0])  # noqa: E731
    assert share(prior) < 0.5 < share(cond)  # the extrapolation's error no longer lands on T's noise
    # the anomaly inside the data is attributed as before, whatever the batch (up to round-off)
    np.testing.assert_allclose(cond.contributions[:, 1], prior.contributions[:, 1], atol=1e-6)
    alone = br.attribute_anomalies(quadratic_gp, "T", rows.iloc[[1]], seed=0, num_mc_samples=500)
    np.testing.assert_allclose(alone.contributions[:, 0], cond.contributions[:, 1], atol=1e-6)
    # and the far one does not depend on its batch either (its conditioning is seeded by its values)
    with pytest.warns(br.ExtrapolationWarning):
        far = br.attribute_anomalies(quadratic_gp, "T", rows.iloc[[0]], seed=0, num_mc_samples=500)
    np.testing.assert_allclose(far.contributions[:, 0], cond.contributions[:, 0], atol=1e-6)


def test_unknown_extrapolation_setting_is_refused(quadratic_gp):
    with pytest.raises(br.ConfigError, match="extrapolation"):
        br.attribute_anomalies(quadratic_gp, "T", pd.DataFrame({"A": [0.0], "T": [0.0]}), extrapolation="linear")
