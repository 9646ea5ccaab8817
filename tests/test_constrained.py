"""Sign-constrained posteriors: truncated normals, the Gibbs sampler against rejection, constrained least squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from bayesrca import constrained, inference

F64 = torch.float64


@given(st.floats(min_value=-1e5, max_value=np.log(0.5)))
@settings(max_examples=200, deadline=None)
def test_ndtri_exp_matches_scipy_far_into_the_tail(log_p):
    z = constrained.ndtri_exp(torch.tensor([log_p], dtype=F64)).item()
    assert z == pytest.approx(special.ndtri_exp(log_p), rel=1e-9, abs=1e-9)


@given(st.floats(min_value=-1e8, max_value=1e8), st.floats(min_value=1e-8, max_value=1e4))
@settings(max_examples=200, deadline=None)
def test_positive_normal_draws_are_finite_and_never_negative(mean, std):
    x = constrained.positive_normal(torch.full((64,), mean, dtype=F64), torch.full((64,), std, dtype=F64))
    assert bool(torch.isfinite(x).all()) and bool((x >= 0).all())
    if mean > 10 * std:  # the bound is irrelevant: the plain normal
        assert float((x - mean).abs().max()) < 8 * std


@pytest.mark.parametrize("mean", [3.0, 0.0, -2.5, -40.0, -1e3])
def test_positive_normal_has_the_truncated_normal_moments(mean):
    torch.manual_seed(0)
    n, std = 200_000, 1.5
    x = constrained.positive_normal(torch.full((n,), mean, dtype=F64), torch.full((n,), std, dtype=F64))
    ref = stats.truncnorm(-mean / std, np.inf, loc=mean, scale=std)
    assert bool((x >= 0).all()) and bool(torch.isfinite(x).all())
    # the far tail: E = std^2 / |mean| to first order, scipy's closed form loses digits there
    ref_mean = ref.mean() if mean > -30 else std**2 / -mean * (1 - 2 * std**2 / mean**2)
    ref_sd = ref.std() if mean > -30 else std**2 / -mean
    assert float(x.mean()) == pytest.approx(ref_mean, rel=5 * ref_sd / ref_mean / np.sqrt(n) + 1e-3)
    assert float(x.std()) == pytest.approx(ref_sd, rel=0.01)


def _design(n: int, rho: float, effects: tuple[float, float], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    z = (z - z.mean(0)) / z.std(0)
    y = z @ np.asarray(effects) + rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    return torch.as_tensor(np.column_stack([np.ones(n), z])), torch.as_tensor(y)


def _rejection(X, y, signs, count, g):
    """A long exact reference: unconstrained conjugate draws kept where they satisfy the signs."""
    draws, _ = inference.conjugate_posterior(X, y, count, g=g)
    keep = ((draws["coef"] * signs) >= 0).all(-1)
    return draws["coef"][keep], draws["sigma"][keep]


@pytest.mark.parametrize("tries", [1, constrained.REJECTION_TRIES])
@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_conjugate_posterior_matches_a_long_rejection_sampler_in_two_dimensions(tries, rho):
    # effects near 0: the orthant cuts deep into the posterior. With tries=1 most draws start
    # outside it (clamped) and only the Gibbs sweeps bring them to the posterior.
    X, y = _design(40, rho, (0.05, -0.1), seed=1)
    signs = torch.tensor([0.0, 1.0, 1.0], dtype=F64)
    torch.manual_seed(2)
    ref_coef, ref_sigma = _rejection(X, y, signs, 1_500_000, inference.VAGUE_G)
    assert len(ref_coef) > 20_000
    draws, info = constrained.conjugate_posterior(X, y, 20_000, signs, g=inference.VAGUE_G,
                                                  a0=inference.PRIOR["a0"], b0=inference.PRIOR["b0"], tries=tries)
    coef = draws["coef"]
    assert bool((coef[:, 1:] >= 0).all())
    if tries == 1:
        assert info["exact_start_fraction"] < 0.6  # the check below is on the Gibbs sweeps
    se = ref_coef.std(0) * np.sqrt(1 / 20_000 + 1 / len(ref_coef))
    assert torch.allclose(coef.mean(0), ref_coef.mean(0), atol=float(5 * se.max()))
    assert torch.allclose(coef.std(0), ref_coef.std(0), rtol=0.03)
    assert float(draws["sigma"].mean()) == pytest.approx(float(ref_sigma.mean()), rel=0.01)
    # the two effects' correlation is kept
    assert np.corrcoef(coef[:, 1:].T.numpy())[0, 1] == pytest.approx(np.corrcoef(ref_coef[:, 1:].T.numpy())[0, 1], abs=0.03)


def test_conjugate_posterior_one_coefficient_given_sigma_is_the_truncated_normal():
    # one coefficient, no intercept, a known sigma (a huge a0 pins sigma2 at b0 / a0 = 1):
    # the posterior is Normal(mean, 1 / x'x) truncated to [0, inf), whose moments are exact
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 1))
    y = -0.3 * x[:, 0] + rng.normal(size=25)
    X, t = torch.as_tensor(x), torch.as_tensor(y)
    a0 = 1e9
    torch.manual_seed(4)
    draws, _ = constrained.conjugate_posterior(X, t, 40_000, torch.tensor([1.0], dtype=F64), g=1e12, a0=a0, b0=a0, tries=1)
    prec = float(x[:, 0] @ x[:, 0])
    mean, sd = float(x[:, 0] @ y) / prec, prec**-0.5
    ref = stats.truncnorm(-mean / sd, np.inf, loc=mean, scale=sd)
    coef = draws["coef"][:, 0]
    assert float(coef.mean()) == pytest.approx(ref.mean(), abs=5 * ref.std() / np.sqrt(40_000))
    assert float(coef.std()) == pytest.approx(ref.std(), rel=0.02)


def test_the_rejection_comparison_detects_an_unconverged_start():
    # the check above has power: clamped starts without sweeps are far from the posterior
    X, y = _design(40, 0.8, (0.05, -0.1), seed=1)
    signs = torch.tensor([0.0, 1.0, 1.0], dtype=F64)
    torch.manual_seed(2)
    ref_coef, _ = _rejection(X, y, signs, 1_500_000, inference.VAGUE_G)
    draws, _ = constrained.conjugate_posterior(X, y, 20_000, signs, g=inference.VAGUE_G, a0=inference.PRIOR["a0"],
                                               b0=inference.PRIOR["b0"], tries=1, sweeps=0)
    se = ref_coef.std(0) * np.sqrt(1 / 20_000 + 1 / len(ref_coef))
    assert not torch.allclose(draws["coef"].std(0), ref_coef.std(0), rtol=0.03)
    assert not torch.allclose(draws["coef"].mean(0), ref_coef.mean(0), atol=float(5 * se.max()))


@given(st.integers(0, 10_000), st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_sign_constrained_solve_meets_the_kkt_conditions(seed, num_features):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 2 * num_features + 3, num_features, generator=gen, dtype=F64)
    gram = a.transpose(-1, -2) @ a + 1e-3 * torch.eye(num_features, dtype=F64)
    rhs = torch.randn(3, num_features, generator=gen, dtype=F64) * 3
    signs = torch.randint(-1, 2, (num_features,), generator=gen).to(F64)
    coef = constrained.sign_constrained_solve(gram, rhs, signs)
    grad = (gram @ coef.unsqueeze(-1)).squeeze(-1) - rhs
    tol = 1e-6 * (1 + rhs.abs().max())
    assert bool(((coef * signs) >= 0).all())
    # free or strictly inside: zero gradient; on the bound: the gradient pushes outwards
    inside = (signs == 0) | (coef.abs() > 1e-12)
    assert bool((grad[inside].abs() <= tol).all())
    assert bool(((grad * signs)[~inside] >= -tol).all())


def test_sign_constrained_solve_without_active_constraints_is_the_least_squares_solution():
    gram = torch.tensor([[[2.0, 0.5], [0.5, 1.0]]], dtype=F64)
    rhs = torch.tensor([[2.0, 2.0]], dtype=F64)
    free = torch.linalg.solve(gram, rhs)
    assert bool((free > 0).all())
    out = constrained.sign_constrained_solve(gram, rhs, torch.tensor([1.0, 1.0], dtype=F64))
    assert torch.allclose(out, free, atol=1e-9)
