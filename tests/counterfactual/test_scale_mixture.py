"""Tests of bayesrca.counterfactual.scale_mixture: first-order tails of Gaussian plus rare slabs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_ndtr

from bayesrca.counterfactual.scale_mixture import scale_mixture_log_tail


@settings(max_examples=30, deadline=None)
@given(var=st.floats(0.0, 4.0), e1=st.floats(0.1, 20.0), e2=st.floats(0.1, 20.0),
       p1=st.floats(1e-4, 0.05), p2=st.floats(1e-4, 0.05), x=st.one_of(st.just(0.0), st.floats(0.01, 12.0)))
def test_scale_mixture_tails_match_the_enumeration_to_second_order(var, e1, e2, p1, p2, x):
    """First order in the slab probabilities: exact for one extra part, within p1 p2 for two."""
    lo, hi, mean = torch.tensor(-x, dtype=torch.float64), torch.tensor(x, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    v = torch.tensor(var, dtype=torch.float64)
    extra = torch.tensor([e1, e2], dtype=torch.float64)
    log_p = torch.tensor([p1, p2], dtype=torch.float64).log()

    def tail(s2):
        if s2 == 0:
            return 1.0 if x == 0 else 0.0
        return 2 * math.exp(log_ndtr(-x / math.sqrt(s2)))

    one = float(scale_mixture_log_tail(lo, hi, mean, v, extra[:1], log_p[:1]).exp())
    assert one == pytest.approx(min(1.0, (1 - p1) * tail(var) + p1 * tail(var + e1)), rel=1e-9, abs=1e-300)
    exact = sum(
        (p1 if a else 1 - p1) * (p2 if b else 1 - p2) * tail(var + a * e1 + b * e2)
        for a, b in itertools.product((0, 1), repeat=2)
    )
    two = float(scale_mixture_log_tail(lo, hi, mean, v, extra, log_p).exp())
    assert abs(two - min(exact, 1.0)) <= 2 * p1 * p2 + 1e-12
