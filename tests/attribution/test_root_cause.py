"""root_cause_posterior: the single-fault posterior over the target and its ancestors."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

import bayesrca as br
from bayesrca.attribution.root_cause import log_fault_evidence
from bayesrca.exceptions import ConfigError, DataError

NODES = ["a", "b", "c", "d"]
COEF = {"b": 1.0, "c": 0.8, "d": 0.9}  # a -> b -> c -> d, unit noise


def _simulate(n: int, rng: np.random.Generator, fault: str | None = None, shift: float = 0.0) -> pd.DataFrame:
    noise = {k: rng.normal(size=n) for k in NODES}
    if fault is not None:
        noise[fault] = noise[fault] + shift
    a = noise["a"]
    b = COEF["b"] * a + noise["b"]
    c = COEF["c"] * b + noise["c"]
    d = COEF["d"] * c + noise["d"]
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d})


@pytest.fixture(scope="module")
def fitted():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d")])
    rng = np.random.default_rng(0)
    return br.BayesianSCM(graph, mechanisms="gaussian", num_draws=100).fit(_simulate(2000, rng), seed=0)


@settings(max_examples=30, deadline=None)
@given(total=st.floats(0.0, 60.0), rows=st.integers(1, 6))
def test_evidence_is_the_integral_over_the_faults_severity(total, rows):
    exact = quad(lambda xi: xi**rows * math.exp((1 - xi) * total), 0, 1, epsabs=0, epsrel=1e-11)[0]
    got = float(log_fault_evidence(torch.tensor([total], dtype=torch.float64), rows)[0])
    assert got == pytest.approx(math.log(exact), abs=1e-6)


def test_the_faulty_node_is_found_and_its_explained_descendants_are_not_blamed(fitted):
    rng = np.random.default_rng(1)
    row = _simulate(1, rng, fault="b", shift=6.0)
    res = br.root_cause_posterior(fitted, "d", row, seed=0)
    table = res.summary()
    assert list(table.columns) == ["anomaly", "node", "prob", "lower", "upper", "rank"]
    np.testing.assert_allclose(res.probabilities.sum(-1), 1.0)
    prob = table.set_index("node")["prob"]
    # robust (default): b first, more than 3 times any other; c and d moved by about 5 and 4.3 sd,
    # but their parents explain it, so they get no more than a quiet node's share of the doubt
    assert res.top() == "b" and prob["b"] > 0.5 and prob["b"] > 3 * prob.drop("b").max()
    single = br.root_cause_posterior(fitted, "d", row, seed=0, robust=False).probability().iloc[0]
    assert single["b"] > 0.95 and single[["c", "d"]].max() < 0.02


def test_a_window_pools_the_evidence_of_its_rows(fitted):
    rng = np.random.default_rng(2)
    rows = _simulate(4, rng, fault="c", shift=3.0)
    single = br.root_cause_posterior(fitted, "d", rows, seed=0).probability()["c"]
    pooled = br.root_cause_posterior(fitted, "d", rows, window=True, seed=0)
    assert pooled.units == ("window",) and pooled.method_info["num_rows"] == 4
    assert float(pooled.probability()["c"].iloc[0]) > float(single.max())


def test_normal_rows_leave_the_posterior_near_the_prior(fitted):
    rng = np.random.default_rng(3)
    res = br.root_cause_posterior(fitted, "d", _simulate(200, rng), seed=0)
    top = res.probability().max(axis=1)
    assert float(top.mean()) < 0.6  # 4 candidates: no confident answer without a fault
    assert float((top > 0.9).mean()) < 0.05


def _faults_from_the_model(rng: np.random.Generator, count: int) -> tuple[pd.DataFrame, list[str]]:
    """Single faults drawn from the fault model itself: a uniform node, severity xi ~ U(0, 1), the
    faulty noise's two-sided p-value u ~ Beta(xi, 1) (its IT score S ~ Exp(xi)), a random sign."""
    from scipy.stats import norm

    rows, truth = [], []
    for _ in range(count):
        node = NODES[rng.integers(len(NODES))]
        score = min(rng.exponential(1.0 / rng.uniform(0.0, 1.0)), 600.0)
        z = float(norm.isf(math.exp(-score) / 2)) * rng.choice([-1.0, 1.0])
        noise = {k: rng.normal() for k in NODES} | {node: z}
        a = noise["a"]
        b = COEF["b"] * a + noise["b"]
        c = COEF["c"] * b + noise["c"]
        rows.append({"a": a, "b": b, "c": c, "d": COEF["d"] * c + noise["d"]})
        truth.append(node)
    return pd.DataFrame(rows), truth


def test_the_posterior_is_calibrated_when_faults_follow_its_model(fitted):
    """Where the faults follow the fault model, P(top) matches how often the top node is the fault
    (overall and above 0.9); an evidence without the severity integral (e^S) is over-confident and
    fails the same check."""
    import bayesrca.attribution.root_cause as module

    frame, truth = _faults_from_the_model(np.random.default_rng(4), 400)

    def reliability(robust=False):
        prob = br.root_cause_posterior(fitted, "d", frame, seed=0, robust=robust).probability()
        top = prob.max(axis=1).to_numpy()
        right = (prob.idxmax(axis=1).to_numpy() == np.array(truth)).astype(float)
        return top, right

    top, right = reliability()
    se = math.sqrt(np.mean(top * (1 - top)) / len(top))
    assert abs(top.mean() - right.mean()) < 3 * se + 0.01
    sure = top > 0.9
    assert sure.sum() > 50 and right[sure].mean() > 0.9 - 0.02

    original = module.log_fault_evidence
    try:
        module.log_fault_evidence = lambda total, rows: total.to(torch.float64)  # no Occam factor
        over, right_over = reliability()
    finally:
        module.log_fault_evidence = original
    assert over.mean() - right_over.mean() > 3 * se + 0.01
    # the robust model allows misfits the simulation does not have: it may be less sure, never more
    cautious, right_cautious = reliability(robust=True)
    assert np.array_equal(right_cautious, right) or abs(right_cautious.mean() - right.mean()) < 0.05
    assert cautious.mean() <= right_cautious.mean() + 3 * se + 0.01


def test_two_anomalous_nodes_share_the_probability_under_the_robust_model(fitted):
    """A fault at b and an unexplained deviation at d (a misfit the model cannot tell from a
    fault): the plain single-fault model is certain of the larger, the robust one splits."""
    row = _simulate(1, np.random.default_rng(10), fault="b", shift=6.0)
    row["d"] += 8.0
    single = br.root_cause_posterior(fitted, "d", row, seed=0, robust=False).probability().iloc[0]
    robust = br.root_cause_posterior(fitted, "d", row, seed=0).probability().iloc[0]
    assert single.max() > 0.99
    assert robust.max() < 0.9 and robust[["b", "d"]].min() > 0.3


def test_prior_weights_move_the_posterior_and_are_checked(fitted):
    row = _simulate(1, np.random.default_rng(5), fault="a", shift=4.0)
    res = br.root_cause_posterior(fitted, "d", row, prior={"b": 1.0, "c": 1.0, "d": 1.0}, seed=0)
    assert float(res.probability()["a"].iloc[0]) == 0.0
    with pytest.raises(ConfigError, match="not the target or its ancestors"):
        br.root_cause_posterior(fitted, "c", row, prior={"d": 1.0})
    with pytest.raises(ConfigError, match="not all 0"):
        br.root_cause_posterior(fitted, "d", row, prior={"a": 0.0})


def test_bad_rows_are_refused(fitted):
    row = _simulate(2, np.random.default_rng(6))
    with pytest.raises(DataError):
        br.root_cause_posterior(fitted, "d", row.assign(b=[np.nan, 1.0]))
    with pytest.raises(DataError, match="duplicate"):
        br.root_cause_posterior(fitted, "d", row.set_axis([0, 0]))


def test_other_nodes_are_ignored(fitted):
    """Only the target's ancestors are candidates; a node downstream of the target is not needed."""
    row = _simulate(1, np.random.default_rng(7), fault="a", shift=5.0)
    res = br.root_cause_posterior(fitted, "b", row[["a", "b"]], seed=0)
    assert res.nodes == ("a", "b") and res.top() == "a"


def test_the_result_converts_like_every_posterior_result(fitted):
    rows = _simulate(3, np.random.default_rng(8), fault="b", shift=5.0)
    res = br.root_cause_posterior(fitted, "d", rows, seed=0)
    long = res.to_dataframe()
    assert list(long.columns) == ["draw", "anomaly", "node", "prob_root_cause"] and len(long) == 100 * 3 * 4
    idata = res.to_inference_data()
    assert "prob_root_cause" in idata.posterior
    table = res.summary()
    assert table.groupby("anomaly")["prob"].sum().round(6).eq(1.0).all()
    assert table.groupby("anomaly")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4]).all()
    assert "RootCauseResult: 3 anomalies, 4 candidates, 100 draws" in repr(res)


def test_the_robust_posterior_is_computed_in_chunks_of_units(fitted, monkeypatch):
    """Many rows: chunks over the units give the numbers of one pass (memory stays bounded)."""
    import bayesrca.attribution.root_cause as module

    rows = _simulate(7, np.random.default_rng(11), fault="c", shift=4.0)
    whole = br.root_cause_posterior(fitted, "d", rows, seed=0)
    monkeypatch.setattr(module, "_MAX_ELEMENTS", 100 * 4 * len(module._EPS) * 2)  # 2 units per chunk
    chunked = br.root_cause_posterior(fitted, "d", rows, seed=0)
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, rtol=1e-12, atol=1e-15)
    assert chunked.method_info["misfit_share"] == pytest.approx(whole.method_info["misfit_share"])
