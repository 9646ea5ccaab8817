r"""The noise of a column that never varied in training: a spike at its level and a rare slab.

A column that is constant over the n training rows is real (a callee that never failed, a cache
that always answered), but its noise scale is not identified by the data. Per posterior draw its
noise is

.. math::

    N \sim (1 - \varepsilon)\, \delta_0 + \varepsilon\, \mathcal N(0, s_{\text{slab}}^2),
    \qquad \varepsilon = \frac{1}{n + 2},

where :math:`\varepsilon` is Laplace's rule of succession (after n rows without a change, the
probability that the next one changes) and :math:`s_{\text{slab}}` = ``max(|level|, 1)`` (a change
is on the scale of the level, or of one unit at level 0). Samples of the spike are exactly 0 (the
column keeps its value), so a coalition that leaves only such columns free reproduces the observed
target, as when every noise is kept. Densities (``log_prob``, held-out scores) stand a narrow
Gaussian of sd :math:`s_{\text{spike}}` = ``constant_noise_scale · max(|level|, 1)`` (1e-3 of the
level by default) in for the point mass, so that they are finite. A deviation
:math:`d \gg s_{\text{spike}}` then has the IT score
:math:`\log(n + 2) - \log 2\Phi(-d / s_{\text{slab}})`: about :math:`\log(n + 2)` for a change
small against the level, more for a larger one. It is finite and as surprising as n unchanged rows
make it, where a single Gaussian as narrow as the spike gave thousands of standard deviations
(millions of nats) and Shapley values of the same size that cancel.

The closed-form path keeps working: a linear combination of Gaussian and spike-and-slab noises is
a scale mixture of Gaussians (with the spike's variance 0), whose tails
:func:`bayesrca.counterfactual.scale_mixture.scale_mixture_log_tail` evaluates to first order in
:math:`\varepsilon` (at most one of the constant columns changes; the rest is :math:`O(\varepsilon^2)`).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints

__all__ = ["SpikeSlabNormal", "constant_noise_params", "slab_probability"]


def slab_probability(num_rows: int) -> float:
    """Laplace's rule of succession: the probability ``1 / (n + 2)`` that a column unchanged over
    ``n`` rows changes."""
    return 1.0 / (int(num_rows) + 2)


class SpikeSlabNormal(TorchDistribution):
    """``(1 - slab_prob) delta_0 + slab_prob Normal(0, slab)`` per posterior draw (module docstring).

    Parameters
    ----------
    spike, slab, slab_prob : torch.Tensor
        ``(D,)`` (or broadcastable): the sd of the narrow Gaussian that stands in for the point mass
        in densities, the slab's sd and its probability.
    batch_shape : torch.Size, optional
        Broadcast batch shape whose last dimension is D (used by plates via :meth:`expand`).
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, spike, slab, slab_prob, batch_shape=None, validate_args=None):
        self.spike, self.slab, self.slab_prob = torch.broadcast_tensors(spike, slab, slab_prob)
        shape = torch.Size(batch_shape) if batch_shape is not None else self.spike.shape
        super().__init__(shape, torch.Size(), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        return SpikeSlabNormal(self.spike, self.slab, self.slab_prob, batch_shape=torch.Size(batch_shape))

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros_like(self.spike).expand(self.batch_shape)

    @property
    def variance(self) -> torch.Tensor:
        return (self.slab_prob * self.slab**2).expand(self.batch_shape)

    def slab_parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The slab's variance and ``log slab_prob``, each ``(D,)``: the distribution is 0 plus, with
        probability ``slab_prob``, an independent ``Normal(0, slab)``
        (:func:`bayesrca.counterfactual.scale_mixture.scale_mixture_log_tail`)."""
        return self.slab**2, self.slab_prob.log()

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            z = torch.randn(shape, dtype=self.spike.dtype, device=self.spike.device)
            slab = torch.rand(shape, dtype=self.spike.dtype, device=self.spike.device) < self.slab_prob
            return z * torch.where(slab, self.slab, torch.zeros_like(self.slab))  # the spike: exactly 0

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        spike = -0.5 * (value / self.spike) ** 2 - self.spike.log() - half_log_2pi + torch.log1p(-self.slab_prob)
        slab = -0.5 * (value / self.slab) ** 2 - self.slab.log() - half_log_2pi + self.slab_prob.log()
        return torch.logaddexp(spike, slab)

    def log_tails(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log P(N <= value)`` and ``log P(N >= value)`` (the spike a point mass at 0, counted on
        both sides at 0), accurate far into both tails."""
        keep, change = torch.log1p(-self.slab_prob), self.slab_prob.log()
        at_or_below = torch.where(value >= 0, keep, torch.full_like(value, -math.inf))  # broadcast shape
        at_or_above = torch.where(value <= 0, keep, torch.full_like(value, -math.inf))
        cdf = torch.logaddexp(at_or_below, change + torch.special.log_ndtr(value / self.slab))
        sf = torch.logaddexp(at_or_above, change + torch.special.log_ndtr(-value / self.slab))
        return cdf, sf

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_tails(value)[0].exp()


def constant_noise_params(level: float, num_rows: int, noise_scale: float, num_draws: int) -> dict[str, torch.Tensor]:
    """The noise parameters of a column constant at ``level`` over ``num_rows`` rows (module
    docstring): ``sigma`` (the spike), ``slab`` and ``slab_prob``, each ``(num_draws,)``."""
    unit = max(abs(float(level)), 1.0)
    full = lambda v: torch.full((num_draws,), float(v), dtype=torch.float64)  # noqa: E731
    return {"sigma": full(noise_scale * unit), "slab": full(unit), "slab_prob": full(slab_probability(num_rows))}
