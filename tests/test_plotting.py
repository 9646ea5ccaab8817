"""Tests of bayesrca.plotting (headless, matplotlib's Agg backend): forest plot, graph, IT score plot.

Includes the regression test of issue 15: the normal rows of the IT score plot are scored with the
attribution's own base score and seed, so they are on the anomaly's scale.
"""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

import bayesrca as br  # noqa: E402
from bayesrca import plotting  # noqa: E402
from bayesrca.exceptions import ConfigError  # noqa: E402
from bayesrca.results import AttributionResult, ContributionResult  # noqa: E402
from bayesrca.scores import reference_it_scores, reference_it_scores_for  # noqa: E402

NODES = ["a", "b", "c", "d"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    loc = np.array([[0.2, 2.0, -0.5, 1.0], [1.5, 0.1, 0.0, 3.0], [0.0, 0.0, 0.5, 0.2]])
    contrib = rng.normal(loc, 0.7, size=(300, 3, 4))
    return AttributionResult(contrib, contrib.sum(axis=2), NODES, ["z", "y", 5], "d")


@pytest.fixture
def change():
    rng = np.random.default_rng(1)
    contrib = rng.normal([0.5, -3.0, 1.0], 0.2, size=(100, 3))
    return ContributionResult(contrib, contrib.sum(1), ["x", "y", "t"], "t", attribution="distribution_change",
                              quantity="change of the mean of 't'")


@pytest.fixture(scope="module")
def chain():
    """A fitted a -> b model and an attribution with a non-default base score and seed."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    frame = pd.DataFrame({"a": a, "b": a + rng.normal(0, 0.5, 300)})
    scm = br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="gaussian", num_draws=30).fit(frame, seed=0)
    res = br.attribute_anomalies(scm, "b", pd.DataFrame({"a": [3.0], "b": [4.0]}), seed=7, base_score="upper")
    return scm, res


def test_plotting_imports_nothing_private_and_not_results():
    tree = ast.parse(Path(plotting.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith(("bayesrca.results", "results")), node.module
            assert not any(a.name.startswith("_") for a in node.names), [a.name for a in node.names]
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("bayesrca.results") for a in node.names)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "result":
            assert not node.attr.startswith("_"), f"plotting reads result.{node.attr}"


def test_forest_plot_has_one_row_per_node(result, tmp_path):
    ax = plotting.plot_forest(result)
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["b", "d", "a", "c"]  # largest median at the top
    assert "'d'" in ax.get_title() and "anomaly z" in ax.get_title()
    assert ax.get_xlabel().startswith("contribution to IT outlier score")
    right = [c for c in ax.child_axes][0]
    assert right.get_ylabel() == "P(largest contributor)"
    ax.figure.savefig(tmp_path / "forest.png")
    _, other = plt.subplots()
    assert result.plot(anomaly=5, ax=other) is other
    with pytest.raises(ConfigError, match="Unknown anomaly"):
        result.plot(anomaly="nope")
    with pytest.raises(ConfigError, match="inner_prob"):
        result.plot(inner_prob=0.95)
    with pytest.raises(ConfigError, match="ci_prob"):
        result.plot(ci_prob=1.0)


def test_forest_plot_can_show_only_the_largest_contributions(result):
    ax = result.plot(max_nodes=2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "d"]  # |median| 2.0 and 1.0
    assert "2 nodes with smaller |median| not shown" in ax.get_title()
    assert len(result.plot(max_nodes=10).get_yticklabels()) == 4
    with pytest.raises(ConfigError, match="max_nodes"):
        result.plot(max_nodes=0)


def test_forest_plot_of_a_contribution_result_uses_absolute_columns(change):
    ax = change.plot()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["y", "t", "x"]  # by |median|
    right = ax.child_axes[0]
    assert right.get_ylabel() == "P(largest |contribution|)"
    assert [t.get_text() for t in right.get_yticklabels()][0] == "1.00"
    assert "distribution change" in ax.get_title() and "change of the mean of 't'" in ax.get_xlabel()


def test_plot_graph_colours_players_and_greys_the_rest():
    rng = np.random.default_rng(5)
    contributions = rng.normal(size=(40, 1, 3))
    contributions[..., 0] += 3.0
    result = AttributionResult(contributions, contributions.sum(-1), ["a", "b", "t"], [0], "t")
    graph = nx.DiGraph([("a", "b"), ("b", "t"), ("t", "u")])  # u is downstream: not a player
    ax = result.plot_graph(graph)
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("a\n") and "P(top) 1.00" in t for t in texts)
    assert "u" in texts
    assert "Contributions to the outlier at 't'" in ax.get_title()
    with pytest.raises(ConfigError, match="not in the graph"):
        result.plot_graph(nx.DiGraph([("x", "y")]))
    with pytest.raises(ConfigError, match="DiGraph"):
        plotting.plot_graph(result, [("a", "b")])


def test_plot_graph_max_nodes_keeps_the_largest_and_their_paths_to_the_target():
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


def test_plot_graph_of_a_contribution_result(change):
    ax = change.plot_graph(nx.DiGraph([("x", "y"), ("y", "t")]))
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("y\n") and "P(top |c|) 1.00" in t for t in texts)


def test_plot_it_score_against_normal_rows(chain):
    scm, res = chain
    ax = res.plot_it_score(scm)
    assert "of normal rows score at least its median" in ax.get_title()
    assert len(ax.patches) > 50  # two histograms and the interval
    assert "IT outlier score at 'b'" in ax.get_xlabel() and ax.get_ylabel() == "density"
    with pytest.raises(ConfigError, match="num_rows"):
        plotting.plot_it_score(res, scm, num_rows=0)
    with pytest.raises(ConfigError, match="ci_prob"):
        res.plot_it_score(scm, ci_prob=1.5)


def _grey_histogram(ax: Axes) -> tuple[np.ndarray, np.ndarray]:
    """Heights and bin edges of the first histogram (the normal rows)."""
    bars = ax.containers[0].patches
    edges = np.array([p.get_x() for p in bars] + [bars[-1].get_x() + bars[-1].get_width()])
    return np.array([p.get_height() for p in bars]), edges


def test_it_score_plot_scores_normal_rows_with_the_results_base_score_and_seed(chain):
    """Regression (issue 15): the reference rows used the default base score and seed 0."""
    scm, res = chain
    assert res.method_info["base_score"] == "upper" and res.method_info["seed"] == 7
    expected = reference_it_scores(scm, "b", base_score="upper", seed=7)
    np.testing.assert_array_equal(reference_it_scores_for(res, scm), expected)
    default = reference_it_scores(scm, "b")  # what the plot used before: median_cdf, seed 0
    assert not np.allclose(np.sort(default), np.sort(expected))
    heights, edges = _grey_histogram(plotting.plot_it_score(res, scm))
    np.testing.assert_allclose(heights, np.histogram(expected, bins=edges, density=True)[0])
    assert not np.allclose(heights, np.histogram(default, bins=edges, density=True)[0])
    # precomputed reference scores are used as given
    heights, edges = _grey_histogram(plotting.plot_it_score(res, scm, normal_scores=default))
    np.testing.assert_allclose(heights, np.histogram(default, bins=edges, density=True)[0])


def test_plot_graph_check_marks_the_rejected_independences():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = a + rng.normal(size=200)
    data = pd.DataFrame({"a": a, "b": b, "c": 2 * b + a + rng.normal(size=200)})
    table = br.check_graph(nx.DiGraph([("a", "b"), ("b", "c")]), data, mechanisms="gaussian", seed=0)
    ax = plotting.plot_graph_check(table)
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "c ⊥ a | b" in labels and "PIT a" in labels
    colours = ax.collections[0].get_facecolors()
    red = [tuple(np.round(c[:3], 3)) == tuple(np.round(matplotlib.colors.to_rgb("tab:red"), 3)) for c in colours]
    assert red[labels.index("c ⊥ a | b")] and sum(red) == 1
    with pytest.raises(ConfigError, match="check_graph"):
        plotting.plot_graph_check(pd.DataFrame({"x": [1]}))
    plt.close("all")
