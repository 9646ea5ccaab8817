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


# -- end to end: BayesianSCM(mechanisms="auto") averages where the data cannot decide ----------------
import networkx as nx  # noqa: E402
import pandas as pd  # noqa: E402

import bayesrca as br  # noqa: E402
from bayesrca._random import seeded  # noqa: E402
from bayesrca.mechanisms import FamilyMixture  # noqa: E402
from bayesrca.selection import default_candidates, select_mechanism  # noqa: E402


def _weights(y, x, order=None, seed=0):
    cands = default_candidates(y, x.shape[1] == 0)
    if order is not None:
        cands = [cands[i] for i in order]
    with seeded(seed):
        table = select_mechanism(cands, y, x, rng=np.random.default_rng(seed))[1]
    return table.set_index("candidate")


def test_selection_weights_sum_to_one_and_follow_the_candidates_not_their_order():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 1))
    y = 0.5 * x[:, 0] + rng.standard_t(4, 200)
    a, b = _weights(y, x), _weights(y, x, order=[3, 1, 0, 2])
    for t in (a, b):
        assert t["weight"].sum() == pytest.approx(1.0) and t["averaged_weight"].sum() == pytest.approx(1.0)
        assert {"elpd", "se", "elpd_diff", "se_diff", "weight", "averaged_weight"} <= set(t.columns)
    # each candidate's posterior draws are seeded by its description: the same weights in any order
    np.testing.assert_allclose(b.loc[a.index, "weight"], a["weight"], rtol=1e-12)
    np.testing.assert_allclose(b.loc[a.index, "averaged_weight"], a["averaged_weight"], rtol=1e-12)


def test_linear_gaussian_data_keep_one_gaussian_family_and_the_closed_form_path():
    rng = np.random.default_rng(1)
    n = 600
    a = rng.normal(size=n)
    b = 1.0 + 0.8 * a + rng.normal(0, 0.5, n)
    c = -0.5 * b + 0.3 * a + rng.normal(0, 0.4, n)
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    scm = br.BayesianSCM(graph, num_draws=30).fit(pd.DataFrame({"a": a, "b": b, "c": c}), seed=0)
    assert [scm.mechanisms_[n].describe() for n in "abc"] == ["root/gaussian", "linear/gaussian", "linear/gaussian"]
    table = scm.selection_
    gaussian = table["candidate"].isin(["root/gaussian", "linear/gaussian"])
    assert (table.loc[gaussian, "averaged_weight"] == 1.0).all()
    res = br.attribute_anomalies(scm, "c", pd.DataFrame({"a": [0.0], "b": [4.0], "c": [-1.0]}), seed=0)
    assert res.method_info["engine"] == "analytic"


def test_nonlinear_data_put_the_weight_on_the_spline():
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, size=(400, 1))
    y = np.sin(2.5 * x[:, 0]) + x[:, 0] ** 2 + rng.normal(0, 0.1, 400)
    t = _weights(y, x)
    nonlinear = [c for c in t.index if not c.startswith("linear/")]  # splines and, with parents given, GPs
    assert t.loc[nonlinear, "averaged_weight"].sum() == pytest.approx(1.0)
    assert t.loc[["linear/gaussian", "linear/bootstrap_gpd"], "weight"].max() < 1e-6


def _near_identical_root(seed=0, n=300):
    """A log-normal root with a small sd: a Gaussian fits it about as well, with other tails."""
    rng = np.random.default_rng(seed)
    x0 = rng.lognormal(2.0, 0.05, n)
    frame = pd.DataFrame({"X0": x0, "X1": x0 + rng.normal(0, 0.3, n)})
    anomaly = pd.DataFrame({"X0": [np.exp(2.0) * 1.3], "X1": [np.exp(2.0) * 1.3 + 0.5]})
    return nx.DiGraph([("X0", "X1")]), frame, anomaly


def test_near_identical_families_split_the_weight_and_the_intervals_cover_both_answers():
    graph, frame, anomaly = _near_identical_root()
    out, kw = {}, {"seed": 1, "num_mc_samples": 1000}
    specs = {"mixture": "auto", "gaussian": br.RootDistribution("gaussian"), "lognormal": br.RootDistribution("lognormal")}
    for name, spec in specs.items():
        scm = br.BayesianSCM(graph, mechanisms={"X0": spec, "X1": "gaussian"}, num_draws=60).fit(frame, seed=0)
        with pytest.warns(br.TailEstimateWarning) if name != "gaussian" else _nothing():
            res = br.attribute_anomalies(scm, "X1", anomaly, **kw)
        out[name] = res.contributions[:, 0, :]
        if name == "mixture":
            mix = scm.mechanisms_["X0"]
            assert isinstance(mix, FamilyMixture)
            w = mix.weight_table()
            assert set(w) == {"root/gaussian", "root/lognormal"} and min(w.values()) > 0.2
            np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
            assert "root/gaussian" in scm.summary().set_index("node").loc["X0", "weights"]
    # the single families disagree clearly on X0's contribution ...
    assert abs(np.median(out["gaussian"][:, 0]) - np.median(out["lognormal"][:, 0])) > 2.0
    # ... and the averaged model's 90 % intervals contain both answers
    for j in range(2):
        lo, hi = np.quantile(out["mixture"][:, j], [0.05, 0.95])
        for single in ("gaussian", "lognormal"):
            assert lo <= np.median(out[single][:, j]) <= hi


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_averaging_can_be_switched_off_and_is_a_parameter():
    graph, frame, _ = _near_identical_root()
    off = br.BayesianSCM(graph, averaging="none", num_draws=20).fit(frame, seed=0)
    assert not any(isinstance(m, FamilyMixture) for m in off.mechanisms_.values())
    chosen = off.selection_.loc[off.selection_["chosen"], "candidate"].tolist()
    assert [off.mechanisms_[n].describe() for n in off.nodes_] == chosen
    assert off.get_params()["averaging"] == "none"
    with pytest.raises(br.ConfigError, match="averaging"):
        br.BayesianSCM(graph, averaging="bma").fit(frame, seed=0)
    stacked = br.BayesianSCM(graph, averaging="stacking", num_draws=20).fit(frame, seed=0)
    assert stacked.selection_["weight"].groupby(stacked.selection_["node"]).sum().to_numpy() == pytest.approx(1.0)


def test_a_model_averaged_scm_round_trips_through_save_and_load(tmp_path):
    graph, frame, anomaly = _near_identical_root()
    scm = br.BayesianSCM(graph, num_draws=30).fit(frame, seed=0)
    assert isinstance(scm.mechanisms_["X0"], FamilyMixture)
    loaded = br.load(br.save(scm, tmp_path / "avg.bayesrca"))
    assert loaded.averaging == "pseudo-bma+"
    pd.testing.assert_frame_equal(loaded.selection_, scm.selection_)
    with pytest.warns(br.TailEstimateWarning):
        a = br.attribute_anomalies(scm, "X1", anomaly, seed=2, num_mc_samples=300)
    with pytest.warns(br.TailEstimateWarning):
        b = br.attribute_anomalies(loaded, "X1", anomaly, seed=2, num_mc_samples=300)
    np.testing.assert_array_equal(a.contributions, b.contributions)


def test_a_rich_family_that_does_not_beat_a_cheaper_one_it_nests_is_left_out():
    from bayesrca.mechanisms import LinearANM, RootDistribution, SplineANM
    from bayesrca.selection import nests, redundant_families

    assert nests(LinearANM("gaussian"), SplineANM("gaussian")) and nests(LinearANM("gaussian"), SplineANM("bootstrap"))
    assert nests(RootDistribution("lognormal"), RootDistribution("bootstrap"))
    assert not nests(RootDistribution("gaussian"), RootDistribution("lognormal"))
    assert not nests(LinearANM("bootstrap"), SplineANM("gaussian")) and not nests(SplineANM("gaussian"), LinearANM("gaussian"))
    cands = [LinearANM("gaussian"), LinearANM("bootstrap"), SplineANM("gaussian"), SplineANM("bootstrap")]
    rng = np.random.default_rng(0)
    base = rng.normal(-1.0, 0.3, 500)
    # the spline with Gaussian noise is clearly best; the bootstrap families are worse than linear/gaussian
    pointwise = [base, base - 0.2, base + 0.3, base - 0.1]
    kw = {"threshold": 2.0, "max_loss_per_row": 0.02}
    assert redundant_families(cands, pointwise, **kw).tolist() == [False, True, False, True]
    # on linear data the spline does not beat the linear fit it nests: only linear/gaussian remains
    pointwise = [base, base - 0.2, base + rng.normal(0, 0.01, 500), base - 0.1]
    assert redundant_families(cands, pointwise, **kw).tolist() == [False, True, True, True]


def test_a_log_prior_multiplies_the_weights_and_a_zero_prior_excludes():
    lpd = np.random.default_rng(2).normal(-1.0, 0.5, size=(100, 1))
    both = np.hstack([lpd, lpd])  # equal held-out densities: the weights are the prior
    w = pseudo_bma_plus_weights(both, np.random.default_rng(1), log_prior=np.log([0.2, 0.8]))
    np.testing.assert_allclose(w, [0.2, 0.8], atol=1e-12)
    with np.errstate(divide="ignore"):
        w0 = pseudo_bma_plus_weights(both, np.random.default_rng(1), log_prior=np.log([0.0, 1.0]))
    np.testing.assert_array_equal(w0, [0.0, 1.0])
    # no prior and an equal prior give the same numbers (the bootstrap draws are the same)
    np.testing.assert_array_equal(pseudo_bma_plus_weights(both + np.arange(2) * 0.01, np.random.default_rng(3)),
                                  pseudo_bma_plus_weights(both + np.arange(2) * 0.01, np.random.default_rng(3),
                                                          log_prior=np.log([0.5, 0.5])))
    with pytest.raises(ValueError, match="log_prior"):
        pseudo_bma_plus_weights(both, np.random.default_rng(1), log_prior=np.zeros(3))
