"""Fuzzing the public entry points with hypothesis: bad input gives our exceptions, never a crash
of another kind, and never a half-fitted model. The number of cases tried is printed at the end."""

from __future__ import annotations

import string
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesrca as br
from bayesrca.cli import read_graph
from bayesrca.exceptions import BayesRCAError, NotFittedError

FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
names = st.text(alphabet=string.ascii_letters + " _-éλ漢", min_size=1, max_size=6)
cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-5, 5),
    st.sampled_from(["x", "", "1.5", None, True]),
)


@st.composite
def graphs_and_frames(draw):
    nodes = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    edges = draw(st.lists(st.tuples(st.sampled_from(nodes), st.sampled_from(nodes)), max_size=5))
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)  # may contain cycles and self-loops
    columns = draw(st.lists(st.sampled_from(nodes + ["extra"]), min_size=0, max_size=6))  # missing/extra/duplicates
    num_rows = draw(st.integers(0, 12))
    if draw(st.booleans()):  # mostly clean numeric data, sometimes messy
        data = {c: np.random.default_rng(len(c)).normal(size=num_rows) for c in nodes}
        frame = pd.DataFrame(data)
    else:
        frame = pd.DataFrame([[draw(cells) for _ in columns] for _ in range(num_rows)], columns=columns)
    return graph, frame


@FAST
@given(case=graphs_and_frames())
def test_fit_on_arbitrary_input_raises_ours_or_fits(case, fuzz_counter):
    fuzz_counter["BayesianSCM.fit"] += 1
    graph, frame = case
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scm.fit(frame, seed=0)
        except BayesRCAError:
            with pytest.raises(NotFittedError):  # nothing half-fitted is left behind
                scm.check_fitted()
            return
    scm.check_fitted()


@FAST
@given(payload=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".json", ".gml", ".txt", ".xyz"]))
def test_graph_reader_on_arbitrary_bytes(tmp_path_factory, payload, suffix, fuzz_counter):
    fuzz_counter["cli.read_graph"] += 1
    path = tmp_path_factory.mktemp("g") / f"graph{suffix}"
    path.write_bytes(payload)
    try:
        graph = read_graph(path)
    except BayesRCAError:
        return
    assert isinstance(graph, nx.DiGraph)


@FAST
@given(payload=st.binary(max_size=400))
def test_model_loader_on_arbitrary_bytes(tmp_path_factory, payload, fuzz_counter):
    fuzz_counter["bayesrca.load"] += 1
    path = tmp_path_factory.mktemp("m") / "model.bayesrca"
    path.write_bytes(payload)
    with pytest.raises(BayesRCAError):
        br.load(path)


@FAST
@given(ci_prob=st.floats(allow_nan=True, allow_infinity=True), num_draws=st.integers(-3, 3), target=st.sampled_from(["c", "nowhere", "a"]))
def test_attribute_arguments(ci_prob, num_draws, target, fuzz_counter):
    fuzz_counter["attribute/summary arguments"] += 1
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50)})
    frame["c"] = frame["a"] + rng.normal(size=50)
    graph = nx.DiGraph([("a", "c")])
    try:
        scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=num_draws).fit(frame, seed=0)
        res = br.attribute_anomalies(scm, target, frame.head(1), seed=0)
        res.summary(ci_prob=ci_prob)
    except BayesRCAError:
        return
