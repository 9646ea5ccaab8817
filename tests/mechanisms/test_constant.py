"""The spike-and-slab noise of a column that never varied (bayesrca.mechanisms.constant)."""

from __future__ import annotations

import itertools
import math
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import log_ndtr

import bayesrca as br
from bayesrca.counterfactual.engine import CounterfactualEngine
from bayesrca.mechanisms.constant import SpikeSlabNormal, constant_noise_params, slab_probability


def _dist(num_draws=3, level=5.0, rows=98):
    p = constant_noise_params(level, rows, 1e-3, num_draws)
    return SpikeSlabNormal(p["sigma"], p["slab"], p["slab_prob"])


def test_parameters_follow_the_rule_of_succession_and_the_level():
    p = constant_noise_params(-40.0, 998, 1e-3, 2)
    assert slab_probability(998) == pytest.approx(1e-3)
    torch.testing.assert_close(p["slab_prob"], torch.full((2,), 1e-3, dtype=torch.float64))
    torch.testing.assert_close(p["slab"], torch.full((2,), 40.0, dtype=torch.float64))
    torch.testing.assert_close(p["sigma"], torch.full((2,), 0.04, dtype=torch.float64))
    assert float(constant_noise_params(0.0, 10, 1e-3, 1)["slab"]) == 1.0  # one unit at level 0


def test_samples_keep_the_value_except_for_the_slab():
    torch.manual_seed(0)
    d = _dist(rows=8)  # slab probability 0.1
    z = d.expand((200_000, 3)).sample()
    changed = z != 0
    assert float(changed.double().mean()) == pytest.approx(0.1, abs=0.005)
    assert float(z[changed].std()) == pytest.approx(5.0, rel=0.03)
    torch.testing.assert_close(d.mean, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(d.variance, torch.full((3,), 2.5, dtype=torch.float64))


def test_tails_count_the_point_mass_and_the_slab():
    d = _dist(rows=98)  # slab probability 0.01, slab sd 5
    log_cdf, log_sf = d.log_tails(torch.tensor([[-2.0], [0.0], [3.0]], dtype=torch.float64))
    np.testing.assert_allclose(log_cdf[0].exp().numpy(), 0.01 * np.exp(log_ndtr(-0.4)), rtol=1e-12)
    np.testing.assert_allclose(log_cdf[1].exp().numpy(), 0.99 + 0.01 * 0.5, rtol=1e-12)  # the spike sits at 0
    np.testing.assert_allclose(log_sf[2].exp().numpy(), 0.01 * np.exp(log_ndtr(-0.6)), rtol=1e-12)
    # a density for the point mass's stand-in: finite everywhere, integrating to about 1
    grid = torch.linspace(-60, 60, 2_000_001, dtype=torch.float64).unsqueeze(-1)
    mass = d.log_prob(grid).exp().sum(0) * (grid[1] - grid[0])
    torch.testing.assert_close(mass, torch.ones(3, dtype=torch.float64), atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def chain():
    """A constant at 1 in training; B = 2 A + D + N; C = B + N."""
    rng = np.random.default_rng(0)
    n = 1000
    d = rng.normal(size=n)
    b = 2.0 + d + rng.normal(size=n)
    frame = pd.DataFrame({"A": np.ones(n), "D": d, "B": b, "C": b + rng.normal(size=n)})
    graph = nx.DiGraph([("A", "B"), ("D", "B"), ("B", "C")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", br.ConstantColumnWarning)
        return br.BayesianSCM(graph, mechanisms="gaussian", num_draws=40).fit(frame, seed=0)


def test_a_deviation_scores_as_the_rule_of_succession_says(chain):
    row = pd.DataFrame({"A": [1.0, 1.5, 5.0], "D": [0.0] * 3, "B": [2.0] * 3, "C": [2.0] * 3})
    expected = [0.0] + [math.log(1002) - math.log(2 * math.exp(log_ndtr(-d))) for d in (0.5, 4.0)]
    for conditioning in ("marginal", "conditional"):
        got = br.outlier_scores(chain, row, conditioning=conditioning).scores[:, :, 0]  # (D, rows)
        np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=1e-9, atol=1e-12)


def test_the_closed_form_matches_monte_carlo_on_every_coalition(chain):
    players = ["A", "D", "B", "C"]
    row = {"A": 1.5, "D": 0.2, "B": 3.4, "C": 3.7}
    observed = {p: torch.tensor([[row[p]]], dtype=torch.float64) for p in players}
    masks = torch.tensor(list(itertools.product([0, 1], repeat=4)), dtype=torch.bool)
    torch.manual_seed(0)
    analytic = CounterfactualEngine(chain, "C", players, observed, path="analytic", num_mc_samples=10)
    assert analytic.estimator.path == "analytic"
    exact = analytic(masks)[..., 0]
    mc = CounterfactualEngine(chain, "C", players, observed, path="mc", num_mc_samples=50_000)
    estimate = mc(masks)[..., 0]
    # common values carry a Monte Carlo error below 0.05 nats here; values near log(eps) = -6.9
    # rest on the ~50 samples that drew a slab (about 15 % relative error, 4 sd: 0.6 nats)
    tol = torch.where(exact > -4, 0.06, 0.6)
    assert bool(((estimate - exact).abs() <= tol).all())


def test_attribution_is_finite_and_shares_the_blame(chain):
    """A, constant in training, observed at 5: a finite IT score and contributions (not millions of
    nats), and A keeps a real chance of being the top cause (its effect keeps its prior)."""
    row = pd.DataFrame({"A": [5.0], "D": [0.2], "B": [10.3], "C": [10.6]})
    res = br.attribute_anomalies(chain, "C", row, seed=0)
    assert res.method_info.get("path", "analytic") == "analytic" or np.all(res.mc_std_error == 0)
    assert np.all(np.isfinite(res.contributions)) and np.abs(res.contributions).max() < 50
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    top = res.summary().set_index("node")["prob_top"]
    assert 0.05 < top["A"] < 0.95 and top["A"] + top["B"] > 0.99


def test_old_files_keep_their_gaussian_constant(chain, tmp_path):
    """A model saved before this noise existed stores a Gaussian constant: it loads and works."""
    path = br.save(chain, tmp_path / "m.brca")
    loaded = br.load(path)
    assert isinstance(loaded.mechanisms_["A"].noise_distribution(), SpikeSlabNormal)
    mech = loaded.mechanisms_["A"]
    mech.noise_family_ = "gaussian"
    mech.noise_params_ = {"sigma": mech.noise_params_["sigma"]}
    assert mech.noise_is_gaussian and isinstance(mech.noise_distribution(), torch.distributions.Normal)
    res = br.attribute_anomalies(loaded, "C", pd.DataFrame({"A": [1.0], "D": [2.5], "B": [4.6], "C": [4.9]}), seed=0)
    assert np.all(np.isfinite(res.contributions))


def test_never_varied_is_the_one_rule_for_columns_and_vectors():
    """A column constant up to rounding never varied; any real spread did; 1-D input is one column."""
    import numpy as np

    from bayesrca.mechanisms.base import never_varied

    level = 1e6 + np.zeros(50)
    rounded = level * (1 + 2e-16 * (np.arange(50) % 2))  # a constant with rounding noise
    columns = np.column_stack([level, rounded, np.linspace(0, 1, 50), np.full(50, -3.0)])
    assert never_varied(columns).tolist() == [True, True, False, True]
    assert bool(never_varied(np.full(10, 2.5))) and not bool(never_varied(np.arange(10.0)))
    assert never_varied(np.zeros((7, 0))).shape == (0,)
