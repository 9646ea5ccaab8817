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

**What it assumes.** One fault among the candidates, a graph that holds all the edges (a missing
edge leaves the child's deviation unexplained, so the child gets blame: :func:`bayesrca.check_graph`
tests the graph), and noise models whose tails are right (the default GPD-tailed noise scores far
values from their tails, not a Monte Carlo floor; other non-Gaussian noise without GPD tails is
capped at ``log(num_mc_samples + 1)``, which makes far faults look alike).
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
from ..exceptions import ConfigError, DataError
from ..results.root_cause import RootCauseResult
from ..scores import outlier_scores
from ..threads import thread_policy
from .common import check_fitted_scm, check_num_mc_samples, check_player_frame

__all__ = ["root_cause_posterior", "log_fault_evidence"]


def log_fault_evidence(total_score: torch.Tensor, num_rows: int) -> torch.Tensor:
    r""":math:`\log \int_0^1 \xi^m e^{(1-\xi) L} d\xi` for IT-score sums ``L`` over ``m`` rows.

    The log marginal likelihood ratio of "this node is faulty" against "this node is healthy"
    (see the module docstring); 0 contribution beyond :math:`-\log(m + 1)` at ``L = 0``, and
    :math:`L - (m + 1) \log L + \log m!` for large ``L``.

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
    if frame.index.has_duplicates:
        raise DataError("anomaly_samples has duplicate index labels; give every row its own label "
                        "(e.g. anomaly_samples.reset_index(drop=True))")
    weights = _check_prior(prior, players)
    num_mc_samples = check_num_mc_samples(num_mc_samples)
    seed = resolve_seed(seed)
    # the candidates are closed under parents, so other nodes do not enter their abduction: they get
    # an observed training value (in their support) only to complete the frame the scorer reads
    full = frame.copy()
    for n in scm.graph_.nodes:
        if n not in players:
            full[n] = float(scm.training_data_[n].dropna().iloc[0])
    full = full[list(scm.graph_.nodes)]
    scores = outlier_scores(scm, full, seed=seed, num_mc_samples=num_mc_samples, conditioning="conditional")
    idx = [list(scores.nodes).index(p) for p in players]
    s = torch.as_tensor(np.asarray(scores.scores)[:, :, idx], dtype=torch.float64)  # (D, R, n)
    if window:
        evidence = log_fault_evidence(s.sum(1, keepdim=True), s.shape[1])
        units: list[Any] = ["window"]
    else:
        evidence = log_fault_evidence(s, 1)
        units = list(frame.index)
    log_post = evidence + torch.log(torch.as_tensor(weights, dtype=torch.float64))
    probs = torch.softmax(log_post, dim=-1).numpy()
    info = {
        "model": "single fault among the candidates; faulty p-values Beta(xi, 1), xi ~ U(0, 1) shared by a window",
        "evidence": "conditional IT score of each candidate's abducted noise",
        "window": bool(window),
        "num_rows": int(s.shape[1]),
        "prior": "uniform" if prior is None else {str(p): float(w) for p, w in zip(players, weights)},
        "seed": seed,
        "num_mc_samples": num_mc_samples,
    }
    return RootCauseResult(probs, units, [str(p) for p in players], method_info=info)
