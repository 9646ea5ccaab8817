"""Posterior IT outlier scores of data rows, for every node."""

from __future__ import annotations

import pandas as pd
import torch

from .counterfactual import tails
from ._random import resolve_seed, seeded
from .counterfactual import abduct_noise, fresh_noise_trace, linearize
from .exceptions import ConfigError
from .mechanisms.additive import AdditiveNoiseModel
from .mechanisms.base import noise_site
from .mechanisms.noise import split_gaussian
from .results import ScoreResult
from .validation import check_frame, check_positive_int

__all__ = ["outlier_scores"]


def outlier_scores(
    scm,
    data: pd.DataFrame,
    *,
    seed: int | None = None,
    num_mc_samples: int = 4000,
    kind: str = "marginal",
    base_score: str = "median_cdf",
) -> ScoreResult:
    r"""Posterior IT outlier score of every row at every node.

    ``kind="marginal"`` scores each value against the node's marginal distribution under each
    posterior draw, :math:`-\log P(\tau(X_j) \ge \tau(x_j))` with the two-sided median-CDF
    quantile score :math:`\tau` (the target score that :func:`attribute_anomalies` explains).
    ``kind="conditional"`` scores the node's abducted noise against its noise distribution,
    i.e. how surprising the value is given its parents.

    Marginals of nodes whose ancestors are all linear-Gaussian are computed in closed form;
    others from ``num_mc_samples`` samples of the SCM per draw, with the node's own Gaussian
    noise integrated in closed form for rare values (conditional Monte Carlo), so a node with
    Gaussian noise is not capped near ``log(num_mc_samples + 1)``; a node whose noise has no
    Gaussian part (bootstrap, Student-t, discrete) is.

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
    kind : {"marginal", "conditional"}
        Which distribution the value is compared with.
    base_score : str, default "median_cdf"
        Base score tau, see :mod:`bayesrca.counterfactual.tails` (``"median_cdf"``, ``"mean_deviation"``,
        ``"median_deviation"``, ``"upper"``, ``"lower"``).

    Returns
    -------
    ScoreResult
        Draws of shape (draws, rows, nodes).
    """
    scm.check_fitted()
    nodes = list(scm.graph_.nodes)
    frame = check_frame(data, nodes, what="data")
    num_mc_samples = check_positive_int(num_mc_samples, "num_mc_samples", minimum=10)
    if kind not in ("marginal", "conditional"):
        raise ConfigError(f"kind must be 'marginal' or 'conditional', got {kind!r}")
    tails.event_side(base_score)
    for n in nodes:  # discrete nodes: values outside their support have no score
        scm.mechanisms_[n].check_values(frame[n].to_numpy(), str(n))
    observed = {n: torch.tensor(frame[n].to_numpy()).unsqueeze(-1) for n in nodes}
    scores = {}
    with seeded(resolve_seed(seed)), torch.no_grad():
        if kind == "conditional":
            noise = abduct_noise(scm, scm.nodes_, observed)
            trace = fresh_noise_trace(scm, scm.nodes_, num_mc_samples, dim=-2)
            for n in nodes:
                dist = scm.mechanisms_[n].noise_distribution()
                if getattr(scm.mechanisms_[n], "noise_is_gaussian", False):
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
                sd = torch.stack([d.stddev for d in dists], -1)
                for n in order:
                    mean = offset[n] + (coef[n] * mu).sum(-1)
                    std = ((coef[n] * sd) ** 2).sum(-1).sqrt()
                    scores[n] = tails.gaussian_thresholds(observed[n], mean, std, base_score)[2]
            rest = [n for n in nodes if n not in scores]
            if rest:
                trace = fresh_noise_trace(scm, scm.nodes_, num_mc_samples, dim=-2)
                values = trace.nodes["_RETURN"]["value"]
                for n in rest:
                    # conditional Monte Carlo on the node's own Gaussian noise (if it has one), so
                    # extreme rows are not capped near log(num_mc_samples)
                    mech = scm.mechanisms_[n]
                    sd = split_gaussian(mech.noise_distribution())[1]
                    if not isinstance(mech, AdditiveNoiseModel):
                        sd = torch.zeros_like(sd)
                    centres = values[n] - trace.nodes[noise_site(n)]["value"] * (sd > 0)
                    scores[n] = tails.conditional_thresholds(values[n], centres, sd, observed[n], base_score)[2]
    draws = torch.stack([scores[n].expand(len(frame), scm.num_draws_) for n in nodes], -1)  # (R, D, n)
    names = [str(n) for n in nodes]  # as in AttributionResult
    return ScoreResult(draws.permute(1, 0, 2).numpy(), rows=list(frame.index), nodes=names, kind=kind)


def _linear_gaussian_nodes(scm) -> set:
    """Nodes whose own and ancestors' mechanisms are linear with Gaussian noise."""
    ok: set = set()
    for n in scm.nodes_:
        mech = scm.mechanisms_[n]
        if mech.is_linear and getattr(mech, "noise_is_gaussian", False) and all(p in ok for p in scm.parents_[n]):
            ok.add(n)
    return ok
