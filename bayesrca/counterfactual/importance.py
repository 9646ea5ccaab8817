r"""Importance sampling of the free noises toward an anomaly's event.

Monte Carlo with fresh noise from the model reaches an event of probability p only through about
``p * M`` of its M samples; an event reached through an upstream noise far in its tail (a
nonlinear ancestor ten standard deviations out) is never sampled, and no estimate of its error is
possible. Here the fresh noise of the *inflatable* players (players whose noise is sampled rather
than integrated, with a distribution on the whole real line) is drawn from a defensive mixture
per anomaly k, every component moving one coordinate:

.. math::

    q_k = \alpha_0\, p + \sum_{j \in J} \big(\alpha_{j+}\, p^{(j, +\delta_{jk})}
          + \alpha_{j-}\, p^{(j, -\delta_{jk})} + \alpha_{j\lambda}\, p^{(j, \lambda)}\big)

* :math:`p^{(j, \pm\delta)}`: player j's noise shifted by :math:`\pm\delta_{jk}`, with
  :math:`\delta_{jk} = n_{jk} - c_j` the anomaly's abducted noise minus the distribution's mean
  (the anomaly itself is a point of its event: the shift puts samples where the event is
  reached; the mirror covers the other side of even functions such as ``P**2``);
* :math:`p^{(j, \lambda)}`: player j's noise scaled about :math:`c_j` by :math:`\lambda`, density
  :math:`p_j(c_j + (z - c_j)/\lambda)/\lambda`, for events reached through a player the anomaly
  does not point to.

Each component uses only the distribution's ``sample``, ``log_prob`` and ``mean``. Samples are
allocated to components deterministically, in the same proportions in each half of the M samples
(the halves still measure the Monte Carlo error), and every transformed sample is a base sample
of the model moved (common random numbers across coalitions and anomalies).

Every coalition uses the same samples and the same weight, that of the whole vector,

.. math::

    w(m) = p(z_m) / q_k(z_m) = 1 \Big/ \Big(1 + \sum_{j \in J} \sum_c \alpha_{jc}\,(r_{jc}(z_{jm}) - 1)\Big),
    \qquad r_{jc} = p^{(j, c)}_j / p_j,

bounded by :math:`1/\alpha_0` (no weight degeneracy however many players). For a coalition S the
kept coordinates are overwritten by the abducted noise; their sampled values are integrated out
under p by the weight, so :math:`\frac1M \sum_m w(m) 1[\text{event}_S(m)]` (or :math:`w\,\Phi_m`
where a Gaussian part is integrated) is unbiased for every S. The alternative, weights of the
free coordinates only (:math:`1/(1 + \sum_{j \notin S} \ldots)`, Rao-Blackwellised), has lower
variance for coalitions that keep a moved player, but those events are rarely rare, and it gives
coalitions that differ in one player different weights: their difference, a Shapley marginal
contribution, then carries the full Monte Carlo noise of both, and a null player no longer gets
exactly 0. With one weight for all coalitions the marginal contributions keep common random
numbers. Each value carries the Kish ESS of its terms and the delta-method standard error of its
log (:func:`log_se`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

import torch
from pyro.distributions import constraints

from . import tails
from ..mechanisms.constant import SpikeSlabNormal
from .density import density_thresholds
from .density_tables import log_densities

__all__ = ["DEFENSIVE", "SCALE", "RARE_IT", "inflatable_players", "NoiseProposal", "weighted_thresholds", "log_se"]

#: Share of the samples drawn from the model itself (the weights are bounded by its inverse).
DEFENSIVE = 0.3
#: Scale factor of the inflated components.
SCALE = 4.0
#: Importance sampling is used for an anomaly whose IT score exceeds this in some posterior draw
#: (its event has probability below 1 %: fewer than 20 of 2,000 plain samples reach it), and for
#: one some of whose coalition values rest on too few plain samples (the engine's probe).
RARE_IT = math.log(100.0)
_KINDS = 3  # shift, mirror, scale


def inflatable_players(scm, players: Sequence[Hashable], gauss_var: torch.Tensor) -> list[int]:
    """Indices of the players whose noise is sampled (no integrated Gaussian part) and supported on R
    (not the spike-and-slab noise of a column that never varied: a point mass has no density ratio)."""
    out = []
    for i, p in enumerate(players):
        if bool((gauss_var[:, i] > 0).any()):
            continue
        noise = scm.mechanisms_[p].noise_distribution()
        parts = getattr(noise, "components", [noise])  # a per-draw selection of families: each of them
        if noise.support is constraints.real and not any(isinstance(c, SpikeSlabNormal) for c in parts):
            out.append(i)
    return out


class NoiseProposal:
    """The defensive mixture proposal of the module docstring, per anomaly and posterior draw.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    nodes : sequence
        The inflatable players J.
    abducted : dict
        Player to the anomalies' abducted noise ``(K, D)``.
    rare : torch.Tensor
        ``(K,)`` bool: anomalies that use the proposal; the others keep the model's samples and
        weights of exactly 1.
    num_samples : int
        M.
    defensive, scale : float
        :math:`\\alpha_0` and :math:`\\lambda`.
    """

    def __init__(
        self, scm, nodes: Sequence[Hashable], abducted: dict, rare: torch.Tensor, num_samples: int,
        *, defensive: float = DEFENSIVE, scale: float = SCALE,
    ) -> None:
        self.nodes, self.scale, self.rare = list(nodes), scale, rare
        num_comp = _KINDS * len(self.nodes)
        comp = torch.full((num_samples,), -1, dtype=torch.long)
        for start, size in ((0, num_samples // 2), (num_samples // 2, num_samples - num_samples // 2)):
            free = size - math.ceil(defensive * size)
            counts = free // num_comp + (torch.arange(num_comp) < free % num_comp).long()
            comp[start + size - free : start + size] = torch.repeat_interleave(torch.arange(num_comp), counts)
        self.comp = comp
        #: ``(J, 3)`` float64: the realised share of each component (shift, mirror, scale)
        self.alpha = torch.bincount(comp[comp >= 0], minlength=num_comp).double().reshape(-1, _KINDS) / num_samples
        self.dists = {n: scm.mechanisms_[n].noise_distribution() for n in self.nodes}
        self.centre = {n: torch.nan_to_num(d.mean.to(torch.float64), 0.0) for n, d in self.dists.items()}
        keep = rare.reshape(-1, 1)
        self.delta = {n: torch.where(keep, abducted[n] - self.centre[n], 0.0) for n in self.nodes}  # (K, D)
        self.log_w = torch.zeros(0)  # (D, K, M), set by fit
        self.anomaly_log_w = torch.zeros(0)  # (K, D)

    def _selects(self, node: Hashable) -> list[torch.Tensor]:
        j = self.nodes.index(node)
        owner = (self.comp >= 0) & (self.comp // _KINDS == j)
        return [(owner & (self.comp % _KINDS == kind)).reshape(-1, 1, 1) for kind in range(_KINDS)]

    def transform(self, node: Hashable) -> Callable[[torch.Tensor], torch.Tensor]:
        """Draws ``(M, 1, D)`` of the node's noise to draws of the proposal ``(M, K, D)``."""
        shift, mirror, scaled = self._selects(node)
        delta, centre, rare = self.delta[node], self.centre[node], self.rare.reshape(1, -1, 1)

        def move(z: torch.Tensor) -> torch.Tensor:
            moved = z + torch.where(shift, delta, torch.where(mirror, -delta, 0.0))
            return torch.where(scaled & rare, centre + self.scale * (z - centre), moved)

        return move

    def _log_terms(self, node: Hashable, value: torch.Tensor) -> torch.Tensor:
        """``log alpha_jc + log r_jc(value)`` for values ``(M, K, D)``: ``(M, K', D, 3)`` for the K' rare anomalies."""
        dist, centre = self.dists[node], self.centre[node]
        rare = self.rare.nonzero().squeeze(-1)
        v, delta = value[:, rare], self.delta[node][rare]
        base, plus, minus, scaled = log_densities(dist, [v, v - delta, v + delta, centre + (v - centre) / self.scale])
        log_r = torch.stack([plus - base, minus - base, scaled - math.log(self.scale) - base], -1)
        # a value outside the model's support (p = 0, e.g. a log-normal draw moved below 0) has weight
        # p/q = 0: an infinite ratio, not the NaN of -inf - (-inf)
        log_r = torch.where(torch.isneginf(base).unsqueeze(-1), torch.inf, log_r)
        return self.alpha[self.nodes.index(node)].log() + log_r

    def _log_weights(self, values: dict) -> torch.Tensor:
        """``-log(alpha_0 + sum_jc alpha_jc r_jc)`` in log space (ratios of e^1000 do not overflow), ``(M, K, D)``;
        exactly 0 for the anomalies that are not rare."""
        # a running log-sum-exp, player by player: the working set is that of one player's terms,
        # whatever the number of players
        rare = self.rare.nonzero().squeeze(-1)
        defensive = math.log(max(1.0 - float(self.alpha.sum()), 1e-300))
        log_denominator = torch.full(values[self.nodes[0]][:, rare].shape, defensive, dtype=torch.float64)
        for n in self.nodes:
            log_denominator = torch.logaddexp(log_denominator, torch.logsumexp(self._log_terms(n, values[n]), -1))
        out = torch.zeros(values[self.nodes[0]].shape, dtype=torch.float64)
        out[:, rare] = -log_denominator
        return out

    def fit(self, noise: dict, abducted: dict) -> NoiseProposal:
        """The weights from the proposal's draws ``noise[node]`` ``(M, K, D)`` and the abducted noise."""
        num_k, num_d = self.rare.shape[0], next(iter(abducted.values())).shape[-1]
        self.log_w = self._log_weights(
            {n: noise[n].to(torch.float64).expand(-1, num_k, num_d) for n in self.nodes}
        ).permute(2, 1, 0).contiguous()  # (D, K, M)
        self.anomaly_log_w = self._log_weights({n: abducted[n].to(torch.float64).unsqueeze(0) for n in self.nodes})[0]  # (K, D)
        return self

    def log_weights(self, num_coalitions: int) -> torch.Tensor:
        """``(D, c, K, M)``: the samples' log weights, the same for every coalition."""
        return self.log_w.unsqueeze(1).expand(-1, num_coalitions, -1, -1)

    def anomaly_log_weights(self, num_coalitions: int) -> torch.Tensor:
        """``(c, K, D)``: the log weight of the anomaly's own noise (the p-value rule's extra sample)."""
        return self.anomaly_log_w.unsqueeze(0).expand(num_coalitions, -1, -1)


def log_se(ess: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Delta-method Monte Carlo standard error of a log-probability from the Kish ESS of its terms.

    For terms :math:`t_m` (``w_m 1[event]`` or ``w_m Phi_m``), ``sd(t) / (sqrt(M) mean(t))`` is
    :math:`\\sqrt{1/\\mathrm{ESS} - 1/M}`; infinite where no term is positive.
    """
    inv = torch.where(ess > 0, 1 / ess.clamp(min=1e-300), torch.full_like(ess, math.inf))
    return (inv - 1 / num_samples).clamp(min=0).sqrt()


def _log_cumulative(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, M + 1)`` log weight of the first i sorted samples, and of the samples from index i on."""
    empty = torch.full_like(log_w[:, :1], -math.inf)
    below = torch.cat([empty, torch.logcumsumexp(log_w, -1)], -1)
    above = torch.cat([torch.logcumsumexp(log_w.flip(-1), -1).flip(-1), empty], -1)
    return below, above


def _weighted_empirical(values, log_w, x, log_wx, base_score):
    """Thresholds, log-probability and ESS of the event of ``x`` under weighted samples ``(R, M)``.

    In log space throughout (cumulative log-sum-exp from either end), so an event whose weights
    are e^-700 next to bulk weights of 1 keeps its mass.
    """
    side, num_m = tails.event_side(base_score), values.shape[-1]
    v, order = values.sort(-1)
    v = v.contiguous()
    lw = log_w.gather(-1, order)
    below, above = _log_cumulative(lw)
    below2, above2 = _log_cumulative(2 * lw)
    xs = x.unsqueeze(-1).contiguous()
    if base_score in tails.QUANTILE_SCORES:
        left = below.gather(-1, torch.searchsorted(v, xs, right=True))  # weight of samples <= x
        right = above.gather(-1, torch.searchsorted(v, xs, right=False))  # ... >= x
        upper, target = right <= left, torch.minimum(left, right).contiguous()
        span = v[:, -1:] - v[:, :1] + 1.0
        n_lo = torch.searchsorted(below[:, 1:].contiguous(), target, right=True)  # lower mass <= target
        lo_up = torch.where(n_lo > 0, v.gather(-1, (n_lo - 1).clamp(min=0)), v[:, :1] - span)
        i_hi = torch.searchsorted((-above).contiguous(), -target)  # first index with upper mass <= target
        hi_low = torch.where(i_hi < num_m, v.gather(-1, i_hi.clamp(max=num_m - 1)), v[:, -1:] + span)
        lo = torch.where(upper, torch.minimum(lo_up, xs), xs)
        hi = torch.where(upper, xs, torch.maximum(hi_low, xs))
    elif base_score == "density":
        lo, hi = density_thresholds(v, xs, log_weights=lw)
    elif side == "two":
        if base_score == "mean_deviation":
            w = (lw - lw.amax(-1, keepdim=True)).exp()
            centre = (w * v).sum(-1, keepdim=True) / w.sum(-1, keepdim=True)
        else:
            half_mass = (below[:, -1:] - math.log(2)).contiguous()
            centre = v.gather(-1, torch.searchsorted(below[:, 1:].contiguous(), half_mass).clamp(max=num_m - 1))
        dist = (xs - centre).abs()
        lo, hi = centre - dist, centre + dist
    else:
        inf = torch.full_like(xs, math.inf)
        lo, hi = (-inf, xs) if side == "upper" else (xs, inf)
    n_lo, n_hi = torch.searchsorted(v, lo.contiguous(), right=True), torch.searchsorted(v, hi.contiguous(), right=False)
    mass = torch.minimum(torch.logaddexp(below.gather(-1, n_lo), above.gather(-1, n_hi)), below[:, -1:])
    mass2 = torch.minimum(torch.logaddexp(below2.gather(-1, n_lo), above2.gather(-1, n_hi)), below2[:, -1:])
    log_p = (torch.logaddexp(mass, log_wx.unsqueeze(-1)) - math.log(num_m + 1)).clamp(max=0.0)
    ess = torch.nan_to_num(torch.exp(2 * mass - mass2), nan=0.0)
    return lo[:, 0], hi[:, 0], log_p[:, 0], ess[:, 0]


def weighted_thresholds(centres, sd, eps, x, log_w, log_wx, base_score: str = "median_cdf"):
    """Thresholds, IT score and ESS of anomalies whose reference samples carry importance weights.

    As :func:`bayesrca.counterfactual.tails.conditional_thresholds`, per anomaly: F is the weighted
    mixture of the Gaussian parts around the weighted centres (conditional Monte Carlo, always)
    where the draw has a Gaussian part, else the weighted empirical CDF with the p-value rule
    ``(sum of event weights + the anomaly's weight) / (M + 1)``.

    Parameters
    ----------
    centres : torch.Tensor
        ``(M, K, D)``: X_t without its integrated Gaussian part, per anomaly's proposal.
    sd : torch.Tensor
        ``(D,)``: sd of the Gaussian part.
    eps : torch.Tensor
        ``(M, D)``: standard normal draws completing the reference samples.
    x : torch.Tensor
        ``(K, 1)`` or ``(K, D)``: the anomalies' target values.
    log_w, log_wx : torch.Tensor
        ``(D, K, M)`` and ``(K, D)``: log weights of the samples and of the anomaly (empty coalition).

    Returns
    -------
    lo, hi, it_score, ess : torch.Tensor
        Each ``(K, D)``.
    """
    num_m, num_k, num_d = centres.shape
    rows = centres.to(torch.float64).permute(1, 2, 0).reshape(num_k * num_d, num_m)
    s = sd.to(torch.float64).expand(num_k, num_d).reshape(-1)
    lw = log_w.permute(1, 0, 2).reshape(num_k * num_d, num_m)
    xs = x.to(torch.float64).expand(num_k, num_d).reshape(-1)
    reference = rows + s.unsqueeze(-1) * eps.T.to(torch.float64).repeat(num_k, 1)
    lo, hi, log_p, ess = _weighted_empirical(reference, lw, xs, log_wx.reshape(-1), base_score)
    gauss = (s > 0).nonzero().squeeze(-1)
    if len(gauss):
        c, g, lwg = rows[gauss], s[gauss], lw[gauss]
        if base_score in tails.QUANTILE_SCORES:
            lo[gauss], hi[gauss] = tails.mixture_thresholds(c, g, xs[gauss], log_weights=lwg)
        elif base_score == "density":
            lo_g, hi_g = density_thresholds(c, xs[gauss].unsqueeze(-1), g, log_weights=lwg)
            lo[gauss], hi[gauss] = lo_g[:, 0], hi_g[:, 0]
        tail, ess[gauss] = tails.mixture_log_tail(c, g, lo[gauss], hi[gauss], return_ess=True, log_weights=lwg)
        log_p[gauss] = tail[:, 0]
    shape = (num_k, num_d)
    return lo.reshape(shape), hi.reshape(shape), (-log_p).clamp(min=0.0).reshape(shape), ess.reshape(shape)
