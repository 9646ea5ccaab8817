"""Tests of bayesrca.counterfactual.counting: Monte Carlo event counts and their log-probabilities."""

from __future__ import annotations

import math

import numpy as np
import torch

from bayesrca.counterfactual import counting


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
