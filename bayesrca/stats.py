"""Statistics of posterior draws shared by the result containers and the plots.

Credible intervals (equal-tailed or highest-density) and their argument checks, per-node
summaries of draws (mean, median, sd, interval), the posterior probability of being the
largest, tidy summary tables, and the conversion of draws to :class:`arviz.InferenceData`.
Nothing here plots; arviz is imported only inside :func:`inference_data`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesrca.exceptions import ConfigError

__all__ = [
    "CI_KINDS",
    "check_interval_args",
    "coord_values",
    "inference_data",
    "interval",
    "label_index",
    "summarise_draws",
    "tidy_summary",
    "top_probability",
]

#: Interval kinds: ``"eti"`` (equal-tailed) and ``"hdi"`` (highest density).
CI_KINDS = ("eti", "hdi")


def check_interval_args(ci_prob: Any, ci_kind: Any = "eti", name: str = "ci_prob") -> str:
    """Validate an interval probability and interval kind.

    Parameters
    ----------
    ci_prob : float
        Probability mass of the interval; a float strictly between 0 and 1.
    ci_kind : {"eti", "hdi"}, default "eti"
        Equal-tailed or highest-density interval (case-insensitive).
    name : str, default "ci_prob"
        Name of the probability argument, for the error message.

    Returns
    -------
    str
        ``ci_kind`` in lower case.

    Raises
    ------
    ConfigError
        If ``ci_prob`` is not a float in (0, 1) or ``ci_kind`` is not a known kind.
    """
    if not isinstance(ci_prob, (float, np.floating)) or not 0.0 < float(ci_prob) < 1.0:
        raise ConfigError(f"{name} must be a float strictly between 0 and 1, e.g. 0.9; got {ci_prob!r}.")
    if not isinstance(ci_kind, str) or ci_kind.lower() not in CI_KINDS:
        raise ConfigError(f"ci_kind must be 'eti' (equal-tailed) or 'hdi' (highest density); got {ci_kind!r}.")
    return ci_kind.lower()


def interval(draws: np.ndarray, ci_prob: float, ci_kind: str = "eti") -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of a credible interval along axis 0 (the draws).

    Parameters
    ----------
    draws : numpy.ndarray
        Posterior draws along the first axis.
    ci_prob : float
        Probability mass of the interval (checked by :func:`check_interval_args`).
    ci_kind : {"eti", "hdi"}, default "eti"
        ``"eti"``: the ``(1 - ci_prob) / 2`` and ``(1 + ci_prob) / 2`` quantiles; ``"hdi"``: the
        narrowest window holding ``floor(ci_prob * D) + 1`` sorted draws (as :func:`arviz.hdi`).

    Returns
    -------
    tuple of numpy.ndarray
        ``(lower, upper)``, each of shape ``draws.shape[1:]``.
    """
    if ci_kind == "eti":
        return tuple(np.quantile(draws, [(1.0 - ci_prob) / 2.0, (1.0 + ci_prob) / 2.0], axis=0))
    ordered = np.sort(draws, axis=0)
    num = ordered.shape[0]
    inc = int(np.floor(ci_prob * num))
    widths = ordered[inc:] - ordered[: num - inc]
    start = np.argmin(widths, axis=0)[None]
    return np.take_along_axis(ordered, start, axis=0)[0], np.take_along_axis(ordered, start + inc, axis=0)[0]


def summarise_draws(draws: np.ndarray, ci_prob: float = 0.9, ci_kind: str = "eti") -> dict[str, np.ndarray]:
    """Posterior mean, median, standard deviation and interval along axis 0 of ``draws``.

    Parameters
    ----------
    draws : numpy.ndarray
        Posterior draws along the first axis.
    ci_prob : float, default 0.9
        Probability mass of the interval.
    ci_kind : {"eti", "hdi"}, default "eti"
        Kind of interval, see :func:`interval`.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``mean, median, sd, lower, upper`` (``sd`` with ``ddof=1`` when there are at
        least two draws), each of shape ``draws.shape[1:]``.
    """
    lower, upper = interval(draws, float(ci_prob), ci_kind)
    return {
        "mean": draws.mean(axis=0),
        "median": np.median(draws, axis=0),
        "sd": draws.std(axis=0, ddof=1 if draws.shape[0] > 1 else 0),
        "lower": lower,
        "upper": upper,
    }


def top_probability(draws: np.ndarray) -> np.ndarray:
    """Posterior probability that each entry of the last axis is the largest one.

    Parameters
    ----------
    draws : numpy.ndarray
        Draws along the first axis, competitors along the last axis.

    Returns
    -------
    numpy.ndarray
        Shape ``draws.shape[1:]``: the fraction of draws in which the entry is the largest,
        ties split evenly (sums to 1 over the last axis).
    """
    is_top = draws == draws.max(axis=-1, keepdims=True)
    return (is_top / is_top.sum(axis=-1, keepdims=True)).mean(axis=0)


def label_index(labels: Sequence[Any]) -> pd.Index:
    """Labels as a :class:`pandas.Index` (tuples stay single labels)."""
    return pd.Index(list(labels), tupleize_cols=False)


def coord_values(labels: Sequence[Any]) -> list:
    """Coordinate values for arviz: the labels when unique numbers, their strings otherwise."""
    numeric = all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in labels)
    if numeric and len(set(labels)) == len(labels):
        return list(labels)
    return [str(v) for v in labels]


def tidy_summary(
    draws: np.ndarray,
    labels: Sequence[Any],
    nodes: Sequence[str],
    label_col: str,
    ci_prob: float,
    ci_kind: str,
    *,
    by_magnitude: bool = False,
    **extra: np.ndarray | None,
) -> pd.DataFrame:
    """Tidy summary of ``(D, G, n)`` draws: one row per (group, node).

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(D, G, n)``: draws, groups (e.g. anomalies), nodes.
    labels : sequence
        The ``G`` group labels.
    nodes : sequence of str
        The ``n`` node names.
    label_col : str
        Name of the group column.
    ci_prob : float
        Probability mass of the interval.
    ci_kind : {"eti", "hdi"}
        Kind of interval.
    by_magnitude : bool, default False
        Sort by absolute median instead of median.
    **extra : numpy.ndarray or None
        Further ``(G, n)`` columns, in order; ``None`` ones are left out.

    Returns
    -------
    pandas.DataFrame
        Columns ``label_col, node, mean, median, sd, lower, upper`` and the extras, sorted by
        group (original order), then by (absolute) median descending.
    """
    stats = summarise_draws(draws, ci_prob, ci_kind)
    num_nodes = draws.shape[2]
    key = np.abs(stats["median"]) if by_magnitude else stats["median"]
    order = np.argsort(-key, axis=1, kind="stable")
    columns: dict[str, Any] = {
        label_col: label_index(labels).repeat(num_nodes),
        "node": np.asarray(nodes, dtype=object)[order].ravel(),
    }
    for name, value in {**stats, **extra}.items():
        if value is not None:
            columns[name] = np.take_along_axis(value, order, axis=1).ravel()
    return pd.DataFrame(columns)


def inference_data(
    variables: Mapping[str, tuple[np.ndarray, list[str]]], coords: Mapping[str, list], attrs: Mapping[str, str]
) -> Any:
    """One-chain :class:`arviz.InferenceData` (a ``DataTree`` on arviz 1.x) of posterior draws.

    Parameters
    ----------
    variables : mapping
        ``{name: (draws, dims)}`` with draws along the first axis and ``dims`` naming the
        other axes (chain and draw are added).
    coords : mapping
        Coordinate values per dimension.
    attrs : mapping
        Attributes of the posterior group and of the whole object.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        The posterior group holds every variable with dims ``(chain, draw, *dims)``.
    """
    import arviz

    posterior = {name: draws[None].copy() for name, (draws, _) in variables.items()}
    dims = {name: list(names) for name, (_, names) in variables.items()}
    if int(arviz.__version__.split(".")[0]) >= 1:  # arviz-base: groups in one dict, attrs per group
        return arviz.from_dict(
            {"posterior": posterior}, coords=dict(coords), dims=dims, attrs={"posterior": dict(attrs), "/": dict(attrs)}
        )
    return arviz.from_dict(posterior=posterior, coords=dict(coords), dims=dims, posterior_attrs=dict(attrs), attrs=dict(attrs))
