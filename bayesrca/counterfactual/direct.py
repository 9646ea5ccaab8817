r"""Direct event counts: every Monte Carlo sample compared with every anomaly's event, per coalition.

The path of :class:`~bayesrca.counterfactual.montecarlo.MonteCarloTails` for few anomalies, for a
propagated nonlinear part and under an importance-sampling proposal. Per chunk of coalitions the
samples of X_t minus the event's centre are built (float32, layout ``(D, c, K, M)``), turned into
twice the event's indicator (2 inside, 0 outside, 1 on the boundary, which counts 1/2), and the
sums over each half of the samples, of the weights and of the squared weights in the event, come
from a matrix product per half with a table of weight columns ``(D, K, J, M)``: the weights do not
depend on the coalition, so they are exponentiated once, not once per coalition (and without
weights, the columns are ones: exact integer counts).

Weights are relative to the largest weight of their (draw, anomaly) :math:`e^{G}`, computed in
float64 and stored in float32. Weights of an event far out in a proposal's tail can be
:math:`e^{-700}` of that largest weight and do not fit a float32: a half of the samples whose
sum of squared relative weights in the event is below :data:`RESCALE_BELOW` (so few, about one
(coalition, anomaly, draw) in 10^4 on the microservice example) is recounted relative to its own
largest weight in the event, in log space.
"""

from __future__ import annotations

import math

import torch

from .counting import conditional_log_tails

__all__ = [
    "CHUNK_ELEMENTS", "RESCALE_BELOW", "direct_counts", "half_columns", "rescaled_hits", "weight_columns",
    "weighted_event_sums", "weighted_hits",
]

#: Elements of X_t's samples built per chunk of coalitions (6.4 MB in float32; on the microservice
#: example the time was flat from 0.4 to 6.4 million, and small buffers keep the working set small).
CHUNK_ELEMENTS = 1_600_000
#: Below this sum of squared weights in the event (relative to the draw's largest weight), a half
#: of the samples is recounted relative to its own largest weight in the event: weights below
#: float32's smallest normal number (about 1e-38) are lost, so such a sum may be inexact.
RESCALE_BELOW = 1e-25


def half_columns(num_m: int) -> torch.Tensor:
    """``(2, M)`` float32: indicator of each half of the samples (the odd sample out joins the second)."""
    first = torch.arange(num_m) < num_m // 2
    return torch.stack([first, ~first]).float()


def weight_columns(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight table of the module docstring from log weights ``(D, K, M)`` float64.

    Returns
    -------
    columns : torch.Tensor
        ``(D, K, 2, M)`` float32: weight and squared weight of each sample, relative to the largest
        weight of the (draw, anomaly); values below float32's smallest normal number set to 0 (no
        slow subnormal arithmetic).
    log_scale : torch.Tensor
        ``(D, K)`` float64: the log of that largest weight (0 where every weight is 0).
    """
    log_scale = log_w.amax(-1).nan_to_num(neginf=0.0)
    w = (log_w - log_scale.unsqueeze(-1)).exp_()
    columns = torch.empty(*log_w.shape[:-1], 2, log_w.shape[-1], dtype=torch.float32)
    columns[..., 0, :] = w
    columns[..., 1, :] = w.square_()
    columns.masked_fill_(columns < torch.finfo(torch.float32).tiny, 0.0)
    return columns, log_scale


def weighted_hits(twice: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``(D, c, K, 2 J)``: sums over each half of the samples of the indicator times each column
    (column 0 in the first half, in the second, column 1 in the first half, ...).

    Parameters
    ----------
    twice : torch.Tensor
        ``(D, c, K, M)`` float32: twice the event's indicator (0, 1 or 2; last dimension contiguous).
    columns : torch.Tensor
        ``(D, K, J, M)`` float32, or ``(D, 1, J, M)`` for columns shared by every anomaly.
    """
    num_d, num_c, num_k, num_m = twice.shape
    cut = num_m // 2  # the odd sample out joins the second half
    halves = []
    for part in (slice(0, cut), slice(cut, num_m)):
        if columns.shape[1] == 1:  # one matrix product for every coalition and anomaly
            flat = twice.reshape(num_d, num_c * num_k, num_m)[..., part]
            out = torch.matmul(columns[:, 0, :, part], flat.transpose(1, 2)).unflatten(-1, (num_c, num_k))
        else:
            out = torch.stack([torch.matmul(columns[:, k, :, part], twice[:, :, k, part].transpose(1, 2))
                               for k in range(num_k)], -1)
        halves.append(out)  # (D, J, c, K)
    return torch.stack(halves, 2).flatten(1, 2).permute(0, 2, 3, 1).mul_(0.5)


def rescaled_hits(twice: torch.Tensor, log_w32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights and squared weights in the event per half ``(R, 2)`` each, relative to the largest
    weight in the event, and its log ``(R,)``, for R rows of twice the indicator ``(R, M)`` and
    their log weights ``(R, M)`` float32 (0 where the event is empty)."""
    num_m = twice.shape[-1]
    top = torch.where(twice > 0, log_w32, -math.inf).amax(-1, keepdim=True).nan_to_num(neginf=0.0)
    w = (log_w32 - top).clamp_(max=0.0).exp_()  # <= 1 in the event
    terms = twice.mul(0.5).mul_(w)
    halves = half_columns(num_m).T
    return terms @ halves, (terms * w) @ halves, top[:, 0]


def weighted_event_sums(
    twice: torch.Tensor, columns: torch.Tensor, log_scale: torch.Tensor, log_w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums of the weights and of the squared weights in the event per half of the samples.

    Parameters
    ----------
    twice : torch.Tensor
        ``(D, c, K, M)`` float32: twice the event's indicator.
    columns, log_scale : torch.Tensor
        From :func:`weight_columns`; ``log_scale`` as ``(D, 1, K)``.
    log_w : torch.Tensor
        ``(D, K, M)``: the log weights, for the halves recounted with their own scale (in float32,
        as the weights of the other halves).

    Returns
    -------
    hits, hits2 : torch.Tensor
        ``(D, c, K, 2)`` float32: the sums divided by ``exp(log_count_scale)``, resp. its square.
    log_count_scale : torch.Tensor
        ``(D, c, K)`` float64: ``log_scale``, or where a half's sum of squared weights is below
        :data:`RESCALE_BELOW` (weights lost to float32, or an empty event), the log of the
        largest weight in the event (0 for an empty event).
    """
    found = weighted_hits(twice, columns)  # (D, c, K, 4)
    hits, hits2 = found[..., :2], found[..., 2:]
    log_count_scale = log_scale.expand(-1, twice.shape[1], -1).clone()
    low = (hits2 < RESCALE_BELOW).any(-1)
    if bool(low.any()):
        d, c, k = low.nonzero(as_tuple=True)
        hits[d, c, k], hits2[d, c, k], top = rescaled_hits(twice[d, c, k], log_w[d, k].float())
        log_count_scale[d, c, k] = top.double()
    return hits, hits2, log_count_scale


def direct_counts(est, masks, free_sd, rest_patterns, rest_inverse):
    """Event counts ``(C, K, D, 2)`` per half, every sample compared with every anomaly's event;
    rare cases from conditional Monte Carlo (``(C, K, D, 3)``, NaN elsewhere); the ESS
    ``(C, K, D)``; under a proposal (else None) the counts' log scale and the anomaly's log
    weight, ``(C, K, D)`` each.

    ``est`` is the :class:`~bayesrca.counterfactual.montecarlo.MonteCarloTails`. Under a proposal
    the counts are sums of importance weights divided by ``exp(log scale)`` (see the module
    docstring), and rare cases integrate weighted terms."""
    proposal, parts = est.proposal, est.parts
    num_draws, num_k, num_m = est.scm.num_draws_, parts.num_anomalies, est.num_mc_samples
    num_c = masks.shape[0]
    count = torch.empty(num_c, num_k, num_draws, 2, dtype=torch.float32)  # per half of the samples
    rare = torch.full((num_c, num_k, num_draws, 3), float("nan"), dtype=torch.float64)
    ess = torch.empty(num_c, num_k, num_draws, dtype=torch.float64)
    weight = None if proposal is None else torch.empty(num_c, num_k, num_draws, dtype=torch.float64)
    scale = None if proposal is None else torch.empty_like(weight)
    per_coalition = num_draws * num_k * num_m
    per_anomaly = est.free_effect.dim() == 4  # (D, R, K, M): the linear players' noise follows a proposal
    # a chunk at least as large as the free part it reads (R x per coalition under a proposal: a
    # chunk of one coalition would read R times more than it writes)
    chunk = max(CHUNK_ELEMENTS, est.free_effect.shape[1] * per_coalition) if per_anomaly else CHUNK_ELEMENTS
    step = max(1, min(est.max_elements // (4 * per_coalition), chunk // per_coalition))
    buf = torch.empty(num_draws, step, num_k, num_m, dtype=torch.float32)  # centre of X_t - mid
    buf_full = torch.empty_like(buf)  # ... plus the sampled Gaussian part
    buf_free = torch.empty(num_draws, step, num_m, dtype=torch.float32)
    if proposal is None:
        columns = torch.ones(num_draws, 1, 1, num_m)
        log_w = log_scale = None
    else:
        columns, log_scale = weight_columns(proposal.log_w)
        log_w = proposal.log_w  # (D, K, M) float64
        log_scale = log_scale.unsqueeze(1)  # (D, 1, K)

    def linear_part(patterns: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(D, P, K, M): free linear part minus the event centre, for rest patterns ``patterns``.

        With ``out`` (at most ``step`` patterns) it writes into preallocated buffers: fresh
        allocations of this size cost more than the arithmetic.
        """
        mask = (1 - patterns).float().expand(num_draws, -1, -1)
        centre = est._centre(patterns).unsqueeze(-1)  # (D, P, K, 1)
        if per_anomaly:  # one batched product over R for every anomaly and sample at once
            free = torch.bmm(mask, est.free_effect.flatten(2)).unflatten(-1, (num_k, num_m))  # (D, P, K, M)
            return torch.sub(free, centre, out=out)
        free = torch.matmul(mask, est.free_effect, out=None if out is None else buf_free[:, : len(patterns)])
        if out is None:
            return free.unsqueeze(2) - centre
        return torch.sub(free.unsqueeze(2), centre, out=out)

    table = linear_part(rest_patterns) if len(rest_patterns) * per_coalition <= est.max_elements else None

    def count_into(idx: torch.Tensor, upstream: torch.Tensor | None) -> None:
        idx = idx[torch.argsort(rest_inverse[idx])]  # consecutive rest patterns: slices of the table
        for start in range(0, len(idx), step):
            rows = idx[start : start + step]
            sd = free_sd[rows]  # (c, D)
            gaussian = bool(sd.any())  # else X_t's samples are the centres: no copy, no product with eps
            dev = (buf if gaussian else buf_full)[:, : len(rows)]
            pat = rest_inverse[rows]
            if table is not None and bool((pat.diff() == 1).all()):  # a slice of the table
                src = table[:, int(pat[0]) : int(pat[0]) + len(pat)]
                if upstream is None:
                    dev.copy_(src)
                else:
                    torch.add(src, upstream, out=dev)
            else:
                if table is None:
                    linear_part(rest_patterns[pat], out=dev)
                else:
                    torch.index_select(table, 1, pat, out=dev)
                if upstream is not None:
                    dev.add_(upstream)
            if gaussian:
                full = torch.addcmul(dev, sd.T.float().reshape(num_draws, -1, 1, 1), est.eps32, out=buf_full[:, : len(rows)])
            else:  # conditional_log_tails reads dev only where sd > 0
                full = dev
            if est.side == "two":
                full.abs_().sub_(est.half)
            elif est.side == "upper":
                full.add_(est.tol)
            else:
                full.neg_().add_(est.tol)
            twice = full.sign_().add_(1)  # 2 inside the event, 0 outside, 1 on the boundary (counts 1/2)
            if proposal is None:
                hits = weighted_hits(twice, columns)  # (D, c, K, 2)
                count[rows] = hits.permute(1, 2, 0, 3)
                ess[rows] = hits.sum(-1).permute(1, 2, 0).double()
                conditional_log_tails(hits, sd, lambda d, c, k: dev[d, c, k], est.bounds, rows, rare, ess_out=ess)
                continue
            weight[rows] = proposal.anomaly_log_weights(len(rows))
            hits, hits2, log_count_scale = weighted_event_sums(twice, columns, log_scale, log_w)
            scale[rows] = log_count_scale.permute(1, 2, 0).double()
            count[rows] = hits.permute(1, 2, 0, 3)
            ess[rows] = (hits.sum(-1).double() ** 2 / hits2.sum(-1).double()).nan_to_num(nan=0.0).permute(1, 2, 0)
            half_ess = (hits**2 / hits2).nan_to_num(nan=0.0)
            conditional_log_tails(half_ess, sd, lambda d, c, k: dev[d, c, k], est.bounds, rows, rare,
                                  log_weights=proposal.log_weights(len(rows)), ess_out=ess)

    if not parts.upstream:
        count_into(torch.arange(num_c), None)
    else:
        patterns, inverse = torch.unique(masks[:, parts.up_idx], dim=0, return_inverse=True)
        per_pattern = max(1, est.max_elements // (8 * per_coalition))
        for start in range(0, len(patterns), per_pattern):
            terms = est._upstream_term(patterns[start : start + per_pattern])  # (P, D, 1, K, M)
            for i, term in enumerate(terms):
                count_into(torch.nonzero(inverse == start + i).squeeze(-1), term)
    return count, rare, ess, scale, weight
