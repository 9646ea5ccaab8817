"""Seed handling: every random step runs inside :func:`seeded`, which leaves global RNG state as found."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pyro
import torch

from .exceptions import ConfigError

__all__ = ["resolve_seed", "seeded"]


def resolve_seed(seed: int | np.random.Generator | None) -> int:
    """Turn a user seed into a non-negative int (``None`` draws one from the OS)."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, a numpy Generator or None, got {seed!r}")
    return int(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's RNG seeded by ``seed`` and Pyro's param store isolated.

    The global torch RNG state and Pyro's parameter store are restored on exit, so calling
    bayesrca never changes the random stream or the parameters of the caller's own code.
    """
    store = pyro.get_param_store()
    saved = store.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        store.clear()
        try:
            yield
        finally:
            store.set_state(saved)
