"""Tests of bayesrca.counterfactual.tails and of extreme outliers on the Monte Carlo path (no cap on the IT score).

The property tests of the mixture estimators are in ``tests/properties/test_counterfactual.py``.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca.counterfactual import tails


# ---------------------------------------------------------------------------------------------
# the conditional Monte Carlo estimators themselves
# ---------------------------------------------------------------------------------------------
def test_mixture_with_one_centre_is_the_gaussian_closed_form():
    x = torch.tensor([10.0, -3.0, 0.2], dtype=torch.float64)
    zero, one = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    lo, hi = tails.mixture_thresholds(zero.unsqueeze(-1), one, x)
    glo, ghi, it = tails.gaussian_thresholds(x, zero, one)
    torch.testing.assert_close(lo, glo)
    torch.testing.assert_close(hi, ghi)
    torch.testing.assert_close(-tails.mixture_log_tail(zero.unsqueeze(-1), one, lo, hi)[:, 0], it)
    assert float(it[0]) == pytest.approx(52.54, abs=0.01)  # 10 sd: -log(2 * Phi(-10))


# ---------------------------------------------------------------------------------------------
# a 10-sd outlier in a linear-Gaussian SCM, through the Monte Carlo engine
# ---------------------------------------------------------------------------------------------
CHAIN = nx.DiGraph([("X0", "X1"), ("X1", "X2")])


def _chain_data(noise: np.ndarray) -> pd.DataFrame:
    x0 = noise[:, 0]
    x1 = x0 + noise[:, 1]
    x2 = x1 + noise[:, 2]
    return pd.DataFrame({"X0": x0, "X1": x1, "X2": x2})


@pytest.fixture(scope="module")
def chain_scm():
    train = _chain_data(np.random.default_rng(0).normal(size=(2000, 3)))
    return br.BayesianSCM(CHAIN, mechanisms="gaussian", num_draws=40).fit(train, seed=0)


@pytest.fixture(scope="module")
def ten_sd():
    # X2 has variance 3: noises (5, 5, 10 sqrt(3) - 10) put it 10 sd out (IT about 53 nats)
    return _chain_data(np.array([[5.0, 5.0, 10 * math.sqrt(3) - 10]]))


def test_ten_sd_outlier_within_five_percent_of_closed_form(chain_scm, ten_sd):
    exact = br.attribute_anomalies(chain_scm, "X2", ten_sd, seed=0)
    assert exact.method_info["engine"] == "analytic"
    assert 45 < np.median(exact.it_scores) < 62
    mc = br.attribute_anomalies(chain_scm, "X2", ten_sd, seed=0, tail="mc", num_mc_samples=2000)
    assert mc.method_info["tail"] == "conditional Monte Carlo"
    rel = np.abs(mc.it_scores - exact.it_scores) / exact.it_scores
    assert rel.max() < 0.05
    # contributions too, relative to the score, and they still sum to it per draw
    assert np.abs(mc.contributions - exact.contributions).max() < 0.05 * exact.it_scores.min()
    np.testing.assert_allclose(mc.contributions.sum(-1), mc.it_scores, rtol=1e-9, atol=1e-6)


def test_plain_monte_carlo_is_capped_near_log_m(chain_scm, ten_sd):
    plain = br.attribute_anomalies(chain_scm, "X2", ten_sd, seed=0, tail="plain", num_mc_samples=2000)
    assert plain.method_info["tail"] == "plain Monte Carlo"
    assert plain.it_scores.max() <= math.log(2001) + 1e-9
    np.testing.assert_allclose(plain.contributions.sum(-1), plain.it_scores, atol=1e-6)


def test_one_sided_base_scores_reach_the_far_tail(chain_scm, ten_sd):
    for base_score in ("upper", "mean_deviation"):
        exact = br.attribute_anomalies(chain_scm, "X2", ten_sd, seed=0, base_score=base_score)
        mc = br.attribute_anomalies(chain_scm, "X2", ten_sd, seed=0, tail="mc", base_score=base_score)
        assert (np.abs(mc.it_scores - exact.it_scores) / exact.it_scores).max() < 0.05


# ---------------------------------------------------------------------------------------------
# bootstrap (KDE) noise has no parametric tail: without importance sampling its rare events keep
# the Monte Carlo floor; with it, the kernel-thin tail is reached by a few samples and flagged
# ---------------------------------------------------------------------------------------------
def test_bootstrap_noise_keeps_the_floor_and_gaussian_noise_does_not():
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 1.0, 600)
    train = pd.DataFrame({"A": a, "T": 0.8 * a + rng.normal(size=600)})
    row = pd.DataFrame({"A": [2.0], "T": [1.6 + 12.0]})  # T's own noise 12 sd out
    graph = nx.DiGraph([("A", "T")])
    plain_kde = {"A": br.RootDistribution("bootstrap"), "T": br.LinearANM("bootstrap")}  # no GPD tails
    kde = br.BayesianSCM(graph, mechanisms=plain_kde, num_draws=10).fit(train, seed=1)
    res = br.attribute_anomalies(kde, "T", row, seed=0, num_mc_samples=1000, tail="conditional")
    assert res.it_scores.max() <= math.log(1001) + 1e-9
    assert res.method_info["tail"] == "plain Monte Carlo"  # nothing Gaussian to integrate
    with pytest.warns(br.TailEstimateWarning):
        res = br.attribute_anomalies(kde, "T", row, seed=0, num_mc_samples=1000)
    assert res.method_info["tail"] == "importance sampling + plain Monte Carlo"
    assert res.it_scores.min() > math.log(1001) and res.method_info["unreliable_tail"] == [0]
    mixed = {"A": br.RootDistribution("bootstrap"), "T": br.LinearANM("gaussian")}
    gauss = br.BayesianSCM(graph, mechanisms=mixed, num_draws=10).fit(train, seed=1)
    res = br.attribute_anomalies(gauss, "T", row, seed=0, num_mc_samples=1000)
    assert res.method_info["engine"] == "mc" and res.it_scores.min() > 2 * math.log(1001)
    assert res.method_info["tail"] == "importance sampling + conditional Monte Carlo"  # A's KDE noise is sampled
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# a nonlinear ancestor: the target's own Gaussian part is still integrated
# ---------------------------------------------------------------------------------------------
def test_nonlinear_ancestor_extreme_outlier_is_finite_and_efficient():
    """The target's Gaussian noise is integrated; the spline parent's noise and its root's are
    sampled, by importance sampling toward the event: the spline continues linearly beyond its
    knots, so under the fitted model the far tail is also reached through A far out, a path the
    model's own samples never reach (conditional Monte Carlo alone gives about twice the score).
    Estimates from 1,000 and 8,000 samples agree."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=800)
    m = np.sin(2 * a) + 0.2 * rng.normal(size=800)
    t = m + 0.5 * rng.normal(size=800)
    mechanisms = {"A": br.RootDistribution("gaussian"), "M": br.SplineANM("gaussian"), "T": br.LinearANM("gaussian")}
    scm = br.BayesianSCM(nx.DiGraph([("A", "M"), ("M", "T")]), mechanisms=mechanisms, num_draws=10).fit(
        pd.DataFrame({"A": a, "M": m, "T": t}), seed=0
    )
    row = pd.DataFrame({"A": [0.3], "M": [np.sin(0.6)], "T": [np.sin(0.6) + 6.0]})  # T's own noise, 12 sd
    small = br.attribute_anomalies(scm, "T", row, seed=0, num_mc_samples=1000)
    large = br.attribute_anomalies(scm, "T", row, seed=1, num_mc_samples=8000)
    assert small.method_info["engine"] == "mc"
    assert small.it_scores.min() > 2 * math.log(1001)
    assert small.method_info["tail"] == "importance sampling + conditional Monte Carlo"
    assert abs(np.median(small.it_scores) - np.median(large.it_scores)) < 0.05 * np.median(large.it_scores)
    conditional = br.attribute_anomalies(scm, "T", row, seed=0, num_mc_samples=1000, tail="conditional")
    assert np.median(conditional.it_scores) > 1.5 * np.median(large.it_scores)  # misses the path through A
    np.testing.assert_allclose(small.contributions.sum(-1), small.it_scores, atol=1e-6)
    top = small.summary().sort_values("median", ascending=False).iloc[0]
    assert top["node"] == "T" and top["prob_top"] == 1.0
    # outlier_scores uses conditional Monte Carlo (no importance sampling yet) for every node's IT score
    scores = br.outlier_scores(scm, row, seed=0, num_mc_samples=1000)
    t_scores = scores.scores[..., scores.nodes.index("T")]
    np.testing.assert_allclose(np.median(t_scores), np.median(conditional.it_scores), rtol=0.1)


def test_parents_far_outside_the_training_range_of_a_nonlinear_mechanism_warn():
    rng = np.random.default_rng(6)
    a = rng.normal(size=300)
    train = pd.DataFrame({"A": a, "T": a**2 + 0.3 * rng.normal(size=300)})
    graph = nx.DiGraph([("A", "T")])
    spline = br.BayesianSCM(graph, mechanisms={"A": br.RootDistribution("gaussian"), "T": br.SplineANM("gaussian")}, num_draws=5).fit(train, seed=0)
    far = pd.DataFrame({"A": [30.0], "T": [900.0]})
    with pytest.warns(br.ExtrapolationWarning, match="'A' -> 'T'"):
        br.attribute_anomalies(spline, "T", far, seed=0, num_mc_samples=200)
    linear = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=5).fit(train, seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", br.ExtrapolationWarning)
        br.attribute_anomalies(linear, "T", far, seed=0)  # linear mechanisms: no warning
        br.attribute_anomalies(spline, "T", pd.DataFrame({"A": [1.0], "T": [4.0]}), seed=0, num_mc_samples=200)


# ---------------------------------------------------------------------------------------------
# the effective sample size behind an IT score
# ---------------------------------------------------------------------------------------------
def test_mixture_log_tail_ess_is_m_for_equal_centres_and_one_for_a_dominant_centre():
    m = 200
    sd, lo, hi = torch.ones(2, dtype=torch.float64), torch.full((2,), -8.0, dtype=torch.float64), torch.full((2,), 8.0, dtype=torch.float64)
    centres = torch.zeros(2, m, dtype=torch.float64)
    centres[1, 0] = 6.0  # one sampled centre near the event carries the whole estimate
    out, ess = tails.mixture_log_tail(centres, sd, lo, hi, return_ess=True)
    assert ess.shape == (2,) and out.shape == (2, 3)
    assert float(ess[0]) == pytest.approx(m) and float(ess[1]) == pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(out, tails.mixture_log_tail(centres, sd, lo, hi))  # same estimate either way


def test_conditional_thresholds_ess_counts_hits_where_no_integration():
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    x = torch.tensor([[0.5], [5.0]], dtype=torch.float64)
    no_gauss = torch.zeros(3, dtype=torch.float64)
    lo, hi, it, ess = tails.conditional_thresholds(reference, reference, no_gauss, x, return_ess=True)
    inside = ((reference <= lo.unsqueeze(1)) | (reference >= hi.unsqueeze(1))).sum(1)  # (K, D) hits
    torch.testing.assert_close(ess, inside.to(torch.float64))
    assert bool((ess[1] == 0).all())  # 5 sd: never sampled, the IT score is the floor


def test_far_outlier_on_the_floor_warns_and_is_flagged():
    rng = np.random.default_rng(3)
    a = rng.normal(size=400)
    train = pd.DataFrame({"A": a, "T": a + rng.normal(size=400)})
    scm = br.BayesianSCM(nx.DiGraph([("A", "T")]), mechanisms="linear", num_draws=10).fit(train, seed=1)
    rows = pd.DataFrame({"A": [0.0, 0.5], "T": [12.0, 1.0]}, index=["far", "near"])
    with pytest.warns(br.TailEstimateWarning, match="1 anomaly.*'far'"):
        res = br.attribute_anomalies(scm, "T", rows, seed=0, num_mc_samples=500)
    assert res.method_info["unreliable_tail"] == ["far"]
    far, near = res.method_info["tail_ess_min"]
    assert far < tails.MIN_TAIL_ESS <= near


def test_closed_form_reports_no_tail_ess(chain_scm, ten_sd):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", br.TailEstimateWarning)
        res = br.attribute_anomalies(chain_scm, "X2", ten_sd, seed=0)
    assert res.method_info["engine"] == "analytic" and "unreliable_tail" not in res.method_info
