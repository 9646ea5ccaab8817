r"""Tail probabilities of the IT outlier score under a base score :math:`\tau`.

Every supported base score has superlevel sets of the form "outside an interval", so the event
:math:`\tau(X) \ge \tau(x)` is :math:`X \le \mathrm{lo}` or :math:`X \ge \mathrm{hi}`:

* ``"median_cdf"`` (default, DoWhy's ``MedianCDFQuantileScorer``): :math:`\tau(y) = |F(y) - 1/2|`;
  one threshold is x, the other its mirror quantile :math:`F^{-1}(1 - F(x))`, and
  :math:`P = 2\min(F(x), 1 - F(x))`;
* ``"mean_deviation"`` / ``"median_deviation"``: :math:`\tau(y) = |y - c|` with c the marginal's
  mean or median (thresholds :math:`c \pm |x - c|`);
* ``"upper"`` / ``"lower"``: one-sided, only large (small) values are anomalous
  (:math:`\tau = F` or :math:`1 - F`).

Two estimators, per posterior draw:

* closed form for a Gaussian marginal (exact, no floor on the tail probability);
* Monte Carlo from the model's own reference samples: ``F`` is their empirical CDF, thresholds are
  order statistics or sample moments, and probabilities use the ``(count + 1) / (M + 1)`` Monte
  Carlo p-value rule (the anomaly counts as one sample), which never returns 0 and equals 1 exactly
  when every sample satisfies the event.
"""

from __future__ import annotations

import torch

from .exceptions import ConfigError

__all__ = [
    "BASE_SCORES",
    "event_side",
    "gaussian_thresholds",
    "gaussian_log_tail",
    "empirical_thresholds",
    "empirical_log_prob",
]

BASE_SCORES = ("median_cdf", "mean_deviation", "median_deviation", "upper", "lower")


def event_side(base_score: str) -> str:
    """``"two"``, ``"upper"`` or ``"lower"``: which tails make up the event."""
    if base_score not in BASE_SCORES:
        raise ConfigError(f"base_score must be one of {BASE_SCORES}, got {base_score!r}")
    return base_score if base_score in ("upper", "lower") else "two"


def _one_sided(x: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    inf = torch.full_like(x, float("inf"))
    return (-inf, x) if side == "upper" else (x, inf)


def gaussian_log_tail(lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """``log(P(Y <= lo) + P(Y >= hi))`` for ``Y ~ Normal(mean, sd)``, clamped to <= 0."""
    sd = torch.clamp(sd, min=torch.finfo(sd.dtype).tiny)
    left = torch.special.log_ndtr((lo - mean) / sd)
    right = torch.special.log_ndtr((mean - hi) / sd)
    return torch.clamp(torch.logaddexp(left, right), max=0.0)


def gaussian_thresholds(x: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor, base_score: str = "median_cdf"):
    """Thresholds and IT score of ``x`` under ``Normal(mean, sd)`` (all broadcast, draw last).

    Returns
    -------
    lo, hi, it_score : torch.Tensor
        ``lo``/``hi`` bound the event; ``it_score = -log P(tau(X) >= tau(x))`` exactly.
    """
    side = event_side(base_score)
    x, mean, sd = torch.broadcast_tensors(x, mean, sd)
    if side == "two":  # symmetric marginal: all two-sided scores coincide
        mirror = 2 * mean - x
        lo, hi = torch.minimum(x, mirror), torch.maximum(x, mirror)
    else:
        lo, hi = _one_sided(x, side)
    return lo, hi, torch.clamp(-gaussian_log_tail(lo, hi, mean, sd), min=0.0)


def empirical_thresholds(reference: torch.Tensor, x: torch.Tensor, base_score: str = "median_cdf"):
    """Thresholds and IT score of ``x`` from reference samples of the marginal.

    Parameters
    ----------
    reference : torch.Tensor
        Shape ``(M, D)``: M samples of the marginal under each of D draws.
    x : torch.Tensor
        Shape ``(K, D)`` or ``(K, 1)``: observed values.
    base_score : str
        One of :data:`BASE_SCORES`.

    Returns
    -------
    lo, hi, it_score : torch.Tensor
        Each of shape ``(K, D)``. Two-sided thresholds are always finite: when no reference
        sample lies beyond x, the mirror threshold is placed below (above) every sample.
    """
    side = event_side(base_score)
    num = reference.shape[0]
    ordered = reference.sort(dim=0).values.T.contiguous()  # (D, M)
    xs = x.expand(x.shape[0], ordered.shape[0]).T.contiguous()  # (D, K)
    if base_score == "median_cdf":
        n_le = torch.searchsorted(ordered, xs, right=True)
        n_ge = num - torch.searchsorted(ordered, xs, right=False)
        m = torch.minimum(n_le, n_ge)
        upper = n_ge <= n_le
        span = (ordered[:, -1:] - ordered[:, :1]) + 1.0
        below, above = ordered[:, :1] - span, ordered[:, -1:] + span
        low_order = torch.where(m > 0, torch.gather(ordered, 1, (m - 1).clamp(min=0)), below)  # m-th smallest
        high_order = torch.where(m > 0, torch.gather(ordered, 1, (num - m).clamp(max=num - 1)), above)  # m-th largest
        lo = torch.where(upper, torch.minimum(low_order, xs), xs)
        hi = torch.where(upper, xs, torch.maximum(high_order, xs))
    elif side == "two":
        centre = ordered.mean(-1, keepdim=True) if base_score == "mean_deviation" else ordered.median(-1, keepdim=True).values
        dist = (xs - centre).abs()
        lo, hi = centre - dist, centre + dist
    else:
        lo, hi = _one_sided(xs, side)
    count = torch.searchsorted(ordered, lo, right=True) + num - torch.searchsorted(ordered, hi, right=False)
    return lo.T, hi.T, -empirical_log_prob(count, num).T.to(reference.dtype)


def empirical_log_prob(count: torch.Tensor, num: int) -> torch.Tensor:
    """``log((count + 1) / (num + 1))`` clamped to <= 0: the Monte Carlo p-value rule."""
    return torch.log(torch.clamp((count.to(torch.float64) + 1) / (num + 1), max=1.0))
