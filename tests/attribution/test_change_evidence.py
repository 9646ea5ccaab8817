"""Tests of bayesrca.attribution.change_evidence: the Bayes factor of a mechanism change, and expit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesrca.attribution.change_evidence import change_log_bayes_factor, expit
from bayesrca.mechanisms import LinearANM, RootDistribution


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(0.01, 100.0), shift=st.floats(-50.0, 50.0), delta=st.floats(0.0, 1.0))
def test_bayes_factor_is_invariant_to_units(scale, shift, delta):
    """The criterion works on the pooled standardised scale: units of the data do not matter."""
    rng = np.random.default_rng(7)
    old = pd.DataFrame({"P": rng.normal(size=80), "Y": rng.normal(size=80)})
    new = pd.DataFrame({"P": rng.normal(size=80), "Y": rng.normal(size=80) + delta})
    mech = LinearANM("gaussian").fit(np.r_[old.Y, new.Y], np.r_[old.P, new.P][:, None], num_draws=2)
    base = change_log_bayes_factor(mech, old, new, "Y", ("P",))
    moved = [frame.assign(Y=frame.Y * scale + shift) for frame in (old, new)]
    assert change_log_bayes_factor(mech, *moved, "Y", ("P",)) == pytest.approx(base, abs=1e-6)


def test_bayes_factor_separates_change_from_none():
    rng = np.random.default_rng(8)
    same = [pd.DataFrame({"R": rng.normal(size=500)}) for _ in range(2)]
    moved = [same[0], same[1] + 0.5]
    root = RootDistribution("gaussian").fit(np.r_[same[0].R, same[1].R], np.zeros((1000, 0)), num_draws=2)
    assert change_log_bayes_factor(root, *same, "R", ()) < -2
    assert change_log_bayes_factor(root, *moved, "R", ()) > 10


@given(x=st.floats(-800.0, 800.0))
def test_expit_is_the_logistic_function_without_overflow(x):
    value = float(expit(np.array([x]))[0])
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(1 / (1 + math.exp(-x)) if x > -700 else 0.0, abs=1e-12)
    assert float(expit(np.array([-x]))[0]) == pytest.approx(1 - value, abs=1e-12)
