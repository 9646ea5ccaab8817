"""Tests of bayesrca.mechanisms.gpd: GPD closed forms and the grid posterior of (shape, scale)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import genpareto

from bayesrca.mechanisms.gpd import (
    NUM_LOG_SCALES,
    NUM_SHAPES,
    SHAPE_MAX,
    SHAPE_MIN,
    gpd_icdf,
    gpd_log_pdf,
    gpd_log_sf,
    gpd_moments,
    grid_log_posterior,
    sample_tail_posterior,
    tail_count,
)

T = torch.float64


@pytest.mark.parametrize("shape", [0.0, 1e-10, 0.2, 0.7, 0.95])
def test_closed_forms_match_scipy(shape):
    y = np.array([0.0, 0.01, 0.5, 2.0, 30.0, 1e4])
    q = np.array([0.0, 0.1, 0.5, 0.9, 0.999999])
    xi, sigma = torch.tensor(shape, dtype=T), torch.tensor(1.7, dtype=T)
    ref = genpareto(c=shape, scale=1.7)
    np.testing.assert_allclose(gpd_log_pdf(torch.tensor(y), xi, sigma).numpy(), ref.logpdf(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gpd_log_sf(torch.tensor(y), xi, sigma).numpy(), ref.logsf(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gpd_icdf(torch.tensor(q), xi, sigma).numpy(), ref.ppf(q), rtol=1e-8, atol=1e-12)
    mean, second = gpd_moments(xi, sigma)
    np.testing.assert_allclose(float(mean), ref.mean(), rtol=1e-9)
    if shape < 0.5:
        np.testing.assert_allclose(float(second), ref.var() + ref.mean() ** 2, rtol=1e-9)
    else:
        assert math.isinf(float(second))


@settings(max_examples=60, deadline=None)
@given(
    q=st.floats(0.0, 1.0 - 1e-9),
    shape=st.floats(0.0, 0.95),
    scale=st.floats(1e-3, 1e3),
)
def test_icdf_inverts_the_survival_function(q, shape, scale):
    xi, sigma = torch.tensor(shape, dtype=T), torch.tensor(scale, dtype=T)
    y = gpd_icdf(torch.tensor(q, dtype=T), xi, sigma)
    assert float(y) >= 0.0
    assert math.isclose(float(gpd_log_sf(y, xi, sigma)), math.log1p(-q), rel_tol=1e-7, abs_tol=1e-9)


def _exceedances(sample: np.ndarray) -> torch.Tensor:
    """The tail_count(n) largest values minus the next one (the upper threshold's exceedances)."""
    m = tail_count(len(sample))
    top = np.sort(sample)[::-1]
    return torch.tensor(top[:m] - top[m])


RNG = np.random.default_rng(2024)
N = 5000


@pytest.mark.parametrize(
    "name, sample, low, high",
    [
        ("gaussian", RNG.normal(size=N), 0.0, 0.08),
        ("exponential", RNG.exponential(size=N), 0.0, 0.12),
        ("student_t3", RNG.standard_t(3, size=N), 0.2, 0.5),  # true 1/3
        ("pareto_2.5", RNG.pareto(2.5, size=N), 0.28, 0.55),  # true 0.4
    ],
)
def test_shape_posterior_recovers_the_tail_index(name, sample, low, high):
    torch.manual_seed(0)
    exceed = _exceedances(sample)
    assert len(exceed) == 500  # 10 % of 5,000 rows
    post = sample_tail_posterior(exceed, 1e-6, 4000)
    assert low <= float(post["shape_mean"]) <= high, (name, float(post["shape_mean"]))
    assert abs(float(post["shape"].mean()) - float(post["shape_mean"])) < 0.01
    assert float(post["edge_mass"]) < 1e-3  # the scale grid covers the posterior
    assert bool(((post["shape"] >= SHAPE_MIN) & (post["shape"] <= SHAPE_MAX)).all())
    # the scale's posterior: the GPD quantiles it implies match the exceedances' quantiles
    med = gpd_icdf(torch.tensor(0.5, dtype=T), post["shape"], post["scale"]).median()
    assert abs(float(med) / float(exceed.median()) - 1.0) < 0.15


def test_shape_posterior_narrows_with_more_exceedances_and_exceedance_scale_is_equivariant():
    rng = np.random.default_rng(5)
    torch.manual_seed(0)
    few = sample_tail_posterior(_exceedances(rng.standard_t(3, size=400)), 1e-6, 4000)
    many = sample_tail_posterior(_exceedances(rng.standard_t(3, size=5000)), 1e-6, 4000)
    assert float(many["shape"].std()) < 0.7 * float(few["shape"].std())
    exceed = _exceedances(rng.exponential(size=2000))
    a, sa = grid_log_posterior(exceed.reshape(1, -1), torch.tensor([1e-6], dtype=T))
    b, sb = grid_log_posterior(1000 * exceed.reshape(1, -1), torch.tensor([1e-3], dtype=T))
    assert a.shape == (1, NUM_SHAPES, NUM_LOG_SCALES)
    torch.testing.assert_close(sb, sa + math.log(1000))
    torch.testing.assert_close(b - b.max(), a - a.max())  # the posterior does not depend on the unit


def test_tied_exceedances_give_a_finite_posterior():
    torch.manual_seed(0)
    post = sample_tail_posterior(torch.zeros(30, dtype=T), 1e-3, 50)
    assert bool(post["scale"].isfinite().all()) and bool((post["scale"] > 0).all())


def test_exponential_tails_get_the_point_mass_and_heavy_tails_do_not():
    """The prior's point mass at shape 0 (the Gumbel domain's limit): light tails put most of the
    posterior on it, with few exceedances too, so the far tail of exponential residuals is not
    heavier than theirs in every draw; heavy tails leave it."""
    rng = np.random.default_rng(11)
    torch.manual_seed(0)
    light = [sample_tail_posterior(_exceedances(sample), 1e-6, 2000)
             for sample in (rng.exponential(size=100), rng.exponential(size=5000), rng.normal(size=5000))]
    for post in light:
        assert float(post["exponential_prob"]) > 0.5
        assert abs(float((post["shape"] == 0).double().mean()) - float(post["exponential_prob"])) < 0.05
    heavy = sample_tail_posterior(_exceedances(rng.pareto(2.5, size=5000)), 1e-6, 2000)
    assert float(heavy["exponential_prob"]) < 1e-3
    # the far tail of exponential residuals (true log P(Y > 8) = -8 for a unit scale): the draws'
    # 90 % interval holds it, where a shape above 0 in every draw put it below the interval
    exceed = torch.tensor(rng.exponential(size=10))
    post = sample_tail_posterior(exceed, 1e-6, 4000)
    log_sf = gpd_log_sf(torch.tensor(8.0, dtype=T), post["shape"], post["scale"])
    lo, hi = torch.quantile(log_sf, torch.tensor([0.05, 0.95], dtype=T))
    assert float(lo) < -8.0 < float(hi), (float(lo), float(hi))
