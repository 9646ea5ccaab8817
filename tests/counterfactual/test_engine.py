"""Tests of bayesrca.counterfactual.engine: the estimator choice and the set function v(S)."""

from __future__ import annotations

import itertools

import pytest
import torch

from bayesrca.counterfactual import AnalyticTails, CounterfactualEngine, MonteCarloTails, choose_engine
from bayesrca.exceptions import ConfigError
from tests.counterfactual.scms import TRIANGLE, fit_triangle, triangle_observed

NUM_DRAWS = 6
#: anomalies 1.5 to 3 sd out in X2 (sd of X2 is about 2.3): no tail probability is tiny
NOISE = [[1.0, 1.5, 1.0], [-1.5, 0.5, -2.0], [0.5, -2.0, 2.5]]
MASKS = torch.tensor(list(itertools.product([False, True], repeat=3)))  # all 8 coalitions; 0 empty, 7 full
SPLINE = {"X0": "gaussian", "X1": "spline", "X2": "gaussian"}


@pytest.fixture(scope="module")
def gaussian():
    return fit_triangle("gaussian", num_draws=NUM_DRAWS)


@pytest.fixture(scope="module")
def spline():
    return fit_triangle(SPLINE, num_draws=NUM_DRAWS)


def _engine(scm, path, **kwargs):
    kwargs.setdefault("num_mc_samples", 400)
    torch.manual_seed(0)
    return CounterfactualEngine(scm, "X2", TRIANGLE, triangle_observed(NOISE), path=path, **kwargs)


def test_choose_engine(gaussian, spline):
    assert choose_engine(gaussian, TRIANGLE) == "analytic"
    assert choose_engine(gaussian, TRIANGLE, "analytic") == "analytic"
    assert choose_engine(gaussian, TRIANGLE, "mc") == "mc"
    assert choose_engine(gaussian, TRIANGLE, "plain") == "mc"
    assert choose_engine(spline, TRIANGLE) == "mc"
    assert choose_engine(spline, ["X0"]) == "analytic"  # only the players count
    with pytest.raises(ConfigError, match="tail='analytic'"):
        choose_engine(spline, TRIANGLE, "analytic")
    bootstrap = fit_triangle("linear", num_draws=2, n=200)  # linear, bootstrap noise: no closed form
    assert choose_engine(bootstrap, TRIANGLE) == "mc"


def test_unknown_path_or_base_score_is_refused(gaussian):
    with pytest.raises(ConfigError, match="path"):
        _engine(gaussian, "fast")
    with pytest.raises(ConfigError, match="base_score"):
        _engine(gaussian, "analytic", base_score="zscore")


@pytest.mark.parametrize(("path", "values"), [("analytic", 1), ("mc", 3)])
def test_shapes_and_estimator(gaussian, path, values):
    engine = _engine(gaussian, path)
    assert engine.path == path
    assert isinstance(engine.estimator, AnalyticTails if path == "analytic" else MonteCarloTails)
    out = engine(MASKS)
    assert out.shape == (8, 3, NUM_DRAWS, values) and out.dtype == torch.float64
    assert engine.it_score.shape == engine.lo.shape == engine.hi.shape == (3, NUM_DRAWS)
    assert bool((engine.lo <= engine.hi).all())
    assert bool((out <= 0).all()) and bool(out.isfinite().all())


@pytest.mark.parametrize(("scm_name", "path"), [("gaussian", "analytic"), ("gaussian", "mc"), ("spline", "mc")])
def test_full_set_is_zero_and_empty_set_is_minus_it(gaussian, spline, scm_name, path):
    engine = _engine({"gaussian": gaussian, "spline": spline}[scm_name], path)
    out = engine(MASKS)
    assert bool((out[-1] == 0).all())  # every noise kept: x_t is reproduced, v = 0
    assert torch.equal(out[0, :, :, 0], -engine.it_score)  # none kept: the marginal, v = -IT
    assert bool((engine.it_score > 0).all())
    # a single coalition evaluates as in a batch
    torch.testing.assert_close(engine(MASKS[3:4]), out[3:4])


def test_integrated_flag(gaussian):
    assert _engine(gaussian, "analytic").integrated is False
    assert _engine(gaussian, "mc").integrated is True
    assert _engine(gaussian, "mc", conditional=False).integrated is False


def test_analytic_and_monte_carlo_agree(gaussian):
    """On a linear-Gaussian SCM the Monte Carlo estimates match the closed form within their error."""
    num_m = 20000
    exact = _engine(gaussian, "analytic")
    mc = _engine(gaussian, "mc", num_mc_samples=num_m)
    v_exact, v_mc = exact(MASKS)[..., 0], mc(MASKS)
    p_exact, p_mc = v_exact.exp(), v_mc[..., 0].exp()
    se = (p_exact * (1 - p_exact) / num_m).sqrt()
    # the Monte Carlo thresholds are estimated from the samples too: a little slack on top
    assert bool(((p_mc - p_exact).abs() <= 5 * se + 0.01).all())
    torch.testing.assert_close(mc.it_score, exact.it_score, rtol=0.05, atol=0.05)
    # the two halves of the samples estimate the same thing
    assert float((v_mc[..., 1] - v_mc[..., 2]).abs().max()) < 0.5


def test_plain_monte_carlo_never_gives_log_zero(gaussian):
    engine = _engine(gaussian, "mc", conditional=False, num_mc_samples=100)
    out = engine(MASKS)
    assert bool((out[1:-1] >= torch.log(torch.tensor(1 / 101.0)) - 1e-6).all())
