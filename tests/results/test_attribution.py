"""Tests of bayesrca.results (AttributionResult, ScoreResult) and bayesrca.plotting."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayesrca.exceptions import ConfigError, DataError
from bayesrca.results import AttributionResult, ScoreResult

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize("kind", ["eti", "hdi"])
def test_intervals_contain_median_and_prob_top_sums_to_one(result, kind):
    table = result.summary(0.9, kind=kind)
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
    eti, hdi = res.summary(kind="eti"), res.summary(kind="hdi")
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


def test_kind_validation(result):
    with pytest.raises(ConfigError, match="'median'"):
        result.summary(kind="median")
    with pytest.raises(ConfigError, match="kind"):
        ScoreResult(np.zeros((2, 1, 1)), [0], ["a"]).summary(0.9, kind="x")
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


def test_plot_returns_axes_with_one_row_per_node(result, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    ax = result.plot()
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 4 and labels[0] == "b"  # largest median at the top
    assert "'d'" in ax.get_title() and "z" in ax.get_title()
    ax.figure.savefig(tmp_path / "forest.png")
    _, other = plt.subplots()
    assert result.plot(anomaly=5, ax=other) is other
    with pytest.raises(ConfigError, match="Unknown anomaly"):
        result.plot(anomaly="nope")
    with pytest.raises(ConfigError, match="inner_prob"):
        result.plot(inner_prob=0.95)
    plt.close("all")


def test_forest_plot_can_show_only_the_largest_contributions(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = result.plot(max_nodes=2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "d"]  # |median| 2.0 and 1.0
    assert "2 nodes with smaller |median| not shown" in ax.get_title()
    assert len(result.plot(max_nodes=10).get_yticklabels()) == 4
    with pytest.raises(ConfigError, match="max_nodes"):
        result.plot(max_nodes=0)
    plt.close("all")


def test_reprs(result):
    text = result._repr_html_()
    assert "<table" in text and ">b<" in text and "'d'" in text
    assert "AttributionResult" in repr(result)


def test_score_result():
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, np.array([1.0, 3.0, 0.5]), size=(200, 2, 3))
    res = ScoreResult(scores, ["r2", "r1"], ["x", "y", "w"], kind="conditional")
    table = res.summary()
    assert list(table.columns) == ["row", "node", "mean", "median", "sd", "lower", "upper"]
    assert list(table["row"]) == ["r2"] * 3 + ["r1"] * 3
    assert list(table["node"][:3]) == ["y", "x", "w"]
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    wide = res.median()
    assert list(wide.index) == ["r2", "r1"] and list(wide.columns) == ["x", "y", "w"]
    np.testing.assert_allclose(wide.to_numpy(), np.median(scores, axis=0))
    idata = res.to_inference_data()
    assert idata.posterior["it_score"].dims == ("chain", "draw", "row", "node")
    assert idata.posterior["it_score"].shape == (1, 200, 2, 3)
    assert "<table" in res._repr_html_() and "conditional" in repr(res)
    with pytest.raises(ConfigError, match="scores"):
        ScoreResult(scores[0], ["r2", "r1"], ["x", "y", "w"])
    with pytest.raises(ConfigError, match="rows"):
        ScoreResult(scores, ["r2"], ["x", "y", "w"])


def test_importing_results_does_not_import_matplotlib():
    # Load bayesrca.results under a stub package so that other modules that
    # bayesrca/__init__.py may import cannot affect the answer.
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('bayesrca'); pkg.__path__ = [{str(ROOT / 'bayesrca')!r}]\n"
        "sys.modules['bayesrca'] = pkg\n"
        "import bayesrca.results, bayesrca.plotting\n"
        "print('matplotlib' in sys.modules, 'arviz' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"



_SHAPES = st.tuples(st.integers(1, 12), st.integers(1, 3), st.integers(1, 4))
# small integers make ties between nodes frequent
_DRAWS = _SHAPES.flatmap(lambda s: arrays(np.float64, s, elements=st.integers(-3, 3).map(float)))


@settings(max_examples=60, deadline=None)
@given(_DRAWS, st.sampled_from(["eti", "hdi"]), st.floats(0.05, 0.95))
def test_summary_invariants_hold_for_arbitrary_draws(contrib, kind, prob):
    num_draws, num_anom, num_nodes = contrib.shape
    nodes = [f"n{j}" for j in range(num_nodes)]
    res = AttributionResult(contrib, contrib.sum(axis=2), nodes, list(range(num_anom)), "n0")
    table = res.summary(prob, kind=kind)
    assert len(table) == num_anom * num_nodes
    assert (table["lower"] <= table["upper"]).all()
    np.testing.assert_allclose(table.groupby("anomaly")["prob_top"].sum(), 1.0)
    assert table["prob_positive"].between(0, 1).all()
    if kind == "eti":
        assert ((table["lower"] <= table["median"]) & (table["median"] <= table["upper"])).all()


def test_plot_graph_colours_players_and_greys_the_rest():
    import matplotlib

    matplotlib.use("Agg")
    import networkx as nx

    rng = np.random.default_rng(5)
    contributions = rng.normal(size=(40, 1, 3))
    contributions[..., 0] += 3.0
    result = AttributionResult(contributions, contributions.sum(-1), ["a", "b", "t"], [0], "t")
    graph = nx.DiGraph([("a", "b"), ("b", "t"), ("t", "u")])  # u is downstream: not a player
    ax = result.plot_graph(graph)
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("a\n") and "P(top) 1.00" in t for t in texts)
    assert "u" in texts
    with pytest.raises(ConfigError, match="not in the graph"):
        result.plot_graph(nx.DiGraph([("x", "y")]))


def test_plot_graph_max_nodes_keeps_the_largest_and_their_paths_to_the_target():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    contributions = np.zeros((10, 1, 5))
    contributions[..., 0] = 4.0  # a: largest, reaches t through m
    contributions[..., 3] = 0.1
    result = AttributionResult(contributions, contributions.sum(-1), ["a", "m", "b", "c", "t"], [0], "t")
    graph = nx.DiGraph([("a", "m"), ("m", "t"), ("b", "t"), ("c", "t"), ("t", "u")])
    ax = result.plot_graph(graph, max_nodes=1)
    names = {t.get_text().split("\n")[0] for t in ax.texts}
    assert names == {"a", "m", "t"}
    with pytest.raises(ConfigError, match="max_nodes"):
        result.plot_graph(graph, max_nodes=-1)
    plt.close("all")


def test_plot_it_score_against_normal_rows():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx
    import pandas as pd

    import bayesrca as br
    from bayesrca.plotting import plot_it_score

    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    frame = pd.DataFrame({"a": a, "b": a + rng.normal(0, 0.5, 300)})
    scm = br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="gaussian", num_draws=30).fit(frame, seed=0)
    res = br.attribute_anomalies(scm, "b", pd.DataFrame({"a": [3.0], "b": [4.0]}), seed=0)
    ax = res.plot_it_score(scm)
    assert "of normal rows score at least its median" in ax.get_title()
    assert len(ax.patches) > 50  # two histograms and the interval
    assert "IT outlier score at 'b'" in ax.get_xlabel()
    with pytest.raises(ConfigError, match="num_rows"):
        plot_it_score(res, scm, num_rows=0)
    with pytest.raises(ConfigError, match="ci_prob"):
        res.plot_it_score(scm, ci_prob=1.5)
    plt.close("all")
