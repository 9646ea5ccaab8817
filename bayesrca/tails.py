r"""Tail probabilities under the two-sided median-CDF quantile score.

With :math:`\tau(y) = |F(y) - 1/2|` the event :math:`\tau(X) \ge \tau(x)` is
:math:`X \le \mathrm{lo}` or :math:`X \ge \mathrm{hi}`, where one threshold is ``x`` itself and
the other is its mirror quantile :math:`F^{-1}(1 - F(x))`. Its probability under the marginal
is :math:`2 \min(F(x), 1 - F(x))`, so the IT score is :math:`-\log 2\min(F(x), 1-F(x))`.

Two estimators of these quantities, per posterior draw:

* closed form for a Gaussian marginal (exact, no floor on the tail probability);
* Monte Carlo from the model's own samples: ``F`` is the empirical CDF of reference samples,
  thresholds are order statistics, and probabilities use the ``(count + 1) / (M + 1)``
  Monte Carlo p-value rule (the anomaly counts as one sample), which never returns 0 and
  equals 1 exactly when every sample satisfies the event.
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_thresholds", "gaussian_log_tail", "empirical_thresholds", "empirical_log_prob"]

_LOG2 = math.log(2.0)


def gaussian_thresholds(x: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor):
    """Thresholds and IT score of ``x`` under ``Normal(mean, sd)`` (all broadcast, draw last).

    Returns
    -------
    lo, hi, it_score : torch.Tensor
        ``lo``/``hi`` bound the event; ``it_score = -log P(tau(X) >= tau(x))`` exactly.
    """
    z = (x - mean) / sd
    log_tail = torch.minimum(torch.special.log_ndtr(z), torch.special.log_ndtr(-z))
    it_score = torch.clamp(-(_LOG2 + log_tail), min=0.0)
    mirror = 2 * mean - x
    lo = torch.minimum(x, mirror)
    hi = torch.maximum(x, mirror)
    return lo, hi, it_score


def gaussian_log_tail(lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """``log(P(Y <= lo) + P(Y >= hi))`` for ``Y ~ Normal(mean, sd)``, clamped to <= 0."""
    sd = torch.clamp(sd, min=torch.finfo(sd.dtype).tiny)
    left = torch.special.log_ndtr((lo - mean) / sd)
    right = torch.special.log_ndtr((mean - hi) / sd)
    return torch.clamp(torch.logaddexp(left, right), max=0.0)


def empirical_thresholds(reference: torch.Tensor, x: torch.Tensor):
    """Thresholds and IT score of ``x`` from reference samples of the marginal.

    Parameters
    ----------
    reference : torch.Tensor
        Shape ``(M, D)``: M samples of the marginal under each of D draws.
    x : torch.Tensor
        Shape ``(K, D)`` or ``(K, 1)``: observed values.

    Returns
    -------
    lo, hi, it_score : torch.Tensor
        Each of shape ``(K, D)``.
    """
    num = reference.shape[0]
    ordered = reference.sort(dim=0).values.T.contiguous()  # (D, M)
    xs = x.expand(x.shape[0], ordered.shape[0]).T.contiguous()  # (D, K)
    n_le = torch.searchsorted(ordered, xs, right=True)
    n_ge = num - torch.searchsorted(ordered, xs, right=False)
    m = torch.minimum(n_le, n_ge)
    upper = n_ge <= n_le
    inf = torch.tensor(float("inf"), dtype=reference.dtype)
    low_order = torch.gather(ordered, 1, (m - 1).clamp(min=0))  # m-th smallest
    high_order = torch.gather(ordered, 1, (num - m).clamp(max=num - 1))  # m-th largest
    lo = torch.where(upper, torch.where(m > 0, low_order, -inf), xs)
    hi = torch.where(upper, xs, torch.where(m > 0, high_order, inf))
    it_score = -torch.log(torch.clamp((2 * m + 1).to(reference.dtype) / (num + 1), max=1.0))
    return lo.T, hi.T, it_score.T


def empirical_log_prob(count: torch.Tensor, num: int) -> torch.Tensor:
    """``log((count + 1) / (num + 1))`` clamped to <= 0: the Monte Carlo p-value rule."""
    return torch.log(torch.clamp((count.to(torch.float64) + 1) / (num + 1), max=1.0))
