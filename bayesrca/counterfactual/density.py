r"""The event of the density-based base score: :math:`\tau(y) = 1 / p(y)`, so :math:`\tau(X) \ge \tau(x)` is :math:`p(X) \le p(x)`.

DoWhy's ``InverseDensityScorer``. Per posterior draw, p is the density of the model's own marginal
of the target, estimated from its samples by a Gaussian kernel density estimate (DoWhy's
``KernelDensityEstimator1D``: bandwidth :math:`h = \mathrm{sd} \cdot (4 / (3M))^{1/5}`). Where the
samples are centres of an integrated Gaussian part of sd ``s`` (conditional Monte Carlo), the kernel
is that Gaussian widened by the centres' own bandwidth, :math:`\sqrt{s^2 + h^2}`: the estimate is
then the model's mixture density itself wherever ``s`` dominates, with no floor far out.

The event is reported, like every base score's, as "outside an interval", :math:`X \le lo` or
:math:`X \ge hi`: one end is x, the other is where the density, followed from its highest point
away from x, first falls to p(x) (on a grid of 512 points per draw; linear interpolation of
log p). For a unimodal density this is the event exactly. For a density with several modes the
level set :math:`\{p \le p(x)\}` can have parts inside the interval (a valley between modes) or
miss parts outside it (a second mode beyond x); the share of the event's probability that the
interval gets wrong is measured on the grid (against at least 1 % of the probability, below which
the kernel estimate's wiggles in a sparse tail are noise, not modes; values in the bulk,
whose event holds more than half the probability and whose IT score is below log 2 either way, are
not judged: near a flat top the estimate's wiggles decide the level set), and a
:class:`~bayesrca.exceptions.TailEstimateWarning` is raised where it exceeds 10 % in more than 10 %
of the (row, draw) pairs.
"""

from __future__ import annotations

import math
import warnings

import torch

from .._warnings import user_stacklevel
from ..exceptions import TailEstimateWarning

__all__ = ["GRID_POINTS", "kde_bandwidth", "density_thresholds"]

#: Points of the grid on which each draw's log density is tabulated.
GRID_POINTS = 512
#: Share of an event's probability the interval may get wrong before a warning.
MISMATCH_SHARE = 0.1
#: Smallest probability an event is judged against (the kernel estimate's tail wiggles are below it).
MISMATCH_FLOOR = 0.01
_CHUNK_ELEMENTS = 2**22


def kde_bandwidth(samples: torch.Tensor, log_weights: torch.Tensor | None = None) -> torch.Tensor:
    """DoWhy's bandwidth ``sd * (4 / (3 M))**(1/5)`` of each row of ``samples`` ``(R, M)`` (weighted sd with weights)."""
    num_m = samples.shape[-1]
    if log_weights is None:
        sd = samples.std(-1, unbiased=False)
    else:
        w = torch.softmax(log_weights, -1)
        mean = (w * samples).sum(-1, keepdim=True)
        sd = (w * (samples - mean) ** 2).sum(-1).sqrt()
    return sd * (4 / (3 * num_m)) ** 0.2


def _log_density(grid: torch.Tensor, centres: torch.Tensor, width: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """``log p`` on ``grid`` ``(R, G)`` of the kernel mixture: centres ``(R, M)``, width ``(R,)``, log weights ``(R, M)``."""
    rows = max(1, _CHUNK_ELEMENTS // (grid.shape[-1] * centres.shape[-1]))
    out = []
    for start in range(0, grid.shape[0], rows):
        sl = slice(start, start + rows)
        z = (grid[sl].unsqueeze(-1) - centres[sl].unsqueeze(-2)) / width[sl, None, None]  # (r, G, M)
        out.append(torch.logsumexp(-0.5 * z**2 + log_w[sl].unsqueeze(-2), -1))
    return torch.cat(out) - torch.log(width).unsqueeze(-1) - 0.5 * math.log(2 * math.pi)


def density_thresholds(
    centres: torch.Tensor,
    x: torch.Tensor,
    sd: torch.Tensor | None = None,
    log_weights: torch.Tensor | None = None,
    *,
    warn: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ends ``lo, hi`` of the event ``p(X) <= p(x)`` under each row's kernel density estimate.

    Parameters
    ----------
    centres : torch.Tensor
        ``(R, M)`` samples of each row's marginal (or centres of its Gaussian part).
    x : torch.Tensor
        ``(R, K)`` values whose event is wanted.
    sd : torch.Tensor, optional
        ``(R,)`` sd of an integrated Gaussian part around the centres (0 or None: none).
    log_weights : torch.Tensor, optional
        ``(R, M)`` importance log weights of the centres.
    warn : bool, default True
        Warn where the interval misses more than 10 % of the event's probability (several modes).

    Returns
    -------
    lo, hi : torch.Tensor
        ``(R, K)``; one of them is x.
    """
    centres = centres.to(torch.float64)
    x = x.to(torch.float64)
    num_r, num_m = centres.shape
    log_w = torch.full_like(centres, -math.log(num_m)) if log_weights is None else torch.log_softmax(
        log_weights.to(torch.float64), -1)
    h = kde_bandwidth(centres, None if log_weights is None else log_w)
    width = h if sd is None else (sd.to(torch.float64).expand(num_r) ** 2 + h**2).sqrt()
    width = width.clamp(min=1e-12 * (centres.abs().amax(-1) + 1.0))
    c_min, c_max = centres.amin(-1), centres.amax(-1)
    ext = torch.maximum(torch.maximum(x.amax(-1) - c_max, c_min - x.amin(-1)), torch.zeros_like(c_min))
    start, stop = c_min - ext - 6 * width, c_max + ext + 6 * width
    steps = torch.linspace(0.0, 1.0, GRID_POINTS, dtype=torch.float64)
    grid = start.unsqueeze(-1) + (stop - start).unsqueeze(-1) * steps  # (R, G)
    log_p = _log_density(grid, centres, width, log_w)
    step = (stop - start) / (GRID_POINTS - 1)
    pos = ((x - start.unsqueeze(-1)) / step.unsqueeze(-1)).clamp(0, GRID_POINTS - 1)  # x on the grid, fractional
    i0 = pos.floor().long().clamp(max=GRID_POINTS - 2)
    frac = pos - i0
    log_px = torch.lerp(log_p.gather(-1, i0), log_p.gather(-1, i0 + 1), frac)  # (R, K)
    idx = torch.arange(GRID_POINTS)
    mode = log_p.argmax(-1, keepdim=True)  # (R, 1)
    inf = torch.full_like(log_p, math.inf)
    # left of the mode: f(i) = min log p over [i, mode] (non-decreasing in i); right: g(i) = min over [mode, i]
    f = torch.where(idx <= mode, log_p, inf).flip(-1).cummin(-1).values.flip(-1)
    f = torch.where(idx <= mode, f, inf)
    g = torch.where(idx >= mode, log_p, inf).cummin(-1).values
    g = torch.where(idx >= mode, g, inf)
    left = torch.searchsorted(f.contiguous(), log_px.contiguous(), right=True) - 1  # last i < mode with log p <= log p(x)
    right = torch.searchsorted((-g).contiguous(), (-log_px).contiguous(), right=False)  # first i > mode with it

    def crossing(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Where log p, linear between grid points i and j = i +- 1, equals log p(x)."""
        a, b = log_p.gather(-1, i), log_p.gather(-1, j)
        t = ((log_px - a) / (b - a)).nan_to_num(0.0).clamp(0, 1)
        return grid.gather(-1, i) + t * (grid.gather(-1, j) - grid.gather(-1, i))

    lo_other = torch.where(left >= 0, crossing(left.clamp(min=0), (left + 1).clamp(max=GRID_POINTS - 1)), grid[:, :1])
    hi_other = torch.where(right < GRID_POINTS, crossing(right.clamp(max=GRID_POINTS - 1), (right - 1).clamp(min=0)),
                           grid[:, -1:])
    upper = x >= grid.gather(-1, mode)
    lo = torch.where(upper, torch.minimum(lo_other, x), x)
    hi = torch.where(upper, x, torch.maximum(hi_other, x))
    if warn:
        _warn_mismatch(grid, log_p, log_px, lo, hi, num_m)
    return lo, hi


def _warn_mismatch(grid, log_p, log_px, lo, hi, num_m: int) -> None:
    """Warn where the interval event and the level-set event differ by more than 10 % of the event's probability."""
    rows = max(1, _CHUNK_ELEMENTS // (grid.shape[-1] * max(lo.shape[-1], 1)))
    bad = total = 0
    for start in range(0, grid.shape[0], rows):
        sl = slice(start, start + rows)
        gr, lp = grid[sl].unsqueeze(1), log_p[sl].unsqueeze(1)  # (r, 1, G)
        level = lp <= log_px[sl].unsqueeze(-1)  # (r, K, G): the true event on the grid
        interval = (gr <= lo[sl].unsqueeze(-1)) | (gr >= hi[sl].unsqueeze(-1))
        mass = (lp - lp.amax(-1, keepdim=True)).exp()
        wrong = (mass * (level ^ interval)).sum(-1)
        floor = max(MISMATCH_FLOOR, 10.0 / num_m) * mass.sum(-1)  # wiggles of a sparse tail are not modes
        event = torch.maximum((mass * (level | interval)).sum(-1), floor)
        tail = (mass * level).sum(-1) < 0.5 * mass.sum(-1)  # values in the bulk are not judged
        bad += int((tail & (wrong > MISMATCH_SHARE * event)).sum())
        total += wrong.numel()
    if total and bad > 0.1 * total:
        warnings.warn(
            f"base_score='density': in {bad} of {total} (value, draw) pairs the target's density has more than one "
            "mode around the value, so the event p(X) <= p(x) is not 'outside an interval' and the interval used "
            f"misses more than {MISMATCH_SHARE:.0%} of its probability (the IT score is then too high or too low). "
            "Prefer base_score='median_cdf' for multimodal targets.",
            TailEstimateWarning,
            stacklevel=user_stacklevel(),
        )
