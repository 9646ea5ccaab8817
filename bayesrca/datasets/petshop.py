"""The PetShop microservice root-cause-analysis benchmark (Hardt et al., CLeaR 2024).

The data (CC-BY-4.0, Amazon.com, Inc. or its affiliates) are not shipped inside the package:
point :func:`load_petshop` at a scenario folder of the upstream layout
(``<scenario>/graph.csv``, ``<scenario>/noissue/metrics.csv``,
``<scenario>/{train,test}/issue_<i>/{metrics.csv,target.json}``; ``metrics.csv.gz`` works too).
The repository ships the ``low_traffic`` training issues under ``examples/data/petshop``.

Choices made here, all recorded on the returned objects:

* **Causal graph.** ``graph.csv`` is a call graph (row A, column B = 1 means A calls B); the
  callee's metric causes the caller's, so the causal graph is its reverse. Graph nodes that have
  no column in the normal data (e.g. a table that was never called) are *marginalised*: their
  parents are connected to their children and the node is removed (``marginalised``).
* **Missing values.** Latency and availability are NaN when a service received no requests in a
  5-minute window (requests are then 0; requests are never NaN). ``"neutral"`` (default) fills the
  value that has no effect on its callers: latency 0 (no time was spent in the service) and
  availability 100 (no request failed): "no requests" is a known state, not a lost value. With
  ``nan_policy="missing"`` such cells stay NaN: :meth:`bayesrca.BayesianSCM.fit` fits each node on
  the rows where it and its parents are observed, and :func:`bayesrca.attribute_anomalies`
  integrates a missing ancestor value out, which treats "no requests" as missing at random; on the
  training split that was worse (top-1 / top-3 0.19 / 0.50 against 0.50 / 0.75 with
  ``"gaussian"``: PetSite is then fitted on the 29 of 589 windows where all its callees had traffic). ``"mean"`` fills the column mean of the
  normal data, as the upstream evaluation code does. A number fills that number. Under
  ``"missing"``, where a node and its parents are observed together in fewer than 20 normal rows
  (:data:`~bayesrca.datasets._missing.MIN_OBSERVED_ROWS`), the sparsest of them gets the neutral
  value (0 for requests) instead, until 20 rows remain: it could not be fitted on so few. Rows are
  never dropped, neither in the normal data nor in the issue windows; the masks of the NaN cells
  are kept (``normal_filled``, ``PetShopIssue.filled``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pandas as pd

from .._warnings import user_stacklevel
from ._files import reading
from ._missing import too_sparse
from ..exceptions import BayesRCAWarning, ConfigError, DataError

__all__ = ["PetShopIssue", "PetShopScenario", "load_petshop", "petshop_scenarios"]

#: Value that a service without requests contributes to its callers, per metric.
NEUTRAL_FILL = {"latency": 0.0, "availability": 100.0}
NAN_POLICIES = ("missing", "neutral", "mean")
#: The upstream protocol analyses the third row (index 2) of each 5-row issue window.
ANALYSED_ROW = 2


@dataclass(frozen=True)
class PetShopIssue:
    """One injected performance issue.

    Attributes
    ----------
    name : str
        ``"<split>/issue_<i>"``.
    frame : pandas.DataFrame
        The issue window (5 rows at 5-minute steps), one column per graph node, NaNs treated by the
        scenario's policy (kept under ``"missing"``).
    filled : pandas.DataFrame
        Boolean mask of the cells of ``frame`` that were NaN in the file.
    row : int
        Position of the row the upstream protocol analyses (2, the third row).
    target_node, target_metric, target_statistic : str
        The degraded quantity (always ``PetSite``, latency or availability, ``Average``).
    root_cause : str
        The ground-truth root-cause node.
    fault : str
        How the fault was injected (from ``target.json``).
    """

    name: str
    frame: pd.DataFrame
    filled: pd.DataFrame
    row: int
    target_node: str
    target_metric: str
    target_statistic: str
    root_cause: str
    fault: str = ""

    @property
    def anomaly(self) -> pd.DataFrame:
        """The analysed row as a one-row frame (what ``attribute_anomalies`` takes)."""
        return self.frame.iloc[[self.row]]


@dataclass(frozen=True)
class PetShopScenario:
    """A PetShop scenario reduced to one metric and statistic.

    Attributes
    ----------
    name : str
        Scenario folder name (e.g. ``"low_traffic"``).
    metric, statistic : str
        The metric and statistic every node's column holds.
    graph : networkx.DiGraph
        The causal graph (reversed call graph, unmeasured nodes marginalised).
    normal : pandas.DataFrame
        Normal operation (``noissue/``), one column per node of ``graph``.
    normal_filled : pandas.DataFrame
        Boolean mask of the cells of ``normal`` that were NaN in the file.
    issues : list of PetShopIssue
        The issues whose target metric is ``metric``, from the requested splits.
    marginalised : tuple of str
        Call-graph nodes without data that were marginalised out.
    nan_policy : str or float
        How missing values were treated.
    """

    name: str
    metric: str
    statistic: str
    graph: nx.DiGraph
    normal: pd.DataFrame
    normal_filled: pd.DataFrame
    issues: list[PetShopIssue] = field(default_factory=list)
    marginalised: tuple[str, ...] = ()
    nan_policy: str | float = "neutral"


def petshop_scenarios(data_dir: str | Path) -> list[str]:
    """Names of the scenario folders under ``data_dir`` that have a ``graph.csv``."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"PetShop data directory {str(root)!r} does not exist")
    return sorted(p.name for p in root.iterdir() if (p / "graph.csv").is_file())


def load_petshop(
    scenario_dir: str | Path,
    metric: str = "latency",
    statistic: str = "Average",
    *,
    splits: Sequence[str] = ("train", "test"),
    nan_policy: str | float = "neutral",
) -> PetShopScenario:
    """Load one PetShop scenario for one metric/statistic.

    Parameters
    ----------
    scenario_dir : str or Path
        A scenario folder (``.../dataset/low_traffic``).
    metric : str, default "latency"
        ``"latency"``, ``"availability"`` or ``"requests"``.
    statistic : str, default "Average"
        ``"Average"``, ``"p50"``, ``"p90"``, ``"p95"``, ``"p99"`` (latency) or ``"Sum"`` (requests).
    splits : sequence of str, default ("train", "test")
        Issue folders to read; missing splits are skipped.
    nan_policy : {"neutral", "missing", "mean"} or float, default "neutral"
        How cells of services without requests are treated: filled with the value that has no
        effect on the callers (``"neutral"``), kept as missing values to be marginalised
        (``"missing"``), or filled with the mean or a number; see the module docstring.

    Returns
    -------
    PetShopScenario

    Raises
    ------
    DataError
        If the folder lacks ``graph.csv`` or ``noissue/metrics.csv`` (the temporal scenarios of the
        public copy lack their normal data), the metric/statistic is not in the data, or a file is
        damaged (unreadable, truncated ``.gz``, wrong columns, non-numeric values, malformed
        ``target.json``); the message names the file.
    ConfigError
        If ``nan_policy`` is unknown, or ``"neutral"`` is asked for a metric without a neutral value
        and the data have NaNs.
    """
    root = Path(scenario_dir)
    if not (root / "graph.csv").is_file():
        raise DataError(f"{str(root)!r} is not a PetShop scenario folder: graph.csv is missing")
    normal_path = _metrics_file(root / "noissue")
    if normal_path is None:
        raise DataError(
            f"scenario {root.name!r} has no normal data ({root / 'noissue' / 'metrics.csv'} is missing); "
            "it cannot be fitted. Get the file from the upstream repository or skip this scenario."
        )
    if not (isinstance(nan_policy, str) and nan_policy in NAN_POLICIES) and not _is_number(nan_policy):
        raise ConfigError(f"nan_policy must be one of {NAN_POLICIES} or a number, got {nan_policy!r}")

    raw_normal = _select(_read_metrics(normal_path), metric, statistic, normal_path)
    if raw_normal.empty:
        raise DataError(f"{normal_path}: no rows of normal operation; the scenario cannot be fitted")
    graph, marginalised = _causal_graph(root / "graph.csv", set(raw_normal.columns))
    nodes = list(graph.nodes)
    if not nodes:
        raise DataError(f"{root / 'graph.csv'}: no node of the call graph has a column in {normal_path}")
    raw_normal = raw_normal.reindex(columns=nodes)
    fill = _fill_values(raw_normal, metric, nan_policy, graph)
    normal = raw_normal.fillna(fill)

    issues = []
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for issue_dir in sorted(split_dir.glob("issue_*"), key=lambda p: _issue_number(p.name)):
            issue = _read_issue(issue_dir, split, nodes, metric, statistic, fill)
            if issue is not None:
                issues.append(issue)
    return PetShopScenario(
        name=root.name,
        metric=metric,
        statistic=statistic,
        graph=graph,
        normal=normal,
        normal_filled=raw_normal.isna(),
        issues=issues,
        marginalised=tuple(marginalised),
        nan_policy=nan_policy,
    )


def _metrics_file(folder: Path) -> Path | None:
    for name in ("metrics.csv", "metrics.csv.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_metrics(path: Path) -> pd.DataFrame:
    with reading(path, "a PetShop metrics file with a 3-level header"):
        frame = pd.read_csv(path, header=[0, 1, 2], index_col=0)
        if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 3:
            raise DataError(f"{path}: not a PetShop metrics file: the header needs 3 rows (node, metric, statistic)")
        return frame


def _select(frame: pd.DataFrame, metric: str, statistic: str, path: Path) -> pd.DataFrame:
    level = frame.columns
    mask = (level.get_level_values(1) == metric) & (level.get_level_values(2) == statistic)
    if not mask.any():
        pairs = sorted({(m, s) for _, m, s in level})
        raise DataError(f"{path}: no columns for metric {metric!r} / statistic {statistic!r}; available: {pairs}")
    out = frame.loc[:, mask]
    out.columns = [str(c[0]) for c in out.columns]
    dup = sorted(set(out.columns[out.columns.duplicated()]))
    if dup:
        raise DataError(f"{path}: nodes {dup} have more than one {metric!r}/{statistic!r} column")
    numeric = out.apply(pd.to_numeric, errors="coerce")
    bad = [c for c in out.columns if (numeric[c].isna() & out[c].notna()).any()]
    if bad:
        raise DataError(f"{path}: non-numeric {metric!r}/{statistic!r} values in the columns of nodes {bad[:8]}")
    return numeric.astype(float)


def _causal_graph(path: Path, measured: set[str]) -> tuple[nx.DiGraph, list[str]]:
    with reading(path, "a call-graph adjacency matrix (CSV, node names as first column and header)"):
        adjacency = pd.read_csv(path, index_col=0)
        adjacency.index = adjacency.index.map(str)
        if adjacency.empty or sorted(adjacency.index) != sorted(adjacency.columns) or adjacency.index.has_duplicates:
            raise DataError(
                f"{path}: not a square adjacency matrix with the same node names as rows and columns "
                f"({adjacency.shape[0]} rows, {adjacency.shape[1]} columns)"
            )
        values = adjacency.apply(pd.to_numeric, errors="coerce")
        if values.isna().to_numpy().any():
            raise DataError(f"{path}: the adjacency matrix holds missing or non-numeric entries")
        calls = nx.from_pandas_adjacency(values.loc[:, list(values.index)], create_using=nx.DiGraph)
    graph = calls.reverse(copy=True)
    if not nx.is_directed_acyclic_graph(graph):
        raise DataError(f"{path}: the reversed call graph has a cycle; it cannot be a causal graph")
    unmeasured = [n for n in nx.topological_sort(graph) if n not in measured]
    for node in unmeasured:
        parents, children = list(graph.predecessors(node)), list(graph.successors(node))
        graph.add_edges_from((p, c) for p in parents for c in children)
        graph.remove_node(node)
    if unmeasured:
        warnings.warn(
            f"{path.parent.name}: graph nodes without data were marginalised (parents linked to children): "
            f"{unmeasured}",
            BayesRCAWarning,
            stacklevel=user_stacklevel(),
        )
    return graph, unmeasured


def _fill_values(normal: pd.DataFrame, metric: str, nan_policy: str | float, graph: nx.DiGraph) -> pd.Series:
    if _is_number(nan_policy):
        return pd.Series(float(nan_policy), index=normal.columns)
    if nan_policy == "missing":
        # kept missing, except a node too sparse to be fitted on the rows that observe it with its parents
        fill = pd.Series(math.nan, index=normal.columns)
        fill[too_sparse(normal, graph)] = NEUTRAL_FILL.get(metric, 0.0)
        return fill
    if nan_policy == "mean":
        means = normal.mean()
        # a column that is NaN throughout has no mean: fall back to the neutral value or 0
        return means.fillna(NEUTRAL_FILL.get(metric, 0.0))
    if metric not in NEUTRAL_FILL:
        if normal.isna().to_numpy().any():
            raise ConfigError(
                f"metric {metric!r} has missing values and no neutral value; pass nan_policy='mean' or a number"
            )
        return pd.Series(0.0, index=normal.columns)
    return pd.Series(NEUTRAL_FILL[metric], index=normal.columns)


def _read_issue(
    folder: Path, split: str, nodes: list[str], metric: str, statistic: str, fill: pd.Series
) -> PetShopIssue | None:
    target_path, metrics_path = folder / "target.json", _metrics_file(folder)
    if not target_path.is_file() or metrics_path is None:
        raise DataError(f"{folder}: an issue folder needs metrics.csv and target.json")
    with reading(target_path, 'a PetShop target.json ({"target": {"node", "metric"}, "root_cause": {"node"}})'):
        meta = json.loads(target_path.read_text())
        target, cause = meta["target"], meta["root_cause"]["node"]
        target_node, target_metric, target_stat = target["node"], target["metric"], target.get("agg", "Average")
        if not all(isinstance(v, str) for v in (cause, target_node, target_metric, target_stat)):
            raise DataError(f"{target_path}: target node, metric, statistic and root-cause node must be strings")
        meta_data = meta.get("metadata", {})
        command = meta_data.get("reproducibility", {}).get("command", "") if isinstance(meta_data, dict) else ""
    if target_metric != metric or target_stat != statistic:
        return None
    raw = _select(_read_metrics(metrics_path), metric, statistic, metrics_path).reindex(columns=nodes)
    if len(raw) <= ANALYSED_ROW:
        raise DataError(f"{metrics_path}: {len(raw)} rows; the protocol analyses row {ANALYSED_ROW}")
    return PetShopIssue(
        name=f"{split}/{folder.name}",
        frame=raw.fillna(fill),
        filled=raw.isna(),
        row=ANALYSED_ROW,
        target_node=target_node,
        target_metric=target_metric,
        target_statistic=target_stat,
        root_cause=cause,
        fault=str(command),
    )


def _issue_number(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else math.inf  # type: ignore[return-value]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
