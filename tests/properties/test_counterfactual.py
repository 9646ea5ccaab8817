"""Property tests of bayesrca.counterfactual (hypothesis): the handlers on the SCM program and the
conditional Monte Carlo tail estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

import bayesrca as br
from bayesrca.counterfactual import tails
from bayesrca.counterfactual.handlers import AbductNoise, KeepNoise, abduct, keep_noise
from bayesrca.mechanisms import noise_site
from tests.counterfactual.scms import MODEL_NAMES, NODES, NUM_DRAWS, abducted, fit_handler_models, observed_rows

SETTINGS = settings(max_examples=25, deadline=None)
TAIL_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)

values = st.floats(min_value=-8.0, max_value=8.0, allow_nan=False)
positive = st.floats(min_value=0.05, max_value=20.0, allow_nan=False)
rows = st.lists(st.tuples(positive, values, values), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def models() -> dict[str, br.BayesianSCM]:
    return fit_handler_models()


# ---------------------------------------------------------------------------------------------
# the handlers: abduction round-trips and noise keeping
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
@SETTINGS
@given(row_list=rows)
def test_abduction_round_trip(models, name, row_list):
    scm = models[name]
    observed = observed_rows(row_list)
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
    observed = observed_rows(row_list)
    k = len(row_list)
    kept = abducted(scm, observed)
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
    observed = observed_rows(row_list)
    kept = abducted(scm, observed)
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


# ---------------------------------------------------------------------------------------------
# the conditional Monte Carlo estimators
# ---------------------------------------------------------------------------------------------
@TAIL_SETTINGS
@given(
    centres=st.lists(st.floats(-5, 5), min_size=2, max_size=8),
    sd=st.floats(0.05, 3.0),
    lo=st.floats(-60, 0),
    width=st.floats(0.0, 80),
)
def test_mixture_log_tail_is_the_mixture_probability(centres, sd, lo, width):
    hi = lo + width
    c = torch.tensor([centres], dtype=torch.float64)
    f64 = dict(dtype=torch.float64)
    got = tails.mixture_log_tail(c, torch.tensor([sd], **f64), torch.tensor([lo], **f64), torch.tensor([hi], **f64))[0, 0]
    # brute force: average the two Gaussian tail probabilities of each component, in log space
    terms = [
        np.logaddexp(
            float(torch.special.log_ndtr(torch.tensor((lo - m) / sd, dtype=torch.float64))),
            float(torch.special.log_ndtr(torch.tensor((m - hi) / sd, dtype=torch.float64))),
        )
        for m in centres
    ]
    expected = min(np.logaddexp.reduce(terms) - math.log(len(centres)), 0.0)
    assert float(got) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@TAIL_SETTINGS
@given(centres=st.lists(st.floats(-3, 3), min_size=1, max_size=6), sd=st.floats(0.1, 2.0), x=st.floats(-40, 40))
def test_mixture_thresholds_mirror_the_tail_mass(centres, sd, x):
    c = torch.tensor([centres], dtype=torch.float64)
    s, xs = torch.tensor([sd], dtype=torch.float64), torch.tensor([x], dtype=torch.float64)
    lo, hi = tails.mixture_thresholds(c, s, xs)
    assert float(lo) <= x <= float(hi) and (float(lo) == x or float(hi) == x)
    inf = torch.tensor([math.inf], dtype=torch.float64)
    lower = tails.mixture_log_tail(c, s, lo, inf)[0, 0]  # log P(Y <= lo)
    upper = tails.mixture_log_tail(c, s, -inf, hi)[0, 0]  # log P(Y >= hi)
    assert float(lower) == pytest.approx(float(upper), abs=1e-6 + 1e-6 * abs(float(upper)))
