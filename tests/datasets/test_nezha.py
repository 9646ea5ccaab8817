"""The Nezha loader: layout, explicit NaN handling with masks, the analysed row, robust z, damaged folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesrca.datasets import load_nezha, nezha_systems, robust_z
from bayesrca.exceptions import BayesRCAWarning, ConfigError, DataError

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "data" / "nezha"
OB = SHIPPED / "online_boutique"
FULL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nezha"
FULL = FULL if FULL.is_dir() else Path("/work/shared/data/nezha")


def _wide(values: dict[str, list[float]], start: str, extra_metric: bool = True) -> pd.DataFrame:
    """A table with the Nezha 2-row header (node, metric) and a minute_utc index."""
    data = {}
    for node, series in values.items():
        data[(node, "latency")] = series
        if extra_metric:
            data[(node, "cpu")] = [1.0] * len(series)
    frame = pd.DataFrame(data)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["node", "metric"])
    frame.index = pd.Index(pd.date_range(start, periods=len(frame), freq="min").strftime("%Y-%m-%d %H:%M"),
                           name="minute_utc")
    return frame


def _write_system(root: Path) -> Path:
    """db -> api -> site; db has NaNs (no requests) in the normal data and in the window."""
    system = root / "tiny"
    (system / "cases").mkdir(parents=True)
    pd.DataFrame({"cause": ["db", "api"], "effect": ["api", "site"], "calls_observed": [3, 4]}).to_csv(
        system / "graph.csv", index=False)
    rng = np.random.default_rng(0)
    db = rng.normal(1.0, 0.1, 40)
    db[[3, 7, 11]] = np.nan
    normal = {"db": list(db), "api": list(rng.normal(2.0, 0.1, 40)), "site": list(rng.normal(3.0, 0.1, 40))}
    _wide(normal, "2024-01-01 00:00").to_csv(system / "normal.csv")
    window = {"db": [1.0, np.nan, 5.0, 1.0], "api": [2.0, 2.0, 6.0, 2.0], "site": [3.0, 3.2, 9.0, 3.1]}
    _wide(window, "2024-01-02 00:00").to_csv(system / "cases" / "c1.csv")
    pd.DataFrame({"case_id": ["c1"], "system": ["tiny"], "fault_type": ["cpu"], "root_cause": ["db"],
                  "target": ["site"], "target_metric": ["latency"]}).to_csv(system / "cases.csv", index=False)
    return system


def test_shipped_subset_loads_with_graph_cases_and_no_missing_values():
    system = load_nezha(OB, nan_policy="median")
    g = pd.read_csv(OB / "graph.csv")
    assert set(system.graph.edges) == set(zip(g.cause, g.effect))
    assert system.graph.number_of_nodes() == 10 and system.graph.number_of_edges() == 14
    assert nx.is_directed_acyclic_graph(system.graph)
    assert set(system.normal.columns) == set(system.graph.nodes)
    assert len(system.normal) == 200 and not system.normal.isna().to_numpy().any()
    assert system.normal_metrics.shape[0] == 200 and "cpu" in system.normal_metrics.columns.get_level_values("metric")
    assert [c.case_id for c in system.cases] == list(pd.read_csv(OB / "cases.csv").case_id)
    for case in system.cases:
        assert case.target == "frontend" and case.root_cause in system.graph
        assert len(case.frame) == 5 and not case.frame.isna().to_numpy().any()
        assert list(case.frame.columns) == list(system.normal.columns)
        z = robust_z(case.frame[["frontend"]], system.normal[["frontend"]])["frontend"]
        assert case.row == int(np.argmax(z.to_numpy()))
        pd.testing.assert_frame_equal(case.anomaly, case.frame.iloc[[case.row]])
        assert case.info["case_id"] == case.case_id
    assert nezha_systems(SHIPPED) == ["online_boutique"]


def test_nan_policies_fill_from_the_observed_normal_values_and_keep_masks(tmp_path):
    root = _write_system(tmp_path)
    raw = pd.read_csv(root / "normal.csv", header=[0, 1], index_col=0)[("db", "latency")]
    median = load_nezha(root, nan_policy="median")
    assert len(median.normal) == 40  # no row dropped
    assert median.normal_filled["db"].sum() == 3 and not median.normal_filled[["api", "site"]].to_numpy().any()
    assert median.normal["db"].iloc[3] == pytest.approx(raw.median())
    assert median.fill_values["db"] == pytest.approx(raw.median())
    case = median.cases[0]
    assert case.filled["db"].tolist() == [False, True, False, False]
    assert case.frame["db"].iloc[1] == pytest.approx(raw.median())
    assert np.isnan(case.metrics[("db", "latency")].iloc[1])  # the raw window keeps its NaN
    assert load_nezha(root, nan_policy="mean").normal["db"].iloc[7] == pytest.approx(raw.mean())
    assert load_nezha(root, nan_policy=-1.0).cases[0].frame["db"].iloc[1] == -1.0
    assert case.row == 2 and case.anomaly["site"].iloc[0] == 9.0
    assert load_nezha(root).nan_policy == "median"  # the default fills
    missing = load_nezha(root, nan_policy="missing")
    assert missing.nan_policy == "missing" and np.isnan(missing.fill_values["db"])
    pd.testing.assert_frame_equal(missing.normal.isna(), missing.normal_filled)
    assert np.isnan(missing.cases[0].frame["db"].iloc[1]) and missing.cases[0].frame["db"].iloc[2] == 5.0


def test_bad_policy_metric_and_case_ids_are_rejected(tmp_path):
    root = _write_system(tmp_path)
    for bad in ("drop", float("nan"), True):
        with pytest.raises(ConfigError, match="nan_policy"):
            load_nezha(root, nan_policy=bad)
    with pytest.raises(ConfigError, match="nope"):
        load_nezha(root, case_ids=["nope"])
    assert load_nezha(root, case_ids=[]).cases == []
    with pytest.raises(DataError, match="no 'rps' column"):
        load_nezha(root, metric="rps")
    with pytest.warns(BayesRCAWarning, match="target metric other than 'cpu'"):
        assert load_nezha(root, metric="cpu").normal["db"].eq(1.0).all()


@pytest.mark.parametrize("name", ["graph.csv", "normal.csv", "cases.csv", "cases/c1.csv"])
def test_a_missing_file_is_named(tmp_path, name):
    root = _write_system(tmp_path)
    (root / name).unlink()
    with pytest.raises(DataError, match=Path(name).name):
        load_nezha(root)


def _damage(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("graph.csv", "from,to\ndb,api\n", "cause,effect"),
        ("graph.csv", "cause,effect\ndb,api\napi,db\n", "cycle"),
        ("graph.csv", "cause,effect\n", "no edges"),
        ("normal.csv", "node,db,api,site\n1,2,3,4\n", "header"),
        ("normal.csv", "a,db,api,site\nb,latency,latency,latency\nminute_utc,,,\n2024-01-01 00:00,1,2,3\n",
         "node and metric"),
        ("normal.csv", "node,db,api,site\nmetric,latency,latency,latency\nminute_utc,,,\n2024-01-01 00:00,x,2,3\n",
         "non-numeric"),
        ("normal.csv", "node,db,api,site\nmetric,latency,latency,latency\nminute_utc,,,\nyesterday,1,2,3\n",
         "normal.csv"),
        ("normal.csv", "node,db,api\nmetric,latency,latency\nminute_utc,,\n2024-01-01 00:00,1,2\n", "site"),
        ("cases.csv", "case_id,root_cause,target\nc1,db,site\n", "fault_type"),
        ("cases.csv", "case_id,fault_type,root_cause,target\nc1,cpu,cache,site\n", "cache"),
        ("cases.csv", "case_id,fault_type,root_cause,target\nc1,cpu,db,site\nc1,cpu,db,site\n", "duplicate"),
        ("cases/c1.csv", "node,db,api,site\nmetric,latency,latency,latency\nminute_utc,,,\n", "no rows"),
        ("cases/c1.csv", "\x00\x01garbage", "c1.csv"),
    ],
)
def test_damaged_files_raise_data_error_naming_the_file(tmp_path, name, text, match):
    root = _write_system(tmp_path)
    _damage(root, name, text)
    with pytest.raises(DataError, match=match) as info:
        load_nezha(root)
    assert Path(name).name in str(info.value) or match in str(info.value)


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="graph.csv"):
        load_nezha(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        nezha_systems(tmp_path / "nowhere")


def test_robust_z_uses_mad_then_std_then_flags_constant_columns():
    reference = pd.DataFrame({
        "mad": [1.0, 2.0, 3.0, 4.0, 5.0],
        "std": [0.0, 0.0, 0.0, 0.0, 10.0],  # MAD 0, standard deviation 4
        "flat": [2.0] * 5,
        "gaps": [1.0, np.nan, 3.0, np.nan, 5.0],
    })
    values = pd.DataFrame({"mad": [3.0, 3.0 + 1.4826 * 4], "std": [8.0, -4.0], "flat": [2.0, 1.0], "gaps": [np.nan, 7.0]})
    z = robust_z(values, reference)
    np.testing.assert_allclose(z["mad"], [0.0, 4.0])
    np.testing.assert_allclose(z["std"], [2.0, -1.0])
    assert z["flat"].tolist() == [0.0, -np.inf]
    assert np.isnan(z["gaps"].iloc[0]) and z["gaps"].iloc[1] == pytest.approx(4.0 / (1.4826 * 2.0))


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.integers(-1000, 1000).map(lambda i: i / 10), min_size=3, max_size=30),
    x=st.integers(-10_000, 10_000).map(lambda i: i / 10),
    scale=st.floats(0.01, 100),
    shift=st.floats(-100, 100),
)
def test_robust_z_is_invariant_under_increasing_affine_maps(data, x, scale, shift):
    ref = pd.DataFrame({"a": data})
    val = pd.DataFrame({"a": [x]})
    z = robust_z(val, ref)["a"].iloc[0]
    moved = robust_z(val * scale + shift, ref * scale + shift)["a"].iloc[0]
    assert moved == pytest.approx(z, rel=1e-6, abs=1e-6)


def test_copy_of_the_shipped_folder_with_one_case_removed_still_loads(tmp_path):
    copy = tmp_path / "ob"
    shutil.copytree(OB, copy)
    table = pd.read_csv(copy / "cases.csv")
    table.iloc[1:].to_csv(copy / "cases.csv", index=False)
    system = load_nezha(copy, case_ids=[table.case_id.iloc[2]])
    assert [c.case_id for c in system.cases] == [table.case_id.iloc[2]]


@pytest.mark.skipif(not FULL.is_dir(), reason="the full Nezha DEV part is not on this machine")
def test_full_dev_part_matches_the_readme_facts():
    facts = {"online_boutique": (10, 14, 29, 1419, "frontend", 20), "train_ticket": (29, 56, 24, 1281, "ts-ui-dashboard", 11)}
    for name, (nodes, edges, cases, rows, target, target_z3) in facts.items():
        system = load_nezha(FULL / name)
        assert system.graph.number_of_nodes() == nodes and system.graph.number_of_edges() == edges
        assert len(system.cases) == cases and len(system.normal) == rows
        assert all(nx.ancestors(system.graph, target) | {target} == set(system.graph) for _ in [0])
        observed = system.normal.where(~system.normal_filled)
        above = sum(bool(robust_z(c.frame.where(~c.filled), observed)[c.target].max() > 3) for c in system.cases)
        assert above == target_z3  # "cases whose target max robust z > 3 in the window"
        assert {c.target for c in system.cases} == {target}
    tt = load_nezha(FULL / "train_ticket")
    assert tt.normal_filled.to_numpy().mean() == pytest.approx(0.61, abs=0.005)  # 61 % NaN in latency
    assert len(list(tt.graph.predecessors("ts-ui-dashboard"))) == 1
