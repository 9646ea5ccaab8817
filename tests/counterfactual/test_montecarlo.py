"""Tests of bayesrca.counterfactual.montecarlo: counting strategies and the estimators."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bayesrca.counterfactual import montecarlo
from bayesrca.counterfactual.decomposition import decompose_target
from bayesrca.counterfactual.montecarlo import MonteCarloTails
from tests.counterfactual.scms import TRIANGLE, fit_triangle, triangle_observed

NUM_DRAWS = 4
MASKS = torch.tensor(list(itertools.product([False, True], repeat=3)))
#: five anomalies (the sorted path needs at least SORTED_MIN_ANOMALIES), the last one far out
NOISE = [[1.0, 1.5, 1.0], [-1.5, 0.5, -2.0], [0.5, -2.0, 2.5], [0.0, 0.3, -0.2], [0.0, 0.0, 9.0]]


@pytest.fixture(scope="module")
def gaussian():
    return fit_triangle("gaussian", num_draws=NUM_DRAWS)


@pytest.fixture(scope="module")
def spline():
    return fit_triangle({"X0": "gaussian", "X1": "spline", "X2": "gaussian"}, num_draws=NUM_DRAWS)


def _estimator(scm, *, base_score="median_cdf", num_mc_samples=301, conditional=True, max_elements=2**25, noise=NOISE):
    observed = triangle_observed(noise)
    parts = decompose_target(scm, "X2", TRIANGLE, observed, propagate_nonlinear=True)
    torch.manual_seed(0)
    return MonteCarloTails(
        scm, parts, observed["X2"], base_score=base_score, num_mc_samples=num_mc_samples,
        max_elements=max_elements, conditional=conditional,
    )


@pytest.mark.parametrize("base_score", ["median_cdf", "upper", "lower"])
def test_sorted_counting_matches_direct_counting(gaussian, base_score, monkeypatch):
    """Sorting each coalition's samples once gives the counts of comparing every pair."""
    estimator = _estimator(gaussian, base_score=base_score)
    assert len(NOISE) >= montecarlo.SORTED_MIN_ANOMALIES
    fast = estimator(MASKS)
    monkeypatch.setattr(montecarlo, "SORTED_MIN_ANOMALIES", 10**9)
    slow = estimator(MASKS)
    assert fast.shape == slow.shape == (8, 5, NUM_DRAWS, 3)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_small_memory_chunks_change_nothing(spline):
    """The nonlinear part in many small chunks (and without the pattern table) gives the same values."""
    big = _estimator(spline)(MASKS)
    small = _estimator(spline, max_elements=3000)(MASKS)
    torch.testing.assert_close(big, small, rtol=1e-6, atol=1e-6)


def test_conditional_monte_carlo_reaches_below_one_over_m(gaussian):
    conditional = _estimator(gaussian)
    plain = _estimator(gaussian, conditional=False)
    assert conditional.integrated and not plain.integrated
    floor = math.log(1 / 302)
    assert float(plain.it_score[-1].max()) <= -floor + 1e-9  # the far anomaly is capped near log(M + 1)
    assert float(conditional.it_score[-1].min()) > -floor + 3  # ... and passed by conditional MC
    v = conditional(MASKS[:1])
    assert bool(v.isfinite().all()) and float(v[0, -1, :, 0].max()) < floor - 3


def test_target_nonlinear_runs_the_program_for_everything(spline):
    observed = triangle_observed(NOISE)
    players = TRIANGLE[:2]
    parts = decompose_target(spline, "X1", players, {p: observed[p] for p in players}, propagate_nonlinear=True)
    torch.manual_seed(0)
    estimator = MonteCarloTails(spline, parts, observed["X1"], base_score="median_cdf", num_mc_samples=200,
                                max_elements=2**25, conditional=True)
    out = estimator(torch.tensor([[False, False], [True, False], [False, True]]))
    assert out.shape == (3, 5, NUM_DRAWS, 3) and bool((out <= 0).all())
    # a spline's noise is a residual KDE, which is deliberately not split (no model of the far
    # tail), so nothing is integrated and its rare events keep the Monte Carlo floor
    assert not estimator.integrated
