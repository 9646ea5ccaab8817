"""Independent pieces of work on any :class:`concurrent.futures.Executor`, or in this process.

One code path for a laptop and a cluster: :meth:`bayesrca.BayesianSCM.fit` hands each node's fit,
and :func:`bayesrca.attribute_anomalies` each batch of anomalies, to :func:`run_tasks`. With
``executor=None`` the tasks run here, one after the other; with a
:class:`~concurrent.futures.ProcessPoolExecutor` or a Dask client's executor
(``distributed.Client(...).get_executor()``) they run on its workers. Every task carries its own
seed (per node, per batch), never one per worker, so the numbers are bit-identical however and
wherever the tasks run.

Objects every task needs (the fitted model) are passed once as ``shared``: on a Dask executor
they are scattered to every worker once (``client.scatter(..., broadcast=True)``) and each task
carries only a reference; a :class:`~concurrent.futures.ProcessPoolExecutor` has no such store,
so there they travel with each task (make the tasks few and large: ``batch_size``).

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

__all__ = ["check_executor", "run_tasks", "share"]


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
    shared: tuple = (),
) -> None:
    """Call ``fn(*shared, *task)`` for every task and hand each result to ``on_result(index, result)``.

    In this process (``executor=None``) in order; on an executor as the results arrive (the
    callback runs here, in the caller's process). ``fn`` must be a module-level function and the
    tasks picklable. ``shared`` objects reach a Dask cluster's workers once (:func:`share`), not
    with every task. Warnings a task raises on a worker are raised again here. The first task
    that fails cancels those not yet started and its exception is raised here.
    """
    if executor is None:
        for i, task in enumerate(tasks):
            on_result(i, fn(*shared, *task))
        return
    handles = share(executor, shared)
    futures = {executor.submit(_recording, fn, task, *handles): i for i, task in enumerate(tasks)}
    try:
        for future in as_completed(futures):
            result, caught = future.result()
            for message, category in caught:  # a worker's warnings, shown here as if raised here
                warnings.warn(message, category, stacklevel=user_stacklevel())
            on_result(futures[future], result)
    finally:
        for future in futures:
            future.cancel()


def share(executor: Executor, objects: tuple) -> tuple:
    """What to pass to ``executor.submit`` for ``objects`` every task needs.

    A Dask client's executor (``distributed.Client.get_executor()``, which keeps its client as
    ``_client``) gets each object scattered to all workers once, and the futures stand for them:
    Dask hands a task the worker's copy. Any other executor gets the objects themselves (pickled
    with each task).
    """
    scatter = getattr(getattr(executor, "_client", None), "scatter", None)
    if not objects or not callable(scatter):
        return tuple(objects)
    return tuple(scatter(obj, broadcast=True, hash=False) for obj in objects)


def _recording(fn: Callable[..., Any], task: tuple, *shared: Any) -> tuple[Any, list[tuple[str, type[Warning]]]]:
    """``fn(*shared, *task)`` and the warnings it raised (a worker's warnings would stay in its own log)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*shared, *task)
    return result, [(str(w.message), w.category) for w in caught]
