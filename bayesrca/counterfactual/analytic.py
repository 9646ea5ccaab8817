r"""Closed-form Gaussian tails: the set function when every player is linear-Gaussian.

Then :math:`X_t = c + \sum_j a_j N_j` is linear in Gaussian noises, so given the kept noises
:math:`n_S` it is Gaussian with mean :math:`c + \sum_{j \in S} a_j n_j + \sum_{j \notin S} a_j \mu_j`
and variance :math:`\sum_{j \notin S} a_j^2 \sigma_j^2`, and every coalition's tail probability
is a pair of log-normal-CDF terms: no floor on the probability and no Monte Carlo error.

A column that never varied has spike-and-slab noise (:mod:`bayesrca.mechanisms.constant`), a
scale mixture of Gaussians: with such players free, X_t is a scale mixture too, and its tails are
the Gaussian ones mixed over which of them changes (first order in the slab probability).
"""

from __future__ import annotations

import math
from typing import cast

import torch

from . import tails
from .scale_mixture import scale_mixture_log_tail, slab_terms
from .decomposition import TargetDecomposition

__all__ = ["AnalyticTails"]

_Z_MAX = 1e15  # |z| bound of the float32 closed-form tails: log_ndtr(-1e15) = -5e29, still finite


class AnalyticTails:
    """Closed-form tail log-probabilities ``v(S)`` of a linear-Gaussian target, every draw at once.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model whose players are all linear with Gaussian noise.
    parts : TargetDecomposition
        The target linearised in all players (no propagated part).
    x : torch.Tensor
        The anomalies' target values, ``(K, 1)``.
    base_score : str
        Base score of the IT score, see :mod:`bayesrca.counterfactual.tails`.

    Attributes
    ----------
    lo, hi : torch.Tensor
        ``(K, D)``: the event is ``X_t <= lo`` or ``X_t >= hi``.
    it_score : torch.Tensor
        ``(K, D)``: the IT score, ``-v`` of the empty coalition.
    """

    path = "analytic"
    #: no Gaussian part is integrated by conditional Monte Carlo (everything is closed form)
    integrated = False

    def __init__(self, scm, parts: TargetDecomposition, x: torch.Tensor, base_score: str) -> None:
        self.rest_idx = parts.rest_idx
        a = cast(torch.Tensor, parts.coef)  # not None: every player is linear, so rest is non-empty
        dists = [scm.mechanisms_[p].noise_distribution() for p in parts.rest]
        self.free_mean = a * torch.stack([d.mean for d in dists], -1)
        # spike-and-slab players: the spike a point mass (no Gaussian part), the slab a rare extra part
        sd_each, self.mix_idx, self.extra, self.log_eps = slab_terms(dists, a)  # (D, n), J, (D, J) x 2
        self.free_var = (a * sd_each) ** 2
        mean = parts.offset + self.free_mean.sum(-1)
        sd = self.free_var.sum(-1).sqrt()
        self.lo, self.hi, self.it_score = tails.gaussian_thresholds(x, mean, sd, base_score)
        if self.mix_idx:  # the marginal is symmetric about its mean: the same thresholds
            self.it_score = (-scale_mixture_log_tail(self.lo, self.hi, mean, sd**2, self.extra, self.log_eps)).clamp(min=0.0)
        self.tail_ess = torch.full_like(self.it_score, float("inf"))  # closed form: exact
        # the (coalition, anomaly, draw) arithmetic runs in float32 relative to the marginal
        # mean (values of order the sd, so float32 loses nothing that matters)
        self.centred = {"lo": (self.lo - mean).float(), "hi": (self.hi - mean).float()}
        self.centred["kept"] = parts.kept_effect.float()
        self.centred["free_mean"] = (self.free_mean - self.free_mean.sum(-1, keepdim=True)).float()
        if self.mix_idx:  # float64: the observed value lies on its threshold, to be kept within 1e-9
            self.centred64 = {"lo": self.lo - mean, "hi": self.hi - mean, "kept": parts.kept_effect.double(),
                              "free_mean": self.free_mean - self.free_mean.sum(-1, keepdim=True)}

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(S)`` for masks ``(C, n)``: log-probabilities ``(C, K, D, 1)``."""
        c = self.centred
        keep = masks[:, self.rest_idx].to(torch.float32)
        if self.mix_idx:
            return self._mixture(keep.double())
        tiny = torch.finfo(torch.float32).tiny
        inv_sd = ((1 - keep) @ self.free_var.float().T).clamp_(min=tiny).rsqrt_().unsqueeze(1)  # (C, 1, D)
        mean = torch.einsum("cj,kdj->ckd", keep, c["kept"])
        mean += ((1 - keep) @ c["free_mean"].T).unsqueeze(1)  # centred: the marginal mean is 0
        # z-scores are clamped where float32 would overflow z**2 (a near-deterministic free part)
        left = torch.special.log_ndtr(torch.sub(c["lo"], mean).mul_(inv_sd).clamp_(-_Z_MAX, _Z_MAX))
        right = torch.special.log_ndtr(mean.sub_(c["hi"]).mul_(inv_sd).clamp_(-_Z_MAX, _Z_MAX))
        return torch.logaddexp(left, right, out=left).clamp_(max=0.0).double().unsqueeze(-1)

    def _mixture(self, keep: torch.Tensor) -> torch.Tensor:
        """``v(S)`` with spike-and-slab players, in float64: the slab of each free one mixed in."""
        c = self.centred64
        var = ((1 - keep) @ self.free_var.T).unsqueeze(1)  # (C, 1, D)
        mean = torch.einsum("cj,kdj->ckd", keep, c["kept"])
        mean += ((1 - keep) @ c["free_mean"].T).unsqueeze(1)
        free = (1 - keep[:, self.mix_idx]).bool()  # (C, J)
        log_p = torch.where(free.unsqueeze(1), self.log_eps.unsqueeze(0), -math.inf).unsqueeze(1)  # (C, 1, D, J)
        out = scale_mixture_log_tail(c["lo"], c["hi"], mean, var, self.extra, log_p)
        return out.unsqueeze(-1)
