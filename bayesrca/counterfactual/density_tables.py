"""Log densities of noise distributions at many query values: tabulated, checked, or exact.

Importance-sampling weights (:mod:`bayesrca.counterfactual.importance`) evaluate every player's
noise density at every proposal sample, per anomaly and posterior draw: millions of values. For a
kernel density over a thousand atoms per draw that is the dominant cost, so :func:`log_densities`
tabulates such a density per draw on a grid spanning the queries (a binned kernel estimate,
:func:`binned_log_kde`), interpolates, checks the table against exact values at a subset of the
queries, and falls back to exact evaluation where the check fails. Closed-form families are always
exact.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import Normal, StudentT, constraints

from ..mechanisms.mixture import DrawSelection, _within_support
from ..mechanisms.constant import SpikeSlabNormal
from ..mechanisms.noise import BootstrapGPD, ResidualKDE, kernel_log_sum

__all__ = ["log_densities", "binned_log_kde", "GRID", "GRID_TOL", "CHECK_VALUES"]


def _kde_of(dist) -> ResidualKDE | None:
    """The kernel density of bootstrap noise (a GPD-tailed one's body), else None."""
    return dist.kde if isinstance(dist, BootstrapGPD) else dist if isinstance(dist, ResidualKDE) else None


def _log_prob(dist, value: torch.Tensor) -> torch.Tensor:
    """``dist.log_prob(value)`` in slices of the leading dimension (a KDE builds value x atoms): at most
    about 2**19 elements per temporary (4 MiB), whatever the number of atoms: a KDE's log density
    builds several temporaries of this size, which the memory planner does not count."""
    kde = _kde_of(dist)
    distinct = None if kde is None else kde._distinct()
    if distinct is not None:  # one term per distinct atom
        atoms = distinct[0].shape[-1]
    else:
        atoms = dist.atoms.shape[-1] if isinstance(getattr(dist, "atoms", None), torch.Tensor) else 1
    rows = max(1, 2**19 // max(1, value[0].numel() * atoms))
    return torch.cat([dist.log_prob(value[i : i + rows]) for i in range(0, value.shape[0], rows)])


#: Grid points per draw on which a costly log density (anything but Normal and Student-t, e.g. a
#: KDE over 1,000 atoms) is tabulated and then linearly interpolated.
GRID = 4096
#: Fewest grid points per draw for a kernel density (or the body of GPD-tailed bootstrap noise).
BODY_GRID_MIN = 256
#: Largest interpolation error of a log density (checked at sampled queries) before falling back
#: to exact evaluation: a weight off by 1 %, far below the Monte Carlo error of any weight (the
#: relative error of an importance-sampling estimate is at least 1/sqrt(ESS), 3 % at an ESS of 1,000).
GRID_TOL = 1e-2
#: Query values (rows x posterior draws) at which a table is checked against exact densities: at
#: least 16 and at most 256 rows per draw. Each draw has its own table, so every draw is checked;
#: 8,192 values keep the check (an exact evaluation, one operation per atom of a kernel density)
#: a fraction of the table's own cost instead of the larger part of it.
CHECK_VALUES = 8192


def log_densities(dist, queries: list[torch.Tensor]) -> list[torch.Tensor]:
    """``dist.log_prob`` at several query tensors ``(..., D)``.

    Closed-form families are evaluated exactly. Any other distribution is tabulated on a grid of
    :data:`GRID` points per draw spanning the queries and interpolated linearly (GPD-tailed
    bootstrap noise: only its body, between the thresholds; its tails are closed form); the error is
    checked against exact values at 16-256 of the query rows (:data:`CHECK_VALUES`) and, above :data:`GRID_TOL`, every query is
    evaluated exactly instead. A per-draw selection of families (:class:`~bayesrca.mechanisms.mixture.DrawSelection`)
    is evaluated component by component, each as above.
    """
    if isinstance(dist, (Normal, StudentT, SpikeSlabNormal)):
        return [_log_prob(dist, q) for q in queries]
    if isinstance(dist, DrawSelection):
        return _selectionlog_densities(dist, queries)
    kde_of = _kde_of(dist)
    distinct = None if kde_of is None else kde_of._distinct()
    if distinct is not None and distinct[0].shape[-1] <= FEW_DISTINCT:  # exact at a few terms per query
        return [_log_prob(dist, q) for q in queries]
    flat = torch.cat([q.reshape(-1, q.shape[-1]) for q in queries])  # (Q, D)
    lo, hi = flat.amin(0), flat.amax(0)
    size = GRID
    gpd = dist if isinstance(dist, BootstrapGPD) else None
    if gpd is not None:
        # tabulate the smooth body only (the GPD tails are closed form)
        lo, hi = torch.maximum(lo, gpd.lower), torch.minimum(hi, gpd.upper)
        hi = torch.maximum(hi, lo)
    if kde_of is not None:
        # at 1/20 of a bandwidth: linear interpolation of the kernel density's log is then exact to
        # a few 1e-4 (a kernel wide against the queries' span needs few points)
        steps = float((20 * (hi - lo) / kde_of.bandwidth.clamp(min=1e-300)).max())
        size = int(min(GRID, max(BODY_GRID_MIN, math.ceil(steps) + 1)))
    rows = min(256, max(16, math.ceil(CHECK_VALUES / flat.shape[-1])))
    if len(flat) <= size + rows:  # a table (and its check) would cost as much as the queries
        return [_log_prob(dist, q) for q in queries]
    width = (hi - lo).clamp(min=1e-12)
    grid = lo + width * torch.linspace(0, 1, size, dtype=flat.dtype).unsqueeze(-1)  # (G, D)
    if gpd is not None:  # lo + width rounds past the upper threshold: the GPD's density there, not the body's
        grid = torch.minimum(torch.maximum(grid, gpd.lower), gpd.upper)
    table = None if kde_of is None else binned_log_kde(kde_of, lo, width, size)
    if table is None:
        table = _log_prob(dist, grid).T.contiguous()  # (D, G)
    elif gpd is not None:  # the body's density: the kernel estimate rescaled to the body's mass
        table = table + torch.log(gpd._prob_body / gpd._body_mass).to(table.dtype).unsqueeze(-1)

    flat_table = table.reshape(-1)  # draw d's grid point g at d * size + g
    offset = torch.arange(table.shape[0]) * size  # (D,)

    def interpolate(q: torch.Tensor) -> torch.Tensor:
        pos = ((q - lo) / width * (size - 1)).clamp(0, size - 1)
        i = pos.floor().clamp(max=size - 2)
        idx = i.long() + offset  # in the queries' own layout: no transposed copies
        left, right = flat_table.take(idx), flat_table.take(idx + 1)
        return left + (pos - i) * (right - left)

    def evaluate(q: torch.Tensor) -> torch.Tensor:
        out = interpolate(q)
        if gpd is not None:  # the GPD tails in closed form, at the values in a tail only
            where = ((q > gpd.upper) | (q < gpd.lower)).nonzero(as_tuple=True)
            out[where] = gpd.tail_log_prob_at(q[where], where[-1])
        return out

    check = flat[torch.linspace(0, len(flat) - 1, rows).long()]
    approx, exact = evaluate(check), _log_prob(dist, check)
    if not bool(((approx - exact).abs() <= GRID_TOL).logical_or(approx == exact).all()):  # NaN fails too
        return [_log_prob(dist, q) for q in queries]
    return [evaluate(q) for q in queries]


#: Distinct atoms per draw up to which a kernel density is evaluated exactly at every query (one
#: term per distinct atom costs no more than a table's interpolation).
FEW_DISTINCT = 16

#: Cost of one exact kernel term (an exponential) in multiply-adds of the binned convolution: the
#: exact sums over the atoms replace the convolution only for a kernel this many times wider (in
#: grid steps) than the atoms are many (measured: grouped conv1d ~10 GMAC/s, exp ~0.25 G/s here).
EXP_COST = 8

#: Kernel half-width, in bandwidths, of the binned kernel density (atoms further from every grid
#: point contribute less than e^-32 of a kernel's peak).
KERNEL_SDS = 8.0


def binned_log_kde(kde: ResidualKDE, lo: torch.Tensor, width: torch.Tensor, size: int) -> torch.Tensor | None:
    """Log density ``(D, G)`` of a Gaussian kernel density on the grid ``lo + width * [0, 1]``
    of ``size`` points per draw, by linear binning of the atoms onto the grid and a discrete
    convolution with the kernel: about ``A + G * W`` operations per draw instead of ``G * A``
    exponentials (A atoms, W kernel width in grid steps); exact sums over the (distinct) atoms
    where W exceeds :data:`EXP_COST` times their number. Its relative error is of order (step / bandwidth)^2;
    None where the grid is too coarse for binning (a step above a quarter of the bandwidth) or
    some grid point is beyond the kernels' reach.
    The caller checks the table against exact values."""
    atoms, h = kde.atoms.to(torch.float64), kde.bandwidth.to(torch.float64).expand(kde.atoms.shape[0])  # (D, A), (D,)
    step = (width / (size - 1)).to(torch.float64)  # (D,)
    if bool((step > h / 4).any()):
        return None
    half = int(math.ceil(float((KERNEL_SDS * h / step).max())))
    distinct = kde._distinct()
    terms = atoms.shape[-1] if distinct is None else distinct[0].shape[-1]
    if 2 * half + 1 > EXP_COST * terms:  # a kernel much wider than the (distinct) atoms are many: exact sums are cheaper
        grid = lo.unsqueeze(-1) + step.unsqueeze(-1) * torch.arange(size, dtype=torch.float64)  # (D, G)
        if distinct is None:
            log_sum = kernel_log_sum(grid.T.contiguous(), atoms, h).T  # (D, G)
        else:  # one term per distinct atom, with its count
            log_sum = kernel_log_sum(grid.T.contiguous(), distinct[0].to(torch.float64), h, distinct[1].to(torch.float64)).T
        return log_sum - math.log(atoms.shape[-1]) - torch.log(h).unsqueeze(-1) - 0.5 * math.log(2 * math.pi)
    num = size + 2 * half
    pos = (atoms - (lo - half * step).unsqueeze(-1)) / step.unsqueeze(-1)  # (D, A) in grid steps
    inside = (pos >= 0) & (pos <= num - 1)
    left = pos.floor().clamp(0, num - 2)
    frac = (pos - left).clamp(0, 1)
    binned = torch.zeros(atoms.shape[0], num, dtype=torch.float64)
    binned.scatter_add_(1, left.long(), torch.where(inside, 1 - frac, 0.0))
    binned.scatter_add_(1, left.long() + 1, torch.where(inside, frac, 0.0))
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets * (step / h).unsqueeze(-1)) ** 2) / (h.unsqueeze(-1) * math.sqrt(2 * math.pi))
    density = torch.nn.functional.conv1d(binned.unsqueeze(0), kernel.unsqueeze(1), groups=atoms.shape[0])[0]  # (D, G)
    table = torch.log(density / atoms.shape[-1])
    # a grid point further than KERNEL_SDS bandwidths from every atom gets density 0 here, not the
    # kernel's far tail: the exact table then (interpolating -inf would give NaN)
    return table if bool(torch.isfinite(table).all()) else None


def _selectionlog_densities(dist: DrawSelection, queries: list[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`log_densities` of a per-draw selection of families: each component on its own draws
    of the queries (tabulated where it can be), -inf outside a component's support, then per draw
    the assigned component's value."""
    per_component = []
    for k, comp in enumerate(dist.components):
        parts = [dist.part(q, k) for q in queries]
        if dist.index is None and not bool((dist.assignment == k).any()):
            per_component.append([torch.zeros_like(q) for q in parts])  # never selected (a model saved before compaction)
        elif comp.support is None or comp.support is constraints.real:
            per_component.append(log_densities(comp, parts))
        else:
            per_component.append([_within_support(comp, q, lambda v, c=comp: _log_prob(c, v), -math.inf) for q in parts])
    return [dist.combine(list(values)) for values in zip(*per_component)]
