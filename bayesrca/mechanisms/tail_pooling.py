r"""One prior for the tail shapes of a whole model: partial pooling of the GPD tails across nodes.

Each ``"bootstrap_gpd"`` noise has two generalised Pareto tails whose shape :math:`\xi_j` has a
spike-and-slab prior (:mod:`bayesrca.mechanisms.gpd`): exactly exponential (:math:`\xi_j = 0`)
with probability :math:`\pi`, otherwise half-normal. Fitted node by node, :math:`\pi = 1/2` for
every tail, independently. With few exceedances per tail (100 training rows give about 10) the
data favour the exponential tail only weakly, so every node keeps a sizeable chance of a heavy
tail, independently of the others. A far event can be reached through any node's tail, and its
probability is dominated by the heaviest tail of the draw: with six nodes each heavy with
probability 0.4, a draw in which *no* tail is heavy has probability :math:`0.6^6 \approx 0.05`,
and the IT score of a far outlier in a system whose noises are all light-tailed (exponential,
Gaussian) is biased low in almost every draw, its interval below the truth.

The nodes of one system tell about each other: the tails of one model share :math:`\pi`, with a
uniform hyperprior :math:`\pi \sim U(0, 1)` (the prior probability of each tail being exponential
stays 1/2, as for a node fitted alone), upper and lower tails separately (a latency's lower tail
is bounded, its upper tail may be heavy). Given each tail's Bayes factor
:math:`B_j = p(y_j \mid \xi_j = 0) / p(y_j \mid \text{slab})` (exact on the grid,
:class:`~bayesrca.mechanisms.gpd.TailGrid`):

.. math::

    p(\pi \mid y) \propto \prod_j \big(\pi B_j + 1 - \pi\big), \qquad
    P(\xi_j = 0 \mid \pi, y_j) = \frac{\pi B_j}{\pi B_j + 1 - \pi},

and (shape, scale) of tail j given its hypothesis is that hypothesis' grid posterior. Every
posterior draw d takes its own :math:`\pi_d` from the grid posterior of :math:`\pi`, then each
tail's hypothesis and parameters given :math:`\pi_d`: exact draws from the joint posterior, in
which the tails of one draw are correlated through :math:`\pi_d` (a system of light tails has
draws in which all its tails are light). A tail with strong evidence either way keeps it; the
weak evidence of the others is pooled. A model with one tail per side is left as fitted (its
pooled prior is its own).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch

from .base import Mechanism

__all__ = ["POOL_GRID", "pool_tail_shapes"]

#: Points of the grid over pi (midpoints of equal cells of (0, 1)).
POOL_GRID = 200


def _tails(mechanisms: Mapping[Hashable, Mechanism], num_draws: int) -> dict[str, list[tuple]]:
    """Per side, ``(mechanism part, grid, unit, global draw indices)`` of every fitted GPD tail."""
    out: dict[str, list[tuple]] = {"lower": [], "upper": []}
    for mech in mechanisms.values():
        parts = getattr(mech, "components_", None) or [mech]
        index = getattr(mech, "draw_index_", None)
        for k, part in enumerate(parts):
            pool = getattr(part, "_tail_pool", None)
            params = getattr(part, "noise_params_", {})
            if pool is None or "shape_upper" not in params:
                continue
            draws = index[k] if index is not None else torch.arange(num_draws)
            for side in out:
                out[side].append((part, pool[side], pool["unit"], draws))
    return out


def pool_tail_shapes(mechanisms: Mapping[Hashable, Mechanism], num_draws: int, seed: int) -> dict[str, Any]:
    """Redraw the GPD tail shapes and scales of a fitted model's mechanisms under one shared prior.

    In place: every pooled tail's ``shape_*`` and ``scale_*`` noise parameters are replaced by draws
    from the pooled posterior (module docstring), its ``tail_shape_*`` diagnostic by their mean, and
    ``tail_pool_exponential_*`` (the posterior mean of :math:`\\pi`) is added to its diagnostics.

    Parameters
    ----------
    mechanisms : mapping
        Node to fitted mechanism (a :class:`~bayesrca.mechanisms.FamilyMixture`'s components are
        pooled on their own draws). Its order fixes which random numbers each tail gets: pass the
        nodes in a fixed order (the fit's), not in the order their fits finished.
    num_draws : int
        Posterior draws of the model.
    seed : int
        Seed of the redraw.

    Returns
    -------
    dict
        Per side with at least two tails: ``{"tails": count, "exponential_share": E[pi | data]}``.
    """
    generator = torch.Generator().manual_seed(int(seed) % 2**63)
    grid = (torch.arange(POOL_GRID, dtype=torch.float64) + 0.5) / POOL_GRID
    summary: dict[str, Any] = {}
    for side, tails in _tails(mechanisms, num_draws).items():
        if len(tails) < 2:
            continue
        log_bf = torch.tensor([t[1].log_bf for t in tails], dtype=torch.float64)
        # log prod_j (pi B_j + 1 - pi) on the grid, uniform prior
        log_post = torch.logaddexp(grid.log().unsqueeze(-1) + log_bf, torch.log1p(-grid).unsqueeze(-1)).sum(-1)
        prob = torch.softmax(log_post, 0)
        cell = torch.multinomial(prob, num_draws, replacement=True, generator=generator)
        jitter = torch.rand(num_draws, dtype=torch.float64, generator=generator) - 0.5
        pi = (grid[cell] + jitter / POOL_GRID).clamp(1e-12, 1 - 1e-12)  # (D,): one pi per posterior draw
        share = float((prob * grid).sum())
        for part, tail, unit, draws in tails:
            exponential = torch.rand(len(draws), dtype=torch.float64, generator=generator) < tail.exponential_prob(pi[draws])
            shape, scale = tail.draw(exponential, generator)
            part.noise_params_[f"shape_{side}"] = shape
            part.noise_params_[f"scale_{side}"] = scale * unit
            part.diagnostics_[f"tail_shape_{side}"] = float(shape.mean())
            part.diagnostics_[f"tail_pool_exponential_{side}"] = share
        summary[side] = {"tails": len(tails), "exponential_share": share}
    return summary
