r"""Closed-form tails of a Gaussian plus the rare slabs of columns that never varied.

A linear combination of Gaussian noises and the spike-and-slab noises of columns that never varied
(:mod:`bayesrca.mechanisms.constant`) is a scale mixture of Gaussians, symmetric about its mean:
the two-sided thresholds are the Gaussian ones, and the tails are the Gaussian ones mixed over
which constant column changes, to first order in the change probabilities. Used by the
closed-form attribution (:mod:`bayesrca.counterfactual.analytic`) and the marginal outlier scores.
"""

from __future__ import annotations

import math

import torch

from ..mechanisms.constant import SpikeSlabNormal
from .tails import gaussian_log_tail

__all__ = ["scale_mixture_log_tail", "slab_terms"]


def _normal_or_point_log_tail(lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """:func:`gaussian_log_tail`, and for ``sd = 0`` the point mass at ``mean``: the event inclusive
    within a relative 1e-9 (the observed value itself lies on its threshold)."""
    finite = [torch.where(t.isfinite(), t.abs(), torch.zeros_like(t)) for t in (lo, hi)]
    tol = 1e-9 * (torch.maximum(*finite) + mean.abs()) + 1e-12
    inside = (mean <= lo + tol) | (mean >= hi - tol)
    point = torch.where(inside, 0.0, -math.inf).to(mean.dtype)
    return torch.where(sd > 0, gaussian_log_tail(lo, hi, mean, sd), point)


def scale_mixture_log_tail(
    lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, extra_var: torch.Tensor,
    log_prob: torch.Tensor,
) -> torch.Tensor:
    r"""``log(P(Y <= lo) + P(Y >= hi))`` for a Gaussian plus rare extra Gaussian parts.

    :math:`Y = m + \sqrt{V}\,Z_0 + \sum_j B_j \sqrt{E_j}\, Z_j` with independent standard normal
    :math:`Z` and :math:`B_j \sim \text{Bernoulli}(\varepsilon_j)`, to first order in
    :math:`\varepsilon`: with probability :math:`1 - \sum_j \varepsilon_j` no extra part, with
    :math:`\varepsilon_j` only part j (the omitted terms have probability :math:`O(\varepsilon^2)`).
    The tails of noises that are Gaussian or the spike-and-slab noise of a column that never varied
    (:mod:`bayesrca.mechanisms.constant`); ``V = 0`` is a point mass.

    Parameters
    ----------
    lo, hi, mean, var : torch.Tensor
        Broadcastable; the event is ``Y <= lo`` or ``Y >= hi``.
    extra_var, log_prob : torch.Tensor
        Last dimension J: each extra part's variance and ``log eps_j`` (``-inf``: the part is absent).

    Returns
    -------
    torch.Tensor
        The broadcast shape of the first four, clamped to <= 0.
    """
    total = torch.logsumexp(log_prob, -1) if log_prob.shape[-1] else torch.full_like(var, -math.inf)
    base_log_w = torch.log1p(-total.exp().clamp(max=1 - 1e-12))
    out = base_log_w + _normal_or_point_log_tail(lo, hi, mean, var.sqrt())
    for j in range(extra_var.shape[-1]):
        part = log_prob[..., j] + gaussian_log_tail(lo, hi, mean, (var + extra_var[..., j]).sqrt())
        out = torch.logaddexp(out, part)
    return out.clamp(max=0.0)


def slab_terms(dists: list, coef: torch.Tensor) -> tuple[torch.Tensor, list[int], torch.Tensor, torch.Tensor]:
    """The Gaussian part and the rare extra parts of ``sum_j coef_j N_j`` for Gaussian and
    spike-and-slab noises ``dists`` (the arguments of :func:`scale_mixture_log_tail`).

    Parameters
    ----------
    dists : list
        Per player, its noise (Gaussian or :class:`~bayesrca.mechanisms.constant.SpikeSlabNormal`),
        batch shape ``(D,)``.
    coef : torch.Tensor
        ``(..., D, P)``: each player's coefficient.

    Returns
    -------
    sd : torch.Tensor
        ``(D, P)``: each noise's Gaussian part (0 for a spike: a point mass).
    mix : list of int
        The spike-and-slab players.
    extra_var, log_prob : torch.Tensor
        ``(..., D, J)``: their slabs' variance in the sum, and ``log slab_prob`` (``-inf`` where the
        coefficient is 0: the slab does not reach the sum).
    """
    sd = torch.stack([torch.zeros_like(d.spike) if isinstance(d, SpikeSlabNormal) else d.stddev for d in dists], -1)
    mix = [j for j, d in enumerate(dists) if isinstance(d, SpikeSlabNormal)]
    slabs = [dists[j].slab_parts() for j in mix]
    a2 = coef[..., mix] ** 2
    if not mix:
        return sd, mix, a2, a2
    extra = a2 * torch.stack([e for e, _ in slabs], -1)
    log_prob = torch.where(a2 > 0, torch.stack([p for _, p in slabs], -1), -math.inf)
    return sd, mix, extra, log_prob
