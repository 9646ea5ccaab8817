"""Plots of bayesrca results: forest plot, graph picture, IT score against normal operation.

A view layer: it reads results and fitted models only through their public attributes
(``summary()``, ``it_score_summary()``, ``unit_position()``, ``plot_labels()``, ``it_scores``,
``method_info``, ...) and :mod:`bayesrca.stats`, and never imports :mod:`bayesrca.results`.
matplotlib is imported inside each function, so importing this module stays cheap and works
without a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from bayesrca import stats
from bayesrca.exceptions import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["PlottableResult", "plot_forest", "plot_graph", "plot_graph_check", "plot_it_score"]


class PlottableResult(Protocol):
    """What the plots read from a result (:class:`~bayesrca.AttributionResult`, :class:`~bayesrca.ContributionResult`)."""

    nodes: tuple[str, ...]
    units: tuple
    target: str
    method_info: Mapping[str, Any]

    def summary(self, ci_prob: float = 0.9) -> pd.DataFrame: ...  # noqa: D102

    def it_score_summary(self, ci_prob: float = 0.9) -> pd.DataFrame: ...  # noqa: D102

    def unit_position(self, unit: Any = None) -> int: ...  # noqa: D102

    def plot_labels(self, unit: Any = None) -> Mapping[str, str]: ...  # noqa: D102


def plot_forest(
    result: PlottableResult,
    anomaly: Any = None,
    ci_prob: float = 0.9,
    inner_prob: float = 0.5,
    ax: Axes | None = None,
    max_nodes: int | None = None,
) -> Axes:
    """Forest plot of the posterior contributions of every node to one anomaly.

    One row per node, sorted by posterior median (largest at the top): a thin line
    spans the ``ci_prob`` equal-tailed interval, a thick line the ``inner_prob``
    interval and a dot marks the median. The right-hand axis gives each node's
    posterior probability of being the largest contributor (``prob_top``; the largest absolute
    one, ``prob_top_abs``, for a :class:`~bayesrca.ContributionResult`).

    Parameters
    ----------
    result : AttributionResult or ContributionResult
        The attribution to plot.
    anomaly : hashable, optional
        Label of the anomaly to plot; by default the first anomaly.
    ci_prob : float, default 0.9
        Probability of the outer (thin) interval.
    inner_prob : float, default 0.5
        Probability of the inner (thick) interval; must not exceed ``ci_prob``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    max_nodes : int, optional
        Show only the ``max_nodes`` nodes with the largest absolute median contribution
        (large graphs); the title says how many were left out.

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the plot.

    Raises
    ------
    ConfigError
        For an unknown anomaly, invalid interval probabilities or a non-positive ``max_nodes``.
    """
    from bayesrca.validation import check_positive_int

    stats.check_interval_args(ci_prob)
    stats.check_interval_args(inner_prob, name="inner_prob")
    if inner_prob > ci_prob:
        raise ConfigError(f"inner_prob ({inner_prob!r}) must not exceed ci_prob ({ci_prob!r}).")
    pos = result.unit_position(anomaly)
    outer, inner = result.summary(ci_prob), result.summary(inner_prob)
    label = result.units[pos]
    words = result.plot_labels(label)
    num_nodes = len(result.nodes)
    rows = outer.iloc[pos * num_nodes : (pos + 1) * num_nodes]
    inner_rows = inner.iloc[pos * num_nodes : (pos + 1) * num_nodes]
    its = result.it_score_summary(ci_prob).iloc[pos]
    hidden = 0
    if max_nodes is not None and check_positive_int(max_nodes, "max_nodes") < num_nodes:
        keep = rows["median"].abs().nlargest(max_nodes).index.sort_values()
        hidden, num_nodes = num_nodes - max_nodes, max_nodes
        rows, inner_rows = rows.loc[keep], inner_rows.loc[keep]

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
    ax.set_xlabel(f"contribution to {words['score']} (median, {inner_prob:.0%} and {ci_prob:.0%} intervals)")
    ax.grid(axis="x", alpha=0.3)
    right = ax.secondary_yaxis("right")
    right.set_yticks(y, [f"{p:.2f}" for p in rows[words["top_column"]]])
    right.set_ylabel(words["top_label"])
    right.tick_params(length=0)
    ax.set_title(
        f"Target {result.target!r}, {words['title']}\n"
        f"{words['total']} {its['median']:.3g} [{its['lower']:.3g}, {its['upper']:.3g}] (median [{ci_prob:.0%} interval])"
        + (f"\n{hidden} nodes with smaller |median| not shown" if hidden else ""),
        fontsize="medium",
    )
    return ax


def plot_graph(
    result: PlottableResult,
    graph: Any,
    anomaly: Any = None,
    ax: Axes | None = None,
    pos: dict | None = None,
    max_nodes: int | None = None,
) -> Axes:
    """The causal graph with nodes coloured by posterior median contribution.

    Colour: diverging map centred at 0 (red: pushed the outlier up, blue: made it less extreme).
    Outline width grows with the node's posterior probability of being the top cause, and each
    label carries the median and ``P(top)`` (of the absolute contribution for a
    :class:`~bayesrca.ContributionResult`). Nodes that are not players (not ancestors of the
    target) are drawn in light grey.

    Parameters
    ----------
    result : AttributionResult or ContributionResult
        The attribution to draw.
    graph : networkx.DiGraph or BayesianSCM
        The causal graph (a fitted model's graph is used when a model is given).
    anomaly : hashable, optional
        Label of the anomaly; by default the first.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    pos : dict, optional
        Node positions; by default a layered layout from causes (left) to effects (right).
    max_nodes : int, optional
        For large graphs: draw only the ``max_nodes`` players with the largest absolute median
        contribution, the target, and every node on a directed path from them to the target.

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the picture.

    Raises
    ------
    ConfigError
        If ``graph`` is not a graph holding every player, or ``max_nodes`` is not positive.
    """
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.colors import TwoSlopeNorm

    from bayesrca.validation import check_positive_int

    graph = getattr(graph, "graph_", graph)
    if not isinstance(graph, nx.DiGraph):
        raise ConfigError(f"graph must be a networkx.DiGraph or a fitted BayesianSCM, got {type(graph).__name__}")
    index = result.unit_position(anomaly)
    words = result.plot_labels(result.units[index])
    top = words["top_column"]
    num_nodes = len(result.nodes)
    rows = result.summary().iloc[index * num_nodes : (index + 1) * num_nodes].set_index("node")
    names = {str(n): n for n in graph.nodes}
    missing = [n for n in rows.index if n not in names]
    if missing:
        raise ConfigError(f"nodes {missing!r} of the result are not in the graph; pass the graph the model was fitted on")
    if max_nodes is not None and check_positive_int(max_nodes, "max_nodes") < len(rows):
        target = names.get(str(result.target), result.target)
        largest = [names[n] for n in rows["median"].abs().nlargest(max_nodes).index]
        ancestors_of_target = nx.ancestors(graph, target) | {target}
        keep = {target}
        for node in largest:  # the node and everything between it and the target
            keep |= (nx.descendants(graph, node) | {node}) & ancestors_of_target
        graph = graph.subgraph(keep)
        rows = rows.loc[[n for n in rows.index if names[n] in keep]]
    if pos is None:
        layered = nx.DiGraph(graph)
        for depth, layer in enumerate(nx.topological_generations(layered)):
            for node in layer:
                layered.nodes[node]["layer"] = depth
        pos = nx.multipartite_layout(layered, subset_key="layer")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 6), layout="constrained")
    limit = max(float(np.abs(rows["median"]).max()), 1e-9)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    cmap = plt.get_cmap("RdBu_r")
    players = [names[n] for n in rows.index]
    others = [n for n in graph.nodes if n not in set(players)]
    nx.draw_networkx_edges(graph, pos, ax=ax, edge_color="0.6", arrows=True, arrowsize=12, node_size=900)
    nx.draw_networkx_nodes(
        graph,
        pos,
        nodelist=players,
        node_color=[cmap(norm(rows.loc[str(n), "median"])) for n in players],
        edgecolors="black",
        linewidths=[0.5 + 4.0 * rows.loc[str(n), top] for n in players],
        node_size=900,
        ax=ax,
    )
    if others:
        nx.draw_networkx_nodes(graph, pos, nodelist=others, node_color="0.92", edgecolors="0.7", node_size=600, ax=ax)
    labels = {
        names[n]: f"{n}\n{row['median']:.2f} | {words['top_short']} {row[top]:.2f}" for n, row in rows.iterrows()
    }
    labels.update({n: str(n) for n in others})
    for node, text in labels.items():
        x, y = pos[node]
        ax.annotate(text, (x, y), xytext=(0, -22), textcoords="offset points", ha="center", va="top", fontsize=8)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(mappable, ax=ax, shrink=0.6, label=f"median contribution to the {words['total']}")
    ax.set_title(f"Contributions to {words['subject']} at {result.target!r}, {words['title']}", fontsize="medium")
    ax.set_axis_off()
    ax.margins(0.12)
    return ax


def plot_it_score(
    result: Any,
    scm: Any,
    anomaly: Any = None,
    *,
    ci_prob: float = 0.9,
    num_rows: int = 500,
    ax: Axes | None = None,
    normal_scores: np.ndarray | None = None,
) -> Axes:
    """The anomaly's IT score posterior against the IT scores of normal (training) rows.

    Grey: the posterior-median IT score at the target of up to ``num_rows`` training rows (what
    normal operation scores), from :func:`bayesrca.scores.reference_it_scores_for`: with the
    attribution's own ``base_score`` and ``seed`` (its ``method_info``), so both are on one
    scale. Colour: the posterior draws of the anomaly's IT score, with its median and
    ``ci_prob`` interval. The title gives the share of training rows scoring at least the
    anomaly's median.

    Parameters
    ----------
    result : AttributionResult
        The attribution (its IT score draws are plotted).
    scm : BayesianSCM
        The fitted model the attribution used (its training data are scored).
    anomaly : hashable, optional
        Label of the anomaly; by default the first.
    ci_prob : float, default 0.9
        Probability of the anomaly's interval.
    num_rows : int, default 500
        Training rows scored (a random subset when there are more).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    normal_scores : numpy.ndarray, optional
        IT scores of normal rows at the target, from
        :func:`bayesrca.scores.reference_it_scores_for` (computed here when omitted; pass them
        to draw several anomalies without scoring the rows again).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ConfigError
        For an unknown anomaly, a bad ``ci_prob`` or a non-positive ``num_rows``.
    NotFittedError
        If ``scm`` is not fitted.
    """
    import matplotlib.pyplot as plt

    from bayesrca.scores import reference_it_scores_for

    stats.check_interval_args(ci_prob)
    pos = result.unit_position(anomaly)
    normal = reference_it_scores_for(result, scm, num_rows=num_rows) if normal_scores is None else normal_scores
    draws = result.it_scores[:, pos]
    lower, upper = (float(v[0]) for v in stats.interval(draws[:, None], ci_prob, "eti"))
    median = float(np.median(draws))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
    top = max(float(normal.max()), float(draws.max()))
    bins = np.linspace(0.0, top * 1.02 + 1e-9, 50).tolist()
    ax.hist(normal, bins=bins, density=True, color="0.7", label=f"normal rows ({len(normal)}, posterior median)")
    ax.hist(draws, bins=bins, density=True, color="C3", alpha=0.6, label="anomaly: posterior draws")
    ax.axvline(median, color="C3", lw=2, label=f"anomaly median {median:.3g}")
    ax.axvspan(lower, upper, color="C3", alpha=0.12, label=f"{ci_prob:.0%} interval [{lower:.3g}, {upper:.3g}]")
    share = float(np.mean(normal >= median))
    ax.set_xlabel(f"IT outlier score at {result.target!r} (nats)")
    ax.set_ylabel("density")
    ax.set_title(
        f"Anomaly {result.units[pos]} against normal operation: {share:.1%} of normal rows score "
        f"at least its median",
        fontsize="medium",
    )
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_graph_check(table: pd.DataFrame, ax: Axes | None = None, max_rows: int = 40) -> Axes:
    """The tests of :func:`bayesrca.check_graph` as a dot plot of their corrected p-values.

    One row per independence implied by the graph (``node ⊥ other | given``) and per node's
    posterior predictive check (``PIT node``), on a ``-log10`` scale: rejected checks in red,
    the others in grey, the level ``alpha`` as a dashed line. With many tests the ``max_rows``
    smallest p-values are drawn.

    Parameters
    ----------
    table : pandas.DataFrame
        The table :func:`bayesrca.check_graph` returned.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    max_rows : int, default 40
        Most tests drawn.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ConfigError
        If ``table`` is not a check_graph table.
    """
    import matplotlib.pyplot as plt

    needed = {"check", "node", "other", "given", "p_adjusted", "rejected"}
    if not isinstance(table, pd.DataFrame) or not needed <= set(table.columns):
        raise ConfigError("table must be the DataFrame returned by bayesrca.check_graph")
    tests = table[table["check"].isin(["independence", "ppc_pit"]) & table["p_adjusted"].notna()]
    tests = tests.sort_values("p_adjusted", kind="stable").head(max_rows).iloc[::-1]
    labels = [f"{r.node} ⊥ {r.other}" + (f" | {r.given}" if r.given else "") if r.check == "independence"
              else f"PIT {r.node}" for r in tests.itertuples()]
    score = -np.log10(np.clip(tests["p_adjusted"].to_numpy(dtype=float), 1e-300, 1.0))
    colours = ["tab:red" if bool(flag) else "0.5" for flag in tests["rejected"].fillna(False)]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(tests) + 1.5), layout="constrained")
    ax.scatter(score, np.arange(len(tests)), c=colours, zorder=3)
    ax.set_yticks(np.arange(len(tests)), labels, fontsize=8)
    alpha = table.attrs.get("alpha")
    if alpha is not None:
        ax.axvline(-np.log10(alpha), color="tab:red", linestyle="--", linewidth=1, label=f"alpha = {alpha:g}")
        ax.legend(loc="lower right", fontsize=8)
    correction = table.attrs.get("correction", "")
    ax.set_xlabel(f"-log10 p ({correction}-corrected); red: the data reject it")
    ax.set_title("Graph check: implied independences and predictive checks", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return ax
