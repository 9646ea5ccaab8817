"""Tests of bayesrca.counterfactual.propagate: node-by-node propagation over distinct inputs."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from bayesrca.counterfactual.decomposition import decompose_target
from bayesrca.counterfactual.handlers import KeepNoise
from bayesrca.counterfactual.montecarlo import MonteCarloTails
from bayesrca.counterfactual.propagate import distinct_rows, upstream_values
from bayesrca.mechanisms.mixture import has_additive_noise
from tests.counterfactual.scms import NODES, fit_handler_models, observed_rows


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=12))
def test_distinct_rows_index_the_first_of_each(rows):
    key = torch.tensor(rows)
    first, inverse = distinct_rows(key)
    assert torch.equal(key[first[inverse]], key)  # every row maps to a row equal to it
    assert len(first) == len({tuple(r) for r in rows})
    assert all(int(first[inverse[i]]) <= i for i in range(len(rows)))  # ... the first one


def test_distinct_rows_of_no_columns_is_one_row():
    first, inverse = distinct_rows(torch.zeros(5, 0, dtype=torch.bool))
    assert first.tolist() == [0] and inverse.tolist() == [0] * 5


@pytest.fixture(scope="module")
def models():
    return fit_handler_models()


def test_additive_node_evaluates_its_mechanism_once_per_parents_pattern(models, monkeypatch):
    """A = f(R) + N (spline): f runs on the 2 patterns of R, not on the 4 of (R, A)."""
    scm = models["lognormal"]
    mech = scm.mechanisms_["A"]
    assert has_additive_noise(mech)
    calls = []
    forward = type(mech).forward
    monkeypatch.setattr(type(mech), "forward", lambda self, noise, parents: calls.append(parents[0].shape) or forward(self, noise, parents))
    observed = observed_rows([[1.0, 0.5, 0.2]])
    parts = decompose_target(scm, "B", NODES, observed, propagate_nonlinear=True)
    torch.manual_seed(0)
    est = MonteCarloTails(scm, parts, observed["B"], base_score="median_cdf", num_mc_samples=64,
                          max_elements=2**25, conditional=True)
    calls.clear()
    upstream_values(scm, ["R", "A"], est.kept32, est.fresh32, torch.tensor(list(itertools.product([False, True], repeat=2))))
    assert [shape[0] for shape in calls] == [2]


@pytest.mark.parametrize("name", ["spline", "lognormal"])
def test_node_by_node_values_are_the_programs(models, name):
    """Each node run once per distinct input gives, bit for bit, the program run over every pattern."""
    scm = models[name]
    observed = observed_rows([[1.0, 0.5, 0.2], [2.5, -1.0, 3.0]])
    parts = decompose_target(scm, "B", NODES, observed, propagate_nonlinear=True)
    assert parts.upstream[:2] == ["R", "A"]  # A is nonlinear
    torch.manual_seed(0)
    est = MonteCarloTails(scm, parts, observed["B"], base_score="median_cdf", num_mc_samples=64,
                          max_elements=2**25, conditional=True)
    patterns = torch.tensor(list(itertools.product([False, True], repeat=len(parts.upstream))))
    fast = upstream_values(scm, parts.upstream, est.kept32, est.fresh32, patterns)
    masks = {p: patterns[:, j].reshape(-1, 1, 1, 1) for j, p in enumerate(parts.upstream)}
    slow = KeepNoise(est.kept32, masks)(poutine.condition(scm.program, data=est.fresh32))(parts.upstream)
    for node in parts.upstream:
        rows, row = fast[node]
        assert torch.equal(rows[row], slow[node].expand_as(rows[row]))
    assert len(fast["R"][0]) == 2  # a root: once per value of its own player


def test_upstream_given_in_any_order_is_run_parents_first(models):
    """The patterns' columns may list U in any order (an engine built with players not in
    topological order): the nodes still run parents first and give the same values."""
    scm = models["spline"]
    observed = observed_rows([[1.0, 0.5, 0.2]])
    parts = decompose_target(scm, "B", NODES, observed, propagate_nonlinear=True)
    torch.manual_seed(0)
    est = MonteCarloTails(scm, parts, observed["B"], base_score="median_cdf", num_mc_samples=32,
                          max_elements=2**25, conditional=True)
    patterns = torch.tensor(list(itertools.product([False, True], repeat=len(parts.upstream))))
    forward = upstream_values(scm, parts.upstream, est.kept32, est.fresh32, patterns)
    backward = upstream_values(scm, parts.upstream[::-1], est.kept32, est.fresh32, patterns.flip(-1))
    for node in parts.upstream:
        (a, ia), (b, ib) = forward[node], backward[node]
        assert torch.equal(a[ia], b[ib])
