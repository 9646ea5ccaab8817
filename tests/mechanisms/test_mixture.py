"""FamilyMixture: one family per posterior draw, the model-averaged node mechanism."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bayesrca as br
from bayesrca._random import seeded
from bayesrca.counterfactual.engine import choose_engine
from bayesrca.exceptions import ConfigError
from bayesrca.mechanisms import FamilyMixture, LinearANM, RootDistribution, SplineANM
from bayesrca.mechanisms.mixture import DrawSelection, allocate_draws, has_additive_noise, split_gaussian_part

D = 40


@settings(max_examples=40, deadline=None)
@given(raw=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5), num_draws=st.integers(1, 300))
def test_per_draw_counts_follow_the_weights(raw, num_draws):
    w = np.array(raw) / sum(raw)
    with seeded(0):
        labels = allocate_draws(w, num_draws)
    counts = np.bincount(labels.numpy(), minlength=len(w))
    assert counts.sum() == num_draws and labels.shape == (num_draws,)
    assert np.all(np.abs(counts - num_draws * w) < 1.0)


def test_allocation_is_seeded_and_permuted():
    w = [0.5, 0.5]
    with seeded(1):
        a = allocate_draws(w, 200)
    with seeded(1):
        b = allocate_draws(w, 200)
    with seeded(2):
        c = allocate_draws(w, 200)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 < int(a[:100].sum()) < 100  # not all of one family first


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    y = np.tanh(x[:, 0]) + 0.3 * x[:, 0] + rng.normal(0, 0.3, n)
    return x, y


@pytest.fixture(scope="module")
def fitted():
    x, y = _data()
    with seeded(0):
        mix = FamilyMixture([LinearANM("gaussian"), SplineANM("bootstrap")], [0.7, 0.3]).fit(y, x, num_draws=D)
    return mix, x, y


def test_every_method_evaluates_each_component_on_its_own_draws(fitted):
    mix, _, _ = fitted
    parents = [torch.linspace(-2, 2, 7, dtype=torch.float64).unsqueeze(-1)]
    noise = torch.randn(7, D, dtype=torch.float64)
    value = torch.linspace(-1, 1, 7, dtype=torch.float64).unsqueeze(-1)
    out = {"forward": mix.forward(noise, parents), "abduct": mix.abduct(value, parents),
           "log_prob": mix.log_prob(value, parents)}
    assert all(v.shape == (7, D) for v in out.values())
    dist = mix.noise_distribution()
    assert dist.batch_shape == (D,)
    for k, comp in enumerate(mix.components_):
        idx = mix.draw_index_[k]
        assert torch.equal(idx, torch.nonzero(mix.assignment_ == k).reshape(-1)) and comp.num_draws_ == len(idx)
        own = noise[:, idx]  # component k's draw j is the node's draw idx[j]
        torch.testing.assert_close(out["forward"][:, idx], comp.forward(own, parents))
        torch.testing.assert_close(out["abduct"][:, idx], comp.abduct(value, parents))
        torch.testing.assert_close(out["log_prob"][:, idx], comp.log_prob(value, parents))
        cd = comp.noise_distribution()
        torch.testing.assert_close(dist.log_prob(noise)[:, idx], cd.log_prob(own))
        torch.testing.assert_close(dist.cdf(noise)[:, idx], cd.cdf(own))
        torch.testing.assert_close(dist.mean[idx], cd.mean.expand(len(idx)))
        torch.testing.assert_close(dist.stddev[idx], cd.stddev.expand(len(idx)))
    # samples: component 0 is sampled first, so under one seed its draws are reproduced
    with seeded(5):
        s = dist.sample((3,))
    with seeded(5):
        s0 = mix.components_[0].noise_distribution().sample((3,))
    torch.testing.assert_close(s[:, mix.draw_index_[0]], s0)
    expanded = dist.expand(torch.Size([4, D]))
    assert isinstance(expanded, DrawSelection) and expanded.sample().shape == (4, D)
    # a tensor without a draw dimension (last dimension 1) broadcasts to every draw
    torch.testing.assert_close(dist.log_prob(noise[:, :1]), dist.log_prob(noise[:, :1].expand(7, D)))


def test_a_family_lighter_than_half_a_draw_is_not_fitted():
    x, y = _data(120)
    with seeded(0):
        mix = FamilyMixture([LinearANM("gaussian"), SplineANM("bootstrap")], [0.999, 0.001]).fit(y, x, num_draws=D)
    assert len(mix.components_) == 1 and mix.components_[0].num_draws_ == D
    assert mix.diagnostics_["families_without_draws"] == 1
    assert mix.describe() == "mixture(linear/gaussian 1.00)"
    assert torch.equal(mix.assignment_, torch.zeros(D, dtype=torch.long))


def test_a_model_saved_with_every_component_over_all_draws_still_selects_per_draw(fitted):
    """The layout before compaction (no ``draw_index_``; components over all D draws) is read as it was."""
    mix, x, y = fitted
    with seeded(0):
        full = [c.clone().fit(y, x, num_draws=D) for c in mix.components]
    state = {"components_": full, "weights_": mix.weights_, "assignment_": mix.assignment_,
             "diagnostics_": mix.diagnostics_, "num_draws_": D}
    legacy = FamilyMixture.from_fitted_state(mix.get_params(), state)
    parents = [torch.linspace(-2, 2, 5, dtype=torch.float64).unsqueeze(-1)]
    noise = torch.randn(5, D, dtype=torch.float64)
    got, dist = legacy.forward(noise, parents), legacy.noise_distribution()
    for k, comp in enumerate(full):
        idx = legacy.assignment_ == k
        torch.testing.assert_close(got[:, idx], comp.forward(noise, parents)[:, idx])
        torch.testing.assert_close(dist.log_prob(noise)[:, idx], comp.noise_distribution().log_prob(noise)[:, idx])


def test_counts_of_a_fitted_mixture_follow_its_weights(fitted):
    mix = fitted[0]
    assert torch.bincount(mix.assignment_).tolist() == [28, 12]  # 0.7 and 0.3 of 40 draws
    assert mix.weights_.tolist() == pytest.approx([0.7, 0.3])
    assert mix.describe() == "mixture(linear/gaussian 0.70, spline/bootstrap 0.30)"


def test_linearity_and_gaussianity_hold_only_when_every_component_has_them(fitted):
    mix, x, y = fitted
    assert not mix.is_linear and not mix.noise_is_gaussian and mix.invertible
    with seeded(0):
        lin = FamilyMixture([LinearANM("gaussian"), LinearANM("bootstrap")], [0.5, 0.5]).fit(y, x, num_draws=D)
        gauss = FamilyMixture([LinearANM("gaussian"), LinearANM("gaussian", inference="svi", svi_steps=200)],
                              [0.5, 0.5]).fit(y, x, num_draws=D)
    assert lin.is_linear and not lin.noise_is_gaussian
    assert gauss.is_linear and gauss.noise_is_gaussian
    assert has_additive_noise(mix) and has_additive_noise(lin)


def test_the_gaussian_part_is_split_per_draw(fitted):
    mix = fitted[0]
    rest, sd = split_gaussian_part(mix.noise_distribution())
    gaussian = mix.assignment_ == 0
    torch.testing.assert_close(sd[gaussian], mix.components_[0].noise_params_["sigma"])
    assert torch.all(sd[~gaussian] == 0)
    draws = rest.sample((2,))
    assert torch.all(draws[:, gaussian] == 0)  # the Gaussian draws' rest is their mean, 0


def test_a_log_normal_component_is_not_evaluated_outside_its_support():
    rng = np.random.default_rng(1)
    y = rng.lognormal(1.0, 0.2, 300)
    with seeded(0):
        mix = FamilyMixture([RootDistribution("gaussian"), RootDistribution("lognormal")], [0.5, 0.5]).fit(
            y, np.zeros((300, 0)), num_draws=D)
    lp = mix.log_prob(torch.tensor([[-1.0]], dtype=torch.float64), [])
    gaussian = mix.assignment_ == 0
    assert torch.isfinite(lp[:, gaussian]).all()
    with seeded(1):
        draws = mix.noise_distribution().sample((500,))
    assert (draws[:, ~gaussian] > 0).all()


def test_parameters_are_checked():
    x, y = _data(60)
    for comps, weights in [([], []), ([LinearANM()], [1.0, 2.0]), ([LinearANM()], [-1.0]),
                           ([LinearANM(), "spline"], [0.5, 0.5]), ([LinearANM()], [float("nan")])]:
        with pytest.raises(ConfigError):
            FamilyMixture(comps, weights).fit(y, x, num_draws=4)
    with pytest.raises(ConfigError, match="mixtures themselves"):
        FamilyMixture([FamilyMixture([LinearANM()], [1.0])], [1.0]).fit(y, x, num_draws=4)
    clone = FamilyMixture([LinearANM("gaussian")], [1.0]).clone()
    assert not clone.is_fitted and clone.get_params()["weights"] == [1.0]


def test_a_mixture_must_fit_the_nodes_position():
    x, y = _data(100)
    graph = nx.DiGraph([("x", "y")])
    frame = pd.DataFrame({"x": x[:, 0], "y": y})
    bad = FamilyMixture([LinearANM("gaussian"), RootDistribution("gaussian")], [0.5, 0.5])
    with pytest.raises(ConfigError, match="needs"):
        br.BayesianSCM(graph, mechanisms={"x": "gaussian", "y": bad}).fit(frame, seed=0)


# -- a model-averaged node in an SCM -----------------------------------------------------------
def _chain_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.8 * a + rng.normal(0, 0.5, n)
    c = np.tanh(b) + 0.5 * b + rng.normal(0, 0.3, n)
    graph = nx.DiGraph([("a", "b"), ("b", "c")])
    anomaly = pd.DataFrame({"a": [0.2], "b": [2.8], "c": [3.5]})
    return graph, pd.DataFrame({"a": a, "b": b, "c": c}), anomaly


@pytest.fixture(scope="module")
def mixed_scm():
    graph, frame, anomaly = _chain_data()
    mix = FamilyMixture([LinearANM("gaussian"), SplineANM("bootstrap")], [0.6, 0.4])
    scm = br.BayesianSCM(graph, mechanisms={"a": "gaussian", "b": "gaussian", "c": mix}, num_draws=D)
    return scm.fit(frame, seed=0), anomaly


def test_efficiency_holds_per_draw_with_a_mixture_node(mixed_scm):
    scm, anomaly = mixed_scm
    res = br.attribute_anomalies(scm, "c", anomaly, seed=1, num_mc_samples=400)
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    assert res.method_info["tail"].endswith("conditional Monte Carlo")  # the Gaussian draws are integrated


def test_save_and_load_give_identical_attributions(mixed_scm, tmp_path):
    scm, anomaly = mixed_scm
    loaded = br.load(br.save(scm, tmp_path / "mixed.bayesrca"))
    assert torch.equal(loaded.mechanisms_["c"].assignment_, scm.mechanisms_["c"].assignment_)
    a = br.attribute_anomalies(scm, "c", anomaly, seed=3, num_mc_samples=300)
    b = br.attribute_anomalies(loaded, "c", anomaly, seed=3, num_mc_samples=300)
    np.testing.assert_array_equal(a.contributions, b.contributions)
    pd.testing.assert_frame_equal(scm.summary(), loaded.summary())


def test_a_mixture_of_linear_gaussian_families_keeps_the_closed_form_path():
    graph, frame, anomaly = _chain_data()
    mix = FamilyMixture([LinearANM("gaussian"), LinearANM("gaussian", inference="svi", svi_steps=300)], [0.5, 0.5])
    scm = br.BayesianSCM(graph, mechanisms={"a": "gaussian", "b": mix, "c": "gaussian"}, num_draws=D).fit(frame, seed=0)
    assert choose_engine(scm, ["a", "b", "c"]) == "analytic"
    res = br.attribute_anomalies(scm, "c", anomaly, seed=1)
    assert res.method_info["engine"] == "analytic"
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    # the linearisation reads each draw's own family: draw by draw equal to that family alone
    alone = br.BayesianSCM(graph, mechanisms={"a": "gaussian", "b": "gaussian", "c": "gaussian"}, num_draws=D)
    ref = br.attribute_anomalies(alone.fit(frame, seed=0), "c", anomaly, seed=1)
    first = scm.mechanisms_["b"].assignment_ == 0
    same = np.isclose(res.it_scores[first.numpy()], ref.it_scores[first.numpy()], rtol=0.3)
    assert same.mean() > 0.8


def test_the_linearisation_reads_each_draws_own_coefficients():
    from bayesrca.counterfactual.ops import linearize

    graph, frame, _ = _chain_data()
    frame = frame.assign(c=0.4 * frame["b"] + 0.2 * np.random.default_rng(3).normal(size=len(frame)))
    mix = FamilyMixture([LinearANM("gaussian"), LinearANM("bootstrap")], [0.5, 0.5])
    scm = br.BayesianSCM(graph, mechanisms={"a": "gaussian", "b": mix, "c": "gaussian"}, num_draws=D).fit(frame, seed=0)
    assert scm.mechanisms_["b"].is_linear and choose_engine(scm, ["a", "b", "c"]) == "mc"
    offset, coef = linearize(scm, ["a", "b", "c"])
    m = scm.mechanisms_["b"]
    for k, comp in enumerate(m.components_):
        idx = m.assignment_ == k
        # b = intercept_k + coef_k * a + N_b under draw s of family k
        torch.testing.assert_close(coef["b"][idx, 0], comp.coef_[:, 0])
        torch.testing.assert_close(coef["b"][idx, 1], torch.ones(int(idx.sum()), dtype=torch.float64))
        torch.testing.assert_close(offset["b"][idx], comp.intercept_ + comp.coef_[:, 0] * scm.mechanisms_["a"].intercept_[idx])
