"""Containers that summarise posterior root-cause attributions and outlier scores.

:class:`AttributionResult` holds, for every posterior draw, the contribution of every
node to the IT outlier score of every anomaly; :class:`ScoreResult` holds posterior
IT outlier scores of data rows. Both summarise their draws with the same helper
(posterior mean, median, standard deviation and an equal-tailed or highest-density
interval). Neither matplotlib nor arviz is imported until a method needs it.
"""

from __future__ import annotations

import html
import numbers
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesrca.exceptions import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import arviz
    from matplotlib.axes import Axes

__all__ = ["AttributionResult", "ScoreResult"]


def _check_interval_args(ci_prob: Any, kind: Any, name: str = "ci_prob") -> str:
    """Validate an interval probability and kind; return the normalised kind."""
    if not isinstance(ci_prob, (float, np.floating)) or not 0.0 < float(ci_prob) < 1.0:
        raise ConfigError(f"{name} must be a float strictly between 0 and 1, e.g. 0.9; got {ci_prob!r}.")
    if not isinstance(kind, str) or kind.lower() not in ("eti", "hdi"):
        raise ConfigError(f"kind must be 'eti' (equal-tailed) or 'hdi' (highest density); got {kind!r}.")
    return kind.lower()


def _interval(draws: np.ndarray, prob: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper interval bounds along axis 0 (draws)."""
    if kind == "eti":
        return tuple(np.quantile(draws, [(1.0 - prob) / 2.0, (1.0 + prob) / 2.0], axis=0))
    # HDI: the narrowest window holding floor(prob * D) + 1 sorted draws (as in arviz.hdi).
    ordered = np.sort(draws, axis=0)
    num = ordered.shape[0]
    inc = int(np.floor(prob * num))
    widths = ordered[inc:] - ordered[: num - inc]
    start = np.argmin(widths, axis=0)[None]
    return np.take_along_axis(ordered, start, axis=0)[0], np.take_along_axis(ordered, start + inc, axis=0)[0]


def _summarise(draws: np.ndarray, ci_prob: float, kind: str) -> dict[str, np.ndarray]:
    """Posterior mean, median, sd and interval along axis 0 of ``draws``."""
    lower, upper = _interval(draws, float(ci_prob), kind)
    return {
        "mean": draws.mean(axis=0),
        "median": np.median(draws, axis=0),
        "sd": draws.std(axis=0, ddof=1 if draws.shape[0] > 1 else 0),
        "lower": lower,
        "upper": upper,
    }


def _as_float_array(values: Any, name: str, shape: tuple, layout: str) -> np.ndarray:
    """Read-only float copy of ``values``; ``shape`` holds required sizes (None: any)."""
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array of shape {layout}: {exc}") from None
    if arr.ndim != len(shape) or 0 in arr.shape or any(e not in (None, a) for e, a in zip(shape, arr.shape)):
        need = f" = {shape}" if None not in shape else ""
        raise ConfigError(f"{name} must be a non-empty array of shape {layout}{need}; got shape {arr.shape}.")
    if np.isnan(arr).any():
        raise DataError(f"{name} contains NaN values; every posterior draw must be a number.")
    arr.flags.writeable = False
    return arr


def _check_labels(labels: Sequence[Any], name: str, expected: int) -> tuple:
    """Labels as a tuple of the expected length; node names must be unique strings."""
    if isinstance(labels, str):
        raise ConfigError(f"{name} must be a sequence of labels, not the string {labels!r}.")
    labels = tuple(labels)
    if len(labels) != expected:
        raise ConfigError(f"{name} has {len(labels)} entries but the draws have {expected} along that axis.")
    if name == "nodes":
        if not all(isinstance(v, str) for v in labels):
            raise ConfigError(f"nodes must be strings; got {[v for v in labels if not isinstance(v, str)][:3]!r}.")
        dup = sorted({v for v in labels if labels.count(v) > 1})
        if dup:
            raise ConfigError(f"nodes must be unique; duplicated: {dup!r}.")
    return labels


def _label_index(labels: tuple) -> pd.Index:
    return pd.Index(list(labels), tupleize_cols=False)


def _coord(labels: tuple) -> list:
    """Coordinate values for arviz: numbers when unique numbers, strings otherwise."""
    numeric = all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in labels)
    if numeric and len(set(labels)) == len(labels):
        return list(labels)
    return [str(v) for v in labels]


def _tidy(
    draws: np.ndarray, labels: tuple, nodes: tuple, label_col: str, ci_prob: float, kind: str, **extra: Any
) -> pd.DataFrame:
    """Tidy table of ``_summarise`` over (D, G, n) draws plus ``extra`` (G, n) columns.

    Rows are sorted by group (original order), then by median descending; ``None`` extras
    are left out.
    """
    stats = _summarise(draws, ci_prob, kind)
    num_nodes = draws.shape[2]
    order = np.argsort(-stats["median"], axis=1, kind="stable")
    columns: dict[str, Any] = {
        label_col: _label_index(labels).repeat(num_nodes),
        "node": np.asarray(nodes, dtype=object)[order].ravel(),
    }
    for key, value in {**stats, **extra}.items():
        if value is not None:
            columns[key] = np.take_along_axis(value, order, axis=1).ravel()
    return pd.DataFrame(columns)


def _idata(variables: dict[str, tuple[np.ndarray, list[str]]], coords: dict, attrs: dict) -> arviz.InferenceData:
    """One-chain InferenceData from ``{name: (draws, dims without chain/draw)}``."""
    import arviz

    return arviz.from_dict(
        posterior={name: draws[None].copy() for name, (draws, _) in variables.items()},
        coords=coords,
        dims={name: dims for name, (_, dims) in variables.items()},
        posterior_attrs=attrs,
        attrs=attrs,
    )


class AttributionResult:
    """Posterior attributions of anomalies' IT outlier scores to the graph's nodes.

    Parameters
    ----------
    contributions : numpy.ndarray
        Shape ``(D, K, n)``: per posterior draw ``s``, contribution of node ``j`` to the
        IT outlier score of anomaly ``k``.
    it_scores : numpy.ndarray
        Shape ``(D, K)``: IT outlier score of the target per draw and anomaly.
    nodes : sequence of str
        The ``n`` node names, in the order of the last axis of ``contributions``.
    anomalies : sequence
        The ``K`` anomaly labels (index values of the anomaly data frame).
    target : str
        Name of the target node whose outlier score is attributed.
    method_info : mapping, optional
        Free-form description of the method, e.g. ``{"shapley": "exact", "num_draws": 200}``.
    mc_std_error : numpy.ndarray, optional
        Shape ``(K, n)``: Monte Carlo standard error of the contributions.

    Raises
    ------
    ConfigError
        If shapes or label counts do not match.
    DataError
        If the draws contain NaN.
    """

    def __init__(
        self,
        contributions: np.ndarray,
        it_scores: np.ndarray,
        nodes: Sequence[str],
        anomalies: Sequence[Any],
        target: str,
        *,
        method_info: Mapping[str, Any] | None = None,
        mc_std_error: np.ndarray | None = None,
    ) -> None:
        contrib = _as_float_array(
            contributions, "contributions", (None,) * 3, "(num_draws, num_anomalies, num_nodes)"
        )
        num_draws, num_anom, num_nodes = contrib.shape
        self._its = _as_float_array(it_scores, "it_scores", (num_draws, num_anom), "(num_draws, num_anomalies)")
        if not isinstance(target, str):
            raise ConfigError(f"target must be a node name (str); got {target!r}.")
        self._nodes = _check_labels(nodes, "nodes", num_nodes)
        self._anomalies = _check_labels(anomalies, "anomalies", num_anom)
        self._mc_se = None
        if mc_std_error is not None:
            layout = "(num_anomalies, num_nodes)"
            self._mc_se = _as_float_array(mc_std_error, "mc_std_error", (num_anom, num_nodes), layout)
        self._contrib, self._target = contrib, target
        self._method_info = types.MappingProxyType(dict(method_info or {}))

    contributions = property(lambda self: self._contrib, doc="Read-only ``(D, K, n)`` contribution draws.")
    it_scores = property(lambda self: self._its, doc="Read-only ``(D, K)`` IT outlier score draws.")
    nodes = property(lambda self: self._nodes, doc="Tuple of node names.")
    anomalies = property(lambda self: self._anomalies, doc="Tuple of anomaly labels.")
    target = property(lambda self: self._target, doc="Name of the target node.")
    method_info = property(lambda self: self._method_info, doc="Read-only mapping describing the method.")
    mc_std_error = property(lambda self: self._mc_se, doc="Read-only ``(K, n)`` Monte Carlo SE, or None.")
    num_draws = property(lambda self: self._contrib.shape[0], doc="Number of posterior draws ``D``.")

    def summary(self, ci_prob: float = 0.9, *, kind: str = "eti") -> pd.DataFrame:
        """Tidy posterior summary, one row per (anomaly, node).

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``anomaly, node, mean, median, sd, lower, upper, prob_top,
            prob_positive, rank_median`` (and ``mc_se`` when known), sorted by anomaly in
            the original order, then by median contribution descending. ``prob_top`` is
            the posterior probability that the node is the largest contributor (ties
            split evenly); ``rank_median`` is the 1-based rank of the median.
        """
        kind = _check_interval_args(ci_prob, kind)
        is_top = self._contrib == self._contrib.max(axis=2, keepdims=True)
        table = _tidy(
            self._contrib, self._anomalies, self._nodes, "anomaly", ci_prob, kind,
            prob_top=(is_top / is_top.sum(axis=2, keepdims=True)).mean(axis=0),
            prob_positive=(self._contrib > 0).mean(axis=0),
            mc_se=self._mc_se,
        )
        num_anom, num_nodes = self._contrib.shape[1:]
        table.insert(9, "rank_median", np.tile(np.arange(1, num_nodes + 1), num_anom))
        return table

    def it_score_summary(self, ci_prob: float = 0.9, kind: str = "eti") -> pd.DataFrame:
        """Posterior summary of the IT outlier score, one row per anomaly.

        Returns
        -------
        pandas.DataFrame
            Columns ``anomaly, mean, median, sd, lower, upper`` in anomaly order.
        """
        kind = _check_interval_args(ci_prob, kind)
        table = pd.DataFrame({"anomaly": _label_index(self._anomalies)})
        for key, value in _summarise(self._its, ci_prob, kind).items():
            table[key] = value
        return table

    def top_causes(self, ci_prob: float = 0.9, k: int = 3, *, kind: str = "eti") -> pd.DataFrame:
        """The ``k`` nodes with the largest median contribution for each anomaly.

        Returns
        -------
        pandas.DataFrame
            The rows of :meth:`summary` with ``rank_median <= k``.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer; got {k!r}.")
        table = self.summary(ci_prob, kind=kind)
        return table[table["rank_median"] <= k].reset_index(drop=True)

    def to_inference_data(self) -> arviz.InferenceData:
        """Posterior draws as an :class:`arviz.InferenceData` with one chain.

        The posterior group holds ``contribution`` (chain, draw, anomaly, node) and
        ``it_score`` (chain, draw, anomaly); attributes hold the target and method_info.
        """
        attrs = {str(key): str(value) for key, value in self._method_info.items()}
        attrs["target"] = self._target
        coords = {"anomaly": _coord(self._anomalies), "node": list(self._nodes)}
        variables = {"contribution": (self._contrib, ["anomaly", "node"]), "it_score": (self._its, ["anomaly"])}
        return _idata(variables, coords, attrs)

    def to_dataframe(self) -> pd.DataFrame:
        """All draws in long format: columns ``draw, anomaly, node, contribution``."""
        draw, anom, node = np.indices(self._contrib.shape).reshape(3, -1)
        anomaly, names = _label_index(self._anomalies).take(anom), np.asarray(self._nodes, dtype=object)[node]
        return pd.DataFrame({"draw": draw, "anomaly": anomaly, "node": names, "contribution": self._contrib.ravel()})

    def _anomaly_position(self, anomaly: Any = None) -> int:
        """Position of an anomaly label (the first one when ``anomaly`` is None)."""
        hits = [0] if anomaly is None else np.flatnonzero(_label_index(self._anomalies) == anomaly)
        if len(hits):
            return int(hits[0])
        raise ConfigError(f"Unknown anomaly {anomaly!r}; known anomalies: {list(self._anomalies)[:10]!r}.")

    def plot(
        self,
        anomaly: Any = None,
        ci_prob: float = 0.9,
        *,
        ax: Axes | None = None,
        inner_prob: float = 0.5,
        max_nodes: int | None = None,
    ) -> Axes:
        """Forest plot of one anomaly's contributions; see :func:`bayesrca.plotting.plot_forest`."""
        from bayesrca.plotting import plot_forest

        return plot_forest(self, anomaly=anomaly, ci_prob=ci_prob, inner_prob=inner_prob, ax=ax, max_nodes=max_nodes)

    def plot_it_score(self, scm: Any, anomaly: Any = None, *, ci_prob: float = 0.9, ax: Axes | None = None) -> Axes:
        """IT score posterior against normal rows; see :func:`bayesrca.plotting.plot_it_score`."""
        from bayesrca.plotting import plot_it_score

        return plot_it_score(self, scm, anomaly=anomaly, ci_prob=ci_prob, ax=ax)

    def plot_graph(
        self,
        graph: Any,
        anomaly: Any = None,
        *,
        ax: Axes | None = None,
        pos: dict | None = None,
        max_nodes: int | None = None,
    ) -> Axes:
        """The causal graph coloured by median contribution; see :func:`bayesrca.plotting.plot_graph`."""
        from bayesrca.plotting import plot_graph

        return plot_graph(self, graph, anomaly=anomaly, ax=ax, pos=pos, max_nodes=max_nodes)

    def _heading(self, ci_prob: float = 0.9) -> list[str]:
        its = self.it_score_summary(ci_prob)
        shown = [
            f"{label}: {row.median:.3g} [{row.lower:.3g}, {row.upper:.3g}]"
            for label, row in zip(self._anomalies[:5], its.itertuples())
        ]
        if len(self._anomalies) > 5:
            shown.append("...")
        return [
            f"AttributionResult for target {self._target!r}: {len(self._anomalies)} anomalies, "
            f"{len(self._nodes)} nodes, {self.num_draws} draws",
            f"IT score median [{ci_prob:.0%} interval]: " + "; ".join(shown),
        ]

    def __repr__(self) -> str:
        return "\n".join(self._heading())

    def _repr_html_(self) -> str:
        head = self._heading()
        table = self.summary()
        table = table[table["rank_median"] <= 10]
        return (
            f"<h4>{html.escape(head[0], quote=False)}</h4><p>{html.escape(head[1], quote=False)}</p>"
            + table.to_html(index=False, float_format=lambda v: f"{v:.3g}")
        )


class ScoreResult:
    """Posterior IT outlier scores of data rows, per draw, row and node.

    Parameters
    ----------
    scores : numpy.ndarray
        Shape ``(D, R, n)``: IT outlier score per posterior draw, row and node.
    rows : sequence
        The ``R`` row labels (index values of the scored data frame).
    nodes : sequence of str
        The ``n`` node names.
    kind : str, default "marginal"
        Which score this is (e.g. ``"marginal"`` or ``"conditional"``).
    """

    def __init__(self, scores: np.ndarray, rows: Sequence[Any], nodes: Sequence[str], *, kind: str = "marginal"):
        arr = _as_float_array(scores, "scores", (None,) * 3, "(num_draws, num_rows, num_nodes)")
        self._rows = _check_labels(rows, "rows", arr.shape[1])
        self._nodes = _check_labels(nodes, "nodes", arr.shape[2])
        if not isinstance(kind, str):
            raise ConfigError(f"kind must be a string such as 'marginal'; got {kind!r}.")
        self._scores, self._kind = arr, kind

    scores = property(lambda self: self._scores, doc="Read-only ``(D, R, n)`` score draws.")
    rows = property(lambda self: self._rows, doc="Tuple of row labels.")
    nodes = property(lambda self: self._nodes, doc="Tuple of node names.")
    kind = property(lambda self: self._kind, doc="Kind of outlier score.")
    num_draws = property(lambda self: self._scores.shape[0], doc="Number of posterior draws ``D``.")

    def summary(self, ci_prob: float = 0.9, kind: str = "eti") -> pd.DataFrame:
        """Tidy summary: columns ``row, node, mean, median, sd, lower, upper``.

        Sorted by row in the original order, then by median score descending.
        """
        kind = _check_interval_args(ci_prob, kind)
        return _tidy(self._scores, self._rows, self._nodes, "row", ci_prob, kind)

    def median(self) -> pd.DataFrame:
        """Posterior median scores as a wide table (rows x nodes)."""
        index, columns = _label_index(self._rows), list(self._nodes)
        return pd.DataFrame(np.median(self._scores, axis=0), index=index, columns=columns)

    def to_inference_data(self) -> arviz.InferenceData:
        """Draws as :class:`arviz.InferenceData`: ``it_score`` (chain, draw, row, node)."""
        coords = {"row": _coord(self._rows), "node": list(self._nodes)}
        return _idata({"it_score": (self._scores, ["row", "node"])}, coords, {"kind": self._kind})

    def __repr__(self) -> str:
        rows, nodes = len(self._rows), len(self._nodes)
        return f"ScoreResult(kind={self._kind!r}, rows={rows}, nodes={nodes}, draws={self.num_draws})"

    def _repr_html_(self) -> str:
        wide = self.median()
        more = f"<p>showing 20 of {len(wide)} rows</p>" if len(wide) > 20 else ""
        return (
            f"<h4>{html.escape(repr(self), quote=False)}</h4><p>posterior median IT outlier scores</p>"
            + wide.head(20).to_html(float_format=lambda v: f"{v:.3g}")
            + more
        )
