"""Independent pieces of work on any :class:`concurrent.futures.Executor`, or in this process.

One code path for a laptop and a cluster: :meth:`bayesrca.BayesianSCM.fit` hands each node's fit,
and :func:`bayesrca.attribute_anomalies` each batch of anomalies, to :func:`run_tasks`. With
``executor=None`` the tasks run here, one after the other; with a
:class:`~concurrent.futures.ProcessPoolExecutor` or a Dask client's executor
(``distributed.Client(...).get_executor()``) they run on its workers. Every task carries its own
seed (per node, per batch), never one per worker, so the numbers are bit-identical however and
wherever the tasks run.

Workers must be processes: torch's and Pyro's random state is per process, and tasks seed it, so
tasks sharing one process's threads would draw from each other's streams.
:class:`~concurrent.futures.ThreadPoolExecutor` is refused for that reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from typing import Any

from ._warnings import user_stacklevel
from .exceptions import ConfigError

__all__ = ["check_executor", "run_tasks"]


def check_executor(executor: Any) -> Executor | None:
    """``executor`` if it can run bayesrca's tasks (None: in this process), else :class:`ConfigError`."""
    if executor is None:
        return None
    if isinstance(executor, ThreadPoolExecutor):
        raise ConfigError(
            "executor must run tasks in separate processes (torch's random state is per process, and each task "
            "seeds it); use concurrent.futures.ProcessPoolExecutor or a Dask client's get_executor(), or None"
        )
    if not callable(getattr(executor, "submit", None)):
        raise ConfigError(
            f"executor must be a concurrent.futures.Executor (something with submit()), got {type(executor).__name__}"
        )
    return executor


def run_tasks(
    executor: Executor | None,
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    on_result: Callable[[int, Any], None],
) -> None:
    """Call ``fn(*task)`` for every task and hand each result to ``on_result(index, result)``.

    In this process (``executor=None``) in order; on an executor as the results arrive (the
    callback runs here, in the caller's process). ``fn`` must be a module-level function and the
    tasks picklable. Warnings a task raises on a worker are raised again here. The first task
    that fails cancels those not yet started and its exception is raised here.
    """
    if executor is None:
        for i, task in enumerate(tasks):
            on_result(i, fn(*task))
        return
    futures = {executor.submit(_recording, fn, task): i for i, task in enumerate(tasks)}
    try:
        for future in as_completed(futures):
            result, caught = future.result()
            for message, category in caught:  # a worker's warnings, shown here as if raised here
                warnings.warn(message, category, stacklevel=user_stacklevel())
            on_result(futures[future], result)
    finally:
        for future in futures:
            future.cancel()


def _recording(fn: Callable[..., Any], task: tuple) -> tuple[Any, list[tuple[str, type[Warning]]]]:
    """``fn(*task)`` and the warnings it raised (a worker's warnings would stay in its own log)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*task)
    return result, [(str(w.message), w.category) for w in caught]
