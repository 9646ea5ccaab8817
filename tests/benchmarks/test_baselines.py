"""The shared baselines of the real-data benchmarks (``benchmarks/harness/baselines.py``) and the Nezha script."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def baselines():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("harness.baselines")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _table(baselines, scores: dict) -> pd.DataFrame:
    return baselines.ranking(scores.items())


def test_topk_credit_counts_ties_fractionally(baselines):
    table = _table(baselines, {"a": 3.0, "b": 2.0, "c": 2.0, "d": 2.0, "e": np.nan})
    assert baselines.topk_credit(table, "median", "a", 1) == 1.0
    assert baselines.topk_credit(table, "median", "b", 1) == 0.0
    assert baselines.topk_credit(table, "median", "b", 3) == pytest.approx(2 / 3)
    assert baselines.topk_credit(table, "median", "e", 3) == 0.0
    assert baselines.topk_credit(table, "median", "zz", 3) == 0.0
    assert list(table["node"][:2]) == ["a", "b"]


def test_quantile_it_score_matches_dowhys_rescaled_median_cdf_scorer(baselines):
    gcm = pytest.importorskip("dowhy.gcm")
    rng = np.random.default_rng(1)
    normal = pd.DataFrame({"a": rng.normal(size=60).round(1), "b": rng.exponential(size=60)})
    normal.loc[[2, 5], "b"] = np.nan
    score = baselines.quantile_it_scorer(normal)
    for x in (-3.0, 0.0, 0.1, 0.5, 2.0, 10.0):
        ours, flags = score(pd.Series({"a": x, "b": x}))
        assert not flags.any()
        for node in ("a", "b"):
            ref = gcm.RescaledMedianCDFQuantileScorer()
            ref.fit(normal[node].dropna().to_numpy())
            assert ours[node] == pytest.approx(float(ref.score(np.array([x]))[0]))
    assert score(pd.Series({"a": np.nan, "b": 0.0}))[0]["a"] == 0.0


def test_smooth_traversal_ranks_by_the_score_gap_to_the_parents(baselines):
    # a -> b -> c (target), d -> c; b is far more anomalous than its parent a
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("d", "c")])
    scores = pd.Series({"a": 1.0, "b": 6.0, "c": 6.5, "d": 2.0})
    table = baselines.smooth_traversal(graph, "c", scores)
    gaps = table.set_index("node")["median"]
    assert gaps.to_dict() == {"b": 5.0, "d": 2.0, "a": 1.0, "c": 0.5}
    assert table["node"].iloc[0] == "b"
    # a child less anomalous than a parent has gap 0, never negative
    low = baselines.smooth_traversal(graph, "c", pd.Series({"a": 1.0, "b": 6.0, "c": 3.0, "d": 2.0}))
    assert low.set_index("node")["median"]["c"] == 0.0


def test_anomaly_traversal_keeps_anomalous_roots_of_anomalous_paths(baselines):
    graph = nx.DiGraph([("a", "b"), ("b", "t"), ("c", "t"), ("e", "a")])
    scores = pd.Series({"a": 9.0, "b": 7.0, "c": 6.0, "t": 8.0, "e": 1.0})
    flags = scores > 5
    table = baselines.anomaly_traversal(graph, "t", scores, flags)
    assert table.set_index("node")["median"].to_dict() == {"a": 24.0, "c": 14.0}
    quiet = baselines.anomaly_traversal(graph, "t", scores, flags.where(flags.index != "t", False))
    assert quiet.empty


def test_score_ordering_and_robust_z_scorer_take_the_window_maximum(baselines):
    normal = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan], "y": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]})
    scorer = baselines.robust_z_scorer(normal, threshold=2.0)
    window = pd.DataFrame({"x": [3.0, 3.0 + 1.4826 * 4, 3.0], "y": [0.5, 0.5, 3.5]})
    scores, flags = scorer(window.iloc[1])
    assert scores["x"] == pytest.approx(4.0) and flags["x"] and not flags["y"]
    table = baselines.score_ordering(scorer, window, ["x", "y"])
    best = table.set_index("node")["median"]
    assert best["x"] == pytest.approx(4.0) and best["y"] == pytest.approx(3.0 / (1.4826 * 0.5))
    assert table["node"].iloc[0] == "y"


def test_mad_scorer_keeps_petshops_conventions(baselines):
    normal = pd.DataFrame({"m": [1.0, 2.0, 3.0, 4.0, 5.0], "zero": [1.0, 1.0, 1.0, 1.0, 2.0], "const": [4.0] * 5})
    scores, flags = baselines.mad_scorer(normal)(pd.Series({"m": 9.0, "zero": 1.5, "const": 4.5}))
    assert scores["m"] == pytest.approx(6.0) and flags["m"]  # |9 - 3| / 1, no consistency constant
    assert np.isinf(scores["zero"]) and flags["zero"]
    assert scores["const"] == pytest.approx(0.5) and flags["const"]


def test_nezha_script_runs_the_baselines_on_the_shipped_subset(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    nezha = importlib.import_module("nezha")
    code = nezha.main(["--smoke", "--out", str(tmp_path), "--methods", "score", "traversal", "smooth_traversal"])
    assert code == 0
    frame = pd.read_csv(tmp_path / "nezha_smoke.csv")
    assert set(frame["method"]) == {"score", "traversal", "smooth_traversal"}
    assert len(frame) == 3 * 5 and frame[["top1", "top3"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (frame["top3"] >= frame["top1"]).all()
    text = (tmp_path / "nezha_smoke.md").read_text()
    assert "## online_boutique (5 cases)" in text and "top-1 [95 % CI]" in text
