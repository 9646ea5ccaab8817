"""Tests of bayesrca.mechanisms.hinges: GP and spline hinges conditioned on rows beyond the data."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import bayesrca as br
from bayesrca._random import seeded
from bayesrca.mechanisms.hinges import beyond_data, condition_hinges, hinge_values


def _fit(noise: str = "gaussian", num_draws: int = 400, seed: int = 0, family: str = "gp",
         curvature: float = 0.25) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=300)
    y = np.tanh(x) + curvature * x**2 + 0.3 * rng.normal(size=300)
    mech = br.GPANM(noise) if family == "gp" else br.SplineANM(noise)
    with seeded(seed):
        return mech.fit(y, x[:, None], num_draws=num_draws), x


def _hinges(mech, x: float) -> torch.Tensor:
    """The row's hinge values ``(2,)``, from either family's stored training range."""
    if isinstance(mech, br.GPANM):
        args = (mech.z_low_, mech.z_high_, mech.x_center_, mech.x_scale_)
    else:
        args = (mech.hinge_low_, mech.hinge_high_, mech.hinge_center_, mech.hinge_scale_)
    return hinge_values(*args, torch.tensor([[x]], dtype=torch.float64))[0]


def _loc(mech, x: float) -> torch.Tensor:
    return mech.loc([torch.tensor([x], dtype=torch.float64).unsqueeze(-1)])[0]


@pytest.mark.parametrize("family", ["gp", "spline"])
def test_rows_inside_the_data_change_nothing(family):
    mech, x = _fit(num_draws=50, family=family)
    assert condition_hinges(mech, np.array([5.0]), np.array([[0.3 * x.max()]])) is mech
    assert condition_hinges(mech, np.array([np.nan]), np.array([[10 * x.max()]])) is mech  # NaN: unused
    assert mech.conditioned_on(np.array([1.0]), np.array([[0.0]])) is mech


@pytest.mark.parametrize("family", ["gp", "spline"])
def test_conditioning_moves_f_at_the_row_towards_the_value_and_nowhere_inside_the_data(family):
    mech, x = _fit(num_draws=200, family=family)
    far = float(x.max()) + 3 * float(x.std())
    value = float(_loc(mech, far).median()) + 20.0  # the extrapolation is far off this row
    new = condition_hinges(mech, np.array([value]), np.array([[far]]), seed=1)
    assert new is not mech
    inside = torch.linspace(float(x.min()), float(x.max()), 9, dtype=torch.float64).unsqueeze(-1)
    torch.testing.assert_close(new.loc([inside]), mech.loc([inside]))  # the hinges are zero there
    before = (value - _loc(mech, far)).abs().median()
    after = (value - _loc(new, far)).abs().median()
    assert after < 0.2 * before
    # the abducted noise at the row is now of the noise's size, not the extrapolation's error
    sigma = mech.noise_params_["sigma"].median()
    assert after < 3 * sigma
    assert getattr(mech, "hinge_coef_", None) is None  # the fitted mechanism is untouched
    torch.testing.assert_close(_loc(copy.deepcopy(mech), far), _loc(mech, far))


@pytest.mark.parametrize("noise,family", [("gaussian", "gp"), ("bootstrap_gpd", "gp"), ("gaussian", "spline")])
def test_each_conditioned_draw_is_an_exact_draw_of_the_conjugate_posterior(noise, family):
    """f' at the row given it: N(m, v), v = t2 s2 / (t2 + s2), m = g + t2 (x - g) / (t2 + s2), t2 = tau^2 |a|^2."""
    mech, x = _fit(noise, num_draws=2000, family=family)
    far = float(x.max()) + 2 * float(x.std())
    a = _hinges(mech, far)
    value = 3.0
    new = condition_hinges(mech, np.array([value]), np.array([[far]]), seed=3)
    u_new = _loc(new, far)  # f at the row, conditioned
    # the function without its hinge part (the spline's fitted loc has none)
    g = _loc(mech, far) - (a @ mech.coef_[:, [-2, -1]].T if family == "gp" else 0)
    t2 = mech.hinge_sd_.reshape(len(g), -1)[:, 0].square() * (a @ a)
    s2 = (mech.noise_params_["sigma"] if noise == "gaussian" else mech.noise_params_["atoms"].std(-1)).square()
    mean = g + t2 * (value - g) / (t2 + s2)
    z = (u_new - mean) / (t2 * s2 / (t2 + s2)).sqrt()
    assert abs(float(z.mean())) < 4 / np.sqrt(len(z))
    assert abs(float(z.var()) - 1) < 0.12
    # without conditioning the same statistic is far from standard normal
    z0 = (_loc(mech, far) - mean) / (t2 * s2 / (t2 + s2)).sqrt()
    assert abs(float(z0.var()) - 1) > 0.5 or abs(float(z0.mean())) > 0.5


def test_a_mixture_conditions_its_components_with_hinges_only():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = np.tanh(x) + 0.3 * rng.normal(size=300)
    with seeded(0):
        mix = br.FamilyMixture([br.LinearANM("gaussian"), br.GPANM("gaussian")], [0.5, 0.5]).fit(y, x[:, None], num_draws=20)
    far = np.array([[x.max() + 4.0]])
    new = mix.conditioned_on(np.array([10.0]), far, seed=0)
    assert new is not mix
    assert new.components_[0] is mix.components_[0] and new.components_[1] is not mix.components_[1]
    assert mix.conditioned_on(np.array([0.0]), np.array([[0.0]])) is mix


def test_the_spline_slope_prior_follows_the_curvature_seen_in_the_data():
    straight, _ = _fit(num_draws=100, family="spline", curvature=0.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    with seeded(0):
        line = br.SplineANM("gaussian").fit(2 * x + 0.3 * rng.normal(size=300), x[:, None], num_draws=100)
    curved, _ = _fit(num_draws=100, family="spline", curvature=1.0)
    assert line.hinge_sd_.shape == (100, 1)
    assert float(line.hinge_sd_.median()) < 0.3 * float(straight.hinge_sd_.median())
    assert float(straight.hinge_sd_.median()) < float(curved.hinge_sd_.median())


def test_beyond_data_flags_exactly_the_rows_outside_the_training_range():
    mech, x = _fit(num_draws=10, family="spline")
    rows = np.array([[x.min() - 1e-6], [x.min()], [0.0], [x.max()], [x.max() + 1e-6], [np.nan]])
    assert beyond_data(mech, rows).tolist() == [True, False, False, False, True, False]
    assert not beyond_data(br.LinearANM("gaussian").fit(x, x[:, None] * 2, num_draws=5), rows).any()
