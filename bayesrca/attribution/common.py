"""What the attributions share: their common arguments, checked in one place, and the Monte Carlo error.

Every attribution (:func:`~bayesrca.attribution.anomaly.attribute_anomalies`,
:func:`~bayesrca.attribution.change.distribution_change`,
:func:`~bayesrca.attribution.influence.intrinsic_causal_influence`) takes a seed, Shapley options
and an element bound, and returns per-draw contributions estimated three times on its Monte Carlo
path: from all samples and from each half (:func:`mc_std_error` turns these into a standard error).
With ``shapley="early_stopping"`` the Shapley estimator's own error is folded into the draws
(:func:`estimate_shapley`) and reported (:func:`shapley_error_info`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
import torch

from .._random import resolve_seed
from .._warnings import user_stacklevel
from ..exceptions import ConfigError, ConvergenceWarning, DataError
from ..scm import BayesianSCM
from ..shapley import ShapleyOptions, shapley_estimate
from ..validation import check_frame, check_positive_int

__all__ = [
    "MIN_MC_SAMPLES",
    "CommonArguments",
    "check_common_arguments",
    "check_fitted_scm",
    "check_num_mc_samples",
    "check_player_frame",
    "estimate_shapley",
    "mc_std_error",
    "shapley_error_info",
]

#: Fewest Monte Carlo samples an attribution accepts (each half estimate needs a few).
MIN_MC_SAMPLES = 10


class CommonArguments(NamedTuple):
    """The checked arguments every attribution takes."""

    #: The resolved seed, reported as ``method_info["seed"]``.
    seed: int
    #: How Shapley values are estimated.
    shapley: ShapleyOptions
    #: Bound on the elements of one intermediate tensor.
    max_elements: int


def check_common_arguments(
    *,
    seed: int | np.random.Generator | None,
    shapley: str | ShapleyOptions,
    num_permutations: int | None,
    max_exact_players: int,
    max_elements: int,
) -> CommonArguments:
    """Check the arguments shared by the attributions.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        The user's seed (see :func:`bayesrca._random.resolve_seed`).
    shapley : str or ShapleyOptions
        ``"auto"``, ``"exact"``, ``"permutation"``, ``"early_stopping"``, or complete :class:`~bayesrca.shapley.ShapleyOptions`.
    num_permutations : int or None
        Permutations of the permutation estimator (must stay None with a ``ShapleyOptions``).
    max_exact_players : int
        Largest number of players ``"auto"`` solves exactly (must keep its default with a
        ``ShapleyOptions``).
    max_elements : int
        Bound on the elements of one intermediate tensor, at least 1.

    Returns
    -------
    CommonArguments

    Raises
    ------
    ConfigError
        Naming the argument at fault and its allowed values.
    """
    options = ShapleyOptions.of(shapley, num_permutations, max_exact_players, name="shapley")
    return CommonArguments(resolve_seed(seed), options, check_positive_int(max_elements, "max_elements"))


def check_num_mc_samples(value: object) -> int:
    """``num_mc_samples`` as int, at least :data:`MIN_MC_SAMPLES`, else :class:`ConfigError`."""
    return check_positive_int(value, "num_mc_samples", minimum=MIN_MC_SAMPLES)


def check_fitted_scm(scm: object) -> BayesianSCM:
    """Return ``scm`` if it is a fitted :class:`~bayesrca.BayesianSCM` whose graph is unchanged.

    Raises
    ------
    ConfigError
        If ``scm`` is not a BayesianSCM.
    NotFittedError
        If it is not fitted.
    GraphError
        If its graph changed after fit.
    """
    if not isinstance(scm, BayesianSCM):
        raise ConfigError(
            f"scm must be a fitted BayesianSCM, got {type(scm).__name__}; fit one with BayesianSCM(graph).fit(df)"
        )
    scm.check_fitted()
    return scm


def check_player_frame(
    data: object, graph: nx.DiGraph, players: Sequence[Hashable], *, what: str, min_rows: int = 1,
    missing: bool = False,
) -> pd.DataFrame:
    """The players' columns of ``data`` as float64 (other graph nodes may be present and are ignored).

    See :func:`bayesrca.validation.check_frame`, which raises :class:`~bayesrca.exceptions.DataError`
    (NaN too, unless ``missing``).
    """
    others = [n for n in graph.nodes if n not in players]
    return check_frame(data, players, what=what, allowed=others, min_rows=min_rows, missing=missing)


def check_unique_labels(frame: pd.DataFrame, what: str) -> None:
    """A :class:`~bayesrca.exceptions.DataError` naming the repeated labels when ``frame``'s index
    has duplicates: results, plots and the report address rows by label."""
    if frame.index.has_duplicates:
        dup = list(dict.fromkeys(frame.index[frame.index.duplicated()]))[:5]
        raise DataError(
            f"{what} has duplicate index labels {dup!r}, but rows are addressed by label; "
            f"give every row its own label, e.g. {what}.reset_index(drop=True) after pd.concat"
        )


def mc_std_error(phi: torch.Tensor) -> np.ndarray:
    """Monte Carlo standard error of each contribution.

    Parameters
    ----------
    phi : torch.Tensor
        Contributions of shape ``(..., D, E, n)``: ``D`` posterior draws, ``n`` players and
        ``E = 3`` estimates (all Monte Carlo samples, then each half of them) or ``E = 1`` (exact).

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n)``. The two half-sample estimates differ with 4x the variance of the
        full-sample one, so the standard error is half their root-mean-square difference over
        draws; zero when ``E = 1``.
    """
    if phi.shape[-2] == 1:
        return np.zeros((*phi.shape[:-3], phi.shape[-1]))
    diff = phi[..., 1, :] - phi[..., 2, :]  # (..., D, n)
    return (diff.pow(2).mean(-2).sqrt() / 2).numpy()


def estimate_shapley(
    set_function: Callable[[torch.Tensor], torch.Tensor],
    num_players: int,
    estimator: ShapleyOptions,
    generator: torch.Generator | None,
    chunk_size: int | None,
    *,
    unit_dims: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Shapley values ``(..., D, E, n)`` of an attribution, with early stopping's error folded in.

    For ``estimator.method == "early_stopping"`` the reported estimate (``E`` index 0) gets one
    draw of the estimator's error added per batch element (posterior draw and unit):
    :attr:`~bayesrca.shapley.ShapleyEstimate.jitter`, Gaussian with the antithetic pairs'
    covariance over players divided by their number, which sums to 0 over players, so each
    draw's efficiency is kept exactly. The permutations are shared by all posterior draws, so
    their error does not show as spread across draws; this convolution puts it there, and the
    credible intervals widen by it (variance of a draw = posterior variance + squared standard
    error). The half-sample estimates (``E`` = 1, 2, for :func:`mc_std_error`) stay as estimated.
    ``unit_dims`` leading dimensions (anomalies) are units that must each meet the tolerance
    (:func:`~bayesrca.shapley.shapley_estimate`).

    Returns
    -------
    phi : torch.Tensor
        The contributions.
    error : dict
        Empty unless early stopping: ``se`` (``(..., D, n)`` standard errors of the reported
        estimate), ``num_permutations`` and ``converged``.
    """
    est = shapley_estimate(set_function, num_players, method=estimator, generator=generator, chunk_size=chunk_size,
                           unit_dims=unit_dims)
    if est.jitter is None or est.std_error is None:
        return est.values, {}
    phi = est.values.clone()
    phi[..., 0, :] += est.jitter[..., 0, :]
    return phi, {"se": est.std_error[..., 0, :], "num_permutations": est.num_permutations, "converged": est.converged}


def shapley_error_info(se: np.ndarray, nodes: Sequence[str], num_permutations: int, converged: bool) -> dict[str, Any]:
    """``method_info`` entries of early stopping, and a :class:`ConvergenceWarning` if it hit its cap.

    Parameters
    ----------
    se : numpy.ndarray
        ``(U, n)`` standard errors of the Shapley estimates per unit (e.g. anomaly): the root mean
        square over the unit's posterior draws; ``U = 1`` for a single quantity.
    nodes : sequence of str
        The ``n`` players.
    num_permutations : int
        Permutations used (the most over batches).
    converged : bool
        Whether the tolerance was met (in every batch).

    Returns
    -------
    dict
        ``shapley_se`` (per node, the largest over units of the root-mean-square standard error over
        draws, the quantity the stopping rule bounds; already folded into the draws),
        ``shapley_num_permutations`` and ``shapley_converged``.
    """
    pooled = np.max(np.reshape(se, (-1, len(nodes))), axis=0)
    if not converged:
        warnings.warn(
            f"early-stopping Shapley reached its cap of {num_permutations} permutations before its tolerance "
            f"(largest standard error {float(pooled.max()):.3g}); the error is folded into the intervals, which "
            "are wider for it. Raise num_permutations (the cap) or the tolerance. See method_info['shapley_se'].",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return {
        "shapley_se": {str(node): float(value) for node, value in zip(nodes, pooled)},
        "shapley_num_permutations": int(num_permutations),
        "shapley_converged": bool(converged),
    }
