"""GPANM: recovery, uncertainty that grows away from the data, hyperparameter weights, calibration."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca._random import seeded
from bayesrca.exceptions import ConfigError, NotFittedError
from bayesrca.mechanisms.gp import fourier_frequencies

FUNCTIONS = {
    "tanh": lambda v: np.tanh(2 * v),
    "square": lambda v: v**2,
    "softplus": lambda v: np.logaddexp(0.0, v),
}


def _data(name: str, n: int = 500, seed: int = 0, sd: float = 0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return x, FUNCTIONS[name](x) + rng.normal(0, sd, n)


def _f(mech, values) -> torch.Tensor:
    """Posterior draws of f at ``values``: shape (len(values), D)."""
    return mech.loc([torch.as_tensor(np.asarray(values, dtype=np.float64))[:, None]])


@pytest.fixture(scope="module")
def fits():
    out = {}
    for name in FUNCTIONS:
        x, y = _data(name)
        with seeded(1):
            out[name] = (x, br.GPANM().fit(y, x[:, None], num_draws=200),
                         br.SplineANM("gaussian").fit(y, x[:, None], num_draws=200))
    return out


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_posterior_mean_recovers_a_smooth_function_inside_the_data(fits, name):
    _, gp, _ = fits[name]
    grid = np.linspace(-2, 2, 17)
    error = np.abs(_f(gp, grid).mean(-1).numpy() - FUNCTIONS[name](grid))
    assert error.max() < 0.15, error


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_uncertainty_grows_away_from_the_data_and_beyond_the_spline(fits, name):
    x, gp, spline = fits[name]
    far = 3 * np.abs(x).max()  # three times the training range's half-width
    inside = _f(gp, np.linspace(-1.5, 1.5, 7)).std(-1).max()
    sd_far = _f(gp, [-far, far]).std(-1)
    assert torch.all(sd_far > 20 * inside), (sd_far, inside)
    # the spline's posterior is linear beyond its knots, with the slope's uncertainty only
    spline_far = _f(spline, [-far, far]).std(-1)
    assert torch.all(sd_far > 3 * spline_far), (sd_far, spline_far)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_just_beyond_the_data_the_interval_holds_the_truth(fits, name):
    """At 1.25x the largest training value the GP's 99 % interval holds f; the spline's need not."""
    x, gp, _ = fits[name]
    edge = 1.25 * np.abs(x).max()
    draws = _f(gp, [-edge, edge])
    lo, hi = torch.quantile(draws, torch.tensor([0.005, 0.995], dtype=draws.dtype), dim=-1)
    truth = torch.as_tensor(FUNCTIONS[name](np.array([-edge, edge])))
    assert torch.all((lo <= truth) & (truth <= hi)), (lo, hi, truth)


def test_inside_the_training_range_the_hinges_change_nothing(fits):
    x, gp, _ = fits["square"]
    values = torch.as_tensor(np.linspace(x.min(), x.max(), 50))[:, None]
    columns = list(gp._feature_columns([values]))
    per_parent = 3 + 2 * gp.num_frequencies
    assert len(columns) == per_parent
    assert torch.all(columns[-1] == 0) and torch.all(columns[-2] == 0)
    assert torch.any(gp.coef_[:, -2:] != 0)  # the hinge weights are prior draws


def test_grid_weights_prefer_long_length_scales_on_linear_data():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 500)
    y = 2 * x + rng.normal(0, 0.5, 500)
    with seeded(2):
        lin = br.GPANM().fit(y, x[:, None], num_draws=50)
        wiggly = br.GPANM().fit(np.sin(3 * x) + rng.normal(0, 0.3, 500), x[:, None], num_draws=50)
    ell = np.log(np.array(lin.lengthscale_grid_))
    w_lin, w_wig = lin.grid_weights_.sum(1), wiggly.grid_weights_.sum(1)
    assert lin.grid_weights_.shape == (len(ell), len(lin.amplitude_grid_))
    np.testing.assert_allclose(lin.grid_weights_.sum(), 1.0)
    assert w_lin[ell >= np.log(1.5)].sum() > 0.5
    assert w_lin @ ell > w_wig @ ell + 1.0  # the wiggly function gets a much shorter length scale
    # linear data: the smallest amplitudes; the draws follow the weights
    assert lin.grid_weights_.sum(0)[:2].sum() > 0.8
    assert set(np.unique(lin.lengthscale_.numpy())) <= set(lin.lengthscale_grid_)


@pytest.mark.parametrize("noise", ["gaussian", "bootstrap"])
def test_posterior_predictive_90_percent_intervals_cover_held_out_rows(noise):
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 2500)
    y = np.tanh(2 * x) + 0.5 * x**2 + rng.normal(0, 0.3, 2500)
    with seeded(5):
        mech = br.GPANM(noise).fit(y[:500], x[:500, None], num_draws=400)
        noise_draws = mech.noise_distribution().sample((2000,))  # (rows, D)
    predictive = mech.forward(noise_draws, [torch.as_tensor(x[500:])[:, None]])
    lo, hi = torch.quantile(predictive, torch.tensor([0.05, 0.95], dtype=predictive.dtype), dim=-1)
    truth = torch.as_tensor(y[500:])
    coverage = float(((lo <= truth) & (truth <= hi)).double().mean())
    assert 0.87 <= coverage <= 0.93, coverage


def test_draws_differ_in_length_scale_and_broadcast_with_the_draw_dimension_last():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 60)  # few rows: the length scale stays uncertain
    y = np.sin(2 * x) + rng.normal(0, 0.5, 60)
    with seeded(0):
        mech = br.GPANM().fit(y, x[:, None], num_draws=64)
    assert len(torch.unique(mech.lengthscale_)) > 1
    parents = [torch.as_tensor(rng.normal(size=(5, 3, 1)))]
    noise = torch.randn(5, 3, 64, dtype=torch.float64)
    value = mech.forward(noise, parents)
    assert value.shape == (5, 3, 64)
    torch.testing.assert_close(mech.abduct(value, parents), noise)
    # each draw uses its own length scale: draw d alone gives the same values
    single = [p.expand(5, 3, 1) for p in parents]
    d = 7
    alone = mech.intercept_[d] + sum(col[..., 0] * mech.coef_[d, f] for f, col in enumerate(
        mech._columns(single, torch.tensor([1.0 / float(mech.lengthscale_[d])], dtype=torch.float64))))
    torch.testing.assert_close(value[..., d] - noise[..., d], alone)


def test_float32_inputs_stay_float32():
    x, y = _data("tanh", n=200)
    with seeded(0):
        mech = br.GPANM().fit(y, np.column_stack([x, x**2]), num_draws=16)
    parents = [torch.randn(4, 16), torch.rand(4, 16)]
    noise = torch.randn(4, 16)
    value = mech.forward(noise, parents)
    assert value.dtype == torch.float32
    assert mech.abduct(value, parents).dtype == torch.float32
    torch.testing.assert_close(mech.abduct(value, parents), noise, atol=1e-4, rtol=1e-4)


def test_bootstrap_noise_and_two_parents():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=400), rng.uniform(-2, 2, 400)
    y = np.tanh(a) + 0.3 * b**2 + rng.gumbel(0, 0.3, 400)
    with seeded(0):
        mech = br.GPANM("bootstrap").fit(y, np.column_stack([a, b]), num_draws=40)
    assert mech.describe() == "gp/bootstrap"
    assert mech.noise_params_["atoms"].shape[0] == 40
    grid = torch.linspace(-1.5, 1.5, 7, dtype=torch.float64)[:, None]
    f = mech.loc([grid, torch.zeros_like(grid)]).mean(-1) - mech.loc([torch.zeros_like(grid), torch.zeros_like(grid)]).mean(-1)
    truth = np.tanh(grid[:, 0].numpy())
    assert np.abs(f.numpy() - truth).max() < 0.25


def test_gpd_tailed_bootstrap_noise_reaches_beyond_the_largest_residual():
    from bayesrca.mechanisms import BootstrapGPD

    rng = np.random.default_rng(3)
    x = rng.normal(size=1500)
    y = 100.0 * (np.tanh(x) + rng.exponential(0.5, 1500))  # skewed noise, data in hundreds
    with seeded(0):
        mech = br.GPANM("bootstrap_gpd").fit(y, x[:, None], num_draws=30)
    noise = mech.noise_distribution()
    assert isinstance(noise, BootstrapGPD) and mech.describe() == "gp/bootstrap_gpd"
    residual_sd = 50.0
    # the thresholds are residual quantiles on the data's scale, the tail probabilities are not rescaled
    assert 0 < float(noise.upper.median()) < 4 * residual_sd and 0.05 < float(noise.prob_upper.median()) < 0.2
    # 20 residual sd beyond the centre: finite, of the order of the exponential truth (log 2 - 20 - log 50)
    far = torch.full((30,), 20 * residual_sd, dtype=torch.float64)
    log_p = noise.log_prob(far)
    assert torch.isfinite(log_p).all() and float(log_p.median()) > -60


def test_a_constant_node_gets_a_tiny_gaussian_noise():
    x = np.random.default_rng(0).normal(size=50)
    with seeded(0):
        mech = br.GPANM().fit(np.full(50, 3.0), x[:, None], num_draws=8)
    assert mech.describe() == "gp/constant"
    value = mech.forward(torch.zeros(2, 8, dtype=torch.float64), [torch.ones(2, 8, dtype=torch.float64)])
    torch.testing.assert_close(value, torch.full((2, 8), 3.0, dtype=torch.float64))


@pytest.mark.parametrize("params", [
    {"noise": "student_t"}, {"inference": "nuts"}, {"num_frequencies": 0}, {"num_frequencies": 2.5},
    {"lengthscales": ()}, {"lengthscales": (1.0, -1.0)}, {"amplitudes": "big"}, {"amplitudes": (np.inf,)},
])
def test_bad_settings_raise_config_error(params):
    x, y = _data("tanh", n=50)
    with pytest.raises(ConfigError):
        br.GPANM(**params).fit(y, x[:, None], num_draws=4)


def test_a_root_and_an_unfitted_mechanism_are_refused():
    with pytest.raises(ConfigError, match="RootDistribution"):
        br.GPANM().fit(np.zeros(10), np.zeros((10, 0)), num_draws=4)
    with pytest.raises(NotFittedError):
        br.GPANM().loc([torch.zeros(1)])


def test_frequencies_approximate_the_squared_exponential_kernel():
    w = fourier_frequencies(32)
    lags = np.linspace(0, 3, 31)
    approx = np.cos(np.outer(lags, w)).mean(1)
    np.testing.assert_allclose(approx, np.exp(-lags**2 / 2), atol=0.02)


# ---------------------------------------------------------------------------------------------
# in a model: family string, per-node mechanism, attribution, save / load
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain():
    rng = np.random.default_rng(8)
    x0 = rng.normal(size=400)
    x1 = np.tanh(2 * x0) + 0.5 * x0**2 + 0.3 * rng.normal(size=400)
    x2 = np.logaddexp(0.0, x1) + 0.3 * rng.normal(size=400)
    return nx.DiGraph([("X0", "X1"), ("X1", "X2")]), pd.DataFrame({"X0": x0, "X1": x1, "X2": x2})


def test_family_string_and_per_node_mechanism(chain):
    graph, frame = chain
    scm = br.BayesianSCM(graph, mechanisms="gp", num_draws=10).fit(frame, seed=0)
    assert [scm.mechanisms_[n].describe() for n in ("X0", "X1", "X2")] == ["root/gaussian", "gp/gaussian", "gp/gaussian"]
    mixed = br.BayesianSCM(graph, mechanisms={"X1": br.GPANM("bootstrap"), "X2": "linear"}, num_draws=10).fit(frame, seed=0)
    assert mixed.mechanisms_["X1"].describe() == "gp/bootstrap"


@pytest.mark.filterwarnings("ignore::bayesrca.exceptions.TailEstimateWarning")  # few MC samples: not tested here
@pytest.mark.parametrize("shapley", ["exact", "permutation"])
def test_attribution_through_gp_nodes_is_efficient_per_draw_and_survives_save_load(chain, tmp_path, shapley):
    graph, frame = chain
    scm = br.BayesianSCM(graph, mechanisms={"X0": "gaussian", "X1": br.GPANM(), "X2": br.GPANM("bootstrap")},
                         num_draws=20).fit(frame, seed=0)
    anomaly = pd.DataFrame({"X0": [2.5], "X1": [np.tanh(5.0) + 0.5 * 2.5**2], "X2": [5.0]})
    res = br.attribute_anomalies(scm, "X2", anomaly, seed=3, num_mc_samples=400, shapley=shapley)
    assert res.contributions.shape == (20, 1, 3)
    assert np.all(np.isfinite(res.contributions))
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    loaded = br.load(br.save(scm, tmp_path / "gp.bayesrca"))
    again = br.attribute_anomalies(loaded, "X2", anomaly, seed=3, num_mc_samples=400, shapley=shapley)
    np.testing.assert_array_equal(res.contributions, again.contributions)
    pd.testing.assert_frame_equal(scm.sample(30, seed=1), loaded.sample(30, seed=1))
    mech, back = scm.mechanisms_["X1"], loaded.mechanisms_["X1"]
    assert back.get_params() == mech.get_params() and back.lengthscale_grid_ == mech.lengthscale_grid_
    np.testing.assert_array_equal(back.grid_weights_, mech.grid_weights_)


def test_tabulated_evaluation_matches_the_exact_fourier_sum(monkeypatch):
    from bayesrca.mechanisms.additive import AdditiveNoiseModel

    rng = np.random.default_rng(9)
    pa = rng.normal(size=(300, 2))
    y = np.tanh(2 * pa[:, 0]) + pa[:, 1] ** 2 + rng.normal(0, 0.3, 300)
    with seeded(0):
        mech = br.GPANM().fit(y, pa, num_draws=32)
    inside = [torch.as_tensor(rng.normal(0, 3, size=(50, 32))), torch.as_tensor(rng.normal(0, 3, size=(50, 1)))]
    exact = AdditiveNoiseModel.loc(mech, inside)
    torch.testing.assert_close(mech.loc(inside), exact, rtol=0, atol=1e-6 * float(exact.abs().max()))
    single = [p.float() for p in inside]
    torch.testing.assert_close(mech.loc(single), exact.float(), rtol=0, atol=1e-5 * float(exact.abs().max()))
    # beyond the table (10 sd past the data) the exact sum is used, for those values only: a tensor
    # mixing near and far values (and broadcasting over the draws) matches the exact sum everywhere
    far = [torch.tensor([[40.0]], dtype=torch.float64), torch.tensor([[0.0]], dtype=torch.float64)]
    exact_far = AdditiveNoiseModel.loc(mech, far)
    torch.testing.assert_close(mech.loc(far), exact_far, rtol=0, atol=1e-6 * float(exact_far.abs().max()))
    mixed = [inside[0].clone(), inside[1].clone()]
    mixed[0][::7] *= 20.0  # some rows far beyond the table in every draw
    mixed[1][3] = -45.0  # one row of the second parent, shared by all draws
    exact_mixed = AdditiveNoiseModel.loc(mech, mixed)
    torch.testing.assert_close(mech.loc(mixed), exact_mixed, rtol=0, atol=1e-6 * float(exact_mixed.abs().max()))
    calls = []
    monkeypatch.setattr(AdditiveNoiseModel, "loc", lambda *a, **k: calls.append(1))
    mech.loc(mixed)
    assert not calls  # no full exact evaluation because a few values are far
    monkeypatch.undo()
    # a refit drops the tables of the previous fit
    with seeded(1):
        mech.fit(-y, pa, num_draws=32)
    torch.testing.assert_close(mech.loc(inside), AdditiveNoiseModel.loc(mech, inside), rtol=0,
                               atol=1e-6 * float(exact.abs().max()))


def test_without_room_for_a_table_the_exact_sum_is_used(monkeypatch):
    from bayesrca.mechanisms import gp_tables
    from bayesrca.mechanisms.additive import AdditiveNoiseModel

    monkeypatch.setattr(gp_tables, "TABLE_MAX_ENTRIES", 10)
    x, y = _data("tanh", n=100)
    with seeded(0):
        mech = br.GPANM().fit(y, x[:, None], num_draws=8)
    parents = [torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]]
    assert torch.equal(mech.loc(parents), AdditiveNoiseModel.loc(mech, parents))
