"""SplineANM: knots at quantiles, linear extrapolation, parents with few distinct values."""

from __future__ import annotations

import numpy as np
import torch

import bayesrca as br
from bayesrca._random import seeded


def _loc(mech, *values):
    parents = [torch.tensor([[v]], dtype=torch.float64) for v in values]
    return float(mech.loc(parents).median())


def test_a_parent_with_a_point_mass_at_its_maximum_extrapolates_linearly():
    # a price that sits at 999 on most days and is cut on a few: the knots collapse at 999
    rng = np.random.default_rng(0)
    price = np.full(365, 999.0)
    price[:20] = rng.uniform(800, 990, 20)
    units = rng.normal(2300, 100, 365)
    revenue = price * units / 1000 + rng.normal(0, 5, 365)
    with seeded(0):
        mech = br.SplineANM("gaussian").fit(revenue, np.column_stack([units, price]), num_draws=100)
    assert mech.knot_count_[1] < mech.num_knots  # fewer distinct quantiles than knots
    at_max = _loc(mech, 2300.0, 999.0)
    # just above the training maximum the fit continues (about) linearly, no cubic blow-up
    slope = (at_max - _loc(mech, 2300.0, 950.0)) / 49.0
    for above in (1005.0, 1020.0):
        expected = at_max + slope * (above - 999.0)
        assert abs(_loc(mech, 2300.0, above) - expected) < 0.05 * abs(at_max)


def test_spline_recovers_a_smooth_nonlinear_mechanism():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 600)
    y = np.sin(2 * x) + rng.normal(0, 0.1, 600)
    with seeded(1):
        mech = br.SplineANM("gaussian").fit(y, x[:, None], num_draws=50)
    grid = np.linspace(-1.5, 1.5, 7)
    fitted = np.array([_loc(mech, v) for v in grid])
    assert np.max(np.abs(fitted - np.sin(2 * grid))) < 0.15
