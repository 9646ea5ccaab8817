r"""Intrinsic causal influence on single observations (DoWhy's ``gcm.intrinsic_causal_influence_sample``).

For one observed row x (a *baseline sample* in DoWhy's words), player j stands for the noise
:math:`N_j` of the target t or one of its ancestors. Per posterior draw s DoWhy's set function
(its default ``subset_scoring_func``, ``means_difference``) is

.. math:: v_s(S) = \mathbb E[X_t \mid N_S = n_S^{(s)}] - x_t,

with the coalition's noise kept at the row's abducted value and the rest redrawn from the noise
distributions. :math:`v_s(P) = 0` and :math:`v_s(\emptyset) = \mathbb E[X_t] - x_t`, so the
contributions of a draw add up to :math:`x_t - \mathbb E^{(s)}[X_t]`: how far the row's target lies
from its mean, split among the noises that put it there. This set function differs from that of
:func:`~bayesrca.attribution.mean_deviation.attribute_mean_deviation` with ``score="value"``
(:math:`\mathbb E[X_t \mid N_S] - \mathbb E[X_t]`) by a constant, and Shapley values ignore constants,
so both give the same contributions; this module is the DoWhy-named entry point with DoWhy's
vocabulary (rows of normal data, not anomalies). For linear mechanisms the contributions are
exact per draw, :math:`\phi_j = a_j (n_j - \mathbb E N_j)`; otherwise Monte Carlo means over
``num_mc_samples`` fresh noise samples (common to every coalition), whose error is reported.
"""

from __future__ import annotations

from collections.abc import Hashable

import pandas as pd

from ..results import AttributionResult
from ..shapley import ShapleyOptions
from ..threads import thread_policy
from .mean_deviation import attribute_mean_deviation

__all__ = ["intrinsic_causal_influence_sample"]


@thread_policy
def intrinsic_causal_influence_sample(
    scm,
    target_node: Hashable,
    baseline_samples: pd.DataFrame,
    *,
    seed: int | None = None,
    num_mc_samples: int = 2000,
    shapley: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    max_elements: int = 2**25,
) -> AttributionResult:
    r"""Posterior intrinsic causal influence of each upstream noise on the target value of each row.

    See :mod:`bayesrca.attribution.sample_influence` for the set function.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target_node : hashable
        The node whose value is explained.
    baseline_samples : pandas.DataFrame
        The rows to explain, one column per player (the target and its ancestors; other graph
        nodes may be present and are ignored). Their index labels must be unique.
    seed : int, optional
        Seed of all randomness (Monte Carlo samples, permutations, abduction of discrete nodes).
    num_mc_samples : int, default 2000
        Fresh noise samples per posterior draw (not used when every player is linear).
    shapley, num_permutations, max_exact_players, max_elements
        As in :func:`~bayesrca.attribution.anomaly.attribute_anomalies`.

    Returns
    -------
    AttributionResult
        Contribution draws ``(D, rows, n)`` in the target's units; its ``it_scores`` hold the
        attributed total :math:`x_t - \mathbb E[X_t]` per draw (``method_info["attributed"]`` says
        so). DoWhy returns, per row, ``{(node, target): value}``: the same numbers, from one point
        estimate instead of posterior draws.

    Raises
    ------
    ConfigError
        If an argument is out of range or ``target_node`` is not a node.
    DataError
        If the rows lack a player's column, hold NaN, or repeat an index label.
    NotFittedError
        If ``scm`` is not fitted.
    """
    result = attribute_mean_deviation(
        scm, target_node, baseline_samples, score="value", seed=seed, num_mc_samples=num_mc_samples,
        shapley=shapley, num_permutations=num_permutations, max_exact_players=max_exact_players,
        max_elements=max_elements,
    )
    info = dict(result.method_info)
    info["attributed"] = "x_t - E[X_t] (intrinsic causal influence per sample)"
    return AttributionResult(
        result.contributions, result.it_scores, nodes=list(result.nodes), anomalies=list(result.anomalies),
        target=result.target, method_info=info, mc_std_error=result.mc_std_error,
    )
