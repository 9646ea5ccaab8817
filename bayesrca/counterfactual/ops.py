"""Program-level counterfactual operations, built from the handlers over the one SCM program.

* :func:`abduct_noise`: ``trace(AbductNoise(observed)(program))`` gives each observed row's noise;
* :func:`fresh_noise_trace`: ``trace(plate(program))`` gives fresh Monte Carlo noise, shared by all
  coalitions (common random numbers);
* :func:`linearize`: ``poutine.condition`` on the zero and unit vectors gives the affine form of a
  linear sub-program, per draw;
* :func:`nonlinear_closure`: the players that must be propagated through the program rather
  than linearised (every nonlinear player and its ancestors).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import cast

import networkx as nx
import pyro
import torch
from pyro import poutine

from ..mechanisms.base import noise_site
from .handlers import AbductNoise, DropGaussianPart, ProposeNoise

__all__ = ["abduct_noise", "fresh_noise_trace", "linearize", "nonlinear_closure"]


def abduct_noise(scm, nodes: Sequence[Hashable], observed: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
    """Noise of each observed row per draw, via :class:`~bayesrca.counterfactual.handlers.AbductNoise`.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    nodes : sequence
        The nodes to run the program for (closed under ancestors), in topological order.
    observed : mapping
        Node to observed values of shape ``(K, 1)``.

    Returns
    -------
    dict
        Node to its noise, a tensor ``(K, D)`` (``D`` posterior draws).
    """
    trace = poutine.trace(AbductNoise(observed)(scm.program)).get_trace(nodes)
    return {n: cast(torch.Tensor, trace.nodes[noise_site(n)]["value"]).expand(-1, scm.num_draws_) for n in nodes}


def fresh_noise_trace(
    scm, nodes: Sequence[Hashable], num_samples: int, dim: int, drop_gaussian: Sequence = (), *,
    propose: Mapping | None = None, base=None,
):
    """Trace of the program with fresh noise: a plate of ``num_samples`` at ``dim``.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    nodes : sequence
        The nodes to run the program for (closed under ancestors), in topological order.
    num_samples : int
        Size of the Monte Carlo plate.
    dim : int
        Batch dimension of the plate (negative).
    drop_gaussian : sequence, optional
        Nodes whose noise sites carry only their non-Gaussian part
        (:class:`~bayesrca.counterfactual.handlers.DropGaussianPart`).
    propose : mapping, optional
        Node to a transform of its noise draws: those sites are drawn from a proposal
        (:class:`~bayesrca.counterfactual.handlers.ProposeNoise`, importance sampling).
    base : pyro.poutine.Trace, optional
        A trace of this function to reuse: its noise draws are replayed (before ``propose``
        transforms them), so the proposal's samples are the base samples transformed.

    Returns
    -------
    pyro.poutine.Trace
        The trace; ``trace.nodes["_RETURN"]["value"]`` maps nodes to their values.
    """

    def model():
        with pyro.plate("mc", num_samples, dim=dim):
            return scm.program(nodes)

    fn = DropGaussianPart(drop_gaussian)(model) if base is None else poutine.replay(model, trace=base)
    if propose:
        fn = ProposeNoise(propose)(fn)
    return poutine.trace(fn).get_trace()


def linearize(scm, nodes: Sequence[Hashable], inputs: Sequence[Hashable] = ()):
    """Affine form of a linear sub-program, per draw.

    Runs ``program(nodes, given=inputs)`` once with the noises and the input values
    conditioned on the zero vector and the unit vectors (a batch of ``len(nodes) +
    len(inputs) + 1`` rows). Exact when the mechanisms of ``nodes`` are linear.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    nodes : sequence
        The linear nodes, in topological order.
    inputs : sequence, optional
        Nodes outside ``nodes`` whose values are given (parents of ``nodes``).

    Returns
    -------
    offset : dict
        Node to tensor ``(D,)``.
    coef : dict
        Node to tensor ``(D, len(nodes) + len(inputs))``: coefficients on the noises of
        ``nodes`` followed by those on the ``inputs``' values.
    """
    n = len(nodes) + len(inputs)
    basis = torch.cat([torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)])
    data = {noise_site(node): basis[:, i : i + 1] for i, node in enumerate(nodes)}
    given = {k: basis[:, len(nodes) + i : len(nodes) + i + 1] for i, k in enumerate(inputs)}
    values = poutine.condition(scm.program, data=data)(nodes, given)
    shape = (n + 1, scm.num_draws_)
    offset = {j: values[j].expand(shape)[0] for j in nodes}
    coef = {j: (values[j].expand(shape)[1:] - offset[j]).T for j in nodes}
    return offset, coef


def nonlinear_closure(scm, players: Sequence[Hashable]) -> list[Hashable]:
    """Players that are nonlinear or upstream of a nonlinear player, in topological order.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    players : sequence
        Nodes closed under ancestors, in topological order.

    Returns
    -------
    list
        The sublist of ``players`` in the closure.
    """
    closure: set = set()
    for p in players:
        if not scm.mechanisms_[p].is_linear:
            closure |= nx.ancestors(scm.graph_, p) | {p}
    return [p for p in players if p in closure]
