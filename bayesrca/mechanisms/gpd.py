r"""Generalised Pareto (GPD) tails: closed forms and a fast grid posterior of (shape, scale).

The GPD with shape :math:`\xi \ge 0` and scale :math:`\sigma > 0` has survival function
:math:`\bar G(y) = (1 + \xi y / \sigma)^{-1/\xi}` for :math:`y \ge 0` (the exponential
:math:`e^{-y/\sigma}` at :math:`\xi = 0`). By the Pickands-Balkema-de Haan theorem it is the
limit law of exceedances over a high threshold, which is why it models the far tail of the
residuals beyond the last training residual.

Posterior (:func:`sample_tail_posterior`) given ``m`` exceedances :math:`y_{1..m}` over a
threshold:

* prior: with probability :data:`EXPONENTIAL_PRIOR` = 1/2 the tail is exponential
  (:math:`\xi = 0` exactly), otherwise :math:`\xi` is half-normal, :math:`\xi \sim \mathcal N(0, 0.5^2)`
  restricted to :data:`SHAPE_MIN` = 0 ... :data:`SHAPE_MAX` = 0.95 (weakly informative);
  :math:`\log\sigma` flat. The point mass is there because :math:`\xi = 0` is the limit of the
  whole Gumbel domain of attraction (Gaussian, exponential, gamma, log-normal-like residuals),
  the common case: without it every draw of an exponential tail has :math:`\xi > 0` (the truth
  sits on the boundary of the support), a tail heavier than the data's in every draw, and far
  tail probabilities biased upwards with intervals that exclude the truth. The posterior weighs
  the two by their marginal likelihoods (a Bayes factor, computed on the same scale grid);
* the exact posterior :math:`\propto \text{prior} \times \prod_i g(y_i; \xi, \sigma)` on a
  grid of :data:`NUM_SHAPES` shapes times :data:`NUM_LOG_SCALES` log-scales, the scale grid
  centred for each shape at the scale whose GPD median is the exceedances' median and
  ``±(4`` approximate posterior standard deviations of :math:`\log\sigma` ``+ 0.7)`` wide;
* one independent draw from the grid posterior per posterior draw, spread uniformly within its
  grid cell (a piecewise-constant density: exact up to the grid's resolution).

Why a grid and not MCMC: the posterior is two-dimensional and smooth, so a 39 x 48 grid is exact
to its resolution, costs one vectorised likelihood evaluation per shape (over scales and
exceedances at once, about 10 ms for 500 exceedances) and never needs convergence checks.

Why :math:`\xi \ge 0`: a negative shape gives the tail a finite end point
:math:`\sigma / |\xi|` beyond the threshold, and a value beyond it an impossible
(:math:`-\infty`) log density; the anomalies this package explains lie beyond the training
residuals by construction. The exponential tail (:math:`\xi = 0`) is the lightest unbounded GPD
tail, so light-tailed (e.g. Gaussian) residuals get :math:`\xi \approx 0`: a tail somewhat
heavier than theirs, i.e. tail probabilities that err on the large (conservative) side.
Why :math:`\xi \le 0.95`: the mean of a GPD is infinite for :math:`\xi \ge 1`; the cap keeps
every noise mean finite (the variance is infinite for :math:`\xi \ge 1/2`, and reported so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "SHAPE_MIN",
    "SHAPE_MAX",
    "SHAPE_PRIOR_SD",
    "EXPONENTIAL_PRIOR",
    "NUM_SHAPES",
    "NUM_LOG_SCALES",
    "gpd_log_pdf",
    "gpd_log_sf",
    "gpd_icdf",
    "gpd_moments",
    "sample_tail_posterior",
    "tail_grid",
    "TailGrid",
    "TAIL_FRACTION",
    "MIN_EXCEEDANCES",
    "MAX_EXCEEDANCES",
    "MIN_TAIL_COUNT",
    "MIN_BODY_RATIO",
    "tail_count",
    "gpd_tail_draws",
    "attach_gpd_tails",
]

SHAPE_MIN = 0.0
SHAPE_MAX = 0.95
#: standard deviation of the half-normal prior on the shape
SHAPE_PRIOR_SD = 0.5
#: prior probability that a tail is exactly exponential (shape 0)
EXPONENTIAL_PRIOR = 0.5
NUM_SHAPES = 39
NUM_LOG_SCALES = 48
_SMALL = 1e-14


def _is_exp(shape: torch.Tensor) -> torch.Tensor:
    return shape.abs() < _SMALL


def gpd_log_sf(y: torch.Tensor, shape: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``log P(Y > y)`` for ``Y ~ GPD(shape, scale)``, ``y >= 0`` (broadcast)."""
    z = y / scale
    safe = torch.where(_is_exp(shape), torch.ones_like(shape), shape)
    return torch.where(_is_exp(shape), -z, -torch.log1p(safe * z) / safe)


def gpd_log_pdf(y: torch.Tensor, shape: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Log density of ``GPD(shape, scale)`` at ``y >= 0`` (broadcast)."""
    z = y / scale
    safe = torch.where(_is_exp(shape), torch.ones_like(shape), shape)
    body = torch.where(_is_exp(shape), -z, -(1.0 / safe + 1.0) * torch.log1p(safe * z))
    return body - torch.log(scale)


def gpd_icdf(q: torch.Tensor, shape: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Quantile function of ``GPD(shape, scale)`` at ``q`` in [0, 1) (broadcast)."""
    log_sf = torch.log1p(-q)  # log(1 - q)
    safe = torch.where(_is_exp(shape), torch.ones_like(shape), shape)
    return scale * torch.where(_is_exp(shape), -log_sf, torch.expm1(-safe * log_sf) / safe)


def gpd_moments(shape: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[Y]`` and ``E[Y^2]`` of ``GPD(shape, scale)``; ``E[Y^2]`` is ``inf`` for ``shape >= 1/2``."""
    mean = scale / (1.0 - shape)
    denom = (1.0 - shape) * (1.0 - 2.0 * shape)
    second = torch.where(shape < 0.5, 2.0 * scale**2 / denom.clamp(min=_SMALL), torch.full_like(scale, math.inf))
    return mean, second


def _shape_grid(dtype: torch.dtype) -> torch.Tensor:
    return torch.linspace(SHAPE_MIN, SHAPE_MAX, NUM_SHAPES, dtype=dtype)


def _centre_scale(shape: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
    """The scale whose GPD median is ``median``: ``median * xi / (2^xi - 1)`` (``median / log 2`` at 0)."""
    safe = torch.where(_is_exp(shape), torch.ones_like(shape), shape)
    factor = torch.where(_is_exp(shape), torch.full_like(shape, 1.0 / math.log(2.0)), safe / torch.expm1(safe * math.log(2.0)))
    return median.unsqueeze(-1) * factor


def grid_log_posterior(exceedances: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised log posterior on the grid, ``(D, NUM_SHAPES, NUM_LOG_SCALES)``, and the log-scale grid.

    Parameters
    ----------
    exceedances : torch.Tensor
        ``(D, m)``: each draw's non-negative exceedances over its threshold.
    floor : torch.Tensor
        ``(D,)``: scale reference used when every exceedance is 0 (ties at the threshold).

    Returns
    -------
    log_post : torch.Tensor
        ``(D, S, T)``.
    log_scale : torch.Tensor
        ``(D, S, T)``: the log-scale at every grid point.
    """
    num_draws, m = exceedances.shape
    dtype = exceedances.dtype
    shapes = _shape_grid(dtype)
    median = exceedances.median(-1).values  # the centre's reference; the mean, then floor, when ties put it at 0
    median = torch.where(median > 0, median, exceedances.mean(-1))
    median = torch.where(median > 0, median, floor)
    # approximate posterior sd of log(scale): sqrt(2 (1 + xi) / m) (GPD Fisher information)
    # (plus a margin of 0.7: the median-based centre can miss the mode, e.g. for a bounded tail
    # fitted with xi >= 0)
    half = 4.0 * math.sqrt(2.0 * (1.0 + SHAPE_MAX) / max(m, 1)) + 0.7
    offsets = torch.linspace(-half, half, NUM_LOG_SCALES, dtype=dtype)
    log_scale = torch.log(_centre_scale(shapes, median)).unsqueeze(-1) + offsets  # (D, S, T)
    safe = torch.where(_is_exp(shapes), torch.ones_like(shapes), shapes)[:, None, None]  # (S, 1, 1)
    exp_tail = _is_exp(shapes)[:, None]
    log_lik = torch.empty(num_draws, NUM_SHAPES, NUM_LOG_SCALES, dtype=dtype)
    for d in range(num_draws):  # one (S, T, m) block per row: all shapes and scales at once
        scale = log_scale[d].exp()  # (S, T)
        z = exceedances[d] / scale.unsqueeze(-1)  # (S, T, m)
        total = torch.where(exp_tail, -z.sum(-1), -(1.0 / safe[..., 0] + 1.0) * torch.log1p(safe * z).sum(-1))
        log_lik[d] = total - m * log_scale[d]
    log_prior = -0.5 * (shapes / SHAPE_PRIOR_SD) ** 2
    return log_lik + log_prior[:, None], log_scale


@dataclass(frozen=True)
class TailGrid:
    """The grid posterior of one tail's ``(shape, scale)``, split into its two hypotheses.

    ``slab``: the posterior over the grid cells of the half-normal shape prior (normalised,
    ``(S * T,)``); ``spike``: over the scales of the exponential tail (normalised, ``(T,)``);
    ``log_bf``: the log Bayes factor of the exponential tail against the slab (the ratio of their
    marginal likelihoods, each with its own prior over the parameters). Given which hypothesis a
    draw takes, :meth:`draw` samples ``(shape, scale)``; the probability of the exponential tail
    is the prior's odds times ``exp(log_bf)``, so the prior on that choice can be set later, e.g.
    shared by the tails of one model (:mod:`bayesrca.mechanisms.tail_pooling`).
    """

    shapes: torch.Tensor
    log_scale: torch.Tensor
    slab: torch.Tensor
    spike: torch.Tensor
    log_bf: float

    def exponential_prob(self, prior: torch.Tensor | float) -> torch.Tensor:
        """``P(shape = 0 | data)`` for a prior probability ``prior`` of the exponential tail (broadcast)."""
        prior = torch.as_tensor(prior, dtype=torch.float64)
        return torch.sigmoid(torch.logit(prior) + self.log_bf)

    def draw(self, exponential: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shape, scale)`` per draw, ``(D,)`` each: from the spike where ``exponential`` ``(D,)``
        is True, else from the slab; spread uniformly within the grid cell."""
        num = exponential.shape[0]
        dtype = self.log_scale.dtype
        num_t = self.log_scale.shape[1]
        slab_cell = torch.multinomial(self.slab, num, replacement=True, generator=generator)
        spike_cell = torch.multinomial(self.spike, num, replacement=True, generator=generator)
        s_idx = torch.where(exponential, 0, slab_cell // num_t)
        t_idx = torch.where(exponential, spike_cell, slab_cell % num_t)
        d_shape = self.shapes[1] - self.shapes[0]
        d_log = self.log_scale[0, 1] - self.log_scale[0, 0]
        jitter = torch.rand(2, num, dtype=dtype, generator=generator) - 0.5
        shape = torch.where(exponential, 0.0, (self.shapes[s_idx] + d_shape * jitter[0]).clamp(SHAPE_MIN, SHAPE_MAX))
        scale = (self.log_scale[s_idx, t_idx] + d_log * jitter[1]).exp()
        return shape, scale


def tail_grid(exceedances: torch.Tensor, floor: float) -> TailGrid:
    """The grid posterior of one tail given its exceedances ``(m,)`` (see :func:`sample_tail_posterior`)."""
    dtype = exceedances.dtype
    log_post, log_scale = grid_log_posterior(exceedances.reshape(1, -1), torch.tensor([floor], dtype=dtype))
    shapes = _shape_grid(dtype)
    # the half-normal slab, normalised over the grid's shapes, and the exponential point mass on the
    # shape-0 row's scales: both on the same log-scale measure, so their masses are comparable
    log_slab_prior = -0.5 * (shapes / SHAPE_PRIOR_SD) ** 2
    slab = (log_post[0] - torch.logsumexp(log_slab_prior, 0)).reshape(-1)
    spike = log_post[0, 0]  # at shape 0 the slab's prior term is 0
    log_z_slab, log_z_spike = torch.logsumexp(slab, 0), torch.logsumexp(spike, 0)
    return TailGrid(shapes=shapes, log_scale=log_scale[0], slab=torch.softmax(slab, 0), spike=torch.softmax(spike, 0),
                    log_bf=float(log_z_spike - log_z_slab))


def sample_tail_posterior(exceedances: torch.Tensor, floor: float, num_draws: int) -> dict[str, Any]:
    """``num_draws`` independent draws of ``(shape, scale)`` from the grid posterior given ``exceedances``.

    Parameters
    ----------
    exceedances : torch.Tensor
        ``(m,)``: exceedances over the threshold (values minus the threshold, all >= 0).
    floor : float
        Scale reference used when every exceedance is 0 (ties at the threshold), e.g. a small
        fraction of the kernel bandwidth.
    num_draws : int
        Number of independent draws.

    Returns
    -------
    dict
        ``shape`` and ``scale`` (each ``(num_draws,)``), the scalars ``shape_mean`` (the
        posterior mean shape), ``exponential_prob`` (the posterior probability of the
        exponential tail, shape 0) and ``edge_mass`` (posterior mass on the outer lines of the
        scale grid; near 0 when the grid covers the posterior), and ``grid``, the
        :class:`TailGrid` they were drawn from.
    """
    grid = tail_grid(exceedances, floor)
    prob_exp = grid.exponential_prob(EXPONENTIAL_PRIOR)
    exponential = torch.rand(num_draws, dtype=exceedances.dtype) < prob_exp
    shape, scale = grid.draw(exponential)
    slab = grid.slab.reshape(grid.log_scale.shape)
    edge = (1 - prob_exp) * (slab[:, 0].sum() + slab[:, -1].sum()) + prob_exp * (grid.spike[0] + grid.spike[-1])
    shape_mean = (1 - prob_exp) * (slab.sum(-1) * grid.shapes).sum()
    return {"shape": shape, "scale": scale, "shape_mean": shape_mean, "edge_mass": edge,
            "exponential_prob": prob_exp, "grid": grid}


#: GPD tails: threshold at this quantile of the residuals (and its mirror) ...
TAIL_FRACTION = 0.1
#: ... moved inwards to keep at least this many exceedances per tail (at most a quarter of the rows) ...
MIN_EXCEEDANCES = 20
#: ... and outwards to keep at most this many (large n: a threshold further out, where the GPD fits best).
MAX_EXCEEDANCES = 500
#: With fewer exceedances per tail than this (fewer than 8 rows) the noise stays the plain KDE ...
MIN_TAIL_COUNT = 2
#: ... and also when, in some draw, the kernel's mass between the thresholds is below this fraction
#: of the data's (residuals tied at the thresholds: the spliced body's density would blow up).
MIN_BODY_RATIO = 0.5


def tail_count(n: int) -> int:
    """Exceedances per GPD tail for ``n`` residuals (see :data:`TAIL_FRACTION` and the limits after it)."""
    return min(max(MIN_EXCEEDANCES, math.ceil(TAIL_FRACTION * n)), MAX_EXCEEDANCES, n // 4)


def gpd_tail_draws(
    residuals: torch.Tensor, weights: torch.Tensor, reference: torch.Tensor, m: int, floor: float
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Thresholds, tail probabilities and GPD draws of the two tails of bootstrap noise.

    Per draw d, the upper threshold is the (m+1)-th largest of the draw's residuals and the
    upper tail probability the draw's Dirichlet weight on the m residuals above it (likewise
    below). The GPD posterior (:func:`bayesrca.mechanisms.gpd.sample_tail_posterior`) is computed
    once per tail, from the exceedances of ``reference`` (the residuals of the posterior-mean
    coefficients), and each draw takes an independent draw from it: the exceedances move with
    the coefficient draw by O(1/sqrt(n)) while the GPD posterior is O(1/sqrt(m)) wide, so one
    grid posterior instead of D costs D times less at a negligible loss.

    Returns
    -------
    draws : dict
        ``lower``, ``upper``, ``prob_lower``, ``prob_upper``, ``shape_lower``, ``shape_upper``,
        ``scale_lower``, ``scale_upper``, each ``(D,)``.
    info : dict
        ``tail_exceedances`` (m), ``tail_shape_lower`` / ``tail_shape_upper`` (posterior mean
        shapes), ``tail_grid_edge_mass`` (largest posterior mass on the grid's edge) and
        ``tail_grids`` (the :class:`~bayesrca.mechanisms.gpd.TailGrid` of each side, which the
        mechanism keeps for :mod:`bayesrca.mechanisms.tail_pooling`; not a diagnostic).
    """
    num_draws = residuals.shape[0]
    top, top_idx = residuals.topk(m + 1, dim=-1)  # descending
    bottom, bottom_idx = residuals.topk(m + 1, dim=-1, largest=False)  # ascending
    ref = reference.sort().values
    out: dict[str, torch.Tensor] = {
        "lower": bottom[:, m], "upper": top[:, m],
        "prob_lower": torch.gather(weights, 1, bottom_idx[:, :m]).sum(-1),
        "prob_upper": torch.gather(weights, 1, top_idx[:, :m]).sum(-1),
    }
    info: dict[str, Any] = {"tail_exceedances": m}
    edge = 0.0
    grids = {}
    for side, exceed in (("lower", ref[m] - ref[:m]), ("upper", ref[-m:] - ref[-m - 1])):
        post = sample_tail_posterior(exceed, floor, num_draws)
        out[f"shape_{side}"], out[f"scale_{side}"] = post["shape"], post["scale"]
        info[f"tail_shape_{side}"] = float(post["shape_mean"])
        edge = max(edge, float(post["edge_mass"]))
        grids[side] = post["grid"]
    info["tail_grid_edge_mass"] = edge
    info["tail_grids"] = grids  # not a diagnostic: taken out by the mechanism (see tail_pooling)
    return out, info


def attach_gpd_tails(
    draws: dict[str, torch.Tensor], info: dict[str, Any], residuals: torch.Tensor, weights: torch.Tensor,
    reference: torch.Tensor,
) -> None:
    """Add the generalised Pareto tails of :class:`~bayesrca.mechanisms.noise.BootstrapGPD` to KDE noise draws.

    ``draws`` holds each draw's ``atoms`` and ``bandwidth`` (:func:`bayesrca.inference.residual_kde`); the tails come
    from the draws' ``residuals`` and Dirichlet ``weights`` (both ``(D, n)``) and, for the shape
    posterior, the ``reference`` residuals (those of the posterior-mean fit), see
    :func:`gpd_tail_draws`. Sets ``info["tails"]`` to ``"gpd"``, or to ``"kde"`` (the draws stay
    plain KDE noise) when the residuals are too few or tied at the thresholds
    (:data:`MIN_TAIL_COUNT`, :data:`MIN_BODY_RATIO`).
    """
    atoms, bandwidth = draws["atoms"], draws["bandwidth"]
    m = tail_count(residuals.shape[-1])
    if m < MIN_TAIL_COUNT:
        info["tails"] = "kde"
        return
    tails, tail_info = gpd_tail_draws(residuals, weights, reference, m, 1e-3 * float(bandwidth.median()))
    h = bandwidth.unsqueeze(-1)
    kernel_body = (torch.special.ndtr((tails["upper"].unsqueeze(-1) - atoms) / h)
                   - torch.special.ndtr((tails["lower"].unsqueeze(-1) - atoms) / h)).mean(-1)
    data_body = 1.0 - tails["prob_lower"] - tails["prob_upper"]
    if bool((kernel_body < MIN_BODY_RATIO * data_body).any()):
        # residuals tied at the thresholds (e.g. a column that is mostly one value): the
        # kernel cannot carry the body's mass between them, the spliced density would blow up
        info.update(tails="kde", tails_note="residuals tied at the tail thresholds")
    else:
        draws.update(tails)
        info.update(tails="gpd", **tail_info)
