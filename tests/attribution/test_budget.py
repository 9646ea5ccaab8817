"""The memory budget of attribute_anomalies: validated, honoured by chunking, and without effect on the numbers."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.attribution import anomaly as attribution
from bayesrca.attribution import budget as _budget
from bayesrca.exceptions import ConfigError

GRAPH = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")])


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a, d = rng.exponential(1.0, n), rng.normal(size=n)
    b = 0.8 * a + rng.exponential(0.5, n)
    c = b - 0.3 * a + 0.5 * d + rng.exponential(0.5, n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d})


ANOMALIES = _data(11, seed=5).assign(b=lambda f: f["b"] + np.linspace(-3, 4, 11))


@pytest.fixture(scope="module")
def gaussian_scm():
    return br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=16).fit(_data(), seed=0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "100", True, [64]])
def test_budget_is_validated(gaussian_scm, bad):
    with pytest.raises(ConfigError, match="max_memory_mb"):
        br.attribute_anomalies(gaussian_scm, "c", ANOMALIES, seed=0, max_memory_mb=bad)


def test_budget_below_the_fixed_part_says_how_much_is_needed(gaussian_scm):
    with pytest.raises(ConfigError, match=r"max_memory_mb=0\.001 is too small.*at least \d+ MiB"):
        br.attribute_anomalies(gaussian_scm, "c", ANOMALIES, seed=0, max_memory_mb=0.001)
    scm = br.BayesianSCM(GRAPH, mechanisms="linear", num_draws=16).fit(_data(), seed=0)
    with pytest.raises(ConfigError, match="num_mc_samples"):  # the Monte Carlo noise is named as the fixed cost
        br.attribute_anomalies(scm, "c", ANOMALIES, seed=0, num_mc_samples=10**5, max_memory_mb=64)


@pytest.mark.parametrize(("mechanisms", "engine", "budget"),
                         [("gaussian", "analytic", 0.02), ("linear", "mc", 0.05), ("spline", "mc", 0.05)])
def test_small_and_large_budgets_give_the_same_numbers(monkeypatch, mechanisms, engine, budget):
    """A budget that forces several anomaly chunks and small engine buffers changes nothing: every
    chunk gets the same fresh noise and permutations (same seed)."""
    scm = br.BayesianSCM(GRAPH, mechanisms=mechanisms, num_draws=12).fit(_data(), seed=0)
    kwargs = {"seed": 3, "num_mc_samples": 200, "shapley": "permutation", "num_permutations": 6}
    large = br.attribute_anomalies(scm, "c", ANOMALIES, max_memory_mb=1e5, **kwargs)
    # the constant parts of the memory model would dwarf this tiny problem: leave them out so that
    # a small budget really cuts the call into many chunks
    monkeypatch.setattr(_budget, "_CALL_OVERHEAD", {"analytic": 0, "mc": 0})
    monkeypatch.setattr(_budget, "_MC_FIXED_PER_SAMPLE", 0)
    monkeypatch.setattr(_budget, "_IS_BYTES_PER_SAMPLE", 0)  # the proposal's per-anomaly state, as large
    monkeypatch.setattr(_budget, "_IS_BYTES_PER_SAMPLE_PLAYER", 0)
    monkeypatch.setattr(_budget, "_BYTES_PER_ELEMENT", {"analytic": 1, "mc": 1})
    plans = []
    original = attribution.memory_plan
    monkeypatch.setattr(attribution, "memory_plan", lambda **kw: plans.append(original(**kw)) or plans[-1])
    small = br.attribute_anomalies(scm, "c", ANOMALIES, max_memory_mb=budget, **kwargs)
    assert small.method_info["engine"] == engine and small.method_info["max_memory_mb"] == budget
    assert len(plans[-1].chunks) > 1 and plans[-1].max_elements < 2**25
    assert small.anomalies == large.anomalies == tuple(ANOMALIES.index)
    # float32 arithmetic blocked differently per chunk size: equal to float32 rounding
    np.testing.assert_allclose(small.contributions, large.contributions, atol=1e-5)
    np.testing.assert_allclose(small.it_scores, large.it_scores, atol=1e-5)
    np.testing.assert_allclose(small.mc_std_error, large.mc_std_error, atol=1e-5)


def test_plan_respects_the_budget_and_pads_a_short_last_chunk():
    common = {"path": "mc", "num_draws": 100, "num_players": 5, "num_mc_samples": 100, "num_coalitions": 32,
                  "max_elements": 2**25}
    plan = _budget.memory_plan(sorted_path=True, num_anomalies=9, budget_mb=None, **common)
    assert plan.chunks == [(0, 0, 9)]
    budget = 80.0
    plan = _budget.memory_plan(sorted_path=True, num_anomalies=1000, budget_mb=budget, **common)
    sizes = [stop - first for first, _, stop in plan.chunks]
    assert len(sizes) > 1 and min(sizes) >= 4  # the sorted path needs 4 anomalies per chunk
    covered = np.concatenate([np.arange(start, stop) for _, start, stop in plan.chunks])
    np.testing.assert_array_equal(covered, np.arange(1000))  # every anomaly exactly once
    bpe = _budget._BYTES_PER_ELEMENT["mc"]
    fixed = _budget._CALL_OVERHEAD["mc"] + _budget._MC_FIXED_PER_SAMPLE * 100 * 100 * 5
    result = 8 * _budget._RESULT_COPIES * (100 * 1000 * 6 + 1000 * 5)
    state = 8 * 100 * 5 * 12
    assert fixed + result + bpe * plan.max_elements + max(sizes) * state <= budget * 2**20
