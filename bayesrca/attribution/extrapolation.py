"""Which anomalies feed a mechanism far outside the parent values it was fitted on.

Far outside its training data a fitted mechanism is an extrapolation: a spline continues linearly, a
GLM follows its link, a Gaussian process reverts to its trend. When the extrapolation is wrong, the
child's abducted noise absorbs the misfit and the blame moves from the root cause to the child
(or further down), often with a narrow interval. Nothing in the training data can check this, so
:func:`check_extrapolation` says where it happens: an :class:`~bayesrca.ExtrapolationWarning`
naming the parent -> child edges, and the anomalies' labels for ``method_info["extrapolated"]``.

A mechanism is checked when its behaviour beyond the data is a product of the fit rather than an
assumption the user made: every nonlinear mechanism, and a *linear* one that ``mechanisms="auto"``
chose over nonlinear candidates (its own ``selection_`` rows list a nonlinear candidate). Inside
the training range the held-out fit could not tell the linear fit from the nonlinear ones; beyond
it the straight line is an assumption, and its posterior is the narrowest of all (the slope's
uncertainty only). A linear mechanism the user asked for (``mechanisms="linear"``, a
:class:`~bayesrca.LinearANM` instance) extrapolates by assumption and is not flagged.
"""

from __future__ import annotations

import copy
import warnings
import zlib
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from .._warnings import user_stacklevel
from ..exceptions import ExtrapolationWarning
from ..mechanisms.hinges import beyond_data

__all__ = [
    "EXTRAPOLATION_RANGES", "check_extrapolation", "conditioned_models", "extrapolated_edges", "learned_beyond_data",
    "with_mechanisms",
]

#: A parent value further than this many training ranges beyond the training data counts as far.
EXTRAPOLATION_RANGES = 0.5

#: ``select_mechanism``'s cost class of nonlinear candidates.
_NONLINEAR_CLASS = 2


def learned_beyond_data(scm, node: Hashable) -> bool:
    """Whether ``node``'s behaviour far from its training parents comes from the fit, not the user.

    True for a nonlinear mechanism, and for a linear one chosen by ``mechanisms="auto"`` over
    nonlinear candidates (the node's rows of ``scm.selection_`` have a nonlinear cost class).
    """
    if not scm.mechanisms_[node].is_linear:
        return True
    table = scm.selection_
    if not isinstance(table, pd.DataFrame) or table.empty or not {"node", "cost_class"} <= set(table.columns):
        return False
    # the table stores nodes as given (labels may be strings or not): compare as the table does
    rows = table[table["node"].astype(str) == str(node)]
    return bool((rows["cost_class"] == _NONLINEAR_CLASS).any())


def extrapolated_edges(scm, players: Sequence[Hashable], frame: pd.DataFrame,
                       ranges: float = EXTRAPOLATION_RANGES) -> tuple[list[str], np.ndarray]:
    """Edges and anomalies where a checked mechanism sees a parent far beyond its training values.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model (``training_data_``, ``parents_``, ``mechanisms_``, ``selection_``).
    players : sequence
        The nodes attributed; only their mechanisms are checked.
    frame : pandas.DataFrame
        The anomaly rows (NaN: missing, not checked).
    ranges : float
        A value is far when it lies more than ``ranges`` training ranges below the training
        minimum or above the maximum.

    Returns
    -------
    edges : list of str
        ``"'parent' -> 'child' (k row(s), e.g. value vs training [lo, hi])"`` per edge, with
        ``"(linear, chosen by 'auto')"`` for a linear mechanism (:func:`learned_beyond_data`).
    rows : ndarray of bool, shape (len(frame),)
        Which anomalies feed at least one such edge.
    """
    train = scm.training_data_
    edges, rows = [], np.zeros(len(frame), dtype=bool)
    for node in players:
        if not scm.parents_[node] or not learned_beyond_data(scm, node):
            continue
        kind = " (linear, chosen by 'auto')" if scm.mechanisms_[node].is_linear else ""
        for parent in scm.parents_[node]:
            lo, hi = float(train[parent].min()), float(train[parent].max())
            margin = ranges * max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
            values = frame[parent].to_numpy(dtype=float)
            outside = (values < lo - margin) | (values > hi + margin)  # NaN compares False: not flagged
            if outside.any():
                rows |= outside
                edges.append(f"{parent!r} -> {node!r}{kind} ({int(outside.sum())} row(s), e.g. "
                             f"{values[outside][0]:.4g} vs training [{lo:.4g}, {hi:.4g}])")
    return edges, rows


def check_extrapolation(scm, players: Sequence[Hashable], frame: pd.DataFrame) -> np.ndarray:
    """Warn where anomalies feed a mechanism far beyond its training data; return which rows do.

    The :class:`~bayesrca.ExtrapolationWarning` names up to five edges (:func:`extrapolated_edges`);
    the flagged rows' labels go to ``method_info["extrapolated"]``.
    """
    edges, rows = extrapolated_edges(scm, players, frame)
    if edges:
        warnings.warn(
            "anomalies feed mechanisms far outside their training range, so their contributions rest on "
            "extrapolation (the child's abducted noise absorbs any misfit there, and the blame can move from "
            "the root cause to the child): " + "; ".join(edges[:5]) + ("; ..." if len(edges) > 5 else "")
            + ". See method_info['extrapolated']; check the result against other mechanisms for these nodes.",
            ExtrapolationWarning,
            stacklevel=user_stacklevel(),
        )
    return rows


def _row_seed(seed: int, values: np.ndarray, node_index: int) -> int:
    """A seed from the call's seed, the row's values and the node: the same row is conditioned alike in any batch."""
    digest = zlib.crc32(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return int(np.random.SeedSequence([int(seed) % 2**63, digest, node_index]).generate_state(1)[0])


def conditioned_models(scm, players: Sequence[Hashable], frame: pd.DataFrame, rows: np.ndarray, seed: int) -> dict:
    """Per anomaly beyond the data, the model whose unidentified extrapolation is conditioned on it.

    For every anomaly flagged in ``rows`` that lies beyond the training range of some player's
    mechanism (:func:`~bayesrca.mechanisms.hinges.beyond_data`, any distance), each player's mechanism
    is conditioned on the anomaly's own values (:meth:`Mechanism.conditioned_on`: the hinge
    weights of a :class:`~bayesrca.mechanisms.GPANM` or :class:`~bayesrca.mechanisms.SplineANM`,
    the slope beyond the data that no training row informs, get their exact posterior given the
    row, :mod:`bayesrca.mechanisms.hinges`; other mechanisms are unchanged). Rows with a missing
    value are conditioned only where the node and its parents are observed.

    Returns
    -------
    dict
        Position in ``frame`` -> ``{node: conditioned mechanism}``, for the anomalies where some
        mechanism changed (:func:`with_mechanisms` makes the model; a task carries only these).
    """
    out = {}
    # only rows beyond some mechanism's training range can change (a vectorised pre-check)
    candidates = np.zeros(len(frame), dtype=bool)
    for node in players:
        parents = list(scm.parents_[node])
        if parents:
            candidates |= beyond_data(scm.mechanisms_[node], frame[parents].to_numpy(dtype=float))
    for i in np.flatnonzero(rows & candidates):
        row = frame.iloc[int(i)]
        values = row[list(players)].to_numpy(dtype=float)
        changed = {}
        for k, node in enumerate(players):
            parents = list(scm.parents_[node])
            if not parents:
                continue
            mech = scm.mechanisms_[node]
            new = mech.conditioned_on(np.array([float(row[node])]), row[parents].to_numpy(dtype=float).reshape(1, -1),
                                      seed=_row_seed(seed, values, k))
            if new is not mech:
                changed[node] = new
        if changed:
            out[int(i)] = changed
    return out


def with_mechanisms(scm, changed: dict | None):
    """``scm`` itself (``changed`` None or empty), else a shallow copy with these nodes' mechanisms replaced."""
    if not changed:
        return scm
    model = copy.copy(scm)
    model.mechanisms_ = {**scm.mechanisms_, **changed}
    return model
