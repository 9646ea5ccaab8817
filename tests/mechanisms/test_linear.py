"""LinearANM's sign-constrained coefficients (the call-graph prior)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca.exceptions import ConfigError
from bayesrca.mechanisms import LinearANM

NOISES = ["gaussian", "bootstrap_gpd", "bootstrap"]


def _data(effects, n=300, seed=0, noise_sd=1.0):
    rng = np.random.default_rng(seed)
    parents = rng.normal(size=(n, len(effects))) * 2 + 10
    y = 3 + parents @ np.asarray(effects, dtype=float) + noise_sd * rng.normal(size=n)
    return y, parents


def _fit(noise, effects, seed=0, **kwargs):
    y, parents = _data(effects, seed=seed)
    torch.manual_seed(seed)
    return LinearANM(noise, **kwargs).fit(y, parents, num_draws=400)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("spec, signs", [("positive", [1, 1, 1]), ("negative", [-1, -1, -1]), ((1, 0, -1), [1, 0, -1])])
def test_constrained_draws_all_have_the_right_sign(noise, spec, signs):
    # true effects of every sign: the constraint binds on some coefficient in every case
    mech = _fit(noise, (0.5, -0.3, 0.0), coef_sign=spec)
    signs = torch.tensor(signs, dtype=torch.float64)
    assert bool(((mech.coef_ * signs) >= 0).all())
    assert mech.describe().endswith("/sign-constrained")


@pytest.mark.parametrize("noise", NOISES)
def test_a_strong_positive_effect_gives_the_unconstrained_posterior(noise):
    free, monotone = _fit(noise, (1.5, 0.8)), _fit(noise, (1.5, 0.8), coef_sign="positive")
    sd = free.coef_.std(0)
    assert torch.allclose(monotone.coef_.mean(0), free.coef_.mean(0), atol=float(0.5 * sd.max()))
    assert torch.allclose(monotone.coef_.std(0), sd, rtol=0.25)
    assert torch.allclose(monotone.intercept_.mean(), free.intercept_.mean(), atol=float(0.5 * free.intercept_.std()))


@pytest.mark.parametrize("noise", NOISES)
def test_a_null_effect_piles_up_at_zero(noise):
    y, parents = _data((0.0, 1.0))  # independent parents: the first coefficient's marginal is what moves
    torch.manual_seed(0)
    free = LinearANM(noise).fit(y, parents, num_draws=4000).coef_[:, 0]
    torch.manual_seed(1)
    got = LinearANM(noise, coef_sign="positive").fit(y, parents, num_draws=4000).coef_[:, 0]
    below = float((free < 0).double().mean())
    assert 0.2 < below < 0.8  # the unconstrained posterior straddles 0
    assert bool((got >= 0).all())
    sd = float(free.std())
    for q in (0.25 * sd, 0.5 * sd, sd):
        free_cdf = float((free < q).double().mean())
        if noise == "gaussian":  # the unconstrained posterior truncated at 0
            want = (free_cdf - below) / (1 - below)
        else:  # each draw's least squares moved to the bound: the negative mass sits at 0
            want = free_cdf
        assert float((got < q).double().mean()) == pytest.approx(want, abs=0.04)
    if noise != "gaussian":
        assert float((got == 0).double().mean()) == pytest.approx(below, abs=0.04)


def _unvaried(noise, sign, n=300, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=n)
    parents = np.column_stack([np.full(n, 5.0), b])
    y = b + 0.5 * rng.normal(size=n)
    torch.manual_seed(seed)
    return LinearANM(noise, coef_sign=sign).fit(y, parents, num_draws=2000), parents


@pytest.mark.parametrize("noise", NOISES)
def test_a_parent_that_never_varied_keeps_its_half_normal_prior(noise):
    mech, parents = _unvaried(noise, "positive")
    draws = mech.coef_[:, 0]
    assert bool((draws >= 0).all()) and mech.diagnostics_["unvaried_constrained"] == 1
    # |Normal(0, 1)|: mean sqrt(2 / pi), sd sqrt(1 - 2 / pi)
    assert float(draws.mean()) == pytest.approx(np.sqrt(2 / np.pi), abs=0.05)
    assert float(draws.std()) == pytest.approx(np.sqrt(1 - 2 / np.pi), abs=0.05)
    # at the parent's training level the fit is unchanged: the intercept absorbs coef * level
    free, _ = _unvaried(noise, None)
    row = [torch.tensor([5.0], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64)]
    assert float(mech.loc(row).mean()) == pytest.approx(float(free.loc(row).mean()), abs=0.05)
    assert float(mech.loc(row).std()) == pytest.approx(float(free.loc(row).std()), rel=0.3)
    # without a constraint (or with sign 0 for that parent) the coefficient keeps the symmetric prior
    for unconstrained in (free, _unvaried(noise, (0, 1))[0]):
        draws = unconstrained.coef_[:, 0]
        assert float(draws.mean()) == pytest.approx(0.0, abs=0.06)
        assert float(draws.std()) == pytest.approx(1.0, abs=0.06)
        assert unconstrained.diagnostics_["unvaried_prior"] == 1
    negative, _ = _unvaried(noise, "negative")
    assert bool((negative.coef_[:, 0] <= 0).all()) and float(negative.coef_[:, 0].std()) > 0.3


def test_a_parent_that_never_varied_has_the_prior_effect_in_a_nonlinear_family():
    """Splines get the same prior as a linear term outside the feature map; the fit at the
    training level is unchanged."""
    from bayesrca.mechanisms import SplineANM

    rng = np.random.default_rng(3)
    n = 300
    b = rng.normal(size=n)
    parents = np.column_stack([np.full(n, 2.0), b])
    y = np.sin(b) + 0.3 * rng.normal(size=n)
    torch.manual_seed(0)
    mech = SplineANM("gaussian").fit(y, parents, num_draws=2000)
    assert mech.diagnostics_["unvaried_prior"] == 1
    coef = mech.unvaried_coef_
    assert bool((coef[:, 1] == 0).all())
    assert float(coef[:, 0].std()) == pytest.approx(1.0, abs=0.06)
    at_level = [torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)]
    moved = [torch.tensor([5.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)]
    assert float(mech.loc(at_level).std()) < 0.1
    np.testing.assert_allclose((mech.loc(moved) - mech.loc(at_level)).numpy(), 3.0 * coef[:, 0].numpy(), atol=1e-9)


def test_unvaried_coef_sd_scales_the_prior():
    y, parents = np.arange(20.0), np.column_stack([np.full(20, 1.0), np.arange(20.0)])
    torch.manual_seed(0)
    mech = LinearANM("gaussian", coef_sign="positive", unvaried_coef_sd=0.01).fit(y, parents, num_draws=2000)
    assert float(mech.coef_[:, 0].mean()) == pytest.approx(0.01 * np.sqrt(2 / np.pi), rel=0.1)


@pytest.mark.parametrize("noise", ["gaussian", "bootstrap_gpd"])
def test_an_anomaly_of_a_never_varied_parent_gets_a_positive_uncertain_contribution(noise):
    rng = np.random.default_rng(0)
    n = 300
    b = rng.normal(size=n)
    train = pd.DataFrame({"a": np.full(n, 5.0), "b": b, "c": b + 0.5 * rng.normal(size=n)})
    graph = nx.DiGraph([("a", "c"), ("b", "c")])
    anomaly = pd.DataFrame({"a": [8.0], "b": [0.1], "c": [3.5]})
    out = {}
    for sign in (None, "positive"):
        mechs = {"a": "gaussian", "b": "gaussian", "c": LinearANM(noise, coef_sign=sign)}
        # a, constant at 5, observed at 8: a change of its rule-of-succession noise (slab sd 5)
        scm = br.BayesianSCM(graph, mechanisms=mechs, num_draws=200).fit(train, seed=0)
        res = br.attribute_anomalies(scm, "c", anomaly, seed=0, num_mc_samples=500)
        out[sign] = res.contributions[:, 0, list(res.nodes).index("a")]
    # unconstrained: the prior N(0, 1) over the effect; a move of c either way makes c's two-sided
    # event likelier, so a's contribution is mostly positive too, and uncertain (not exactly 0)
    free = out[None]
    assert (free > 0).mean() > 0.5 and np.quantile(free, 0.95) - np.quantile(free, 0.05) > 1.0
    got = out["positive"]
    assert (got > 0).mean() > 0.9 and got.mean() > 1.0
    # uncertain: the effect comes from the prior (a 90 % interval more than a nat wide)
    assert np.quantile(got, 0.95) - np.quantile(got, 0.05) > 1.0


def test_the_monotone_family_round_trips_through_save_and_load(tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    a = rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "k": np.full(n, 2.0), "b": 0.2 * a + rng.normal(size=n)})
    graph = nx.DiGraph([("a", "b"), ("k", "b")])
    spec = {"a": "gaussian", "k": "gaussian", "b": LinearANM("gaussian", coef_sign=(1, -1), unvaried_coef_sd=0.5)}
    for mechanisms in ("linear_monotone", spec):
        scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=50).fit(frame, seed=3)
        back = br.load(br.save(scm, tmp_path / "m.bayesrca"))
        mech, again = scm.mechanisms_["b"], back.mechanisms_["b"]
        assert again.get_params() == mech.get_params()
        assert torch.equal(again.coef_, mech.coef_) and torch.equal(again.intercept_, mech.intercept_)
        assert bool((mech.coef_[:, 1] != 0).all())  # k never varied: prior draws, kept by the file
    assert again.coef_sign == (1, -1) and bool((again.coef_[:, 1] < 0).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"coef_sign": "monotone"}, "coef_sign must be None, one of"),
        ({"coef_sign": (1,)}, "one of 1, -1, 0 per parent"),
        ({"coef_sign": (1, 2)}, "one of 1, -1, 0 per parent"),
        ({"coef_sign": (True, 1)}, "one of 1, -1, 0 per parent"),
        ({"coef_sign": {"p0": 1, "p1": 1}}, "as a sequence, in the order of bayesrca.graph.parents_of"),
        ({"coef_sign": "positive", "unvaried_coef_sd": 0.0}, "unvaried_coef_sd must be a positive"),
        ({"coef_sign": "positive", "noise": "student_t"}, "coef_sign needs noise 'gaussian'"),
        ({"coef_sign": "positive", "noise": "gaussian", "inference": "svi"}, "coef_sign needs noise 'gaussian'"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_fix(kwargs, match):
    y, parents = _data((1.0, 1.0), n=30)
    with pytest.raises(ConfigError, match=match):
        LinearANM(**kwargs).fit(y, parents, num_draws=10)


def test_no_constraint_changes_no_number():
    y, parents = _data((0.4, -0.2))
    for noise in ("gaussian", "bootstrap_gpd"):
        torch.manual_seed(5)
        old = LinearANM(noise).fit(y, parents, num_draws=50)
        torch.manual_seed(5)
        zero = LinearANM(noise, coef_sign=(0, 0)).fit(y, parents, num_draws=50)
        assert torch.equal(old.coef_, zero.coef_) and torch.equal(old.intercept_, zero.intercept_)


def test_the_repr_without_a_constraint_is_the_one_from_before_coef_sign():
    # mechanisms="auto" seeds each candidate's cross-validation with its repr: an unconstrained
    # LinearANM must keep its old repr, or every "auto" selection would change
    assert repr(LinearANM("gaussian")) == (
        "LinearANM(noise='gaussian', inference='auto', num_warmup=300, num_chains=2, svi_steps=2000, "
        "num_atoms=1000, constant_noise_scale=0.001)"
    )
    assert "coef_sign='positive'" in repr(LinearANM(coef_sign="positive"))
