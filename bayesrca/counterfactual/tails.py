r"""Tail probabilities of the IT outlier score under a base score :math:`\tau`.

Every supported base score has superlevel sets of the form "outside an interval", so the event
:math:`\tau(X) \ge \tau(x)` is :math:`X \le \mathrm{lo}` or :math:`X \ge \mathrm{hi}`:

* ``"median_cdf"`` (default, DoWhy's ``MedianCDFQuantileScorer``): :math:`\tau(y) = |F(y) - 1/2|`;
  one threshold is x, the other its mirror quantile :math:`F^{-1}(1 - F(x))`, and
  :math:`P = 2\min(F(x), 1 - F(x))`;
* ``"mean_deviation"`` / ``"median_deviation"``: :math:`\tau(y) = |y - c|` with c the marginal's
  mean or median (thresholds :math:`c \pm |x - c|`);
* ``"upper"`` / ``"lower"``: one-sided, only large (small) values are anomalous
  (:math:`\tau = F` or :math:`1 - F`);
* ``"rank"`` (DoWhy's ``RankBasedAnomalyScorer``): :math:`\tau(y) = -\log \min(1, 2R^{\ge}(y)/(M+1),
  2R^{\le}(y)/(M+1))` with the ranks of y among the model's M samples (y counted); a monotone
  function of :math:`\min(F, 1 - F)` like the median-CDF score, so its event and IT score are the
  median-CDF ones (the order statistics below count ties on both sides, as the ranks do);
* ``"density"`` (DoWhy's ``InverseDensityScorer``): :math:`\tau(y) = 1/p(y)` with p the marginal's
  density, a kernel estimate from the samples (:mod:`bayesrca.counterfactual.density`); a
  Gaussian marginal is symmetric, so there it is the two-sided event around the mean.

Every base score is computed per posterior draw from that draw's own marginal (its closed form or
its samples), as DoWhy fits its scorer on samples of its one fitted model.

Three estimators, per posterior draw:

* closed form for a Gaussian marginal (exact, no floor on the tail probability);
* Monte Carlo from the model's own reference samples: ``F`` is their empirical CDF, thresholds are
  order statistics or sample moments, and probabilities use the ``(count + 1) / (M + 1)`` Monte
  Carlo p-value rule (the anomaly counts as one sample), which never returns 0 and equals 1 exactly
  when every sample satisfies the event;
* conditional Monte Carlo for a Gaussian mixture ``Y = C + sd * eps`` with ``C`` uniform over M
  sampled centres (:func:`mixture_log_tail`, :func:`mixture_thresholds`): the Gaussian part is
  integrated in closed form, so probabilities far below ``1 / M`` are estimated without a floor.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch

from ..exceptions import ConfigError
from .density import density_thresholds

__all__ = [
    "BASE_SCORES",
    "QUANTILE_SCORES",
    "event_side",
    "gaussian_thresholds",
    "gaussian_log_tail",
    "empirical_thresholds",
    "empirical_log_prob",
    "mixture_log_tail",
    "MIN_TAIL_ESS",
    "mixture_thresholds",
    "conditional_thresholds",
]

#: Fewest effective samples behind an IT score for it to be trusted: with fewer, a count is at
#: (or near) the Monte Carlo floor and a conditional Monte Carlo estimate rests on a handful of
#: sampled centres (relative error of the probability about ``1 / sqrt(ESS)``).
MIN_TAIL_ESS = 10.0

BASE_SCORES = ("median_cdf", "mean_deviation", "median_deviation", "upper", "lower", "rank", "density")
#: Base scores whose event has the median-CDF thresholds (one end x, the other its mirror quantile).
QUANTILE_SCORES = ("median_cdf", "rank")


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


def empirical_thresholds(
    reference: torch.Tensor, x: torch.Tensor, base_score: str = "median_cdf", *, return_count: bool = False
):
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
        sample lies beyond x, the mirror threshold is placed below (above) every sample. With
        ``return_count`` the number of samples in the event, ``(K, D)``, comes fourth.
    """
    side = event_side(base_score)
    num = reference.shape[0]
    ordered = reference.sort(dim=0).values.T.contiguous()  # (D, M)
    xs = x.expand(x.shape[0], ordered.shape[0]).T.contiguous()  # (D, K)
    if base_score in QUANTILE_SCORES:
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
    elif base_score == "density":
        lo, hi = density_thresholds(ordered, xs)
    elif side == "two":
        centre = ordered.mean(-1, keepdim=True) if base_score == "mean_deviation" else ordered.median(-1, keepdim=True).values
        dist = (xs - centre).abs()
        lo, hi = centre - dist, centre + dist
    else:
        lo, hi = _one_sided(xs, side)
    count = torch.searchsorted(ordered, lo, right=True) + num - torch.searchsorted(ordered, hi, right=False)
    out = lo.T, hi.T, -empirical_log_prob(count, num).T.to(reference.dtype)
    return (*out, count.T) if return_count else out


def empirical_log_prob(count: torch.Tensor, num: int) -> torch.Tensor:
    """``log((count + 1) / (num + 1))`` clamped to <= 0: the Monte Carlo p-value rule."""
    return torch.log(torch.clamp((count.to(torch.float64) + 1) / (num + 1), max=1.0))


def _log_mean_exp(terms: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(terms, -1) - math.log(terms.shape[-1])


@overload
def mixture_log_tail(
    centres: torch.Tensor, sd: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *, return_ess: Literal[False] = ...,
    log_weights: torch.Tensor | None = ...,
) -> torch.Tensor: ...
@overload
def mixture_log_tail(
    centres: torch.Tensor, sd: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *, return_ess: Literal[True],
    log_weights: torch.Tensor | None = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...
def mixture_log_tail(
    centres: torch.Tensor, sd: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *, return_ess: bool = False,
    log_weights: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""``log P(Y <= lo or Y >= hi)`` for ``Y = C + sd * eps`` by conditional Monte Carlo.

    ``C`` is uniform over the M sampled ``centres`` and ``eps`` standard normal: the estimate is
    :math:`\log \frac1M \sum_m [\Phi((lo - c_m)/sd) + \Phi((c_m - hi)/sd)]`, computed in log space,
    so it is unbiased for the probability and has no floor. The arithmetic runs in the dtype of
    ``centres`` (float32 halves the cost; its relative error, ~1e-7, is far below Monte Carlo error).

    Parameters
    ----------
    centres : torch.Tensor
        Shape ``(P, M)``: M sampled centres for each of P cases.
    sd, lo, hi : torch.Tensor
        Shape ``(P,)``: the Gaussian part's standard deviation (> 0) and the event's bounds
        (``-inf`` / ``inf`` for a one-sided event).

    return_ess : bool, default False
        Also return the effective sample size of the M terms (Kish:
        :math:`(\sum_m w_m)^2 / \sum_m w_m^2`). Near 1 the estimate rests on one sampled centre:
        the event is reached through samples the M draws barely cover (e.g. an upstream
        nonlinear ancestor far in its tail), and the estimate cannot be trusted.
    log_weights : torch.Tensor, optional
        Shape ``(P, M)``: log importance weights of the centres (they were drawn from a proposal,
        :mod:`bayesrca.counterfactual.importance`); the terms become :math:`w_m \Phi_m` and the
        estimate, :math:`\frac1M \sum_m w_m \Phi_m`, stays unbiased.

    Returns
    -------
    torch.Tensor
        Shape ``(P, 3)``, float64: the estimate from all M centres, then from the first
        ``M // 2`` and from the rest (their spread measures the Monte Carlo error); with
        ``return_ess`` also the ESS, shape ``(P,)``.
    """
    dtype = centres.dtype if centres.dtype in (torch.float32, torch.float64) else torch.float64
    centres = centres.to(dtype)
    inv_sd = 1 / sd.to(torch.float64).clamp(min=torch.finfo(torch.float64).tiny).unsqueeze(-1)
    lo, hi = lo.to(torch.float64).unsqueeze(-1), hi.to(torch.float64).unsqueeze(-1)
    left = torch.isfinite(lo).any()
    right = torch.isfinite(hi).any()
    terms = None
    if left:  # (lo - c) / sd, in float64 for the bounds, then in the working dtype
        terms = torch.special.log_ndtr((lo * inv_sd).to(dtype) - centres * inv_sd.to(dtype))
    if right or terms is None:
        upper = torch.special.log_ndtr(centres * inv_sd.to(dtype) - (hi * inv_sd).to(dtype))
        terms = upper if terms is None else torch.logaddexp(terms, upper)
    if log_weights is not None:
        terms = terms + log_weights.to(dtype)
    half = max(centres.shape[-1] // 2, 1)
    first, second = (terms[:, :half], terms[:, half:]) if centres.shape[-1] > 1 else (terms, terms)
    parts = [_log_mean_exp(terms), _log_mean_exp(first), _log_mean_exp(second)]
    out = torch.stack(parts, -1).to(torch.float64).clamp(max=0.0)
    if not return_ess:
        return out
    t64 = terms.to(torch.float64)
    ess = torch.exp(2 * torch.logsumexp(t64, -1) - torch.logsumexp(2 * t64, -1))
    return out, torch.nan_to_num(ess, nan=0.0)


def mixture_thresholds(
    centres: torch.Tensor, sd: torch.Tensor, x: torch.Tensor, *, iterations: int = 16, log_weights: torch.Tensor | None = None
):
    r"""Median-CDF thresholds of ``x`` under the mixture ``Y = C + sd * eps`` (see :func:`mixture_log_tail`).

    The mirror threshold solves :math:`F(y) = 1 - F(x)` (or :math:`1 - F(y) = F(x)`) on the log
    scale by Newton's method safeguarded by bisection (a step leaving the bracket bisects), so it is
    found however far in the tail x lies; log F of a Gaussian mixture is smooth and nearly quadratic
    in the tail, where Newton converges in a few steps.

    Parameters
    ----------
    centres : torch.Tensor
        Shape ``(P, M)``.
    sd, x : torch.Tensor
        Shape ``(P,)``.
    iterations : int
        Most Newton/bisection steps (it stops once every step is below 1e-10 sd).
    log_weights : torch.Tensor, optional
        Shape ``(P, M)``: log importance weights of the centres (see :func:`mixture_log_tail`);
        F is then the weighted mixture :math:`\frac1M \sum_m w_m \Phi((y - c_m)/sd)`.

    Returns
    -------
    lo, hi : torch.Tensor
        Shape ``(P,)``: the event is ``Y <= lo`` or ``Y >= hi``, one of them being x.
    """
    centres = centres.to(torch.float64)
    x = x.to(torch.float64)
    sd = sd.to(torch.float64).clamp(min=torch.finfo(torch.float64).tiny)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    log_w = torch.zeros_like(centres) if log_weights is None else log_weights.to(torch.float64)

    def log_cdf(y: torch.Tensor, sign: torch.Tensor, slope: bool = False):
        """log F(y) (sign 1) or log(1 - F(y)) (sign -1), and optionally its derivative in y."""
        z = sign.unsqueeze(-1) * (y.unsqueeze(-1) - centres) / sd.unsqueeze(-1)
        value = _log_mean_exp(torch.special.log_ndtr(z) + log_w)
        if not slope:
            return value
        log_density = _log_mean_exp(-0.5 * z**2 - half_log_2pi + log_w) - torch.log(sd)
        return value, sign * torch.exp(log_density - value)

    ones = torch.ones_like(x)
    log_f, log_s = log_cdf(x, ones), log_cdf(x, -ones)
    upper = log_s <= log_f  # x is in the upper tail: the mirror is in the lower tail
    goal = torch.minimum(log_f, log_s)  # <= log(1/2)
    width = sd * ((-2 * goal).clamp(min=0).sqrt() + 3)
    c_min, c_max = centres.min(-1).values, centres.max(-1).values
    a = torch.where(upper, c_min - width, c_min)
    b = torch.where(upper, c_max, c_max + width)
    sign = torch.where(upper, ones, -ones)  # log F is increasing, log(1 - F) decreasing
    y = torch.where(upper, 2 * c_min - x, 2 * c_max - x).clamp(min=a, max=b)  # the mirror of x
    for _ in range(iterations):
        value, slope = log_cdf(y, sign, slope=True)
        low_side = sign * (value - goal) < 0  # y is below the solution
        a, b = torch.where(low_side, y, a), torch.where(low_side, b, y)
        step = y - (value - goal) / torch.where(slope == 0, torch.ones_like(slope), slope)
        inside = (step >= a) & (step <= b) & (slope != 0) & torch.isfinite(step)
        new = torch.where(inside, step, (a + b) / 2)
        done = bool(((new - y).abs() <= 1e-10 * sd).all())
        y = new
        if done:
            break
    lo = torch.where(upper, torch.minimum(y, x), x)
    hi = torch.where(upper, x, torch.maximum(y, x))
    return lo, hi


def conditional_thresholds(
    reference: torch.Tensor, centres: torch.Tensor, sd: torch.Tensor, x: torch.Tensor, base_score: str = "median_cdf",
    *, rare_count: int = 20, return_ess: bool = False,
):
    """Thresholds and IT score of ``x`` from samples ``reference = centres + sd * eps``.

    Where the draw has a Gaussian part (``sd > 0``) the IT score is ``-log(count / M)`` and,
    where fewer than ``rare_count`` samples fall in the event, it (and the median-CDF thresholds)
    comes from conditional Monte Carlo (:func:`mixture_log_tail`, :func:`mixture_thresholds`);
    without a Gaussian part it is :func:`empirical_thresholds`' p-value rule.

    Parameters
    ----------
    reference, centres : torch.Tensor
        Shape ``(M, D)``.
    sd : torch.Tensor
        Shape ``(D,)``.
    x : torch.Tensor
        Shape ``(K, D)`` or ``(K, 1)``.

    return_ess : bool, default False
        Also return the effective sample size behind each IT score: the number of samples in the
        event for a count, the Kish ESS of the terms where conditional Monte Carlo is used
        (see :func:`mixture_log_tail`).

    Returns
    -------
    lo, hi, it_score : torch.Tensor
        Each of shape ``(K, D)``; with ``return_ess`` also the ESS ``(K, D)``.
    """
    if base_score == "density":  # the density of the centres, each widened by the draw's Gaussian part
        num, xs = reference.shape[0], x.expand(x.shape[0], reference.shape[1]).T.contiguous()  # (D, K)
        lo_t, hi_t = density_thresholds(centres.T, xs, sd)
        ordered = reference.sort(dim=0).values.T.contiguous()
        count = (torch.searchsorted(ordered, lo_t, right=True) + num - torch.searchsorted(ordered, hi_t, right=False)).T
        lo, hi, it = lo_t.T.contiguous(), hi_t.T.contiguous(), -empirical_log_prob(count, num).to(reference.dtype)
    else:
        lo, hi, it, count = empirical_thresholds(reference, x, base_score, return_count=True)
    ess = count.to(torch.float64).clone()
    gaussian = (sd > 0).expand_as(count)
    it = torch.where(gaussian, -torch.log(count.clamp(min=1).to(torch.float64) / reference.shape[0]), it).clamp(min=0.0)
    rare = gaussian & (count < rare_count)
    if bool(rare.any()):
        k_idx, d_idx = rare.nonzero(as_tuple=True)
        rows, s, xs = centres.T[d_idx], sd[d_idx], x.expand_as(count)[k_idx, d_idx].to(torch.float64)
        if base_score in QUANTILE_SCORES:
            lo[k_idx, d_idx], hi[k_idx, d_idx] = mixture_thresholds(rows, s, xs)
        log_tail, ess[k_idx, d_idx] = mixture_log_tail(rows, s, lo[k_idx, d_idx], hi[k_idx, d_idx], return_ess=True)
        it[k_idx, d_idx] = -log_tail[:, 0]
    return (lo, hi, it, ess) if return_ess else (lo, hi, it)
