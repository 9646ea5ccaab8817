"""Fuzzing the public entry points with hypothesis: bad input gives our exceptions, never a crash
of another kind, and never a half-fitted model. The number of cases tried is printed at the end."""

from __future__ import annotations

import gzip
import json
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
from bayesrca.datasets import load_nezha, load_petshop
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


# ---------------------------------------------------------------------------------------------
# PetShop loader on damaged scenario folders
# ---------------------------------------------------------------------------------------------
def _petshop_metrics(values: dict, rows: int) -> pd.DataFrame:
    columns = pd.MultiIndex.from_tuples(
        [(node, metric, stat) for node in values for metric, stat in (("latency", "Average"), ("availability", "Average"),
                                                                        ("requests", "Sum"))],
        names=["microservice", "metric", "statistic"],
    )
    data = [[values[node][i] if metric != "requests" else 5.0 for node, metric, _ in columns] for i in range(rows)]
    return pd.DataFrame(data, columns=columns, index=pd.Index(1_700_000_000 + 300 * np.arange(rows), name="unix_timestamp"))


def _write_petshop(root) -> None:
    """A valid tiny scenario: site calls api, api calls db and cache (cache has no data)."""
    nodes = ["site", "api", "db", "cache"]
    adjacency = pd.DataFrame(0, index=nodes, columns=nodes)
    adjacency.loc["site", "api"] = adjacency.loc["api", "db"] = adjacency.loc["api", "cache"] = 1
    (root / "noissue").mkdir(parents=True)
    adjacency.to_csv(root / "graph.csv")
    rng = np.random.default_rng(0)
    normal = {n: list(rng.normal(1.0, 0.1, 30)) for n in ("site", "api", "db")}
    normal["db"][3] = np.nan
    _petshop_metrics(normal, 30).to_csv(root / "noissue" / "metrics.csv")
    for split, index in (("train", 0), ("test", 0)):
        folder = root / split / f"issue_{index}"
        folder.mkdir(parents=True)
        _petshop_metrics({n: [1.0, 1.1, 2.0, 1.0, 1.0] for n in ("site", "api", "db")}, 5).to_csv(folder / "metrics.csv")
        meta = {"target": {"node": "site", "metric": "latency", "agg": "Average"}, "root_cause": {"node": "db"}}
        (folder / "target.json").write_text(json.dumps(meta))


PETSHOP_FILES = ["graph.csv", "noissue/metrics.csv", "train/issue_0/metrics.csv", "train/issue_0/target.json",
                 "test/issue_0/metrics.csv"]
DAMAGES = ["delete", "empty", "random_bytes", "truncate", "gzip_truncated", "gzip_ok", "garble_cell", "drop_header_row",
           "rename_columns", "json_shape", "duplicate_column"]


def _damage(path, how: str, data) -> None:
    text = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random_bytes":
        path.write_bytes(data.draw(st.binary(max_size=200)))
    elif how == "truncate":
        path.write_bytes(text[: data.draw(st.integers(0, max(len(text) - 1, 0)))])
    elif how in ("gzip_truncated", "gzip_ok"):
        packed = gzip.compress(text)
        if how == "gzip_truncated":
            packed = packed[: data.draw(st.integers(0, len(packed) - 1))]
        path.unlink()
        path.with_name(path.name + ".gz").write_bytes(packed)
    elif how == "garble_cell":
        lines = text.decode(errors="replace").splitlines()
        i = data.draw(st.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        j = data.draw(st.integers(0, len(cells) - 1))
        cells[j] = data.draw(st.sampled_from(["x", "", "nan", "1e999", '"', "-", "漢", ",,"]))
        lines[i] = ",".join(cells)
        path.write_text("\n".join(lines))
    elif how == "drop_header_row":
        lines = text.decode(errors="replace").splitlines()
        del lines[data.draw(st.integers(0, min(2, len(lines) - 1)))]
        path.write_text("\n".join(lines))
    elif how == "rename_columns":
        path.write_text(text.decode(errors="replace").replace("latency", data.draw(st.sampled_from(["Latency", "", "availability"]))))
    elif how == "json_shape":
        path.write_text(json.dumps(data.draw(st.sampled_from(
            [[], {}, {"target": 3}, {"target": {"node": "site"}}, {"target": {"node": 1, "metric": "latency"},
                                                                  "root_cause": {"node": "db"}}, "x", None]))))
    else:  # duplicate_column
        lines = text.decode(errors="replace").splitlines()
        path.write_text("\n".join(line + "," + line.split(",")[-1] for line in lines))


@FAST
@given(data=st.data())
def test_petshop_loader_on_damaged_folders(tmp_path_factory, data, fuzz_counter):
    fuzz_counter["datasets.load_petshop"] += 1
    root = tmp_path_factory.mktemp("petshop") / "tiny"
    _write_petshop(root)
    for _ in range(data.draw(st.integers(1, 2))):
        name = data.draw(st.sampled_from(PETSHOP_FILES))
        if (root / name).is_file():
            _damage(root / name, data.draw(st.sampled_from(DAMAGES)), data)
    metric = data.draw(st.sampled_from(["latency", "availability", "requests", "bogus"]))
    nan_policy = data.draw(st.sampled_from(["neutral", "mean", 1.0, "bad"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scenario = load_petshop(root, metric, "Sum" if metric == "requests" else "Average", nan_policy=nan_policy)
        except BayesRCAError as err:
            assert str(err)  # our exception, with a message
            return
    assert not scenario.normal.isna().to_numpy().any()
    assert list(scenario.normal.columns) == list(scenario.graph.nodes)


# ---------------------------------------------------------------------------------------------
# Nezha loader on damaged system folders
# ---------------------------------------------------------------------------------------------
def _nezha_table(values: dict, start: str) -> pd.DataFrame:
    columns = pd.MultiIndex.from_tuples([(n, m) for n in values for m in ("latency", "cpu")], names=["node", "metric"])
    rows = len(next(iter(values.values())))
    data = [[values[n][i] if m == "latency" else 1.0 for n, m in columns] for i in range(rows)]
    index = pd.Index(pd.date_range(start, periods=rows, freq="min").strftime("%Y-%m-%d %H:%M"), name="minute_utc")
    return pd.DataFrame(data, columns=columns, index=index)


def _write_nezha(root) -> None:
    """A valid tiny system: db -> api -> site, one case."""
    (root / "cases").mkdir(parents=True)
    (root / "graph.csv").write_text("cause,effect,calls_observed\ndb,api,1\napi,site,2\n")
    rng = np.random.default_rng(0)
    normal = {n: list(rng.normal(1.0, 0.1, 30)) for n in ("site", "api", "db")}
    normal["db"][3] = np.nan
    _nezha_table(normal, "2024-01-01 00:00").to_csv(root / "normal.csv")
    _nezha_table({n: [1.0, 1.1, 2.0, 1.0, np.nan] for n in ("site", "api", "db")}, "2024-01-02 00:00").to_csv(
        root / "cases" / "c1.csv")
    (root / "cases.csv").write_text("case_id,fault_type,root_cause,target,target_metric\nc1,cpu,db,site,latency\n")


NEZHA_FILES = ["graph.csv", "normal.csv", "cases.csv", "cases/c1.csv"]
NEZHA_DAMAGES = [d for d in DAMAGES if d not in ("gzip_ok", "gzip_truncated", "json_shape")]


@FAST
@given(data=st.data())
def test_nezha_loader_on_damaged_folders(tmp_path_factory, data, fuzz_counter):
    fuzz_counter["datasets.load_nezha"] += 1
    root = tmp_path_factory.mktemp("nezha") / "tiny"
    _write_nezha(root)
    for _ in range(data.draw(st.integers(1, 2))):
        name = data.draw(st.sampled_from(NEZHA_FILES))
        if (root / name).is_file() and (root / name).stat().st_size:  # a second damage needs something to damage
            _damage(root / name, data.draw(st.sampled_from(NEZHA_DAMAGES)), data)
    metric = data.draw(st.sampled_from(["latency", "cpu", "bogus"]))
    nan_policy = data.draw(st.sampled_from(["median", "mean", 1.0, "bad"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            system = load_nezha(root, metric, nan_policy=nan_policy)
        except BayesRCAError as err:
            assert str(err)  # our exception, with a message
            return
    assert not system.normal.isna().to_numpy().any()
    assert set(system.normal.columns) == set(system.graph.nodes)
    for case in system.cases:
        assert not case.frame.isna().to_numpy().any() and 0 <= case.row < len(case.frame)
