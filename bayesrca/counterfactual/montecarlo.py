r"""Monte Carlo tails: the set function for any SCM, plain or conditional Monte Carlo.

Fresh noise from ``trace(plate(program))`` is shared by all coalitions (common random numbers).
The nonlinear part U of the target (:mod:`bayesrca.counterfactual.decomposition`) is propagated
as ``KeepNoise(condition(program, fresh_noise))`` would, once per distinct restriction of the
coalitions to U, node by node over distinct inputs only (:mod:`bayesrca.counterfactual.propagate`);
the linearised rest R follows for all coalitions from one matrix product, and every sample is
compared with every anomaly's event (:mod:`bayesrca.counterfactual.direct`) unless many anomalies
share sorted samples.

Conditional Monte Carlo: every noise that enters X_t additively (the linear players' and the
target's own) is split into a sampled part and a Gaussian part :math:`N = R + sd \cdot \epsilon`.
The free Gaussian parts of a coalition add up to one Gaussian of variance
:math:`\sum_j a_j^2 sd_j^2`: sampled (one shared :math:`\epsilon` per sample) for the event counts,
integrated analytically where the event is rare (:func:`~bayesrca.counterfactual.counting.conditional_log_tails`),
so probabilities reach far below 1/M.

Importance sampling (``importance=True``): for an anomaly whose event is rare under the model
(IT score above :data:`~bayesrca.counterfactual.importance.RARE_IT` in some draw), or some of
whose coalition values are (:meth:`MonteCarloTails.propose_for`, called by the engine's probe),
the sampled noises are drawn from a defensive mixture proposal toward its event and every count
or integrated term carries its importance weight (:mod:`bayesrca.counterfactual.importance`).
"""

from __future__ import annotations

from typing import cast

import torch

from . import importance as imp
from . import tails
from .counting import RARE_HITS, conditional_log_tails, log_probs, sorted_hits
from .decomposition import TargetDecomposition
from .direct import direct_counts
from .ops import fresh_noise_trace
from .propagate import upstream_term
from ..mechanisms.base import noise_site
from ..mechanisms.mixture import has_additive_noise, split_gaussian_part

__all__ = ["SORTED_MIN_ANOMALIES", "MonteCarloTails"]

#: From this many anomalies on, an all-linear Monte Carlo model sorts each coalition's samples once
#: and binary-searches every anomaly's thresholds instead of comparing every pair (the sort costs
#: about as much as comparing two anomalies' thresholds with every sample).
SORTED_MIN_ANOMALIES = 4


class MonteCarloTails:
    """Monte Carlo tail log-probabilities ``v(S)``, every posterior draw at once.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    parts : TargetDecomposition
        The target split into its propagated part U and its linearised rest R.
    x : torch.Tensor
        The anomalies' target values, ``(K, 1)``.
    base_score : str
        Base score of the IT score, see :mod:`bayesrca.counterfactual.tails`.
    num_mc_samples : int
        Fresh noise samples M per draw.
    max_elements : int
        Largest intermediate tensor (elements) built at once.
    conditional : bool
        Integrate the Gaussian part of the noises that enter X_t additively in closed form where
        an event is rare (conditional Monte Carlo, no floor on probabilities); False gives plain
        Monte Carlo with the ``(count + 1) / (M + 1)`` rule, capped near ``log(M + 1)``.
    importance : bool, default True
        With ``conditional``: importance sampling of the sampled noises for anomalies whose event
        is rare (:mod:`bayesrca.counterfactual.importance`).

    Attributes
    ----------
    lo, hi : torch.Tensor
        ``(K, D)``: the event is ``X_t <= lo`` or ``X_t >= hi``.
    it_score : torch.Tensor
        ``(K, D)``: the IT score, ``-v`` of the empty coalition.
    tail_ess : torch.Tensor
        ``(K, D)``: effective sample size behind the IT score (samples in the event, or the Kish
        ESS of the conditional Monte Carlo terms); below :data:`~bayesrca.counterfactual.tails.MIN_TAIL_ESS`
        it cannot be trusted.
    gauss_var : torch.Tensor
        ``(D, n)``: variance of each player's Gaussian part in X_t that is integrated (0: none).
    proposal : NoiseProposal or None
        The importance-sampling proposal, None where no anomaly needs one.
    last_ess : torch.Tensor
        ``(C, K, D)``: Kish ESS behind each value of the last call (samples in the event without
        weights).
    """

    path = "mc"

    def __init__(
        self, scm, parts: TargetDecomposition, x: torch.Tensor, *, base_score: str, num_mc_samples: int,
        max_elements: int, conditional: bool, importance: bool = True,
    ) -> None:
        self.scm, self.parts = scm, parts
        self.side = tails.event_side(base_score)
        self.num_mc_samples, self.max_elements = num_mc_samples, max_elements
        num_draws, players, target, rest = scm.num_draws_, parts.players, parts.target, parts.rest
        additive = list(rest)
        if not rest and has_additive_noise(scm.mechanisms_[target]):
            additive = [target]
        if not conditional:  # plain Monte Carlo: every noise sampled, the p-value rule throughout
            additive = []
        a = parts.coef
        coef_of = dict(zip(rest, cast(torch.Tensor, a).T)) if rest else {target: torch.ones(num_draws, dtype=torch.float64)}
        self.gauss_var = torch.zeros(num_draws, len(players), dtype=torch.float64)  # (D, n)
        for p in additive:
            sd = split_gaussian_part(scm.mechanisms_[p].noise_distribution())[1]
            self.gauss_var[:, players.index(p)] = (coef_of[p] * sd) ** 2
        self.eps = torch.randn(num_mc_samples, num_draws, dtype=torch.float64)  # (M, D)
        self.trace = fresh_noise_trace(scm, players, num_mc_samples, dim=-3, drop_gaussian=additive)
        # the nonlinear part is propagated in float32: half the memory traffic of float64, far
        # below the Monte Carlo error (mechanisms follow the dtype of their inputs)
        self.fresh32 = {noise_site(p): self.trace.nodes[noise_site(p)]["value"].float() for p in parts.upstream}
        self.kept32 = {p: parts.abducted[p].float() for p in parts.upstream}
        centres = self.trace.nodes["_RETURN"]["value"][target].reshape(num_mc_samples, -1)  # (M, D)
        sd_all = self.gauss_var.sum(-1).sqrt()
        reference = centres + sd_all * self.eps
        self.lo, self.hi, self.it_score, self.tail_ess = tails.conditional_thresholds(
            reference, centres, sd_all, x, base_score, rare_count=2 * RARE_HITS, return_ess=True
        )
        self._set_event()
        self.eps32 = self.eps.T.float().reshape(num_draws, 1, 1, num_mc_samples)
        self.proposal: imp.NoiseProposal | None = None
        self.importance = conditional and importance
        self._x, self._base_score, self._base_trace = x, base_score, self.trace
        self._model_state = (self.lo, self.hi, self.it_score, self.tail_ess)  # the model's own estimates
        if self.importance:
            self._propose((self.it_score > imp.RARE_IT).any(-1))
        self._free_effect()
        self.last_ess = torch.empty(0)

    def propose_for(self, rare: torch.Tensor) -> bool:
        """Draw the sampled noises of the anomalies ``rare`` ``(K,)`` (too) from the proposal.

        For anomalies whose IT score is below :data:`~bayesrca.counterfactual.importance.RARE_IT`
        but some of whose coalition values are rare (a kept noise pointing away from the event).
        Values computed before are not updated: call it before the values it is meant for.

        Returns
        -------
        bool
            Whether the proposal changed (some anomaly in ``rare`` did not use it yet, and some
            player's noise can be moved).
        """
        if not self.importance:
            return False
        current = self.proposal.rare if self.proposal is not None else torch.zeros_like(rare)
        rare = current | rare
        if bool((rare == current).all()):
            return False
        self._propose(rare)
        self._free_effect()
        return self.proposal is not None

    def _propose(self, rare: torch.Tensor) -> None:
        """Redraw the sampled noises from the proposal for the anomalies ``rare`` ``(K,)`` (the
        others keep the model's samples and estimates)."""
        parts, num_m, x, base_score = self.parts, self.num_mc_samples, self._x, self._base_score
        inflate = imp.inflatable_players(self.scm, parts.players, self.gauss_var)
        if not inflate or not bool(rare.any()):
            return
        nodes = [parts.players[i] for i in inflate]
        proposal = imp.NoiseProposal(self.scm, nodes, parts.abducted, rare, num_m)
        self.trace = fresh_noise_trace(
            self.scm, parts.players, num_m, dim=-3, propose={n: proposal.transform(n) for n in nodes}, base=self._base_trace
        )
        noise = {n: self.trace.nodes[noise_site(n)]["value"].reshape(num_m, -1, self.scm.num_draws_) for n in nodes}
        self.proposal = proposal.fit(noise, parts.abducted)
        self.fresh32 = {noise_site(p): self.trace.nodes[noise_site(p)]["value"].float() for p in parts.upstream}
        centres = self.trace.nodes["_RETURN"]["value"][parts.target]
        centres = centres.reshape(num_m, -1, self.scm.num_draws_).expand(-1, parts.num_anomalies, -1)
        log_w, log_wx = proposal.log_w, proposal.anomaly_log_w
        lo, hi, it, ess = imp.weighted_thresholds(centres, self.gauss_var.sum(-1).sqrt(), self.eps, x, log_w, log_wx, base_score)
        keep = rare.reshape(-1, 1)
        lo0, hi0, it0, ess0 = self._model_state
        self.lo, self.hi = torch.where(keep, lo, lo0), torch.where(keep, hi, hi0)
        self.it_score, self.tail_ess = torch.where(keep, it, it0), torch.where(keep, ess, ess0)
        self._set_event()  # for the new thresholds

    def _set_event(self) -> None:
        """The event's geometry from the thresholds ``lo``, ``hi`` ``(K, D)``.

        The event is |X - mid| >= half (two-sided), X >= hi or X <= lo; float32, layout (D, C, K, M).
        It is inclusive (>=): values within a float32 tolerance of a threshold count as in it, so a
        coalition that reproduces x_t exactly is not lost to rounding.
        """
        num_draws = self.scm.num_draws_
        finite_abs = [torch.where(t.isfinite(), t.abs(), torch.zeros_like(t)) for t in (self.lo, self.hi)]
        tol = 1e-5 * torch.maximum(*finite_abs) + 1e-12  # one-sided events have an infinite threshold
        self.tol = tol.T.float().reshape(num_draws, 1, -1, 1)
        self.half = ((self.hi - self.lo) / 2).T.float().reshape(num_draws, 1, -1, 1) - self.tol
        self.mid = {"two": (self.lo + self.hi) / 2, "upper": self.hi, "lower": self.lo}[self.side]  # (K, D)
        # the event's bounds relative to mid, exact (for conditional Monte Carlo), (K, D) each
        self.bounds = (self.lo - self.mid, self.hi - self.mid)

    def _free_effect(self) -> None:
        """The linear players' free part per sample: ``(D, R, M)``, or ``(D, R, K, M)`` under a proposal
        (R before K: a coalition chunk's free part is then one batched matrix product, no copy)."""
        num_m, num_draws, rest = self.num_mc_samples, self.scm.num_draws_, self.parts.rest
        values = [self.trace.nodes[noise_site(p)]["value"].reshape(num_m, -1, num_draws) for p in rest]
        if not rest:
            self.free_effect = torch.zeros(num_draws, 0, num_m, dtype=torch.float32)
            return
        per_anomaly = any(v.shape[1] > 1 for v in values)
        num_k = self.parts.num_anomalies if per_anomaly else 1
        z = torch.stack([v.expand(-1, num_k, -1) for v in values], -1) * cast(torch.Tensor, self.parts.coef)  # (M, k, D, R)
        effect = z.permute(2, 3, 1, 0).float().contiguous()  # (D, R, k, M)
        self.free_effect = effect if per_anomaly else effect[:, :, 0].contiguous()

    @property
    def integrated(self) -> bool:
        """Whether any Gaussian part is integrated (conditional Monte Carlo) rather than sampled."""
        return bool(self.gauss_var.any())

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(S)`` for masks ``(C, n)``: log-probabilities ``(C, K, D, 3)``.

        The estimate from all M fresh samples, then the estimates from each half of them, whose
        difference measures the Monte Carlo error at no extra cost.
        """
        free_sd = ((~masks).to(torch.float64) @ self.gauss_var.T).sqrt()  # (C, D): the free Gaussian parts
        # Everything from the linear players depends on a coalition only through its restriction
        # to them (its "rest pattern"): the free part sum_{j free} a_j Z_j and the event's centre
        # mid - c - sum_{j kept} a_j n_j. Their difference is built once per rest pattern when it
        # fits in memory, else per chunk of coalitions.
        keep = masks[:, self.parts.rest_idx].to(torch.float64)
        if keep.shape[1]:
            rest_patterns, rest_inverse = torch.unique(keep, dim=0, return_inverse=True)
        else:  # no linear players (the target is nonlinear): one empty pattern; unique() rejects 0 columns
            rest_patterns, rest_inverse = keep[:1], torch.zeros(len(keep), dtype=torch.long)
        sorted_path = self.proposal is None and not self.parts.upstream
        if sorted_path and self.parts.num_anomalies >= SORTED_MIN_ANOMALIES:
            pattern_sd = ((1 - rest_patterns) @ self.gauss_var[:, self.parts.rest_idx].T).sqrt()
            count, rare, ess = self._sorted_counts(rest_patterns, pattern_sd)
            self.last_ess = ess[rest_inverse]
            return log_probs(count[rest_inverse], free_sd, rare[rest_inverse], self.num_mc_samples)
        count, rare, self.last_ess, scale, weight = self._direct_counts(masks, free_sd, rest_patterns, rest_inverse)
        return log_probs(count, free_sd, rare, self.num_mc_samples, scale, weight)

    def _centre(self, patterns: torch.Tensor) -> torch.Tensor:
        """``(D, P, K)`` float32: the event's centre minus X_t's kept linear part, per rest pattern."""
        centre = (self.mid - self.parts.offset) - torch.einsum("cj,kdj->ckd", patterns, self.parts.kept_effect)
        return centre.permute(2, 0, 1).float()

    def _direct_counts(self, masks, free_sd, rest_patterns, rest_inverse):
        """Every sample compared with every anomaly's event: :func:`~bayesrca.counterfactual.direct.direct_counts`."""
        return direct_counts(self, masks, free_sd, rest_patterns, rest_inverse)

    def _sorted_counts(self, patterns: torch.Tensor, pattern_sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Event counts ``(P, K, D, 2)`` per half of the samples, for many anomalies at once.

        For an all-linear model the free part of ``X_t`` does not depend on the anomaly, so each
        pattern's samples are sorted once (:func:`~bayesrca.counterfactual.counting.sorted_hits`).
        Rare cases are re-estimated by conditional Monte Carlo (second output, ``(P, K, D, 3)``,
        NaN elsewhere); the third output is the ESS ``(P, K, D)``.
        """
        num_draws, num_k, num_m = self.scm.num_draws_, self.parts.num_anomalies, self.num_mc_samples
        count = torch.empty(len(patterns), num_k, num_draws, 2, dtype=torch.float32)
        rare = torch.full((len(patterns), num_k, num_draws, 3), float("nan"), dtype=torch.float64)
        ess = torch.empty(len(patterns), num_k, num_draws, dtype=torch.float64)
        step = max(1, self.max_elements // (num_draws * (2 * num_m + 4 * num_k)))
        half, tol = self.half.squeeze(-1), self.tol.squeeze(-1)  # (D, 1, K)
        for start in range(0, len(patterns), step):
            pat = patterns[start : start + step]
            sd = pattern_sd[start : start + step]  # (p, D)
            mask = (1 - pat).float().expand(num_draws, -1, -1)
            centres = torch.matmul(mask, self.free_effect)  # (D, p, M), without the Gaussian parts
            free = torch.addcmul(centres, sd.T.float().unsqueeze(-1), self.eps32.reshape(num_draws, 1, num_m))
            centre = self._centre(pat).contiguous()  # (D, p, K)
            hits = sorted_hits(free, centre, half, tol, self.side)  # (D, p, K, 2)
            count[start : start + step] = hits.permute(1, 2, 0, 3)
            ess[start : start + step] = hits.sum(-1).permute(1, 2, 0).double()
            rows = torch.arange(start, start + len(pat))
            centres_of = lambda d, c, k: centres[d, c] - centre[d, c, k].unsqueeze(-1)  # noqa: E731
            conditional_log_tails(hits, sd, centres_of, self.bounds, rows, rare, ess_out=ess)
        return count, rare, ess

    def _upstream_term(self, patterns: torch.Tensor) -> torch.Tensor:
        """``sum_k b_k X_k`` (or ``X_t`` if the target is upstream) per pattern: ``(P, D, 1, K, M)``
        (:func:`~bayesrca.counterfactual.propagate.upstream_term`)."""
        return upstream_term(self.scm, self.parts, self.kept32, self.fresh32, patterns, self.num_mc_samples)
