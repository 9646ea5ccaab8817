"""Tests of bayesrca.results.attribution (AttributionResult)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesrca.exceptions import ConfigError, DataError
from bayesrca.results import AttributionResult

NODES = ["a", "b", "c", "d"]
SUMMARY_COLUMNS = [
    "anomaly", "node", "mean", "median", "sd", "lower", "upper", "prob_top", "prob_positive", "rank_median"
]


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@pytest.fixture
def draws():
    rng = np.random.default_rng(0)
    loc = np.array([[0.2, 2.0, -0.5, 1.0], [1.5, 0.1, 0.0, 3.0], [0.0, 0.0, 0.5, 0.2]])
    contrib = rng.normal(loc, 0.7, size=(300, 3, 4))
    return contrib, contrib.sum(axis=2)


@pytest.fixture
def result(draws):
    contrib, its = draws
    return AttributionResult(
        contrib, its, NODES, ["z", "y", 5], "d", method_info={"shapley": "exact", "num_draws": 300}
    )


def test_attributes_are_read_only(result, draws):
    assert result.num_draws == 300
    assert result.nodes == tuple(NODES)
    assert result.anomalies == ("z", "y", 5)
    assert result.target == "d"
    assert result.mc_std_error is None
    assert result.method_info["shapley"] == "exact"
    np.testing.assert_array_equal(result.contributions, draws[0])
    with pytest.raises(ValueError):
        result.contributions[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        result.target = "a"
    with pytest.raises(TypeError):
        result.method_info["x"] = 1


def test_summary_columns_and_sorting(result):
    table = result.summary()
    assert list(table.columns) == SUMMARY_COLUMNS
    assert len(table) == 12
    # anomaly order as given (not lexicographic), medians descending within an anomaly
    assert list(pd.unique(table["anomaly"])) == ["z", "y", 5]
    for _, group in table.groupby("anomaly", sort=False):
        assert (np.diff(group["median"].to_numpy()) <= 0).all()
        assert list(group["rank_median"]) == [1, 2, 3, 4]
        assert sorted(group["node"]) == NODES
    assert list(table["node"][:4]) == ["b", "d", "a", "c"]
    assert list(table["node"][4:8]) == ["d", "a", "b", "c"]


def test_summary_values_match_hand_computation(result, draws):
    contrib = draws[0]
    table = result.summary(0.8).set_index(["anomaly", "node"])
    row = table.loc[("y", "a")]
    x = contrib[:, 1, 0]
    assert row["mean"] == pytest.approx(x.mean())
    assert row["median"] == pytest.approx(np.median(x))
    assert row["sd"] == pytest.approx(x.std(ddof=1))
    assert row["lower"] == pytest.approx(np.quantile(x, 0.1))
    assert row["upper"] == pytest.approx(np.quantile(x, 0.9))
    assert row["prob_positive"] == pytest.approx((x > 0).mean())
    top = contrib[:, 1, :].argmax(axis=1)
    assert row["prob_top"] == pytest.approx((top == 0).mean())


@pytest.mark.parametrize("ci_kind", ["eti", "hdi"])
def test_intervals_contain_median_and_prob_top_sums_to_one(result, ci_kind):
    table = result.summary(0.9, ci_kind=ci_kind)
    assert (table["lower"] <= table["median"]).all()
    assert (table["median"] <= table["upper"]).all()
    np.testing.assert_allclose(table.groupby("anomaly", sort=False)["prob_top"].sum(), 1.0)


def test_prob_top_splits_ties_evenly():
    contrib = np.array([[[1.0, 1.0, 0.0]], [[2.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], [[0.0, -1.0, 3.0]]])
    res = AttributionResult(contrib, contrib.sum(axis=2), ["a", "b", "c"], [0], "c")
    prob = res.summary().set_index("node")["prob_top"]
    # draw 1: a,b tie; draw 2: a; draw 3: three-way tie; draw 4: c
    assert prob["a"] == pytest.approx((0.5 + 1 + 1 / 3) / 4)
    assert prob["b"] == pytest.approx((0.5 + 1 / 3) / 4)
    assert prob["c"] == pytest.approx((1 / 3 + 1) / 4)
    assert res.summary()["prob_positive"].tolist() == pytest.approx([0.5, 0.25, 0.25])


def test_hdi_narrower_than_eti_on_skewed_draws():
    rng = np.random.default_rng(1)
    contrib = rng.exponential(1.0, size=(2000, 2, 3)) * np.array([1.0, 2.0, 5.0])
    res = AttributionResult(contrib, contrib.sum(axis=2), ["a", "b", "c"], ["p", "q"], "c")
    eti, hdi = res.summary(ci_kind="eti"), res.summary(ci_kind="hdi")
    assert ((hdi["upper"] - hdi["lower"]) <= (eti["upper"] - eti["lower"])).all()
    assert ((hdi["upper"] - hdi["lower"]) < (eti["upper"] - eti["lower"])).any()
    assert (hdi["lower"] < eti["lower"]).all()  # HDI of an exponential hugs zero
    arviz = _arviz()
    expected = arviz.hdi(contrib[:, 0, 2], hdi_prob=0.9)
    got = hdi.set_index(["anomaly", "node"]).loc[("p", "c"), ["lower", "upper"]]
    np.testing.assert_allclose(got.to_numpy(dtype=float), expected)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.9", 0.0, 1.0, None, True, float("nan")])
def test_ci_prob_validation(result, bad):
    with pytest.raises(ConfigError, match="ci_prob"):
        result.summary(bad)
    with pytest.raises(ConfigError, match="ci_prob"):
        result.it_score_summary(bad)


def test_ci_kind_validation(result):
    with pytest.raises(ConfigError, match="ci_kind.*'median'"):
        result.summary(ci_kind="median")
    with pytest.raises(ConfigError, match="ci_kind"):
        result.it_score_summary(ci_kind="x")
    with pytest.raises(TypeError):
        result.summary(kind="eti")  # renamed to ci_kind
    with pytest.raises(ConfigError, match="k must"):
        result.top_causes(k=0)


def test_shape_validation(draws):
    contrib, its = draws
    with pytest.raises(ConfigError, match="contributions"):
        AttributionResult(contrib[0], its, NODES, [1, 2, 3], "d")
    with pytest.raises(ConfigError, match="it_scores"):
        AttributionResult(contrib, its[:, :2], NODES, [1, 2, 3], "d")
    with pytest.raises(ConfigError, match="nodes"):
        AttributionResult(contrib, its, NODES[:3], [1, 2, 3], "d")
    with pytest.raises(ConfigError, match="unique"):
        AttributionResult(contrib, its, ["a", "a", "b", "c"], [1, 2, 3], "d")
    with pytest.raises(ConfigError, match="anomalies"):
        AttributionResult(contrib, its, NODES, [1, 2], "d")
    with pytest.raises(ConfigError, match="mc_std_error"):
        AttributionResult(contrib, its, NODES, [1, 2, 3], "d", mc_std_error=np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="target"):
        AttributionResult(contrib, its, NODES, [1, 2, 3], None)
    bad = contrib.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        AttributionResult(bad, its, NODES, [1, 2, 3], "d")


def test_mc_se_column(draws):
    contrib, its = draws
    se = np.arange(12.0).reshape(3, 4)
    table = AttributionResult(contrib, its, NODES, [1, 2, 3], "d", mc_std_error=se).summary()
    assert list(table.columns) == SUMMARY_COLUMNS + ["mc_se"]
    assert table.set_index(["anomaly", "node"]).loc[(2, "c"), "mc_se"] == 6.0


def test_it_score_summary_and_top_causes(result, draws):
    its = result.it_score_summary()
    assert list(its.columns) == ["anomaly", "mean", "median", "sd", "lower", "upper"]
    assert list(its["anomaly"]) == ["z", "y", 5]
    np.testing.assert_allclose(its["median"], np.median(draws[1], axis=0))
    top = result.top_causes(k=2)
    assert len(top) == 6
    assert list(top["node"][:2]) == ["b", "d"]
    assert len(result.top_causes(k=10)) == 12
    pd.testing.assert_frame_equal(result.top_causes(2), top)  # k is the first argument


def test_to_inference_data(result, draws):
    arviz = _arviz()
    idata = result.to_inference_data()
    post = idata.posterior
    assert post["contribution"].dims == ("chain", "draw", "anomaly", "node")
    assert post["contribution"].shape == (1, 300, 3, 4)
    assert post["it_score"].dims == ("chain", "draw", "anomaly")
    assert list(post["anomaly"].values) == ["z", "y", "5"]  # mixed labels become str
    assert list(post["node"].values) == NODES
    assert post.attrs["target"] == "d"
    assert post.attrs["num_draws"] == "300"
    np.testing.assert_allclose(post["contribution"].values[0], draws[0])
    summary = arviz.summary(idata)
    assert len(summary) == 12 + 3


def test_to_inference_data_keeps_unique_numeric_labels(draws):
    contrib, its = draws
    idata = AttributionResult(contrib, its, NODES, [10, 20, 30], "d").to_inference_data()
    assert list(idata.posterior["anomaly"].values) == [10, 20, 30]


def test_to_dataframe(result, draws):
    long = result.to_dataframe()
    assert list(long.columns) == ["draw", "anomaly", "node", "contribution"]
    assert len(long) == 300 * 3 * 4
    sel = long[(long["anomaly"] == "y") & (long["node"] == "c")]
    np.testing.assert_allclose(sel["contribution"], draws[0][:, 1, 2])


def test_reprs(result):
    text = result._repr_html_()
    assert "<table" in text and ">b<" in text and "'d'" in text
    assert "AttributionResult" in repr(result)


def test_hdi_summary_and_top_causes_take_ci_kind(result):
    top = result.top_causes(1, ci_prob=0.8, ci_kind="hdi")
    assert len(top) == 3 and (top["rank_median"] == 1).all()
    its = result.it_score_summary(0.8, ci_kind="hdi")
    assert (its["lower"] <= its["median"]).all()


def test_plot_labels_name_the_signed_columns(result):
    words = result.plot_labels("z")
    assert words["top_column"] == "prob_top" and words["top_column"] in result.summary().columns
    assert words["title"] == "anomaly z"


def test_unit_position_and_units(result):
    assert result.units == result.anomalies == ("z", "y", 5)
    assert result.unit_position() == 0 and result.unit_position(5) == 2
    with pytest.raises(ConfigError, match="Unknown anomaly"):
        result.unit_position("nope")
    assert result.draws is result.contributions


def test_pooled_window_sums_rows_per_draw_and_ranks_the_window(result, draws):
    pooled = result.pooled()
    assert pooled.anomalies == ("window",) and pooled.method_info["pooled"] == [str(a) for a in result.anomalies]
    contrib, its = draws
    np.testing.assert_allclose(pooled.contributions[:, 0], contrib.sum(1))
    np.testing.assert_allclose(pooled.it_scores[:, 0], its.sum(1))
    # efficiency survives pooling, and prob_top is a posterior over the window
    np.testing.assert_allclose(pooled.summary()["prob_top"].sum(), 1.0)
    one = result.pooled([result.anomalies[0]], label="first")
    np.testing.assert_allclose(one.contributions[:, 0], contrib[:, 0])
    with pytest.raises(ConfigError, match="unknown anomaly"):
        result.pooled(["nope"])
    with pytest.raises(ConfigError, match="empty"):
        result.pooled([])


def test_pooling_rows_that_share_a_cause_sharpens_prob_top():
    rng = np.random.default_rng(0)
    # three rows, each weakly pointing at node "a" (0.3 nats ahead of "b" with noise of sd 0.5)
    contrib = np.stack([rng.normal([1.3, 1.0], 0.5, size=(400, 2)) for _ in range(3)], 1)
    res = AttributionResult(contrib, contrib.sum(-1), nodes=["a", "b"], anomalies=[0, 1, 2], target="t")
    per_row = res.summary().query("node == 'a'")["prob_top"].to_numpy()
    window = res.pooled().summary().set_index("node")["prob_top"]["a"]
    assert window > per_row.max()
