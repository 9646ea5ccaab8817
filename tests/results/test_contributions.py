"""Tests of bayesrca.results.contributions (ContributionResult): columns on absolute values."""

from __future__ import annotations

import numpy as np
import pytest

from bayesrca.exceptions import ConfigError, DataError
from bayesrca.results import ContributionResult

NODES = ["a", "b", "c"]
COLUMNS = ["node", "mean", "median", "sd", "lower", "upper", "prob_top_abs", "prob_positive", "rank_median_abs"]


@pytest.fixture
def draws():
    rng = np.random.default_rng(0)
    contrib = rng.normal([0.5, -3.0, 1.0], 0.2, size=(200, 3))
    return contrib, contrib.sum(axis=1)


@pytest.fixture
def result(draws):
    contrib, total = draws
    return ContributionResult(
        contrib, total, NODES, "c", attribution="distribution_change", quantity="change of the mean of 'c'",
        method_info={"seed": 1}, prob_changed=np.array([0.1, 0.9, 0.2]), changed=(contrib > 0).astype(float),
        mc_std_error=np.array([0.01, 0.02, 0.03]),
    )


def test_attributes(result, draws):
    assert result.attribution == "distribution_change" and result.quantity == "change of the mean of 'c'"
    assert result.contributions.shape == (200, 3) and not result.contributions.flags.writeable
    np.testing.assert_array_equal(result.contributions, draws[0])
    np.testing.assert_array_equal(result.total, draws[1])
    assert result.draws.shape == (200, 1, 3)
    assert result.anomalies == result.units == ("change of the mean of 'c'",)
    assert not hasattr(result, "kind")  # renamed to attribution


def test_summary_ranks_by_absolute_median(result, draws):
    table = result.summary()
    assert list(table.columns) == COLUMNS + ["prob_changed", "mc_se"]
    assert list(table["node"]) == ["b", "c", "a"]  # |median| 3.0, 1.0, 0.5
    assert list(table["rank_median_abs"]) == [1, 2, 3]
    row = table.set_index("node").loc["b"]
    assert row["prob_top_abs"] == pytest.approx(1.0) and row["prob_positive"] == 0.0
    assert row["prob_changed"] == 0.9 and row["mc_se"] == 0.02
    assert "prob_top" not in table.columns and "rank_median" not in table.columns


def test_prob_top_abs_counts_absolute_values_and_splits_ties():
    contrib = np.array([[-2.0, 1.0], [1.0, 1.0], [0.5, 3.0], [-4.0, 4.0]])
    res = ContributionResult(contrib, contrib.sum(1), ["a", "b"], "b", attribution="intrinsic_causal_influence",
                             quantity="variance of 'b'")
    prob = res.summary().set_index("node")["prob_top_abs"]
    assert prob["a"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert prob["b"] == pytest.approx((0 + 0.5 + 1 + 0.5) / 4)
    assert list(res.summary().columns) == COLUMNS


def test_total_summary_and_alias(result, draws):
    total = result.total_summary(0.8, ci_kind="hdi")
    assert list(total.columns) == ["quantity", "mean", "median", "sd", "lower", "upper"]
    assert total["median"].iloc[0] == pytest.approx(np.median(draws[1]))
    assert result.it_score_summary(0.8, ci_kind="hdi").equals(total)


def test_unit_position_and_plot_labels(result):
    assert result.unit_position() == 0 and result.unit_position("change of the mean of 'c'") == 0
    with pytest.raises(ConfigError, match="one quantity"):
        result.unit_position("x")
    words = result.plot_labels()
    assert words["top_column"] == "prob_top_abs" and words["title"] == "distribution change"


def test_inference_data_and_dataframe(result, draws):
    post = result.to_inference_data().posterior
    assert post["contribution"].dims == ("chain", "draw", "node")
    assert post["total"].dims == ("chain", "draw") and post["changed"].dims == ("chain", "draw", "node")
    assert post.attrs["attribution"] == "distribution_change" and post.attrs["target"] == "c"
    assert post.attrs["seed"] == "1"
    long = result.to_dataframe()
    assert list(long.columns) == ["draw", "node", "contribution"]
    np.testing.assert_array_equal(long["contribution"], draws[0].ravel())


def test_reprs(result):
    assert "ContributionResult (distribution_change) for target 'c'" in repr(result)
    assert "<table" in result._repr_html_()


def test_validation(draws):
    contrib, total = draws
    kwargs = {"attribution": "distribution_change", "quantity": "q"}
    with pytest.raises(ConfigError, match="attribution"):
        ContributionResult(contrib, total, NODES, "c", attribution="anomaly", quantity="q")
    with pytest.raises(TypeError):
        ContributionResult(contrib, total, NODES, "c", kind="distribution_change", quantity="q")
    with pytest.raises(ConfigError, match="total"):
        ContributionResult(contrib, total[:3], NODES, "c", **kwargs)
    with pytest.raises(ConfigError, match="target"):
        ContributionResult(contrib, total, NODES, 3, **kwargs)
    with pytest.raises(ConfigError, match="quantity"):
        ContributionResult(contrib, total, NODES, "c", attribution="distribution_change", quantity=3)
    with pytest.raises(ConfigError, match="prob_changed"):
        ContributionResult(contrib, total, NODES, "c", prob_changed=np.ones(2), **kwargs)
    bad = contrib.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ContributionResult(bad, total, NODES, "c", **kwargs)
