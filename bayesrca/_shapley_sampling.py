"""Permutation sampling behind :mod:`bayesrca.shapley`: prefix coalitions, their contraction, early stopping.

Private: :func:`bayesrca.shapley.shapley_estimate` and :func:`bayesrca.shapley.shapley_values` are
the public entry points (``ShapleyEstimate`` is re-exported there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from .exceptions import ConfigError

__all__ = [
    "EARLY_STOPPING_MIN_PAIRS",
    "EARLY_STOPPING_RELATIVE_TOLERANCE",
    "ShapleyEstimate",
    "early_stopping_estimate",
    "evaluate_combined",
    "permutation_estimate",
]

SetFunction = Callable[[torch.Tensor], torch.Tensor]

_WORD_BITS = 62  # player bits per int64 key word (keeps keys non-negative)
#: Default tolerance of ``"early_stopping"``: this share of the root-mean-square total v(N) - v(empty).
EARLY_STOPPING_RELATIVE_TOLERANCE = 0.01
#: Fewest antithetic pairs before ``"early_stopping"`` trusts its standard error.
EARLY_STOPPING_MIN_PAIRS = 16


def evaluate_combined(
    set_function: SetFunction, masks: torch.Tensor, weights: torch.Tensor, chunk_size: int | None
) -> torch.Tensor:
    """``sum_c v(masks[c]) * weights[c]``: evaluate in chunks of coalitions and contract each.

    The contraction is linear, so chunk by chunk it needs memory for one chunk of values only.
    """
    step = masks.shape[0] if chunk_size is None else chunk_size
    total: torch.Tensor | None = None
    batch: tuple | None = None
    for start in range(0, masks.shape[0], step):
        chunk = masks[start : start + step]
        out = set_function(chunk)
        if not isinstance(out, torch.Tensor):
            raise ConfigError(
                f"set_function must return a torch.Tensor, got {type(out).__name__}."
            )
        if out.dim() == 0 or out.shape[0] != chunk.shape[0]:
            raise ConfigError(
                f"set_function must return a tensor whose first dimension is the number of "
                f"coalitions ({chunk.shape[0]}), got shape {tuple(out.shape)}."
            )
        if batch is not None and out.shape[1:] != batch:
            raise ConfigError(
                "set_function must return the same trailing batch shape for every call, got "
                f"{batch} and {tuple(out.shape[1:])}."
            )
        batch = tuple(out.shape[1:])
        if not (out.is_floating_point() or out.is_complex()):
            out = out.to(torch.get_default_dtype())
        part = combine(out, weights[start : start + step])
        total = part if total is None else total.add_(part)
    assert total is not None  # masks has at least one row
    return total


def combine(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Contract ``values[C, *batch]`` with ``weights[C, n]`` into ``(*batch, n)``."""
    weights = weights.to(dtype=values.dtype, device=values.device)
    return torch.tensordot(values, weights, dims=([0], [0]))


def sample_permutations(
    n: int, num_permutations: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Antithetic permutations ``(num_permutations, n)``: each one followed by its reverse."""
    half = (num_permutations + 1) // 2
    base = torch.stack([torch.randperm(n, generator=generator) for _ in range(half)])
    return torch.stack([base, base.flip(1)], dim=1).reshape(2 * half, n)[:num_permutations]


def prefix_coalitions(perms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct prefix coalitions ``(U, n)`` of permutations ``(P, n)``, and each prefix's row ``(P, n + 1)``."""
    num_permutations, n = perms.shape
    num_words = (n + _WORD_BITS - 1) // _WORD_BITS
    # Multi-word int64 bit keys of every prefix (including the empty and full set).
    contrib = torch.zeros(num_permutations, n, num_words, dtype=torch.int64)
    contrib.scatter_(2, (perms // _WORD_BITS)[..., None], (1 << (perms % _WORD_BITS))[..., None])
    prefix = torch.cat(
        [torch.zeros(num_permutations, 1, num_words, dtype=torch.int64), contrib.cumsum(1)], dim=1
    ).reshape(-1, num_words)
    if num_words == 1:
        unique_keys, inverse = torch.unique(prefix[:, 0], return_inverse=True)
        unique_keys = unique_keys[:, None]
    else:
        unique_keys, inverse = torch.unique(prefix, dim=0, return_inverse=True)
    players = torch.arange(n, dtype=torch.int64)
    word_of, bit_of = players // _WORD_BITS, players % _WORD_BITS
    masks = ((unique_keys[:, word_of] >> bit_of) & 1).bool()  # (U, n)
    return masks, inverse.reshape(num_permutations, n + 1)


def permutation_estimate(
    set_function: SetFunction,
    n: int,
    num_permutations: int,
    generator: torch.Generator | None,
    chunk_size: int | None,
) -> torch.Tensor:
    """Monte-Carlo Shapley values from prefix coalitions of antithetic permutations."""
    perms = sample_permutations(n, num_permutations, generator)  # (P, n)
    masks, index = prefix_coalitions(perms)
    # counts[u, j] = #permutations where u is "prefix + j" minus # where u is "prefix before j".
    cols = perms.reshape(-1)
    ones = torch.ones_like(cols)
    counts = torch.zeros(masks.shape[0], n, dtype=torch.int64)
    counts.index_put_((index[:, 1:].reshape(-1), cols), ones, accumulate=True)
    counts.index_put_((index[:, :-1].reshape(-1), cols), -ones, accumulate=True)
    return evaluate_combined(set_function, masks, counts, chunk_size) / num_permutations


class ShapleyEstimate(NamedTuple):
    """Shapley values with their estimation error (:func:`shapley_estimate`).

    ``values``, ``std_error`` and ``jitter`` have shape ``(*batch, n)``.
    """

    #: The estimates (the same numbers :func:`shapley_values` returns).
    values: torch.Tensor
    #: Standard error of each estimate: 0 for ``"exact"``; for ``"early_stopping"`` the sample sd of
    #: the antithetic pairs' estimates over the square root of their number; None for
    #: ``"permutation"`` (not estimated).
    std_error: torch.Tensor | None
    #: ``"early_stopping"`` only (else None): one draw from the estimator's error distribution,
    #: with the pairs' estimated covariance over players; it sums to 0 over players (every pair
    #: sums to ``v(N) - v(empty)``), so ``values + jitter`` keeps efficiency exactly.
    jitter: torch.Tensor | None
    #: Permutations used (None for ``"exact"``).
    num_permutations: int | None
    #: False when ``"early_stopping"`` reached its cap before its tolerance.
    converged: bool


def early_stopping_estimate(
    set_function: SetFunction,
    n: int,
    cap: int,
    batch: int,
    tolerance: float | None,
    generator: torch.Generator | None,
    chunk_size: int | None,
    unit_dims: int = 0,
) -> ShapleyEstimate:
    """Add batches of ``batch`` antithetic permutations until every player's pooled standard error is at most ``tolerance``.

    Each antithetic pair (a permutation and its reverse) gives an independent estimate that sums
    exactly to ``v(N) - v(empty)``; the running sum, the sum of squares and a random combination
    ``sum_p z_p x_p`` (z standard normal, for the jitter) are accumulated batch by batch, all
    around the first batch's mean (so a player whose every pair agrees gets an error of exactly 0).
    The pooled standard error of a player is the root mean square of its standard errors over the
    batch elements, per unit: the first ``unit_dims`` batch dimensions (e.g. anomalies) are units
    that must each meet the tolerance; ``tolerance=None`` is 1 % of the root-mean-square total over
    all elements. At most ``cap`` permutations (even) are used.
    """
    sums: list[torch.Tensor] = []  # sum, sum of squares, sum of z x, sum of z (x centred on shift)
    shift = torch.empty(0)
    pairs, converged = 0, False
    while 2 * pairs < cap:
        perms = sample_permutations(n, min(batch, cap - 2 * pairs), generator)  # (B, n), B even
        masks, index = prefix_coalitions(perms)
        num_pairs = perms.shape[0] // 2
        pair_of = torch.arange(num_pairs).repeat_interleave(2)[:, None].expand(-1, n).reshape(-1)
        cols = perms.reshape(-1)
        ones = torch.ones_like(cols)
        counts = torch.zeros(masks.shape[0], num_pairs, n, dtype=torch.int64)  # per pair, as in permutation_estimate
        counts.index_put_((index[:, 1:].reshape(-1), pair_of, cols), ones, accumulate=True)
        counts.index_put_((index[:, :-1].reshape(-1), pair_of, cols), -ones, accumulate=True)
        out = evaluate_combined(set_function, masks, counts.reshape(masks.shape[0], -1), chunk_size)
        x = out.reshape(*out.shape[:-1], num_pairs, n) / 2  # (*batch, pairs, n): each pair's estimate
        if not sums:
            shift = x.mean(-2, keepdim=True)
        x = x - shift
        z = torch.randn(x.shape[:-1], generator=generator, dtype=torch.float64).to(x.dtype)
        parts = [x.sum(-2), x.pow(2).sum(-2), (z.unsqueeze(-1) * x).sum(-2), z.sum(-1)]
        sums = parts if not sums else [old + new for old, new in zip(sums, parts)]
        pairs += num_pairs
        if pairs < max(EARLY_STOPPING_MIN_PAIRS, 2):
            continue
        mean = sums[0] / pairs  # of x - shift
        se = ((sums[1] - pairs * mean.pow(2)).clamp(min=0) / (pairs - 1) / pairs).sqrt()
        if tolerance is None:  # 1 % of the root-mean-square total v(N) - v(empty)
            total = (mean + shift[..., 0, :]).sum(-1)
            tolerance = EARLY_STOPPING_RELATIVE_TOLERANCE * float(total.pow(2).mean().sqrt())
        pooled = se.reshape(*se.shape[:unit_dims], -1, n).pow(2).mean(-2).sqrt()  # (*units, n): RMS over the rest
        if bool((pooled <= tolerance).all()):
            converged = True
            break
    mean = sums[0] / pairs
    if pairs < 2:  # a cap of one pair: no error estimate
        se, jitter = torch.full_like(mean, float("nan")), torch.zeros_like(mean)
    else:
        se = ((sums[1] - pairs * mean.pow(2)).clamp(min=0) / (pairs - 1) / pairs).sqrt()
        jitter = (sums[2] - mean * sums[3].unsqueeze(-1)) / math.sqrt(pairs * (pairs - 1))
    return ShapleyEstimate(shift[..., 0, :] + mean, se, jitter, 2 * pairs, converged)
