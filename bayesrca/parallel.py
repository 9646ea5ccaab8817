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

import torch

from ._warnings import user_stacklevel
from .threads import torch_threads
from .exceptions import ConfigError

__all__ = ["check_executor", "run_tasks", "share", "ExecutorSetFunction"]


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


class ExecutorSetFunction:
    """A set function whose coalitions are evaluated as tasks on an executor.

    Each call splits its coalitions into ``num_blocks`` row blocks, evaluates every block as a
    task (the set function itself is shared: scattered once per call on a Dask cluster) and
    concatenates the values in order. Exact only for a set function whose value of a coalition does
    not depend on the other coalitions of the call (it holds its random draws, and evaluates each
    coalition on its own): then the values, and every Shapley value built from them, are
    bit-identical to calling it directly.

    Parameters
    ----------
    function : callable
        ``masks (C, n) bool -> values (C, ...)``; picklable.
    executor : concurrent.futures.Executor
        Runs the blocks (processes).
    num_blocks : int, default 4
        Tasks per call.
    """

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], executor: Executor, num_blocks: int = 4) -> None:
        self.function, self.executor, self.num_blocks = function, executor, num_blocks

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        blocks = torch.tensor_split(masks, min(self.num_blocks, masks.shape[0]))
        values: list = [None] * len(blocks)
        tasks = [(block, torch.get_num_threads()) for block in blocks]
        run_tasks(self.executor, _evaluate_block, tasks, values.__setitem__, shared=(self.function,))
        return torch.cat(values)


def _evaluate_block(function: Callable[[torch.Tensor], torch.Tensor], masks: torch.Tensor, threads: int) -> torch.Tensor:
    """One block of coalitions (a task), with the caller's number of torch threads."""
    with torch.no_grad(), torch_threads(threads):
        return function(masks)
