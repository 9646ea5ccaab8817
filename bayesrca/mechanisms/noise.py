"""Noise distributions used at the SCM's noise sites."""

from __future__ import annotations

import math

import torch
from pyro.distributions import Delta, Normal, TorchDistribution, constraints

__all__ = ["ResidualKDE", "split_gaussian"]


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
        return ResidualKDE(self.atoms, self.bandwidth, torch.Size(batch_shape))

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
        z = (value.unsqueeze(-1) - self.atoms) / self.bandwidth.unsqueeze(-1)
        log_k = math.log(self.atoms.shape[-1])
        return (
            torch.logsumexp(-0.5 * z**2, dim=-1)
            - log_k
            - torch.log(self.bandwidth)
            - 0.5 * math.log(2 * math.pi)
        )

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        z = (value.unsqueeze(-1) - self.atoms) / self.bandwidth.unsqueeze(-1)
        return torch.special.ndtr(z).mean(-1)


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
    p-value floor.
    """
    if isinstance(noise, Normal):
        return Delta(noise.loc), noise.scale
    return noise, torch.zeros(noise.batch_shape, dtype=torch.float64)
