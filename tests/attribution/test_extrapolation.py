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
