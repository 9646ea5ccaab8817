"""How many torch threads bayesrca's own calls use: one by default, more on request.

Fitting and attribution run many medium-sized tensor operations. On a machine whose cores are
busy (other processes, other users, a notebook's kernel next to a build), torch's intra-op threads
wait for each other and one thread is faster: on the 2-core development machine, attribution of
the microservice example took 9-10 s with one thread and 35-44 s with two, its fit 8 s against
6-123 s (``docs/scaling.md``). The cores are used better by processes, each one thread
(``executor=``, :mod:`bayesrca.parallel`).

So every public entry point that computes (``BayesianSCM.fit`` and the attribution and scoring
functions) runs with ``torch.set_num_threads(n)`` for the duration of the call and restores the
caller's setting afterwards, with ``n`` from the environment variable ``BAYESRCA_NUM_THREADS``
(default 1; read at each call, so it can be changed between calls, e.g. ``os.environ[...] = "8"``
on a dedicated many-core machine).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

from .exceptions import ConfigError

__all__ = ["ENV", "num_threads", "torch_threads", "thread_policy"]

#: The environment variable that overrides the number of torch threads of bayesrca's calls.
ENV = "BAYESRCA_NUM_THREADS"

F = TypeVar("F", bound=Callable)


def num_threads() -> int:
    """The torch threads of a bayesrca call: ``BAYESRCA_NUM_THREADS`` (a positive integer), default 1."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{ENV} must be a positive integer (torch threads per bayesrca call), got {text!r}")
    return value


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, restoring the previous number afterwards."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def thread_policy(fn: F) -> F:
    """Decorate a public entry point: run it under :func:`num_threads` torch threads."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch_threads(num_threads()):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
