"""Saving and loading fitted models without pickle.

A model file (``.bayesrca`` by convention) is a zip archive holding two members:

* ``manifest.json`` — format name and version, the bayesrca version that wrote it, the graph
  (nodes and edges), the model's parameters, and per node the mechanism's class name, its
  constructor parameters and its JSON-representable fitted state;
* ``arrays.npz`` — every fitted tensor (posterior draws of coefficients, noise parameters,
  bootstrap atoms, spline knots) and the training data, as plain numeric arrays.

Loading parses JSON and reads the arrays with ``allow_pickle=False``: no code from the file is
ever executed, and only bayesrca's own mechanism classes can be instantiated. A file written by a
different major format version, or a damaged file, raises :class:`~bayesrca.exceptions.DataError`
with a message that says which.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from . import graph as graphs
from .exceptions import ConfigError, DataError
from .mechanisms import Mechanism
from .mechanisms.registry import MECHANISM_CLASSES
from .scm import BayesianSCM

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MECHANISM_CLASSES", "save", "load", "save_scm", "load_scm"]

FORMAT_NAME = "bayesrca-scm"
#: (major, minor): a reader accepts any minor of its own major version.
FORMAT_VERSION = (1, 2)  # 1.1: mechanisms nested in parameters and state (FamilyMixture); 1.2: each FamilyMixture component holds only its own draws (`draw_index_`; 1.1 files still load)
_TENSOR, _ARRAY, _MECHANISM = "__tensor__", "__array__", "__mechanism__"


def save(scm: BayesianSCM, path: str | Path) -> Path:
    """Write a fitted :class:`~bayesrca.BayesianSCM` to ``path`` (see the module docstring).

    Read it back with :func:`load`; the same seed then gives identical attributions.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    path : str or Path
        The file to write (``.bayesrca`` by convention); an existing file is replaced.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NotFittedError
        If the model is not fitted.
    ConfigError
        If a node name is not a string or an integer, or a mechanism is not one of bayesrca's
        built-in classes (a user-defined class could not be re-created without running its code).
    """
    if not isinstance(scm, BayesianSCM):
        raise ConfigError(f"save needs a fitted BayesianSCM, got {type(scm).__name__}")
    scm.check_fitted()
    nodes = list(scm.graph_.nodes)
    bad = [n for n in nodes if not isinstance(n, (str, int)) or isinstance(n, bool)]
    if bad:
        raise ConfigError(f"only string or integer node names can be saved; got {bad!r}. Rename the nodes.")
    arrays: dict[str, np.ndarray] = {}
    mechanisms = []
    for i, node in enumerate(scm.nodes_):
        mech = scm.mechanisms_[node]
        _check_builtin(mech, node)
        entry = _encode_mechanism(mech, f"mech{i}", arrays)
        mechanisms.append({"node": node, **entry})
    frame = scm.training_data_
    arrays["training_data"] = frame.to_numpy(dtype=np.float64)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": list(FORMAT_VERSION),
        "bayesrca_version": _version(),
        "graph": {"nodes": nodes, "edges": [list(e) for e in scm.graph_.edges]},
        "params": {"num_draws": scm.num_draws, "constant_noise_scale": scm.constant_noise_scale,
                   "averaging": scm.averaging, "tail_pooling": scm.tail_pooling,
                   "mechanisms": scm.mechanisms if isinstance(scm.mechanisms, str) else None},
        "fitted": {"nodes": list(scm.nodes_), "parents": [list(scm.parents_[n]) for n in scm.nodes_],
                   "num_draws": scm.num_draws_, "seed": scm.seed_,
                   "graph_fingerprint": scm.graph_fingerprint_, "training_columns": list(frame.columns)},
        "mechanisms": mechanisms,
        "selection": json.loads(scm.selection_.to_json(orient="split")) if len(scm.selection_) else None,
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the first kwarg as allow_pickle
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, allow_nan=True))
        archive.writestr("arrays.npz", buffer.getvalue())
    return path


def load(path: str | Path) -> BayesianSCM:
    """Read a model written by :func:`save`; returns a fitted :class:`~bayesrca.BayesianSCM`.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save` (any 1.x format version).

    Returns
    -------
    BayesianSCM
        The fitted model, restored through :meth:`~bayesrca.BayesianSCM.from_fitted_state`.

    Raises
    ------
    DataError
        If the file does not exist, is not a bayesrca model file, is damaged, or was written by a
        different major format version.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            arrays = dict(np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise DataError(f"{str(path)!r} is not a readable bayesrca model file ({type(err).__name__}: {err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DataError(f"{str(path)!r} is not a bayesrca model file (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if not (isinstance(version, list) and version and version[0] == FORMAT_VERSION[0]):
        raise DataError(
            f"{str(path)!r} was written in model format version {version} (bayesrca "
            f"{manifest.get('bayesrca_version')}); this bayesrca ({_version()}) reads format version "
            f"{FORMAT_VERSION[0]}.x. Refit the model, or load it with a matching bayesrca version."
        )
    try:
        return _rebuild(manifest, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise DataError(f"{str(path)!r} is damaged: {type(err).__name__}: {err}") from err


def _rebuild(manifest: dict, arrays: dict[str, np.ndarray]) -> BayesianSCM:
    graph = nx.DiGraph()
    graph.add_nodes_from(manifest["graph"]["nodes"])
    graph.add_edges_from(tuple(e) for e in manifest["graph"]["edges"])
    fitted, params = manifest["fitted"], manifest["params"]
    if json.loads(json.dumps(graphs.graph_fingerprint(graph))) != fitted["graph_fingerprint"]:
        raise ValueError("the stored graph does not match its fingerprint")
    mechanisms: dict[Hashable, Mechanism] = {}
    for entry in manifest["mechanisms"]:
        mechanisms[entry["node"]] = _decode_mechanism(entry, arrays)
    selection = manifest.get("selection")
    scm = BayesianSCM.from_fitted_state(
        graph,
        mechanisms,
        nodes=fitted["nodes"],
        num_draws=int(fitted["num_draws"]),
        training_data=pd.DataFrame(arrays["training_data"], columns=fitted["training_columns"]),
        seed=fitted["seed"],
        selection=pd.read_json(io.StringIO(json.dumps(selection)), orient="split") if selection else None,
        params={"mechanisms": params["mechanisms"], "num_draws": params["num_draws"],
                "constant_noise_scale": params["constant_noise_scale"],
                # files written before model averaging (format 1.0) chose one family per node
                "averaging": params.get("averaging", "none"),
                # files written before the pooled tail prior hold tails fitted one by one
                "tail_pooling": params.get("tail_pooling", False)},
    )
    if [list(scm.parents_[n]) for n in scm.nodes_] != fitted["parents"]:
        raise ValueError("the parents' order differs from the one the model was fitted with")
    return scm


#: Names kept for compatibility: ``save_scm`` is :func:`save`, ``load_scm`` is :func:`load`.
save_scm = save
load_scm = load


def _check_builtin(mech: Mechanism, node: Any) -> None:
    name = type(mech).__name__
    if MECHANISM_CLASSES.get(name) is not type(mech):
        raise ConfigError(
            f"node {node!r} uses {name}, which is not a built-in bayesrca mechanism; only "
            f"{sorted(MECHANISM_CLASSES)} can be saved"
        )


def _encode_mechanism(mech: Mechanism, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Class name, constructor parameters and (when fitted) learned state of a mechanism."""
    params = {k: _encode(v, f"{key}/params/{k}", arrays) for k, v in mech.get_params().items()}
    state = {k: _encode(v, f"{key}/{k}", arrays) for k, v in mech.fitted_state().items()} if mech.is_fitted else None
    return {"class": type(mech).__name__, "params": params, "state": state}


def _decode_mechanism(entry: dict, arrays: dict[str, np.ndarray]) -> Mechanism:
    mech_cls = MECHANISM_CLASSES.get(entry["class"])
    if mech_cls is None:
        raise ValueError(f"unknown mechanism class {entry['class']!r}")
    params = {key: _decode(value, arrays) for key, value in entry["params"].items()}
    if entry["state"] is None:
        return mech_cls(**params)
    state = {key: _decode(value, arrays) for key, value in entry["state"].items()}
    return mech_cls.from_fitted_state(params, state)


def _encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON for scalars and containers; tensors and arrays go to ``arrays`` under ``key``."""
    if isinstance(value, Mechanism):  # the components of a FamilyMixture
        _check_builtin(value, key)
        return {_MECHANISM: _encode_mechanism(value, key, arrays)}
    if isinstance(value, torch.Tensor):
        arrays[key] = value.detach().cpu().numpy()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {_ARRAY: key}
    if isinstance(value, dict):
        return {"__dict__": [[str(k), _encode(v, f"{key}/{k}", arrays)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"__tuple__" if isinstance(value, tuple) else "__list__": [_encode(v, f"{key}/{j}", arrays) for j, v in enumerate(value)]}
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"cannot save fitted state {key!r} of type {type(value).__name__}")


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if _TENSOR in value:
            return torch.from_numpy(np.array(arrays[value[_TENSOR]]))
        if _ARRAY in value:
            return np.array(arrays[value[_ARRAY]])
        if "__dict__" in value:
            return {k: _decode(v, arrays) for k, v in value["__dict__"]}
        if "__tuple__" in value:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__list__" in value:
            return [_decode(v, arrays) for v in value["__list__"]]
        if _MECHANISM in value:
            return _decode_mechanism(value[_MECHANISM], arrays)
        raise ValueError(f"unknown encoded value {sorted(value)}")
    return value


def _version() -> str:
    from . import __version__

    return __version__
