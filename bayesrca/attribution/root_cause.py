r"""Posterior probability that each node is *the* root cause of an anomaly (single-fault model).

The Shapley attribution (:func:`~bayesrca.attribution.anomaly.attribute_anomalies`) answers "how
much did each noise contribute to the outlier"; its ``prob_top`` is the posterior probability of
the largest contribution. This module answers the question a responder asks first, "which node
failed", as a posterior under an explicit fault model, and it pools the rows of an incident window
by likelihood rather than by vote.

**Model.** Exactly one candidate R (the target or one of its ancestors) is faulty. Under posterior
draw s every node's abducted noise :math:`n_j^{(s)}` has the p-value
:math:`u_j = P(\tau(N_j) \ge \tau(n_j^{(s)})) = e^{-S_j}`, with :math:`S_j` its conditional IT
outlier score (:func:`bayesrca.outlier_scores` with ``conditioning="conditional"``). A healthy
node's noise follows its noise distribution, so its p-value is uniform (density 1). The faulty
node's p-values over the ``m`` rows of a window follow :math:`\mathrm{Beta}(\xi, 1)` (density
:math:`\xi u^{\xi - 1}`: small p-values likely) with one unknown :math:`\xi \sim U(0, 1)` shared
by the rows. Integrating :math:`\xi` out, with :math:`L_j = \sum_r S_{jr}`,

.. math::

    p(u \mid R = j) = \int_0^1 \xi^m e^{(1 - \xi) L_j}\, d\xi
    = e^{L_j}\, \frac{\gamma(m + 1, L_j)}{L_j^{m + 1}},

(:math:`\gamma` the lower incomplete gamma function), so per draw

.. math::

    P_s(R = j \mid x) \propto \pi_j\, e^{L_j}\, \gamma(m + 1, L_j)\, L_j^{-(m + 1)},

and the reported probability is its mean over the posterior draws (parameter uncertainty
averaged; the spread over draws is the interval). The evidence per row grows like
:math:`S_j - (m + 1) \log S_j`: a node whose own noise is surprising given its parents is
blamed, and a node whose deviation its parents explain is not, however far it moved. No
tuning constant enters. A healthy node that happens to score high by chance gains little (its
:math:`L_j` is that of a uniform p-value).

**Robust to a model that misfits (the default).** The plain model above trusts every healthy
node's p-value to be uniform; on real incidents a mechanism or noise model that misfits, or an
edge the graph lacks, makes several nodes look faulty, and the plain posterior then gives the
largest score all the probability (on the Nezha and PetShop incidents it said P(top) >= 0.9 where
it was right 23-81 % of the time). ``robust=True`` lets each other candidate misfit with an unknown
probability :math:`\epsilon \sim \mathrm{Beta}(1, n - 1)` (about one misfit among the n - 1 others a
priori), its p-value then as surprising as a fault's:

.. math::

    P(R = j \mid x) \propto \pi_j \int_0^1 f_j \prod_{i \ne j} \big((1 - \epsilon) + \epsilon f_i\big)\, p(\epsilon)\, d\epsilon,

with :math:`f_i` the fault evidence above. Several strongly anomalous nodes then share the
probability; one clear outlier among quiet nodes keeps most of it. It is conservative: a clear
6-sd fault in a 4-node chain gets P = 0.67 (the rest is the doubt that the outlier is a misfit and
the fault a mild one elsewhere).

**What it assumes.** One fault among the candidates; noise models whose tails are right (the
default GPD-tailed noise scores far values from their tails; other non-Gaussian noise without GPD
tails is capped at ``log(num_mc_samples + 1)``, which makes far faults look alike). A missing edge
leaves the child's deviation unexplained: without ``robust`` the child takes the blame;
:func:`bayesrca.check_graph` tests the graph.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import graph as graphs
from .._random import resolve_seed
from ..exceptions import ConfigError
from ..results.root_cause import RootCauseResult
from ..scores import outlier_scores
from ..threads import thread_policy
from .common import check_fitted_scm, check_num_mc_samples, check_player_frame, check_unique_labels

__all__ = ["root_cause_posterior", "log_fault_evidence"]


def log_fault_evidence(total_score: torch.Tensor, num_rows: int) -> torch.Tensor:
    r""":math:`\log \int_0^1 \xi^m e^{(1-\xi) L} d\xi` for IT-score sums ``L`` over ``m`` rows.

    The log marginal likelihood ratio of "this node is faulty" against "this node is healthy"
    (see the module docstring): :math:`-\log(m + 1)` at ``L = 0`` (a quiet node is a little less
    likely faulty than healthy), :math:`L - (m + 1) \log L + \log m!` for large ``L``.

    Parameters
    ----------
    total_score : torch.Tensor
        Non-negative sums of IT scores (float64).
    num_rows : int
        ``m``, the rows summed.
    """
    a = num_rows + 1.0
    L = total_score.to(torch.float64).clamp(min=0.0)
    small = L < 1e-3  # series: int xi^m (1 + (1-xi) L) dxi = 1/(m+1) + L/((m+1)(m+2))
    Ls = torch.where(small, torch.ones_like(L), L)
    a_t = torch.full_like(Ls, a)
    big = L + torch.log(torch.special.gammainc(a_t, Ls)) + math.lgamma(a) - a * torch.log(Ls)
    series = -math.log(a) + torch.log1p(L / (a + 1.0))
    return torch.where(small, series, big)


#: Grid over the misfit probability eps in (0, 1): log-spaced, so that the sharp integrands of
#: far outliers (near eps = 0) are resolved; below its first point the prior has mass < 1e-10.
_EPS = torch.logspace(-12, 0, 961, dtype=torch.float64)
#: Largest (draws x units x candidates x grid) tensor of the robust posterior, in elements (128 MB).
_MAX_ELEMENTS = 2**24


def _contaminated_log_posterior(log_f: torch.Tensor, log_prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Unnormalised log P(R = j | x) when healthy nodes misfit with probability eps ~ Beta(1, n - 1).

    A healthy node's p-value density is :math:`(1 - \epsilon) + \epsilon f_i` (uniform, or a
    fault's :math:`f_i`), so

    .. math:: P(R = j \mid x) \propto \pi_j \int_0^1 f_j \prod_{i \ne j} ((1 - \epsilon) + \epsilon f_i)\, p(\epsilon)\, d\epsilon,

    integrated on a log-spaced grid (trapezoid rule in log eps). Returns it with the posterior
    mean of eps (``(..., n)`` and ``(...)``).
    """
    eps = _EPS
    step = torch.full_like(eps, float(torch.log(eps[1] / eps[0])))
    step[0] = step[-1] = step[0] / 2  # trapezoid weights in log eps; d eps = eps d log eps
    log_w = torch.log(eps * step)
    others = max(log_f.shape[-1] - 1, 1)  # prior Beta(1, others): about one misfit among the other candidates
    log_w = log_w + math.log(others) + (others - 1) * torch.log1p(-eps.clamp(max=1 - 1e-16))
    log_g = torch.logaddexp(torch.log1p(-eps.clamp(max=1 - 1e-16)), torch.log(eps) + log_f.unsqueeze(-1))  # (..., n, E)
    total = log_g.sum(-2, keepdim=True)  # (..., 1, E)
    joint = log_w + total - log_g + log_f.unsqueeze(-1)  # (..., n, E): R = j and eps
    log_post = torch.logsumexp(joint, -1) + log_prior
    over_eps = torch.logsumexp(joint + log_prior.unsqueeze(-1), -2)  # (..., E)
    eps_mean = torch.exp(torch.logsumexp(over_eps + torch.log(eps), -1) - torch.logsumexp(over_eps, -1))
    return log_post, eps_mean


def _check_prior(prior: Mapping[Hashable, float] | None, players: list[Hashable]) -> np.ndarray:
    if prior is None:
        return np.full(len(players), 1.0 / len(players))
    if not isinstance(prior, Mapping):
        raise ConfigError(f"prior must be a mapping of candidate nodes to non-negative weights, got {type(prior).__name__}")
    unknown = [k for k in prior if k not in players]
    if unknown:
        raise ConfigError(f"prior names {unknown!r}, which are not the target or its ancestors {players!r}")
    w = np.array([float(prior.get(p, 0.0)) for p in players])
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ConfigError(f"prior weights must be finite, non-negative and not all 0; got {dict(prior)!r}")
    return w / w.sum()


@thread_policy
def root_cause_posterior(
    scm,
    target_node: Hashable,
    anomaly_samples: pd.DataFrame,
    *,
    window: bool = False,
    prior: Mapping[Hashable, float] | None = None,
    robust: bool = True,
    seed: int | None = None,
    num_mc_samples: int = 4000,
) -> RootCauseResult:
    """Posterior probability that each candidate (the target and its ancestors) is the one faulty node.

    See :mod:`bayesrca.attribution.root_cause` for the model.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target_node : hashable
        The node where the anomaly was seen.
    anomaly_samples : pandas.DataFrame
        Anomalous rows, one column per candidate (other graph nodes may be present and are
        ignored). No missing values.
    window : bool, default False
        False: one posterior per row. True: the rows are one incident window with one fault,
        and the result has the single unit ``"window"`` (the rows' evidence multiplied, with
        the fault's severity shared by the rows).
    prior : mapping, optional
        Prior weight of each candidate (missing ones get 0); default uniform.
    robust : bool, default True
        Allow the model to be wrong at healthy nodes: each other candidate's p-value is, with an
        unknown probability eps ~ Beta(1, n - 1), as surprising as a fault's (a mechanism or noise model
        that misfits there, an edge the graph lacks). Several strongly anomalous nodes then share
        the probability instead of the largest taking it all; one clear outlier among healthy
        nodes still does. ``method_info["misfit_share"]`` is the posterior mean of eps per unit.
        False: every healthy node's p-value is uniform (the plain single-fault model).
    seed : int, optional
        Seed of the Monte Carlo reference samples (noises without a closed-form tail).
    num_mc_samples : int, default 4000
        Reference samples per posterior draw for those noises.

    Returns
    -------
    RootCauseResult
        Per-draw probabilities ``(D, units, candidates)``; ``summary()`` ranks the candidates by
        their posterior probability.

    Raises
    ------
    ConfigError
        For a bad prior, seed or ``num_mc_samples``.
    DataError
        If a candidate's column is missing or holds NaN, or the rows' labels repeat.
    GraphError
        If ``target_node`` is not in the graph.
    """
    check_fitted_scm(scm)
    players = graphs.players_of(scm.graph_, target_node)
    frame = check_player_frame(anomaly_samples, scm.graph_, players, what="anomaly_samples")
    check_unique_labels(frame, "anomaly_samples")
    weights = _check_prior(prior, players)
    num_mc_samples = check_num_mc_samples(num_mc_samples)
    seed = resolve_seed(seed)
    # the candidates are closed under parents: their abduction reads no other column
    scores = outlier_scores(scm, frame, seed=seed, num_mc_samples=num_mc_samples, conditioning="conditional", nodes=players)
    idx = [list(scores.nodes).index(p) for p in players]
    s = torch.as_tensor(np.asarray(scores.scores)[:, :, idx], dtype=torch.float64)  # (D, R, n)
    if window:
        evidence = log_fault_evidence(s.sum(1, keepdim=True), s.shape[1])
        units: list[Any] = ["window"]
    else:
        evidence = log_fault_evidence(s, 1)
        units = list(frame.index)
    log_prior = torch.log(torch.as_tensor(weights, dtype=torch.float64))
    if robust:  # in chunks of units: the grid over eps makes a (D, units, n, E) tensor
        step = max(1, _MAX_ELEMENTS // (evidence.shape[0] * evidence.shape[2] * len(_EPS)))
        parts = [_contaminated_log_posterior(evidence[:, i : i + step], log_prior) for i in range(0, evidence.shape[1], step)]
        log_post, eps_mean = torch.cat([p for p, _ in parts], 1), torch.cat([e for _, e in parts], 1)
    else:
        log_post, eps_mean = evidence + log_prior, torch.zeros(evidence.shape[:-1], dtype=torch.float64)
    probs = torch.softmax(log_post, dim=-1).numpy()
    info = {
        "model": "single fault among the candidates; faulty p-values Beta(xi, 1), xi ~ U(0, 1) shared by a window"
                 + ("; every other node misfit with probability eps ~ Beta(1, n - 1)" if robust else ""),
        "robust": bool(robust),
        "misfit_share": {str(u): float(v) for u, v in zip(units, eps_mean.mean(0).numpy())},
        "evidence": "conditional IT score of each candidate's abducted noise",
        "window": bool(window),
        "num_rows": int(s.shape[1]),
        "prior": "uniform" if prior is None else {str(p): float(w) for p, w in zip(players, weights)},
        "seed": seed,
        "num_mc_samples": num_mc_samples,
    }
    return RootCauseResult(probs, units, [str(p) for p in players], method_info=info)
