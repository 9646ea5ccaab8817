"""Tests of bayesrca.attribution: closed-form truth, efficiency, ranking, determinism, players."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pyro
import pytest
import torch
from scipy.stats import norm

import bayesrca as br
from bayesrca.datasets import MICROSERVICE_EDGES
from bayesrca.exceptions import DataError

DATA_DIR = Path(br.__file__).parent / "datasets" / "data"

# ---------------------------------------------------------------------------------------------
# A linear-Gaussian diamond with known parameters
#   X0 ~ N(0, 1); X1 = 2 X0 + N(0, 1); X2 = -X0 + N(0, 0.5^2); X3 = X1 + 0.5 X2 + N(0, 1)
# ---------------------------------------------------------------------------------------------
NODES = ["X0", "X1", "X2", "X3"]
EDGES = [("X0", "X1"), ("X0", "X2"), ("X1", "X3"), ("X2", "X3")]
TRUE_INTERCEPT = np.zeros(4)
TRUE_B = np.array(  # B[j, k]: coefficient of X_k in X_j's mechanism
    [
        [0.0, 0.0, 0.0, 0.0],
        [2.0, 0.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.5, 0.0],
    ]
)
TRUE_SD = np.array([1.0, 1.0, 0.5, 1.0])


def diamond_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(NODES)
    g.add_edges_from(EDGES)
    return g


def diamond_data(noise: np.ndarray) -> pd.DataFrame:
    """Values of the diamond SCM from noise rows (n, 4)."""
    x = np.linalg.solve(np.eye(4) - TRUE_B, (TRUE_INTERCEPT + noise).T).T
    return pd.DataFrame(x, columns=NODES)


def linear_gaussian_shapley(intercept, B, sd, x, target):
    """Exact Shapley values of v(S) = log P(|X_t - m| >= |x_t - m| | N_S = n_S), brute force.

    All parameters carry a leading draw dimension: intercept (D, d), B (D, d, d), sd (D, d);
    x is one observed row (d,). Returns (phi (D, d), it (D,)).
    """
    intercept, sd = np.atleast_2d(intercept), np.atleast_2d(sd)
    B = np.asarray(B)
    if B.ndim == 2:
        B = B[None]
    num_draws, d = intercept.shape
    eye = np.eye(d)
    total = np.linalg.inv(eye - B)  # X = total @ (intercept + N)
    a = total[:, target, :]  # (D, d): X_t = c + a . N
    c = np.einsum("dj,dj->d", a, intercept)
    noise = x - np.einsum("djk,k->dj", B, x) - intercept  # abducted noise (D, d)
    dev = abs(x[target] - c)  # m = c because the noises have mean zero

    def v(S):
        S = list(S)
        free = [j for j in range(d) if j not in S]
        if not free:
            return np.zeros(num_draws)
        mean = c + (a[:, S] * noise[:, S]).sum(-1)
        s = np.sqrt(((a[:, free] * sd[:, free]) ** 2).sum(-1))
        return np.logaddexp(norm.logcdf((c - dev - mean) / s), norm.logsf((c + dev - mean) / s))

    values = {S: v(S) for r in range(d + 1) for S in itertools.combinations(range(d), r)}
    phi = np.zeros((num_draws, d))
    for j in range(d):
        others = [k for k in range(d) if k != j]
        for r in range(d):
            w = math.factorial(r) * math.factorial(d - r - 1) / math.factorial(d)
            for S in itertools.combinations(others, r):
                phi[:, j] += w * (values[tuple(sorted(S + (j,)))] - values[S])
    return phi, -values[()]


def posterior_parameters(scm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-draw intercepts, coefficient matrices and noise sds of a fitted linear-Gaussian SCM."""
    D = scm.num_draws_
    intercept = np.zeros((D, 4))
    B = np.zeros((D, 4, 4))
    sd = np.zeros((D, 4))
    for j, node in enumerate(NODES):
        mech = scm.mechanisms_[node]
        intercept[:, j] = mech.intercept_.numpy()
        sd[:, j] = mech.noise_params_["sigma"].numpy()
        for f, parent in enumerate(scm.parents_[node]):
            B[:, j, NODES.index(parent)] = mech.coef_[:, f].numpy()
    return intercept, B, sd


# anomaly 0: X0's noise shifted by +4 sd; anomaly 1 (milder, for Monte Carlo): +2.5 sd
ANOMALY_NOISE = np.array([[4.0, 0.3, -0.1, 0.5], [2.5, 0.3, -0.1, 0.5]])


@pytest.fixture(scope="module")
def gaussian_scm():
    rng = np.random.default_rng(0)
    train = diamond_data(rng.normal(size=(5000, 4)) * TRUE_SD)
    return br.BayesianSCM(diamond_graph(), mechanisms="gaussian", num_draws=100).fit(train, seed=0)


@pytest.fixture(scope="module")
def gaussian_result(gaussian_scm):
    return br.attribute_anomalies(gaussian_scm, "X3", diamond_data(ANOMALY_NOISE), seed=0)


def test_analytic_engine_is_used_for_linear_gaussian(gaussian_result):
    assert gaussian_result.method_info["engine"] == "analytic"
    assert gaussian_result.method_info["shapley"] == "exact"
    assert gaussian_result.nodes == tuple(NODES)
    assert gaussian_result.contributions.shape == (100, 2, 4)
    assert gaussian_result.it_scores.shape == (100, 2)


def test_analytic_matches_closed_form_per_draw(gaussian_scm, gaussian_result):
    """Each draw's contributions are the exact Shapley values under that draw's parameters."""
    intercept, B, sd = posterior_parameters(gaussian_scm)
    anomalies = diamond_data(ANOMALY_NOISE).to_numpy()
    for k, row in enumerate(anomalies):
        phi, it = linear_gaussian_shapley(intercept, B, sd, row, target=3)
        np.testing.assert_allclose(gaussian_result.contributions[:, k, :], phi, atol=1e-6, rtol=1e-6)
        np.testing.assert_allclose(gaussian_result.it_scores[:, k], it, atol=1e-6, rtol=1e-6)


def test_analytic_posterior_recovers_true_contributions(gaussian_result):
    """Posterior medians are close to the Shapley values under the true parameters."""
    row = diamond_data(ANOMALY_NOISE[:1]).to_numpy()[0]
    truth, true_it = linear_gaussian_shapley(TRUE_INTERCEPT, TRUE_B, TRUE_SD, row, target=3)
    truth, true_it = truth[0], float(true_it[0])
    # sanity of the truth itself: efficiency and X0 as the dominant cause
    assert truth.sum() == pytest.approx(true_it, abs=1e-9)
    assert np.argmax(truth) == 0 and true_it > 5
    draws = gaussian_result.contributions[:, 0, :]
    median = np.median(draws, axis=0)
    tol = np.maximum(0.15, 0.05 * np.abs(truth))
    assert np.all(np.abs(median - truth) <= tol), (median, truth)
    lower, upper = np.quantile(draws, [0.005, 0.995], axis=0)
    covered = (lower <= truth) & (truth <= upper)
    assert covered.sum() >= 3, (lower, upper, truth)
    assert np.median(gaussian_result.it_scores[:, 0]) == pytest.approx(true_it, abs=0.25)
    summary = gaussian_result.summary(0.9)
    top = summary[summary["anomaly"] == 0].iloc[0]
    assert top["node"] == "X0" and top["prob_top"] == 1.0


def test_monte_carlo_tail_agrees_with_analytic(gaussian_scm, gaussian_result):
    anomalies = diamond_data(ANOMALY_NOISE[1:])
    analytic = br.attribute_anomalies(gaussian_scm, "X3", anomalies, seed=0)
    mc = br.attribute_anomalies(gaussian_scm, "X3", anomalies, seed=0, tail="mc", num_mc_samples=10000)
    assert mc.method_info["engine"] == "mc" and mc.method_info["num_mc_samples"] == 10000
    np.testing.assert_allclose(
        np.median(mc.contributions, axis=0), np.median(analytic.contributions, axis=0), atol=0.05
    )
    np.testing.assert_allclose(np.median(mc.it_scores, 0), np.median(analytic.it_scores, 0), atol=0.05)
    # per draw the Monte Carlo error stays small too
    assert np.abs(mc.contributions - analytic.contributions).mean() < 0.05
    np.testing.assert_allclose(mc.contributions.sum(-1), mc.it_scores, atol=1e-6)


@pytest.mark.parametrize("base_score", ["upper", "mean_deviation", "lower"])
def test_monte_carlo_tail_agrees_with_analytic_for_other_base_scores(gaussian_scm, base_score):
    # the anomaly is large, so "lower" gives an IT score near 0 and contributions near 0
    anomalies = diamond_data(ANOMALY_NOISE[1:])
    analytic = br.attribute_anomalies(gaussian_scm, "X3", anomalies, seed=0, base_score=base_score)
    mc = br.attribute_anomalies(
        gaussian_scm, "X3", anomalies, seed=0, tail="mc", num_mc_samples=10000, base_score=base_score
    )
    np.testing.assert_allclose(
        np.median(mc.contributions, axis=0), np.median(analytic.contributions, axis=0), atol=0.06
    )
    np.testing.assert_allclose(np.median(mc.it_scores, 0), np.median(analytic.it_scores, 0), atol=0.06)


def test_analytic_tail_refused_for_non_gaussian_models():
    rng = np.random.default_rng(1)
    train = diamond_data(rng.normal(size=(300, 4)) * TRUE_SD)
    scm = br.BayesianSCM(diamond_graph(), mechanisms="linear", num_draws=20).fit(train, seed=0)
    with pytest.raises(br.ConfigError, match="analytic"):
        br.attribute_anomalies(scm, "X3", diamond_data(ANOMALY_NOISE), tail="analytic")


# ---------------------------------------------------------------------------------------------
# Efficiency: contributions sum to the IT score, per draw, on every path
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_train():
    rng = np.random.default_rng(2)
    noise = np.column_stack(
        [rng.exponential(1.0, 600), rng.normal(size=600), rng.gumbel(size=600) * 0.5, rng.normal(size=600)]
    )
    return diamond_data(noise)


@pytest.mark.parametrize(
    "mechanisms, kwargs, engine",
    [
        ("gaussian", {}, "analytic"),
        ("gaussian", {"shapley": "permutation", "num_permutations": 6}, "analytic"),
        ("linear", {"num_mc_samples": 500}, "mc"),
        ("linear", {"num_mc_samples": 500, "shapley": "permutation"}, "mc"),
        ("spline", {"num_mc_samples": 300}, "mc"),
        ("spline", {"num_mc_samples": 300, "shapley": "permutation", "num_permutations": 4}, "mc"),
    ],
)
def test_efficiency_per_draw(small_train, mechanisms, kwargs, engine):
    scm = br.BayesianSCM(diamond_graph(), mechanisms=mechanisms, num_draws=30).fit(small_train, seed=0)
    anomalies = diamond_data(ANOMALY_NOISE)
    res = br.attribute_anomalies(scm, "X3", anomalies, seed=0, **kwargs)
    assert res.method_info["engine"] == engine
    assert res.method_info["shapley"] == kwargs.get("shapley", "exact")
    assert res.contributions.shape == (30, 2, 4)
    assert np.all(np.isfinite(res.contributions))
    assert np.all(res.it_scores >= 0)
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


def test_efficiency_with_nonlinear_target_only():
    """Target nonlinear and everything upstream propagated (no linear rest)."""
    rng = np.random.default_rng(5)
    a = rng.exponential(1.0, 500)
    b = np.sin(2 * a) + 0.2 * rng.normal(size=500)
    train = pd.DataFrame({"a": a, "b": b})
    graph = nx.DiGraph([("a", "b")])
    scm = br.BayesianSCM(graph, mechanisms={"a": "spline", "b": br.SplineANM("gaussian")}, num_draws=20)
    scm.fit(train, seed=0)
    res = br.attribute_anomalies(scm, "b", pd.DataFrame({"a": [0.3], "b": [3.0]}), seed=0, num_mc_samples=300)
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    top = res.summary().iloc[0]
    assert top["node"] == "b"


# ---------------------------------------------------------------------------------------------
# The root cause ranks first in a nonlinear SCM with skewed noise
# ---------------------------------------------------------------------------------------------
def skewed_data(nA, nB, nC, nT) -> pd.DataFrame:
    C = 2 * np.log1p(nA) + 0.5 * nB + nC
    T = 2 * np.sqrt(C + 1) + nT
    return pd.DataFrame({"A": nA, "B": nB, "C": C, "T": T})


def test_root_cause_ranks_first_nonlinear_skewed():
    rng = np.random.default_rng(3)
    n = 1500
    train = skewed_data(rng.exponential(1, n), rng.exponential(1, n), rng.exponential(0.3, n), rng.exponential(0.3, n))
    graph = nx.DiGraph([("A", "C"), ("B", "C"), ("C", "T")])
    scm = br.BayesianSCM(graph, mechanisms="spline", num_draws=50).fit(train, seed=0)
    # A's noise shifted by +5 sd (Exp(1) has sd 1)
    anomaly = skewed_data(np.array([0.5 + 5.0]), np.array([0.7]), np.array([0.2]), np.array([0.25]))
    res = br.attribute_anomalies(scm, "T", anomaly, seed=0, num_mc_samples=500)
    assert res.method_info["engine"] == "mc"
    table = res.summary(0.9)
    assert table.iloc[0]["node"] == "A"
    assert table.iloc[0]["prob_top"] > 0.5
    assert table.iloc[0]["lower"] > 0
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The microservice example
# ---------------------------------------------------------------------------------------------


def test_microservice_example_blames_caching_service():
    train = pd.read_csv(DATA_DIR / "microservice_latencies.csv").iloc[:2000]
    anomaly = pd.read_csv(DATA_DIR / "microservice_anomaly.csv")
    scm = br.BayesianSCM(nx.DiGraph(list(MICROSERVICE_EDGES)), mechanisms="linear", num_draws=100).fit(train, seed=0)
    res = br.attribute_anomalies(scm, "Website", anomaly, seed=0, num_mc_samples=1000)
    assert set(res.nodes) == set(train.columns)
    table = res.summary(0.9).set_index("node")
    assert table["median"].idxmax() == "Caching Service"
    assert table.loc["Caching Service", "prob_top"] > 0.9
    assert table.loc["Caching Service", "lower"] > 0
    assert table.loc["Customer DB", "median"] < 0
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Determinism and global state
# ---------------------------------------------------------------------------------------------
def _fit_attribute(train, fit_seed, attr_seed):
    scm = br.BayesianSCM(diamond_graph(), mechanisms="linear", num_draws=20).fit(train, seed=fit_seed)
    return br.attribute_anomalies(scm, "X3", diamond_data(ANOMALY_NOISE), seed=attr_seed, num_mc_samples=200)


def test_same_seed_identical_different_seed_different(small_train):
    first = _fit_attribute(small_train, 0, 0)
    second = _fit_attribute(small_train, 0, 0)
    assert np.array_equal(first.contributions, second.contributions)
    assert np.array_equal(first.it_scores, second.it_scores)
    other_fit = _fit_attribute(small_train, 1, 0)
    assert not np.array_equal(first.contributions, other_fit.contributions)
    other_attr = _fit_attribute(small_train, 0, 1)
    assert not np.array_equal(first.contributions, other_attr.contributions)


def test_same_seed_identical_with_nonlinear_mechanisms(small_train):
    def run():
        scm = br.BayesianSCM(diamond_graph(), mechanisms="spline", num_draws=10).fit(small_train, seed=4)
        return br.attribute_anomalies(scm, "X3", diamond_data(ANOMALY_NOISE), seed=4, num_mc_samples=100)

    assert np.array_equal(run().contributions, run().contributions)


def test_global_rng_and_param_store_untouched(small_train):
    pyro.clear_param_store()
    pyro.param("user_param", torch.tensor([1.5, -2.0]))
    torch.manual_seed(1234)
    np.random.seed(99)
    random.seed(7)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    store_before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}

    scm = br.BayesianSCM(diamond_graph(), mechanisms="linear", num_draws=10).fit(small_train, seed=0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    res = br.attribute_anomalies(scm, "X3", diamond_data(ANOMALY_NOISE), seed=0, num_mc_samples=100)
    br.outlier_scores(scm, small_train.iloc[:5], seed=0, num_mc_samples=100)
    assert res.contributions.shape == (10, 2, 4)

    assert torch.equal(torch.get_rng_state(), torch_state)
    after_np = np.random.get_state()
    assert after_np[0] == np_state[0] and np.array_equal(after_np[1], np_state[1]) and after_np[2:] == np_state[2:]
    assert random.getstate() == py_state
    store_after = dict(pyro.get_param_store().items())
    assert set(store_after) == set(store_before) == {"user_param"}
    assert torch.equal(store_after["user_param"].detach(), store_before["user_param"])
    pyro.clear_param_store()


# ---------------------------------------------------------------------------------------------
# Players: only the target's ancestors and itself
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def branching_scm():
    """X0 -> X1 -> X3 and X0 -> X2 -> X4: X2 and X4 are not upstream of X3."""
    rng = np.random.default_rng(4)
    n = 400
    x0 = rng.normal(size=n)
    x1 = x0 + rng.normal(size=n)
    x2 = -x0 + rng.normal(size=n)
    x3 = x1 + rng.normal(size=n)
    x4 = x2 + rng.normal(size=n)
    train = pd.DataFrame({"X0": x0, "X1": x1, "X2": x2, "X3": x3, "X4": x4})
    graph = nx.DiGraph([("X0", "X1"), ("X1", "X3"), ("X0", "X2"), ("X2", "X4")])
    return br.BayesianSCM(graph, mechanisms="gaussian", num_draws=20).fit(train, seed=0)


def test_only_ancestors_are_players(branching_scm):
    anomaly = pd.DataFrame({"X0": [0.1], "X1": [4.0], "X2": [0.0], "X3": [5.0], "X4": [9.0]})
    res = br.attribute_anomalies(branching_scm, "X3", anomaly, seed=0)
    assert res.nodes == ("X0", "X1", "X3")
    # columns of non-players may be missing
    res_missing = br.attribute_anomalies(branching_scm, "X3", anomaly[["X0", "X1", "X3"]], seed=0)
    assert res_missing.nodes == ("X0", "X1", "X3")
    np.testing.assert_array_equal(res.contributions, res_missing.contributions)
    # and their values do not matter
    changed = anomaly.assign(X2=100.0, X4=-50.0)
    np.testing.assert_array_equal(br.attribute_anomalies(branching_scm, "X3", changed, seed=0).contributions, res.contributions)
    assert res.summary().iloc[0]["node"] == "X1"


def test_extra_column_in_anomalies_raises(branching_scm):
    anomaly = pd.DataFrame({"X0": [0.1], "X1": [4.0], "X3": [5.0], "junk": [1.0]})
    with pytest.raises(DataError, match="junk"):
        br.attribute_anomalies(branching_scm, "X3", anomaly, seed=0)


def test_missing_player_column_raises(branching_scm):
    anomaly = pd.DataFrame({"X0": [0.1], "X3": [5.0]})
    with pytest.raises(DataError, match="X1"):
        br.attribute_anomalies(branching_scm, "X3", anomaly, seed=0)


@pytest.mark.parametrize("mechanisms", ["gaussian", "linear"])
def test_root_target_single_player(mechanisms):
    rng = np.random.default_rng(6)
    train = pd.DataFrame({"r": rng.normal(size=300), "c": rng.normal(size=300)})
    scm = br.BayesianSCM(nx.DiGraph([("r", "c")]), mechanisms=mechanisms, num_draws=20).fit(train, seed=0)
    res = br.attribute_anomalies(scm, "r", pd.DataFrame({"r": [3.5, -0.2]}), seed=0, num_mc_samples=500)
    assert res.nodes == ("r",)
    assert res.contributions.shape == (20, 2, 1)
    np.testing.assert_allclose(res.contributions[..., 0], res.it_scores, atol=1e-12)
    assert np.median(res.it_scores[:, 0]) > np.median(res.it_scores[:, 1])


def test_many_anomalies_are_chunked_consistently(gaussian_scm):
    """Attributing rows together or one at a time gives the same draws (analytic path)."""
    rng = np.random.default_rng(8)
    rows = diamond_data(rng.normal(size=(7, 4)) * TRUE_SD * 3)
    together = br.attribute_anomalies(gaussian_scm, "X3", rows, seed=0, max_elements=100 * 16 * 2)
    single = [br.attribute_anomalies(gaussian_scm, "X3", rows.iloc[[k]], seed=0) for k in range(len(rows))]
    # float32 arithmetic blocked differently per batch size: equal to float32 rounding
    np.testing.assert_allclose(together.contributions, np.concatenate([s.contributions for s in single], 1), atol=1e-5)
    assert together.anomalies == tuple(rows.index)


# ---------------------------------------------------------------------------------------------
# Base scores
# ---------------------------------------------------------------------------------------------
def test_base_scores_on_gaussian_marginal(gaussian_scm, gaussian_result):
    """Symmetric Gaussian marginal: two-sided scores coincide; one-sided P is half, so IT + log 2."""
    anomalies = diamond_data(ANOMALY_NOISE)  # both far above the mean of X3
    for name in ("mean_deviation", "median_deviation"):
        res = br.attribute_anomalies(gaussian_scm, "X3", anomalies, seed=0, base_score=name)
        np.testing.assert_allclose(res.contributions, gaussian_result.contributions, atol=1e-9)
    upper = br.attribute_anomalies(gaussian_scm, "X3", anomalies, seed=0, base_score="upper")
    np.testing.assert_allclose(upper.it_scores, gaussian_result.it_scores + math.log(2), atol=1e-6)
    np.testing.assert_allclose(upper.contributions.sum(-1), upper.it_scores, atol=1e-6)
    assert upper.method_info["base_score"] == "upper"
    lower = br.attribute_anomalies(gaussian_scm, "X3", anomalies, seed=0, base_score="lower")
    assert np.all(lower.it_scores < 0.05)  # a high value is not a low outlier: -log P(X <= x) ~ 0


@pytest.mark.parametrize("base_score", ["median_cdf", "mean_deviation", "median_deviation", "upper", "lower"])
def test_efficiency_for_every_base_score_monte_carlo(small_train, base_score):
    scm = br.BayesianSCM(diamond_graph(), mechanisms="linear", num_draws=10).fit(small_train, seed=0)
    res = br.attribute_anomalies(
        scm, "X3", diamond_data(ANOMALY_NOISE), seed=0, num_mc_samples=300, base_score=base_score
    )
    assert np.all(np.isfinite(res.contributions))
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


def test_unknown_base_score_raises(gaussian_scm):
    with pytest.raises(br.ConfigError, match="base_score"):
        br.attribute_anomalies(gaussian_scm, "X3", diamond_data(ANOMALY_NOISE), base_score="zscore")


def test_never_varied_parent_on_nonlinear_monte_carlo_path():
    """A spline target's parent that never varied keeps its prior effect: an uncertain, finite share
    (no longer a null player), the contributions efficient."""
    rng = np.random.default_rng(3)
    n = 300
    a = rng.normal(size=n)
    train = pd.DataFrame({"a": a, "k": np.full(n, 5.0), "t": np.sin(a) + 0.3 * rng.normal(size=n)})
    with pytest.warns(br.ConstantColumnWarning):
        scm = br.BayesianSCM(nx.DiGraph([("a", "k"), ("k", "t"), ("a", "t")]), mechanisms="spline", num_draws=10)
        scm.fit(train, seed=0)
    res = br.attribute_anomalies(scm, "t", pd.DataFrame({"a": [0.0], "k": [5.5], "t": [2.5]}), seed=0, num_mc_samples=300)
    assert scm.mechanisms_["t"].diagnostics_["unvaried_prior"] == 1
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    k_draws = res.contributions[..., res.nodes.index("k")]
    assert np.all(np.isfinite(k_draws)) and np.abs(k_draws).max() < 20  # finite and of the IT score's size
    assert np.quantile(k_draws, 0.9) - np.quantile(k_draws, 0.1) > 0.1


# ---------------------------------------------------------------------------------------------
# Monte Carlo standard error
# ---------------------------------------------------------------------------------------------
def test_mc_std_error_is_zero_on_the_closed_form_path(gaussian_result):
    assert gaussian_result.mc_std_error.shape == (2, len(NODES))
    assert np.all(gaussian_result.mc_std_error == 0)


def test_mc_std_error_shrinks_with_more_samples(small_train):
    # bootstrap (KDE) noise: the atoms are sampled, so every estimate carries Monte Carlo error
    scm = br.BayesianSCM(diamond_graph(), mechanisms="linear", num_draws=40).fit(small_train, seed=0)
    anomaly = diamond_data(ANOMALY_NOISE[1:] * 0.8)
    ses = []
    for m in (250, 4000):
        res = br.attribute_anomalies(scm, "X3", anomaly, seed=1, tail="mc", num_mc_samples=m)
        assert "mc_se" in res.summary().columns
        ses.append(res.mc_std_error[0])
    assert np.all(ses[0] > 0)
    # the standard error scales like 1/sqrt(M): 16x the samples, about 4x smaller
    ratio = ses[0].sum() / ses[1].sum()
    assert 2.0 < ratio < 8.0


@pytest.mark.parametrize("base_score", ["median_cdf", "upper", "lower", "mean_deviation"])
def test_sorted_counting_matches_direct_counting(small_train, base_score, monkeypatch):
    """Many anomalies on an all-linear Monte Carlo model: sort once per coalition + binary search
    gives the same counts as comparing every sample with every anomaly (same fresh samples)."""
    from bayesrca.attribution import budget as _budget
    from bayesrca.counterfactual import montecarlo as counterfactual

    scm = br.BayesianSCM(diamond_graph(), mechanisms="linear", num_draws=8).fit(small_train, seed=0)
    rng = np.random.default_rng(11)
    anomalies = diamond_data(rng.normal(size=(counterfactual.SORTED_MIN_ANOMALIES, 4)) * TRUE_SD * 2.5)
    kwargs = dict(seed=3, num_mc_samples=301, base_score=base_score)
    fast = br.attribute_anomalies(scm, "X3", anomalies, **kwargs)
    monkeypatch.setattr(counterfactual, "SORTED_MIN_ANOMALIES", 10**9)
    monkeypatch.setattr(_budget, "SORTED_MIN_ANOMALIES", 10**9)
    slow = br.attribute_anomalies(scm, "X3", anomalies, **kwargs)  # one chunk: the same samples
    np.testing.assert_allclose(fast.contributions, slow.contributions, atol=1e-6)
    np.testing.assert_allclose(fast.it_scores, slow.it_scores, atol=1e-9)
    np.testing.assert_allclose(fast.mc_std_error, slow.mc_std_error, atol=1e-6)


def test_duplicate_anomaly_labels_are_rejected_naming_the_fix():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    scm = br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="gaussian", num_draws=5).fit(
        pd.DataFrame({"a": a, "b": a + rng.normal(size=200)}), seed=0
    )
    rows = pd.concat([pd.DataFrame({"a": [3.0], "b": [4.0]}), pd.DataFrame({"a": [0.0], "b": [4.0]})])  # index (0, 0)
    with pytest.raises(br.DataError, match=r"duplicate index labels \[0\].*reset_index"):
        br.attribute_anomalies(scm, "b", rows, seed=0)
    res = br.attribute_anomalies(scm, "b", rows.reset_index(drop=True), seed=0)
    assert res.anomalies == (0, 1)
