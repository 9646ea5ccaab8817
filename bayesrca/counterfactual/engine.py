r"""Counterfactual set functions for outlier attribution, derived from the one SCM program.

For anomaly rows and a target t with players P (its ancestors and itself), the engine returns
for coalitions S (boolean masks over P) the log-probabilities

.. math:: v_s(S) = \log P(\tau(X_t) \ge \tau(x_t) \mid N_S = n_S^{(s)})

per anomaly and posterior draw s. Everything comes from the one SCM program and handlers:

* abduction: ``trace(AbductNoise(observed)(program))`` gives each anomaly's noise;
* fresh noise: ``trace(plate(program))`` gives Monte Carlo noise shared by all coalitions
  (common random numbers);
* the nonlinear part U (every nonlinear player and its ancestors) is propagated with
  ``KeepNoise(condition(program, fresh_noise))``, once per distinct restriction of the coalitions
  to U, coalitions being a leading tensor dimension;
* the linear rest R is linearised with ``poutine.condition`` on unit vectors, giving
  ``X_t = c + sum_{j in R} a_j N_j + sum_{k in B} b_k X_k`` (B: nodes of U with a child in R),
  so all coalitions follow from one matrix product;
* when every player is linear-Gaussian the tail probabilities are in closed form.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import networkx as nx
import numpy as np
import pyro
import torch
from pyro import poutine

from . import tails
from ..exceptions import ConfigError
from .handlers import AbductNoise, DropGaussianPart, KeepNoise
from ..mechanisms.additive import AdditiveNoiseModel
from ..mechanisms.base import noise_site
from ..mechanisms.noise import split_gaussian

#: From this many anomalies on, an all-linear Monte Carlo model sorts each coalition's samples once
#: and binary-searches every anomaly's thresholds instead of comparing every pair (the sort costs
#: about as much as comparing two anomalies' thresholds with every sample).
SORTED_MIN_ANOMALIES = 4

#: Below this many samples in the event in either half of the Monte Carlo samples, a probability is
#: re-estimated by conditional Monte Carlo (the Gaussian part of the free noises integrated out).
RARE_HITS = 10

_Z_MAX = 1e15  # |z| bound of the float32 closed-form tails: log_ndtr(-1e15) = -5e29, still finite

__all__ = ["abduct_noise", "fresh_noise_trace", "linearize", "choose_engine", "CounterfactualEngine"]


def abduct_noise(scm, nodes: Sequence[Hashable], observed: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
    """Noise of each observed row per draw (shape ``(K, D)`` per node) via :class:`AbductNoise`."""
    trace = poutine.trace(AbductNoise(observed)(scm.program)).get_trace(nodes)
    return {n: trace.nodes[noise_site(n)]["value"].expand(-1, scm.num_draws_) for n in nodes}


def fresh_noise_trace(scm, nodes: Sequence[Hashable], num_samples: int, dim: int, drop_gaussian: Sequence = ()):
    """Trace of the program with fresh noise: a plate of ``num_samples`` at ``dim``.

    The noise sites of ``drop_gaussian`` carry only their non-Gaussian part (:class:`DropGaussianPart`).
    """

    def model():
        with pyro.plate("mc", num_samples, dim=dim):
            return scm.program(nodes)

    return poutine.trace(DropGaussianPart(drop_gaussian)(model)).get_trace()


def linearize(scm, nodes: Sequence[Hashable], inputs: Sequence[Hashable] = ()):
    """Affine form of a linear sub-program, per draw.

    Runs ``program(nodes, given=inputs)`` once with the noises and the input values
    conditioned on the zero vector and the unit vectors (a batch of ``len(nodes) +
    len(inputs) + 1`` rows). Exact when the mechanisms of ``nodes`` are linear.

    Returns
    -------
    offset : dict
        Node to tensor ``(D,)``.
    coef : dict
        Node to tensor ``(D, len(nodes) + len(inputs))``: coefficients on the noises of
        ``nodes`` followed by those on the ``inputs``' values.
    """
    n = len(nodes) + len(inputs)
    basis = torch.cat([torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)])
    data = {noise_site(node): basis[:, i : i + 1] for i, node in enumerate(nodes)}
    given = {k: basis[:, len(nodes) + i : len(nodes) + i + 1] for i, k in enumerate(inputs)}
    values = poutine.condition(scm.program, data=data)(nodes, given)
    shape = (n + 1, scm.num_draws_)
    offset = {j: values[j].expand(shape)[0] for j in nodes}
    coef = {j: (values[j].expand(shape)[1:] - offset[j]).T for j in nodes}
    return offset, coef


def choose_engine(scm, players: Sequence[Hashable], tail: str = "auto") -> str:
    """``"analytic"`` (all linear-Gaussian) or ``"mc"`` (Monte Carlo tails)."""
    mechs = [scm.mechanisms_[p] for p in players]
    gaussian = all(m.is_linear and getattr(m, "noise_is_gaussian", False) for m in mechs)
    if tail == "analytic" and not gaussian:
        raise ConfigError(
            "tail='analytic' needs linear mechanisms with Gaussian noise on the target and all its ancestors; "
            "use tail='auto'"
        )
    return "analytic" if gaussian and tail in ("auto", "analytic") else "mc"  # "mc", "plain": Monte Carlo


def nonlinear_closure(scm, players: Sequence[Hashable]) -> list[Hashable]:
    """Players that are nonlinear or upstream of a nonlinear player, in topological order."""
    closure: set = set()
    for p in players:
        if not scm.mechanisms_[p].is_linear:
            closure |= nx.ancestors(scm.graph_, p) | {p}
    return [p for p in players if p in closure]


class CounterfactualEngine:
    """Set function ``v(S)`` for a batch of anomalies, every posterior draw at once.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target : hashable
        The target node.
    players : sequence
        The target's ancestors and itself in topological order (player j is ``players[j]``).
    observed : mapping
        Node to observed values of shape ``(K, 1)``.
    kind : {"analytic", "mc"}
        Closed-form Gaussian tails or Monte Carlo, see :func:`choose_engine`.
    num_mc_samples : int
        Fresh noise samples M per draw for Monte Carlo.
    conditional : bool
        Integrate the Gaussian part of the noises that enter X_t additively in closed form where
        an event is rare (conditional Monte Carlo, no floor on probabilities); False gives plain
        Monte Carlo with the ``(count + 1) / (M + 1)`` rule, capped near ``log(M + 1)``.
    """

    def __init__(
        self,
        scm,
        target,
        players,
        observed,
        *,
        kind: str,
        num_mc_samples: int,
        base_score: str = "median_cdf",
        max_elements: int = 2**25,
        conditional: bool = True,
    ) -> None:
        self.kind = kind
        self.side = tails.event_side(base_score)
        self.scm = scm
        self.players = list(players)
        self.num_mc_samples = num_mc_samples
        self.max_elements = max_elements
        x = observed[target]  # (K, 1)
        self.num_anomalies = x.shape[0]
        self.abducted = abduct_noise(scm, self.players, observed)
        self.upstream = nonlinear_closure(scm, self.players) if kind == "mc" else []
        self.rest = [p for p in self.players if p not in self.upstream]
        self.inputs = [k for k in self.upstream if any(c in self.rest for c in scm.graph_.successors(k))]
        self.rest_idx = [self.players.index(p) for p in self.rest]
        self.up_idx = [self.players.index(p) for p in self.upstream]
        # players whose noise can move X_t in a draw: a linear player with coefficient 0 (e.g. a
        # constant column) cannot; nonlinear players are assumed to
        self.moves = torch.ones(scm.num_draws_, len(self.players), dtype=torch.bool)
        if self.rest:
            offset, coef = linearize(scm, self.rest, self.inputs)
            self.offset, a = offset[target], coef[target]
            self.input_coef = a[:, len(self.rest) :]  # (D, |B|)
            a = a[:, : len(self.rest)]
            self.kept_effect = torch.stack([self.abducted[p] for p in self.rest], -1) * a  # (K, D, |R|)
            self.moves[:, self.rest_idx] = a != 0
        else:  # the target itself is nonlinear: everything is propagated
            self.offset = torch.zeros(scm.num_draws_, dtype=torch.float64)
            self.kept_effect = torch.zeros(self.num_anomalies, scm.num_draws_, 0, dtype=torch.float64)
        if kind == "analytic":
            dists = [scm.mechanisms_[p].noise_distribution() for p in self.rest]
            self.free_mean = a * torch.stack([d.mean for d in dists], -1)
            self.free_var = (a * torch.stack([d.stddev for d in dists], -1)) ** 2
            mean = self.offset + self.free_mean.sum(-1)
            self.lo, self.hi, self.it_score = tails.gaussian_thresholds(
                x, mean, self.free_var.sum(-1).sqrt(), base_score
            )
            # the (coalition, anomaly, draw) arithmetic runs in float32 relative to the marginal
            # mean (values of order the sd, so float32 loses nothing that matters)
            self.centred = {"lo": (self.lo - mean).float(), "hi": (self.hi - mean).float()}
            self.centred["kept"] = self.kept_effect.float()
            self.centred["free_mean"] = (self.free_mean - self.free_mean.sum(-1, keepdim=True)).float()
            return
        # Conditional Monte Carlo: every noise that enters X_t additively (the linear players' and
        # the target's own) is split into a sampled part and a Gaussian part N = R + sd * eps. The
        # free Gaussian parts of a coalition add up to one Gaussian of variance sum_j a_j^2 sd_j^2:
        # sampled (one shared eps per sample) for the event counts, integrated analytically where
        # the event is rare, so probabilities reach far below 1/M.
        additive = list(self.rest)
        if not self.rest and isinstance(scm.mechanisms_[target], AdditiveNoiseModel):
            additive = [target]
        if not conditional:  # plain Monte Carlo: every noise sampled, the p-value rule throughout
            additive = []
        coef_of = dict(zip(self.rest, a.T)) if self.rest else {target: torch.ones(scm.num_draws_, dtype=torch.float64)}
        self.gauss_var = torch.zeros(scm.num_draws_, len(self.players), dtype=torch.float64)  # (D, n)
        for p in additive:
            sd = split_gaussian(scm.mechanisms_[p].noise_distribution())[1]
            self.gauss_var[:, self.players.index(p)] = (coef_of[p] * sd) ** 2
        self.eps = torch.randn(num_mc_samples, scm.num_draws_, dtype=torch.float64)  # (M, D)
        self.trace = fresh_noise_trace(scm, self.players, num_mc_samples, dim=-3, drop_gaussian=additive)
        # the nonlinear part is propagated in float32: half the memory traffic of float64, far
        # below the Monte Carlo error (mechanisms follow the dtype of their inputs)
        self.fresh32 = {noise_site(p): self.trace.nodes[noise_site(p)]["value"].float() for p in self.upstream}
        self.kept32 = {p: self.abducted[p].float() for p in self.upstream}
        centres = self.trace.nodes["_RETURN"]["value"][target].reshape(num_mc_samples, -1)  # (M, D)
        sd_all = self.gauss_var.sum(-1).sqrt()
        reference = centres + sd_all * self.eps
        self.lo, self.hi, self.it_score = tails.conditional_thresholds(
            reference, centres, sd_all, x, base_score, rare_count=2 * RARE_HITS
        )
        # The event is |X - mid| >= half (two-sided), X >= hi or X <= lo; float32, layout (D, C, K, M).
        # It is inclusive (>=): values within a float32 tolerance of a threshold count as in it, so a
        # coalition that reproduces x_t exactly is not lost to rounding.
        finite_abs = [torch.where(t.isfinite(), t.abs(), torch.zeros_like(t)) for t in (self.lo, self.hi)]
        tol = 1e-5 * torch.maximum(*finite_abs) + 1e-12  # one-sided events have an infinite threshold
        self.tol = tol.T.float().reshape(scm.num_draws_, 1, -1, 1)
        self.half = ((self.hi - self.lo) / 2).T.float().reshape(scm.num_draws_, 1, -1, 1) - self.tol
        self.mid = {"two": (self.lo + self.hi) / 2, "upper": self.hi, "lower": self.lo}[self.side]  # (K, D)
        # the event's bounds relative to mid, exact (for conditional Monte Carlo), (K, D) each
        self.rel_lo, self.rel_hi = self.lo - self.mid, self.hi - self.mid
        z = [self.trace.nodes[noise_site(p)]["value"].reshape(num_mc_samples, -1) for p in self.rest]
        z = torch.stack(z, -1) if z else torch.zeros(num_mc_samples, scm.num_draws_, 0, dtype=torch.float64)
        self.free_effect = (z * a).permute(1, 2, 0).float().contiguous() if self.rest else z.permute(1, 2, 0).float()
        self.eps32 = self.eps.T.float().reshape(scm.num_draws_, 1, 1, num_mc_samples)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(S)`` for masks of shape ``(C, n)``: a tensor ``(C, K, D, E)`` of log-probabilities.

        ``E = 1`` on the closed-form path. On the Monte Carlo path ``E = 3``: the estimate from all
        M fresh samples, then the estimates from each half of them, whose difference measures the
        Monte Carlo error at no extra cost.
        """
        if self.kind == "analytic":
            out = self._analytic(masks).unsqueeze(-1)
        else:
            out = self._monte_carlo(masks)
        # no free player moves X_t: the kept noises reproduce x_t, which lies in the event (v = 0, as
        # for the full set); left to the tails, the zero spread would give log 1/2 or -inf from rounding
        moves = self.moves.T.to(torch.float64)  # (n, D)
        full = (~masks).to(torch.float64) @ moves == 0  # (C, D)
        if bool(full.any()):
            out.masked_fill_(full.reshape(-1, 1, self.moves.shape[0], 1), 0.0)
        # no kept player moves X_t (the empty set, or only null players kept): X_t follows its
        # marginal, v = -IT exactly, so a null player's marginal contributions are exactly 0
        inert = masks.to(torch.float64) @ moves == 0
        rows = inert.any(-1).nonzero().squeeze(-1)
        if len(rows):
            it = -self.it_score.to(out.dtype)  # (K, D)
            out[rows, :, :, 0] = torch.where(inert[rows].unsqueeze(1), it, out[rows, :, :, 0])
        return out

    def _analytic(self, masks: torch.Tensor) -> torch.Tensor:
        c = self.centred
        keep = masks[:, self.rest_idx].to(torch.float32)
        tiny = torch.finfo(torch.float32).tiny
        inv_sd = ((1 - keep) @ self.free_var.float().T).clamp_(min=tiny).rsqrt_().unsqueeze(1)  # (C, 1, D)
        mean = torch.einsum("cj,kdj->ckd", keep, c["kept"])
        mean += ((1 - keep) @ c["free_mean"].T).unsqueeze(1)  # centred: the marginal mean is 0
        # z-scores are clamped where float32 would overflow z**2 (a near-deterministic free part)
        left = torch.special.log_ndtr(torch.sub(c["lo"], mean).mul_(inv_sd).clamp_(-_Z_MAX, _Z_MAX))
        right = torch.special.log_ndtr(mean.sub_(c["hi"]).mul_(inv_sd).clamp_(-_Z_MAX, _Z_MAX))
        return torch.logaddexp(left, right, out=left).clamp_(max=0.0).double()

    def _monte_carlo(self, masks: torch.Tensor) -> torch.Tensor:
        num_draws, num_k, num_m = self.scm.num_draws_, self.num_anomalies, self.num_mc_samples
        half_m = num_m // 2
        sizes = torch.tensor([half_m, num_m - half_m], dtype=torch.float32)
        free_sd = ((~masks).to(torch.float64) @ self.gauss_var.T).sqrt()  # (C, D): the free Gaussian parts
        # Everything from the linear players depends on a coalition only through its restriction
        # to them (its "rest pattern"): the free part sum_{j free} a_j Z_j and the event's centre
        # mid - c - sum_{j kept} a_j n_j. Their difference is built once per rest pattern when it
        # fits in memory, else per chunk of coalitions.
        keep = masks[:, self.rest_idx].to(torch.float64)
        if keep.shape[1]:
            rest_patterns, rest_inverse = torch.unique(keep, dim=0, return_inverse=True)
        else:  # no linear players (the target is nonlinear): one empty pattern; unique() rejects 0 columns
            rest_patterns, rest_inverse = keep[:1], torch.zeros(len(keep), dtype=torch.long)
        if not self.upstream and num_k >= SORTED_MIN_ANOMALIES:
            pattern_sd = ((1 - rest_patterns) @ self.gauss_var[:, self.rest_idx].T).sqrt()
            count, rare = self._sorted_counts(rest_patterns, pattern_sd)
            return self._log_probs(count[rest_inverse], free_sd, rare[rest_inverse])

        count = torch.empty(masks.shape[0], num_k, num_draws, 2, dtype=torch.float32)  # per half of the samples
        rare = torch.full((masks.shape[0], num_k, num_draws, 3), float("nan"), dtype=torch.float64)
        step = max(1, self.max_elements // (2 * num_draws * num_k * num_m))
        buf = torch.empty(num_draws, step, num_k, num_m, dtype=torch.float32)  # centre of X_t - mid
        buf_full = torch.empty_like(buf)  # ... plus the sampled Gaussian part
        buf_free = torch.empty(num_draws, step, num_m, dtype=torch.float32)

        def linear_part(patterns: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            """(D, P, K, M): free linear part minus the event centre, for rest patterns ``patterns``.

            With ``out`` (at most ``step`` patterns) it writes into preallocated buffers: fresh
            allocations of this size cost more than the arithmetic.
            """
            mask = (1 - patterns).float().expand(num_draws, -1, -1)
            free = torch.matmul(mask, self.free_effect, out=None if out is None else buf_free[:, : len(patterns)])
            centre = (self.mid - self.offset) - torch.einsum("cj,kdj->ckd", patterns, self.kept_effect)
            centre = centre.permute(2, 0, 1).float().unsqueeze(-1)  # (D, P, K, 1)
            if out is None:
                return free.unsqueeze(2) - centre
            return torch.sub(free.unsqueeze(2), centre, out=out)

        table = linear_part(rest_patterns) if num_draws * len(rest_patterns) * num_k * num_m <= self.max_elements else None

        def count_into(idx: torch.Tensor, upstream: torch.Tensor | None) -> None:
            idx = idx[torch.argsort(rest_inverse[idx])]  # consecutive rest patterns: slices of the table
            for start in range(0, len(idx), step):
                rows = idx[start : start + step]
                dev = buf[:, : len(rows)]
                pat = rest_inverse[rows]
                if table is not None and bool((pat.diff() == 1).all()):  # a slice of the table
                    src = table[:, int(pat[0]) : int(pat[0]) + len(pat)]
                    if upstream is None:
                        dev.copy_(src)
                    else:
                        torch.add(src, upstream, out=dev)
                else:
                    if table is None:
                        linear_part(rest_patterns[pat], out=dev)
                    else:
                        torch.index_select(table, 1, pat, out=dev)
                    if upstream is not None:
                        dev.add_(upstream)
                sd = free_sd[rows]  # (c, D)
                full = torch.addcmul(dev, sd.T.float().reshape(num_draws, -1, 1, 1), self.eps32, out=buf_full[:, : len(rows)])
                if self.side == "two":
                    full.abs_().sub_(self.half)
                elif self.side == "upper":
                    full.add_(self.tol)
                else:
                    full.neg_().add_(self.tol)
                full.sign_()  # +1 inside the event, -1 outside (0 on the boundary counts 1/2)
                halves = full[..., : 2 * half_m].unflatten(-1, (2, half_m)).sum(-1)  # (D, c, K, 2)
                if num_m % 2:  # the odd sample out joins the second half
                    halves[..., 1] += full[..., -1]
                hits = (halves + sizes) / 2
                count[rows] = hits.permute(1, 2, 0, 3)
                self._conditional(hits, sd, lambda d, c, k: dev[d, c, k], rows, rare)

        if not self.upstream:
            count_into(torch.arange(masks.shape[0]), None)
        else:
            patterns, inverse = torch.unique(masks[:, self.up_idx], dim=0, return_inverse=True)
            per_pattern = max(1, self.max_elements // (8 * num_m * num_k * num_draws))
            for start in range(0, len(patterns), per_pattern):
                terms = self._upstream_term(patterns[start : start + per_pattern])  # (P, D, 1, K, M)
                for i, term in enumerate(terms):
                    count_into(torch.nonzero(inverse == start + i).squeeze(-1), term)
        return self._log_probs(count, free_sd, rare)

    def _conditional(self, hits, sd, centres_of, rows, out) -> None:
        """Conditional Monte Carlo for the rare (coalition, anomaly, draw) cases of a chunk.

        ``hits`` ``(D, c, K, 2)`` counts the samples in the event per half; where either half has
        fewer than :data:`RARE_HITS` and the coalition has a free Gaussian part (``sd`` ``(c, D)``
        > 0), ``v`` is re-estimated from the centres ``centres_of(d, c, k)`` ``(R, M)`` of X_t - mid
        by :func:`bayesrca.counterfactual.tails.mixture_log_tail` and written to ``out[rows[c], k, d]``.
        """
        rare = (hits.amin(-1) < RARE_HITS) & (sd.T > 0).reshape(sd.shape[1], -1, 1)
        if not bool(rare.any()):
            return
        d, c, k = rare.nonzero(as_tuple=True)
        out[rows[c], k, d] = tails.mixture_log_tail(centres_of(d, c, k), sd[c, d], self.rel_lo[k, d], self.rel_hi[k, d])

    def _log_probs(self, count: torch.Tensor, free_sd: torch.Tensor, rare: torch.Tensor) -> torch.Tensor:
        """``(C, K, D, 3)`` log-probabilities from event counts ``(C, K, D, 2)`` per half of the samples.

        For all samples and for each half: ``log(count / n)`` where the coalition has a free
        Gaussian part (``free_sd`` ``(C, D)`` > 0; rare cases come from conditional Monte Carlo in
        ``rare``, NaN elsewhere), else the p-value rule ``log((count + 1) / (n + 1))``, which never
        gives log 0. Counts are exact integers in float32 up to 2**24 samples.
        """
        num_m, half_m = self.num_mc_samples, self.num_mc_samples // 2
        totals = torch.tensor([num_m, half_m, num_m - half_m], dtype=torch.float32)
        counts = torch.cat([count.sum(-1, keepdim=True), count], -1)
        gaussian = (free_sd > 0).unsqueeze(1).unsqueeze(-1)  # (C, 1, D, 1)
        probs = torch.where(gaussian, counts / totals, (counts + 1) / (totals + 1))
        probs = probs.clamp_(max=1.0).log_().double()
        return torch.where(rare.isnan(), probs, rare)

    def _sorted_counts(self, patterns: torch.Tensor, pattern_sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Event counts ``(P, K, D, 2)`` per half of the samples, for many anomalies at once.

        For an all-linear model the free part of ``X_t`` does not depend on the anomaly: each
        pattern's samples are sorted once (numpy's vectorised sort) and every anomaly's
        thresholds are located by binary search, O((M + K) log M) instead of O(M K). The half a
        sample belongs to rides in its lowest mantissa bit (a change of at most one float32 ulp),
        so one sort and one search per threshold give both halves' counts. Events are inclusive
        of their boundaries, as on the direct path up to ties of probability zero. Rare cases are
        re-estimated by conditional Monte Carlo (second output, ``(P, K, D, 3)``, NaN elsewhere).
        """
        num_draws, num_k, num_m = self.scm.num_draws_, self.num_anomalies, self.num_mc_samples
        sizes = np.array([num_m // 2, num_m - num_m // 2], dtype=np.int32)
        second = (np.arange(num_m) >= num_m // 2).astype(np.int32)
        count = torch.empty(len(patterns), num_k, num_draws, 2, dtype=torch.float32)
        rare = torch.full((len(patterns), num_k, num_draws, 3), float("nan"), dtype=torch.float64)
        step = max(1, self.max_elements // (num_draws * (2 * num_m + 4 * num_k)))
        half, tol = self.half.squeeze(-1), self.tol.squeeze(-1)  # (D, 1, K)
        for start in range(0, len(patterns), step):
            pat = patterns[start : start + step]
            sd = pattern_sd[start : start + step]  # (p, D)
            mask = (1 - pat).float().expand(num_draws, -1, -1)
            centres = torch.matmul(mask, self.free_effect)  # (D, p, M), without the Gaussian parts
            free = torch.addcmul(centres, sd.T.float().unsqueeze(-1), self.eps32.reshape(num_draws, 1, num_m)).numpy()
            bits = free.view(np.int32)
            bits &= ~1
            bits |= second
            ordered = np.sort(free, axis=-1)
            in_second = np.zeros(ordered.shape[:-1] + (num_m + 1,), dtype=np.int32)
            np.cumsum(ordered.view(np.int32) & 1, axis=-1, out=in_second[..., 1:])
            ordered = torch.from_numpy(ordered)
            centre = (self.mid - self.offset) - torch.einsum("cj,kdj->ckd", pat, self.kept_effect)
            centre = centre.permute(2, 0, 1).float().contiguous()  # (D, p, K)
            if self.side == "two":
                queries = [(centre + half, False), (centre - half, True)]
            else:
                queries = [(centre - tol, False)] if self.side == "upper" else [(centre + tol, True)]
            total = np.zeros((2, *centre.shape), dtype=np.int32)
            for values, right in queries:
                found = torch.searchsorted(ordered, values.expand(-1, len(pat), -1), right=right, out_int32=True).numpy()
                below_second = np.take_along_axis(in_second, found, axis=-1)
                below_first = found - below_second  # samples of each half below the threshold
                # right=False found the samples below the upper threshold: the event is the rest
                for h, below in enumerate((below_first, below_second)):
                    total[h] += below if right else sizes[h] - below
            total = np.minimum(total, sizes[:, None, None, None])  # overlapping two-sided bounds
            hits = torch.from_numpy(total).permute(1, 2, 3, 0).float()  # (D, p, K, 2)
            count[start : start + step] = hits.permute(1, 2, 0, 3)
            rows = torch.arange(start, start + len(pat))
            self._conditional(hits, sd, lambda d, c, k: centres[d, c] - centre[d, c, k].unsqueeze(-1), rows, rare)
        return count, rare

    def _upstream_term(self, patterns: torch.Tensor) -> torch.Tensor:
        """``sum_k b_k X_k`` (or ``X_t`` if the target is upstream) per pattern: ``(P, D, 1, K, M)``."""
        c = patterns.shape[0]
        node_masks = {p: patterns[:, j].reshape(c, 1, 1, 1) for j, p in enumerate(self.upstream)}
        program = KeepNoise(self.kept32, node_masks)(poutine.condition(self.scm.program, data=self.fresh32))
        values = program(self.upstream)
        if not self.rest:
            term = values[self.upstream[-1]]
        else:
            coef = self.input_coef.float()
            term = sum(values[k] * coef[:, i] for i, k in enumerate(self.inputs))
        shape = (c, self.num_mc_samples, self.num_anomalies, self.scm.num_draws_)
        return term.expand(shape).permute(0, 3, 2, 1).float().unsqueeze(2).contiguous()
