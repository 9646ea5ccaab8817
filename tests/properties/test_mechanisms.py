"""Property tests of the node mechanisms (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesrca._random import seeded
from bayesrca.mechanisms import PoissonGLM

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def count_given_binary() -> PoissonGLM:
    """A count C fitted on a binary parent B (rates 2 and 6), as in ``tests/mechanisms/test_discrete.py``."""
    rng = np.random.default_rng(0)
    b = rng.random(3000) < 0.3
    c = rng.poisson(np.where(b, 6.0, 2.0))
    with seeded(0):
        return PoissonGLM().fit(c.astype(np.float64), b[:, None].astype(np.float64), num_draws=200, node="C")


@SETTINGS
@given(x=st.integers(0, 15), b=st.booleans())
def test_discrete_abduction_round_trip(count_given_binary, x, b):
    """Every abducted noise draw reproduces the observed value exactly (no rounding)."""
    mech = count_given_binary
    parent = [torch.tensor([[float(b)]], dtype=torch.float64)]
    value = torch.tensor([[float(x)]], dtype=torch.float64)
    u = mech.abduct(value, parent)
    assert torch.all((u > 0) & (u <= 1))
    torch.testing.assert_close(mech.forward(u, parent), value.expand_as(u))
