"""A self-contained HTML report of an attribution, readable by someone who did not run it.

One file: inline CSS, figures embedded as base64 PNG, no scripts and no external resources. It
holds the answer first (most likely root cause and how sure), then the IT score against normal
operation, the contributions table with intervals, the forest plot, the graph, and the fit
diagnostics (mechanism per node, inference engine and its diagnostics, the automatic choice).

A view layer: it reads the result and the fitted model through their public attributes only, and
scores the normal rows with the attribution's own base score and seed
(:func:`bayesrca.scores.reference_it_scores_for`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from .plotting import plot_forest, plot_graph, plot_it_score
from ._progress import progress_bar, resolve
from .scores import reference_it_scores_for
from .validation import check_probability

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.9em} .answer{background:#f4f7fb;border-left:4px solid #3b6ea8;padding:.8em 1em;margin:1em 0}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0} th,td{border-bottom:1px solid #e3e3e3;padding:.25em .6em;text-align:right}
th{background:#fafafa} td:first-child,th:first-child{text-align:left} img{max-width:100%;height:auto;display:block;margin:.6em 0}
details{margin:.6em 0} .note{color:#555;font-size:.9em}
"""


def _figure(ax: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(ax.figure)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, float_format=lambda v: f"{v:.3g}", na_rep="", escape=True)


def render_report(
    result: Any, scm: Any, *, ci_prob: float = 0.9, max_nodes: int = 15, title: str | None = None,
    progress: bool | None = None,
) -> str:
    """The report as an HTML string (see the module docstring).

    Parameters
    ----------
    result : AttributionResult
        The attribution to report.
    scm : BayesianSCM
        The fitted model it came from (graph, training data, fit diagnostics).
    ci_prob : float, default 0.9
        Probability of the credible intervals.
    max_nodes : int, default 15
        Rows of the contributions table and forest plot per anomaly (largest |median| first in
        the plot; the table lists the largest medians).
    title : str, optional
        Heading; by default names the target.
    progress : bool or None, default None
        A progress bar over the report's steps (scoring normal rows, then each anomaly). None: on
        in a terminal or a notebook, off in CI and when standard error is redirected.

    Returns
    -------
    str
        The HTML page.

    Raises
    ------
    ConfigError
        For a bad ``ci_prob``.
    NotFittedError
        If ``scm`` is not fitted.
    """
    from . import __version__

    ci_prob = check_probability(ci_prob, "ci_prob")
    scm.check_fitted()
    target = html.escape(str(result.target))
    table = result.summary(ci_prob=ci_prob)
    its = result.it_score_summary(ci_prob=ci_prob)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title or f'Root causes of the outlier at {result.target}')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title or f'Root causes of the outlier at {result.target}')}</h1>",
        (f"<p class='meta'>bayesrca {__version__} · {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC} · "
        f"{result.num_draws} posterior draws · {len(result.anomalies)} anomal{'y' if len(result.anomalies) == 1 else 'ies'} · "
        f"method: {html.escape(', '.join(f'{k}={v}' for k, v in result.method_info.items()))}</p>"),
        ("<h2>How to read this</h2><p class='note'>The <b>IT outlier score</b> is −log P(a normal value is at least "
        "as extreme as the observed one), in nats: 2.3 means 1 in 10, 4.6 means 1 in 100. Each node's "
        "<b>contribution</b> is its Shapley share of that score: how much keeping that node's own observed "
        "deviation (its noise) makes the outlier more likely; contributions sum to the score, and a negative "
        "one made the outlier less extreme. Every number is a posterior: the median and a "
        f"{ci_prob:.0%} credible interval. <b>P(top)</b> is the posterior probability that a node is the "
        "largest contributor: check the nodes that together hold most of it first.</p>"),
    ]
    steps = progress_bar(["normal rows", *result.anomalies], resolve(progress), "writing report")
    steps = iter(steps)
    next(steps)  # the IT scores of normal rows, once for all anomalies, on the result's scale
    normal = reference_it_scores_for(result, scm)
    for pos, label in enumerate(steps):
        rows = table[table["anomaly"] == label] if len(result.anomalies) > 1 else table
        ranked = rows.sort_values("prob_top", ascending=False)
        first = ranked.iloc[0]
        it = its.iloc[pos]
        cumulative = ranked["prob_top"].cumsum()
        look = ranked[cumulative.shift(fill_value=0.0) < 0.9]["node"].tolist()
        parts += [
            f"<h2>Anomaly {html.escape(str(label))}</h2>",
            (f"<div class='answer'><b>Most likely root cause: {html.escape(str(first['node']))}</b> "
            f"(P(top) = {first['prob_top']:.2f}; contribution {first['median']:.3g} "
            f"[{first['lower']:.3g}, {first['upper']:.3g}]).<br>IT score at {target}: {it['median']:.3g} "
            f"[{it['lower']:.3g}, {it['upper']:.3g}]. Nodes holding 90 % of P(top), to check first: "
            f"{html.escape(', '.join(map(str, look)))}.</div>"),
            *_missing_note(result, pos),
            _figure(plot_it_score(result, scm, anomaly=label, ci_prob=ci_prob, normal_scores=normal)),
            _table(rows[["node", "median", "lower", "upper", "prob_top", "prob_positive"]].head(max_nodes)),
            _figure(plot_forest(result, anomaly=label, ci_prob=ci_prob, max_nodes=max_nodes)),
            _figure(plot_graph(result, scm, anomaly=label, max_nodes=min(max_nodes, 8))),
        ]
    diagnostics = scm.summary()
    parts += [
        "<h2>Fit diagnostics</h2>",
        (f"<p class='note'>{len(scm.nodes_)} nodes fitted on {len(scm.training_data_)} rows, "
        f"{scm.num_draws_} posterior draws, seed {scm.seed_}. One row per node: parents, mechanism family, "
        "the training rows it was fitted on (rows_used: where the node and its parents are all observed), "
        "inference engine and its diagnostics (R-hat and ESS for NUTS, ELBO change for SVI).</p>"),
        _table(diagnostics.astype({c: str for c in diagnostics.columns if diagnostics[c].dtype == object})),
    ]
    if len(scm.selection_):
        parts += [
            "<details><summary>Automatic choice of mechanisms (cross-validated elpd per candidate)</summary>",
            _table(scm.selection_),
            "</details>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def _missing_note(result: Any, pos: int) -> list[str]:
    """A note on the anomaly's missing values (integrated out), or nothing when it has none."""
    missing = result.method_info.get("missing")
    if not missing or len(missing) != len(result.anomalies) or not missing[pos]:  # none, or pooled rows
        return []
    ess = result.method_info.get("impute_ess_min", [None] * len(missing))[pos]
    return [(f"<p class='note'>Missing values integrated out: <b>{html.escape(', '.join(missing[pos]))}</b>. "
             "Each posterior draw completes the row with its own draw of them given the observed values, so the "
             f"intervals include what they could have been (fewest effective candidates per draw: {ess}).</p>")]


def write_report(result: Any, scm: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`render_report` to ``path``.

    Parameters
    ----------
    result : AttributionResult
        The attribution to report.
    scm : BayesianSCM
        The fitted model it came from.
    path : str or pathlib.Path
        Where to write the HTML file.
    **kwargs
        Passed to :func:`render_report` (``ci_prob``, ``max_nodes``, ``title``, ``progress``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.write_text(render_report(result, scm, **kwargs), encoding="utf-8")
    return path
