"""Root-cause attribution of outliers: the set function, handed to the generic Shapley estimator."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import torch

from . import graph as graphs
from ._progress import progress_bar
from ._random import resolve_seed, seeded
from .counterfactual import (
    SORTED_MIN_ANOMALIES,
    CounterfactualEngine,
    choose_engine,
    nonlinear_closure,
)
from .exceptions import ConfigError
from .results import AttributionResult
from .shapley import shapley_values
from .tails import event_side
from .validation import check_frame, check_positive_int

__all__ = ["attribute_anomalies"]

_TAILS = ("auto", "analytic", "mc")


def attribute_anomalies(
    scm,
    target_node: Hashable,
    anomaly_samples: pd.DataFrame,
    *,
    seed: int | None = None,
    num_mc_samples: int = 2000,
    shapley: str = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    tail: str = "auto",
    base_score: str = "median_cdf",
    max_elements: int = 2**25,
    progress: bool = False,
) -> AttributionResult:
    r"""Posterior contributions of the target's ancestors to each anomaly's IT outlier score.

    For every posterior draw s, the noise of each anomaly is abducted, and the Shapley values
    of :math:`v_s(S) = \log P(\tau(X_t) \ge \tau(x_t) \mid N_S = n_S)` over the target's
    ancestors and itself are computed. They sum to the draw's IT score
    :math:`-\log P(\tau(X_t) \ge \tau(x_t))` exactly (Budhathoki et al., ICML 2022).

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target_node : hashable
        The node where the outliers were seen.
    anomaly_samples : pandas.DataFrame
        One row per anomaly, with a column for the target and each of its ancestors (other graph
        nodes may be present and are ignored).
    seed : int, optional
        Seed of the Monte Carlo and permutation draws; the same seed gives identical numbers.
    num_mc_samples : int, default 2000
        Fresh noise samples per posterior draw for Monte Carlo tail probabilities (not used on
        the closed-form linear-Gaussian path).
    shapley : {"auto", "exact", "permutation"}
        Shapley estimator; ``"auto"`` is exact up to ``max_exact_players`` players.
    num_permutations : int, optional
        Permutations for ``shapley="permutation"`` (default ``max(2n, 32)``).
    max_exact_players : int, default 12
        Largest number of players for which ``"auto"`` enumerates all coalitions.
    tail : {"auto", "analytic", "mc"}
        ``"auto"`` uses closed-form Gaussian tails where every ancestor is linear-Gaussian and
        Monte Carlo otherwise; ``"mc"`` forces Monte Carlo.
    base_score : str, default "median_cdf"
        Base score tau of the IT score: ``"median_cdf"`` (two-sided quantile score, DoWhy's
        default), ``"mean_deviation"``, ``"median_deviation"``, ``"upper"`` (only large values are
        anomalous, e.g. latencies) or ``"lower"``.
    max_elements : int, default 2**25
        Bound on the elements of the largest intermediate tensor (coalitions x Monte Carlo
        samples x anomalies x draws, float32); coalitions and anomalies are chunked to respect it.
    progress : bool, default False
        Show a progress bar over chunks of anomalies.

    Returns
    -------
    AttributionResult
        Contribution draws of shape (draws, anomalies, nodes) and IT-score draws.
    """
    scm.check_fitted()
    players = graphs.players_of(scm.graph_, target_node)
    others = [n for n in scm.graph_.nodes if n not in players]
    frame = check_frame(anomaly_samples, players, what="anomaly_samples", allowed=others)
    num_mc_samples = check_positive_int(num_mc_samples, "num_mc_samples", minimum=10)
    max_elements = check_positive_int(max_elements, "max_elements")
    if tail not in _TAILS:
        raise ConfigError(f"tail must be one of {_TAILS}, got {tail!r}")
    if shapley not in ("auto", "exact", "permutation"):
        raise ConfigError(f"shapley must be 'auto', 'exact' or 'permutation', got {shapley!r}")
    event_side(base_score)
    kind = choose_engine(scm, players, tail)
    base_seed = resolve_seed(seed)
    num_draws = scm.num_draws_
    if kind == "analytic":
        per_anomaly = num_draws * 2 ** min(len(players), 20)
    elif nonlinear_closure(scm, players) or len(frame) < SORTED_MIN_ANOMALIES:
        per_anomaly = num_draws * 16 * num_mc_samples  # every sample compared with every anomaly
    else:  # sorted samples are shared by all anomalies of a chunk: only per-anomaly state counts
        per_anomaly = num_draws * 16
    anomaly_chunk = max(1, min(len(frame), max_elements // per_anomaly))
    contributions, it_scores, mc_se = [], [], []
    with seeded(base_seed), torch.no_grad():
        generator = torch.Generator().manual_seed(base_seed)
        starts = range(0, len(frame), anomaly_chunk)
        for start in progress_bar(starts, progress, "attributing anomalies"):
            rows = frame.iloc[start : start + anomaly_chunk]
            observed = {n: torch.tensor(rows[n].to_numpy()).unsqueeze(-1) for n in players}
            engine = CounterfactualEngine(
                scm,
                target_node,
                players,
                observed,
                kind=kind,
                num_mc_samples=num_mc_samples,
                base_score=base_score,
                max_elements=max_elements,
            )
            phi = shapley_values(
                engine,
                len(players),
                method=shapley,
                num_permutations=num_permutations,
                max_exact_players=max_exact_players,
                generator=generator,
                chunk_size=max(1, max_elements // (len(rows) * num_draws * 3)),  # values of a chunk, float64
            )  # (K, D, E, n)
            contributions.append(phi[:, :, 0].permute(1, 0, 2).numpy())
            it_scores.append(engine.it_score.T.numpy())
            mc_se.append(_mc_std_error(phi))
    n = len(players)
    method = "exact" if (shapley == "exact" or (shapley == "auto" and n <= max_exact_players)) else "permutation"
    info = {
        "engine": kind,
        "shapley": method,
        "num_draws": num_draws,
        "num_mc_samples": 0 if kind == "analytic" else num_mc_samples,
        "seed": base_seed,
        "base_score": base_score,
    }
    return AttributionResult(
        np.concatenate(contributions, axis=1),
        np.concatenate(it_scores, axis=1),
        nodes=[str(p) for p in players],
        anomalies=list(frame.index),
        target=str(target_node),
        method_info=info,
        mc_std_error=np.concatenate(mc_se, axis=0),
    )


def _mc_std_error(phi: torch.Tensor) -> np.ndarray:
    """Monte Carlo standard error of each contribution, shape (K, n).

    ``phi[:, :, 1]`` and ``phi[:, :, 2]`` are the contributions estimated from each half of the
    fresh noise samples; their difference has variance 4x that of the full-sample estimate, so
    the standard error is half the root-mean-square difference over draws. Zero on the closed-form path.
    """
    if phi.shape[2] == 1:
        return np.zeros((phi.shape[0], phi.shape[-1]))
    diff = phi[:, :, 1] - phi[:, :, 2]  # (K, D, n)
    return (diff.pow(2).mean(1).sqrt() / 2).numpy()
