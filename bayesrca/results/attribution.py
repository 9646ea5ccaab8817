"""Posterior root-cause attributions of anomalies' IT outlier scores.

:class:`AttributionResult` holds, for every posterior draw, the contribution of every node to
the IT outlier score of every anomaly, and the IT scores themselves. Neither matplotlib nor
arviz is imported until a method needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesrca import stats
from bayesrca.exceptions import ConfigError

from .base import PosteriorResult, as_float_array

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["AttributionResult"]


class AttributionResult(PosteriorResult):
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
        Free-form description of the method, e.g. ``{"shapley": "exact", "num_draws": 200}``;
        :func:`bayesrca.attribute_anomalies` records ``base_score`` and ``seed`` there, which
        the IT score plot and the report use to score normal rows on the same scale.
    mc_std_error : numpy.ndarray, optional
        Shape ``(K, n)``: Monte Carlo standard error of the contributions.

    Raises
    ------
    ConfigError
        If shapes or label counts do not match.
    DataError
        If the draws contain NaN.
    """

    unit_column = "anomaly"
    units_name = "anomalies"
    value_name = "contribution"

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
        contrib = as_float_array(contributions, "contributions", (None,) * 3, "(num_draws, num_anomalies, num_nodes)")
        num_draws, num_anom, num_nodes = contrib.shape
        self._its = as_float_array(it_scores, "it_scores", (num_draws, num_anom), "(num_draws, num_anomalies)")
        if not isinstance(target, str):
            raise ConfigError(f"target must be a node name (str); got {target!r}.")
        self._init_draws(contrib, anomalies, nodes, method_info)
        self._mc_se = None
        if mc_std_error is not None:
            layout = "(num_anomalies, num_nodes)"
            self._mc_se = as_float_array(mc_std_error, "mc_std_error", (num_anom, num_nodes), layout)
        self._target = target

    contributions = property(lambda self: self._draws, doc="Read-only ``(D, K, n)`` contribution draws.")
    it_scores = property(lambda self: self._its, doc="Read-only ``(D, K)`` IT outlier score draws.")
    anomalies = property(lambda self: self._units, doc="Tuple of anomaly labels.")
    target = property(lambda self: self._target, doc="Name of the target node.")
    mc_std_error = property(lambda self: self._mc_se, doc="Read-only ``(K, n)`` Monte Carlo SE, or None.")

    def summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Tidy posterior summary, one row per (anomaly, node).

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        ci_kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``anomaly, node, mean, median, sd, lower, upper, prob_top,
            prob_positive, rank_median`` (and ``mc_se`` when known), sorted by anomaly in
            the original order, then by median contribution descending. ``prob_top`` is
            the posterior probability that the node is the largest contributor (signed
            contributions, ties split evenly); ``rank_median`` is the 1-based rank of the
            median. See ``docs/reference.md`` for every column.
        """
        ci_kind = stats.check_interval_args(ci_prob, ci_kind)
        table = stats.tidy_summary(
            self._draws, self._units, self._nodes, "anomaly", ci_prob, ci_kind,
            prob_top=stats.top_probability(self._draws),
            prob_positive=(self._draws > 0).mean(axis=0),
            mc_se=self._mc_se,
        )
        num_anom, num_nodes = self._draws.shape[1:]
        table.insert(9, "rank_median", np.tile(np.arange(1, num_nodes + 1), num_anom))
        return table

    def it_score_summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Posterior summary of the IT outlier score, one row per anomaly.

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        ci_kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``anomaly, mean, median, sd, lower, upper`` in anomaly order.
        """
        ci_kind = stats.check_interval_args(ci_prob, ci_kind)
        table = pd.DataFrame({"anomaly": stats.label_index(self._units)})
        for key, value in stats.summarise_draws(self._its, ci_prob, ci_kind).items():
            table[key] = value
        return table

    def top_causes(self, k: int = 3, *, ci_prob: float = 0.9, ci_kind: str = "eti") -> pd.DataFrame:
        """The ``k`` nodes with the largest median contribution for each anomaly.

        Parameters
        ----------
        k : int, default 3
            How many nodes per anomaly (``res.top_causes(3)``).
        ci_prob, ci_kind
            The interval, as in :meth:`summary`.

        Returns
        -------
        pandas.DataFrame
            The rows of :meth:`summary` with ``rank_median <= k``.

        Raises
        ------
        ConfigError
            If ``k`` is not a positive integer.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer; got {k!r}.")
        table = self.summary(ci_prob, ci_kind=ci_kind)
        return table[table["rank_median"] <= k].reset_index(drop=True)

    def pooled(self, anomalies: Sequence[Any] | None = None, *, label: Any = "window") -> AttributionResult:
        r"""One attribution for several anomalous rows that share a root cause (an incident window).

        Under the model the rows are independent, so the event "every row at least as extreme as
        observed" has probability :math:`\prod_k P_k`: its IT score is the sum of the rows' IT
        scores, and, coalition by coalition, :math:`v(S) = \sum_k v_k(S)` with the noise of S kept
        at each row's own abducted value. Shapley values are linear in v, so the window's
        contributions are the per-draw sums of the rows' contributions, and ``prob_top`` of the
        result is the posterior probability that a node is the largest contributor to the whole
        window: one posterior over the rows, not a vote of per-row answers.

        Parameters
        ----------
        anomalies : sequence, optional
            Labels of the rows to pool (default: all).
        label : hashable, default "window"
            The label of the pooled unit.

        Returns
        -------
        AttributionResult
            One anomaly, ``label``; ``method_info["pooled"]`` lists the pooled labels. The Monte
            Carlo standard error is the sum of the rows' (a bound: the rows share random numbers).

        Raises
        ------
        ConfigError
            If a label is unknown or none is given.
        """
        labels = list(self._units) if anomalies is None else list(anomalies)
        if not labels:
            raise ConfigError("anomalies is empty; give at least one anomaly label to pool")
        missing = [a for a in labels if a not in self._units]
        if missing:
            raise ConfigError(f"unknown anomaly labels {missing[:5]!r}; known: {list(self._units)[:10]!r}")
        idx = [self._units.index(a) for a in labels]
        info = dict(self._method_info)
        info["pooled"] = [str(a) for a in labels]
        return AttributionResult(
            self._draws[:, idx].sum(1, keepdims=True),
            self._its[:, idx].sum(1, keepdims=True),
            nodes=self._nodes,
            anomalies=[label],
            target=self._target,
            method_info=info,
            mc_std_error=None if self._mc_se is None else self._mc_se[idx].sum(0, keepdims=True),
        )

    def _idata_parts(self) -> tuple[dict, dict, dict]:
        variables, coords, _ = super()._idata_parts()
        variables["it_score"] = (self._its, ["anomaly"])
        return variables, coords, {"target": self._target}

    def to_inference_data(self) -> Any:
        """Posterior draws as one-chain :class:`arviz.InferenceData` (a ``DataTree`` on arviz 1.x).

        The posterior group holds ``contribution`` (chain, draw, anomaly, node) and
        ``it_score`` (chain, draw, anomaly); attributes hold the target and method_info.
        """
        return super().to_inference_data()

    def to_dataframe(self) -> pd.DataFrame:
        """All draws in long format: columns ``draw, anomaly, node, contribution``."""
        return super().to_dataframe()

    def plot_labels(self, unit: Any = None) -> dict[str, str]:
        """Words and column names the plots of :mod:`bayesrca.plotting` use for one anomaly.

        Returns
        -------
        dict of str to str
            ``score`` and ``total`` (what is attributed), ``title``, ``subject``, ``top_column``
            (the summary column of P(largest)), ``top_label`` and ``top_short`` (its words).
        """
        return {
            "score": "IT outlier score", "total": "IT score", "title": f"anomaly {unit}", "subject": "the outlier",
            "top_column": "prob_top", "top_label": "P(largest contributor)", "top_short": "P(top)",
        }

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
            for label, row in zip(self._units[:5], its.itertuples())
        ]
        if len(self._units) > 5:
            shown.append("...")
        return [
            f"AttributionResult for target {self._target!r}: {len(self._units)} anomalies, "
            f"{len(self._nodes)} nodes, {self.num_draws} draws",
            f"IT score median [{ci_prob:.0%} interval]: " + "; ".join(shown),
        ]

    def _html_body(self) -> str:
        table = self.summary()
        table = table[table["rank_median"] <= 10]
        return table.to_html(index=False, float_format=lambda v: f"{v:.3g}")
