"""Fast evaluation of :class:`~bayesrca.mechanisms.GPANM`: its Fourier sums tabulated per parent and draw.

The Fourier sum of each parent and draw is a smooth function of one variable: it is tabulated once
per dtype on a grid of step ``0.1 l_min / w_max`` (ten points per radian of the fastest feature)
reaching :data:`TABLE_MARGIN` sd beyond the training data, and read by cubic Hermite interpolation
with exact slopes (:func:`hermite`); values beyond the table take the exact sum (:func:`fourier_sum`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["TABLE_MARGIN", "TABLE_MAX_ENTRIES", "fourier_sum", "fourier_tables", "hermite"]


#: The table of the fast evaluation reaches this many sd beyond the training data (beyond: exact).
TABLE_MARGIN = 10.0
#: Largest table (grid points x draws, per parent); a longer one is not built (exact evaluation).
TABLE_MAX_ENTRIES = 2**23


def hermite(z: torch.Tensor, low: float, step: float, values: torch.Tensor, slopes: torch.Tensor,
            num_draws: int) -> torch.Tensor:
    """Cubic Hermite interpolation of per-draw tables at ``z`` shaped ``(..., D)`` or ``(..., 1)``.

    ``values`` and ``slopes`` (already times ``step``) are flattened ``(G, D)`` tables on the grid
    ``low + step * i``; ``z`` must lie on the grid.
    """
    u = (z - low) / step
    cell = u.floor().clamp_(0, values.numel() // num_draws - 2)
    t = u.sub_(cell)
    index = cell.long().mul_(num_draws) + torch.arange(num_draws)
    del cell
    t2 = t * t
    t3 = t2 * t
    h01 = t2.mul(3).sub_(t3.mul(2))  # 3t^2 - 2t^3
    out = values.take(index + num_draws).mul_(h01)
    out.add_(values.take(index).mul_(1 - h01))
    out.add_(slopes.take(index).mul_(t3 - 2 * t2 + t))
    out.add_(slopes.take(index + num_draws).mul_(t3.sub_(t2)))
    return out


def fourier_sum(mech, z: torch.Tensor, draws: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """A fitted GPANM's parent ``k``: its exact Fourier sum at standardised values ``z`` ``(S,)`` of draws ``draws`` ``(S,)``."""
    base = k * (3 + 2 * int(mech.num_frequencies))
    inv_lengthscale = (1.0 / mech.lengthscale_)[draws]
    out = torch.zeros_like(z)
    for j, w in enumerate(mech.frequencies_):
        angle = z * (w * inv_lengthscale).to(dtype)
        out.addcmul_(torch.cos(angle), mech.coef_[draws, base + 1 + 2 * j].to(dtype))
        out.addcmul_(angle.sin_(), mech.coef_[draws, base + 2 + 2 * j].to(dtype))
    return out

def fourier_tables(mech, dtype: torch.dtype) -> list[tuple] | None:
    """A fitted GPANM's tables, per parent ``(p_low, p_high, z_low, step, values (G, D), slopes (G, D) * step)``,
    cached on the mechanism per dtype (``None``: too long a table, exact evaluation)."""
    cache = mech.__dict__.setdefault("_table_cache", {})
    if dtype in cache:
        return cache[dtype]
    m, D = int(mech.num_frequencies), mech.num_draws_
    per_parent = 3 + 2 * m
    rate = mech.frequencies_.max() / mech.lengthscale_.min()  # fastest angle per unit of z
    step = float(0.1 / rate)
    tables: list[tuple] = []
    for k in range(mech.num_parents_):
        low, high = float(mech.z_low_[k]) - TABLE_MARGIN, float(mech.z_high_[k]) + TABLE_MARGIN
        size = int(math.ceil((high - low) / step)) + 2
        if size * D > TABLE_MAX_ENTRIES:  # too long a table: exact evaluation
            cache[dtype] = None
            return None
        grid = low + step * torch.arange(size, dtype=torch.float64)
        rates = mech.frequencies_[:, None] / mech.lengthscale_  # (m, D)
        weights = mech.coef_[:, k * per_parent + 1: (k + 1) * per_parent - 2].T  # (2m, D)
        values = torch.zeros(size, D, dtype=torch.float64)
        slopes = torch.zeros(size, D, dtype=torch.float64)
        for j in range(m):  # one frequency at a time: (G, D) temporaries only
            angle = grid[:, None] * rates[j]
            cos, sin = angle.cos(), angle.sin()
            values += cos * weights[2 * j] + sin * weights[2 * j + 1]
            slopes += (cos * weights[2 * j + 1] - sin * weights[2 * j]) * rates[j]
        scale, center = float(mech.x_scale_[k]), float(mech.x_center_[k])
        tables.append((center + scale * low, center + scale * (low + step * (size - 1)), low, step,
                       values.to(dtype).reshape(-1), (slopes * step).to(dtype).reshape(-1)))
    cache[dtype] = tables
    return tables
