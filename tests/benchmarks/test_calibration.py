"""Tests of ``benchmarks/calibration*.py``: ECE and its bootstrap, bands, and the importance-sampling truth."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def mods():
    """The calibration modules, imported as the scripts import them (``benchmarks/`` on ``sys.path``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import calibration_setup
        import calibration_tables
        import calibration_truth
        import simulate

        yield argparse.Namespace(setup=calibration_setup, tables=calibration_tables, truth=calibration_truth,
                                 sim=simulate)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_ece_known_values(mods):
    ece = mods.tables.expected_calibration_error
    # perfectly calibrated bins: predicted 0.8 and 80 % hits; predicted 0.05 and 5 % hits
    pred = np.r_[np.full(10, 0.8), np.full(20, 0.05)]
    obs = np.r_[np.ones(8), np.zeros(2), np.ones(1), np.zeros(19)]
    assert ece(pred, obs) == pytest.approx(0.0, abs=1e-12)
    assert ece([1.0, 1.0], [0, 0]) == pytest.approx(1.0)
    # two bins: |0.95 - 0.5| with weight 1/2, |0.0 - 0| with weight 1/2
    assert ece([0.95, 0.95, 0.0, 0.0], [1, 0, 0, 0]) == pytest.approx(0.5 * 0.45)
    assert math.isnan(ece([], []))


def test_ece_bootstrap_resamples_clusters(mods):
    rng = np.random.default_rng(0)
    pred = rng.uniform(size=400)
    obs = rng.uniform(size=400) < pred  # calibrated
    clusters = np.repeat(np.arange(40), 10)
    point, lo, hi = mods.tables.ece_bootstrap(pred, obs, clusters, num=300, seed=1)
    assert point == mods.tables.expected_calibration_error(pred, obs)
    assert 0 <= lo <= hi and lo < 0.1
    miscalibrated = mods.tables.ece_bootstrap(pred, np.zeros(400), clusters, num=300, seed=1)
    assert miscalibrated[1] > hi  # a clearly worse ECE has a disjoint interval
    assert all(math.isnan(x) for x in mods.tables.ece_bootstrap(pred, obs, np.zeros(400), num=10)[1:])


def test_parse_band(mods):
    assert mods.setup.parse_band("far") == ("far", 8.0, 10.0)
    assert mods.setup.parse_band("moderate") == ("moderate", 3.0, 4.0)
    assert mods.setup.parse_band("5-6.5") == ("5-6.5sd", 5.0, 6.5)
    for bad in ("huge", "6-5", "0-1", "a-b"):
        with pytest.raises(argparse.ArgumentTypeError):
            mods.setup.parse_band(bad)
    assert mods.setup.band_seed("moderate") == [] and mods.setup.band_seed("far") == [1]


@pytest.mark.parametrize("kind", ["gaussian", "exponential"])
def test_noise_laws(mods, kind):
    z = np.linspace(-0.99, 6.0, 15)
    law = stats.norm() if kind == "gaussian" else stats.expon(loc=-1.0)
    np.testing.assert_allclose(mods.truth.log_sf(kind, z), law.logsf(z), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mods.truth.log_cdf(kind, z), law.logcdf(z), rtol=1e-8, atol=1e-12)
    inflated = stats.norm(scale=4.0) if kind == "gaussian" else stats.expon(loc=-1.0, scale=4.0)
    np.testing.assert_allclose(mods.truth.log_ratio(kind, z, 4.0), inflated.logpdf(z) - law.logpdf(z), rtol=1e-10)
    draws = mods.truth.draw(kind, 200_000, np.random.default_rng(0), 4.0)
    assert abs(draws.mean() - inflated.mean()) < 0.05 and abs(draws.std() - inflated.std()) < 0.05


def test_shapley_matrix(mods):
    v = np.random.default_rng(3).normal(size=8)
    np.testing.assert_allclose(mods.truth.shapley_matrix(3) @ v, mods.sim.exact_shapley(v, 3))


@pytest.mark.parametrize("shift", [(3.0, 4.0), (8.0, 10.0)])
def test_is_truth_matches_closed_form(mods, shift):
    """The importance-sampling truth agrees with the linear-Gaussian closed form within its own reported error,
    also at 8-10 sd, where coalition values reach e^-40 (far below any plain Monte Carlo)."""
    sim = mods.sim
    graph = sim.random_dag(6, "er", np.random.default_rng(2))
    target = sim.pick_target(graph, np.random.default_rng(2), min_ancestors=3, max_ancestors=5)
    scm = sim.TrueSCM(graph, "linear", "gaussian", seed=1)
    reference = scm.reference_target(target)
    cause = [n for n in scm.players(target) if n != target][0]
    _, noise = scm.inject(target, cause, np.random.default_rng([0, 0, 5]), shift=shift, reference=reference)
    phi, it, v = scm.true_contributions(target, noise, return_values=True)
    est = mods.truth.is_truth(scm, target, noise, num_samples=100_000, seed=3, reference=reference)
    if shift[0] >= 8:
        assert v.min() < -30  # the far band needs the importance sampling
    assert est["se_it"] < 0.05 and max(est["se_phi"].values()) < 0.1  # precise enough for the test to bite
    assert abs(est["it"] - it) <= 4.5 * est["se_it"] + 1e-9
    for node, value in phi.items():
        assert abs(est["phi"][node] - value) <= 4.5 * est["se_phi"][node] + 1e-9, node
    finite = est["se_v"] > 0
    assert np.all(np.abs(est["v"] - v)[finite] <= 4.5 * est["se_v"][finite])
    assert np.all(est["v"][~finite] == pytest.approx(v[~finite], abs=1e-9))  # no free noise: exact
    assert abs(est["mirror_check"]) <= 4.5 * est["se_mirror"] + 1e-9
