"""What the attributions share: their common arguments, checked in one place, and the Monte Carlo error.

Every attribution (:func:`~bayesrca.attribution.anomaly.attribute_anomalies`,
:func:`~bayesrca.attribution.change.distribution_change`,
:func:`~bayesrca.attribution.influence.intrinsic_causal_influence`) takes a seed, Shapley options
and an element bound, and returns per-draw contributions estimated three times on its Monte Carlo
path: from all samples and from each half (:func:`mc_std_error` turns these into a standard error).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
import torch

from .._random import resolve_seed
from ..exceptions import ConfigError
from ..scm import BayesianSCM
from ..shapley import ShapleyOptions
from ..validation import check_frame, check_positive_int

__all__ = [
    "MIN_MC_SAMPLES",
    "CommonArguments",
    "check_common_arguments",
    "check_fitted_scm",
    "check_num_mc_samples",
    "check_player_frame",
    "mc_std_error",
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
        ``"auto"``, ``"exact"``, ``"permutation"``, or complete :class:`~bayesrca.shapley.ShapleyOptions`.
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
