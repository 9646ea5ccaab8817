"""Tests of bayesrca.counterfactual.handlers: noise keeping with a coalition dimension, other sites untouched.

The property tests (abduction round-trips, keeping all, none or some noise) are in
``tests/properties/test_counterfactual.py``.
"""

from __future__ import annotations

import pytest
import torch
from pyro import poutine

import bayesrca as br
from bayesrca.counterfactual.handlers import AbductNoise, KeepNoise, SwapMechanism
from bayesrca.mechanisms import noise_site
from tests.counterfactual.scms import NODES, NUM_DRAWS, abducted, fit_handler_models, observed_rows


@pytest.fixture(scope="module")
def models() -> dict[str, br.BayesianSCM]:
    return fit_handler_models()


@pytest.mark.parametrize("name", ["linear", "spline"])
def test_keep_noise_with_coalition_dimension(models, name):
    """Masks with a leading coalition dimension evaluate many coalitions in one pass."""
    scm = models[name]
    observed = observed_rows([(1.0, 0.5, -1.0), (2.0, -0.3, 0.7)])
    kept = abducted(scm, observed)
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
    observed = observed_rows([(1.0, 0.0, 0.0)])

    def model():
        extra = pyro.sample("extra", dist.Normal(0.0, 1.0))
        return scm.program(), extra

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trace = poutine.trace(AbductNoise(observed)(model)).get_trace()
    assert not trace.nodes["extra"]["is_observed"]
    assert trace.nodes[noise_site("R")]["is_observed"]
    kept = abducted(scm, observed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = KeepNoise(kept, {"R": torch.tensor(True)})(model)()
    torch.testing.assert_close(out[0]["R"], observed["R"].expand(1, NUM_DRAWS))


def test_swap_mechanism_computes_masked_nodes_with_the_other_mechanism(models):
    """Where the mask is True node A is the other model's mechanism of the same noise and parents;
    its children follow; nested swaps compose (the outer one sees the inner one's value)."""
    scm, other = models["linear"], models["spline"]
    noise = {noise_site(n): torch.randn(4, NUM_DRAWS, dtype=torch.float64) for n in NODES}
    base = poutine.condition(scm.program, data=noise)
    alt = torch.randn(4, NUM_DRAWS, dtype=torch.float64)
    mask = torch.arange(NUM_DRAWS) % 2 == 0  # swap in every other draw
    swap = SwapMechanism({"A": other.mechanisms_["A"]}, {"A": alt}, {"A": mask})
    plain, swapped = base(), swap(base)()
    expected_a = torch.where(mask, other.mechanisms_["A"].forward(alt, [plain["R"]]), plain["A"])
    torch.testing.assert_close(swapped["A"], expected_a)
    torch.testing.assert_close(swapped["R"], plain["R"])
    expected_b = scm.mechanisms_["B"].forward(noise[noise_site("B")], [plain["R"], expected_a])
    torch.testing.assert_close(swapped["B"], expected_b)
    # an outer swap everywhere overrides the inner one; an outer swap nowhere keeps it
    everywhere = SwapMechanism({"A": scm.mechanisms_["A"]}, {"A": noise[noise_site("A")]}, {"A": torch.tensor(True)})
    torch.testing.assert_close(everywhere(swap(base))()["A"], plain["A"])
    nowhere = SwapMechanism({"A": scm.mechanisms_["A"]}, {"A": alt}, {"A": torch.tensor(False)})
    torch.testing.assert_close(nowhere(swap(base))()["A"], expected_a)


def test_propose_noise_transforms_replayed_and_fresh_draws(models):
    """ProposeNoise moves the value an inner replay gave (common random numbers), or a fresh draw."""
    from bayesrca.counterfactual.handlers import ProposeNoise
    from bayesrca.counterfactual.ops import fresh_noise_trace

    scm = models["spline"]
    base = fresh_noise_trace(scm, NODES, 50, dim=-3)
    moved = fresh_noise_trace(scm, NODES, 50, dim=-3, propose={"A": lambda z: z + 3.0}, base=base)
    site = noise_site("A")
    torch.testing.assert_close(moved.nodes[site]["value"], base.nodes[site]["value"] + 3.0)
    other = noise_site("R")
    assert torch.equal(moved.nodes[other]["value"], base.nodes[other]["value"])  # untouched sites are replayed
    fresh = poutine.trace(ProposeNoise({"A": lambda z: z * 0.0 + 7.0})(scm.program)).get_trace(NODES)
    assert bool((fresh.nodes[site]["value"] == 7.0).all())
