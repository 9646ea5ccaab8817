r"""The target split into a propagated nonlinear part and a linearised rest, per posterior draw.

The nonlinear part U (every nonlinear player and its ancestors, :func:`nonlinear_closure`) is
left to the program; the linear rest R is linearised (:func:`linearize`), giving

.. math:: X_t = c + \sum_{j \in R} a_j N_j + \sum_{k \in B} b_k X_k

with B the nodes of U that have a child in R. The tail estimators build every coalition's
distribution of :math:`X_t` from these pieces and the abducted noise of the anomalies.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .ops import abduct_noise, linearize, nonlinear_closure

__all__ = ["TargetDecomposition", "decompose_target"]


@dataclass(frozen=True)
class TargetDecomposition:
    """The pieces of :math:`X_t` the tail estimators share (see the module docstring).

    Attributes
    ----------
    target : hashable
        The target node t.
    players : list
        The target's ancestors and itself in topological order (player j is ``players[j]``).
    abducted : dict
        Player to the anomalies' noise, ``(K, D)``.
    upstream, rest, inputs : list
        The propagated players U, the linearised players R and the boundary B, in topological order.
    up_idx, rest_idx : list of int
        Player indices of U and R.
    moves : torch.Tensor
        ``(D, n)`` bool: players whose noise can move X_t in a draw. A linear player with
        coefficient 0 (e.g. a constant column) cannot; nonlinear players are assumed to.
    offset : torch.Tensor
        ``(D,)``: the constant c (0 when R is empty).
    coef : torch.Tensor or None
        ``(D, |R|)``: the coefficients :math:`a_j`; None when R is empty.
    input_coef : torch.Tensor or None
        ``(D, |B|)``: the coefficients :math:`b_k`; None when R is empty.
    kept_effect : torch.Tensor
        ``(K, D, |R|)``: :math:`a_j n_j` for every anomaly's abducted noise.
    """

    target: Hashable
    players: list
    abducted: dict
    upstream: list
    rest: list
    inputs: list
    up_idx: list
    rest_idx: list
    moves: torch.Tensor
    offset: torch.Tensor
    coef: torch.Tensor | None
    input_coef: torch.Tensor | None
    kept_effect: torch.Tensor

    @property
    def num_anomalies(self) -> int:
        """The number K of anomalies."""
        return self.kept_effect.shape[0]

    @property
    def num_draws(self) -> int:
        """The number D of posterior draws."""
        return self.moves.shape[0]


def decompose_target(
    scm,
    target: Hashable,
    players: Sequence[Hashable],
    observed: Mapping[Hashable, torch.Tensor],
    *,
    propagate_nonlinear: bool,
) -> TargetDecomposition:
    """Abduct the anomalies' noise and split X_t into U and R.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target : hashable
        The target node.
    players : sequence
        The target's ancestors and itself in topological order.
    observed : mapping
        Node to observed values of shape ``(K, 1)``.
    propagate_nonlinear : bool
        Propagate the nonlinear closure U through the program (Monte Carlo); False linearises
        every player (closed form: all players are linear).

    Returns
    -------
    TargetDecomposition
    """
    players = list(players)
    num_draws = scm.num_draws_
    num_anomalies = observed[target].shape[0]
    abducted = abduct_noise(scm, players, observed)
    upstream = nonlinear_closure(scm, players) if propagate_nonlinear else []
    rest = [p for p in players if p not in upstream]
    inputs = [k for k in upstream if any(c in rest for c in scm.graph_.successors(k))]
    moves = torch.ones(num_draws, len(players), dtype=torch.bool)
    rest_idx = [players.index(p) for p in rest]
    coef = input_coef = None
    if rest:
        offsets, coefs = linearize(scm, rest, inputs)
        offset, a = offsets[target], coefs[target]
        input_coef = a[:, len(rest) :]  # (D, |B|)
        coef = a[:, : len(rest)]
        kept_effect = torch.stack([abducted[p] for p in rest], -1) * coef  # (K, D, |R|)
        moves[:, rest_idx] = coef != 0
    else:  # the target itself is nonlinear: everything is propagated
        offset = torch.zeros(num_draws, dtype=torch.float64)
        kept_effect = torch.zeros(num_anomalies, num_draws, 0, dtype=torch.float64)
    return TargetDecomposition(
        target=target,
        players=players,
        abducted=abducted,
        upstream=upstream,
        rest=rest,
        inputs=inputs,
        up_idx=[players.index(p) for p in upstream],
        rest_idx=rest_idx,
        moves=moves,
        offset=offset,
        coef=coef,
        input_coef=input_coef,
        kept_effect=kept_effect,
    )
