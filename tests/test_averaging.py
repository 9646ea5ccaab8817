"""Model-averaging weights: pseudo-BMA+ and stacking from pointwise held-out log densities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayesrca.averaging import (
    WEIGHT_CUTOFF,
    model_weights,
    pseudo_bma_plus_weights,
    stacking_weights,
    trim_weights,
)

lpd_matrices = st.integers(2, 5).flatmap(
    lambda k: arrays(np.float64, st.tuples(st.integers(3, 40), st.just(k)),
                     elements=st.floats(-8.0, 2.0, allow_nan=False, allow_infinity=False))
)


@settings(max_examples=25, deadline=None)
@given(lpd=lpd_matrices, seed=st.integers(0, 2**16))
def test_weights_sum_to_one_and_do_not_depend_on_the_candidates_order(lpd, seed):
    perm = np.random.default_rng(seed).permutation(lpd.shape[1])
    for method in ("pseudo-bma+", "stacking"):
        w = model_weights(lpd, method, np.random.default_rng(seed))
        wp = model_weights(lpd[:, perm], method, np.random.default_rng(seed))
        assert w.shape == (lpd.shape[1],) and np.all(w >= 0)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(wp, w[perm], atol=1e-6)


def test_identical_candidates_split_the_weight_evenly():
    lpd = np.random.default_rng(0).normal(-1.0, 0.5, size=(200, 1))
    both = np.hstack([lpd, lpd])
    np.testing.assert_allclose(pseudo_bma_plus_weights(both, np.random.default_rng(1)), [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(stacking_weights(both), [0.5, 0.5], atol=1e-9)


def test_a_clearly_worse_candidate_gets_no_weight_and_an_unfittable_one_exactly_none():
    rng = np.random.default_rng(2)
    good = rng.normal(-1.0, 0.3, 300)
    lpd = np.column_stack([good, good - 0.2 + rng.normal(0, 0.05, 300), np.full(300, -np.inf)])
    w = pseudo_bma_plus_weights(lpd, rng)
    assert w[0] > 1 - 1e-9 and w[2] == 0.0
    ws = stacking_weights(lpd)
    assert ws[0] > 0.99 and ws[2] == 0.0


def test_close_candidates_share_the_pseudo_bma_weight():
    # elpd difference of about one standard error: neither candidate is clearly better
    rng = np.random.default_rng(3)
    a = rng.normal(-1.0, 0.5, 400)
    b = a + rng.normal(0.0, 0.1, 400)
    w = pseudo_bma_plus_weights(np.column_stack([a, b]), rng)
    assert 0.1 < w[0] < 0.9


def test_stacking_weights_satisfy_the_optimality_conditions():
    # KKT for max sum_i log sum_k w_k p_ik on the simplex: mean_i p_ik / mix_i = 1 where w_k > 0, <= 1 elsewhere
    rng = np.random.default_rng(4)
    x = rng.normal(size=500)
    lpd = np.column_stack([-0.5 * (x / s) ** 2 - np.log(s) for s in (0.6, 1.0, 1.8)])
    w = stacking_weights(lpd)
    dens = np.exp(lpd)
    grad = (dens / (dens @ w)[:, None]).mean(0)
    assert np.all(grad[w > 1e-6] == pytest.approx(1.0, abs=1e-4))
    assert np.all(grad <= 1 + 1e-4)


def test_trim_drops_small_weights_renormalises_and_keeps_the_largest():
    out = trim_weights(np.array([0.6, 0.37, 0.03]))
    np.testing.assert_allclose(out, [0.6 / 0.97, 0.37 / 0.97, 0.0])
    assert trim_weights(np.array([0.04, 0.03, 0.93]))[2] == 1.0
    assert WEIGHT_CUTOFF == 0.05
    flat = trim_weights(np.full(25, 0.04))  # all below the cutoff: the largest (all tied) are kept
    np.testing.assert_allclose(flat, np.full(25, 0.04))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="matrix"):
        pseudo_bma_plus_weights(np.zeros(3), np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN"):
        stacking_weights(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="no candidate"):
        stacking_weights(np.full((3, 2), -np.inf))
    with pytest.raises(ValueError, match="unknown weighting"):
        model_weights(np.zeros((3, 2)), "bma", np.random.default_rng(0))
