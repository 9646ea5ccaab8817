"""Additive natural-cubic-spline noise model ``X = b0 + sum_k g_k(PA_k) + N``.

Beyond the outer knots the spline is a straight line. For an anomaly beyond the training range,
:meth:`SplineANM.conditioned_on` adds the hinges of :mod:`bayesrca.mechanisms.hinges` (a change
of slope beyond the data, prior sd ``hinge_sd_``: the sd of the draw's slope across the training
values) conditioned on the anomaly's own values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..exceptions import ConfigError
from .additive import AdditiveNoiseModel
from .base import never_varied
from .hinges import condition_hinges

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

    # -- beyond the data: hinges, used only when conditioned on an anomaly ---------------------------
    def fit(self, y: np.ndarray, parents: np.ndarray, *, num_draws: int, progress: bool = False, node: str = "") -> SplineANM:
        super().fit(y, parents, num_draws=num_draws, progress=progress, node=node)
        self._learn_hinges(np.asarray(parents, dtype=np.float64).reshape(len(np.asarray(y)), -1))
        return self

    def _learn_hinges(self, parents: np.ndarray) -> None:
        """Training range and sd per parent, and per draw and parent the sd of the slope over the data.

        The slope of parent k's part (per parent sd) between consecutive 2-98 % quantiles of its
        training values, with the other parents held at their means; its sd over those intervals
        is how much the slope changes across the data (``hinge_sd_``, shape ``(D, p)``).
        """
        center, scale = parents.mean(0), parents.std(0)
        scale = np.where(never_varied(parents), 1.0, scale)
        self.hinge_center_ = torch.as_tensor(center)
        self.hinge_scale_ = torch.as_tensor(scale)
        self.hinge_low_ = torch.as_tensor((parents.min(0) - center) / scale)
        self.hinge_high_ = torch.as_tensor((parents.max(0) - center) / scale)
        sds = torch.zeros(self.num_draws_, parents.shape[1], dtype=torch.float64)
        for k in range(parents.shape[1]):
            grid = np.unique(np.quantile(parents[:, k], np.linspace(0.02, 0.98, 49)))
            if len(grid) < 3 or self.constant_:
                continue
            cols = [torch.full((len(grid), 1), float(c)) for c in center]
            cols[k] = torch.as_tensor(grid).unsqueeze(-1)
            with torch.no_grad():
                f = self.loc(cols, torch.float64)  # (G, D)
            slope = (f[1:] - f[:-1]) / torch.as_tensor(np.diff(grid) / scale[k]).unsqueeze(-1)
            sds[:, k] = slope.std(0)
        self.hinge_sd_ = sds

    def loc(self, parents: Sequence[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Posterior draws of ``f(PA)`` (see :meth:`AdditiveNoiseModel.loc`), with the hinges once conditioned."""
        out = super().loc(parents, dtype)
        hinges = getattr(self, "hinge_coef_", None)
        if hinges is None or not parents:
            return out
        dtype = out.dtype
        for k, p in enumerate(parents):
            z = (p - self.hinge_center_[k].to(dtype)) / self.hinge_scale_[k].to(dtype)
            out = out + (z - self.hinge_high_[k].to(dtype)).clamp(min=0) * hinges[:, 2 * k].to(dtype)
            out = out + (self.hinge_low_[k].to(dtype) - z).clamp(min=0) * hinges[:, 2 * k + 1].to(dtype)
        return out

    def conditioned_on(self, y: np.ndarray, parents: np.ndarray, *, seed: int = 0) -> Any:
        """The hinges conditioned on rows beyond the data (:func:`~bayesrca.mechanisms.hinges.condition_hinges`)."""
        return condition_hinges(self, y, parents, seed=seed)
