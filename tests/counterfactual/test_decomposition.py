"""Tests of bayesrca.counterfactual.decomposition: the target split into propagated and linear parts."""

from __future__ import annotations

import pytest
import torch

from bayesrca.counterfactual.decomposition import decompose_target
from bayesrca.counterfactual.ops import abduct_noise, linearize
from tests.counterfactual.scms import TRIANGLE, fit_triangle, triangle_observed

NOISE = [[0.5, -1.0, 3.0], [2.0, 0.1, -0.4]]


@pytest.fixture(scope="module")
def gaussian():
    return fit_triangle("gaussian", num_draws=6)


@pytest.fixture(scope="module")
def spline():
    return fit_triangle({"X0": "gaussian", "X1": "spline", "X2": "gaussian"}, num_draws=6)


def test_all_linear_target_is_linearised_in_every_player(gaussian):
    observed = triangle_observed(NOISE)
    parts = decompose_target(gaussian, "X2", TRIANGLE, observed, propagate_nonlinear=True)
    assert parts.upstream == [] and parts.rest == TRIANGLE and parts.inputs == []
    assert parts.num_anomalies == 2 and parts.num_draws == 6
    assert parts.moves.shape == (6, 3) and bool(parts.moves.all())
    offset, coef = linearize(gaussian, TRIANGLE)
    torch.testing.assert_close(parts.offset, offset["X2"])
    torch.testing.assert_close(parts.coef, coef["X2"])
    noise = abduct_noise(gaussian, TRIANGLE, observed)
    kept = torch.stack([noise[p] for p in TRIANGLE], -1) * coef["X2"]
    torch.testing.assert_close(parts.kept_effect, kept)
    # the kept effects of all players plus the offset give back the observed target
    torch.testing.assert_close(parts.offset + parts.kept_effect.sum(-1), observed["X2"].expand(2, 6))


def test_nonlinear_parent_is_propagated(spline):
    observed = triangle_observed(NOISE)
    parts = decompose_target(spline, "X2", TRIANGLE, observed, propagate_nonlinear=True)
    assert parts.upstream == ["X0", "X1"] and parts.rest == ["X2"] and parts.inputs == ["X0", "X1"]
    assert parts.up_idx == [0, 1] and parts.rest_idx == [2]
    assert parts.coef.shape == (6, 1) and parts.input_coef.shape == (6, 2)
    assert parts.kept_effect.shape == (2, 6, 1)


def test_nonlinear_target_has_no_linear_rest(spline):
    observed = triangle_observed(NOISE)
    parts = decompose_target(spline, "X1", TRIANGLE[:2], {p: observed[p] for p in TRIANGLE[:2]}, propagate_nonlinear=True)
    assert parts.rest == [] and parts.coef is None and parts.input_coef is None
    assert parts.kept_effect.shape == (2, 6, 0)
    assert torch.equal(parts.offset, torch.zeros(6, dtype=torch.float64))

