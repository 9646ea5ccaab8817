"""Posterior contributions of nodes to one quantity: distribution change and intrinsic influence.

:class:`ContributionResult` is the sibling of :class:`~bayesrca.results.AttributionResult` for
attributions that explain *one* quantity of the target rather than each of several anomalies: the
change of a summary of the target between two data sets (:func:`bayesrca.distribution_change`) or
the target's variance (:func:`bayesrca.intrinsic_causal_influence`). It holds, per posterior draw,
one contribution per node and the total they add up to, and offers the same ``summary()``,
``to_inference_data()``, ``plot()`` and ``plot_graph()`` as :class:`AttributionResult` (the plots
are the same functions of :mod:`bayesrca.plotting`).
"""

from __future__ import annotations

import html
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError
from .attribution import (
    _as_float_array,
    _check_interval_args,
    _check_labels,
    _idata,
    _summarise,
)

if TYPE_CHECKING:  # pragma: no cover
    import arviz
    from matplotlib.axes import Axes

__all__ = ["ContributionResult"]

_KINDS = ("distribution_change", "intrinsic_causal_influence")


class ContributionResult:
    """Posterior contributions of the graph's nodes to one quantity of a target node.

    Parameters
    ----------
    contributions : numpy.ndarray
        Shape ``(D, n)``: per posterior draw, the contribution of each of the ``n`` nodes.
    total : numpy.ndarray
        Shape ``(D,)``: the quantity the contributions add up to in each draw (the change of the
        summary, or the target's variance).
    nodes : sequence of str
        The node names, in the order of the last axis of ``contributions``.
    target : str
        The target node.
    kind : {"distribution_change", "intrinsic_causal_influence"}
        Which attribution this is.
    quantity : str
        Words for the total, e.g. ``"change of the mean of 'received'"`` (used in tables and plots).
    method_info : mapping, optional
        Free-form description of the method.
    prob_changed : numpy.ndarray, optional
        Shape ``(n,)``: posterior probability that each node's mechanism changed.
    changed : numpy.ndarray, optional
        Shape ``(D, n)``: per draw, 1 where the node used separate old and new mechanisms.
    mc_std_error : numpy.ndarray, optional
        Shape ``(n,)``: Monte Carlo standard error of the contributions.

    Raises
    ------
    ConfigError
        If shapes, labels or ``kind`` are wrong.
    DataError
        If the draws contain NaN.
    """

    def __init__(
        self,
        contributions: np.ndarray,
        total: np.ndarray,
        nodes: Sequence[str],
        target: str,
        *,
        kind: str,
        quantity: str,
        method_info: Mapping[str, Any] | None = None,
        prob_changed: np.ndarray | None = None,
        changed: np.ndarray | None = None,
        mc_std_error: np.ndarray | None = None,
    ) -> None:
        contrib = _as_float_array(contributions, "contributions", (None, None), "(num_draws, num_nodes)")
        num_draws, num_nodes = contrib.shape
        self._total = _as_float_array(total, "total", (num_draws,), "(num_draws,)")
        self._nodes = _check_labels(nodes, "nodes", num_nodes)
        if not isinstance(target, str):
            raise ConfigError(f"target must be a node name (str); got {target!r}.")
        if kind not in _KINDS:
            raise ConfigError(f"kind must be one of {_KINDS}; got {kind!r}.")
        if not isinstance(quantity, str):
            raise ConfigError(f"quantity must be a string; got {quantity!r}.")
        per_node = "(num_nodes,)"
        self._prob_changed = None if prob_changed is None else _as_float_array(prob_changed, "prob_changed", (num_nodes,), per_node)
        self._changed = None if changed is None else _as_float_array(changed, "changed", contrib.shape, "(num_draws, num_nodes)")
        self._mc_se = None if mc_std_error is None else _as_float_array(mc_std_error, "mc_std_error", (num_nodes,), per_node)
        self._contrib, self._target, self._kind, self._quantity = contrib, target, kind, quantity
        self._method_info = types.MappingProxyType(dict(method_info or {}))

    contributions = property(lambda self: self._contrib, doc="Read-only ``(D, n)`` contribution draws.")
    total = property(lambda self: self._total, doc="Read-only ``(D,)`` draws of the attributed quantity.")
    nodes = property(lambda self: self._nodes, doc="Tuple of node names.")
    target = property(lambda self: self._target, doc="Name of the target node.")
    kind = property(lambda self: self._kind, doc="``'distribution_change'`` or ``'intrinsic_causal_influence'``.")
    quantity = property(lambda self: self._quantity, doc="Words for the attributed quantity.")
    method_info = property(lambda self: self._method_info, doc="Read-only mapping describing the method.")
    prob_changed = property(lambda self: self._prob_changed, doc="``(n,)`` P(mechanism changed), or None.")
    changed = property(lambda self: self._changed, doc="``(D, n)`` per-draw change indicators, or None.")
    mc_std_error = property(lambda self: self._mc_se, doc="Read-only ``(n,)`` Monte Carlo SE, or None.")
    num_draws = property(lambda self: self._contrib.shape[0], doc="Number of posterior draws ``D``.")
    # the plotting functions address results by anomaly; this result has one "anomaly": the quantity
    anomalies = property(lambda self: (self._quantity,), doc="``(quantity,)``, for the shared plot functions.")

    def summary(self, ci_prob: float = 0.9, *, kind: str = "eti") -> pd.DataFrame:
        """Tidy posterior summary, one row per node.

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``node, mean, median, sd, lower, upper, prob_top, prob_positive,
            rank_median``, then ``prob_changed`` (distribution change) and ``mc_se`` when
            known. Sorted by absolute posterior median, largest first (a change can be negative).
            ``prob_top`` is the posterior probability that the node has the largest *absolute*
            contribution (ties split evenly); ``rank_median`` is the 1-based rank of ``|median|``.
        """
        kind = _check_interval_args(ci_prob, kind)
        stats = _summarise(self._contrib, ci_prob, kind)
        size = np.abs(self._contrib)
        is_top = size == size.max(axis=1, keepdims=True)
        columns: dict[str, Any] = {"node": np.asarray(self._nodes, dtype=object), **stats}
        columns["prob_top"] = (is_top / is_top.sum(axis=1, keepdims=True)).mean(axis=0)
        columns["prob_positive"] = (self._contrib > 0).mean(axis=0)
        if self._prob_changed is not None:
            columns["prob_changed"] = self._prob_changed
        if self._mc_se is not None:
            columns["mc_se"] = self._mc_se
        order = np.argsort(-np.abs(stats["median"]), kind="stable")
        table = pd.DataFrame(columns).iloc[order].reset_index(drop=True)
        table.insert(8, "rank_median", np.arange(1, len(order) + 1))
        return table

    def total_summary(self, ci_prob: float = 0.9, *, kind: str = "eti") -> pd.DataFrame:
        """Posterior summary of the attributed quantity: one row, columns ``quantity, mean, median, sd, lower, upper``."""
        kind = _check_interval_args(ci_prob, kind)
        stats = _summarise(self._total[:, None], ci_prob, kind)
        return pd.DataFrame({"quantity": [self._quantity], **{k: v for k, v in stats.items()}})

    # the shared plot functions ask for the "IT score" of an "anomaly": here, the total
    def it_score_summary(self, ci_prob: float = 0.9, kind: str = "eti") -> pd.DataFrame:
        """Alias of :meth:`total_summary` (the interface :mod:`bayesrca.plotting` uses)."""
        return self.total_summary(ci_prob, kind=kind)

    def _anomaly_position(self, anomaly: Any = None) -> int:
        if anomaly is None or anomaly == self._quantity:
            return 0
        raise ConfigError(f"a {type(self).__name__} holds one quantity; leave anomaly unset, got {anomaly!r}.")

    def to_inference_data(self) -> arviz.InferenceData:
        """Posterior draws as :class:`arviz.InferenceData` with one chain.

        The posterior group holds ``contribution`` (chain, draw, node) and ``total`` (chain,
        draw), plus ``changed`` (chain, draw, node) for a distribution change; attributes hold the
        target, kind, quantity and method_info.
        """
        attrs = {str(key): str(value) for key, value in self._method_info.items()}
        attrs.update(target=self._target, kind=self._kind, quantity=self._quantity)
        variables = {"contribution": (self._contrib, ["node"]), "total": (self._total, [])}
        if self._changed is not None:
            variables["changed"] = (self._changed, ["node"])
        return _idata(variables, {"node": list(self._nodes)}, attrs)

    def to_dataframe(self) -> pd.DataFrame:
        """All draws in long format: columns ``draw, node, contribution``."""
        draw, node = np.indices(self._contrib.shape).reshape(2, -1)
        names = np.asarray(self._nodes, dtype=object)[node]
        return pd.DataFrame({"draw": draw, "node": names, "contribution": self._contrib.ravel()})

    def _wording(self) -> dict[str, str]:
        """Words the shared plot functions use in labels and titles."""
        what = "distribution change" if self._kind == "distribution_change" else "intrinsic causal influence"
        return {"score": self._quantity, "total": self._quantity, "title": what, "subject": f"the {self._quantity}"}

    def plot(self, ci_prob: float = 0.9, *, ax: Axes | None = None, inner_prob: float = 0.5,
             max_nodes: int | None = None) -> Axes:
        """Forest plot of the contributions; see :func:`bayesrca.plotting.plot_forest`."""
        from ..plotting import plot_forest

        return plot_forest(self, ci_prob=ci_prob, inner_prob=inner_prob, ax=ax, max_nodes=max_nodes)

    def plot_graph(self, graph: Any, *, ax: Axes | None = None, pos: dict | None = None,
                   max_nodes: int | None = None) -> Axes:
        """The causal graph coloured by median contribution; see :func:`bayesrca.plotting.plot_graph`."""
        from ..plotting import plot_graph

        return plot_graph(self, graph, ax=ax, pos=pos, max_nodes=max_nodes)

    def _heading(self, ci_prob: float = 0.9) -> list[str]:
        row = self.total_summary(ci_prob).iloc[0]
        first = f"ContributionResult ({self._kind}) for target {self._target!r}: {len(self._nodes)} nodes, "
        second = f"{self._quantity}: {row['median']:.4g} [{row['lower']:.4g}, {row['upper']:.4g}] "
        return [first + f"{self.num_draws} draws", second + f"(median [{ci_prob:.0%} interval])"]

    def __repr__(self) -> str:
        return "\n".join(self._heading())

    def _repr_html_(self) -> str:
        head = self._heading()
        table = self.summary()
        return (
            f"<h4>{html.escape(head[0], quote=False)}</h4><p>{html.escape(head[1], quote=False)}</p>"
            + table.head(10).to_html(index=False, float_format=lambda v: f"{v:.3g}")
        )
