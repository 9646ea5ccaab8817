"""The density-based base score's event (bayesrca.counterfactual.density) and its use in tails."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from bayesrca.counterfactual import tails
from bayesrca.counterfactual.density import density_thresholds, kde_bandwidth
from bayesrca.exceptions import TailEstimateWarning


def _normal(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_bandwidth_is_dowhys_rule():
    s = _normal(2, 3000)
    torch.testing.assert_close(kde_bandwidth(s), s.std(-1, unbiased=False) * (4 / 9000) ** 0.2)


def test_gaussian_samples_give_the_mirror_of_x_and_x_itself():
    s = _normal(3, 8000)
    x = torch.tensor([[2.0, -1.0, 0.3]], dtype=torch.float64).expand(3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TailEstimateWarning)
        lo, hi = density_thresholds(s, x)
    assert torch.all((lo == x) | (hi == x))
    other = torch.where(lo == x, hi, lo)
    assert float((other + x).abs().max()) < 0.2  # the density is symmetric about 0 (sample mean within 0.03)


def test_skewed_samples_put_the_other_end_where_the_density_is_as_low():
    e = -torch.log(torch.rand(1, 20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64))  # Exp(1)
    lo, hi = density_thresholds(e, torch.tensor([[4.0]], dtype=torch.float64))
    assert hi.item() == 4.0 and -0.6 < lo.item() < 0.0  # p(4) = e^-4: only the kernel-smoothed edge at 0 is as low
    # from the short side: x = 0.02 has density about 1/2 (the smoothed edge), reached again near log 2 on the right
    lo, hi = density_thresholds(e, torch.tensor([[0.02]], dtype=torch.float64))
    assert lo.item() == 0.02 and 0.3 < hi.item() < 1.3


def test_a_gaussian_part_makes_it_the_models_mixture_density():
    centres = torch.zeros(2, 500, dtype=torch.float64)
    centres[1] = _normal(500, seed=3) * 0.1  # nearly a point mass, spread by the Gaussian part
    x = torch.tensor([[3.0], [-2.0]], dtype=torch.float64)
    lo, hi = density_thresholds(centres, x, sd=torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(torch.cat([lo[0], hi[1]]), torch.tensor([-3.0, 2.0], dtype=torch.float64), atol=0.05, rtol=0)


def test_importance_weights_shift_the_density():
    s = _normal(1, 20000, seed=4)
    log_w = -0.5 * (s - 2) ** 2 + 0.5 * s**2  # N(2, 1) / N(0, 1)
    lo, hi = density_thresholds(s, torch.tensor([[4.0]], dtype=torch.float64), log_weights=log_w)
    assert hi.item() == 4.0 and abs(lo.item()) < 0.3  # the mirror of 4 about 2


def test_several_modes_warn_and_the_bulk_does_not():
    b = torch.cat([_normal(1, 3000) - 4, _normal(1, 3000, seed=1) + 4], -1)
    with pytest.warns(TailEstimateWarning, match="more than one mode"):
        density_thresholds(b, torch.tensor([[0.0]], dtype=torch.float64))  # in the valley
    with warnings.catch_warnings():
        warnings.simplefilter("error", TailEstimateWarning)
        density_thresholds(_normal(4, 3000), torch.zeros(4, 1, dtype=torch.float64))  # at a flat top
        density_thresholds(_normal(4, 3000), torch.full((4, 1), 4.5, dtype=torch.float64))  # a sparse tail


def test_tails_know_the_new_scores():
    assert {"rank", "density"} <= set(tails.BASE_SCORES)
    assert tails.event_side("rank") == tails.event_side("density") == "two"
    x, mean, sd = torch.tensor([[2.5]]), torch.tensor([1.0]), torch.tensor([2.0])
    for base in ("rank", "density"):  # a Gaussian marginal is symmetric: the two-sided event
        torch.testing.assert_close(tails.gaussian_thresholds(x, mean, sd, base), tails.gaussian_thresholds(x, mean, sd))


def test_conditional_monte_carlo_density_matches_the_closed_form_far_out():
    centres = torch.zeros(400, 2, dtype=torch.float64)
    sd = torch.tensor([1.0, 2.0], dtype=torch.float64)
    reference = centres + sd * _normal(400, 2, seed=5)
    x = torch.tensor([[6.0, -9.0]], dtype=torch.float64)
    lo, hi, it = tails.conditional_thresholds(reference, centres, sd, x, "density")
    exact = -math.log(2) - torch.special.log_ndtr(-(x.abs() / sd))
    torch.testing.assert_close(it, exact, rtol=0.02, atol=0.0)  # ~20 nats and ~9 nats, no Monte Carlo floor
