"""Tests of bayesrca.counterfactual.analytic: the closed-form Gaussian tails against a float64 brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from bayesrca.counterfactual import tails
from bayesrca.counterfactual.analytic import AnalyticTails
from bayesrca.counterfactual.decomposition import decompose_target
from tests.counterfactual.scms import TRIANGLE, fit_triangle, triangle_observed

NOISE = [[1.0, 1.5, 1.0], [-1.5, 0.5, -2.0], [0.5, -2.0, 6.0]]  # the last one about 3 sd out
MASKS = torch.tensor(list(itertools.product([False, True], repeat=3)))


@pytest.fixture(scope="module")
def gaussian():
    return fit_triangle("gaussian", num_draws=5)


def _brute_force(scm, parts, masks, lo, hi):
    """log P(X_t <= lo or X_t >= hi | N_S = n_S) in float64, one coalition at a time: (C, K, D)."""
    dists = [scm.mechanisms_[p].noise_distribution() for p in parts.rest]
    mu = torch.stack([d.mean for d in dists], -1)  # (D, n)
    sd = torch.stack([d.stddev for d in dists], -1)
    a, noise = parts.coef, torch.stack([parts.abducted[p] for p in parts.rest], -1)  # (D, n), (K, D, n)
    out = []
    for mask in masks:
        keep = mask.to(torch.float64)
        mean = parts.offset + (keep * a * noise).sum(-1) + ((1 - keep) * a * mu).sum(-1)  # (K, D)
        s = (((1 - keep) * a * sd) ** 2).sum(-1).sqrt()
        out.append(tails.gaussian_log_tail(lo, hi, mean, s.expand_as(mean)))
    return torch.stack(out)


@pytest.mark.parametrize("base_score", ["median_cdf", "mean_deviation", "upper", "lower"])
def test_closed_form_matches_brute_force(gaussian, base_score):
    observed = triangle_observed(NOISE)
    parts = decompose_target(gaussian, "X2", TRIANGLE, observed, propagate_nonlinear=False)
    estimator = AnalyticTails(gaussian, parts, observed["X2"], base_score)
    out = estimator(MASKS)
    assert out.shape == (8, 3, 5, 1)
    expected = _brute_force(gaussian, parts, MASKS[:-1], estimator.lo, estimator.hi)  # the full set has sd 0
    # float32 arithmetic relative to the marginal mean
    torch.testing.assert_close(out[:-1, ..., 0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[0, ..., 0], -estimator.it_score, rtol=1e-4, atol=1e-5)


def test_thresholds_and_it_score_are_the_marginal_gaussians(gaussian):
    observed = triangle_observed(NOISE)
    parts = decompose_target(gaussian, "X2", TRIANGLE, observed, propagate_nonlinear=False)
    estimator = AnalyticTails(gaussian, parts, observed["X2"], "median_cdf")
    mean = parts.offset + estimator.free_mean.sum(-1)
    lo, hi, it = tails.gaussian_thresholds(observed["X2"], mean, estimator.free_var.sum(-1).sqrt())
    assert torch.equal(estimator.lo, lo) and torch.equal(estimator.hi, hi) and torch.equal(estimator.it_score, it)
    assert estimator.path == "analytic" and estimator.integrated is False
    # the 3-sd anomaly has the largest score in every draw
    assert bool((estimator.it_score.argmax(0) == 2).all())


def test_near_deterministic_free_part_stays_finite(gaussian):
    """A free part of (almost) zero spread gives finite log-probabilities, not NaN."""
    observed = triangle_observed(NOISE)
    parts = decompose_target(gaussian, "X2", TRIANGLE, observed, propagate_nonlinear=False)
    estimator = AnalyticTails(gaussian, parts, observed["X2"], "median_cdf")
    estimator.free_var = estimator.free_var * torch.tensor([1.0, 1.0, 1e-60], dtype=torch.float64)
    out = estimator(torch.tensor([[True, True, False]]))
    assert not bool(out.isnan().any())
