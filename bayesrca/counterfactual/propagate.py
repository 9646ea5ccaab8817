r"""The propagated nonlinear part U of the target, node by node, once per distinct input.

:class:`~bayesrca.counterfactual.montecarlo.MonteCarloTails` needs, per restriction of the
coalitions to U (a pattern: which players of U keep their abducted noise), the term of X_t that
U contributes, :math:`\sum_{k \in B} b_k X_k` (or X_t itself when the target is in U). Running
the program under ``KeepNoise`` with all patterns as a leading dimension computes every node once
per pattern, although a node's value depends on a pattern only through its restriction to the
node's ancestors in U and the node itself; and for an additive-noise node
(:func:`~bayesrca.mechanisms.mixture.has_additive_noise`, :math:`X_j = f_j(PA_j) + N_j`) the
expensive part :math:`f_j(PA_j)` depends on the ancestors only. Here each node is run once per
distinct restriction, its value kept per distinct restriction with a map from the patterns:
the same arithmetic on the same numbers, element by element, as the program over all patterns
(``f_j(PA_j) + 0`` is ``f_j(PA_j)`` exactly), at a fraction of the cost where patterns differ in
players downstream of the costly nodes (a spline or GP node is evaluated once for the two
values of its own player).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import cast

import networkx as nx
import torch
from pyro import poutine

from .. import graph as graphs
from .decomposition import TargetDecomposition
from .handlers import KeepNoise
from ..mechanisms.base import noise_site
from ..mechanisms.mixture import has_additive_noise

__all__ = ["distinct_rows", "upstream_values", "upstream_term"]


def distinct_rows(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows ``key`` ``(C, m)``: the index of the first row of each distinct row ``(P,)`` and
    the distinct row of each row ``(C,)`` (one distinct row when ``m = 0``)."""
    num = key.shape[0]
    if key.shape[1] == 0:
        return torch.zeros(1, dtype=torch.long), torch.zeros(num, dtype=torch.long)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), num, dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(num), reduce="amin")
    return first, inverse


def upstream_values(
    scm, upstream: list, kept: Mapping[Hashable, torch.Tensor], fresh: dict[str, torch.Tensor], patterns: torch.Tensor
) -> dict[Hashable, tuple[torch.Tensor, torch.Tensor]]:
    """The values of the nodes of U per pattern, each node run once per distinct input.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    upstream : list
        The nodes of U (closed under ancestors), in the order of the patterns' columns.
    kept : mapping
        Node to the anomalies' abducted noise ``(K, D)``.
    fresh : mapping
        Noise site to the fresh noise ``(M, K or 1, D)``.
    patterns : torch.Tensor
        ``(C, |U|)`` bool: True where the node keeps its abducted noise.

    Returns
    -------
    dict
        Node to ``(values, row)``: ``values[row[c]]`` ``(M, K or 1, D)`` is the node's value
        under pattern c, as ``KeepNoise(kept, masks)(condition(scm.program, fresh))`` gives it.
    """
    column = {p: j for j, p in enumerate(upstream)}  # the patterns' columns, in the order given
    out: dict[Hashable, tuple[torch.Tensor, torch.Tensor]] = {}
    for node in graphs.topological_order(scm.graph_, upstream):  # parents first, whatever the order given
        parents = scm.parents_[node]
        ancestors = [column[a] for a in upstream if a in nx.ancestors(scm.graph_, node)]
        first, row = distinct_rows(patterns[:, ancestors + [column[node]]])
        mask = patterns[first, column[node]].reshape(-1, 1, 1, 1)
        site = noise_site(node)
        if has_additive_noise(scm.mechanisms_[node]):  # f(PA) once per distinct ancestors' pattern
            first_pa, row_pa = distinct_rows(patterns[:, ancestors])
            given = {p: out[p][0][out[p][1][first_pa]] for p in parents}
            zero = {site: torch.zeros((), dtype=fresh[site].dtype)}
            loc = poutine.condition(scm.program, data=zero)([node], given)[node]
            if ancestors:
                loc = loc[row_pa[first]]
            values = loc + torch.where(mask, kept[node], fresh[site])
        else:
            given = {p: out[p][0][out[p][1][first]] for p in parents}
            program = KeepNoise(kept, {node: mask})(poutine.condition(scm.program, data=fresh))
            values = program([node], given)[node]
        out[node] = (values, row)
    return out


def upstream_term(scm, parts: TargetDecomposition, kept, fresh, patterns: torch.Tensor, num_m: int) -> torch.Tensor:
    """``sum_k b_k X_k`` (or ``X_t`` if the target is upstream) per pattern: ``(P, D, 1, K, M)`` float32."""
    values = upstream_values(scm, parts.upstream, kept, fresh, patterns)

    def value(node: Hashable) -> torch.Tensor:
        rows, row = values[node]
        return rows[row]

    if not parts.rest:
        term = value(parts.upstream[-1])
    else:
        coef = cast(torch.Tensor, parts.input_coef).float()  # not None: rest is non-empty
        term = cast(torch.Tensor, sum(value(k) * coef[:, i] for i, k in enumerate(parts.inputs)))
    shape = (patterns.shape[0], num_m, parts.num_anomalies, scm.num_draws_)
    return term.expand(shape).permute(0, 3, 2, 1).float().unsqueeze(2).contiguous()
