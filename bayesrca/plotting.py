"""Plots of bayesrca results.

matplotlib is imported inside each function, so importing this module (or
:mod:`bayesrca.results`) stays cheap and works without a display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bayesrca.exceptions import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from bayesrca.results import AttributionResult

__all__ = ["plot_forest"]


def plot_forest(
    result: AttributionResult,
    anomaly: Any = None,
    ci_prob: float = 0.9,
    inner_prob: float = 0.5,
    ax: Axes | None = None,
) -> Axes:
    """Forest plot of the posterior contributions of every node to one anomaly.

    One row per node, sorted by posterior median (largest at the top): a thin line
    spans the ``ci_prob`` equal-tailed interval, a thick line the ``inner_prob``
    interval and a dot marks the median. The right-hand axis gives each node's
    posterior probability of being the largest contributor.

    Parameters
    ----------
    result : AttributionResult
        The attribution to plot.
    anomaly : hashable, optional
        Label of the anomaly to plot; by default the first anomaly.
    ci_prob : float, default 0.9
        Probability of the outer (thin) interval.
    inner_prob : float, default 0.5
        Probability of the inner (thick) interval; must not exceed ``ci_prob``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the plot.

    Raises
    ------
    ConfigError
        For an unknown anomaly or invalid interval probabilities.
    """
    from bayesrca.results import _check_interval_args

    _check_interval_args(ci_prob, "eti")
    _check_interval_args(inner_prob, "eti", name="inner_prob")
    if inner_prob > ci_prob:
        raise ConfigError(f"inner_prob ({inner_prob!r}) must not exceed ci_prob ({ci_prob!r}).")
    pos = result._anomaly_position(anomaly)
    outer, inner = result.summary(ci_prob), result.summary(inner_prob)
    label = result.anomalies[pos]
    num_nodes = len(result.nodes)
    rows = outer.iloc[pos * num_nodes : (pos + 1) * num_nodes]
    inner_rows = inner.iloc[pos * num_nodes : (pos + 1) * num_nodes]
    its = result.it_score_summary(ci_prob).iloc[pos]

    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 1.6 + 0.38 * num_nodes), layout="constrained")
    y = np.arange(num_nodes)[::-1].astype(float)  # largest median at the top
    color = "C0"
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--", zorder=0)
    ax.hlines(y, rows["lower"], rows["upper"], color=color, lw=1.2)
    ax.hlines(y, inner_rows["lower"], inner_rows["upper"], color=color, lw=4.5)
    ax.plot(rows["median"], y, "o", color="white", mec=color, mew=1.5, ms=6, zorder=3)
    ax.set_yticks(y, list(rows["node"]))
    ax.set_ylim(-0.7, num_nodes - 0.3)
    ax.set_xlabel(f"contribution to IT outlier score (median, {inner_prob:.0%} and {ci_prob:.0%} intervals)")
    ax.grid(axis="x", alpha=0.3)
    right = ax.secondary_yaxis("right")
    right.set_yticks(y, [f"{p:.2f}" for p in rows["prob_top"]])
    right.set_ylabel("P(largest contributor)")
    right.tick_params(length=0)
    ax.set_title(
        f"Target {result.target!r}, anomaly {label}\n"
        f"IT score {its['median']:.3g} [{its['lower']:.3g}, {its['upper']:.3g}] (median [{ci_prob:.0%} interval])",
        fontsize="medium",
    )
    return ax
