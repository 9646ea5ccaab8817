r"""Missing values of anomaly rows, integrated out: one draw of :math:`p(x_{mis} \mid x_{obs}, \theta_s)` per posterior draw.

A row with missing ancestor values has no single abducted noise: under each posterior draw
:math:`\theta_s` the missing values follow their conditional distribution given the observed ones,
and the attribution is a mixture over them. :func:`impute_missing` draws one value per posterior
draw by sampling-importance-resampling inside the SCM program
(:class:`~bayesrca.counterfactual.handlers.ImputeMissing`):

1. ``L`` candidates per row and draw: each missing node's noise from a defensive mixture of
   its distribution and the distribution widened about its median (:data:`IMPUTE_SCALES`; noises
   not on the real line from their distribution alone), the observed nodes held at their values
   (a plate of candidates over the program);
2. weight each candidate by the likelihood of the observed nodes that have a missing parent
   (their noise density at the abducted noise, times the Jacobian) times the ratio of the noise
   density to the mixture's, so the weights are :math:`p(x_{obs} \mid x_{mis}, \theta_s)` up to
   a constant over the prior, and the weighted candidates represent
   :math:`p(x_{mis} \mid x_{obs}, \theta_s)`;
3. resample one candidate per row and draw (chunk by chunk of :data:`CANDIDATE_CHUNK`
   candidates, as a weighted reservoir: each chunk's pick replaces the current one with its
   share of the total weight); the effective sample size of the weights says how well the ``L``
   candidates covered the conditional distribution.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import math

import pyro
import torch

from .handlers import ImputeMissing

__all__ = ["IMPUTE_CANDIDATES", "impute_missing"]

#: Candidates per row and posterior draw in :func:`impute_missing` (the default of ``attribute_anomalies``).
IMPUTE_CANDIDATES = 1000

#: Candidates drawn at once; more are drawn chunk by chunk and resampled as a weighted reservoir
#: (the memory of a noise density over atoms, e.g. a kernel density, grows with the chunk).
CANDIDATE_CHUNK = 100

#: Widening factors of the defensive mixture the missing noises are drawn from (1: the noise's
#: own distribution, so the weights are bounded by the number of scales times the likelihood).
IMPUTE_SCALES = (1.0, 3.0, 10.0)


def impute_missing(
    scm,
    nodes: Sequence[Hashable],
    observed: Mapping[Hashable, torch.Tensor],
    missing: Mapping[Hashable, torch.Tensor],
    num_candidates: int = IMPUTE_CANDIDATES,
    scales: tuple[float, ...] = IMPUTE_SCALES,
) -> tuple[dict[Hashable, torch.Tensor], torch.Tensor]:
    """One draw of the missing values per row and posterior draw, given the observed values.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    nodes : sequence
        The nodes to run the program for (closed under ancestors), in topological order.
    observed : mapping
        Node to values ``(K, 1)``; where a node is missing the value is a placeholder in its
        support (it is never used).
    missing : mapping
        Node to a bool tensor ``(K, 1)``, True where missing; nodes without missing values may
        be left out.
    num_candidates : int
        Candidates L per row and draw.
    scales : tuple of float
        Widening factors of the defensive mixture proposal of noises on the real line
        (:class:`~bayesrca.counterfactual.handlers.ImputeMissing`); ``(1.0,)`` draws from the
        noise distributions themselves.

    Returns
    -------
    values : dict
        Every node of ``missing`` to its values ``(K, D)``: the observed value where observed,
        the resampled draw where missing.
    ess : torch.Tensor
        ``(K, D)``: effective sample size of the candidates' weights (``num_candidates`` when they
        are all equal; 0 when every candidate is impossible).
    """
    weighted = [n for n in nodes if any(p in missing for p in scm.parents_[n])]
    num_rows, num_draws = next(iter(observed.values())).shape[0], scm.num_draws_
    zero = torch.zeros((), dtype=torch.float64)
    total = total_sq = torch.full((num_rows, num_draws), -math.inf, dtype=torch.float64)
    drawn: dict = {}
    for start in range(0, num_candidates, CANDIDATE_CHUNK):  # a bounded tensor, whatever num_candidates
        size = min(CANDIDATE_CHUNK, num_candidates - start)
        handler = ImputeMissing(observed, missing, weighted, scales)

        def candidates(size=size):
            with pyro.plate("impute", size, dim=-3):
                return scm.program(nodes)

        values = handler(candidates)()
        shape = (size, num_rows, num_draws)
        log_w = torch.as_tensor(handler.log_weight, dtype=torch.float64).expand(shape)
        possible = torch.isfinite(log_w).any(0)  # (K, D)
        pick = torch.distributions.Categorical(logits=torch.where(possible, log_w, zero).permute(1, 2, 0)).sample()
        here = {n: torch.gather(values[n].to(torch.float64).expand(shape), 0, pick.unsqueeze(0)).squeeze(0) for n in missing}
        mass = torch.logsumexp(log_w, 0)  # (K, D): this chunk's total weight
        # weighted reservoir: the chunk's pick replaces the current one with its share of the weight so far
        new_total = torch.logaddexp(total, mass)
        share = torch.where(torch.isfinite(mass), torch.exp(mass - new_total), zero)
        switch = torch.rand(share.shape, dtype=torch.float64) < share if drawn else torch.ones_like(share, dtype=torch.bool)
        drawn = {n: torch.where(switch, here[n], drawn[n]) if n in drawn else here[n] for n in missing}
        total, total_sq = new_total, torch.logaddexp(total_sq, torch.logsumexp(2 * log_w, 0))
    ess = torch.where(torch.isfinite(total), torch.exp(2 * total - total_sq), zero)
    return drawn, ess
