"""distribution_change: efficiency per draw, the Bayesian change criterion, the right node, bad input."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br

GRAPH = nx.DiGraph([("X0", "X1"), ("X1", "X2"), ("Z", "X2")])


def _data(n: int, rng: np.random.Generator, *, b1: float = 1.0, c1: float = 0.0) -> pd.DataFrame:
    """X0 -> X1 -> X2 <- Z, linear-Gaussian; ``b1``/``c1`` are X1's slope and intercept."""
    x0 = rng.normal(0, 1, n)
    z = rng.normal(1, 1, n)
    x1 = c1 + b1 * x0 + rng.normal(0, 0.5, n)
    x2 = 2.0 * x1 - z + rng.normal(0, 0.5, n)
    return pd.DataFrame({"X0": x0, "X1": x1, "X2": x2, "Z": z})


@pytest.fixture(scope="module")
def shifted():
    rng = np.random.default_rng(0)
    return _data(300, rng), _data(300, rng, c1=1.0)  # X1's intercept moves: mean of X2 up by 2


@pytest.fixture(scope="module")
def result(shifted):
    old, new = shifted
    return br.distribution_change(GRAPH, old, new, "X2", mechanisms="gaussian", num_draws=60, seed=1)


def test_changed_node_is_top_and_others_get_zero(result):
    table = result.summary().set_index("node")
    assert table.index[0] == "X1" and table.loc["X1", "prob_top_abs"] > 0.95
    assert table.loc["X1", "prob_changed"] > 0.99
    assert (table.loc[["X0", "Z", "X2"], "prob_changed"] < 0.2).all()
    assert 1.6 < table.loc["X1", "median"] < 2.4  # true contribution: 2 * 1.0
    for node in ("X0", "Z", "X2"):  # unchanged: exactly 0 wherever the draw deems them unchanged
        assert abs(table.loc[node, "median"]) < 0.05
    unchanged = result.changed == 0
    assert np.all(result.contributions[unchanged] == 0.0)


def test_efficiency_per_draw(result):
    np.testing.assert_allclose(result.contributions.sum(1), result.total, atol=1e-9)
    assert result.method_info["engine"] == "exact mean"


def test_monte_carlo_summaries_are_efficient(shifted):
    old, new = shifted
    for summary in ("variance", "kl", lambda x: x.quantile(0.9, dim=-1)):
        res = br.distribution_change(GRAPH, old, new, "X2", mechanisms="gaussian", num_draws=20,
                                     num_mc_samples=400, summary=summary, seed=2)
        np.testing.assert_allclose(res.contributions.sum(1), res.total, atol=1e-5)
        assert res.method_info["engine"] == "mc" and res.mc_std_error is not None
    mc = br.distribution_change(GRAPH, old, new, "X2", mechanisms="gaussian", num_draws=20,
                                num_mc_samples=2000, summary=lambda x: x.mean(-1), seed=2)
    assert mc.summary().iloc[0]["node"] == "X1"
    assert abs(np.median(mc.total) - 2.0) < 0.4


def test_no_change_gives_low_probability_and_small_contributions():
    rng = np.random.default_rng(3)
    old, new = _data(300, rng), _data(300, rng)
    res = br.distribution_change(GRAPH, old, new, "X2", mechanisms="gaussian", num_draws=40, seed=0)
    assert (res.prob_changed < 0.2).all()
    assert np.abs(np.median(res.contributions, 0)).max() < 0.05


def test_slope_change_and_invariant_nodes(shifted):
    rng = np.random.default_rng(4)
    old, new = _data(300, rng), _data(300, rng, b1=2.0, c1=1.0)
    res = br.distribution_change(GRAPH, old, new, "X2", mechanisms="gaussian", num_draws=30, seed=0)
    assert res.summary().iloc[0]["node"] == "X1"
    fixed = br.distribution_change(GRAPH, old, new, "X2", mechanisms="gaussian", num_draws=30, seed=0,
                                   invariant_nodes=["X1"])
    assert fixed.prob_changed[list(fixed.nodes).index("X1")] == 0.0
    assert np.all(fixed.contributions[:, list(fixed.nodes).index("X1")] == 0.0)


def test_fitted_model_reproducible_and_rng_untouched(shifted):
    old, new = shifted
    scm = br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=20).fit(old, seed=0)
    state = torch.random.get_rng_state()
    a = br.distribution_change(scm, old, new, "X2", seed=5)
    b = br.distribution_change(scm, old, new, "X2", seed=5)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(a.contributions, b.contributions)
    assert a.num_draws == 20


def test_result_interfaces(result):
    idata = result.to_inference_data()
    assert idata.posterior["contribution"].shape == (1, 60, 4)
    assert idata.posterior["total"].shape == (1, 60)
    assert "changed" in idata.posterior
    assert set(result.summary().columns) >= {"node", "median", "lower", "upper", "prob_top_abs", "prob_changed"}
    assert result.total_summary()["median"].iloc[0] == pytest.approx(np.median(result.total))
    assert len(result.to_dataframe()) == 60 * 4
    assert "distribution_change" in repr(result)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = result.plot()
    assert "change of the mean" in ax.get_xlabel()
    result.plot_graph(GRAPH)
    plt.close("all")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"target_node": "nope"}, br.GraphError),
        ({"prior_change": 1.5}, br.ConfigError),
        ({"summary": "median"}, br.ConfigError),
        ({"summary": lambda x: x}, br.ConfigError),
        ({"invariant_nodes": ["nope"]}, br.GraphError),
        ({"invariant_nodes": "X1"}, br.ConfigError),
        ({"num_mc_samples": 0}, br.ConfigError),
        ({"shapley": "fast"}, br.ConfigError),
        ({"num_draws": 0}, br.ConfigError),
    ],
)
def test_bad_input(shifted, kwargs, error):
    old, new = shifted
    args = {"target_node": "X2", "mechanisms": "gaussian", "num_draws": 5, "num_mc_samples": 50, **kwargs}
    if "summary" in kwargs:
        args["num_draws"] = 5
    with pytest.raises(error):
        br.distribution_change(GRAPH, old, new, seed=0, **args)


def test_bad_frames_and_models(shifted):
    old, new = shifted
    with pytest.raises(br.DataError, match="new_data"):
        br.distribution_change(GRAPH, old, new.drop(columns="X1"), "X2", mechanisms="gaussian", num_draws=5)
    with pytest.raises(br.GraphError):
        br.distribution_change("not a graph", old, new, "X2")
    with pytest.raises(br.ConfigError, match="BayesianSCM"):
        br.distribution_change(br.BayesianSCM(GRAPH), old, new, "X2", mechanisms="linear")


