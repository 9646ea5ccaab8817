"""One node's fit: family selection (``"auto"``), averaging and the posterior, as a task.

:meth:`bayesrca.BayesianSCM.fit` runs :func:`fit_node` once per node, in this process or on an
executor (:mod:`bayesrca.parallel`); everything a node's fit needs travels in its arguments (its
column, its parents' columns, its own seed), so a worker needs no other state.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import networkx as nx
import pandas as pd

from . import graph as graphs
from ._random import seeded
from ._warnings import user_stacklevel
from .exceptions import CompleteCaseWarning, DataError
from .threads import torch_threads
from .mechanisms import Mechanism
from .mechanisms.mixture import FamilyMixture
from .mechanisms.registry import default_candidates
from .selection import discrete_mechanism, select_mechanism

__all__ = ["fit_node", "fit_node_task"]


def fit_node(
    node: str,
    spec: Any,
    kind: str | None,
    y: np.ndarray,
    pa: np.ndarray,
    *,
    seed: np.random.SeedSequence,
    num_draws: int,
    constant: bool,
    averaging: str,
    weighting: str,
    constant_noise_scale: float | None,
    progress: bool,
) -> tuple[Mechanism, pd.DataFrame | None]:
    """Fit one node's mechanism to its column ``y`` given its parents' columns ``pa`` ``(rows, parents)``.

    Parameters
    ----------
    node : str
        The node's name (for messages and the selection table).
    spec : Mechanism or "auto"
        An unfitted mechanism, or "auto" (discrete families for booleans and counts, else the
        candidates of :func:`~bayesrca.mechanisms.registry.default_candidates` by held-out
        predictive density).
    kind : str or None
        :func:`~bayesrca.selection.discrete_kind` of the column under "auto".
    seed : numpy.random.SeedSequence
        The node's own seed: the same seed gives the same fit in any process.
    num_draws : int
        Posterior draws.
    constant : bool
        Whether the column is constant in the training data (no family selection).
    averaging, weighting : str
        ``BayesianSCM.averaging`` and the weighting of the selection table.
    constant_noise_scale : float or None
        Set on the families that take it; None leaves a user's mechanism as it is.
    progress : bool
        Progress of a long per-node sampler (NUTS).

    Returns
    -------
    mechanism : Mechanism
        Fitted.
    table : pandas.DataFrame or None
        The selection table under "auto" (None otherwise).
    """
    # fresh C-ordered copies: numpy's and torch's reductions depend on memory layout (a column
    # mean over a Fortran-ordered frame differs from a C-ordered one by ~1e-17), and a task's
    # arrays arrive in a worker in whatever layout pickling gave them
    y, pa = np.array(y, order="C"), np.array(pa, dtype=np.float64, order="C")
    rng = np.random.default_rng(seed)
    table = None
    with seeded(int(seed.generate_state(1)[0])):
        discrete = discrete_mechanism(kind, y, pa) if kind is not None else None
        no_parents = pa.shape[1] == 0
        if discrete is not None:  # booleans and (not overdispersed) counts
            mech = discrete
        elif spec == "auto" and not constant and len(y) >= 40:
            candidates = default_candidates(y, no_parents, pa)
            mech, table = select_mechanism(candidates, y, pa, rng=rng, weighting=weighting, node=node)
            if averaging != "none":
                mech = averaged(candidates, table["averaged_weight"].to_numpy())
        elif spec == "auto":
            mech = default_candidates(y, no_parents)[0]
        else:
            mech = spec
        if constant_noise_scale is not None:
            for part in mech.components if isinstance(mech, FamilyMixture) else [mech]:
                if hasattr(part, "constant_noise_scale"):
                    part.constant_noise_scale = constant_noise_scale
        mech.fit(y, pa, num_draws=num_draws, progress=progress, node=node)
    return mech, table


def fit_node_task(node, spec, kind, y, pa, options: dict) -> tuple[Mechanism, pd.DataFrame | None]:
    """:func:`fit_node` with its keyword options in one mapping (a task: ``fn(*args)``), under the
    caller's number of torch threads (``options["threads"]``, :mod:`bayesrca.threads`)."""
    kwargs = dict(options)
    with torch_threads(kwargs.pop("threads")):
        return fit_node(node, spec, kind, y, pa, **kwargs)


def averaged(candidates: Sequence[Mechanism], weights: np.ndarray) -> Mechanism:
    """The candidates with positive weight: one alone, or a :class:`FamilyMixture` of several."""
    kept = [(c, float(w)) for c, w in zip(candidates, weights) if w > 0]
    if len(kept) == 1:
        return kept[0][0].clone()
    return FamilyMixture([c.clone() for c, _ in kept], [w for _, w in kept])


#: A node fitted on less than this share of the rows that observe it gets a :class:`CompleteCaseWarning`.
MIN_COMPLETE_SHARE = 0.5


def complete_cases(frame: pd.DataFrame, graph: nx.DiGraph, order: Sequence[Hashable]) -> dict[Hashable, int]:
    """Per node, the rows where it and its parents are all observed; a :class:`DataError` below two.

    Warns (:class:`CompleteCaseWarning`) when a node keeps less than :data:`MIN_COMPLETE_SHARE`
    of the rows that observe it.

    Each mechanism models ``p(x_j | pa_j)``, so the rows where its parents or itself are
    missing carry no information about it that a complete-case fit could use (missing at random).
    """
    counts, thin = {}, []
    for node in order:
        parents = graphs.parents_of(graph, node)
        counts[node] = int(frame[[node, *parents]].notna().all(axis=1).sum())
        observed = int(frame[node].notna().sum())
        if counts[node] < MIN_COMPLETE_SHARE * observed:
            sparse = sorted(parents, key=lambda p: int(frame[p].notna().sum()))[:2]
            thin.append(f"{node!r} on {counts[node]} of {observed} rows (parents most often missing: {sparse!r})")
        if counts[node] < 2:
            observed = int(frame[node].notna().sum())
            raise DataError(
                f"training data: node {node!r} has {counts[node]} row(s) where it and its parents {list(parents)!r} "
                f"are all observed ({observed} where it is), but its mechanism needs at least 2; "
                "supply rows where they are observed together, or fill its missing values"
            )
    if thin:
        warnings.warn(
            "training data: some nodes are fitted on less than half of the rows that observe them, because a parent "
            "is missing in the others: " + "; ".join(thin[:5]) + ("; ..." if len(thin) > 5 else "")
            + ". If those values are missing for a reason tied to them (e.g. no requests), the fit is biased; "
            "consider filling them with their meaning (e.g. a neutral value).",
            CompleteCaseWarning,
            stacklevel=user_stacklevel(),
        )
    return counts
