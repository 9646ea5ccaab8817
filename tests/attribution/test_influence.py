"""intrinsic_causal_influence: the linear-Gaussian closed form, efficiency, Monte Carlo, bad input."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br

GRAPH = nx.DiGraph([("A", "B"), ("B", "T"), ("C", "T")])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1.0, 400)
    c = rng.normal(0, 0.5, 400)
    b = 2.0 * a + rng.normal(0, 1.0, 400)
    t = 0.5 * b - c + rng.normal(0, 0.3, 400)
    return pd.DataFrame({"A": a, "B": b, "C": c, "T": t})


@pytest.fixture(scope="module")
def gaussian(data):
    return br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=40).fit(data, seed=0)


def test_closed_form_equals_a_squared_var(gaussian):
    res = br.intrinsic_causal_influence(gaussian, "T", seed=0)
    assert res.method_info["engine"] == "analytic"
    m = gaussian.mechanisms_
    sd = {n: m[n].noise_params_["sigma"] for n in ("A", "B", "C", "T")}
    pa_t = list(gaussian.parents_["T"])
    b_t, c_t = m["T"].coef_[:, pa_t.index("B")], m["T"].coef_[:, pa_t.index("C")]
    b_b = m["B"].coef_[:, 0]
    expected = {"A": (b_b * b_t * sd["A"]) ** 2, "B": (b_t * sd["B"]) ** 2, "C": (c_t * sd["C"]) ** 2, "T": sd["T"] ** 2}
    for node, want in expected.items():
        np.testing.assert_allclose(res.contributions[:, res.nodes.index(node)], want.numpy(), rtol=1e-8)
    np.testing.assert_allclose(res.contributions.sum(1), res.total, rtol=1e-10)
    # truth: A 0.25 * 4 * 1 = 1, B 0.25, C 0.25, T 0.09
    table = res.summary().set_index("node")
    assert table.index[0] == "A" and 0.7 < table.loc["A", "median"] < 1.3


def test_monte_carlo_agrees_with_closed_form(gaussian):
    exact = br.intrinsic_causal_influence(gaussian, "T", seed=0)
    mc = br.intrinsic_causal_influence(gaussian, "T", engine="mc", num_outer=600, num_inner=8, seed=0)
    assert mc.method_info["engine"] == "mc" and mc.mc_std_error is not None
    np.testing.assert_allclose(mc.contributions.sum(1), mc.total, rtol=1e-4, atol=1e-5)
    med_mc, med_exact = np.median(mc.contributions, 0), np.median(exact.contributions, 0)
    np.testing.assert_allclose(med_mc, med_exact, atol=0.15 * med_exact.sum())
    assert mc.summary()["node"].iloc[0] == "A"


def test_permutation_equals_exact_for_the_additive_closed_form(gaussian):
    exact = br.intrinsic_causal_influence(gaussian, "T", seed=0)
    perm = br.intrinsic_causal_influence(gaussian, "T", shapley="permutation", num_permutations=4, seed=0)
    np.testing.assert_allclose(perm.contributions, exact.contributions, rtol=1e-9)


def test_nonlinear_model_and_custom_measure(data):
    scm = br.BayesianSCM(GRAPH, mechanisms="spline", num_draws=10).fit(data, seed=0)
    state = torch.random.get_rng_state()
    res = br.intrinsic_causal_influence(scm, "T", num_outer=200, num_inner=4, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert res.method_info["engine"] == "mc"
    np.testing.assert_allclose(res.contributions.sum(1), res.total, rtol=1e-4, atol=1e-5)
    assert abs(np.median(res.total) - data["T"].var()) < 0.3 * data["T"].var()
    spread = br.intrinsic_causal_influence(scm, "T", measure=lambda x: x.std(-1), num_outer=100, num_inner=4, seed=1)
    assert spread.method_info["engine"] == "mc" and np.isfinite(spread.contributions).all()
    again = br.intrinsic_causal_influence(scm, "T", num_outer=200, num_inner=4, seed=1)
    np.testing.assert_array_equal(res.contributions, again.contributions)


def test_upstream_target_only_counts_its_ancestors(gaussian):
    res = br.intrinsic_causal_influence(gaussian, "B", seed=0)
    assert set(res.nodes) == {"A", "B"}
    idata = res.to_inference_data()
    assert idata.posterior["contribution"].shape == (1, 40, 2)
    assert "variance of 'B'" in repr(res)


def test_bad_input(gaussian, data):
    with pytest.raises(br.GraphError):
        br.intrinsic_causal_influence(gaussian, "nope")
    with pytest.raises(br.NotFittedError):
        br.intrinsic_causal_influence(br.BayesianSCM(GRAPH), "T")
    with pytest.raises(br.ConfigError, match="BayesianSCM"):
        br.intrinsic_causal_influence(GRAPH, "T")
    with pytest.raises(br.ConfigError, match="measure"):
        br.intrinsic_causal_influence(gaussian, "T", measure="entropy")
    with pytest.raises(br.ConfigError, match="engine"):
        br.intrinsic_causal_influence(gaussian, "T", engine="fast")
    with pytest.raises(br.ConfigError):
        br.intrinsic_causal_influence(gaussian, "T", num_outer=1)
    spline = br.BayesianSCM(GRAPH, mechanisms="spline", num_draws=4).fit(data, seed=0)
    with pytest.raises(br.ConfigError, match="analytic"):
        br.intrinsic_causal_influence(spline, "T", engine="analytic")
    with pytest.raises(br.ConfigError, match="measure"):
        br.intrinsic_causal_influence(spline, "T", measure=lambda x: x, num_outer=8, num_inner=2)
