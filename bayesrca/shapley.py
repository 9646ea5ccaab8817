"""Batched Shapley value estimation over arbitrary vectorised set functions.

The set function receives a boolean matrix of coalitions (one row per coalition, one
column per player) and returns one value per coalition for every element of an
arbitrary trailing batch shape, e.g. ``(anomalies, posterior_draws)``. Shapley values
are then linear combinations of these values, computed either exactly (all ``2**n``
coalitions), from antithetic random permutations, or from antithetic permutations added in
batches until the estimate's standard error is below a tolerance (early stopping, whose error is
returned with the estimate, :func:`shapley_estimate`).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable

import torch

from ._shapley_sampling import (
    ShapleyEstimate,
    early_stopping_estimate,
    evaluate_combined,
    permutation_estimate,
)
from .exceptions import ConfigError

__all__ = [
    "ShapleyOptions",
    "ShapleyEstimate",
    "shapley_values",
    "shapley_estimate",
    "all_coalitions",
    "exact_shapley_coefficients",
]

SetFunction = Callable[[torch.Tensor], torch.Tensor]

#: Largest number of players whose ``2**n`` coalitions may be enumerated.
MAX_ENUMERABLE_PLAYERS = 25
#: The Shapley estimators: ``"auto"`` picks ``"exact"`` or ``"permutation"`` from the number of players.
SHAPLEY_METHODS = ("auto", "exact", "permutation", "early_stopping")
#: Default cap of ``"early_stopping"``: this many batches of the default permutation count.
EARLY_STOPPING_BATCHES = 40
#: Default of ``max_exact_players``: ``"auto"`` enumerates ``2**12`` coalitions at most.
DEFAULT_MAX_EXACT_PLAYERS = 12


def _as_int(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]`` or raise ConfigError."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got the bool {value!r}.")
    try:
        result = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {value!r}.") from None
    if result < minimum or (maximum is not None and result > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"{name} must be {bound}, got {result}.")
    return result


@dataclasses.dataclass(frozen=True)
class ShapleyOptions:
    """How Shapley values are estimated: one policy for :func:`shapley_values` and every attribution.

    Parameters
    ----------
    method : {"auto", "exact", "permutation", "early_stopping"}, default "auto"
        ``"exact"`` enumerates all ``2**n`` coalitions; ``"permutation"`` averages marginal
        contributions over random antithetic permutations; ``"auto"`` is exact when the number of
        players is at most ``max_exact_players`` and permutation otherwise. ``"early_stopping"``
        adds batches of ``max(2 n, 32)`` antithetic permutations until the standard error of every
        player's estimate (root mean square over the batch elements, e.g. over the posterior draws
        of each anomaly, see :func:`shapley_estimate`) is at most ``tolerance``, or
        ``num_permutations`` are used (DoWhy's
        ``EARLY_STOPPING``, with a standard error instead of a relative change as the rule); the
        error is returned with the estimate (:func:`shapley_estimate`).
    num_permutations : int, optional
        Permutations for the permutation estimator (default ``max(2 n, 32)``, see
        :meth:`resolve`); each sampled permutation is followed by its reverse. For
        ``"early_stopping"`` the most permutations used (default 40 batches).
    max_exact_players : int, default 12
        Largest number of players that ``"auto"`` solves exactly, at most
        ``MAX_ENUMERABLE_PLAYERS``.
    tolerance : float, optional
        ``"early_stopping"`` only: the standard error (in the set function's units) at which to
        stop; default 1 % of the root-mean-square total ``v(N) - v(empty)`` over the batch.

    Raises
    ------
    ConfigError
        On an unknown method or a setting outside its range; the message names the setting.

    Examples
    --------
    >>> ShapleyOptions().resolve(3)
    ShapleyOptions(method='exact', num_permutations=None, max_exact_players=12, tolerance=None)
    >>> ShapleyOptions("permutation").resolve(3).num_permutations
    32
    """

    method: str = "auto"
    num_permutations: int | None = None
    max_exact_players: int = DEFAULT_MAX_EXACT_PLAYERS
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.method, str) and self.method in SHAPLEY_METHODS):
            raise ConfigError(
                f"method must be 'auto', 'exact', 'permutation' or 'early_stopping', got {self.method!r}."
            )
        if self.tolerance is not None:
            if self.method != "early_stopping":
                raise ConfigError(f"tolerance is a setting of method='early_stopping', not of {self.method!r}.")
            if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, (int, float)) or not (
                math.isfinite(self.tolerance) and self.tolerance > 0
            ):
                raise ConfigError(f"tolerance must be a positive finite number, got {self.tolerance!r}.")
            object.__setattr__(self, "tolerance", float(self.tolerance))
        if self.num_permutations is not None:
            object.__setattr__(self, "num_permutations", _as_int(self.num_permutations, "num_permutations", 1))
        max_exact = _as_int(self.max_exact_players, "max_exact_players", 0, MAX_ENUMERABLE_PLAYERS)
        object.__setattr__(self, "max_exact_players", max_exact)

    @classmethod
    def of(
        cls,
        method: str | ShapleyOptions,
        num_permutations: int | None = None,
        max_exact_players: int = DEFAULT_MAX_EXACT_PLAYERS,
        *,
        name: str = "shapley",
    ) -> ShapleyOptions:
        """Options from a function's Shapley arguments (a method name and its two settings).

        Parameters
        ----------
        method : str or ShapleyOptions
            A method name, or complete options (then the two settings must keep their defaults).
        num_permutations, max_exact_players
            As for the class.
        name : str, default "shapley"
            The caller's name of the ``method`` argument, used in error messages.

        Raises
        ------
        ConfigError
            On an unknown method, an invalid setting, or settings given beside a ``ShapleyOptions``.
        """
        if isinstance(method, ShapleyOptions):
            if num_permutations is not None or max_exact_players != DEFAULT_MAX_EXACT_PLAYERS:
                raise ConfigError(
                    f"{name} is a ShapleyOptions, so give num_permutations and max_exact_players inside it "
                    f"({name}=ShapleyOptions(method, num_permutations, max_exact_players)), not beside it."
                )
            return method
        if not (isinstance(method, str) and method in SHAPLEY_METHODS):
            raise ConfigError(
                f"{name} must be 'auto', 'exact', 'permutation', 'early_stopping' or a ShapleyOptions, got {method!r}."
            )
        return cls(method, num_permutations, max_exact_players)

    def resolve(self, num_players: int) -> ShapleyOptions:
        """The concrete estimator for ``num_players`` players.

        Returns
        -------
        ShapleyOptions
            ``method`` is ``"exact"``, ``"permutation"`` or ``"early_stopping"`` (the label
            attributions report in ``method_info["shapley"]``); for ``"permutation"``,
            ``num_permutations`` is the number used (the default ``max(2 n, 32)`` filled in, made
            even), for ``"early_stopping"`` the cap (default 40 times that), for ``"exact"`` None.

        Raises
        ------
        ConfigError
            If ``num_players`` is not a positive integer, or ``method="exact"`` is asked for more
            than ``MAX_ENUMERABLE_PLAYERS`` players.
        """
        n = _as_int(num_players, "num_players", 1)
        method = self.method
        if method == "auto":
            method = "exact" if n <= self.max_exact_players else "permutation"
        if method == "exact":
            if n > MAX_ENUMERABLE_PLAYERS:
                raise ConfigError(
                    f"method='exact' enumerates 2**num_players coalitions and supports at most "
                    f"{MAX_ENUMERABLE_PLAYERS} players, got {n}; use method='permutation'."
                )
            return dataclasses.replace(self, method="exact", num_permutations=None)
        num_permutations = self.num_permutations
        if num_permutations is None:
            num_permutations = max(2 * n, 32)
            num_permutations += num_permutations % 2
            if method == "early_stopping":
                num_permutations *= EARLY_STOPPING_BATCHES
        if method == "early_stopping":
            return dataclasses.replace(self, num_permutations=num_permutations + num_permutations % 2)
        return dataclasses.replace(self, method="permutation", num_permutations=num_permutations)

    def batch_permutations(self, num_players: int) -> int:
        """Permutations per batch of ``"early_stopping"``: ``max(2 n, 32)``, even, at most the cap."""
        batch = max(2 * num_players, 32)
        cap = self.resolve(num_players).num_permutations or batch
        return min(batch + batch % 2, cap)

    def num_coalitions(self, num_players: int) -> int:
        """Most distinct coalitions the estimator evaluates for ``num_players`` players."""
        resolved = self.resolve(num_players)
        if resolved.method == "exact":
            return 2**num_players
        assert resolved.num_permutations is not None  # resolve() sets it for the permutation methods
        return min(2**num_players, resolved.num_permutations * (num_players + 1))



def all_coalitions(num_players: int) -> torch.Tensor:
    """Enumerate every coalition of ``num_players`` players.

    Parameters
    ----------
    num_players : int
        Number of players ``n``, between 1 and ``MAX_ENUMERABLE_PLAYERS``.

    Returns
    -------
    torch.Tensor
        Bool tensor of shape ``(2**n, n)``; row ``i`` holds the binary digits of ``i``
        (player ``j`` is in coalition ``i`` iff bit ``j`` of ``i`` is set).
    """
    n = _as_int(num_players, "num_players", 1, MAX_ENUMERABLE_PLAYERS)
    keys = torch.arange(2**n, dtype=torch.int64)
    return ((keys[:, None] >> torch.arange(n, dtype=torch.int64)) & 1).bool()


def exact_shapley_coefficients(num_players: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Weights that turn the values of all coalitions into exact Shapley values.

    Parameters
    ----------
    num_players : int
        Number of players ``n``, between 1 and ``MAX_ENUMERABLE_PLAYERS``.
    dtype : torch.dtype, default torch.float64
        Dtype of the result; the weights are always computed in float64 first.

    Returns
    -------
    torch.Tensor
        Tensor ``coef`` of shape ``(2**n, n)``, rows ordered as :func:`all_coalitions`,
        with ``coef[S, j] = (|S|-1)! (n-|S|)! / n!`` if ``j`` is in ``S`` and
        ``-|S|! (n-|S|-1)! / n!`` otherwise, so that ``phi_j = sum_S coef[S, j] v(S)``.
    """
    masks = all_coalitions(num_players)
    n = masks.shape[1]
    size = masks.sum(dim=1, dtype=torch.float64)[:, None]  # |S|
    log_n_fact = math.lgamma(n + 1)
    # Clamp keeps lgamma finite on the branch that torch.where discards.
    log_in = torch.lgamma(size.clamp(min=1.0)) + torch.lgamma(n - size + 1) - log_n_fact
    log_out = torch.lgamma(size + 1) + torch.lgamma((n - size).clamp(min=1.0)) - log_n_fact
    coef = torch.where(masks, torch.exp(log_in), -torch.exp(log_out))
    return coef.to(dtype)


def shapley_estimate(
    set_function: SetFunction,
    num_players: int,
    *,
    method: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    unit_dims: int = 0,
) -> ShapleyEstimate:
    """Shapley values of every player with their estimation error.

    The arguments are those of :func:`shapley_values`, which returns ``.values`` of this, and
    ``unit_dims``. ``method="early_stopping"`` (or ``ShapleyOptions("early_stopping", cap,
    tolerance=...)``) adds batches of ``max(2 n, 32)`` antithetic permutations until, for every
    player and every unit (an index of the first ``unit_dims`` batch dimensions, e.g. one anomaly;
    ``unit_dims=0``: the whole batch is one unit), the root mean square of the standard errors over
    the unit's batch elements (e.g. its posterior draws) is at most the tolerance (default 1 % of the
    root-mean-square total ``v(N) - v(empty)``), or the cap is reached.

    Returns
    -------
    ShapleyEstimate
        The values, their standard errors and (early stopping) a jitter draw that sums to 0 over
        players; ``num_permutations`` used and whether the rule was met.
    """
    if not callable(set_function):
        raise ConfigError(f"set_function must be callable, got {type(set_function).__name__}.")
    n = _as_int(num_players, "num_players", 1)
    options = ShapleyOptions.of(method, num_permutations, max_exact_players, name="method").resolve(n)
    if chunk_size is not None:
        chunk_size = _as_int(chunk_size, "chunk_size", 1)
    unit_dims = _as_int(unit_dims, "unit_dims", 0)
    if options.method == "early_stopping":
        assert options.num_permutations is not None  # resolve() sets the cap
        return early_stopping_estimate(set_function, n, options.num_permutations, options.batch_permutations(n),
                                       options.tolerance, generator, chunk_size, unit_dims)
    if options.method == "exact":
        values = evaluate_combined(set_function, all_coalitions(n), exact_shapley_coefficients(n), chunk_size)
        return ShapleyEstimate(values, torch.zeros_like(values), None, None, True)
    assert options.num_permutations is not None  # resolve() sets it for the permutation method
    values = permutation_estimate(set_function, n, options.num_permutations, generator, chunk_size)
    return ShapleyEstimate(values, None, None, options.num_permutations, True)


def shapley_values(
    set_function: SetFunction,
    num_players: int,
    *,
    method: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Shapley values of every player for a batched set function.

    Parameters
    ----------
    set_function : callable
        Maps a bool tensor ``masks`` of shape ``(C, num_players)`` (row ``c``: ``True``
        means the player is in coalition ``c``) to a tensor of shape ``(C, *batch)``.
        Each distinct coalition is evaluated exactly once. Integer or bool results are
        cast to the default float dtype; floating dtypes are kept.
    num_players : int
        Number of players ``n >= 1``.
    method : {"auto", "exact", "permutation", "early_stopping"} or ShapleyOptions, default "auto"
        ``"exact"`` enumerates all ``2**n`` coalitions; ``"permutation"`` averages
        marginal contributions over random antithetic permutations; ``"auto"`` is exact
        when ``num_players <= max_exact_players`` and permutation otherwise;
        ``"early_stopping"`` adds permutations until a standard error is reached (see
        :func:`shapley_estimate`, which also returns the error). A :class:`ShapleyOptions`
        carries the method and its settings at once.
    num_permutations : int, optional
        Number of permutations for ``"permutation"`` (default ``max(2 n, 32)``). Each
        sampled permutation is followed by its reverse. Ignored by ``"exact"``.
    max_exact_players : int, default 12
        Largest ``n`` that ``"auto"`` solves exactly, at most ``MAX_ENUMERABLE_PLAYERS``.
    generator : torch.Generator, optional
        CPU random generator for the permutations; the global RNG is used when omitted.
    chunk_size : int, optional
        Largest number of coalitions passed to one call of ``set_function``; results
        are concatenated along dim 0. All coalitions go in one call when omitted.

    Returns
    -------
    torch.Tensor
        Shape ``(*batch, num_players)`` in the dtype of the set function's values.
        Efficiency holds for both methods: the values sum to ``v(full) - v(empty)``
        for every batch element (up to floating-point rounding).

    Raises
    ------
    ConfigError
        On an unknown method, a non-positive ``num_players``, ``num_permutations`` or
        ``chunk_size``, too many players for exact enumeration, or a set function whose
        result is not a tensor with one row per coalition.
    """
    return shapley_estimate(
        set_function, num_players, method=method, num_permutations=num_permutations,
        max_exact_players=max_exact_players, generator=generator, chunk_size=chunk_size,
    ).values
