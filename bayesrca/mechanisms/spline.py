"""Additive natural-cubic-spline noise model ``X = b0 + sum_k g_k(PA_k) + N``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..exceptions import ConfigError
from .additive import AdditiveNoiseModel

__all__ = ["SplineANM", "natural_cubic_basis"]


def natural_cubic_basis(x: torch.Tensor, knots: torch.Tensor) -> Iterator[torch.Tensor]:
    """Columns of the natural cubic spline basis without intercept (ESL eq. 5.4-5.5).

    The basis is ``x, d_1 - d_{K-1}, ..., d_{K-2} - d_{K-1}`` with
    ``d_k(x) = ((x - xi_k)_+^3 - (x - xi_K)_+^3) / (xi_K - xi_k)``; it is linear beyond the
    boundary knots, so values outside the training range extrapolate linearly, not wildly.
    ``x`` must already be rescaled so that the knots span about [0, 1]. Yields K-1 columns,
    each shaped like ``x``.
    """
    last = knots[-1]
    tail = (x - last).clamp_(min=0).pow_(3)

    def d(k: int) -> torch.Tensor:  # in-place steps: these tensors are large during attribution
        return (x - knots[k]).clamp_(min=0).pow_(3).sub_(tail).div_(last - knots[k])

    d_last = d(len(knots) - 2)
    yield x
    for k in range(len(knots) - 2):
        yield d(k).sub_(d_last)


class SplineANM(AdditiveNoiseModel):
    """Additive model with one natural cubic spline per parent (Bayesian basis regression).

    Parameters
    ----------
    num_knots : int
        Knots per parent, at evenly spaced quantiles between the 5% and 95% quantiles of the
        training values (>= 3); the fit is linear beyond the outer knots.
    **kwargs
        Noise family and inference settings, see
        :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel`.
    """

    family = "spline"
    is_linear = False

    def __init__(self, noise: str = "bootstrap_gpd", inference: str = "auto", *, num_knots: int = 5, **kwargs) -> None:
        self.num_knots = num_knots
        super().__init__(noise, inference, **kwargs)

    def _learn_features(self, parents: np.ndarray) -> None:
        if not isinstance(self.num_knots, int) or self.num_knots < 3:
            raise ConfigError(f"SplineANM: num_knots must be an integer >= 3, got {self.num_knots!r}")
        self.num_parents_ = parents.shape[1]
        lows, spans, knots, counts = [], [], [], []
        for k in range(parents.shape[1]):
            col = parents[:, k]
            q = np.unique(np.quantile(col, np.linspace(0.05, 0.95, self.num_knots)))
            low, span = float(q[0]), float(q[-1] - q[0]) or 1.0
            if len(q) < 3:  # too few distinct values for curvature: fall back to a straight line
                q = np.array([q[0], q[0] + 0.5 * span, q[0] + span])
            scaled = (q - low) / span
            counts.append(len(scaled))
            # pad the storage only: padded knots give all-zero columns (dropped in the fit), so a
            # parent with few distinct values (e.g. a price at 999 on most days) stays linear beyond
            # its last real knot instead of growing unconstrained cubic terms there
            scaled = np.append(scaled, np.full(self.num_knots - len(scaled), scaled[-1]))
            lows.append(low)
            spans.append(span)
            knots.append(scaled)
        self.knot_low_ = torch.tensor(lows, dtype=torch.float64)
        self.knot_span_ = torch.tensor(spans, dtype=torch.float64)
        self.knots_ = torch.tensor(np.array(knots), dtype=torch.float64).reshape(len(lows), self.num_knots)
        self.knot_count_ = tuple(counts)

    def _feature_columns(self, parents: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        for k, p in enumerate(parents):
            count = self.knot_count_[k]
            x = (p - self.knot_low_[k]) / self.knot_span_[k]
            yield from natural_cubic_basis(x, self.knots_[k, :count])
            for _ in range(self.num_knots - count):
                yield torch.zeros_like(x)
