"""Tests of bayesrca.scores: posterior IT outlier scores, closed form and Monte Carlo."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

import bayesrca as br

NUM_DRAWS = 50


# ---------------------------------------------------------------------------------------------
# Linear-Gaussian chain X0 -> X1: closed form
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gaussian_chain():
    rng = np.random.default_rng(0)
    x0 = 1.0 + 2.0 * rng.normal(size=1000)
    x1 = -0.5 + 0.7 * x0 + rng.normal(size=1000)
    train = pd.DataFrame({"X0": x0, "X1": x1})
    return br.BayesianSCM(nx.DiGraph([("X0", "X1")]), mechanisms="gaussian", num_draws=NUM_DRAWS).fit(train, seed=0)


QUERY = pd.DataFrame(
    {"X0": [1.0, 5.0, -9.0, 3.0, 1.2], "X1": [0.2, 3.0, -2.0, 8.0, -4.0]},
    index=["a", "b", "c", "d", "e"],
)


def _two_sided_score(x, mean, sd):
    """-log(2 min(Phi(z), 1 - Phi(z))), stable in the tails."""
    z = (x - mean) / sd
    return -(np.log(2.0) + np.minimum(norm.logcdf(z), norm.logsf(z)))


def _chain_params(scm):
    m0, m1 = scm.mechanisms_["X0"], scm.mechanisms_["X1"]
    b0 = m0.intercept_.numpy()
    s0 = m0.noise_params_["sigma"].numpy()
    b1 = m1.intercept_.numpy()
    c1 = m1.coef_[:, 0].numpy()
    s1 = m1.noise_params_["sigma"].numpy()
    return b0, s0, b1, c1, s1


def test_marginal_scores_closed_form(gaussian_chain):
    res = br.outlier_scores(gaussian_chain, QUERY, seed=0)
    assert isinstance(res, br.ScoreResult)
    assert res.scores.shape == (NUM_DRAWS, 5, 2)
    assert res.rows == tuple(QUERY.index) and res.nodes == ("X0", "X1") and res.conditioning == "marginal"
    b0, s0, b1, c1, s1 = _chain_params(gaussian_chain)
    x0 = QUERY["X0"].to_numpy()[None, :]
    x1 = QUERY["X1"].to_numpy()[None, :]
    expected0 = _two_sided_score(x0, b0[:, None], s0[:, None])
    mean1 = (b1 + c1 * b0)[:, None]
    sd1 = np.sqrt(c1**2 * s0**2 + s1**2)[:, None]
    expected1 = _two_sided_score(x1, mean1, sd1)
    np.testing.assert_allclose(res.scores[..., 0], expected0, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(res.scores[..., 1], expected1, rtol=1e-8, atol=1e-8)


def test_conditional_scores_closed_form(gaussian_chain):
    res = br.outlier_scores(gaussian_chain, QUERY, seed=0, conditioning="conditional")
    assert res.conditioning == "conditional" and res.scores.shape == (NUM_DRAWS, 5, 2)
    marginal = br.outlier_scores(gaussian_chain, QUERY, seed=0)
    # a root's conditional distribution is its marginal
    np.testing.assert_allclose(res.scores[..., 0], marginal.scores[..., 0], rtol=1e-10, atol=1e-10)
    b0, s0, b1, c1, s1 = _chain_params(gaussian_chain)
    x0 = QUERY["X0"].to_numpy()[None, :]
    x1 = QUERY["X1"].to_numpy()[None, :]
    expected1 = _two_sided_score(x1 - b1[:, None] - c1[:, None] * x0, 0.0, s1[:, None])
    np.testing.assert_allclose(res.scores[..., 1], expected1, rtol=1e-8, atol=1e-8)


def test_one_sided_base_scores_closed_form(gaussian_chain):
    b0, s0, *_ = _chain_params(gaussian_chain)
    x0 = QUERY["X0"].to_numpy()[None, :]
    z = (x0 - b0[:, None]) / s0[:, None]
    upper = br.outlier_scores(gaussian_chain, QUERY, seed=0, base_score="upper").scores[..., 0]
    lower = br.outlier_scores(gaussian_chain, QUERY, seed=0, base_score="lower").scores[..., 0]
    np.testing.assert_allclose(upper, -norm.logsf(z), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(lower, -norm.logcdf(z), rtol=1e-8, atol=1e-8)


def test_score_properties_gaussian(gaussian_chain):
    res = br.outlier_scores(gaussian_chain, QUERY, seed=0)
    assert np.all(res.scores >= 0) and np.all(np.isfinite(res.scores))
    # the value at the posterior median of the marginal scores ~0
    b0, *_ = _chain_params(gaussian_chain)
    centre = pd.DataFrame({"X0": [float(np.median(b0))], "X1": [0.0]})
    assert np.median(br.outlier_scores(gaussian_chain, centre, seed=0).scores[..., 0]) < 0.05
    # scores grow with the distance from the centre
    med = res.median()
    assert list(med.columns) == ["X0", "X1"] and list(med.index) == list(QUERY.index)
    assert med.loc["c", "X0"] > med.loc["b", "X0"] > med.loc["a", "X0"]


# ---------------------------------------------------------------------------------------------
# Non-Gaussian model: Monte Carlo scores against the training data's tail frequencies
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def skewed_model():
    rng = np.random.default_rng(1)
    a = rng.exponential(1.0, size=2000)
    b = 2.0 + 0.8 * a + rng.gamma(2.0, 0.5, size=2000)
    train = pd.DataFrame({"a": a, "b": b})
    scm = br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="linear", num_draws=NUM_DRAWS).fit(train, seed=0)
    return scm, train


QUANTILES = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])


def test_monte_carlo_scores_match_empirical_tail_frequency(skewed_model):
    scm, train = skewed_model
    query = train.quantile(QUANTILES).reset_index(drop=True)
    res = br.outlier_scores(scm, query, seed=0, num_mc_samples=4000)
    assert res.scores.shape == (NUM_DRAWS, len(QUANTILES), 2)
    median = np.median(res.scores, axis=0)
    for j, node in enumerate(["a", "b"]):
        values = train[node].to_numpy()
        cdf = np.array([(values <= v).mean() for v in query[node]])
        empirical = -np.log(np.minimum(2 * np.minimum(cdf, 1 - cdf), 1.0))
        # the smoothed bootstrap's Gaussian kernel leaks mass below the hard lower bound 0 of the
        # exponential root, so its lowest quantile is less surprising than in the data: skip it there
        keep = slice(1, None) if node == "a" else slice(None)
        np.testing.assert_allclose(median[keep, j], empirical[keep], atol=0.15, rtol=0.1, err_msg=node)
    # the training median scores ~0, and the tails score the most
    assert np.all(median[3] < 0.05)
    assert np.all(median[[0, -1]] > median[[1, -2]])


def test_monte_carlo_scores_nonnegative_and_capped(skewed_model):
    scm, train = skewed_model
    query = pd.DataFrame({"a": [0.0, 50.0, 0.5], "b": [-10.0, 100.0, 3.0]})
    res = br.outlier_scores(scm, query, seed=0, num_mc_samples=500)
    assert np.all(res.scores >= 0) and np.all(np.isfinite(res.scores))
    # values beyond every Monte Carlo sample score log(M + 1) at the non-root b ...
    np.testing.assert_allclose(res.scores[:, 1, 1], np.log(501), rtol=1e-6)
    # ... while the root a's marginal is its GPD-tailed noise, scored from its distribution
    # function: beyond the cap, and of the order of the exponential truth -log(2 exp(-50)) = 49.3
    far = np.median(res.scores[:, 1, 0])
    assert np.log(501) + 3 < far < 60
    # a (positive-only) exponential root: a value of 0 is at the lower edge, not typical
    assert np.median(res.scores[:, 0, 0]) > 2.0


def test_monte_carlo_scores_deterministic(skewed_model):
    scm, train = skewed_model
    query = train.iloc[:5]
    first = br.outlier_scores(scm, query, seed=3, num_mc_samples=200)
    second = br.outlier_scores(scm, query, seed=3, num_mc_samples=200)
    other = br.outlier_scores(scm, query, seed=4, num_mc_samples=200)
    assert np.array_equal(first.scores, second.scores)
    assert not np.array_equal(first.scores, other.scores)


def test_conditional_separates_propagated_from_local_deviation(skewed_model):
    """A child that is large only because its parent is large is unsurprising given the parent."""
    scm, _ = skewed_model
    query = pd.DataFrame({"a": [6.0, 0.7], "b": [2.0 + 0.8 * 6.0 + 1.0, 2.0 + 0.8 * 0.7 + 8.0]})
    marginal = np.median(br.outlier_scores(scm, query, seed=0, num_mc_samples=2000).scores, axis=0)
    conditional_res = br.outlier_scores(scm, query, seed=0, num_mc_samples=2000, conditioning="conditional")
    conditional = np.median(conditional_res.scores, axis=0)
    assert conditional_res.scores.shape == (NUM_DRAWS, 2, 2)
    assert np.all(conditional_res.scores >= 0)
    # row 0: b is a marginal outlier but expected from a
    assert marginal[0, 1] > 3.0 and conditional[0, 1] < 1.5
    # row 1: b deviates on its own
    assert conditional[1, 1] > 3.0


def test_summary_of_scores(gaussian_chain):
    res = br.outlier_scores(gaussian_chain, QUERY, seed=0)
    table = res.summary(0.8)
    assert len(table) == 10
    assert {"row", "node", "mean", "median", "sd", "lower", "upper"} <= set(table.columns)
    assert np.all(table["lower"] <= table["median"]) and np.all(table["median"] <= table["upper"])


@pytest.mark.parametrize("conditioning", ["marginal", "conditional"])
def test_scoring_some_nodes_reads_only_the_columns_it_needs(gaussian_chain, skewed_model, conditioning):
    """``nodes=``: the scores of those nodes, as in the full call; columns of other nodes not needed."""
    full = br.outlier_scores(gaussian_chain, QUERY, seed=0, conditioning=conditioning)
    only = br.outlier_scores(gaussian_chain, QUERY[["X0"]], seed=0, conditioning=conditioning, nodes=["X0"])
    assert only.nodes == ("X0",) and only.scores.shape == (NUM_DRAWS, 5, 1)
    np.testing.assert_allclose(only.scores[..., 0], full.scores[..., 0])
    # X1 alone: its marginal needs no other column; its conditional score abducts through X0
    if conditioning == "marginal":
        one = br.outlier_scores(gaussian_chain, QUERY[["X1"]], seed=0, nodes=["X1"])
        np.testing.assert_allclose(one.scores[..., 0], full.scores[..., 1])
    else:
        with pytest.raises(br.DataError, match="X0"):
            br.outlier_scores(gaussian_chain, QUERY[["X1"]], seed=0, conditioning=conditioning, nodes=["X1"])
        one = br.outlier_scores(gaussian_chain, QUERY, seed=0, conditioning=conditioning, nodes=["X1"])
        np.testing.assert_allclose(one.scores[..., 0], full.scores[..., 1])
    scm, train = skewed_model  # Monte Carlo scores: the same seed gives the same numbers for the node asked for
    rows = train.head(4)
    mc = br.outlier_scores(scm, rows, seed=1, conditioning=conditioning, num_mc_samples=500)
    mc_b = br.outlier_scores(scm, rows, seed=1, conditioning=conditioning, num_mc_samples=500, nodes=["b"])
    assert mc_b.nodes == ("b",)
    np.testing.assert_allclose(mc_b.scores[..., 0], mc.scores[..., 1])


@pytest.mark.parametrize("nodes", [["nope"], [], "X0"])
def test_scoring_unknown_or_no_nodes_raises(gaussian_chain, nodes):
    with pytest.raises(br.GraphError, match="nodes"):
        br.outlier_scores(gaussian_chain, QUERY, nodes=nodes)


@pytest.mark.parametrize("conditioning", ["joint", "", None])
def test_unknown_conditioning_raises(gaussian_chain, conditioning):
    with pytest.raises(br.ConfigError, match="conditioning"):
        br.outlier_scores(gaussian_chain, QUERY, conditioning=conditioning)


def test_scores_record_how_they_were_computed(gaussian_chain):
    res = br.outlier_scores(gaussian_chain, QUERY, seed=3, num_mc_samples=100, base_score="upper")
    assert dict(res.method_info) == {"conditioning": "marginal", "base_score": "upper", "seed": 3, "num_mc_samples": 100}
    drawn = br.outlier_scores(gaussian_chain, QUERY).method_info["seed"]
    assert isinstance(drawn, int) and drawn >= 0  # the seed actually used, when none is given


def test_reference_it_scores(gaussian_chain):
    ref = br.reference_it_scores(gaussian_chain, "X1", num_rows=50, seed=2)
    assert ref.shape == (50,) and (ref >= 0).all()
    train = gaussian_chain.training_data_.sample(50, random_state=2)
    direct = br.outlier_scores(gaussian_chain, train, seed=2).scores[:, :, 1]
    np.testing.assert_array_equal(ref, np.median(direct, axis=0))
    np.testing.assert_array_equal(ref, br.reference_it_scores(gaussian_chain, "X1", num_rows=50, seed=2))
    upper = br.reference_it_scores(gaussian_chain, "X1", num_rows=50, seed=2, base_score="upper")
    assert not np.allclose(upper, ref)
    assert br.reference_it_scores(gaussian_chain, "X1", num_rows=5000).shape == (len(gaussian_chain.training_data_),)
    with pytest.raises(br.ConfigError, match="num_rows"):
        br.reference_it_scores(gaussian_chain, "X1", num_rows=0)
    with pytest.raises(br.ConfigError, match="not a node"):
        br.reference_it_scores(gaussian_chain, "nope")
    with pytest.raises(br.ConfigError, match="base_score|base score"):
        br.reference_it_scores(gaussian_chain, "X1", base_score="sideways")


def test_reference_it_scores_for_reads_the_method_info(gaussian_chain):
    from bayesrca.scores import reference_it_scores_for

    class Stub:
        target = "X1"
        method_info = {"base_score": "lower", "seed": 4}

    expected = br.reference_it_scores(gaussian_chain, "X1", num_rows=40, base_score="lower", seed=4)
    np.testing.assert_array_equal(reference_it_scores_for(Stub(), gaussian_chain, num_rows=40), expected)
    Stub.method_info = {}  # a result built by hand: the defaults
    np.testing.assert_array_equal(reference_it_scores_for(Stub(), gaussian_chain, num_rows=40),
                                  br.reference_it_scores(gaussian_chain, "X1", num_rows=40))


@pytest.mark.parametrize("base_score", ["median_cdf", "mean_deviation", "median_deviation", "upper", "lower"])
def test_gpd_noise_scores_agree_with_monte_carlo_in_range_and_stay_finite_far_out(base_score):
    from bayesrca.counterfactual import tails
    from bayesrca.scores import _median, gpd_noise_scores

    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    noise = br.RootDistribution().fit(rng.gamma(2.0, 1.0, 3000), np.zeros((3000, 0)), num_draws=3).noise_distribution()
    torch.testing.assert_close(noise.cdf(_median(noise).unsqueeze(0)).squeeze(0), torch.full((3,), 0.5, dtype=torch.float64))
    x = torch.tensor([[-1.5], [-0.8], [0.0], [1.0], [3.0], [6.0]], dtype=torch.float64)
    exact = gpd_noise_scores(noise, x, base_score)
    mc = tails.empirical_thresholds(noise.sample((400_000,)), x, base_score)[2]
    np.testing.assert_allclose(exact.numpy(), mc.numpy(), atol=0.03, rtol=0.02)
    far = gpd_noise_scores(noise, torch.tensor([[1e3], [-1e3]], dtype=torch.float64), base_score)
    assert bool(far.isfinite().all()) and bool((far >= 0).all())
