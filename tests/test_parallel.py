"""Executors: tasks anywhere, numbers bit-identical to the serial run (same seed, same batches)."""

from __future__ import annotations

import io
import math
import multiprocessing
import pickle
import zipfile
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.attribution.batch import split_chunks
from bayesrca.exceptions import ConfigError
from bayesrca.parallel import check_executor, run_tasks, share

pytestmark = pytest.mark.filterwarnings("ignore::bayesrca.TailEstimateWarning")  # few samples, on purpose

# a nonlinear child of two parents (auto picks among linear, spline and GP families) and
# skewed noise: the paths where layout-dependent arithmetic and importance sampling show up
GRAPH = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d")])


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.exponential(1.0, n), rng.normal(size=n)
    c = np.sin(2 * a) + 0.5 * b**2 + rng.exponential(0.3, n)
    d = 1.5 * c + rng.normal(scale=0.4, size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d})


ANOMALIES = _data(5, seed=7).assign(a=lambda f: f["a"] + np.array([3.0, 0.0, 1.0, 0.0, 2.0]),
                                    b=lambda f: f["b"] + np.array([0.0, 3.0, 0.0, -2.0, 1.0]))


def _saved(scm, tmp_path, name) -> dict:
    """Every array and document of the saved model (exact bytes)."""
    path = tmp_path / f"{name}.bayesrca"
    br.save(scm, path)
    with zipfile.ZipFile(path) as z:
        out = {}
        for member in z.namelist():
            data = z.read(member)
            if member.endswith(".npz"):
                arrays = np.load(io.BytesIO(data))
                out.update({f"{member}:{k}": arrays[k] for k in arrays.files})
            elif member != "manifest.json":  # holds the save time
                out[member] = data
        return out


class _Inline(Executor):
    """An executor that runs each task at submit, in this process (the contract only)."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - handed to the future, as executors do
            future.set_exception(err)
        return future


class _Handle:
    """What a fake cluster hands out for a scattered object."""

    def __init__(self, key: int) -> None:
        self.key = key


class _FakeClient:
    """Records scatter calls and keeps the objects, as a Dask client's worker store would."""

    def __init__(self) -> None:
        self.store: dict = {}
        self.scatters: list = []

    def scatter(self, obj, broadcast=False, hash=True):
        self.scatters.append((type(obj).__name__, broadcast))
        handle = _Handle(len(self.store))
        self.store[handle.key] = obj
        return handle


class _ClusterLike(_Inline):
    """An executor with a ``_client`` (as ``distributed.Client.get_executor()``): handles in the
    arguments are replaced by the stored objects, as Dask replaces futures; the tasks themselves
    are pickled to check what travels with each."""

    def __init__(self) -> None:
        self._client = _FakeClient()
        self.task_bytes: list[int] = []

    def submit(self, fn, /, *args, **kwargs):
        self.task_bytes.append(len(pickle.dumps(args[:2])))  # fn and the task, without the shared objects
        args = tuple(self._client.store[a.key] if isinstance(a, _Handle) else a for a in args)
        return super().submit(fn, *args, **kwargs)


def test_the_model_is_scattered_once_not_sent_per_task(serial_scm):
    """On a Dask-like executor the fitted model goes to the workers once (broadcast), and the tasks
    carry a small reference: numbers identical to the serial run."""
    kwargs = {"seed": 5, "num_mc_samples": 300, "batch_size": 2, "progress": False}
    executor = _ClusterLike()
    clustered = br.attribute_anomalies(serial_scm, "d", ANOMALIES, executor=executor, **kwargs)
    serial = br.attribute_anomalies(serial_scm, "d", ANOMALIES, **kwargs)
    assert np.array_equal(serial.contributions, clustered.contributions)
    assert executor._client.scatters == [("BayesianSCM", True)]
    # an anomaly beyond the training data is a batch of its own, carrying only its conditioned
    # mechanisms (extrapolation="condition"), not the model
    conditioned = {ANOMALIES.index.get_loc(label) for label in clustered.method_info["conditioned"]}
    batches = split_chunks([(i, i, min(i + 2, len(ANOMALIES))) for i in range(0, len(ANOMALIES), 2)], conditioned)
    assert len(executor.task_bytes) == len(batches) > 1 and conditioned
    model_bytes = len(pickle.dumps(serial_scm))
    sizes = dict(zip([first for first, _, _ in batches], executor.task_bytes))  # tasks go out in batch order
    assert all(size < model_bytes / 10 for first, size in sizes.items() if first not in conditioned)
    assert all(sizes[i] < model_bytes / 4 for i in conditioned)  # a node's mechanism, not the model
    executor = _ClusterLike()
    br.attribute_anomalies(serial_scm, "d", ANOMALIES, executor=executor, extrapolation="prior", **kwargs)
    assert len(executor.task_bytes) == math.ceil(len(ANOMALIES) / 2)
    assert max(executor.task_bytes) < len(pickle.dumps(serial_scm)) / 10


def test_share_passes_objects_through_without_a_client():
    assert share(_Inline(), (1, "a")) == (1, "a")
    assert share(_ClusterLike(), ()) == ()


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


@pytest.fixture(scope="module")
def serial_scm():
    return br.BayesianSCM(GRAPH, num_draws=12).fit(_data(), seed=3, progress=False)


def test_thread_pools_and_non_executors_are_refused():
    with ThreadPoolExecutor(1) as threads, pytest.raises(ConfigError, match="separate processes"):
        check_executor(threads)
    with pytest.raises(ConfigError, match="concurrent.futures.Executor"):
        check_executor(4)
    with pytest.raises(ConfigError, match="executor"):
        br.BayesianSCM(GRAPH, num_draws=4).fit(_data(), executor="dask")
    assert check_executor(None) is None


def test_run_tasks_hands_every_result_to_its_index_and_raises_a_task_error():
    got = {}
    run_tasks(_Inline(), divmod, [(7, 2), (9, 4), (1, 1)], got.__setitem__)
    assert got == {0: (3, 1), 1: (2, 1), 2: (1, 0)}
    serial = []
    run_tasks(None, divmod, [(7, 2), (9, 4)], lambda i, r: serial.append((i, r)))
    assert serial == [(0, (3, 1)), (1, (2, 1))]
    with pytest.raises(ZeroDivisionError):
        run_tasks(_Inline(), divmod, [(1, 0)], got.__setitem__)


def _warn_and_square(x):
    import warnings

    warnings.warn(f"task {x}", br.ConvergenceWarning)
    return x * x


def test_a_workers_warnings_are_raised_in_the_caller():
    got = {}
    with pytest.warns(br.ConvergenceWarning, match="task 3") as record:
        run_tasks(_Inline(), _warn_and_square, [(3,)], got.__setitem__)
    assert got == {0: 9}
    assert record[0].filename == __file__  # it points at the caller's line, not into bayesrca


def test_fit_on_processes_is_bit_identical_to_the_serial_fit(serial_scm, pool, tmp_path):
    parallel = br.BayesianSCM(GRAPH, num_draws=12).fit(_data(), seed=3, progress=False, executor=pool)
    a, b = _saved(serial_scm, tmp_path, "serial"), _saved(parallel, tmp_path, "parallel")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]) if isinstance(a[key], np.ndarray) else a[key] == b[key], key
    pd.testing.assert_frame_equal(serial_scm.selection_, parallel.selection_)


def test_attribution_on_processes_is_bit_identical_to_the_serial_run(serial_scm, pool):
    kwargs = {"seed": 5, "num_mc_samples": 300, "batch_size": 2, "progress": False}
    serial = br.attribute_anomalies(serial_scm, "d", ANOMALIES, **kwargs)
    parallel = br.attribute_anomalies(serial_scm, "d", ANOMALIES, executor=pool, **kwargs)
    inline = br.attribute_anomalies(serial_scm, "d", ANOMALIES, executor=_Inline(), **kwargs)
    for other in (parallel, inline):
        assert np.array_equal(serial.contributions, other.contributions)
        assert np.array_equal(serial.it_scores, other.it_scores)
        assert np.array_equal(serial.mc_std_error, other.mc_std_error)
        assert serial.method_info == other.method_info
    # batches change the numbers by float32 rounding at most (each batch seeds itself)
    whole = br.attribute_anomalies(serial_scm, "d", ANOMALIES, **{**kwargs, "batch_size": None})
    np.testing.assert_allclose(whole.contributions, serial.contributions, atol=1e-4)


def test_distribution_change_fits_on_processes_give_the_serial_numbers(pool):
    old, new = _data(200, seed=1), _data(200, seed=2).assign(c=lambda f: f["c"] + 1.0)
    kwargs = {"num_draws": 8, "num_mc_samples": 200, "seed": 4, "progress": False}
    serial = br.distribution_change(GRAPH, old, new, "d", **kwargs)
    parallel = br.distribution_change(GRAPH, old, new, "d", executor=pool, **kwargs)
    assert serial.method_info["active_nodes"] and serial.method_info == parallel.method_info
    assert np.array_equal(serial.contributions, parallel.contributions)


def test_intrinsic_causal_influence_on_a_pool_gives_the_serial_numbers(pool, serial_scm):
    """The nested Monte Carlo engine's coalitions as tasks: bit-identical (exact and permutation Shapley)."""
    for shapley in ("exact", "permutation"):
        kwargs = {"seed": 4, "num_outer": 64, "num_inner": 4, "engine": "mc", "shapley": shapley}
        serial = br.intrinsic_causal_influence(serial_scm, "d", **kwargs)
        parallel = br.intrinsic_causal_influence(serial_scm, "d", executor=pool, **kwargs)
        assert np.array_equal(serial.contributions, parallel.contributions)
        assert np.array_equal(serial.total, parallel.total)
    clustered = br.intrinsic_causal_influence(serial_scm, "d", executor=_ClusterLike(), **kwargs)
    assert np.array_equal(serial.contributions, clustered.contributions)
    with pytest.raises(ConfigError, match="separate processes"), ThreadPoolExecutor(1) as threads:
        br.intrinsic_causal_influence(serial_scm, "d", executor=threads)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_batch_size_is_validated(serial_scm, bad):
    with pytest.raises(ConfigError, match="batch_size"):
        br.attribute_anomalies(serial_scm, "d", ANOMALIES, batch_size=bad)


@pytest.mark.slow
def test_a_dask_cluster_gives_the_serial_numbers(serial_scm):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = client.get_executor()
        fitted = br.BayesianSCM(GRAPH, num_draws=12).fit(_data(), seed=3, progress=False, executor=executor)
        kwargs = {"seed": 5, "num_mc_samples": 300, "batch_size": 3, "progress": False}
        on_dask = br.attribute_anomalies(fitted, "d", ANOMALIES, executor=executor, **kwargs)
    serial = br.attribute_anomalies(serial_scm, "d", ANOMALIES, **kwargs)
    assert np.array_equal(serial.contributions, on_dask.contributions)
    assert np.array_equal(serial.it_scores, on_dask.it_scores)
