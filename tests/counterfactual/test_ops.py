"""Tests of bayesrca.counterfactual.ops: abduction, fresh noise, linearisation, the nonlinear closure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro import poutine

from bayesrca.counterfactual.ops import abduct_noise, fresh_noise_trace, linearize, nonlinear_closure
from bayesrca.mechanisms import noise_site
from tests.counterfactual.scms import (
    MODEL_NAMES,
    NODES,
    NUM_DRAWS,
    TRIANGLE,
    TRIANGLE_DIRECT,
    TRIANGLE_TOTAL,
    fit_handler_models,
    fit_triangle,
    observed_rows,
)

ROWS = [(1.2, 0.4, -0.3), (0.3, -1.0, 2.5), (4.0, 0.9, 1.1)]


@pytest.fixture(scope="module")
def models():
    return fit_handler_models()


@pytest.fixture(scope="module")
def triangle():
    return fit_triangle("gaussian", num_draws=8, n=2000)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_abducted_noise_reproduces_the_observed_rows(models, name):
    """Abducted noise pushed through the program gives back every observed row, in every draw."""
    scm = models[name]
    observed = observed_rows(ROWS)
    noise = abduct_noise(scm, NODES, observed)
    for n in NODES:
        assert noise[n].shape == (len(ROWS), NUM_DRAWS)
    values = poutine.condition(scm.program, data={noise_site(n): v for n, v in noise.items()})(NODES)
    for n in NODES:
        torch.testing.assert_close(values[n], observed[n].expand(len(ROWS), NUM_DRAWS), atol=1e-8, rtol=1e-10)


def test_abduction_of_an_ancestral_subset(models):
    scm = models["spline"]
    observed = observed_rows(ROWS)
    noise = abduct_noise(scm, ["R", "A"], {n: observed[n] for n in ("R", "A")})
    assert set(noise) == {"R", "A"}
    torch.testing.assert_close(noise["A"], abduct_noise(scm, NODES, observed)["A"])


def test_fresh_noise_trace_has_a_plate_of_samples(models):
    scm = models["gaussian"]
    torch.manual_seed(0)
    trace = fresh_noise_trace(scm, NODES, 7, dim=-2)
    for n in NODES:
        assert trace.nodes[noise_site(n)]["value"].shape == (7, NUM_DRAWS)
        assert trace.nodes["_RETURN"]["value"][n].shape == (7, NUM_DRAWS)
    # the returned values are the program's values for the sampled noise
    noise = {noise_site(n): trace.nodes[noise_site(n)]["value"] for n in NODES}
    replayed = poutine.condition(scm.program, data=noise)(NODES)
    for n in NODES:
        torch.testing.assert_close(replayed[n], trace.nodes["_RETURN"]["value"][n])


def test_fresh_noise_trace_drops_the_gaussian_part(models):
    """Gaussian noise without its Gaussian part is the constant remainder (its mean)."""
    scm = models["gaussian"]
    torch.manual_seed(0)
    trace = fresh_noise_trace(scm, NODES, 50, dim=-2, drop_gaussian=["B"])
    dropped = trace.nodes[noise_site("B")]["value"]
    kept = trace.nodes[noise_site("A")]["value"]
    assert float(dropped.std(0).max()) < 1e-9 < float(kept.std(0).min())


def test_linearize_reproduces_a_linear_scm(triangle):
    """offset + coef . noise equals the program's value for random noise, and the coefficients
    are close to the true total effects of the noises on X2."""
    offset, coef = linearize(triangle, TRIANGLE)
    assert offset["X2"].shape == (8,) and coef["X2"].shape == (8, 3)
    noise = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    data = {noise_site(p): noise[:, i : i + 1] for i, p in enumerate(TRIANGLE)}
    values = poutine.condition(triangle.program, data=data)(TRIANGLE)
    for p in TRIANGLE:
        expected = offset[p] + noise @ coef[p].T  # (5, D)
        torch.testing.assert_close(values[p].expand(5, 8), expected, atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(coef["X2"].mean(0).numpy(), TRIANGLE_TOTAL, atol=0.1)
    np.testing.assert_allclose(coef["X0"][:, 1:].numpy(), 0.0)  # X0 does not see the later noises


def test_linearize_with_given_inputs(triangle):
    """With X0 and X1 given, X2's coefficients are its own noise's, then the direct effects."""
    _, coef = linearize(triangle, ["X2"], inputs=["X0", "X1"])
    assert coef["X2"].shape == (8, 3)
    np.testing.assert_allclose(coef["X2"][:, 0].numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(coef["X2"][:, 1:].mean(0).numpy(), TRIANGLE_DIRECT, atol=0.1)


def test_nonlinear_closure():
    linear = fit_triangle("gaussian", num_draws=2, n=200)
    assert nonlinear_closure(linear, TRIANGLE) == []
    spline = fit_triangle({"X0": "gaussian", "X1": "spline", "X2": "gaussian"}, num_draws=2, n=200)
    assert nonlinear_closure(spline, TRIANGLE) == ["X0", "X1"]
    assert nonlinear_closure(spline, ["X0"]) == []
