"""Posterior IT outlier scores of data rows, for every node, and reference scores of normal rows."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
import math
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from .threads import thread_policy
from . import graph as graphs
from .counterfactual import tails
from .counterfactual.scale_mixture import scale_mixture_log_tail, slab_terms
from ._random import resolve_seed, seeded
from .counterfactual import abduct_noise, fresh_noise_trace, linearize
from .exceptions import ConfigError, GraphError
from .mechanisms.base import noise_site
from .mechanisms.mixture import has_additive_noise, split_gaussian_part
from .mechanisms.constant import SpikeSlabNormal
from .mechanisms.noise import BootstrapGPD
from .results.scores import CONDITIONINGS, ScoreResult
from .validation import check_frame, check_positive_int

__all__ = ["DEFAULT_BASE_SCORE", "outlier_scores", "gpd_noise_scores", "reference_it_scores", "reference_it_scores_for"]

#: The base score of :func:`outlier_scores` and :func:`bayesrca.attribute_anomalies` by default.
DEFAULT_BASE_SCORE = "median_cdf"


@thread_policy
def outlier_scores(
    scm,
    data: pd.DataFrame,
    *,
    seed: int | None = None,
    num_mc_samples: int = 4000,
    conditioning: str = "marginal",
    base_score: str = DEFAULT_BASE_SCORE,
    nodes: Sequence[Hashable] | None = None,
) -> ScoreResult:
    r"""Posterior IT outlier score of every row at every node (or at the nodes asked for).

    ``conditioning="marginal"`` scores each value against the node's marginal distribution under each
    posterior draw, :math:`-\log P(\tau(X_j) \ge \tau(x_j))` with the two-sided median-CDF
    quantile score :math:`\tau` (the target score that :func:`attribute_anomalies` explains).
    ``conditioning="conditional"`` scores the node's abducted noise against its noise distribution,
    i.e. how surprising the value is given its parents.

    Marginals of nodes whose ancestors are all linear-Gaussian are computed in closed form;
    others from ``num_mc_samples`` samples of the SCM per draw, with the node's own Gaussian
    noise integrated in closed form for rare values (conditional Monte Carlo), so a node with
    Gaussian noise is not capped near ``log(num_mc_samples + 1)``; a node whose noise has no
    Gaussian part (bootstrap, Student-t, discrete) is, except where the noise has generalised
    Pareto tails (``"bootstrap_gpd"``): its IT score is computed from the noise's distribution
    function, without Monte Carlo, in ``"conditional"`` scoring and at root nodes (whose marginal
    is their noise).

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    data : pandas.DataFrame
        Rows to score, one column per graph node.
    seed : int, optional
        Seed of the Monte Carlo draws.
    num_mc_samples : int, default 4000
        Samples per posterior draw for Monte Carlo marginals.
    conditioning : {"marginal", "conditional"}, default "marginal"
        Which distribution the value is compared with: the node's marginal, or (conditional)
        its noise distribution, i.e. given its parents.
    base_score : str, default "median_cdf"
        Base score tau, see :mod:`bayesrca.counterfactual.tails` (``"median_cdf"``, ``"mean_deviation"``,
        ``"median_deviation"``, ``"upper"``, ``"lower"``, and DoWhy's ``"rank"`` and ``"density"``),
        computed per posterior draw from that draw's marginal (closed form or its samples).
        ``"density"`` is always estimated from samples (a kernel density estimate,
        :mod:`bayesrca.counterfactual.density`), also for GPD-tailed noise.
    nodes : sequence of hashable, optional
        Score only these nodes (default: every node of the graph). ``data`` then needs columns for
        them only (``"marginal"``), or for them and their ancestors (``"conditional"``: the noise
        is abducted along the program); other graph nodes' columns may be present and are ignored.

    Returns
    -------
    ScoreResult
        Draws of shape (draws, rows, nodes); its ``method_info`` records ``conditioning``,
        ``base_score``, ``seed`` (the resolved seed) and ``num_mc_samples``.

    Raises
    ------
    ConfigError
        For an unknown ``conditioning`` or ``base_score``, or a bad ``num_mc_samples`` or seed.
    DataError
        If ``data`` lacks a node it needs or holds values outside a discrete node's support.
    GraphError
        If ``nodes`` names a node that is not in the graph, or names none.
    NotFittedError
        If ``scm`` is not fitted.
    """
    scm.check_fitted()
    all_nodes = list(scm.graph_.nodes)
    nodes = all_nodes if nodes is None else _check_nodes(scm, nodes)
    # the nodes whose values are read: the scored ones, and for abduction their ancestors too (in
    # the program's order, closed under parents)
    needed = set(nodes) if conditioning != "conditional" else set(nodes).union(*(nx.ancestors(scm.graph_, n) for n in nodes))
    program_nodes = [n for n in scm.nodes_ if n in needed]
    frame = check_frame(data, [n for n in all_nodes if n in needed], what="data", allowed=all_nodes)
    num_mc_samples = check_positive_int(num_mc_samples, "num_mc_samples", minimum=10)
    if conditioning not in CONDITIONINGS:
        raise ConfigError(f"conditioning must be 'marginal' or 'conditional', got {conditioning!r}")
    tails.event_side(base_score)
    for n in program_nodes:  # discrete nodes: values outside their support have no score
        scm.mechanisms_[n].check_values(frame[n].to_numpy(), str(n))
    observed = {n: torch.tensor(frame[n].to_numpy()).unsqueeze(-1) for n in program_nodes}
    scores = {}
    seed = resolve_seed(seed)
    with seeded(seed), torch.no_grad():
        if conditioning == "conditional":
            noise = abduct_noise(scm, program_nodes, observed)
            trace = fresh_noise_trace(scm, program_nodes, num_mc_samples, dim=-2)
            for n in nodes:
                dist = scm.mechanisms_[n].noise_distribution()
                if isinstance(dist, BootstrapGPD) and base_score != "density":
                    scores[n] = gpd_noise_scores(dist, noise[n], base_score)
                elif isinstance(dist, SpikeSlabNormal):
                    scores[n] = _spike_slab_scores(dist, noise[n], base_score)
                elif getattr(scm.mechanisms_[n], "noise_is_gaussian", False):
                    scores[n] = tails.gaussian_thresholds(noise[n], dist.mean, dist.stddev, base_score)[2]
                else:
                    ref = trace.nodes[noise_site(n)]["value"]
                    scores[n] = tails.empirical_thresholds(ref, noise[n], base_score)[2]
        else:
            gaussian = _linear_gaussian_nodes(scm)
            if gaussian:
                order = [n for n in scm.nodes_ if n in gaussian]
                offset, coef = linearize(scm, order)
                dists = [scm.mechanisms_[n].noise_distribution() for n in order]
                mu = torch.stack([d.mean for d in dists], -1)
                for n in (n for n in order if n in nodes):
                    sd, mix, extra, log_p = slab_terms(dists, coef[n])  # never-varied columns: spike and slab
                    mean = offset[n] + (coef[n] * mu).sum(-1)
                    std = ((coef[n] * sd) ** 2).sum(-1).sqrt()
                    lo, hi, scores[n] = tails.gaussian_thresholds(observed[n], mean, std, base_score)
                    if mix:  # a symmetric unimodal scale mixture: the same thresholds, for every base score
                        scores[n] = (-scale_mixture_log_tail(lo, hi, mean, std**2, extra, log_p)).clamp(min=0.0)
            for n in nodes:  # a root's marginal is its (additive) noise: exact tails of GPD-tailed noise
                mech = scm.mechanisms_[n]
                if n in scores or not has_additive_noise(mech):
                    continue
                dist = mech.noise_distribution()
                if _ignores_parents(mech) and isinstance(dist, SpikeSlabNormal):
                    # a column that never varied, whose mechanism ignores its (varying) parents
                    scores[n] = _spike_slab_scores(dist, observed[n] - mech.intercept_, base_score)
                elif not scm.parents_[n] and isinstance(dist, BootstrapGPD) and base_score != "density":
                    scores[n] = gpd_noise_scores(dist, mech.abduct(observed[n], []), base_score)
            rest = [n for n in nodes if n not in scores]
            if rest:
                trace = fresh_noise_trace(scm, scm.nodes_, num_mc_samples, dim=-2)
                values = trace.nodes["_RETURN"]["value"]
                for n in rest:
                    # conditional Monte Carlo on the node's own Gaussian noise (if it has one), so
                    # extreme rows are not capped near log(num_mc_samples)
                    mech = scm.mechanisms_[n]
                    sd = split_gaussian_part(mech.noise_distribution())[1]
                    if not has_additive_noise(mech):
                        sd = torch.zeros_like(sd)
                    centres = values[n] - trace.nodes[noise_site(n)]["value"] * (sd > 0)
                    scores[n] = tails.conditional_thresholds(values[n], centres, sd, observed[n], base_score)[2]
    draws = torch.stack([scores[n].expand(len(frame), scm.num_draws_) for n in nodes], -1)  # (R, D, n)
    names = [str(n) for n in nodes]  # as in AttributionResult
    info = {"conditioning": conditioning, "base_score": base_score, "seed": seed, "num_mc_samples": num_mc_samples}
    return ScoreResult(
        draws.permute(1, 0, 2).numpy(), rows=list(frame.index), nodes=names, conditioning=conditioning, method_info=info
    )


def _check_nodes(scm, nodes: Sequence[Hashable]) -> list[Hashable]:
    """The nodes asked for, in the graph's order, each once; a GraphError names unknown ones."""
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
        raise GraphError(f"nodes must be a list of graph nodes, got {nodes!r}")
    graphs.check_known_nodes(scm.graph_, nodes, "nodes")
    if not nodes:
        raise GraphError("nodes is empty: name at least one node to score (or leave it None for all)")
    return [n for n in scm.graph_.nodes if n in set(nodes)]


@thread_policy
def reference_it_scores(
    scm: Any,
    target: Hashable,
    *,
    num_rows: int = 500,
    base_score: str = DEFAULT_BASE_SCORE,
    seed: int | None = 0,
) -> np.ndarray:
    """Posterior-median IT score at ``target`` of up to ``num_rows`` complete training rows: what normal scores.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model; its training data are scored.
    target : hashable
        The node whose marginal IT score is computed.
    num_rows : int, default 500
        Rows scored (a random subset, drawn with ``seed``, when there are more).
    base_score : str, default "median_cdf"
        Base score tau, as in :func:`outlier_scores`; compare an anomaly's IT score only with
        reference scores of the same base score.
    seed : int, optional, default 0
        Seed of the subset and of the Monte Carlo marginals.

    Returns
    -------
    numpy.ndarray
        Shape ``(min(num_rows, len(training data)),)``.

    Raises
    ------
    ConfigError
        If ``num_rows`` is not positive, ``target`` is not a node or ``base_score`` is unknown.
    NotFittedError
        If ``scm`` is not fitted.
    """
    num_rows = check_positive_int(num_rows, "num_rows")
    scm.check_fitted()
    names = [str(n) for n in scm.graph_.nodes]
    if str(target) not in names:
        raise ConfigError(f"target {target!r} is not a node of the model; nodes: {names[:10]!r}")
    train = scm.training_data_.dropna()  # complete rows: a normal row with missing values has no score
    if len(train) > num_rows:
        train = train.sample(num_rows, random_state=seed)
    scores = outlier_scores(scm, train, seed=seed, base_score=base_score)
    return np.median(scores.scores[:, :, list(scores.nodes).index(str(target))], axis=0)


def reference_it_scores_for(result: Any, scm: Any, *, num_rows: int = 500) -> np.ndarray:
    """:func:`reference_it_scores` on the scale of an attribution: its own ``base_score`` and ``seed``.

    Parameters
    ----------
    result : AttributionResult
        Its ``target`` and ``method_info`` (``base_score`` and ``seed``, as recorded by
        :func:`bayesrca.attribute_anomalies`; the defaults ``"median_cdf"`` and 0 when absent).
    scm : BayesianSCM
        The fitted model the attribution used.
    num_rows : int, default 500
        Training rows scored.

    Returns
    -------
    numpy.ndarray
        The reference scores, comparable with ``result.it_scores``.
    """
    info = result.method_info
    base_score, seed = info.get("base_score", DEFAULT_BASE_SCORE), info.get("seed", 0)
    return reference_it_scores(scm, result.target, num_rows=num_rows, base_score=base_score, seed=seed)


def gpd_noise_scores(noise: BootstrapGPD, x: torch.Tensor, base_score: str = DEFAULT_BASE_SCORE) -> torch.Tensor:
    """IT score ``-log P(tau(N) >= tau(x))`` of noise values under GPD-tailed noise, per draw, exactly.

    Parameters
    ----------
    noise : BootstrapGPD
        Batch shape ``(D,)``.
    x : torch.Tensor
        ``(R, D)`` or ``(R, 1)`` noise values.
    base_score : str
        As in :func:`outlier_scores`; the centre of the deviation scores is the noise's mean or
        median (the median by bisection on the distribution function).

    Returns
    -------
    torch.Tensor
        ``(R, D)`` scores, >= 0, finite however far out ``x`` lies.
    """
    side = tails.event_side(base_score)
    if base_score == "density":
        raise ConfigError("gpd_noise_scores has no density-based score: base_score='density' is estimated from samples")
    x = x.expand(x.shape[0], noise.batch_shape[-1])
    if side != "two" or base_score in tails.QUANTILE_SCORES:
        log_cdf, log_sf = noise.log_tails(x)
        if side == "upper":
            log_p = log_sf
        elif side == "lower":
            log_p = log_cdf
        else:  # P(|F(X) - 1/2| >= |F(x) - 1/2|) = 2 min(F(x), 1 - F(x))
            log_p = math.log(2.0) + torch.minimum(log_cdf, log_sf)
    else:
        centre = noise.mean if base_score == "mean_deviation" else _median(noise)
        dist = (x - centre).abs()
        log_p = torch.logaddexp(noise.log_tails(centre - dist)[0], noise.log_tails(centre + dist)[1])
    return (-log_p).clamp(min=0.0)


def _median(noise: BootstrapGPD, iterations: int = 60) -> torch.Tensor:
    """The median of each draw's noise, by bisection between its thresholds (which bracket it)."""
    lo, hi = torch.minimum(noise.lower, noise.upper), torch.maximum(noise.lower, noise.upper)
    lo = torch.where(noise.prob_lower >= 0.5, lo - 1e6 * (hi - lo + 1.0), lo)  # a tail holding half the mass
    hi = torch.where(noise.prob_upper >= 0.5, hi + 1e6 * (hi - lo + 1.0), hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = noise.cdf(mid.unsqueeze(0)).squeeze(0) < 0.5
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _linear_gaussian_nodes(scm) -> set:
    """Nodes whose own and ancestors' mechanisms are linear with Gaussian noise (or the spike-and-slab
    noise of a column that never varied, a scale mixture of Gaussians)."""
    ok: set = set()
    for n in scm.nodes_:
        mech = scm.mechanisms_[n]
        if mech.is_linear and getattr(mech, "noise_is_scale_mixture", False) and all(p in ok for p in scm.parents_[n]):
            ok.add(n)
    return ok


def _ignores_parents(mech) -> bool:
    """True for an additive mechanism whose value is its intercept plus its noise in every draw."""
    coef = getattr(mech, "coef_", None)
    if coef is None or getattr(mech, "unvaried_coef_", None) is not None:
        return False
    return not bool(coef.any()) and not bool(getattr(mech, "hinge_coef_", torch.zeros(())).any())


def _spike_slab_scores(noise: SpikeSlabNormal, value: torch.Tensor, base_score: str) -> torch.Tensor:
    """IT scores of noise values under spike-and-slab noise, in closed form (symmetric about 0 and
    unimodal: the density and two-sided scores share the event ``|N| >= |n|``)."""
    side = tails.event_side(base_score)
    if side == "two":
        lo, hi = -value.abs(), value.abs()
    elif side == "upper":
        lo, hi = torch.full_like(value, -math.inf), value
    else:
        lo, hi = value, torch.full_like(value, math.inf)
    log_cdf, log_sf = noise.log_tails(lo)[0], noise.log_tails(hi)[1]
    return (-torch.logaddexp(log_cdf, log_sf)).clamp(min=0.0)
