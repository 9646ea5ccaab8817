"""The Nezha microservice root-cause benchmark (Yu et al., ESEC/FSE 2023), in a PetShop-like layout.

The data (MIT License, Copyright (c) 2023 IntelligentDDS) are not shipped inside the package:
point :func:`load_nezha` at a system folder of the layout below. The repository ships a small
subset of the Online Boutique system under ``examples/data/nezha/online_boutique``. ::

    <system>/graph.csv              cause,effect[,calls_observed]   (cause = callee, effect = caller)
    <system>/normal.csv             2-row header (node, metric), index minute_utc
    <system>/cases.csv              case_id, fault_type, root_cause, target, target_metric, ...
    <system>/cases/<case_id>.csv    the fault window, same wide table as normal.csv

Choices made here, all recorded on the returned objects:

* **Node variable.** One metric per node (``metric``, default ``"latency"``: the entry latency for
  the entry node, a per-service latency for the others; the folder's README says which).
* **Missing values.** NaN means "no request in that minute", not a missing scrape. ``"median"``
  (default, what the README's baselines do) fills a NaN cell with the median of the column's
  observed normal values. With ``nan_policy="missing"`` NaN cells stay NaN:
  :meth:`bayesrca.BayesianSCM.fit` fits each node on the rows where it and its parents are
  observed, and :func:`bayesrca.attribute_anomalies` integrates a missing ancestor value out (which
  treats the gap as missing at random; on the dev part the two were within each other's Wilson
  intervals, docs/benchmarks.md section 6); ``"mean"`` the mean; a
  number fills that number. A column that is NaN throughout the normal data falls back to 0, and
  under ``"missing"``, where a node and its parents are observed together in fewer than 20 normal
  rows (:data:`~bayesrca.datasets._missing.MIN_OBSERVED_ROWS`), so does the sparsest of them, until
  20 rows remain (it could not be fitted on so few). Rows are never dropped; the masks of the NaN
  cells are kept (``NezhaSystem.normal_filled``, ``NezhaCase.filled``).
* **Analysed row.** Single-row methods analyse the window row where the target's robust z
  (:func:`robust_z`, against the observed normal values) is largest; score orderings may use the
  whole window (``NezhaCase.frame``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from .._warnings import user_stacklevel
from ._files import reading
from ._missing import too_sparse
from ..exceptions import BayesRCAWarning, ConfigError, DataError

__all__ = ["NezhaCase", "NezhaSystem", "load_nezha", "nezha_systems", "robust_z"]

NAN_POLICIES = ("missing", "median", "mean")
#: Consistency constant of the MAD for a normal distribution.
MAD_SCALE = 1.4826
CASE_COLUMNS = ("case_id", "fault_type", "root_cause", "target")


@dataclass(frozen=True)
class NezhaCase:
    """One injected fault.

    Attributes
    ----------
    case_id, fault_type, root_cause, target : str
        From ``cases.csv``; ``root_cause`` and ``target`` are graph nodes.
    target_metric : str
        The target's metric (``latency`` in every shipped case).
    frame : pandas.DataFrame
        The whole fault window (usually 5 rows), one column per graph node, NaNs filled.
    filled : pandas.DataFrame
        Boolean mask of the cells of ``frame`` that were NaN in the file.
    row : int
        Position in ``frame`` of the analysed row: where the target's robust z (against the observed
        normal values) is largest; 0 when the target is missing throughout the window.
    metrics : pandas.DataFrame
        The window with every (node, metric) column of the file, unfilled.
    info : dict
        The case's whole row of ``cases.csv``.
    """

    case_id: str
    fault_type: str
    root_cause: str
    target: str
    target_metric: str
    frame: pd.DataFrame
    filled: pd.DataFrame
    row: int
    metrics: pd.DataFrame
    info: dict = field(default_factory=dict)

    @property
    def anomaly(self) -> pd.DataFrame:
        """The analysed row as a one-row frame (what ``attribute_anomalies`` takes)."""
        return self.frame.iloc[[self.row]]


@dataclass(frozen=True)
class NezhaSystem:
    """One Nezha system (``online_boutique`` or ``train_ticket``) reduced to one metric per node.

    Attributes
    ----------
    name : str
        The folder name.
    metric : str
        The metric every node's column holds.
    graph : networkx.DiGraph
        The causal graph (callee -> caller).
    normal : pandas.DataFrame
        Normal operation, one column per node of ``graph``, NaNs filled by ``nan_policy`` (kept
        as NaN under ``"missing"``).
    normal_filled : pandas.DataFrame
        Boolean mask of the cells of ``normal`` that were NaN in the file.
    normal_metrics : pandas.DataFrame
        Every (node, metric) column of ``normal.csv``, unfilled.
    cases : list of NezhaCase
        In the order of ``cases.csv``.
    nan_policy : str or float
        How missing values were filled.
    fill_values : pandas.Series
        The value each node's NaNs got (NaN: kept missing).
    """

    name: str
    metric: str
    graph: nx.DiGraph
    normal: pd.DataFrame
    normal_filled: pd.DataFrame
    normal_metrics: pd.DataFrame
    cases: list[NezhaCase] = field(default_factory=list)
    nan_policy: str | float = "median"
    fill_values: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))


def nezha_systems(data_dir: str | Path) -> list[str]:
    """Names of the system folders under ``data_dir`` that have a ``graph.csv``."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"Nezha data directory {str(root)!r} does not exist")
    return sorted(p.name for p in root.iterdir() if (p / "graph.csv").is_file())


def robust_z(values: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Robust z of ``values`` against ``reference``, column by column.

    ``(x - median) / (1.4826 * MAD)`` with the median and MAD of the non-missing reference values;
    where the MAD is 0 the standard deviation is used instead. A constant column scores 0 where
    ``x`` equals its median and +-inf elsewhere (a column without reference values counts as
    constant 0). Missing ``values`` give NaN.

    Parameters
    ----------
    values, reference : pandas.DataFrame
        Same columns.

    Returns
    -------
    pandas.DataFrame
        Signed robust z, shaped like ``values``.
    """
    ref = reference.to_numpy(dtype=float)
    x = values.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN reference columns
        median = np.nanmedian(ref, axis=0)
        scale = MAD_SCALE * np.nanmedian(np.abs(ref - median), axis=0)
        scale = np.where(scale > 0, scale, np.nanstd(ref, axis=0))
        scale = np.where(np.nanmax(ref, axis=0) > np.nanmin(ref, axis=0), scale, 0.0)  # round-off of constants
        median = np.where(np.isnan(median), 0.0, median)
        dev = x - median
        flat = np.where(dev == 0, 0.0, np.sign(dev) * np.inf)
        z = np.where(scale > 0, dev / np.where(scale > 0, scale, 1.0), flat)
    return pd.DataFrame(np.where(np.isnan(x), np.nan, z), index=values.index, columns=values.columns)


def load_nezha(
    system_dir: str | Path,
    metric: str = "latency",
    *,
    nan_policy: str | float = "median",
    case_ids: Sequence[str] | None = None,
) -> NezhaSystem:
    """Load one Nezha system folder.

    Parameters
    ----------
    system_dir : str or Path
        A system folder (``.../nezha/online_boutique``).
    metric : str, default "latency"
        The metric that is each node's variable; every graph node needs it.
    nan_policy : {"median", "missing", "mean"} or float, default "median"
        How NaN cells (no request in that minute) are treated: filled from the observed normal
        values (``"median"``, or ``"mean"``), kept as missing values to be marginalised
        (``"missing"``), or filled with a number.
    case_ids : sequence of str, optional
        Read only these cases (default: every case of ``cases.csv``).

    Returns
    -------
    NezhaSystem

    Raises
    ------
    DataError
        If a file is missing or damaged (unreadable, no 2-row (node, metric) header, wrong columns,
        non-numeric values, a node without ``metric``, a graph that is not a DAG, a case whose root
        cause or target is not a graph node, an empty window); the message names the file.
    ConfigError
        If ``nan_policy`` is unknown or ``case_ids`` names a case not in ``cases.csv``.

    Warns
    -----
    BayesRCAWarning
        If a case's ``target_metric`` is not ``metric`` (its frame still holds ``metric``).
    """
    root = Path(system_dir)
    if not (isinstance(nan_policy, str) and nan_policy in NAN_POLICIES) and not _is_number(nan_policy):
        raise ConfigError(f"nan_policy must be one of {NAN_POLICIES} or a number, got {nan_policy!r}")
    for name in ("graph.csv", "normal.csv", "cases.csv"):
        if not (root / name).is_file():
            raise DataError(f"{str(root)!r} is not a Nezha system folder: {root / name} is missing")
    graph = _read_graph(root / "graph.csv")
    nodes = list(nx.topological_sort(graph))
    normal_metrics = _read_wide(root / "normal.csv")
    if normal_metrics.empty:
        raise DataError(f"{root / 'normal.csv'}: no rows of normal operation; the system cannot be fitted")
    raw_normal = _select(normal_metrics, metric, nodes, root / "normal.csv")
    fill = _fill_values(raw_normal, nan_policy, graph)
    table = _read_cases(root / "cases.csv", set(nodes))
    if case_ids is not None:
        unknown = sorted(set(case_ids) - set(table["case_id"]))
        if unknown:
            raise ConfigError(f"case_ids not in {root / 'cases.csv'}: {unknown[:8]}")
        table = table[table["case_id"].isin(list(case_ids))]
    cases = [_read_case(root, record, nodes, metric, raw_normal, fill) for record in table.to_dict("records")]
    other = [c.case_id for c in cases if c.target_metric != metric]
    if other:
        warnings.warn(
            f"{root / 'cases.csv'}: {len(other)} cases name a target metric other than {metric!r} (e.g. "
            f"{other[0]!r}); their frames hold {metric!r}, and the analysed row is where its target value is largest",
            BayesRCAWarning,
            stacklevel=user_stacklevel(),
        )
    return NezhaSystem(
        name=root.name,
        metric=metric,
        graph=graph,
        normal=raw_normal.fillna(fill),
        normal_filled=raw_normal.isna(),
        normal_metrics=normal_metrics,
        cases=cases,
        nan_policy=nan_policy,
        fill_values=fill,
    )


def _read_graph(path: Path) -> nx.DiGraph:
    with reading(path, "a Nezha graph file (CSV with columns cause,effect)"):
        edges = pd.read_csv(path, dtype=str)
        if not {"cause", "effect"} <= set(edges.columns):
            raise DataError(f"{path}: needs the columns cause,effect; found {list(edges.columns)[:8]}")
        if edges.empty or edges[["cause", "effect"]].isna().to_numpy().any():
            raise DataError(f"{path}: no edges, or an edge with an empty cause or effect")
        graph = nx.DiGraph(list(zip(edges["cause"], edges["effect"])))
    if not nx.is_directed_acyclic_graph(graph):
        raise DataError(f"{path}: the graph has a cycle; it cannot be a causal graph")
    return graph


def _read_wide(path: Path) -> pd.DataFrame:
    with reading(path, "a Nezha metrics table with a 2-row (node, metric) header and a minute_utc index"):
        frame = pd.read_csv(path, header=[0, 1], index_col=0)
        if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 2:
            raise DataError(f"{path}: the header needs 2 rows (node, metric)")
        if list(frame.columns.names) != ["node", "metric"]:
            raise DataError(f"{path}: the header rows must be named node and metric, got {list(frame.columns.names)}")
        if frame.columns.duplicated().any():
            dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise DataError(f"{path}: duplicate (node, metric) columns {dup[:8]}")
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, format="%Y-%m-%d %H:%M"), name="minute_utc")
    return frame


def _select(frame: pd.DataFrame, metric: str, nodes: list[str], path: Path) -> pd.DataFrame:
    columns = {str(n) for n, m in frame.columns if m == metric}
    missing = [n for n in nodes if n not in columns]
    if missing:
        raise DataError(f"{path}: graph nodes {missing[:8]} have no {metric!r} column")
    out = frame.loc[:, [(n, metric) for n in nodes]]
    out.columns = pd.Index(nodes)
    numeric = out.apply(pd.to_numeric, errors="coerce")
    bad = [c for c in nodes if (numeric[c].isna() & out[c].notna()).any()]
    if bad:
        raise DataError(f"{path}: non-numeric {metric!r} values in the columns of nodes {bad[:8]}")
    return numeric.astype(float)


def _fill_values(normal: pd.DataFrame, nan_policy: str | float, graph: nx.DiGraph) -> pd.Series:
    if _is_number(nan_policy):
        return pd.Series(float(nan_policy), index=normal.columns)
    if nan_policy == "missing":
        # kept missing, except a node too sparse to be fitted on the rows that observe it with its parents
        values = pd.Series(np.nan, index=normal.columns)
        values[too_sparse(normal, graph)] = 0.0
        return values
    values = normal.median() if nan_policy == "median" else normal.mean()
    return values.fillna(0.0)  # a column that is NaN throughout has neither


def _read_cases(path: Path, nodes: set[str]) -> pd.DataFrame:
    with reading(path, "a Nezha cases table (CSV with case_id, fault_type, root_cause, target)"):
        table = pd.read_csv(path, dtype=str)
    missing = [c for c in CASE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    if table[list(CASE_COLUMNS)].isna().to_numpy().any():
        raise DataError(f"{path}: empty case_id, fault_type, root_cause or target")
    if table["case_id"].duplicated().any():
        raise DataError(f"{path}: duplicate case_id {sorted(set(table.case_id[table.case_id.duplicated()]))[:8]}")
    for column in ("root_cause", "target"):
        outside = sorted(set(table[column]) - nodes)
        if outside:
            raise DataError(f"{path}: {column} {outside[:8]} not a node of graph.csv")
    return table


def _read_case(root: Path, record: dict, nodes: list[str], metric: str, normal: pd.DataFrame,
               fill: pd.Series) -> NezhaCase:
    path = root / "cases" / f"{record['case_id']}.csv"
    if not path.is_file():
        raise DataError(f"{path} is missing (case {record['case_id']!r} of {root / 'cases.csv'})")
    metrics = _read_wide(path)
    if metrics.empty:
        raise DataError(f"{path}: the fault window has no rows")
    target_metric = record.get("target_metric")
    target_metric = metric if not isinstance(target_metric, str) else target_metric
    raw = _select(metrics, metric, nodes, path)
    target = record["target"]
    z = robust_z(raw[[target]], normal[[target]])[target]
    # the row where the target is most anomalous; the first row when the target is NaN throughout
    row = int(np.nanargmax(z.to_numpy())) if z.notna().any() else 0
    return NezhaCase(
        case_id=record["case_id"],
        fault_type=record["fault_type"],
        root_cause=record["root_cause"],
        target=target,
        target_metric=target_metric,
        frame=raw.fillna(fill),
        filled=raw.isna(),
        row=row,
        metrics=metrics,
        info=dict(record),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
