"""Root-node distributions: ``X = N`` with a posterior over the distribution's parameters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyro.distributions as dist
import torch

from ..exceptions import DataError
from .additive import NOISE_FAMILIES, AdditiveNoiseModel

__all__ = ["RootDistribution"]


class RootDistribution(AdditiveNoiseModel):
    """Distribution of a node without parents.

    Parameters
    ----------
    noise : {"bootstrap_gpd", "bootstrap", "gaussian", "lognormal", "student_t"}
        ``"lognormal"`` (exact conjugate posterior on the log scale) fits skewed positive data
        such as latencies; ``"bootstrap_gpd"`` (the default) is the non-parametric smoothed
        Bayesian bootstrap with generalised Pareto tails, ``"bootstrap"`` the same without the
        tails.
    inference : str
        Posterior engine, as for :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel`,
        which also documents the keyword-only settings (``num_warmup``, ``num_chains``,
        ``svi_steps``, ``num_atoms``, ``constant_noise_scale``).
    """

    family = "root"
    is_linear = True

    def _allowed_noise(self) -> tuple[str, ...]:
        return NOISE_FAMILIES + ("lognormal",)

    def _learn_features(self, parents: np.ndarray) -> None:
        self.num_parents_ = 0

    def _feature_columns(self, parents: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        return iter(())

    def _features(self, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.zeros(0, 0, dtype=torch.float64)

    def _response(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.noise == "lognormal" else y  # positivity is checked in fit

    def fit(self, y, parents, *, num_draws, progress=False, node=""):
        if self.noise == "lognormal" and np.any(np.asarray(y, dtype=np.float64) <= 0):
            raise DataError(
                f"node {node!r}: RootDistribution(noise='lognormal') needs strictly positive values, got minimum "
                f"{float(np.min(y))!r}; use noise='bootstrap_gpd'"
            )
        super().fit(y, parents, num_draws=num_draws, progress=progress, node=node)
        if self.noise_family_ == "lognormal":
            # the regression ran on log(x): its intercept is mu, its sigma the log-scale sd
            self.noise_params_ = {"mu": self.intercept_, "sigma": self.noise_params_["sigma"]}
            self.intercept_ = torch.zeros_like(self.intercept_)
        return self

    def noise_distribution(self) -> dist.TorchDistribution:
        if getattr(self, "noise_family_", None) == "lognormal":
            return dist.LogNormal(self.noise_params_["mu"], self.noise_params_["sigma"])
        return super().noise_distribution()
