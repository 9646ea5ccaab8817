"""The smoke run of benchmarks/graph_uncertainty.py: every condition, the removed edge recovered."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_graph_uncertainty_smoke_run(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    script = importlib.import_module("graph_uncertainty")
    assert script.main(["--smoke", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "graph_uncertainty_smoke.csv").set_index("condition")
    assert list(table.index) == list(script.CONDITIONS)
    assert table.loc["edge uncertain", "P(removed edge)"] > 0.9  # strong simulated edges
    assert table.loc["edge uncertain", "cause not a player"] == 0
    assert table.loc["true graph", "top-1"] >= table.loc["edge missing", "top-1"]
    trials = pd.read_csv(tmp_path / "graph_uncertainty_trials_smoke.csv")
    assert set(trials["condition"]) == set(script.CONDITIONS) and trials["rank"].ge(1).all()
