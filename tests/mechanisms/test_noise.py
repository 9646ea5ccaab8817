"""Tests of bayesrca.mechanisms.noise: the residual KDE noise and the Gaussian split of a noise."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy.special import logsumexp
from scipy.stats import norm

import bayesrca as br
from bayesrca.mechanisms.noise import ResidualKDE, split_gaussian

NUM_DRAWS = 10
D, K = 3, 5
#: well separated atoms per draw (draw d lives around 10 d), and a bandwidth per draw
ATOMS = torch.randn(D, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 10 * torch.arange(
    D, dtype=torch.float64
).unsqueeze(-1)
BANDWIDTH = torch.tensor([0.3, 0.5, 0.8], dtype=torch.float64)


def _kde(bandwidth=BANDWIDTH) -> ResidualKDE:
    return ResidualKDE(ATOMS, bandwidth)


def _reference_log_density(value: np.ndarray) -> np.ndarray:
    """log (1/K) sum_k N(value; a_dk, h_d^2) per draw, with scipy; ``value`` (n,) -> (n, D)."""
    a, h = ATOMS.numpy(), BANDWIDTH.numpy()
    logpdf = norm.logpdf(value[:, None, None], a[None], h[None, :, None])  # (n, D, K)
    return logsumexp(logpdf, axis=-1) - math.log(K)


def _fitted(noise: str, n: int = 200) -> tuple[br.LinearANM, torch.Tensor]:
    """A LinearANM fitted on skewed data, and its training residuals per draw ``(n, D)``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    y = 1.0 + 2.0 * x + rng.exponential(1.0, n)
    torch.manual_seed(0)
    mech = br.LinearANM(noise).fit(y, x[:, None], num_draws=NUM_DRAWS)
    residuals = mech.abduct(torch.tensor(y).unsqueeze(-1), [torch.tensor(x).unsqueeze(-1)])
    return mech, residuals


# ---------------------------------------------------------------------------------------------
# ResidualKDE
# ---------------------------------------------------------------------------------------------
def test_kde_shapes_follow_the_draws_and_expand():
    kde = _kde()
    assert kde.batch_shape == (D,) and kde.event_shape == ()
    assert not kde.has_rsample and kde.support is dist.constraints.real
    assert kde.sample().shape == (D,)
    assert kde.sample((7,)).shape == (7, D) and kde.sample((2, 4)).shape == (2, 4, D)
    assert kde.log_prob(torch.zeros(7, D, dtype=torch.float64)).shape == (7, D)
    assert kde.log_prob(torch.zeros(7, 1, dtype=torch.float64)).shape == (7, D)  # broadcast over draws
    assert kde.cdf(torch.zeros(7, 1, dtype=torch.float64)).shape == (7, D)
    big = kde.expand((6, D))
    assert isinstance(big, ResidualKDE) and big.batch_shape == (6, D)
    assert big.sample((2,)).shape == (2, 6, D)
    assert big.mean.shape == big.variance.shape == (6, D)
    torch.testing.assert_close(big.mean, kde.mean.expand(6, D))
    assert big.log_prob(torch.zeros(6, D, dtype=torch.float64)).shape == (6, D)


def test_kde_works_as_a_pyro_site_inside_a_plate():
    def model():
        with pyro.plate("rows", 4, dim=-2):
            return pyro.sample("noise", _kde())

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    site = trace.nodes["noise"]
    assert site["value"].shape == site["log_prob"].shape == (4, D)
    torch.testing.assert_close(site["log_prob"], _kde().log_prob(site["value"]))


def test_kde_samples_pick_atoms_of_their_own_draw_uniformly():
    torch.manual_seed(0)
    kde = _kde(torch.full((D,), 1e-12, dtype=torch.float64))  # no kernel: the samples are atoms
    for shape, dims in (((3000,), (0,)), ((1000, 3), (0, 1))):
        x = kde.sample(shape)
        dev = (x.unsqueeze(-1) - ATOMS).abs()  # (..., D, K)
        assert float(dev.amin(-1).max()) < 1e-9  # every sample is an atom of its own draw
        counts = torch.nn.functional.one_hot(dev.argmin(-1), K).sum(dims)  # (D, K)
        expected = math.prod(shape) / K
        assert bool((counts - expected).abs().le(5 * math.sqrt(expected)).all()), counts
    expanded = kde.expand((4, D)).sample((500,))
    assert float((expanded.unsqueeze(-1) - ATOMS).abs().amin(-1).max()) < 1e-9


def test_kde_mean_and_variance_are_those_of_the_mixture():
    kde = _kde()
    a = ATOMS.numpy()
    np.testing.assert_allclose(kde.mean.numpy(), a.mean(-1), rtol=1e-12)
    np.testing.assert_allclose(kde.variance.numpy(), a.var(-1) + BANDWIDTH.numpy() ** 2, rtol=1e-12)
    # ... and of the density: moments by quadrature of exp(log_prob)
    grid = torch.linspace(-15.0, 40.0, 40001, dtype=torch.float64).unsqueeze(-1)
    dens = kde.log_prob(grid).exp()  # (G, D)
    x = grid.expand_as(dens)
    mass = torch.trapezoid(dens, x, dim=0)
    mean = torch.trapezoid(x * dens, x, dim=0)
    var = torch.trapezoid((x - mean) ** 2 * dens, x, dim=0)
    torch.testing.assert_close(mass, torch.ones(D, dtype=torch.float64), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(mean, kde.mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(var, kde.variance, rtol=1e-8, atol=1e-8)


def test_kde_sample_moments_match_mean_and_variance():
    torch.manual_seed(1)
    kde = _kde()
    x = kde.sample((200_000,))
    se = (kde.variance / x.shape[0]).sqrt()
    assert bool(((x.mean(0) - kde.mean).abs() < 4 * se).all())
    torch.testing.assert_close(x.var(0), kde.variance, rtol=0.02, atol=0.0)


def test_kde_log_prob_is_the_gaussian_mixture_and_finite_far_out():
    kde = _kde()
    values = np.array([-3.0, 0.0, 0.7, 9.5, 10.2, 21.0, 25.0])
    np.testing.assert_allclose(
        kde.log_prob(torch.tensor(values).unsqueeze(-1)).numpy(), _reference_log_density(values), rtol=1e-10
    )
    far = kde.log_prob(torch.tensor([[-1e3], [1e3]], dtype=torch.float64))
    assert bool(far.isfinite().all())
    # far out the nearest atom dominates: log N(v; a_max, h) - log K
    top = ATOMS.amax(-1)
    expected = -0.5 * ((1e3 - top) / BANDWIDTH) ** 2 - torch.log(BANDWIDTH) - 0.5 * math.log(2 * math.pi) - math.log(K)
    torch.testing.assert_close(far[1], expected, rtol=1e-9, atol=1e-9)


def test_kde_cdf_is_the_mixture_cdf_and_the_integral_of_the_density():
    kde = _kde()
    values = torch.linspace(-5.0, 30.0, 701, dtype=torch.float64).unsqueeze(-1)
    cdf = kde.cdf(values)
    expected = norm.cdf(values.numpy()[..., None], ATOMS.numpy(), BANDWIDTH.numpy()[:, None]).mean(-1)
    np.testing.assert_allclose(cdf.numpy(), expected, rtol=1e-10, atol=1e-14)
    assert bool((cdf.diff(dim=0) >= 0).all())
    extremes = kde.cdf(torch.tensor([[-1e3], [1e3]], dtype=torch.float64))
    torch.testing.assert_close(extremes, torch.tensor([[0.0] * D, [1.0] * D], dtype=torch.float64))
    step = 1e-5
    mid = torch.tensor([[0.3], [10.1], [19.7]], dtype=torch.float64)
    slope = (kde.cdf(mid + step) - kde.cdf(mid - step)) / (2 * step)
    torch.testing.assert_close(slope, kde.log_prob(mid).exp(), rtol=1e-6, atol=1e-9)


def test_bootstrap_noise_of_a_fitted_mechanism_is_a_kde_on_its_training_residuals():
    mech, residuals = _fitted("bootstrap")
    kde = mech.noise_distribution()
    assert isinstance(kde, ResidualKDE) and kde.batch_shape == (NUM_DRAWS,)
    assert kde.atoms.shape == (NUM_DRAWS, 200) and bool((kde.bandwidth > 0).all())
    # each draw's atoms are that draw's residuals (resampled with its Bayesian-bootstrap weights)
    gap = (kde.atoms.unsqueeze(-1) - residuals.T.unsqueeze(1)).abs().amin(-1)  # (D, K)
    assert float(gap.max()) < 1e-9
    torch.testing.assert_close(kde.mean, kde.atoms.mean(-1))
    # the noise spread is the residuals' spread (exponential(1) noise: variance 1) plus the kernel
    ratio = kde.variance / residuals.var(0)
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio
    assert bool(kde.log_prob(residuals).isfinite().all())


# ---------------------------------------------------------------------------------------------
# split_gaussian
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3,), (2, 3)])
def test_split_gaussian_takes_all_of_a_normal(shape):
    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(shape, generator=gen, dtype=torch.float64)
    scale = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
    rest, sd = split_gaussian(dist.Normal(loc, scale))
    assert isinstance(rest, dist.Delta) and rest.batch_shape == shape
    assert torch.equal(rest.sample(), loc) and torch.equal(rest.sample((4,)), loc.expand(4, *shape))
    assert torch.equal(sd, scale)
    assert bool((rest.log_prob(loc) == 0).all())


@pytest.mark.parametrize(
    "noise",
    [
        _kde(),
        _kde().expand((4, D)),
        dist.StudentT(3.0, torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)),
        dist.LogNormal(torch.zeros(2, D, dtype=torch.float64), torch.ones(2, D, dtype=torch.float64)),
        dist.Uniform(torch.zeros(D), torch.ones(D)),
    ],
    ids=["kde", "kde-expanded", "student_t", "lognormal", "uniform"],
)
def test_split_gaussian_leaves_other_noises_whole(noise):
    rest, sd = split_gaussian(noise)
    assert rest is noise
    assert sd.shape == noise.batch_shape and sd.dtype == torch.float64
    assert bool((sd == 0).all())


def test_split_gaussian_of_fitted_noises():
    gaussian, _ = _fitted("gaussian")
    rest, sd = split_gaussian(gaussian.noise_distribution())
    assert isinstance(rest, dist.Delta) and torch.equal(sd, gaussian.noise_params_["sigma"])
    assert bool((rest.sample() == 0).all())  # an additive mechanism's noise is centred
    bootstrap, _ = _fitted("bootstrap")
    kde = bootstrap.noise_distribution()
    rest, sd = split_gaussian(kde)
    assert isinstance(rest, ResidualKDE) and torch.equal(sd, torch.zeros(NUM_DRAWS, dtype=torch.float64))
