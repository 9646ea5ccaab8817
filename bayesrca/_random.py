"""Seed handling: every random step runs inside :func:`seeded`, which leaves global RNG state as found.

The policy, the same for fitting and for every attribution: a user seed becomes one int with
:func:`resolve_seed` (reported back as ``method_info["seed"]``); independent steps get seeds of
their own from :func:`child_seeds`; each step runs inside ``with seeded(step_seed) as generator``
and draws its Shapley permutations from ``generator``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pyro
import torch

from .exceptions import ConfigError

__all__ = ["child_seeds", "resolve_seed", "seeded"]


def resolve_seed(seed: int | np.random.Generator | None) -> int:
    """Turn a user seed into a non-negative int (``None`` draws one from the OS).

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        A non-negative integer, a generator to draw the seed from, or None for fresh entropy.

    Returns
    -------
    int
        The seed every random step of the call derives from.

    Raises
    ------
    ConfigError
        For a negative or non-integer seed.
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, a numpy Generator or None, got {seed!r}")
    return int(seed)


def child_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent seeds derived from ``seed`` (``numpy.random.SeedSequence`` words).

    Parameters
    ----------
    seed : int
        A seed from :func:`resolve_seed`.
    count : int
        How many seeds; the same ``(seed, count)`` always gives the same list.

    Returns
    -------
    list of int
        Non-negative 32-bit seeds, one per independent step.
    """
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Run a block with torch's RNG seeded by ``seed`` and Pyro's param store isolated.

    The global torch RNG state and Pyro's parameter store are restored on exit, so calling
    bayesrca never changes the random stream or the parameters of the caller's own code.

    Yields
    ------
    torch.Generator
        A CPU generator seeded with the same ``seed``, for the block's Shapley permutations
        (a stream of its own, so the permutations do not depend on how much noise was drawn).
    """
    store = pyro.get_param_store()
    saved = store.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        store.clear()
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            store.clear()  # set_state only adds: drop what the block created first
            store.set_state(saved)
