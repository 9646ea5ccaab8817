"""Tests of bayesrca.attribution.common: the arguments every attribution checks, and the Monte Carlo error."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca.attribution.common import (
    MIN_MC_SAMPLES,
    CommonArguments,
    check_common_arguments,
    check_fitted_scm,
    check_num_mc_samples,
    check_player_frame,
    mc_std_error,
)
from bayesrca.exceptions import ConfigError, DataError, GraphError, NotFittedError
from bayesrca.shapley import DEFAULT_MAX_EXACT_PLAYERS, ShapleyOptions

GRAPH = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
DEFAULTS = {"seed": 0, "shapley": "auto", "num_permutations": None,
            "max_exact_players": DEFAULT_MAX_EXACT_PLAYERS, "max_elements": 2**20}


def _common(**overrides) -> CommonArguments:
    return check_common_arguments(**{**DEFAULTS, **overrides})


def _data(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.8 * a + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": b - 0.3 * a + rng.normal(size=n)})


@pytest.fixture(scope="module")
def fitted():
    return br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=10).fit(_data(), seed=0)


# ---------------------------------------------------------------------------------------------
# check_common_arguments
# ---------------------------------------------------------------------------------------------
def test_common_arguments_are_checked_and_resolved():
    args = _common(seed=np.int64(7), max_elements=np.int64(123))
    assert isinstance(args, CommonArguments)
    assert args == (7, ShapleyOptions("auto"), 123)
    assert type(args.seed) is int and type(args.max_elements) is int
    assert args.shapley == ShapleyOptions("auto", None, DEFAULT_MAX_EXACT_PLAYERS)
    perm = _common(shapley="permutation", num_permutations=10, max_exact_players=3).shapley
    assert perm == ShapleyOptions("permutation", 10, 3)
    options = ShapleyOptions("exact")
    assert _common(shapley=options).shapley is options


def test_common_seed_from_a_generator_or_none():
    a = _common(seed=np.random.default_rng(5)).seed
    assert a == _common(seed=np.random.default_rng(5)).seed  # reproducible from the generator's state
    assert 0 <= a < 2**31 - 1
    fresh = _common(seed=None).seed
    assert isinstance(fresh, int) and fresh >= 0


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"shapley": "kernel"}, "shapley"),
        ({"shapley": None}, "shapley"),
        ({"shapley": "permutation", "num_permutations": 0}, "num_permutations"),
        ({"max_exact_players": -1}, "max_exact_players"),
        ({"shapley": ShapleyOptions("exact"), "num_permutations": 8}, "num_permutations"),
        ({"shapley": ShapleyOptions("exact"), "max_exact_players": 3}, "max_exact_players"),
        ({"max_elements": 0}, "max_elements"),
        ({"max_elements": 2.0**20}, "max_elements"),
        ({"max_elements": True}, "max_elements"),
    ],
)
def test_bad_common_arguments_name_the_argument(overrides, names):
    with pytest.raises(ConfigError, match=names):
        _common(**overrides)


# ---------------------------------------------------------------------------------------------
# check_num_mc_samples
# ---------------------------------------------------------------------------------------------
def test_num_mc_samples_floor():
    assert MIN_MC_SAMPLES == 10
    assert check_num_mc_samples(MIN_MC_SAMPLES) == MIN_MC_SAMPLES
    value = check_num_mc_samples(np.int64(5000))
    assert value == 5000 and type(value) is int
    for bad in (MIN_MC_SAMPLES - 1, 0, -100, 100.0, "100", True, None):
        with pytest.raises(ConfigError, match=rf"num_mc_samples must be an integer >= {MIN_MC_SAMPLES}"):
            check_num_mc_samples(bad)


def test_attributions_refuse_too_few_mc_samples(fitted):
    row = _data(1, seed=3)
    with pytest.raises(ConfigError, match="num_mc_samples"):
        br.attribute_anomalies(fitted, "c", row, num_mc_samples=MIN_MC_SAMPLES - 1, seed=0)


# ---------------------------------------------------------------------------------------------
# check_fitted_scm
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scm", [None, "scm", GRAPH, object()], ids=["none", "str", "graph", "object"])
def test_check_fitted_scm_refuses_what_is_not_an_scm(scm):
    with pytest.raises(ConfigError, match=rf"scm must be a fitted BayesianSCM, got {type(scm).__name__}"):
        check_fitted_scm(scm)


def test_check_fitted_scm_refuses_unfitted_and_changed_models(fitted):
    with pytest.raises(NotFittedError):
        check_fitted_scm(br.BayesianSCM(GRAPH))
    assert check_fitted_scm(fitted) is fitted
    changed = br.BayesianSCM(GRAPH.copy(), mechanisms="gaussian", num_draws=10).fit(_data(), seed=0)
    changed.graph.add_edge("c", "d")
    with pytest.raises(GraphError):
        check_fitted_scm(changed)


# ---------------------------------------------------------------------------------------------
# check_player_frame
# ---------------------------------------------------------------------------------------------
def test_player_frame_keeps_the_players_as_float64_in_player_order():
    frame = pd.DataFrame({"c": [1, 2], "a": [3, 4], "b": [True, False]}, index=["x", "y"])
    out = check_player_frame(frame, GRAPH, ["b", "a"], what="anomaly_samples")
    assert list(out.columns) == ["b", "a"] and list(out.index) == ["x", "y"]
    assert (out.dtypes == np.float64).all()
    np.testing.assert_array_equal(out.to_numpy(), [[1.0, 3.0], [0.0, 4.0]])
    # other graph nodes may be absent
    assert list(check_player_frame(frame[["a", "b"]], GRAPH, ["a", "b"], what="x").columns) == ["a", "b"]


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"a": [1.0], "b": [1.0], "z": [0.0]}), "'z'.*not nodes of the causal graph"),
        (pd.DataFrame({"a": [1.0]}), "lacks columns for graph nodes 'b'"),
        (pd.DataFrame({"a": [1.0], "b": [np.nan]}), "NaN or infinite"),
        (pd.DataFrame({"a": [1.0], "b": ["x"]}), "non-numeric"),
        (np.ones((2, 2)), "must be a pandas DataFrame"),
    ],
    ids=["extra", "missing", "nan", "text", "array"],
)
def test_player_frame_errors_name_the_frame(frame, match):
    with pytest.raises(DataError, match=match) as err:
        check_player_frame(frame, GRAPH, ["a", "b"], what="new_data")
    assert "new_data" in str(err.value)


def test_player_frame_min_rows():
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert len(check_player_frame(frame, GRAPH, ["a", "b"], what="old_data")) == 1
    with pytest.raises(DataError, match="old_data has 1 row"):
        check_player_frame(frame, GRAPH, ["a", "b"], what="old_data", min_rows=2)


# ---------------------------------------------------------------------------------------------
# mc_std_error
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lead", [(), (4,), (2, 4)])
def test_mc_std_error_of_exact_contributions_is_zero(lead):
    phi = torch.randn(*lead, 6, 1, 3, dtype=torch.float64)  # (..., D, E=1, n)
    se = mc_std_error(phi)
    assert isinstance(se, np.ndarray) and se.shape == (*lead, 3)
    assert not se.any()


def test_mc_std_error_is_half_the_rms_difference_of_the_halves():
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(2, 7, 3, 4, generator=gen, dtype=torch.float64)  # (K, D, E=3, n)
    se = mc_std_error(phi)
    assert se.shape == (2, 4)
    p = phi.numpy()
    np.testing.assert_allclose(se, np.sqrt(((p[:, :, 1] - p[:, :, 2]) ** 2).mean(axis=1)) / 2, rtol=1e-12)
    # the full-sample estimate does not enter; constant differences c give |c| / 2
    shifted = phi.clone()
    shifted[..., 0, :] += 100.0
    np.testing.assert_array_equal(mc_std_error(shifted), se)
    const = torch.zeros(5, 3, 2, dtype=torch.float64)
    const[:, 1] = torch.tensor([1.0, -3.0])
    np.testing.assert_allclose(mc_std_error(const), [0.5, 1.5])


def test_mc_std_error_estimates_the_sd_of_the_full_sample_mean():
    """Means of M samples and of each half, replicated D times: the SE is sigma / sqrt(M)."""
    gen = torch.Generator().manual_seed(1)
    num_d, num_m, sigma = 4000, 100, torch.tensor([0.5, 2.0], dtype=torch.float64)
    samples = torch.randn(num_d, num_m, 2, generator=gen, dtype=torch.float64) * sigma
    half = num_m // 2
    phi = torch.stack([samples.mean(1), samples[:, :half].mean(1), samples[:, half:].mean(1)], 1)  # (D, 3, n)
    se = mc_std_error(phi)
    np.testing.assert_allclose(se, (sigma / num_m**0.5).numpy(), rtol=0.05)
    np.testing.assert_allclose(se, phi[:, 0].std(0).numpy(), rtol=0.06)



# --- early-stopping Shapley in the attributions ----------------------------------------------

WIDE = 24  # roots of the wide graph: the target has 24 ancestors, 25 players


def _wide(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    roots = {f"R{i}": rng.normal(size=n) for i in range(WIDE)}
    weights = np.linspace(0.2, 1.5, WIDE)
    y = sum(w * roots[f"R{i}"] for i, w in enumerate(weights)) + rng.normal(size=n)
    graph = nx.DiGraph([(f"R{i}", "Y") for i in range(WIDE)])
    return graph, pd.DataFrame({**roots, "Y": y}), weights


@pytest.fixture(scope="module")
def wide():
    graph, data, weights = _wide()
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=30).fit(data, seed=0)
    base = {f"R{i}": 0.0 for i in range(WIDE)}
    rows = [base | {"R10": 8.0}, base | {"R20": 5.0, "R2": 3.0}]
    for row, own in zip(rows, (4.0, 0.0)):  # the target's own noise: 4 in the first row
        row["Y"] = sum(w * row[f"R{i}"] for i, w in enumerate(weights)) + own
    return scm, pd.DataFrame(rows)


def test_early_stopping_attribution_is_within_its_error_of_a_large_permutation_answer(wide):
    scm, anomalies = wide
    res = br.attribute_anomalies(scm, "Y", anomalies, seed=0, shapley=ShapleyOptions("early_stopping", tolerance=0.15))
    info = res.method_info
    assert res.method_info["engine"] == "analytic" and info["shapley"] == "early_stopping"
    assert info["shapley_converged"] and info["shapley_num_permutations"] < 40 * 50
    se = np.array([info["shapley_se"][node] for node in res.nodes])
    assert se.max() <= 0.15 and se.min() > 0
    # efficiency per draw, with the estimator's error folded in
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, rtol=1e-5, atol=1e-5)
    ref = br.attribute_anomalies(scm, "Y", anomalies, seed=1, shapley="permutation", num_permutations=4000)
    ref_se = se * np.sqrt(info["shapley_num_permutations"] / 4000)
    gap = np.abs(np.median(res.contributions, 0) - np.median(ref.contributions, 0))  # (K, n)
    assert np.all(gap <= 4 * np.sqrt(2 * se**2 + ref_se**2) + 1e-3), gap.max()
    top = res.summary().groupby("anomaly").head(1)["node"].tolist()
    assert top == ["R10", "R20"]


def test_early_stopping_error_is_folded_into_the_draws_and_shrinks_with_the_tolerance(wide):
    scm, anomalies = wide
    loose = br.attribute_anomalies(scm, "Y", anomalies, seed=0, shapley=ShapleyOptions("early_stopping", tolerance=0.35))
    tight = br.attribute_anomalies(scm, "Y", anomalies, seed=0, shapley=ShapleyOptions("early_stopping", tolerance=0.16))
    se = [np.array(list(r.method_info["shapley_se"].values())) for r in (loose, tight)]
    assert se[1].max() <= 0.16 < se[0].max() <= 0.35
    assert tight.method_info["shapley_num_permutations"] > loose.method_info["shapley_num_permutations"]
    # the draws carry the error: with a loose tolerance the spread across draws grows by it (shapley_se is
    # the largest over the anomalies, so the growth averaged over them is a part of its square: 0.46 measured)
    spread = [r.contributions.std(0) for r in (loose, tight)]  # (K, n)
    assert np.mean(spread[0] ** 2 - spread[1] ** 2) > 0.2 * np.mean(se[0] ** 2 - se[1] ** 2)
    # its IT scores are those of any other estimator (the closed form does not depend on it)
    np.testing.assert_allclose(loose.it_scores, tight.it_scores)


def test_early_stopping_at_its_cap_warns_and_says_so(wide):
    scm, anomalies = wide
    with pytest.warns(br.ConvergenceWarning, match="cap of 64 permutations"):
        res = br.attribute_anomalies(scm, "Y", anomalies, seed=0,
                                     shapley=ShapleyOptions("early_stopping", 64, tolerance=1e-6))
    assert res.method_info["shapley_converged"] is False and res.method_info["shapley_num_permutations"] == 64


def test_early_stopping_in_the_other_attributions_reports_its_error(fitted):
    opts = ShapleyOptions("early_stopping", 200, tolerance=1e-3)
    ici = br.intrinsic_causal_influence(fitted, "c", shapley=opts, seed=0)
    assert set(ici.method_info["shapley_se"]) == {"a", "b", "c"}
    # additive game: every permutation gives the exact answer, so the error is 0 and the draws are unchanged
    assert max(ici.method_info["shapley_se"].values()) < 1e-9
    np.testing.assert_allclose(ici.contributions, br.intrinsic_causal_influence(fitted, "c", seed=0).contributions,
                               rtol=1e-9)
    rows = pd.DataFrame({"a": [2.0], "b": [0.0], "c": [3.0]})
    md = br.attribute_mean_deviation(fitted, "c", rows, shapley=opts, seed=0)
    assert md.method_info["shapley_converged"] and "shapley_se" in md.method_info


def test_early_stopping_bounds_every_anomalys_error_however_anomalies_are_batched(wide):
    scm, anomalies = wide
    opts = ShapleyOptions("early_stopping", tolerance=0.2)
    together = br.attribute_anomalies(scm, "Y", anomalies, seed=0, shapley=opts)
    apart = br.attribute_anomalies(scm, "Y", anomalies, seed=0, shapley=opts, batch_size=1)
    for res in (together, apart):
        assert res.method_info["shapley_converged"] and max(res.method_info["shapley_se"].values()) <= 0.2
        np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, rtol=1e-5, atol=1e-5)
    # the easy anomaly (R20) alone needs fewer permutations than the hard one: batches stop on their own
    alone = br.attribute_anomalies(scm, "Y", anomalies.iloc[[1]], seed=0, shapley=opts)
    assert alone.method_info["shapley_num_permutations"] < together.method_info["shapley_num_permutations"]
