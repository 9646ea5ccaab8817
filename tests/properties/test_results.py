"""Property tests of the result summaries: invariants that hold for arbitrary draws."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayesrca.results import AttributionResult, ContributionResult

_SHAPES = st.tuples(st.integers(1, 12), st.integers(1, 3), st.integers(1, 4))
# small integers make ties between nodes frequent
_DRAWS = _SHAPES.flatmap(lambda s: arrays(np.float64, s, elements=st.integers(-3, 3).map(float)))


@settings(max_examples=60, deadline=None)
@given(_DRAWS, st.sampled_from(["eti", "hdi"]), st.floats(0.05, 0.95))
def test_summary_invariants_hold_for_arbitrary_draws(contrib, ci_kind, prob):
    num_draws, num_anom, num_nodes = contrib.shape
    nodes = [f"n{j}" for j in range(num_nodes)]
    res = AttributionResult(contrib, contrib.sum(axis=2), nodes, list(range(num_anom)), "n0")
    table = res.summary(prob, ci_kind=ci_kind)
    assert len(table) == num_anom * num_nodes
    assert (table["lower"] <= table["upper"]).all()
    np.testing.assert_allclose(table.groupby("anomaly")["prob_top"].sum(), 1.0)
    assert table["prob_positive"].between(0, 1).all()
    if ci_kind == "eti":
        assert ((table["lower"] <= table["median"]) & (table["median"] <= table["upper"])).all()


@settings(max_examples=40, deadline=None)
@given(_DRAWS, st.sampled_from(["eti", "hdi"]))
def test_contribution_summary_invariants_hold_for_arbitrary_draws(draws, ci_kind):
    contrib = draws[:, 0, :]
    nodes = [f"n{j}" for j in range(contrib.shape[1])]
    res = ContributionResult(contrib, contrib.sum(axis=1), nodes, "n0", attribution="distribution_change",
                             quantity="change")
    table = res.summary(0.9, ci_kind=ci_kind)
    np.testing.assert_allclose(table["prob_top_abs"].sum(), 1.0)
    assert list(table["rank_median_abs"]) == list(range(1, len(nodes) + 1))
    assert (np.diff(table["median"].abs().to_numpy()) <= 0).all()
