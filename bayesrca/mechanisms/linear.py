"""Linear additive noise model ``X = b0 + b . PA + N``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .. import inference
from .additive import AdditiveNoiseModel

__all__ = ["LinearANM"]


class LinearANM(AdditiveNoiseModel):
    """Bayesian linear regression on the parents with a learned noise distribution.

    Linear in the noise, so attributions through chains of linear nodes use the fast
    matrix-product path (and closed-form tails when the noise is Gaussian).
    See :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel` for the parameters.
    """

    family = "linear"
    is_linear = True
    #: vague coefficient prior: few coefficients, and a ridge would bias exact relations among
    #: collinear parents (e.g. profit = revenue - cost), whose residuals are tiny
    prior_g = inference.VAGUE_G

    def _learn_features(self, parents: np.ndarray) -> None:
        self.num_parents_ = parents.shape[1]

    def _feature_columns(self, parents: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        return iter(parents)
