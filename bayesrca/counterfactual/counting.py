"""Monte Carlo event counts and their log-probabilities.

* :func:`sorted_hits`: event counts per half of the samples by one sort and a binary search per
  threshold, for many anomalies that share their samples;
* :func:`conditional_log_tails`: where an event is rare, re-estimation by conditional Monte
  Carlo (the free Gaussian part integrated out, :func:`bayesrca.counterfactual.tails.mixture_log_tail`);
* :func:`log_probs`: counts to log-probabilities, all samples and each half.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from . import tails

__all__ = ["RARE_HITS", "conditional_log_tails", "log_probs", "sorted_hits"]

#: Below this many samples in the event in either half of the Monte Carlo samples, a probability is
#: re-estimated by conditional Monte Carlo (the Gaussian part of the free noises integrated out).
RARE_HITS = 10


def sorted_hits(free: torch.Tensor, centre: torch.Tensor, half: torch.Tensor, tol: torch.Tensor, side: str) -> torch.Tensor:
    """Samples in the event per half of the samples, ``(D, P, K, 2)`` float32.

    Each pattern's samples are sorted once (numpy's vectorised sort) and every anomaly's
    thresholds are located by binary search, O((M + K) log M) instead of O(M K). The half a
    sample belongs to rides in its lowest mantissa bit (a change of at most one float32 ulp),
    so one sort and one search per threshold give both halves' counts. Events are inclusive
    of their boundaries, as on the direct path up to ties of probability zero.

    Parameters
    ----------
    free : torch.Tensor
        ``(D, P, M)`` float32: the samples of X_t's free part per pattern (overwritten).
    centre : torch.Tensor
        ``(D, P, K)`` float32: the event's centre minus X_t's kept part, per anomaly.
    half, tol : torch.Tensor
        ``(D, 1, K)`` float32: the event's half-width (two-sided) and the boundary tolerance.
    side : {"two", "upper", "lower"}
        The event's tails, see :func:`bayesrca.counterfactual.tails.event_side`.
    """
    num_m = free.shape[-1]
    sizes = np.array([num_m // 2, num_m - num_m // 2], dtype=np.int32)
    second = (np.arange(num_m) >= num_m // 2).astype(np.int32)
    free_np = free.numpy()
    bits = free_np.view(np.int32)
    bits &= ~1
    bits |= second
    ordered_np = np.sort(free_np, axis=-1)
    in_second = np.zeros(ordered_np.shape[:-1] + (num_m + 1,), dtype=np.int32)
    np.cumsum(ordered_np.view(np.int32) & 1, axis=-1, out=in_second[..., 1:])
    ordered = torch.from_numpy(ordered_np)
    if side == "two":
        queries = [(centre + half, False), (centre - half, True)]
    else:
        queries = [(centre - tol, False)] if side == "upper" else [(centre + tol, True)]
    total = np.zeros((2, *centre.shape), dtype=np.int32)
    for values, right in queries:
        found = torch.searchsorted(ordered, values.expand(-1, free.shape[1], -1), right=right, out_int32=True).numpy()
        below_second = np.take_along_axis(in_second, found, axis=-1)
        below_first = found - below_second  # samples of each half below the threshold
        # right=False found the samples below the upper threshold: the event is the rest
        for h, below in enumerate((below_first, below_second)):
            total[h] += below if right else sizes[h] - below
    total = np.minimum(total, sizes[:, None, None, None])  # overlapping two-sided bounds
    return torch.from_numpy(total).permute(1, 2, 3, 0).float()  # (D, P, K, 2)


def conditional_log_tails(
    hits: torch.Tensor,
    sd: torch.Tensor,
    centres_of: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    bounds: tuple[torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    out: torch.Tensor,
    *,
    log_weights: torch.Tensor | None = None,
    ess_out: torch.Tensor | None = None,
) -> None:
    """Conditional Monte Carlo for the rare (coalition, anomaly, draw) cases of a chunk.

    Parameters
    ----------
    hits : torch.Tensor
        ``(D, c, K, 2)``: samples in the event per half of the samples (their Kish ESS under
        importance weights).
    sd : torch.Tensor
        ``(c, D)``: sd of the coalitions' free Gaussian parts.
    centres_of : callable
        ``centres_of(d, c, k)`` gives the sampled centres ``(R, M)`` of X_t minus the event's
        centre for R index triples.
    bounds : tuple of torch.Tensor
        The event's bounds relative to its centre, ``(K, D)`` each.
    rows : torch.Tensor
        Row of ``out`` of each coalition of the chunk.
    out : torch.Tensor
        ``(C, K, D, 3)``: where either half has fewer than :data:`RARE_HITS` hits and the coalition
        has a free Gaussian part (``sd > 0``), ``out[rows[c], k, d]`` receives the log-probability
        from :func:`bayesrca.counterfactual.tails.mixture_log_tail`.
    log_weights : torch.Tensor, optional
        ``(D, c, K, M)``: importance weights of the samples (:mod:`bayesrca.counterfactual.importance`).
    ess_out : torch.Tensor, optional
        ``(C, K, D)``: receives the Kish ESS of the integrated terms of the rare cases.
    """
    rare = (hits.amin(-1) < RARE_HITS) & (sd.T > 0).reshape(sd.shape[1], -1, 1)
    if not bool(rare.any()):
        return
    d, c, k = rare.nonzero(as_tuple=True)
    rel_lo, rel_hi = bounds
    lw = None if log_weights is None else log_weights[d, c, k]
    est, ess = tails.mixture_log_tail(centres_of(d, c, k), sd[c, d], rel_lo[k, d], rel_hi[k, d], return_ess=True, log_weights=lw)
    out[rows[c], k, d] = est
    if ess_out is not None:
        ess_out[rows[c], k, d] = ess


def log_probs(
    count: torch.Tensor, free_sd: torch.Tensor, rare: torch.Tensor, num_m: int,
    log_scale: torch.Tensor | None = None, anomaly_log_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(C, K, D, 3)`` log-probabilities from event counts ``(C, K, D, 2)`` per half of the samples.

    For all ``num_m`` samples and for each half: ``log(count / n)`` where the coalition has a free
    Gaussian part (``free_sd`` ``(C, D)`` > 0; rare cases come from conditional Monte Carlo in
    ``rare``, NaN elsewhere), else the p-value rule ``log((count + 1) / (n + 1))``, which never
    gives log 0. Counts are exact integers in float32 up to 2**24 samples. Under importance
    weights (``log_scale`` and ``anomaly_log_weight`` given, ``(C, K, D)`` each) the counts are
    sums of weights divided by ``exp(log_scale)`` (weights of e^-700 do not fit a float), and the
    anomaly counts with its own weight instead of 1; the arithmetic is then in log space.
    """
    half_m = num_m // 2
    totals = torch.tensor([num_m, half_m, num_m - half_m], dtype=torch.float32)
    counts = torch.cat([count.sum(-1, keepdim=True), count], -1)
    gaussian = (free_sd > 0).unsqueeze(1).unsqueeze(-1)  # (C, 1, D, 1)
    if log_scale is not None and anomaly_log_weight is not None:
        log_count = counts.double().log() + log_scale.unsqueeze(-1)
        plain = torch.logaddexp(log_count, anomaly_log_weight.unsqueeze(-1)) - (totals.double() + 1).log()
        probs = torch.where(gaussian, log_count - totals.double().log(), plain).clamp(max=0.0)
        return torch.where(rare.isnan(), probs, rare)
    probs = torch.where(gaussian, counts / totals, (counts + 1) / (totals + 1))
    probs = probs.clamp_(max=1.0).log_().double()
    return torch.where(rare.isnan(), probs, rare)
