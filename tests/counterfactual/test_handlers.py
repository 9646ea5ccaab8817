"""Tests of bayesrca.counterfactual.handlers: abduction round-trips and noise keeping on the SCM program."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

import bayesrca as br
from bayesrca.counterfactual.handlers import AbductNoise, KeepNoise, abduct, keep_noise
from bayesrca.mechanisms import noise_site

NODES = ["R", "A", "B"]
GRAPH_EDGES = [("R", "A"), ("R", "B"), ("A", "B")]
NUM_DRAWS = 12

SETTINGS = settings(max_examples=25, deadline=None)


def _training_data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    r = rng.lognormal(0.0, 0.5, n)
    a = np.sin(2 * r) + 0.3 * rng.normal(size=n)
    b = r - 0.5 * a**2 + rng.exponential(0.5, n)
    return pd.DataFrame({"R": r, "A": a, "B": b})


@pytest.fixture(scope="module")
def models() -> dict[str, br.BayesianSCM]:
    train = _training_data()
    specs = {
        "linear": "linear",
        "gaussian": "gaussian",
        "spline": "spline",
        "lognormal": {"R": br.RootDistribution("lognormal"), "A": "spline", "B": br.LinearANM("gaussian")},
    }
    out = {}
    for name, spec in specs.items():
        out[name] = br.BayesianSCM(nx.DiGraph(GRAPH_EDGES), mechanisms=spec, num_draws=NUM_DRAWS).fit(train, seed=1)
    assert out["lognormal"].mechanisms_["R"].describe() == "root/lognormal"
    assert out["spline"].mechanisms_["A"].describe() == "spline/bootstrap"
    return out


MODEL_NAMES = ["linear", "gaussian", "spline", "lognormal"]
values = st.floats(min_value=-8.0, max_value=8.0, allow_nan=False)
positive = st.floats(min_value=0.05, max_value=20.0, allow_nan=False)
rows = st.lists(st.tuples(positive, values, values), min_size=1, max_size=4)


def _observed(row_list) -> dict[str, torch.Tensor]:
    arr = torch.tensor(row_list, dtype=torch.float64)  # (K, 3)
    return {n: arr[:, i : i + 1] for i, n in enumerate(NODES)}  # each (K, 1)


def _abducted(scm, observed) -> dict[str, torch.Tensor]:
    trace = poutine.trace(AbductNoise(observed)(scm.program)).get_trace()
    return {n: trace.nodes[noise_site(n)]["value"] for n in NODES}


@pytest.mark.parametrize("name", MODEL_NAMES)
@SETTINGS
@given(row_list=rows)
def test_abduction_round_trip(models, name, row_list):
    scm = models[name]
    observed = _observed(row_list)
    k = len(row_list)
    trace = poutine.trace(AbductNoise(observed)(scm.program)).get_trace()
    noise = {}
    for n in NODES:
        site = trace.nodes[noise_site(n)]
        assert site["is_observed"]
        noise[n] = site["value"]
    # the abducting program itself reproduces the observation
    returned = trace.nodes["_RETURN"]["value"]
    for n in NODES:
        assert returned[n].shape == (k, NUM_DRAWS)
        torch.testing.assert_close(returned[n], observed[n].expand(k, NUM_DRAWS), atol=1e-8, rtol=1e-10)
    # replaying the abducted noise with poutine.condition reproduces it for every draw
    replayed = poutine.condition(scm.program, data={noise_site(n): v for n, v in noise.items()})()
    for n in NODES:
        torch.testing.assert_close(replayed[n], observed[n].expand(k, NUM_DRAWS), atol=1e-8, rtol=1e-10)
    # the functional form agrees
    functional = poutine.trace(abduct(scm.program, observed)).get_trace()
    for n in NODES:
        torch.testing.assert_close(functional.nodes[noise_site(n)]["value"], noise[n])


@pytest.mark.parametrize("name", MODEL_NAMES)
@SETTINGS
@given(row_list=rows, seed=st.integers(0, 2**31 - 1))
def test_keep_noise_all_true_and_all_false(models, name, row_list, seed):
    scm = models[name]
    observed = _observed(row_list)
    k = len(row_list)
    kept = _abducted(scm, observed)
    all_true = {n: torch.tensor(True) for n in NODES}
    all_false = {n: torch.tensor(False) for n in NODES}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # all kept: the observation is reproduced, whatever fresh noise would be drawn
        values = KeepNoise(kept, all_true)(scm.program)()
        for n in NODES:
            torch.testing.assert_close(values[n], observed[n].expand(k, NUM_DRAWS), atol=1e-8, rtol=1e-10)
        # none kept: exactly the fresh-noise program replayed from its trace
        fresh = poutine.trace(scm.program).get_trace()
        expected = fresh.nodes["_RETURN"]["value"]
        values = KeepNoise(kept, all_false)(poutine.replay(scm.program, trace=fresh))()
        for n in NODES:
            assert torch.equal(values[n].expand(k, NUM_DRAWS), expected[n].expand(k, NUM_DRAWS))
        values = keep_noise(poutine.replay(scm.program, trace=fresh), kept, all_false)()
        for n in NODES:
            assert torch.equal(values[n].expand(k, NUM_DRAWS), expected[n].expand(k, NUM_DRAWS))


@pytest.mark.parametrize("name", MODEL_NAMES)
@SETTINGS
@given(row_list=rows, keep=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_keep_noise_mixed_masks_equal_condition(models, name, row_list, keep):
    """A coalition's program equals conditioning kept sites on abducted and others on fresh noise."""
    scm = models[name]
    observed = _observed(row_list)
    kept = _abducted(scm, observed)
    masks = {n: torch.tensor(flag) for n, flag in zip(NODES, keep)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fresh = poutine.trace(scm.program).get_trace()
    values = KeepNoise(kept, masks)(poutine.replay(scm.program, trace=fresh))()
    data = {noise_site(n): (kept[n] if flag else fresh.nodes[noise_site(n)]["value"]) for n, flag in zip(NODES, keep)}
    expected = poutine.condition(scm.program, data=data)()
    for n in NODES:
        torch.testing.assert_close(values[n], expected[n].expand_as(values[n]), atol=1e-10, rtol=1e-12)
    # a kept prefix of the topological order reproduces the observation on that prefix
    for i, n in enumerate(NODES):
        if all(keep[: i + 1]):
            torch.testing.assert_close(values[n], observed[n].expand_as(values[n]), atol=1e-8, rtol=1e-10)


@pytest.mark.parametrize("name", ["linear", "spline"])
def test_keep_noise_with_coalition_dimension(models, name):
    """Masks with a leading coalition dimension evaluate many coalitions in one pass."""
    scm = models[name]
    observed = _observed([(1.0, 0.5, -1.0), (2.0, -0.3, 0.7)])
    kept = _abducted(scm, observed)
    coalitions = torch.tensor([[True, True, True], [False, False, False], [True, False, True]])
    c = coalitions.shape[0]
    masks = {n: coalitions[:, j].reshape(c, 1, 1, 1) for j, n in enumerate(NODES)}
    num_mc = 5

    def model():
        import pyro

        with pyro.plate("mc", num_mc, dim=-3):
            return scm.program()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        fresh = poutine.trace(model).get_trace()
    values = KeepNoise(kept, masks)(poutine.replay(model, trace=fresh))()
    for n in NODES:
        assert values[n].shape == (c, num_mc, 2, NUM_DRAWS)
        torch.testing.assert_close(values[n][0], observed[n].expand(num_mc, 2, NUM_DRAWS), atol=1e-8, rtol=1e-10)
        fresh_value = fresh.nodes["_RETURN"]["value"][n]
        torch.testing.assert_close(values[n][1], fresh_value.expand(num_mc, 2, NUM_DRAWS))
        # each coalition row equals the single-coalition program
        single = {m: coalitions[2, j] for j, m in enumerate(NODES)}
        one = KeepNoise(kept, single)(poutine.replay(model, trace=fresh))()
        torch.testing.assert_close(values[n][2], one[n].expand(num_mc, 2, NUM_DRAWS))


def test_handlers_ignore_non_noise_sites(models):
    """Only sites tagged as noise are touched; other sample sites pass through."""
    import pyro
    import pyro.distributions as dist

    scm = models["linear"]
    observed = _observed([(1.0, 0.0, 0.0)])

    def model():
        extra = pyro.sample("extra", dist.Normal(0.0, 1.0))
        return scm.program(), extra

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trace = poutine.trace(AbductNoise(observed)(model)).get_trace()
    assert not trace.nodes["extra"]["is_observed"]
    assert trace.nodes[noise_site("R")]["is_observed"]
    kept = _abducted(scm, observed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = KeepNoise(kept, {"R": torch.tensor(True)})(model)()
    torch.testing.assert_close(out[0]["R"], observed["R"].expand(1, NUM_DRAWS))
