"""Tests of bayesrca.counterfactual.montecarlo and .counting: counting strategies and the estimators."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from bayesrca.counterfactual import counting, montecarlo
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


def test_sorted_hits_are_brute_force_counts():
    gen = torch.Generator().manual_seed(0)
    num_draws, num_p, num_k, num_m = 2, 3, 4, 11
    free = torch.randn(num_draws, num_p, num_m, generator=gen)
    centre = torch.randn(num_draws, num_p, num_k, generator=gen)
    half = torch.rand(num_draws, 1, num_k, generator=gen) + 0.5
    tol = torch.full((num_draws, 1, num_k), 1e-6)
    sizes = [num_m // 2, num_m - num_m // 2]
    for side in ("two", "upper", "lower"):
        hits = counting.sorted_hits(free.clone(), centre, half, tol, side)
        assert hits.shape == (num_draws, num_p, num_k, 2)
        dev = free.unsqueeze(2) - centre.unsqueeze(-1)  # (D, P, K, M)
        inside = {"two": dev.abs() >= half.unsqueeze(-1), "upper": dev >= 0, "lower": dev <= 0}[side]
        expected = torch.stack([inside[..., : sizes[0]].sum(-1), inside[..., sizes[0] :].sum(-1)], -1)
        assert torch.equal(hits, expected.float())


def test_log_probs_rules():
    count = torch.tensor([[[[0.0, 0.0]], [[3.0, 2.0]]]])  # (C=1, K=2, D=1, 2)
    rare = torch.full((1, 2, 1, 3), float("nan"), dtype=torch.float64)
    plain = counting.log_probs(count, torch.zeros(1, 1, dtype=torch.float64), rare, num_m=11)
    np.testing.assert_allclose(plain[0, 0, 0].numpy(), np.log([1 / 12, 1 / 6, 1 / 7]), rtol=1e-6)
    np.testing.assert_allclose(plain[0, 1, 0].numpy(), np.log([6 / 12, 4 / 6, 3 / 7]), rtol=1e-6)
    gauss = counting.log_probs(count, torch.ones(1, 1, dtype=torch.float64), rare, num_m=11)
    np.testing.assert_allclose(gauss[0, 1, 0].numpy(), np.log([5 / 11, 3 / 5, 2 / 6]), rtol=1e-6)
    assert float(gauss[0, 0, 0, 0]) == -math.inf  # a free Gaussian part: no floor (rare cases come from CMC)
    rare[0, 0, 0] = -30.0
    combined = counting.log_probs(count, torch.ones(1, 1, dtype=torch.float64), rare, num_m=11)
    assert bool((combined[0, 0, 0] == -30.0).all()) and torch.equal(combined[0, 1], gauss[0, 1])


def test_conditional_log_tails_fill_only_rare_cases():
    hits = torch.tensor([[[[0.0, 1.0], [50.0, 60.0]]]])  # (D=1, c=1, K=2, 2): the first anomaly is rare
    sd = torch.ones(1, 1, dtype=torch.float64)
    centres = torch.zeros(1, 2, 5, dtype=torch.float64)
    bounds = (torch.full((2, 1), -4.0, dtype=torch.float64), torch.full((2, 1), 4.0, dtype=torch.float64))
    out = torch.full((1, 2, 1, 3), float("nan"), dtype=torch.float64)
    counting.conditional_log_tails(hits, sd, lambda d, c, k: centres[d, c, k], bounds, torch.tensor([0]), out)
    expected = math.log(2 * 0.5 * math.erfc(4 / math.sqrt(2)))
    np.testing.assert_allclose(out[0, 0, 0].numpy(), expected, rtol=1e-9)
    assert bool(out[0, 1].isnan().all())
    none = torch.full_like(out, float("nan"))
    counting.conditional_log_tails(hits, sd * 0, lambda d, c, k: centres[d, c, k], bounds, torch.tensor([0]), none)
    assert bool(none.isnan().all())  # no free Gaussian part: nothing to integrate
