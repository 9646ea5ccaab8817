"""Tests of bayesrca.mechanisms.registry: the one registry of mechanism classes and families.

The registry is what scm (family strings, ``"auto"``), selection (candidates, discrete kinds) and
persistence (the classes a model file may name) read; these tests pin down its contents and check
that those three modules really go through it.
"""

from __future__ import annotations

import types

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca import persistence, selection
from bayesrca.exceptions import ConfigError, DataError
from bayesrca.mechanisms import (
    BernoulliGLM,
    CategoricalGLM,
    DiscreteGLM,
    FamilyMixture,
    GPANM,
    LinearANM,
    Mechanism,
    PoissonGLM,
    RootDistribution,
    SplineANM,
)
from bayesrca.mechanisms import registry

NUM_DRAWS = 10
ALL_CLASSES = {LinearANM, SplineANM, GPANM, RootDistribution, BernoulliGLM, PoissonGLM, CategoricalGLM}

#: What the registry documents for each family: (root class, root noise), (non-root class, noise).
FAMILIES = {
    "linear": ((RootDistribution, "bootstrap_gpd"), (LinearANM, "bootstrap_gpd")),
    "gaussian": ((RootDistribution, "gaussian"), (LinearANM, "gaussian")),
    "spline": ((RootDistribution, "bootstrap_gpd"), (SplineANM, "bootstrap_gpd")),
    "gp": ((RootDistribution, "gaussian"), (GPANM, "gaussian")),
    "linear_monotone": ((RootDistribution, "bootstrap_gpd"), (LinearANM, "bootstrap_gpd")),
    "gaussian_monotone": ((RootDistribution, "gaussian"), (LinearANM, "gaussian")),
}


def _chain(n: int = 200, seed: int = 0) -> tuple[nx.DiGraph, pd.DataFrame]:
    """a -> b -> c with a -> c, nonlinear and positive at the root."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.0, 0.5, n)
    b = np.sin(2 * a) + 0.3 * rng.normal(size=n)
    c = a - 0.5 * b + rng.normal(size=n)
    return nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")]), pd.DataFrame({"a": a, "b": b, "c": c})


def _unknown_name_message_lists(err: pytest.ExceptionInfo, names) -> None:
    message = str(err.value)
    assert all(repr(name) in message for name in names), message


# ---------------------------------------------------------------------------------------------
# the class table
# ---------------------------------------------------------------------------------------------
def test_mechanism_classes_name_every_builtin_class_by_its_own_name():
    # the families, plus the model-averaging mixture of them
    assert set(registry.MECHANISM_CLASSES.values()) == ALL_CLASSES | {FamilyMixture}
    assert all(name == cls.__name__ for name, cls in registry.MECHANISM_CLASSES.items())
    assert all(issubclass(cls, Mechanism) for cls in registry.MECHANISM_CLASSES.values())
    assert set(registry.CONTINUOUS_CLASSES) | set(registry.DISCRETE_CLASSES) == ALL_CLASSES
    assert not set(registry.CONTINUOUS_CLASSES) & set(registry.DISCRETE_CLASSES)
    assert all(issubclass(cls, DiscreteGLM) for cls in registry.DISCRETE_CLASSES)
    assert not any(issubclass(cls, DiscreteGLM) for cls in registry.CONTINUOUS_CLASSES)


def test_the_tables_are_read_only():
    with pytest.raises(TypeError):
        registry.MECHANISM_CLASSES["Evil"] = LinearANM  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.DISCRETE_KIND_CLASSES["nominal"] = CategoricalGLM  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# families
# ---------------------------------------------------------------------------------------------
def test_family_names_are_the_sorted_documented_families():
    assert registry.FAMILY_NAMES == ("gaussian", "gaussian_monotone", "gp", "linear", "linear_monotone", "spline")
    assert "auto" not in registry.FAMILY_NAMES


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("is_root", [True, False])
def test_family_mechanism_is_a_fresh_unfitted_mechanism_of_the_documented_class(family, is_root):
    cls, noise = FAMILIES[family][0 if is_root else 1]
    mech = registry.family_mechanism(family, is_root=is_root)
    assert type(mech) is cls and mech.noise == noise
    assert not mech.is_fitted
    assert type(mech) in registry.MECHANISM_CLASSES.values()  # every family can be saved
    assert registry.is_root_mechanism(mech) is is_root and not registry.is_discrete(mech)
    registry.check_position(mech, "x", is_root)
    with pytest.raises(ConfigError):
        registry.check_position(mech, "x", not is_root)
    # a new object per call: fitting one leaves the next untouched
    again = registry.family_mechanism(family, is_root=is_root)
    assert again is not mech and again.get_params() == mech.get_params()
    rng = np.random.default_rng(0)
    parents = rng.normal(size=(200, 0 if is_root else 1))
    y = rng.normal(size=200) + (0.0 if is_root else parents[:, 0])
    torch.manual_seed(0)
    mech.fit(y, parents, num_draws=NUM_DRAWS)
    assert mech.is_fitted and mech.num_draws_ == NUM_DRAWS and not again.is_fitted


@pytest.mark.parametrize("name", ["auto", "Linear", "bootstrap", "lognormal", "", None, 3])
def test_unknown_family_raises_config_error_listing_the_families(name):
    for is_root in (True, False):
        with pytest.raises(ConfigError, match="unknown mechanism family") as err:
            registry.family_mechanism(name, is_root=is_root)
        _unknown_name_message_lists(err, registry.FAMILY_NAMES)


# ---------------------------------------------------------------------------------------------
# candidates of mechanisms="auto"
# ---------------------------------------------------------------------------------------------
def test_default_candidates_of_a_root_offer_lognormal_only_for_positive_values():
    positive = np.array([0.5, 1.0, 2.0])
    assert [m.describe() for m in registry.default_candidates(positive, True)] == [
        "root/gaussian", "root/lognormal", "root/bootstrap_gpd",
    ]
    for y in (np.array([0.0, 1.0, 2.0]), np.array([-1.0, 1.0, 2.0])):
        assert [m.describe() for m in registry.default_candidates(y, True)] == ["root/gaussian", "root/bootstrap_gpd"]


def test_default_candidates_add_the_gp_only_when_every_parent_is_continuous():
    rng = np.random.default_rng(0)
    y = rng.normal(size=100)
    continuous = rng.normal(size=(100, 2))
    names = [m.describe() for m in registry.default_candidates(y, False, continuous)]
    assert names == ["linear/gaussian", "linear/bootstrap_gpd", "spline/gaussian", "spline/bootstrap_gpd",
                     "gp/gaussian", "gp/bootstrap_gpd"]
    binary = np.column_stack([continuous[:, 0], rng.integers(0, 2, 100)])
    few = np.column_stack([continuous[:, 0], rng.integers(0, registry.MIN_CONTINUOUS_VALUES - 1, 100)])
    for parents in (binary, few, None):
        assert "gp/gaussian" not in [m.describe() for m in registry.default_candidates(y, False, parents)]
    assert [m.describe() for m in registry.default_candidates(np.abs(y), True, None)][-1] == "root/bootstrap_gpd"


def test_default_candidates_of_a_non_root_are_linear_then_spline_simplest_first():
    cands = registry.default_candidates(np.array([-1.0, 1.0]), False)
    assert [m.describe() for m in cands] == [
        "linear/gaussian", "linear/bootstrap_gpd", "spline/gaussian", "spline/bootstrap_gpd",
    ]
    for is_root, y in ((True, np.ones(3)), (False, np.ones(3))):
        first, second = registry.default_candidates(y, is_root), registry.default_candidates(y, is_root)
        assert all(a is not b for a, b in zip(first, second))  # fresh instances per call
        assert all(not m.is_fitted and type(m) in registry.CONTINUOUS_CLASSES for m in first)
        for m in first:
            registry.check_position(m, "x", is_root)


# ---------------------------------------------------------------------------------------------
# discrete kinds and positions
# ---------------------------------------------------------------------------------------------
def test_discrete_class_of_each_kind():
    assert registry.discrete_class("binary") is BernoulliGLM
    assert registry.discrete_class("count") is PoissonGLM
    assert dict(registry.DISCRETE_KIND_CLASSES) == {"binary": BernoulliGLM, "count": PoissonGLM}


@pytest.mark.parametrize("kind", ["categorical", "Binary", "", None, 1])
def test_unknown_discrete_kind_raises_config_error_listing_the_kinds(kind):
    with pytest.raises(ConfigError, match="unknown discrete column kind") as err:
        registry.discrete_class(kind)
    _unknown_name_message_lists(err, ["binary", "count"])


def test_unhashable_discrete_kind_raises_config_error():
    with pytest.raises(ConfigError):
        registry.discrete_class(["binary"])


@pytest.mark.parametrize("cls", sorted(ALL_CLASSES, key=lambda c: c.__name__))
def test_is_discrete_is_root_mechanism_and_check_position(cls):
    mech = cls()
    discrete = cls in (BernoulliGLM, PoissonGLM, CategoricalGLM)
    assert registry.is_discrete(mech) is discrete
    assert registry.is_root_mechanism(mech) is (cls is RootDistribution)
    allowed = {True: discrete or cls is RootDistribution, False: discrete or cls in (LinearANM, SplineANM, GPANM)}
    for is_root, ok in allowed.items():
        if ok:
            registry.check_position(mech, "node x", is_root)
            continue
        with pytest.raises(ConfigError, match="'node x' has no parents" if is_root else "'node x' has parents") as err:
            registry.check_position(mech, "node x", is_root)
        assert ("RootDistribution" if is_root else "non-root") in str(err.value)


# ---------------------------------------------------------------------------------------------
# scm, selection and persistence read the registry
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", registry.FAMILY_NAMES)
def test_scm_family_strings_build_the_registry_mechanisms(family):
    graph, frame = _chain()
    scm = br.BayesianSCM(graph, mechanisms=family, num_draws=NUM_DRAWS).fit(frame, seed=0)
    for node in scm.nodes_:
        is_root = not scm.parents_[node]
        expected = registry.family_mechanism(family, is_root=is_root)
        mech = scm.mechanisms_[node]
        assert type(mech) is type(expected) and mech.get_params() == expected.get_params()
    # a mapping with a family string for one node uses the same table
    mixed = br.BayesianSCM(graph, mechanisms={"b": family, "a": "gaussian", "c": "gaussian"}, num_draws=NUM_DRAWS)
    assert type(mixed.fit(frame, seed=0).mechanisms_["b"]) is FAMILIES[family][1][0]


@pytest.mark.parametrize("spec", ["bogus", {"b": "auto_"}])
def test_scm_refuses_unknown_family_strings_naming_the_registry_families(spec):
    graph, frame = _chain()
    with pytest.raises(ConfigError) as err:
        br.BayesianSCM(graph, mechanisms=spec, num_draws=NUM_DRAWS).fit(frame, seed=0)
    _unknown_name_message_lists(err, registry.FAMILY_NAMES)


def test_scm_checks_positions_with_the_registry():
    graph, frame = _chain()
    with pytest.raises(ConfigError, match="'a' has no parents"):
        br.BayesianSCM(graph, mechanisms={"a": LinearANM("gaussian")}, num_draws=NUM_DRAWS).fit(frame, seed=0)
    with pytest.raises(ConfigError, match="'c' has parents"):
        br.BayesianSCM(graph, mechanisms={"c": RootDistribution("gaussian")}, num_draws=NUM_DRAWS).fit(frame, seed=0)


def test_scm_auto_on_few_rows_takes_the_first_default_candidate():
    graph, frame = _chain(n=30)  # fewer than 40 rows: no selection, the simplest candidate
    scm = br.BayesianSCM(graph, num_draws=NUM_DRAWS).fit(frame, seed=0)
    for node in scm.nodes_:
        first = registry.default_candidates(frame[node].to_numpy(), not scm.parents_[node])[0]
        assert scm.mechanisms_[node].describe() == first.describe()
    described = [scm.mechanisms_[n].describe() for n in scm.nodes_]
    assert described == ["root/gaussian", "linear/gaussian", "linear/gaussian"]
    assert len(scm.selection_) == 0


def test_selection_uses_the_registry_candidates_and_discrete_classes():
    assert selection.default_candidates is registry.default_candidates
    rng = np.random.default_rng(0)
    parents = rng.normal(size=(200, 1))
    binary = selection.discrete_mechanism("binary", (rng.random(200) < 0.4).astype(float), parents)
    assert type(binary) is registry.discrete_class("binary") and not binary.is_fitted
    counts = rng.poisson(np.exp(0.5 + 0.3 * parents[:, 0])).astype(float)
    count = selection.discrete_mechanism("count", counts, parents)
    assert type(count) is registry.discrete_class("count") and not count.is_fitted
    with pytest.raises(ConfigError, match="unknown discrete column kind"):
        selection.discrete_mechanism("categorical", counts, parents)


def _every_class_scm() -> br.BayesianSCM:
    """A root with one child per registered class (and the root itself a RootDistribution)."""
    rng = np.random.default_rng(0)
    n = 200
    r = rng.normal(size=n)
    frame = pd.DataFrame({
        "R": r,
        "L": 1 + 2 * r + rng.normal(size=n),
        "S": np.sin(2 * r) + 0.3 * rng.normal(size=n),
        "G": np.tanh(2 * r) + 0.3 * rng.normal(size=n),
        "B": (rng.random(n) < 1 / (1 + np.exp(-r))).astype(np.int64),
        "P": rng.poisson(np.exp(0.5 + 0.3 * r)),
        "C": rng.integers(0, 3, n),
        "M": np.tanh(r) + 0.3 * rng.normal(size=n),
    })
    graph = nx.DiGraph([("R", c) for c in "LSGBPCM"])
    mechanisms = {
        "R": RootDistribution("gaussian"), "L": LinearANM("bootstrap"), "S": SplineANM("gaussian"), "G": GPANM("bootstrap"),
        "B": BernoulliGLM(), "P": PoissonGLM(), "C": CategoricalGLM(),
        "M": FamilyMixture([LinearANM("gaussian"), SplineANM("bootstrap")], [0.6, 0.4]),
    }
    return br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=NUM_DRAWS).fit(frame, seed=0)


def _assert_same_state(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_state(x, y)
    else:
        assert a == b or (a != a and b != b)  # NaN == NaN


def test_persistence_restores_every_registered_class(tmp_path):
    assert persistence.MECHANISM_CLASSES is registry.MECHANISM_CLASSES
    scm = _every_class_scm()
    assert {type(m) for m in scm.mechanisms_.values()} == set(registry.MECHANISM_CLASSES.values())
    loaded = br.load(br.save(scm, tmp_path / "all.bayesrca"))
    for node, mech in scm.mechanisms_.items():
        back = loaded.mechanisms_[node]
        assert type(back) is type(mech) and back.describe() == mech.describe()
        if isinstance(mech, FamilyMixture):  # nested mechanisms: compare their params and states
            assert [repr(c) for c in back.get_params()["components"]] == [repr(c) for c in mech.components]
            for c, d in zip(mech.components_, back.components_):
                assert type(c) is type(d) and c.get_params() == d.get_params()
                _assert_same_state(c.fitted_state(), d.fitted_state())
            _assert_same_state({k: v for k, v in mech.fitted_state().items() if k != "components_"},
                               {k: v for k, v in back.fitted_state().items() if k != "components_"})
            continue
        assert back.get_params() == mech.get_params()
        _assert_same_state(mech.fitted_state(), back.fitted_state())
    pd.testing.assert_frame_equal(scm.sample(30, seed=3), loaded.sample(30, seed=3))


def test_persistence_only_accepts_the_classes_the_registry_names(tmp_path, monkeypatch):
    """Saving and loading both consult the registry at call time: it is the only gate."""
    graph, frame = _chain()

    class MyLinear(LinearANM):
        pass

    scm = br.BayesianSCM(graph, mechanisms={"a": "gaussian", "b": "spline", "c": MyLinear("gaussian")},
                         num_draws=NUM_DRAWS).fit(frame, seed=0)
    with pytest.raises(ConfigError, match="MyLinear"):
        br.save(scm, tmp_path / "m")
    extended = types.MappingProxyType({**registry.MECHANISM_CLASSES, "MyLinear": MyLinear})
    monkeypatch.setattr(persistence, "MECHANISM_CLASSES", extended)
    loaded = br.load(br.save(scm, tmp_path / "m"))
    assert type(loaded.mechanisms_["c"]) is MyLinear
    without_spline = types.MappingProxyType({k: v for k, v in extended.items() if k != "SplineANM"})
    monkeypatch.setattr(persistence, "MECHANISM_CLASSES", without_spline)
    with pytest.raises(DataError, match="SplineANM"):
        br.load(tmp_path / "m")


@pytest.mark.parametrize("family", registry.FAMILY_NAMES)
def test_only_the_monotone_families_constrain_the_coefficients_signs(family):
    mech = registry.family_mechanism(family, is_root=False)
    want = "positive" if family.endswith("_monotone") else None
    assert getattr(mech, "coef_sign", None) == want
    assert getattr(registry.family_mechanism(family, is_root=True), "coef_sign", None) is None
