"""Posterior contributions of nodes to one quantity: distribution change and intrinsic influence.

:class:`ContributionResult` is the sibling of :class:`~bayesrca.results.AttributionResult` for
attributions that explain *one* quantity of the target rather than each of several anomalies: the
change of a summary of the target between two data sets (:func:`bayesrca.distribution_change`) or
the target's variance (:func:`bayesrca.intrinsic_causal_influence`). It holds, per posterior draw,
one contribution per node and the total they add up to. Contributions can be negative here, so
its ranking columns are on absolute values (``prob_top_abs``, ``rank_median_abs``).
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

__all__ = ["ATTRIBUTIONS", "ContributionResult"]

#: What a :class:`ContributionResult` can attribute.
ATTRIBUTIONS = ("distribution_change", "intrinsic_causal_influence")


class ContributionResult(PosteriorResult):
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
    attribution : {"distribution_change", "intrinsic_causal_influence"}
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
        If shapes, labels or ``attribution`` are wrong.
    DataError
        If the draws contain NaN.
    """

    unit_column = "quantity"
    units_name = "quantities"
    value_name = "contribution"

    def __init__(
        self,
        contributions: np.ndarray,
        total: np.ndarray,
        nodes: Sequence[str],
        target: str,
        *,
        attribution: str,
        quantity: str,
        method_info: Mapping[str, Any] | None = None,
        prob_changed: np.ndarray | None = None,
        changed: np.ndarray | None = None,
        mc_std_error: np.ndarray | None = None,
    ) -> None:
        contrib = as_float_array(contributions, "contributions", (None, None), "(num_draws, num_nodes)")
        num_draws, num_nodes = contrib.shape
        self._total = as_float_array(total, "total", (num_draws,), "(num_draws,)")
        if not isinstance(quantity, str):
            raise ConfigError(f"quantity must be a string; got {quantity!r}.")
        self._init_draws(contrib[:, None, :], (quantity,), nodes, method_info)
        if not isinstance(target, str):
            raise ConfigError(f"target must be a node name (str); got {target!r}.")
        if attribution not in ATTRIBUTIONS:
            raise ConfigError(f"attribution must be one of {ATTRIBUTIONS}; got {attribution!r}.")
        per_node = "(num_nodes,)"
        self._prob_changed = None if prob_changed is None else as_float_array(prob_changed, "prob_changed", (num_nodes,), per_node)
        self._changed = None if changed is None else as_float_array(changed, "changed", contrib.shape, "(num_draws, num_nodes)")
        self._mc_se = None if mc_std_error is None else as_float_array(mc_std_error, "mc_std_error", (num_nodes,), per_node)
        self._target, self._attribution, self._quantity = target, attribution, quantity

    contributions = property(lambda self: self._draws[:, 0, :], doc="Read-only ``(D, n)`` contribution draws.")
    total = property(lambda self: self._total, doc="Read-only ``(D,)`` draws of the attributed quantity.")
    target = property(lambda self: self._target, doc="Name of the target node.")
    attribution = property(
        lambda self: self._attribution, doc="``'distribution_change'`` or ``'intrinsic_causal_influence'``."
    )
    quantity = property(lambda self: self._quantity, doc="Words for the attributed quantity.")
    prob_changed = property(lambda self: self._prob_changed, doc="``(n,)`` P(mechanism changed), or None.")
    changed = property(lambda self: self._changed, doc="``(D, n)`` per-draw change indicators, or None.")
    mc_std_error = property(lambda self: self._mc_se, doc="Read-only ``(n,)`` Monte Carlo SE, or None.")
    # the plotting functions address results by unit; this result has one: the quantity
    anomalies = property(lambda self: self._units, doc="``(quantity,)``: the one unit, as for the plot functions.")

    def summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Tidy posterior summary, one row per node.

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        ci_kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``node, mean, median, sd, lower, upper, prob_top_abs, prob_positive,
            rank_median_abs``, then ``prob_changed`` (distribution change) and ``mc_se`` when
            known. Sorted by absolute posterior median, largest first (a change can be
            negative). ``prob_top_abs`` is the posterior probability that the node has the
            largest *absolute* contribution (ties split evenly); ``rank_median_abs`` is the
            1-based rank of ``|median|``. See ``docs/reference.md`` for every column.
        """
        ci_kind = stats.check_interval_args(ci_prob, ci_kind)
        table = stats.tidy_summary(
            self._draws, self._units, self._nodes, "quantity", ci_prob, ci_kind, by_magnitude=True,
            prob_top_abs=stats.top_probability(np.abs(self._draws)),
            prob_positive=(self._draws > 0).mean(axis=0),
            prob_changed=None if self._prob_changed is None else self._prob_changed[None],
            mc_se=None if self._mc_se is None else self._mc_se[None],
        ).drop(columns="quantity")
        table.insert(8, "rank_median_abs", np.arange(1, len(self._nodes) + 1))
        return table

    def total_summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Posterior summary of the attributed quantity.

        Returns
        -------
        pandas.DataFrame
            One row, columns ``quantity, mean, median, sd, lower, upper``.
        """
        ci_kind = stats.check_interval_args(ci_prob, ci_kind)
        summary = stats.summarise_draws(self._total[:, None], ci_prob, ci_kind)
        return pd.DataFrame({"quantity": [self._quantity], **summary})

    # the shared plot functions ask for the "IT score" of an "anomaly": here, the total
    def it_score_summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Alias of :meth:`total_summary` (the interface :mod:`bayesrca.plotting` uses)."""
        return self.total_summary(ci_prob, ci_kind=ci_kind)

    def unit_position(self, unit: Any = None) -> int:
        """0: the one unit (the quantity); ``unit`` must be None or the quantity.

        Raises
        ------
        ConfigError
            For any other label.
        """
        if unit is None or unit == self._quantity:
            return 0
        raise ConfigError(f"a {type(self).__name__} holds one quantity; leave anomaly unset, got {unit!r}.")

    def _idata_parts(self) -> tuple[dict, dict, dict]:
        variables = {"contribution": (self.contributions, ["node"]), "total": (self._total, [])}
        if self._changed is not None:
            variables["changed"] = (self._changed, ["node"])
        extra = {"target": self._target, "attribution": self._attribution, "quantity": self._quantity}
        return variables, {"node": list(self._nodes)}, extra

    def to_inference_data(self) -> Any:
        """Posterior draws as one-chain :class:`arviz.InferenceData` (a ``DataTree`` on arviz 1.x).

        The posterior group holds ``contribution`` (chain, draw, node) and ``total`` (chain,
        draw), plus ``changed`` (chain, draw, node) for a distribution change; attributes hold the
        target, attribution, quantity and method_info.
        """
        return super().to_inference_data()

    def to_dataframe(self) -> pd.DataFrame:
        """All draws in long format: columns ``draw, node, contribution``."""
        return super().to_dataframe().drop(columns="quantity")

    def plot_labels(self, unit: Any = None) -> dict[str, str]:
        """Words and column names the plots of :mod:`bayesrca.plotting` use.

        Returns
        -------
        dict of str to str
            The keys of :meth:`bayesrca.AttributionResult.plot_labels`.
        """
        what = "distribution change" if self._attribution == "distribution_change" else "intrinsic causal influence"
        return {
            "score": self._quantity, "total": self._quantity, "title": what, "subject": f"the {self._quantity}",
            "top_column": "prob_top_abs", "top_label": "P(largest |contribution|)", "top_short": "P(top |c|)",
        }

    def plot(self, ci_prob: float = 0.9, *, ax: Axes | None = None, inner_prob: float = 0.5,
             max_nodes: int | None = None) -> Axes:
        """Forest plot of the contributions; see :func:`bayesrca.plotting.plot_forest`."""
        from bayesrca.plotting import plot_forest

        return plot_forest(self, ci_prob=ci_prob, inner_prob=inner_prob, ax=ax, max_nodes=max_nodes)

    def plot_graph(self, graph: Any, *, ax: Axes | None = None, pos: dict | None = None,
                   max_nodes: int | None = None) -> Axes:
        """The causal graph coloured by median contribution; see :func:`bayesrca.plotting.plot_graph`."""
        from bayesrca.plotting import plot_graph

        return plot_graph(self, graph, ax=ax, pos=pos, max_nodes=max_nodes)

    def _heading(self, ci_prob: float = 0.9) -> list[str]:
        row = self.total_summary(ci_prob).iloc[0]
        first = f"ContributionResult ({self._attribution}) for target {self._target!r}: {len(self._nodes)} nodes, "
        second = f"{self._quantity}: {row['median']:.4g} [{row['lower']:.4g}, {row['upper']:.4g}] "
        return [first + f"{self.num_draws} draws", second + f"(median [{ci_prob:.0%} interval])"]

    def _html_body(self) -> str:
        return self.summary().head(10).to_html(index=False, float_format=lambda v: f"{v:.3g}")
