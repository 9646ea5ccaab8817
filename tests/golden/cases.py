"""The seeded runs whose numbers must not change through a refactor (the golden test).

``python -m tests.golden.cases --write`` records them in ``golden.npz``; the test
(``tests/integration/test_golden.py``) recomputes them and compares bit for bit.
Each case returns a flat ``{name: numpy array}``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.npz"


def _result_arrays(prefix: str, res) -> dict[str, np.ndarray]:
    out = {}
    for name in ("contributions", "it_scores", "mc_std_error", "scores", "total"):
        value = getattr(res, name, None)
        if value is not None and not callable(value):
            out[f"{prefix}.{name}"] = np.asarray(value, dtype=float)
    return out


def case_microservice():
    import bayesrca as br
    from bayesrca.datasets import load_microservice

    graph, normal, anomaly = load_microservice()
    normal = normal.iloc[:1500]
    out = {}
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=40).fit(normal, seed=0)
    res = br.attribute_anomalies(scm, "Website", anomaly, seed=1)
    out.update(_result_arrays("micro_gaussian", res))
    auto = br.BayesianSCM(graph, mechanisms="auto", num_draws=20).fit(normal, seed=0)
    res = br.attribute_anomalies(auto, "Website", anomaly, seed=1, num_mc_samples=300)
    out.update(_result_arrays("micro_auto", res))
    sc = br.outlier_scores(auto, normal.head(5), seed=2)
    out.update(_result_arrays("micro_scores", sc))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.bayesrca"
        br.save(scm, path)
        loaded = br.load(path)
    res = br.attribute_anomalies(loaded, "Website", anomaly, seed=1)
    out.update(_result_arrays("micro_loaded", res))
    return out


def _nonlinear_data(n: int, seed: int) -> tuple[nx.DiGraph, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = np.tanh(x0) + 0.5 * x0**2 + 0.3 * rng.normal(size=n)
    x2 = rng.exponential(size=n)
    x3 = 0.8 * x1 - 0.5 * x2 + 0.4 * rng.normal(size=n)
    frame = pd.DataFrame({"X0": x0, "X1": x1, "X2": x2, "X3": x3})
    graph = nx.DiGraph([("X0", "X1"), ("X1", "X3"), ("X2", "X3")])
    anomaly = pd.DataFrame({"X0": [3.0, 0.1], "X1": [np.tanh(3.0) + 4.5, 0.2], "X2": [0.5, 6.0], "X3": [5.0, -3.0]})
    return graph, frame, anomaly


def case_monte_carlo():
    import bayesrca as br

    graph, frame, anomaly = _nonlinear_data(400, 3)
    mechs = {"X0": "gaussian", "X1": br.SplineANM(noise="gaussian"), "X2": "auto", "X3": br.LinearANM(noise="gaussian")}
    scm = br.BayesianSCM(graph, mechanisms=mechs, num_draws=16).fit(frame, seed=4)
    out = {}
    for tail in ("mc", "plain"):
        res = br.attribute_anomalies(scm, "X3", anomaly, seed=5, num_mc_samples=400, tail=tail)
        out.update(_result_arrays(f"mc_{tail}", res))
    perm = br.attribute_anomalies(scm, "X3", anomaly, seed=6, num_mc_samples=200, shapley="permutation", num_permutations=5)
    out.update(_result_arrays("mc_perm", perm))
    budget = br.attribute_anomalies(scm, "X3", pd.concat([anomaly] * 3, ignore_index=True), seed=5,
                                    num_mc_samples=400, max_memory_mb=200)
    out.update(_result_arrays("mc_budget", budget))
    ici = br.intrinsic_causal_influence(scm, "X3", seed=7, num_outer=200, num_inner=5)
    out.update(_result_arrays("ici_mc", ici))
    return out


def case_change_and_influence():
    import bayesrca as br
    from bayesrca.datasets import load_supply_chain

    graph, old, new = load_supply_chain()
    out = {}
    res = br.distribution_change(graph, old.iloc[:400], new.iloc[:400], "received", mechanisms="gaussian",
                                 num_draws=30, seed=8)
    out.update(_result_arrays("change_mean", res))
    out["change_mean.prob_changed"] = np.asarray(res.summary()["prob_changed"], dtype=float)
    res = br.distribution_change(graph, old.iloc[:300], new.iloc[:300], "received", mechanisms="gaussian",
                                 num_draws=10, seed=9, summary="variance", num_mc_samples=300)
    out.update(_result_arrays("change_var", res))
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=30).fit(old.iloc[:400], seed=10)
    ici = br.intrinsic_causal_influence(scm, "received", seed=11)
    out.update(_result_arrays("ici_linear", ici))
    return out


def case_discrete():
    import bayesrca as br

    rng = np.random.default_rng(12)
    n = 300
    b = (rng.random(n) < 0.3).astype(int)
    c = rng.poisson(np.exp(0.5 + 1.0 * b))
    y = 0.7 * c + rng.normal(size=n)
    frame = pd.DataFrame({"B": b, "C": c, "Y": y})
    graph = nx.DiGraph([("B", "C"), ("C", "Y")])
    scm = br.BayesianSCM(graph, mechanisms={"Y": "gaussian"}, num_draws=12).fit(frame, seed=13)
    res = br.attribute_anomalies(scm, "Y", pd.DataFrame({"B": [1], "C": [9], "Y": [8.0]}), seed=14, num_mc_samples=300)
    return _result_arrays("discrete", res)


CASES = [case_microservice, case_monte_carlo, case_change_and_influence, case_discrete]


def compute() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for case in CASES:
        out.update(case())
    return out


if __name__ == "__main__":
    if "--write" in sys.argv:
        values = compute()
        np.savez_compressed(GOLDEN, **values)
        print(f"wrote {len(values)} arrays to {GOLDEN}")
