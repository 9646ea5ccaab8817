"""Noise distributions used at the SCM's noise sites."""

from __future__ import annotations

import math

import torch
from pyro.distributions import Delta, Normal, TorchDistribution, constraints

from .gpd import gpd_icdf, gpd_log_pdf, gpd_log_sf, gpd_moments

__all__ = ["ResidualKDE", "BootstrapGPD", "TAIL_PARAMS", "kernel_log_sum", "split_gaussian"]

#: The per-draw parameters of :class:`BootstrapGPD` besides ``atoms`` and ``bandwidth``, in order.
TAIL_PARAMS = (
    "lower", "upper", "prob_lower", "prob_upper", "shape_lower", "shape_upper", "scale_lower", "scale_upper"
)


class ResidualKDE(TorchDistribution):
    r"""Smoothed Bayesian-bootstrap noise: an equal-weight Gaussian mixture on per-draw atoms.

    For posterior draw :math:`s` the density is
    :math:`p_s(n) = \frac1K \sum_k \mathcal N(n;\, a_{sk},\, h_s^2)`, where the atoms
    :math:`a_{s\cdot}` are residuals resampled with Dirichlet(1, ..., 1) weights (Rubin's Bayesian
    bootstrap, the non-informative limit of a Dirichlet-process posterior) and :math:`h_s` is a
    kernel bandwidth. It follows any skewed or multi-modal residual shape and, thanks to the
    kernel, gives finite density beyond the range of the training residuals.

    Parameters
    ----------
    atoms : torch.Tensor
        Shape ``(D, K)``: K atoms for each of D posterior draws.
    bandwidth : torch.Tensor
        Shape ``(D,)``: kernel standard deviation per draw (> 0).
    batch_shape : torch.Size, optional
        Broadcast batch shape whose last dimension is D (used by plates via :meth:`expand`).
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, atoms: torch.Tensor, bandwidth: torch.Tensor, batch_shape=None, validate_args=None):
        self.atoms = atoms
        self.bandwidth = bandwidth
        shape = torch.Size(batch_shape) if batch_shape is not None else atoms.shape[:-1]
        super().__init__(shape, torch.Size(), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = ResidualKDE(self.atoms, self.bandwidth, torch.Size(batch_shape))
        if "_distinct_cache" in self.__dict__:
            new.__dict__["_distinct_cache"] = self.__dict__["_distinct_cache"]
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.atoms.mean(-1).expand(self.batch_shape)

    @property
    def variance(self) -> torch.Tensor:
        return (self.atoms.var(-1, unbiased=False) + self.bandwidth**2).expand(self.batch_shape)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        num_draws, num_atoms = self.atoms.shape
        with torch.no_grad():
            idx = torch.randint(num_atoms, shape, device=self.atoms.device)
            offset = torch.arange(num_draws, device=self.atoms.device) * num_atoms
            picked = self.atoms.reshape(-1)[idx + offset]
            eps = torch.randn(shape, dtype=self.atoms.dtype, device=self.atoms.device)
            return picked + self.bandwidth * eps

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_k = math.log(self.atoms.shape[-1])
        if torch.is_grad_enabled() and any(t.requires_grad for t in (value, self.atoms, self.bandwidth)):
            z = (value.unsqueeze(-1) - self.atoms) / self.bandwidth.unsqueeze(-1)
            log_sum = torch.logsumexp(-0.5 * z**2, dim=-1)
        else:
            distinct = self._distinct()
            if distinct is None:
                log_sum = kernel_log_sum(value, self.atoms, self.bandwidth)
            else:  # few distinct atoms: one kernel per distinct atom, weighted by its count
                log_sum = kernel_log_sum(value, distinct[0], self.bandwidth, counts=distinct[1])
        return log_sum - log_k - torch.log(self.bandwidth) - 0.5 * math.log(2 * math.pi)

    def _distinct(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The distinct atoms per draw and their counts, ``(D, U)`` each (padded with zero counts),
        when ``U`` is at most :data:`DISTINCT_SHARE` of the atoms, else None.

        Bootstrap residuals of a near-discrete column (an availability that flips between 0 and
        100, an error count) take a handful of values: their kernel sum is then exact at a few
        terms per value instead of one per atom (the sum is the same, term for term)."""
        cached = self.__dict__.get("_distinct_cache", False)
        if cached is not False:
            return cached
        ordered = self.atoms.sort(-1).values
        new = torch.ones_like(ordered, dtype=torch.bool)
        new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        segment = new.long().cumsum(-1) - 1  # (D, K): index of each atom's distinct value
        num = int(segment.max()) + 1
        out = None
        if num <= DISTINCT_SHARE * ordered.shape[-1]:
            values = torch.zeros(ordered.shape[0], num, dtype=ordered.dtype).scatter_(1, segment, ordered)
            counts = torch.zeros(ordered.shape[0], num, dtype=ordered.dtype).scatter_add_(1, segment, torch.ones_like(ordered))
            # padding: a copy of each draw's first value with count 0
            out = (torch.where(counts > 0, values, values[:, :1]), counts)
        self.__dict__["_distinct_cache"] = out
        return out

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        z = (value.unsqueeze(-1) - self.atoms) / self.bandwidth.unsqueeze(-1)
        return torch.special.ndtr(z).mean(-1)


#: Largest share of distinct atoms (per draw, at most) for which :meth:`ResidualKDE.log_prob` sums
#: one kernel per distinct atom with its count instead of one per atom.
DISTINCT_SHARE = 1 / 8

#: Elements (draws x values x atoms) of one block of :func:`kernel_log_sum`: 512 KiB of float64,
#: which stays in a core's cache through the block's few passes.
KERNEL_BLOCK = 2**16


def kernel_log_sum(
    value: torch.Tensor, atoms: torch.Tensor, bandwidth: torch.Tensor, counts: torch.Tensor | None = None
) -> torch.Tensor:
    r"""``log sum_k c_dk exp(-((value - a_dk) / h_d)^2 / 2)`` per draw d, without the values x atoms tensor.

    ``value`` broadcasts against ``(D,)`` (``atoms`` is ``(D, K)``, ``bandwidth`` ``(D,)``); the
    result has the broadcast shape. The sum is exact, not binned: the standardised differences
    are formed, squared and exponentiated in blocks of :data:`KERNEL_BLOCK` elements, in place,
    so no temporary grows with the number of values (the direct formula builds about five
    values x draws x atoms tensors). Without a shift the exponentials underflow only for a value
    more than about 37 bandwidths from every atom of its draw (a sum below ``tiny / eps``); those
    entries are recomputed with the shifted log-sum-exp, so far values keep full relative
    accuracy. Values and atoms are centred on each draw's mean atom before scaling, so the
    rounding of a difference is that of the centred values, as in the direct formula. ``counts``
    ``(D, K)`` (default all 1) weights the atoms: distinct atoms with their multiplicities.
    """
    num_draws, num_atoms = atoms.shape
    shape = torch.broadcast_shapes(value.shape, (num_draws,))
    h = bandwidth.expand(num_draws).unsqueeze(-1)  # (D, 1)
    centre = atoms.mean(-1, keepdim=True) if counts is None else (atoms * counts).sum(-1, keepdim=True) / counts.sum(-1, keepdim=True)
    a = (atoms - centre) / h  # (D, K)
    x = ((value.broadcast_to(shape).reshape(-1, num_draws).T - centre) / h).contiguous()  # (D, M)
    rows = max(1, KERNEL_BLOCK // (num_draws * num_atoms))
    total = x.new_empty(x.shape)
    block = x.new_empty(num_draws, min(rows, x.shape[1]), num_atoms)
    for i in range(0, x.shape[1], rows):
        z = block[:, : x[:, i : i + rows].shape[1]]
        torch.sub(x[:, i : i + rows].unsqueeze(-1), a.unsqueeze(1), out=z)
        terms = z.square_().mul_(-0.5).exp_()
        if counts is not None:
            terms.mul_(counts.unsqueeze(1))
        torch.sum(terms, -1, out=total[:, i : i + rows])
    info = torch.finfo(x.dtype)
    far = (total < info.tiny / info.eps).nonzero(as_tuple=True)
    out = total.log_()
    if far[0].numel():
        z = x[far].unsqueeze(-1) - a[far[0]]  # (F, K): the few far values only
        log_c = 0.0 if counts is None else torch.where(counts[far[0]] > 0, counts[far[0]].log(), -math.inf)
        out[far] = torch.logsumexp(-0.5 * z**2 + log_c, dim=-1)
    return out.T.reshape(shape)


class BootstrapGPD(TorchDistribution):
    r"""Smoothed Bayesian-bootstrap body spliced with generalised Pareto (GPD) tails.

    For posterior draw :math:`s`, with thresholds :math:`l_s < u_s`, tail probabilities
    :math:`p^-_s, p^+_s`, the kernel estimate :math:`k_s` of :class:`ResidualKDE` and
    :math:`Z_s = \int_{l_s}^{u_s} k_s`, the density is

    .. math::

        p_s(n) = \begin{cases}
            p^-_s\, g(l_s - n;\, \xi^-_s, \sigma^-_s) & n < l_s \\
            (1 - p^-_s - p^+_s)\, k_s(n) / Z_s & l_s \le n \le u_s \\
            p^+_s\, g(n - u_s;\, \xi^+_s, \sigma^+_s) & n > u_s
        \end{cases}

    with :math:`g` the GPD density (:mod:`bayesrca.mechanisms.gpd`). The tail probabilities are
    the Dirichlet weight of the draw's residuals beyond its thresholds (the Bayesian bootstrap's
    exceedance fraction), so the distribution function is continuous and the splice keeps each
    draw's body mass. The density is continuous within the body and within each tail; at a
    threshold it may jump, by the difference between the kernel estimate there and the GPD's
    ``p / sigma`` (forcing equality would pin ``sigma`` to a kernel estimate, or move ``p`` off
    the exceedance fraction). With :math:`\xi \ge 0` the tails never end: far values get the
    GPD's polynomial (or, at :math:`\xi = 0`, exponential) tail, not the kernel's Gaussian one.

    Parameters
    ----------
    atoms, bandwidth : torch.Tensor
        As for :class:`ResidualKDE`: ``(D, K)`` and ``(D,)``.
    lower, upper : torch.Tensor
        ``(D,)`` thresholds, ``lower < upper``.
    prob_lower, prob_upper : torch.Tensor
        ``(D,)`` tail probabilities, each in (0, 1), with ``prob_lower + prob_upper < 1``.
    shape_lower, shape_upper, scale_lower, scale_upper : torch.Tensor
        ``(D,)`` GPD shapes (in [0, 1)) and scales (> 0) of the two tails.
    batch_shape : torch.Size, optional
        Broadcast batch shape whose last dimension is D (used by plates via :meth:`expand`).
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, atoms, bandwidth, lower, upper, prob_lower, prob_upper, shape_lower, shape_upper,
                 scale_lower, scale_upper, batch_shape=None, validate_args=None):
        self.kde = ResidualKDE(atoms, bandwidth)
        self.atoms, self.bandwidth = atoms, bandwidth
        self.lower, self.upper = lower, upper
        self.prob_lower, self.prob_upper = prob_lower, prob_upper
        self.shape_lower, self.shape_upper = shape_lower, shape_upper
        self.scale_lower, self.scale_upper = scale_lower, scale_upper
        # KDE mass between the thresholds, per draw (and per atom: the body's atom weights)
        h = bandwidth.unsqueeze(-1)
        self._atom_mass = torch.special.ndtr((upper.unsqueeze(-1) - atoms) / h) - torch.special.ndtr(
            (lower.unsqueeze(-1) - atoms) / h
        )
        self._body_mass = self._atom_mass.mean(-1).clamp(min=torch.finfo(atoms.dtype).tiny)
        self._prob_body = 1.0 - prob_lower - prob_upper
        self._kde_cdf_lower = self.kde.cdf(lower)
        shape = torch.Size(batch_shape) if batch_shape is not None else atoms.shape[:-1]
        super().__init__(shape, torch.Size(), validate_args=False)

    def _params(self) -> tuple[torch.Tensor, ...]:
        return (self.atoms, self.bandwidth) + tuple(getattr(self, k) for k in TAIL_PARAMS)

    def expand(self, batch_shape, _instance=None):
        return BootstrapGPD(*self._params(), batch_shape=torch.Size(batch_shape))

    @property
    def mean(self) -> torch.Tensor:
        return self._moments()[0].expand(self.batch_shape)

    @property
    def variance(self) -> torch.Tensor:
        first, second = self._moments()
        return (second - first**2).clamp(min=0.0).expand(self.batch_shape)

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """First and second moments per draw (body: truncated-normal moments of each atom)."""
        a, h = self.atoms, self.bandwidth.unsqueeze(-1)
        alpha, beta = (self.lower.unsqueeze(-1) - a) / h, (self.upper.unsqueeze(-1) - a) / h
        phi_a, phi_b = (-0.5 * alpha**2).exp() / math.sqrt(2 * math.pi), (-0.5 * beta**2).exp() / math.sqrt(2 * math.pi)
        mass = self._atom_mass
        m1 = a * mass + h * (phi_a - phi_b)
        m2 = a**2 * mass + 2 * a * h * (phi_a - phi_b) + h**2 * (mass + alpha * phi_a - beta * phi_b)
        scale = self._prob_body / (self._body_mass * a.shape[-1])
        body1, body2 = scale * m1.sum(-1), scale * m2.sum(-1)
        up1, up2 = gpd_moments(self.shape_upper, self.scale_upper)
        lo1, lo2 = gpd_moments(self.shape_lower, self.scale_lower)
        u, l, pu, pl = self.upper, self.lower, self.prob_upper, self.prob_lower
        first = body1 + pu * (u + up1) + pl * (l - lo1)
        second = body2 + pu * (u**2 + 2 * u * up1 + up2) + pl * (l**2 - 2 * l * lo1 + lo2)
        return first, second

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        num_draws = self.atoms.shape[0]
        dtype, device = self.atoms.dtype, self.atoms.device
        with torch.no_grad():
            n = math.prod(shape) // num_draws
            region, q = torch.rand(2, n, num_draws, dtype=dtype, device=device)
            upper = self.upper + gpd_icdf(q, self.shape_upper, self.scale_upper)
            lower = self.lower - gpd_icdf(q, self.shape_lower, self.scale_lower)
            # body: an atom chosen by its kernel mass between the thresholds, then its kernel
            # truncated to them, by inversion
            cum = self._atom_mass.cumsum(-1)
            pick = torch.rand(num_draws, n, dtype=dtype, device=device) * cum[:, -1:]
            idx = torch.searchsorted(cum, pick, right=True).clamp_(max=self.atoms.shape[-1] - 1)
            a = torch.gather(self.atoms, 1, idx).T  # (n, D)
            h = self.bandwidth
            lo_p = torch.special.ndtr((self.lower - a) / h)
            hi_p = torch.special.ndtr((self.upper - a) / h)
            body = a + h * torch.special.ndtri(lo_p + q * (hi_p - lo_p))
            body = torch.minimum(torch.maximum(body, self.lower), self.upper)
            out = torch.where(region < self.prob_lower, lower, torch.where(region < 1.0 - self.prob_upper, body, upper))
            return out.reshape(shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # the body's kernel sum only within the body: a value in a tail is clamped to its threshold
        # (its body value is discarded), never far from every atom (the costly exact far-value path)
        inside = torch.minimum(torch.maximum(value, self.lower), self.upper)
        body = self.kde.log_prob(inside) + torch.log(self._prob_body / self._body_mass)
        return torch.where((value > self.upper) | (value < self.lower), self.tail_log_prob(value), body)

    def tail_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The log density of the GPD tails (closed form, no atoms): exact where ``value`` lies
        beyond a threshold, meaningless in the body. Costs a few operations per value where
        :meth:`log_prob` costs one per atom."""
        upper = torch.log(self.prob_upper) + gpd_log_pdf((value - self.upper).clamp(min=0), self.shape_upper, self.scale_upper)
        lower = torch.log(self.prob_lower) + gpd_log_pdf((self.lower - value).clamp(min=0), self.shape_lower, self.scale_lower)
        return torch.where(value > self.upper, upper, lower)

    def tail_log_prob_at(self, value: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        """:meth:`tail_log_prob` at values ``(F,)`` of the draws ``draw`` ``(F,)`` (indices): the few
        values in a tail among many, without evaluating both tails at every value."""
        def at(param: torch.Tensor) -> torch.Tensor:  # a parameter per draw, broadcast first
            return param.expand(self.atoms.shape[:1])[draw]

        upper, lower = at(self.upper), at(self.lower)
        above = value > upper
        prob = torch.where(above, at(self.prob_upper), at(self.prob_lower))
        excess = torch.where(above, value - upper, lower - value).clamp(min=0)
        shape = torch.where(above, at(self.shape_upper), at(self.shape_lower))
        scale = torch.where(above, at(self.scale_upper), at(self.scale_lower))
        return torch.log(prob) + gpd_log_pdf(excess, shape, scale)

    def log_tails(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log P(N <= value)`` and ``log P(N >= value)``, accurate far into both tails."""
        kde_cdf = self.kde.cdf(value)
        inside = (kde_cdf - self._kde_cdf_lower) / self._body_mass
        inside = inside.clamp(0.0, 1.0)
        body_cdf = self.prob_lower + self._prob_body * inside
        body_sf = self.prob_upper + self._prob_body * (1.0 - inside)
        sf_up = torch.log(self.prob_upper) + gpd_log_sf((value - self.upper).clamp(min=0), self.shape_upper, self.scale_upper)
        cdf_lo = torch.log(self.prob_lower) + gpd_log_sf((self.lower - value).clamp(min=0), self.shape_lower, self.scale_lower)
        above, below = value > self.upper, value < self.lower
        log_cdf = torch.where(above, torch.log1p(-sf_up.exp()), torch.where(below, cdf_lo, torch.log(body_cdf)))
        log_sf = torch.where(above, sf_up, torch.where(below, torch.log1p(-cdf_lo.exp()), torch.log(body_sf)))
        return log_cdf, log_sf

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_tails(value)[0].exp()


def split_gaussian(noise: TorchDistribution) -> tuple[TorchDistribution, torch.Tensor]:
    r"""Split a noise distribution into an independent Gaussian part and the rest.

    Returns ``(rest, sd)`` with :math:`N = R + \mathrm{sd}\,\varepsilon`, ``R ~ rest`` and
    :math:`\varepsilon \sim \mathcal N(0, 1)` independent. A Gaussian is all Gaussian part (``R``
    is its mean); any other distribution has none (``sd = 0``). Conditional Monte Carlo
    integrates the Gaussian part of the noises that enter the target additively in closed form,
    which is what lets tail probabilities go far below ``1 / num_samples``.

    :class:`ResidualKDE` is deliberately not split, although it is atoms plus a Gaussian kernel:
    its kernel smooths the training residuals and is no model of the far tail (beyond the
    residuals it decays like a Gaussian one bandwidth wide, so a value a few residual standard
    deviations out would get a probability like exp(-150)). Its rare events keep the Monte Carlo
    p-value floor. :class:`BootstrapGPD` is not split either: its far tail is the GPD, not the
    kernel.
    """
    if isinstance(noise, Normal):
        return Delta(noise.loc), noise.scale
    return noise, torch.zeros(noise.batch_shape, dtype=torch.float64)
