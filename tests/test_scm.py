"""Tests of bayesrca.scm: BayesianSCM construction, fitting, its Pyro program, sampling and restoring."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pyro
import pytest
import torch
from pyro import poutine

import bayesrca as br
from bayesrca.exceptions import ConfigError, ConstantColumnWarning, DataError, GraphError, NotFittedError
from bayesrca.mechanisms.registry import mechanism_specs
from bayesrca.mechanisms import LinearANM, RootDistribution, noise_site
from bayesrca.mechanisms.base import NOISE_ROLE

NUM_DRAWS = 10
N_ROWS = 200
#: graph order differs from the topological order X0, X1, X2 on purpose
GRAPH_NODES = ["X2", "X0", "X1"]
EDGES = [("X0", "X1"), ("X1", "X2"), ("X0", "X2")]
TOPO = ["X0", "X1", "X2"]


def make_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(GRAPH_NODES)
    g.add_edges_from(EDGES)
    return g


def make_data(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """X0 ~ N(1, 1); X1 = 2 X0 + N(0, 0.25); X2 = X1 - X0 + N(0, 0.25)."""
    rng = np.random.default_rng(seed)
    x0 = 1.0 + rng.normal(size=n)
    x1 = 2.0 * x0 + 0.5 * rng.normal(size=n)
    x2 = x1 - x0 + 0.5 * rng.normal(size=n)
    return pd.DataFrame({"X0": x0, "X1": x1, "X2": x2})


def fit(mechanisms="gaussian", seed: int | None = 0, **kwargs) -> br.BayesianSCM:
    return br.BayesianSCM(make_graph(), mechanisms=mechanisms, num_draws=NUM_DRAWS, **kwargs).fit(make_data(), seed=seed)


@pytest.fixture(scope="module")
def scm() -> br.BayesianSCM:
    return fit("gaussian")


# ---------------------------------------------------------------------------------------------
# __init__ and fit
# ---------------------------------------------------------------------------------------------
def test_init_stores_parameters_only():
    g = make_graph()
    spec = {"X1": "linear"}
    model = br.BayesianSCM(g, mechanisms=spec, num_draws=7, constant_noise_scale=0.5)
    assert model.graph is g
    assert model.mechanisms is spec
    assert model.num_draws == 7
    assert model.constant_noise_scale == 0.5
    assert not [k for k in vars(model) if k.endswith("_")]
    assert br.BayesianSCM(g).mechanisms == "auto" and br.BayesianSCM(g).num_draws == 200


def test_init_does_not_validate():
    # scikit-learn convention: bad parameters are only rejected by fit
    model = br.BayesianSCM("not a graph", mechanisms="bogus", num_draws=-3, constant_noise_scale=-1)
    assert model.num_draws == -3
    with pytest.raises(GraphError):
        model.fit(make_data())


def test_fit_returns_self_and_sets_learned_attributes():
    model = br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=NUM_DRAWS)
    out = model.fit(make_data(), seed=3)
    assert out is model
    learned = {k for k in vars(model) if k.endswith("_")}
    assert {"graph_", "graph_fingerprint_", "nodes_", "parents_", "mechanisms_", "num_draws_",
            "selection_", "training_data_", "seed_"} <= learned
    assert model.nodes_ == TOPO
    assert model.parents_ == {"X0": (), "X1": ("X0",), "X2": ("X0", "X1")}
    assert model.num_draws_ == NUM_DRAWS
    assert model.seed_ == 3
    assert nx.is_frozen(model.graph_) and model.graph_ is not model.graph
    assert set(model.mechanisms_) == set(TOPO)
    assert all(m.is_fitted and m.num_draws_ == NUM_DRAWS for m in model.mechanisms_.values())
    assert list(model.training_data_.columns) == TOPO
    assert (model.training_data_.dtypes == np.float64).all()
    assert model.selection_.empty  # no "auto" node, so no model selection


def test_fit_recovers_linear_coefficients(scm):
    m1, m2 = scm.mechanisms_["X1"], scm.mechanisms_["X2"]
    assert isinstance(m1, LinearANM) and isinstance(scm.mechanisms_["X0"], RootDistribution)
    assert m1.coef_.shape == (NUM_DRAWS, 1)
    assert m1.coef_[:, 0].mean().item() == pytest.approx(2.0, abs=0.15)
    # X2's parents are (X0, X1) in that order: coefficients -1 and 1
    assert m2.coef_.mean(0).tolist() == pytest.approx([-1.0, 1.0], abs=0.2)
    assert m1.noise_params_["sigma"].mean().item() == pytest.approx(0.5, abs=0.1)


def test_fit_seed_none_records_an_int_seed():
    model = fit(seed=None)
    assert isinstance(model.seed_, int) and model.seed_ >= 0


def test_fit_is_reproducible_with_seed():
    a, b, c = fit(seed=5), fit(seed=5), fit(seed=6)
    for node in TOPO:
        assert torch.equal(a.mechanisms_[node].intercept_, b.mechanisms_[node].intercept_)
        assert torch.equal(a.mechanisms_[node].noise_params_["sigma"], b.mechanisms_[node].noise_params_["sigma"])
    assert not torch.equal(a.mechanisms_["X1"].coef_, c.mechanisms_["X1"].coef_)


def test_fit_leaves_global_rng_and_param_store_alone():
    torch.manual_seed(0)
    np.random.seed(0)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    pyro.clear_param_store()
    fit("linear", seed=1)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert list(pyro.get_param_store().keys()) == []


def test_fit_accepts_columns_in_any_order():
    data = make_data()[["X2", "X0", "X1"]]
    a = br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=NUM_DRAWS).fit(data, seed=0)
    b = fit("gaussian", seed=0)
    assert torch.equal(a.mechanisms_["X2"].coef_, b.mechanisms_["X2"].coef_)


@pytest.mark.parametrize("num_draws", [0, -1, 2.5, "10", True])
def test_fit_rejects_bad_num_draws(num_draws):
    with pytest.raises(ConfigError, match="num_draws"):
        br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=num_draws).fit(make_data())


@pytest.mark.parametrize("scale", [0, -1e-3, "small", None])
def test_fit_rejects_bad_constant_noise_scale(scale):
    with pytest.raises(ConfigError, match="constant_noise_scale"):
        br.BayesianSCM(make_graph(), mechanisms="gaussian", constant_noise_scale=scale).fit(make_data())


def test_fit_rejects_cyclic_graph_and_bad_data():
    with pytest.raises(GraphError, match="cycle"):
        br.BayesianSCM(nx.DiGraph([("X0", "X1"), ("X1", "X0")]), mechanisms="gaussian").fit(make_data()[["X0", "X1"]])
    with pytest.raises(DataError, match="X2"):
        br.BayesianSCM(make_graph(), mechanisms="gaussian").fit(make_data()[["X0", "X1"]])
    extra = make_data().assign(junk=0.0)
    with pytest.raises(DataError, match="junk"):
        br.BayesianSCM(make_graph(), mechanisms="gaussian").fit(extra)


# ---------------------------------------------------------------------------------------------
# mechanism specs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, root, other", [("gaussian", "root/gaussian", "linear/gaussian"),
                                                 ("linear", "root/bootstrap_gpd", "linear/bootstrap_gpd"),
                                                 ("spline", "root/bootstrap_gpd", "spline/bootstrap_gpd")])
def test_family_shorthands(family, root, other):
    model = fit(family)
    assert model.mechanisms_["X0"].describe() == root
    assert model.mechanisms_["X1"].describe() == other
    assert model.mechanisms_["X2"].describe() == other


def test_mapping_overrides_single_nodes_and_rest_is_auto():
    model = fit({"X1": "spline", "X2": "linear"})
    assert model.mechanisms_["X1"].describe() == "spline/bootstrap_gpd"
    assert model.mechanisms_["X2"].describe() == "linear/bootstrap_gpd"
    # X0 is chosen automatically: it is the only node in the selection table
    assert set(model.selection_["node"]) == {"X0"}
    assert model.selection_["chosen"].sum() == 1


@pytest.mark.parametrize("spec", ["bogus", "Linear", 3, None, ["linear"]])
def test_unknown_global_spec_raises_config_error(spec):
    with pytest.raises(ConfigError, match="mechanism for node") as info:
        br.BayesianSCM(make_graph(), mechanisms=spec, num_draws=NUM_DRAWS).fit(make_data())
    assert repr(spec) in str(info.value)


def test_unknown_spec_in_mapping_names_the_node():
    with pytest.raises(ConfigError, match="node 'X2'") as info:
        fit({"X1": "linear", "X2": "quadratic"})
    assert "'quadratic'" in str(info.value)
    assert "'X1'" not in str(info.value)


def test_mapping_with_unknown_node_raises_graph_error():
    with pytest.raises(GraphError, match="'Z'"):
        fit({"Z": "linear"})


def test_mechanism_in_wrong_position_raises_config_error():
    with pytest.raises(ConfigError, match="'X0'"):
        fit({"X0": LinearANM("gaussian")})
    with pytest.raises(ConfigError, match="'X1'"):
        fit({"X1": RootDistribution("gaussian")})


def test_user_mechanism_instance_is_cloned_with_its_settings():
    user = LinearANM("gaussian", num_atoms=321, constant_noise_scale=0.25)
    model = fit({"X0": "gaussian", "X1": user, "X2": "gaussian"}, constant_noise_scale=0.01)
    fitted = model.mechanisms_["X1"]
    assert fitted is not user
    assert not user.is_fitted  # the caller's object is left unfitted
    assert type(fitted) is LinearANM and fitted.is_fitted
    assert fitted.get_params() == user.get_params()
    assert fitted.constant_noise_scale == 0.25  # not replaced by the model's constant_noise_scale
    assert model.mechanisms_["X2"].constant_noise_scale == 0.01


def test_constant_noise_scale_reaches_default_mechanisms_only():
    data = make_data().assign(X0=3.0)  # a constant root
    graph = make_graph()
    with pytest.warns(ConstantColumnWarning, match="X0"):
        model = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=NUM_DRAWS, constant_noise_scale=0.01).fit(data)
    root = model.mechanisms_["X0"]
    assert root.describe() == "root/constant"
    assert torch.allclose(root.noise_params_["sigma"], torch.full((NUM_DRAWS,), 0.03, dtype=torch.float64))
    with pytest.warns(ConstantColumnWarning):
        user = br.BayesianSCM(
            graph, mechanisms={"X0": RootDistribution("gaussian", constant_noise_scale=0.5), "X1": "gaussian",
                               "X2": "gaussian"},
            num_draws=NUM_DRAWS, constant_noise_scale=0.01,
        ).fit(data)
    assert torch.allclose(user.mechanisms_["X0"].noise_params_["sigma"], torch.full((NUM_DRAWS,), 1.5, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# not fitted / graph changed
# ---------------------------------------------------------------------------------------------
def test_not_fitted_errors():
    model = br.BayesianSCM(make_graph(), mechanisms="gaussian")
    for call in (model.check_fitted, lambda: model.sample(5), model.summary):
        with pytest.raises(NotFittedError, match="fit"):
            call()
    assert isinstance(NotFittedError(), AttributeError)


def test_program_before_fit_raises_not_fitted_error():
    model = br.BayesianSCM(make_graph(), mechanisms="gaussian")
    with pytest.raises(NotFittedError):
        model.program()


def test_graph_changed_after_fit_raises_graph_error():
    model = fit("gaussian")
    model.check_fitted()
    model.graph.remove_edge("X0", "X2")
    with pytest.raises(GraphError, match="changed after fit"):
        model.check_fitted()
    with pytest.raises(GraphError, match="changed after fit"):
        model.sample(5)
    with pytest.raises(GraphError, match="changed after fit"):
        model.summary()
    assert model.graph_.has_edge("X0", "X2")  # the fitted copy is untouched
    model.graph.add_edge("X0", "X2")  # the same graph again: usable again
    model.check_fitted()
    assert len(model.sample(3, seed=0)) == 3


def test_graph_gains_a_node_after_fit():
    model = fit("gaussian")
    model.graph.add_node("X3")
    with pytest.raises(GraphError):
        model.check_fitted()


def test_graph_replaced_by_equal_graph_is_fine():
    model = fit("gaussian")
    model.graph = nx.DiGraph(list(reversed(EDGES)))
    model.check_fitted()


# ---------------------------------------------------------------------------------------------
# the Pyro program
# ---------------------------------------------------------------------------------------------
def test_program_returns_every_node_with_draw_dimension(scm):
    with torch.no_grad():
        values = scm.program()
    assert list(values) == TOPO
    for v in values.values():
        assert v.shape == (NUM_DRAWS,)


def test_program_under_plates_adds_left_dimensions(scm):
    with torch.no_grad(), pyro.plate("outer", 3, dim=-3), pyro.plate("mc", 4, dim=-2):
        values = scm.program()
    for v in values.values():
        assert v.shape == (3, 4, NUM_DRAWS)


def test_program_trace_has_noise_sites_in_topological_order(scm):
    trace = poutine.trace(scm.program).get_trace()
    sites = [name for name, site in trace.nodes.items() if site["type"] == "sample"]
    assert sites == [noise_site(n) for n in TOPO]
    for node in TOPO:
        site = trace.nodes[noise_site(node)]
        assert site["infer"]["role"] == NOISE_ROLE and site["infer"]["node"] == node


def test_program_values_follow_the_mechanisms(scm):
    # with the noise fixed, every node is its mechanism applied to its parents' values
    with torch.no_grad():
        trace = poutine.trace(scm.program).get_trace()
        values = poutine.replay(scm.program, trace=trace)()
        for node in TOPO:
            mech = scm.mechanisms_[node]
            noise = trace.nodes[noise_site(node)]["value"]
            expected = mech.forward(noise, [values[p] for p in scm.parents_[node]])
            assert torch.allclose(values[node], expected)
        x0 = values["X0"]
        m1 = scm.mechanisms_["X1"]
        assert torch.allclose(values["X1"], m1.intercept_ + m1.coef_[:, 0] * x0 + trace.nodes["noise[X1]"]["value"])


def test_program_subset_with_given_parents(scm):
    given = torch.tensor([[-1.0], [0.0], [4.0]], dtype=torch.float64)  # (3, 1) broadcasts over draws
    zero = {noise_site("X1"): torch.zeros(NUM_DRAWS, dtype=torch.float64)}
    with torch.no_grad():
        values = poutine.condition(scm.program, data=zero)(["X1"], given={"X0": given})
    assert set(values) == {"X0", "X1"}
    assert values["X0"] is given
    m1 = scm.mechanisms_["X1"]
    assert values["X1"].shape == (3, NUM_DRAWS)
    assert torch.allclose(values["X1"], m1.intercept_ + m1.coef_[:, 0] * given)


def test_program_subset_runs_only_those_nodes_in_topological_order(scm):
    given = {"X0": torch.zeros(NUM_DRAWS, dtype=torch.float64)}
    trace = poutine.trace(scm.program).get_trace(["X2", "X1"], given=given)
    sites = [name for name, site in trace.nodes.items() if site["type"] == "sample"]
    assert sites == [noise_site("X1"), noise_site("X2")]


def test_program_given_overrides_are_interventions(scm):
    # do(X1 = 100): X2 follows the intervened value, X1's own mechanism is not run
    x1 = torch.full((NUM_DRAWS,), 100.0, dtype=torch.float64)
    with torch.no_grad():
        trace = poutine.trace(scm.program).get_trace(["X0", "X2"], given={"X1": x1})
    values = trace.nodes["_RETURN"]["value"]
    assert noise_site("X1") not in trace.nodes
    assert torch.equal(values["X1"], x1)
    assert (values["X2"] > 80).all()  # X2 ≈ X1 - X0


# ---------------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------------
def test_sample_shape_columns_and_reproducibility(scm):
    a = scm.sample(37, seed=4)
    b = scm.sample(37, seed=4)
    c = scm.sample(37, seed=5)
    assert isinstance(a, pd.DataFrame)
    assert a.shape == (37, 3)
    assert list(a.columns) == GRAPH_NODES  # graph order, not topological order
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    assert np.isfinite(a.to_numpy()).all()


def test_sample_matches_training_distribution(scm):
    draws = scm.sample(4000, seed=0)
    train = make_data()
    for node in TOPO:
        assert draws[node].mean() == pytest.approx(train[node].mean(), abs=0.15)
        assert draws[node].std() == pytest.approx(train[node].std(), rel=0.15)
    # the structure is kept: X1 - 2 X0 is the X1 noise (sd 0.5)
    assert (draws["X1"] - 2 * draws["X0"]).std() == pytest.approx(0.5, abs=0.1)


def test_sample_leaves_global_torch_rng_alone(scm):
    torch.manual_seed(1)
    state = torch.get_rng_state()
    scm.sample(50, seed=2)
    scm.sample(50)
    assert torch.equal(torch.get_rng_state(), state)


def test_sample_without_seed_differs():
    model = fit("gaussian")
    assert not np.allclose(model.sample(20).to_numpy(), model.sample(20).to_numpy())


@pytest.mark.parametrize("n", [0, -1, 2.0])
def test_sample_rejects_bad_counts(scm, n):
    with pytest.raises(ConfigError, match="num_samples"):
        scm.sample(n)


# ---------------------------------------------------------------------------------------------
# summary and repr
# ---------------------------------------------------------------------------------------------
def test_summary_one_row_per_node(scm):
    table = scm.summary()
    assert len(table) == 3
    assert list(table.columns[:3]) == ["node", "parents", "mechanism"]
    assert table["node"].tolist() == TOPO
    assert table["parents"].tolist() == [[], ["X0"], ["X0", "X1"]]
    assert table["mechanism"].tolist() == ["root/gaussian", "linear/gaussian", "linear/gaussian"]
    assert (table["inference"] == "conjugate").all()


def test_repr_fitted_and_not_fitted(scm):
    unfitted = br.BayesianSCM(make_graph(), mechanisms="linear", num_draws=7)
    assert repr(unfitted) == "BayesianSCM(3 nodes, mechanisms='linear', num_draws=7, not fitted)"
    assert repr(scm) == f"BayesianSCM(3 nodes, mechanisms='gaussian', num_draws={NUM_DRAWS}, fitted)"
    assert "? nodes" in repr(br.BayesianSCM([("a", "b")]))


# ---------------------------------------------------------------------------------------------
# from_fitted_state (the restore hook)
# ---------------------------------------------------------------------------------------------
def _restore(scm, **overrides):
    kwargs = dict(
        nodes=list(scm.nodes_), num_draws=scm.num_draws_, training_data=scm.training_data_, seed=scm.seed_,
        selection=scm.selection_,
    )
    kwargs.update(overrides)
    graph = kwargs.pop("graph", nx.DiGraph(scm.graph_))
    mechanisms = kwargs.pop("mechanisms", scm.mechanisms_)
    return br.BayesianSCM.from_fitted_state(graph, mechanisms, **kwargs)


def test_from_fitted_state_round_trip(scm):
    restored = _restore(scm, params={"mechanisms": "gaussian", "constant_noise_scale": 0.02})
    assert isinstance(restored, br.BayesianSCM)
    assert restored.nodes_ == scm.nodes_
    assert restored.parents_ == scm.parents_
    assert restored.graph_fingerprint_ == scm.graph_fingerprint_
    assert nx.is_frozen(restored.graph_)
    assert restored.num_draws_ == scm.num_draws_ and restored.seed_ == scm.seed_
    assert restored.mechanisms == "gaussian" and restored.constant_noise_scale == 0.02
    assert restored.num_draws == NUM_DRAWS
    restored.check_fitted()
    pd.testing.assert_frame_equal(restored.sample(25, seed=9), scm.sample(25, seed=9))
    pd.testing.assert_frame_equal(restored.summary(), scm.summary())
    assert "fitted)" in repr(restored)


def test_from_fitted_state_round_trips_fitted_mechanism_state(scm):
    mechs = {
        n: type(m).from_fitted_state(m.get_params(), m.fitted_state()) for n, m in scm.mechanisms_.items()
    }
    restored = _restore(scm, mechanisms=mechs)
    pd.testing.assert_frame_equal(restored.sample(30, seed=1), scm.sample(30, seed=1))


def test_from_fitted_state_default_spec_is_unfitted_clones(scm):
    restored = _restore(scm)
    assert set(restored.mechanisms) == set(TOPO)
    for node in TOPO:
        spec = restored.mechanisms[node]
        assert type(spec) is type(scm.mechanisms_[node])
        assert not spec.is_fitted
        assert spec.get_params() == scm.mechanisms_[node].get_params()
    # the clones are a valid spec: refitting reproduces the fit
    refit = restored.fit(make_data(), seed=0)
    assert torch.equal(refit.mechanisms_["X2"].coef_, scm.mechanisms_["X2"].coef_)


def test_from_fitted_state_detects_later_graph_change(scm):
    graph = nx.DiGraph(scm.graph_)
    restored = _restore(scm, graph=graph)
    assert restored.graph is graph
    graph.add_edge("X2", "X3")
    with pytest.raises(GraphError):
        restored.check_fitted()


def test_from_fitted_state_rejects_wrong_nodes(scm):
    with pytest.raises(GraphError, match="not the graph's nodes"):
        _restore(scm, nodes=["X0", "X1"])
    with pytest.raises(GraphError, match="not the graph's nodes"):
        _restore(scm, nodes=["X0", "X1", "X2", "X2"])
    with pytest.raises(GraphError, match="topological order"):
        _restore(scm, nodes=["X1", "X0", "X2"])
    with pytest.raises(GraphError, match="cycle"):
        _restore(scm, graph=nx.DiGraph(EDGES + [("X2", "X0")]))


def test_from_fitted_state_rejects_bad_mechanisms(scm):
    with pytest.raises(ConfigError, match="X2"):
        _restore(scm, mechanisms={n: scm.mechanisms_[n] for n in ["X0", "X1"]})
    unfitted = dict(scm.mechanisms_, X1=LinearANM("gaussian"))
    with pytest.raises(ConfigError, match="'X1'"):
        _restore(scm, mechanisms=unfitted)
    with pytest.raises(ConfigError, match="'X0'"):
        _restore(scm, num_draws=NUM_DRAWS + 1)
    with pytest.raises(ConfigError, match="'X2'"):
        _restore(scm, mechanisms=dict(scm.mechanisms_, X2="linear"))
    with pytest.raises(ConfigError, match="num_draws"):
        _restore(scm, num_draws=0)


def test_get_and_set_params_follow_the_sklearn_protocol():
    model = br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=7)
    params = model.get_params()
    assert params == {"graph": model.graph, "mechanisms": "gaussian", "averaging": "pseudo-bma+", "num_draws": 7,
                      "constant_noise_scale": 1e-3, "tail_pooling": True}
    assert model.set_params(num_draws=9) is model and model.num_draws == 9
    with pytest.raises(br.ConfigError, match="no parameter.*num_drawz"):
        model.set_params(num_drawz=3)
    sklearn_base = pytest.importorskip("sklearn.base")
    copy = sklearn_base.clone(fit("gaussian"))
    assert not hasattr(copy, "mechanisms_") and copy.get_params()["mechanisms"] == "gaussian"


def test_repr_html_shows_the_summary_once_fitted():
    assert "not fitted" in br.BayesianSCM(make_graph())._repr_html_()
    page = fit("gaussian")._repr_html_()
    assert "<table" in page and "X1" in page and "mechanism" in page


# ---------------------------------------------------------------------------------------------
# missing values in the training data
# ---------------------------------------------------------------------------------------------
def _with_holes(seed: int = 1) -> pd.DataFrame:
    """make_data() with about a tenth of the cells of each column missing (NaN)."""
    data = make_data()
    rng = np.random.default_rng(seed)
    return data.mask(rng.random(data.shape) < 0.1)


def test_fit_with_missing_values_equals_complete_case_fit_per_node():
    """Each mechanism is fitted on the rows where it and its parents are observed, with its own seed."""
    from bayesrca.fitting import fit_node

    data = _with_holes()
    model = br.BayesianSCM(make_graph(), mechanisms="linear", num_draws=NUM_DRAWS).fit(data, seed=3)
    seeds = np.random.SeedSequence(3).spawn(3)
    position = {n: i for i, n in enumerate(GRAPH_NODES)}
    for node in TOPO:
        parents = list(model.parents_[node])
        rows = data[[node, *parents]].dropna()
        assert 0 < model.rows_used_[node] == len(rows) < len(data)
        alone, _ = fit_node(
            node, mechanism_specs("linear", make_graph())[node], None,
            rows[node].to_numpy(), rows[parents].to_numpy().reshape(len(rows), len(parents)),
            seed=seeds[position[node]], num_draws=NUM_DRAWS, constant=False, averaging="pseudo-bma+",
            weighting="pseudo-bma+", constant_noise_scale=1e-3, progress=False,
        )
        mine, theirs = model.mechanisms_[node].fitted_state(), alone.fitted_state()
        assert mine.keys() == theirs.keys()
        for key, value in mine.items():
            if isinstance(value, (np.ndarray, torch.Tensor)):
                np.testing.assert_array_equal(np.asarray(value), np.asarray(theirs[key]), err_msg=f"{node}.{key}")
    assert model.summary()["rows_used"].tolist() == [model.rows_used_[n] for n in model.nodes_]
    assert "rows_used" in model._repr_html_()
    assert model.training_data_.isna().to_numpy().sum() == data.isna().to_numpy().sum()  # kept as given


def test_complete_data_uses_every_row(scm):
    assert scm.rows_used_ == {n: N_ROWS for n in TOPO}


def test_node_without_two_complete_rows_is_a_data_error():
    data = make_data()
    data.loc[2:, "X1"] = np.nan  # X1 observed in 2 rows, but X0 is missing in one of them
    data.loc[0, "X0"] = np.nan
    with pytest.raises(DataError, match="'X1' has 1 row") as info:
        br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=NUM_DRAWS).fit(data, seed=0)
    assert "fill its missing values" in str(info.value)


def test_node_fitted_on_a_small_share_of_its_rows_warns():
    """A parent missing in most rows leaves its child few complete rows: said, with the counts."""
    data = make_data()
    data.loc[: N_ROWS - 40, "X1"] = np.nan  # X1 observed in 39 rows: X2 (parents X0, X1) keeps 39 of 200
    with pytest.warns(br.CompleteCaseWarning, match=r"'X2' on 39 of 200 rows") as record:
        model = br.BayesianSCM(make_graph(), mechanisms="gaussian", num_draws=NUM_DRAWS).fit(data, seed=0)
    assert model.rows_used_ == {"X0": 200, "X1": 39, "X2": 39}
    assert "'X1'" in str(record[0].message).split("'X2'")[1]  # the parent to blame
    assert all("'X1' on" not in str(w.message) for w in record)  # X1 lost only its own missing rows
