"""Tests of bayesrca.mechanisms.noise: the residual KDE noise, its GPD-tailed version and the Gaussian split."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import kstest, norm

import bayesrca as br
from bayesrca.mechanisms import noise as noise_module
from bayesrca.mechanisms.noise import TAIL_PARAMS, BootstrapGPD, ResidualKDE, kernel_log_sum, split_gaussian

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


def _direct_kernel_log_sum(value, atoms, bandwidth):
    """The direct formula: one values x draws x atoms tensor."""
    z = (value.unsqueeze(-1) - atoms) / bandwidth.unsqueeze(-1)
    return torch.logsumexp(-0.5 * z**2, dim=-1)


@settings(max_examples=40, deadline=None)
@given(
    num_draws=st.integers(1, 5), num_atoms=st.integers(1, 40), num_values=st.integers(0, 300),
    offset=st.sampled_from([0.0, 1e4, -1e6]), spread=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16),
    per_draw=st.booleans(),
)
def test_kernel_log_sum_is_the_direct_log_sum_exp(num_draws, num_atoms, num_values, offset, spread, seed, per_draw):
    """Blocked, in place and unshifted, it is the direct formula to round-off: values near, between
    and far beyond the atoms (far ones take the shifted fallback), at any offset, one value for all
    draws or one per draw, and any number of values (blocks of any size, the last one partial)."""
    gen = torch.Generator().manual_seed(seed)
    atoms = offset + spread * torch.randn(num_draws, num_atoms, generator=gen, dtype=torch.float64)
    bandwidth = spread * (0.05 + torch.rand(num_draws, generator=gen, dtype=torch.float64))
    scale = spread * torch.tensor([1.0, 10.0, 1e3], dtype=torch.float64)
    values = offset + scale[torch.arange(num_values) % 3] * torch.randn(num_values, generator=gen, dtype=torch.float64)
    value = values.reshape(-1, 1) if not per_draw else values.repeat_interleave(num_draws).reshape(-1, num_draws)
    got = kernel_log_sum(value, atoms, bandwidth)
    expected = _direct_kernel_log_sum(value, atoms, bandwidth)
    assert got.shape == expected.shape == (num_values, num_draws)
    assert bool(got.isfinite().all())
    # the exponent's round-off is relative: eps times ((value - centre) / h)^2
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_kernel_log_sum_keeps_shapes_and_small_blocks(monkeypatch):
    """Any leading shape broadcasts as in the direct formula; a block of one row per draw gives the same sums."""
    value = torch.linspace(-5, 30, 2 * 7 * D, dtype=torch.float64).reshape(2, 7, D)
    expected = _direct_kernel_log_sum(value, ATOMS, BANDWIDTH)
    torch.testing.assert_close(kernel_log_sum(value, ATOMS, BANDWIDTH), expected, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(noise_module, "KERNEL_BLOCK", 1)
    torch.testing.assert_close(kernel_log_sum(value, ATOMS, BANDWIDTH), expected, rtol=1e-12, atol=1e-12)
    assert kernel_log_sum(torch.zeros(0, 1, dtype=torch.float64), ATOMS, BANDWIDTH).shape == (0, D)


def test_kde_log_prob_keeps_gradients_where_asked():
    """A value that requires a gradient takes the direct (differentiable) formula, with the same numbers."""
    value = torch.tensor([[0.3], [9.9], [20.5]], dtype=torch.float64, requires_grad=True)
    logp = _kde().log_prob(value)
    logp.sum().backward()
    assert value.grad is not None and bool(value.grad.isfinite().all())
    with torch.no_grad():
        torch.testing.assert_close(logp.detach(), _kde().log_prob(value.detach()), rtol=1e-12, atol=1e-12)


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
# BootstrapGPD
# ---------------------------------------------------------------------------------------------
def _tailed(n: int = 600, num_draws: int = 4, seed: int = 0) -> tuple[br.LinearANM, BootstrapGPD, torch.Tensor]:
    """A LinearANM with the default noise on exponential(1) noise (sd 1), its noise and residuals (n, D)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 1.0 + 2.0 * x + rng.exponential(1.0, n)
    torch.manual_seed(seed)
    mech = br.LinearANM().fit(y, x[:, None], num_draws=num_draws)
    residuals = mech.abduct(torch.tensor(y).unsqueeze(-1), [torch.tensor(x).unsqueeze(-1)])
    return mech, mech.noise_distribution(), residuals


def _pieces(noise: BootstrapGPD, d: int, reach: float = 1e4, num: int = 8001) -> torch.Tensor:
    """Quadrature nodes for draw d: geometric in both tails (out to ``reach`` scales), fine in the body."""
    lo, hi = float(noise.lower[d]), float(noise.upper[d])
    s_lo, s_hi = float(noise.scale_lower[d]), float(noise.scale_upper[d])
    left = lo - s_lo * torch.logspace(math.log10(reach), -8, num, dtype=torch.float64)
    right = hi + s_hi * torch.logspace(-8, math.log10(reach), num, dtype=torch.float64)
    body = torch.linspace(lo, hi, 2 * num, dtype=torch.float64)
    return torch.cat([left, torch.tensor([lo], dtype=torch.float64), body[1:-1], torch.tensor([hi], dtype=torch.float64), right])


def _on_draw(noise: BootstrapGPD, fn: str, x: torch.Tensor, d: int) -> torch.Tensor:
    """``noise.<fn>`` of values ``x`` (n,) under draw d only."""
    out = getattr(noise, fn)(x.unsqueeze(-1).expand(-1, noise.batch_shape[-1]).contiguous())
    return out[..., d] if isinstance(out, torch.Tensor) else tuple(o[..., d] for o in out)


def test_default_noise_is_gpd_tailed_with_thresholds_at_the_residual_deciles():
    mech, noise, residuals = _tailed()
    assert mech.noise == "bootstrap_gpd" and mech.noise_family_ == "bootstrap_gpd"
    assert mech.describe() == "linear/bootstrap_gpd" and isinstance(noise, BootstrapGPD)
    assert mech.diagnostics_["tails"] == "gpd" and mech.diagnostics_["tail_exceedances"] == 60
    assert mech.diagnostics_["tail_grid_edge_mass"] < 1e-3
    for key in TAIL_PARAMS:
        assert getattr(noise, key).shape == (4,)
    # thresholds: the 61st smallest / largest residual of each draw; tail probabilities ~ 10 %
    ranked = residuals.sort(0).values
    torch.testing.assert_close(noise.lower, ranked[60])
    torch.testing.assert_close(noise.upper, ranked[-61])
    assert bool(((noise.prob_lower > 0.05) & (noise.prob_lower < 0.15)).all())
    assert bool(((noise.prob_upper > 0.05) & (noise.prob_upper < 0.15)).all())
    # exponential noise: light upper tail (shape near 0), scale near the noise's sd 1
    assert bool((noise.shape_upper < 0.35).all()) and bool(((noise.scale_upper > 0.5) & (noise.scale_upper < 1.8)).all())


def test_gpd_noise_shapes_expand_and_plates():
    _, noise, _ = _tailed()
    assert noise.batch_shape == (4,) and noise.event_shape == () and not noise.has_rsample
    assert noise.sample().shape == (4,) and noise.sample((2, 3)).shape == (2, 3, 4)
    assert noise.log_prob(torch.zeros(7, 1, dtype=torch.float64)).shape == (7, 4)
    assert noise.cdf(torch.zeros(7, 4, dtype=torch.float64)).shape == (7, 4)
    big = noise.expand((6, 4))
    assert isinstance(big, BootstrapGPD) and big.batch_shape == (6, 4) and big.sample((2,)).shape == (2, 6, 4)
    assert big.mean.shape == big.variance.shape == (6, 4)

    def model():
        with pyro.plate("rows", 5, dim=-2):
            return pyro.sample("noise", noise)

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    site = trace.nodes["noise"]
    assert site["value"].shape == site["log_prob"].shape == (5, 4)
    torch.testing.assert_close(site["log_prob"], noise.log_prob(site["value"]))


@pytest.mark.parametrize("d", [0, 3])
def test_gpd_noise_density_integrates_to_one_and_cdf_is_its_integral(d):
    _, noise, _ = _tailed()
    x = _pieces(noise, d)
    dens = _on_draw(noise, "log_prob", x, d).exp()
    pieces = {"lower": x <= noise.lower[d], "body": (x >= noise.lower[d]) & (x <= noise.upper[d]), "upper": x >= noise.upper[d]}
    left, right = noise.lower[d], noise.upper[d]
    masses = {}
    for name, sel in pieces.items():
        xs, ys = x[sel], dens[sel]
        if name == "lower":  # the one-sided limits at the thresholds: the density may jump there
            ys = ys.clone()
            ys[-1] = _on_draw(noise, "log_prob", left.reshape(1) - 1e-12, d).exp()
        if name == "upper":
            ys = ys.clone()
            ys[0] = _on_draw(noise, "log_prob", right.reshape(1) + 1e-12, d).exp()
        masses[name] = float(torch.trapezoid(ys, xs))
    # the tails beyond the quadrature's reach, in closed form
    far = {"lower": float(noise.prob_lower[d]) * float(torch.exp(-torch.log1p(noise.shape_lower[d] * 1e4) / noise.shape_lower[d]))
           if float(noise.shape_lower[d]) > 0 else 0.0,
           "upper": float(noise.prob_upper[d]) * float(torch.exp(-torch.log1p(noise.shape_upper[d] * 1e4) / noise.shape_upper[d]))
           if float(noise.shape_upper[d]) > 0 else 0.0}
    assert math.isclose(masses["lower"] + far["lower"], float(noise.prob_lower[d]), rel_tol=1e-4)
    assert math.isclose(masses["upper"] + far["upper"], float(noise.prob_upper[d]), rel_tol=1e-4)
    assert math.isclose(masses["body"], 1.0 - float(noise.prob_lower[d] + noise.prob_upper[d]), rel_tol=1e-5)
    assert math.isclose(sum(masses.values()) + sum(far.values()), 1.0, rel_tol=1e-5)
    # cdf: monotone, continuous at the thresholds, and the integral of the density
    cdf = _on_draw(noise, "cdf", x, d)
    assert bool((cdf.diff() >= -1e-15).all())
    for t in (left, right):
        below = _on_draw(noise, "cdf", t.reshape(1) - 1e-10, d)
        above = _on_draw(noise, "cdf", t.reshape(1) + 1e-10, d)
        assert float((above - below).abs()) < 1e-8
    body = pieces["body"]
    integral = torch.cumulative_trapezoid(dens[body], x[body]) + float(noise.prob_lower[d])
    torch.testing.assert_close(cdf[body][1:], integral, atol=1e-6, rtol=0)
    upper = pieces["upper"]
    sf = 1.0 - cdf[upper]
    torch.testing.assert_close(sf[0], noise.prob_upper[d], atol=1e-12, rtol=0)
    log_cdf, log_sf = _on_draw(noise, "log_tails", x, d)
    torch.testing.assert_close(log_cdf.exp() + log_sf.exp(), torch.ones_like(x), atol=1e-12, rtol=0)


def test_gpd_noise_mean_and_variance_match_quadrature_and_samples():
    _, noise, _ = _tailed()
    torch.manual_seed(3)
    x = noise.sample((100_000,))
    for d in range(4):
        grid = _pieces(noise, d)
        dens = _on_draw(noise, "log_prob", grid, d).exp()
        mean = float(torch.trapezoid(grid * dens, grid))
        var = float(torch.trapezoid((grid - mean) ** 2 * dens, grid))
        assert math.isclose(float(noise.mean[d]), mean, abs_tol=2e-3)
        assert math.isclose(float(noise.variance[d]), var, rel_tol=1e-2)
        se = math.sqrt(float(noise.variance[d]) / len(x))
        assert abs(float(x[:, d].mean()) - float(noise.mean[d])) < 5 * se


def test_gpd_noise_samples_follow_its_cdf():
    _, noise, _ = _tailed()
    torch.manual_seed(1)
    x = noise.sample((20_000,))
    for d in range(4):
        p = kstest(x[:, d].numpy(), lambda v, d=d: _on_draw(noise, "cdf", torch.as_tensor(v), d).numpy()).pvalue
        assert p > 1e-3, (d, p)
        # the tails get their share of the samples
        frac = float((x[:, d] > noise.upper[d]).double().mean())
        assert abs(frac - float(noise.prob_upper[d])) < 5 * math.sqrt(0.1 * 0.9 / len(x))


def test_gpd_noise_far_values_get_a_sensible_density_where_the_kde_collapses():
    """Exponential(1) residuals: 20 residual sd above the mean the true log density is -21."""
    mech, noise, residuals = _tailed()
    value = torch.tensor([[20.0]], dtype=torch.float64)
    logp = noise.log_prob(value)
    assert bool(logp.isfinite().all())
    assert abs(float(logp.median()) + 21.0) < math.log(1e4)  # the right order of magnitude (within 10^4)
    kde, _ = _fitted("bootstrap", n=600)
    assert float(kde.noise_distribution().log_prob(value).max()) < -500  # the kernel's Gaussian tail
    log_cdf, log_sf = noise.log_tails(value)
    assert bool(log_sf.isfinite().all()) and abs(float(log_sf.median()) + 21.0) < math.log(1e4)
    # and much further out the tail is still finite (polynomial or exponential, never an end point)
    assert bool(noise.log_prob(torch.tensor([[1e6], [-1e6]], dtype=torch.float64)).isfinite().all())
    assert bool(noise.log_tails(torch.tensor([[-1e6]], dtype=torch.float64))[0].isfinite().all())


def test_gpd_noise_with_infinite_variance_keeps_a_finite_mean():
    noise = _synthetic(shape_upper=0.7)
    assert bool(noise.mean.isfinite().all()) and bool(torch.isinf(noise.variance).all())


def _synthetic(shape_upper: float = 0.2, **overrides) -> BootstrapGPD:
    atoms = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64).expand(2, 9)
    one = torch.ones(2, dtype=torch.float64)
    params = {"lower": -0.6 * one, "upper": 0.6 * one, "prob_lower": 0.1 * one, "prob_upper": 0.15 * one,
              "shape_lower": 0.0 * one, "shape_upper": shape_upper * one, "scale_lower": 0.3 * one, "scale_upper": 0.5 * one}
    params.update({k: v * one for k, v in overrides.items()})
    return BootstrapGPD(atoms, 0.2 * one, *(params[k] for k in TAIL_PARAMS))


@settings(max_examples=40, deadline=None)
@given(
    spread=st.floats(0.05, 3.0), bandwidth=st.floats(0.01, 1.0), p_lo=st.floats(0.01, 0.3), p_hi=st.floats(0.01, 0.3),
    xi_lo=st.floats(0.0, 0.95), xi_hi=st.floats(0.0, 0.95), s_lo=st.floats(0.01, 5.0), s_hi=st.floats(0.01, 5.0),
)
def test_gpd_noise_cdf_is_a_distribution_function(spread, bandwidth, p_lo, p_hi, xi_lo, xi_hi, s_lo, s_hi):
    atoms = torch.linspace(-spread, spread, 11, dtype=torch.float64).unsqueeze(0)
    one = torch.ones(1, dtype=torch.float64)
    noise = BootstrapGPD(atoms, bandwidth * one, -0.5 * spread * one, 0.5 * spread * one, p_lo * one, p_hi * one,
                         xi_lo * one, xi_hi * one, s_lo * one, s_hi * one)
    x = torch.cat([-torch.logspace(8, -3, 200, dtype=torch.float64), torch.linspace(-spread, spread, 201, dtype=torch.float64),
                   torch.logspace(-3, 8, 200, dtype=torch.float64)]).sort().values.unsqueeze(-1)
    cdf = noise.cdf(x).squeeze(-1)
    assert bool((cdf.diff() >= -1e-12).all()) and bool(((cdf >= 0) & (cdf <= 1)).all())
    assert float(cdf[0]) < 0.01 and float(cdf[-1]) > 0.99
    for t, p in ((-0.5 * spread, p_lo), (0.5 * spread, 1.0 - p_hi)):
        torch.testing.assert_close(noise.cdf(torch.tensor([[t]], dtype=torch.float64)).squeeze(), torch.tensor(p, dtype=torch.float64))
    assert bool(noise.log_prob(x).isfinite().all())


def test_too_few_residuals_fall_back_to_the_plain_kde():
    rng = np.random.default_rng(0)
    mech = br.RootDistribution().fit(rng.exponential(size=6), np.zeros((6, 0)), num_draws=5)
    assert mech.noise_family_ == "bootstrap" and mech.diagnostics_["tails"] == "kde"
    assert isinstance(mech.noise_distribution(), ResidualKDE)
    small = br.RootDistribution().fit(rng.exponential(size=40), np.zeros((40, 0)), num_draws=5)
    assert small.noise_family_ == "bootstrap_gpd" and small.diagnostics_["tail_exceedances"] == 10  # a quarter
    # a column that is mostly one value: residuals tied at both thresholds, no body between them
    tied = br.RootDistribution().fit(np.r_[np.zeros(450), rng.normal(size=50)], np.zeros((500, 0)), num_draws=5)
    assert tied.noise_family_ == "bootstrap" and tied.diagnostics_["tails"] == "kde"
    assert "tied" in tied.diagnostics_["tails_note"]
    assert float(tied.log_prob(torch.zeros(1, 1, dtype=torch.float64), []).max()) < 10  # no blown-up density


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
        _synthetic(),
        dist.StudentT(3.0, torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)),
        dist.LogNormal(torch.zeros(2, D, dtype=torch.float64), torch.ones(2, D, dtype=torch.float64)),
        dist.Uniform(torch.zeros(D), torch.ones(D)),
    ],
    ids=["kde", "kde-expanded", "bootstrap_gpd", "student_t", "lognormal", "uniform"],
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


@settings(max_examples=30, deadline=None)
@given(num_distinct=st.integers(1, 6), bandwidth=st.floats(1e-3, 10.0), seed=st.integers(0, 2**16))
def test_kde_with_few_distinct_atoms_sums_each_distinct_atom_once(num_distinct, bandwidth, seed):
    """Bootstrap atoms of a near-discrete column repeat a few values: the density sums one kernel
    per distinct atom times its count, the same sum as one kernel per atom, near and far."""
    gen = torch.Generator().manual_seed(seed)
    values = 100 * torch.randn(num_distinct, generator=gen, dtype=torch.float64)
    atoms = values[torch.randint(num_distinct, (4, 200), generator=gen)]
    h = torch.full((4,), bandwidth, dtype=torch.float64)
    kde = ResidualKDE(atoms, h)
    distinct = kde._distinct()
    assert distinct is not None and distinct[0].shape[-1] <= num_distinct
    torch.testing.assert_close(distinct[1].sum(-1), torch.full((4,), 200.0, dtype=torch.float64))
    query = torch.cat([atoms[:, :3].T + bandwidth * torch.randn(3, 4, generator=gen, dtype=torch.float64),
                       300 * torch.randn(50, 4, generator=gen, dtype=torch.float64)])
    expected = _direct_kernel_log_sum(query, atoms, h) - math.log(200) - h.log() - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(kde.log_prob(query), expected, rtol=1e-9, atol=1e-9)
    assert kde.expand((7, 4)).__dict__["_distinct_cache"] is distinct  # plates reuse it
    # many distinct atoms: the sum over all atoms, as before
    assert ResidualKDE(torch.randn(4, 200, generator=gen, dtype=torch.float64), h)._distinct() is None


def test_bootstrap_gpd_log_prob_in_the_tails_is_the_gpd_and_in_the_body_the_kernel():
    """Far values take the GPD tails' closed form (the body is evaluated at the threshold and
    discarded); values in the body take the rescaled kernel density."""
    import math

    from bayesrca.mechanisms.noise import BootstrapGPD

    draws = 2
    dist = _synthetic()
    far = torch.tensor([[-1e4], [-50.0], [50.0], [1e4]], dtype=torch.float64).expand(4, draws)
    torch.testing.assert_close(dist.log_prob(far), dist.tail_log_prob(far))
    assert bool(dist.log_prob(far).isfinite().all())
    body = 0.5 * (dist.lower + dist.upper).unsqueeze(0).expand(3, draws)
    expected = dist.kde.log_prob(body) + torch.log(dist._prob_body / dist._body_mass)
    torch.testing.assert_close(dist.log_prob(body), expected)
    assert math.isfinite(float(dist.log_prob(body).sum()))
    assert isinstance(dist, BootstrapGPD)


def test_tail_log_prob_at_selected_values_equals_the_full_tail_log_prob():
    """The tails' density at a subset of (value, draw) pairs is the full evaluation's, bit for bit."""
    noise = _synthetic()
    values = 3 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    where = ((values > noise.upper) | (values < noise.lower)).nonzero(as_tuple=True)
    assert len(where[0]) > 100
    assert torch.equal(noise.tail_log_prob_at(values[where], where[-1]), noise.tail_log_prob(values)[where])
