"""The PetShop loader: graph reversal, marginalisation, explicit NaN handling, issues, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.datasets import load_petshop, petshop_scenarios
from bayesrca.exceptions import BayesRCAWarning, ConfigError, DataError

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "data" / "petshop"
LOW = SHIPPED / "low_traffic"
ROOT_CAUSE = "PetSearch_AWS::ECS::Fargate"


def _load(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesRCAWarning)
        return load_petshop(*args, **kwargs)


def _metrics_frame(values: dict[str, list[float]], metrics=("latency", "availability")) -> pd.DataFrame:
    """A frame with PetShop's 3-level header (node, metric, statistic)."""
    columns, data = [], {}
    for node, series in values.items():
        for metric in metrics:
            columns.append((node, metric, "Average"))
            data[(node, metric, "Average")] = series
        columns.append((node, "requests", "Sum"))
        data[(node, "requests", "Sum")] = [0.0 if np.isnan(v) else 5.0 for v in series]
    frame = pd.DataFrame(data, columns=pd.MultiIndex.from_tuples(columns, names=["microservice", "metric", "statistic"]))
    frame.index = pd.Index(1_700_000_000 + 300 * np.arange(len(frame)), name="unix_timestamp")
    return frame


def _write_scenario(root: Path, *, with_normal: bool = True) -> Path:
    """A tiny scenario: site calls api, api calls db and cache; cache has no data."""
    scenario = root / "tiny"
    (scenario / "noissue").mkdir(parents=True)
    nodes = ["site", "api", "db", "cache"]
    adjacency = pd.DataFrame(0, index=nodes, columns=nodes)
    adjacency.loc["site", "api"] = adjacency.loc["api", "db"] = adjacency.loc["api", "cache"] = 1
    adjacency.to_csv(scenario / "graph.csv")
    rng = np.random.default_rng(0)
    db = rng.normal(1.0, 0.1, 50)
    db[[3, 7]] = np.nan
    normal = {"db": list(db), "api": list(rng.normal(2.0, 0.1, 50)), "site": list(rng.normal(3.0, 0.1, 50))}
    if with_normal:
        _metrics_frame(normal).to_csv(scenario / "noissue" / "metrics.csv")
    for split, index, metric in (("train", 0, "latency"), ("train", 1, "availability"), ("test", 0, "latency")):
        folder = scenario / split / f"issue_{index}"
        folder.mkdir(parents=True)
        window = {"db": [1.0, 1.1, np.nan, 1.0, 1.0], "api": [2.0] * 5, "site": [3.0, 3.0, 9.0, 3.0, 3.0]}
        _metrics_frame(window).to_csv(folder / "metrics.csv")
        meta = {"target": {"node": "site", "metric": metric, "agg": "Average", "timestamp": 0},
                "root_cause": {"node": "db", "metric": None}, "metadata": {"reproducibility": {"command": "x"}}}
        (folder / "target.json").write_text(json.dumps(meta))
    return scenario


def test_shipped_scenario_loads_with_reversed_graph_and_no_missing_values():
    scenario = _load(LOW, "latency", splits=("train",), nan_policy="neutral")
    calls = nx.from_pandas_adjacency(pd.read_csv(LOW / "graph.csv", index_col=0), create_using=nx.DiGraph)
    assert nx.is_directed_acyclic_graph(scenario.graph)
    assert scenario.marginalised == ("invalid_AWS::DynamoDB::Table",)
    for caller, callee in calls.edges:
        if caller in scenario.graph and callee in scenario.graph:
            assert scenario.graph.has_edge(callee, caller)
    assert list(scenario.normal.columns) == list(scenario.graph.nodes)
    assert not scenario.normal.isna().to_numpy().any()
    assert scenario.normal_filled.to_numpy().sum() > 0  # low_traffic has services without requests
    assert len(scenario.normal) == 589  # no row dropped
    assert [i.name for i in scenario.issues] == [f"train/issue_{k}" for k in range(4)]
    for issue in scenario.issues:
        assert issue.root_cause == ROOT_CAUSE and issue.target_node == "PetSite"
        assert len(issue.frame) == 5 and len(issue.anomaly) == 1
        assert not issue.frame.isna().to_numpy().any()


def test_availability_issues_are_the_other_half():
    scenario = _load(LOW, "availability", splits=("train",))
    assert [i.name for i in scenario.issues] == [f"train/issue_{k}" for k in range(4, 8)]
    assert all(i.target_metric == "availability" for i in scenario.issues)


def test_missing_policy_keeps_nan_where_the_file_has_nan():
    assert _load(LOW, "latency", splits=("train",)).nan_policy == "neutral"  # the default fills
    scenario = _load(LOW, "latency", splits=("train",), nan_policy="missing")
    assert scenario.nan_policy == "missing"
    from bayesrca.datasets._missing import MIN_OBSERVED_ROWS, too_sparse

    raw = scenario.normal.mask(scenario.normal_filled)
    sparse = too_sparse(raw, scenario.graph)
    # NaN stays NaN, except nodes too sparse to be fitted: they get the neutral value
    kept = [c for c in raw.columns if c not in sparse]
    pd.testing.assert_frame_equal(scenario.normal[kept].isna(), scenario.normal_filled[kept])
    assert (scenario.normal[sparse] == 0.0).where(scenario.normal_filled[sparse], True).all().all()
    assert scenario.normal[kept].isna().to_numpy().any() and 0 < len(sparse) < len(raw.columns)
    for node in kept:  # every node keeps enough complete rows for its mechanism
        parents = list(scenario.graph.predecessors(node))
        assert scenario.normal[[node, *parents]].notna().all(axis=1).sum() >= MIN_OBSERVED_ROWS
    for issue in scenario.issues:
        assert issue.frame.isna().to_numpy().sum() <= issue.filled.to_numpy().sum()
        assert issue.anomaly[issue.target_node].notna().all()


def test_neutral_mean_and_number_fills(tmp_path):
    root = _write_scenario(tmp_path)
    raw = pd.read_csv(root / "noissue" / "metrics.csv", header=[0, 1, 2], index_col=0)
    db = raw[("db", "latency", "Average")]
    neutral = _load(root, "latency", nan_policy="neutral")
    assert neutral.normal["db"].iloc[3] == 0.0 and neutral.normal_filled["db"].sum() == 2
    assert _load(root, "availability", nan_policy="neutral").normal["db"].iloc[7] == 100.0
    missing = _load(root, "latency", nan_policy="missing")
    assert np.isnan(missing.normal["db"].iloc[3]) and np.isnan(missing.issues[0].frame["db"].iloc[2])
    assert _load(root, "latency", nan_policy="mean").normal["db"].iloc[3] == pytest.approx(db.mean())
    assert _load(root, "latency", nan_policy=-1.0).normal["db"].iloc[7] == -1.0
    issue = neutral.issues[0]
    assert issue.filled["db"].iloc[2] and issue.frame["db"].iloc[2] == 0.0


def test_marginalises_unmeasured_nodes_and_reads_both_splits(tmp_path):
    root = _write_scenario(tmp_path)
    with pytest.warns(BayesRCAWarning, match="cache"):
        scenario = load_petshop(root, "latency")
    assert scenario.marginalised == ("cache",)
    assert set(scenario.graph.edges) == {("db", "api"), ("api", "site")}
    assert [i.name for i in scenario.issues] == ["train/issue_0", "test/issue_0"]
    assert petshop_scenarios(tmp_path) == ["tiny"]


def test_missing_normal_data_is_a_clear_error(tmp_path):
    root = _write_scenario(tmp_path, with_normal=False)
    with pytest.raises(DataError, match="no normal data"):
        load_petshop(root, "latency")
    with pytest.raises(DataError, match="graph.csv"):
        load_petshop(tmp_path, "latency")
    with pytest.raises(DataError, match="does not exist"):
        petshop_scenarios(tmp_path / "nowhere")


def test_bad_metric_and_policy_are_rejected(tmp_path):
    root = _write_scenario(tmp_path)
    with pytest.raises(DataError, match="available"):
        _load(root, "cpu")
    with pytest.raises(ConfigError, match="nan_policy"):
        _load(root, "latency", nan_policy="drop")
    with pytest.raises(ConfigError, match="nan_policy"):
        _load(root, "latency", nan_policy=float("nan"))


def test_end_to_end_latency_issue_ranks_the_injected_service_first():
    scenario = _load(LOW, "latency", splits=("train",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesRCAWarning)
        scm = br.BayesianSCM(scenario.graph, mechanisms="gaussian", num_draws=50).fit(scenario.normal, seed=0)
    issue = scenario.issues[0]
    res = br.attribute_anomalies(scm, target_node="PetSite", anomaly_samples=issue.anomaly, seed=0)
    table = res.summary()
    assert table["node"].iloc[0] == ROOT_CAUSE
    np.testing.assert_allclose(res.contributions.sum(axis=-1), res.it_scores, rtol=1e-3, atol=1e-3)


def test_too_sparse_fills_the_sparsest_of_a_node_and_its_parents():
    """A child whose parents are each observed often enough but rarely together: the sparsest parent is filled."""
    from bayesrca.datasets._missing import too_sparse

    graph = nx.DiGraph([("a", "c"), ("b", "c")])
    frame = pd.DataFrame({"a": [1.0] * 30 + [np.nan] * 30, "b": [np.nan] * 25 + [1.0] * 35, "c": [1.0] * 60})
    assert too_sparse(frame, graph, minimum=20) == ["a"]  # a (30 rows) before b (35): then b and c share 35
    assert too_sparse(frame, graph, minimum=5) == []  # a and b overlap in 5 rows
    assert too_sparse(frame.assign(c=np.nan), graph, minimum=20) == ["c", "a"]  # the node itself first, then a
