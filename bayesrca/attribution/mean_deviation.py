r"""Attribution of an anomaly's mean deviation (DoWhy's ``attribute_mean_deviation=True``).

Instead of the IT score, the quantity explained is the deviation of a score g of the target from
its expectation, per posterior draw s:

.. math:: v_s(S) = \mathbb E[g(X_t) \mid N_S = n_S^{(s)}] - \mathbb E[g(X_t)],

with the noise of the coalition S kept at the anomaly's abducted value and the rest redrawn (the
same counterfactual as :func:`~bayesrca.attribution.anomaly.attribute_anomalies`). The Shapley
values of v sum to :math:`g(x_t) - \mathbb E[g(X_t)]` for invertible mechanisms. Two scores:

* ``score="value"``: g is the identity, so the contributions split :math:`x_t - \mathbb E[X_t]`;
  for a linear model they are exact, :math:`\phi_j = a_j (n_j - \mathbb E N_j)` per draw;
* ``score="median_cdf"``: DoWhy's default ``MedianCDFQuantileScorer``,
  :math:`g(y) = 1 - 2\min(F(y), 1 - F(y)) = 2\,|F(y) - 1/2|` with F the model's own marginal of
  X_t under the draw (estimated from the Monte Carlo samples, like DoWhy's distribution samples).

Off the linear path (or with ``score="median_cdf"``) the expectations are Monte Carlo means over
``num_mc_samples`` fresh noise samples shared by every coalition (common random numbers); their
error is reported as ``mc_std_error`` (from the two halves of the samples).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

import pandas as pd
import torch
from pyro import poutine

from ..threads import thread_policy
from .. import graph as graphs
from .._random import seeded
from ..counterfactual import abduct_noise, fresh_noise_trace, linearize
from ..counterfactual.handlers import KeepNoise
from ..exceptions import ConfigError
from ..mechanisms.base import noise_site
from ..results import AttributionResult
from ..shapley import ShapleyOptions
from .common import (
    check_common_arguments,
    check_fitted_scm,
    check_num_mc_samples,
    check_player_frame,
    check_unique_labels,
    estimate_shapley,
    mc_std_error,
    shapley_error_info,
)

__all__ = ["SCORES", "attribute_mean_deviation"]

#: The scores g whose mean deviation can be attributed.
SCORES = ("value", "median_cdf")

_log = logging.getLogger(__name__)


@thread_policy
def attribute_mean_deviation(
    scm,
    target_node: Hashable,
    anomaly_samples: pd.DataFrame,
    *,
    score: str = "value",
    seed: int | None = None,
    num_mc_samples: int = 2000,
    shapley: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    max_elements: int = 2**25,
) -> AttributionResult:
    r"""Posterior contributions of the target's ancestors to each anomaly's mean deviation.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target_node : hashable
        The node whose deviation is explained.
    anomaly_samples : pandas.DataFrame
        Anomalous rows, one column per player (other graph nodes may be present).
    score : {"value", "median_cdf"}, default "value"
        The score g: the target's value itself (contributions to :math:`x_t - \mathbb E[X_t]`,
        in the target's units) or DoWhy's median-CDF quantile score
        :math:`1 - 2\min(F, 1 - F)` (contributions to :math:`g(x_t) - \mathbb E[g(X_t)]`, in
        [-1, 1]; DoWhy's ``attribute_anomalies(..., attribute_mean_deviation=True)``).
    seed : int, optional
        Seed of all randomness (Monte Carlo samples, permutations, abduction of discrete nodes).
    num_mc_samples : int, default 2000
        Fresh noise samples per posterior draw (not used on the exact linear path).
    shapley, num_permutations, max_exact_players, max_elements
        As in :func:`~bayesrca.attribution.anomaly.attribute_anomalies`.

    Returns
    -------
    AttributionResult
        Contribution draws ``(D, K, n)``; its ``it_scores`` hold the attributed total
        :math:`g(x_t) - \mathbb E[g(X_t)]` per draw (``method_info["attributed"]`` says so).

    Raises
    ------
    ConfigError
        If ``score`` is unknown or an argument is out of range.
    DataError
        If the anomalies lack a player's column, hold NaN, or repeat an index label.
    NotFittedError
        If ``scm`` is not fitted.
    """
    check_fitted_scm(scm)
    if score not in SCORES:
        raise ConfigError(f"score must be one of {SCORES}, got {score!r}")
    players = graphs.players_of(scm.graph_, target_node)
    frame = check_player_frame(anomaly_samples, scm.graph_, players, what="anomaly_samples")
    check_unique_labels(frame, "anomaly_samples")
    for p in players:
        scm.mechanisms_[p].check_values(frame[p].to_numpy(), str(p))
    num_mc_samples = check_num_mc_samples(num_mc_samples)
    args = check_common_arguments(seed=seed, shapley=shapley, num_permutations=num_permutations,
                                  max_exact_players=max_exact_players, max_elements=max_elements)
    n, num_draws, num_k = len(players), scm.num_draws_, len(frame)
    estimator = args.shapley.resolve(n)
    exact = score == "value" and all(scm.mechanisms_[p].is_linear for p in players)
    observed = {p: torch.tensor(frame[p].to_numpy()).unsqueeze(-1) for p in players}
    _log.info("mean deviation at %r: %d players, %s", target_node, n, "exact (linear)" if exact else "Monte Carlo")
    with seeded(args.seed) as generator, torch.no_grad():
        kept = abduct_noise(scm, players, observed)  # (K, D) per player
        if exact:
            value, step = _linear_value(scm, players, target_node, kept), None
        else:
            value = _MonteCarloValue(scm, players, target_node, kept, num_mc_samples, score)
            step = max(1, args.max_elements // (num_mc_samples * num_k * num_draws))
        phi, error = estimate_shapley(value, n, estimator, generator, step, unit_dims=1)  # (K, D, E, n)
        full = torch.ones(1, n, dtype=torch.bool)
        total = value(full)[0, :, :, 0]  # (K, D): v(all players) - v(empty) = v(all players)
    info = {
        "attributed": f"mean deviation of {score}",
        "engine": "analytic" if exact else "mc",
        "shapley": estimator.method,
        "num_draws": num_draws,
        "num_mc_samples": 0 if exact else num_mc_samples,
        "seed": args.seed,
        "score": score,
    }
    if error:
        info.update(shapley_error_info(error["se"].pow(2).mean(1).sqrt().numpy(), [str(p) for p in players],
                                       error["num_permutations"],
                                       error["converged"]))
    return AttributionResult(
        phi[:, :, 0].permute(1, 0, 2).numpy(),
        total.T.numpy(),
        nodes=[str(p) for p in players],
        anomalies=list(frame.index),
        target=str(target_node),
        method_info=info,
        mc_std_error=mc_std_error(phi),
    )


def _linear_value(scm, players, target, kept):
    """Exact ``v(S)`` of ``score="value"`` for linear players: ``sum_{j in S} a_j (n_j - E N_j)``."""
    _, coef = linearize(scm, players)
    a = coef[target]  # (D, n)
    means = torch.stack([scm.mechanisms_[p].noise_distribution().mean.expand(scm.num_draws_) for p in players], -1)
    effect = (torch.stack([kept[p] for p in players], -1) - means) * a  # (K, D, n)

    def value(masks: torch.Tensor) -> torch.Tensor:
        return torch.einsum("cn,kdn->ckd", masks.to(torch.float64), effect).unsqueeze(-1)  # (C, K, D, 1)

    return value


class _MonteCarloValue:
    """``v(S)`` by Monte Carlo: the target under KeepNoise over fresh noise, scored and averaged."""

    def __init__(self, scm, players, target, kept, num_mc_samples: int, score: str) -> None:
        self.scm, self.players, self.target, self.score = scm, list(players), target, score
        trace = fresh_noise_trace(scm, self.players, num_mc_samples, dim=-3)  # values (M, 1, D)
        self.fresh = {noise_site(p): trace.nodes[noise_site(p)]["value"] for p in self.players}
        self.kept = kept
        reference = trace.nodes["_RETURN"]["value"][target].reshape(num_mc_samples, -1)  # (M, D)
        self.sorted = reference.T.sort(-1).values.contiguous()  # (D, M): the marginal, for F
        # E g(X_t) from the same samples (all noise fresh), from all of them and from each half
        self.baseline = self._halves(self._score(reference.reshape(1, num_mc_samples, 1, -1)))[0, 0]  # (D, 3)

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """g of target values ``(C, M, K, D)``."""
        if self.score == "value":
            return x
        num_m = self.sorted.shape[-1]
        flat = x.permute(3, 0, 1, 2).reshape(x.shape[3], -1).contiguous()  # (D, C*M*K)
        below = torch.searchsorted(self.sorted, flat, right=True).to(x.dtype) / num_m  # F(y)
        above = (num_m - torch.searchsorted(self.sorted, flat, right=False)).to(x.dtype) / num_m  # 1 - F(y-)
        g = 1 - 2 * torch.minimum(below, above).clamp(max=0.5)
        return g.reshape(x.shape[3], *x.shape[:3]).permute(1, 2, 3, 0)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        c = masks.shape[0]
        node_masks = {p: masks[:, j].reshape(c, 1, 1, 1) for j, p in enumerate(self.players)}
        program = KeepNoise(self.kept, node_masks)(poutine.condition(self.scm.program, data=self.fresh))
        x = program(self.players)[self.target]
        num_m = self.fresh[noise_site(self.target)].shape[0]
        x = x.expand(c, num_m, self.kept[self.target].shape[0], self.scm.num_draws_)  # (C, M, K, D)
        return self._halves(self._score(x)) - self.baseline  # (C, K, D, 3)

    @staticmethod
    def _halves(g: torch.Tensor) -> torch.Tensor:
        """Means over the samples (dim 1) of ``(C, M, K, D)``: all, first half, second half -> ``(C, K, D, 3)``."""
        half = g.shape[1] // 2
        return torch.stack([g.mean(1), g[:, :half].mean(1), g[:, half:].mean(1)], -1)
