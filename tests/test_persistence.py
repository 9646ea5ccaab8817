"""Saving and loading fitted models: identical results, no pickle, clear errors for bad files."""

from __future__ import annotations

import io
import json
import zipfile

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca.exceptions import ConfigError, DataError, GraphError, NotFittedError
from bayesrca.persistence import FORMAT_VERSION


def _data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    a = rng.exponential(1.0, n)
    b = np.sin(a) + 0.5 * a + rng.normal(0, 0.2, n)
    c = 2.0 * b - a + rng.gumbel(0, 0.3, n)
    return nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")]), pd.DataFrame({"a": a, "b": b, "c": c})


@pytest.mark.parametrize("mechanisms", ["auto", "gaussian", "spline", "gp"])
def test_round_trip_gives_identical_attributions_and_samples(tmp_path, mechanisms):
    graph, frame = _data()
    scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=40).fit(frame, seed=1)
    path = br.save(scm, tmp_path / "model.bayesrca")
    loaded = br.load(path)
    anomaly = pd.DataFrame({"a": [6.0], "b": [4.0], "c": [9.0]})
    before = br.attribute_anomalies(scm, "c", anomaly, seed=7, num_mc_samples=500)
    after = br.attribute_anomalies(loaded, "c", anomaly, seed=7, num_mc_samples=500)
    np.testing.assert_array_equal(before.contributions, after.contributions)
    np.testing.assert_array_equal(before.it_scores, after.it_scores)
    pd.testing.assert_frame_equal(scm.sample(50, seed=2), loaded.sample(50, seed=2))
    pd.testing.assert_frame_equal(scm.summary(), loaded.summary())
    pd.testing.assert_frame_equal(scm.training_data_, loaded.training_data_)
    assert loaded.seed_ == scm.seed_ and loaded.num_draws_ == 40


def test_missing_training_values_and_rows_used_round_trip(tmp_path):
    """NaN cells of the training data are saved as NaN, and rows_used_ comes back with them."""
    graph, frame = _data()
    frame = frame.mask(np.random.default_rng(4).random(frame.shape) < 0.1)
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=20).fit(frame, seed=1)
    loaded = br.load(br.save(scm, tmp_path / "holes.bayesrca"))
    assert loaded.rows_used_ == scm.rows_used_ and min(scm.rows_used_.values()) < len(frame)
    pd.testing.assert_frame_equal(scm.training_data_, loaded.training_data_)
    anomaly = pd.DataFrame({"a": [np.nan], "b": [4.0], "c": [9.0]})
    before = br.attribute_anomalies(scm, "c", anomaly, seed=7)
    after = br.attribute_anomalies(loaded, "c", anomaly, seed=7)
    np.testing.assert_array_equal(before.contributions, after.contributions)


def test_integer_node_names_and_a_constant_column_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({0: rng.normal(size=100), 1: np.full(100, 5.0)})
    frame[2] = frame[0] + frame[1] + rng.normal(0, 0.1, 100)
    graph = nx.DiGraph([(0, 2), (1, 2)])
    with pytest.warns(br.ConstantColumnWarning):
        scm = br.BayesianSCM(graph, num_draws=20).fit(frame, seed=0)
    loaded = br.load(br.save(scm, tmp_path / "m.bayesrca"))
    assert list(loaded.graph_.nodes) == list(scm.graph_.nodes) == [0, 2, 1]
    row = pd.DataFrame({0: [0.0], 1: [5.5], 2: [5.5]})
    np.testing.assert_array_equal(
        br.attribute_anomalies(scm, 2, row, seed=1).contributions,
        br.attribute_anomalies(loaded, 2, row, seed=1).contributions,
    )


def test_loaded_model_still_detects_a_changed_graph(tmp_path):
    graph, frame = _data()
    scm = br.BayesianSCM(graph, mechanisms="gaussian", num_draws=10).fit(frame, seed=0)
    loaded = br.load(br.save(scm, tmp_path / "m"))
    loaded.graph.add_edge("c", "d")
    with pytest.raises(GraphError):
        loaded.check_fitted()


def test_unsaveable_models_are_refused(tmp_path):
    graph, frame = _data()
    with pytest.raises(NotFittedError):
        br.save(br.BayesianSCM(graph), tmp_path / "m")

    class MyLinear(br.LinearANM):
        pass

    scm = br.BayesianSCM(graph, mechanisms={"c": MyLinear("gaussian")}, num_draws=10).fit(frame, seed=0)
    with pytest.raises(ConfigError, match="MyLinear"):
        br.save(scm, tmp_path / "m")
    tuples = pd.DataFrame({("x", 1): frame["a"], ("y", 2): frame["b"]})
    scm = br.BayesianSCM(nx.DiGraph([(("x", 1), ("y", 2))]), mechanisms="gaussian", num_draws=10).fit(tuples, seed=0)
    with pytest.raises(ConfigError, match="node names"):
        br.save(scm, tmp_path / "m")


def _saved(tmp_path):
    graph, frame = _data()
    return br.save(br.BayesianSCM(graph, mechanisms="gaussian", num_draws=10).fit(frame, seed=0), tmp_path / "m.bayesrca")


def _rewrite(path, manifest=None, arrays=None):
    with zipfile.ZipFile(path) as archive:
        old_manifest, old_arrays = archive.read("manifest.json"), archive.read("arrays.npz")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest) if manifest is not None else old_manifest)
        archive.writestr("arrays.npz", arrays if arrays is not None else old_arrays)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        br.load(tmp_path / "nothing.bayesrca")
    path = _saved(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.bayesrca"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a readable bayesrca model file"):
        br.load(truncated)
    text = tmp_path / "text.bayesrca"
    text.write_text("hello")
    with pytest.raises(DataError, match="not a readable"):
        br.load(text)


def test_other_major_versions_and_foreign_files_are_rejected(tmp_path):
    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    _rewrite(path, manifest={**manifest, "format_version": [FORMAT_VERSION[0] + 1, 0]})
    with pytest.raises(DataError, match="format version"):
        br.load(path)
    _rewrite(path, manifest={**manifest, "format": "something-else"})
    with pytest.raises(DataError, match="not a bayesrca model file"):
        br.load(path)
    entry = manifest["mechanisms"][0]
    _rewrite(path, manifest={**manifest, "mechanisms": [{**entry, "class": "os.system"}, *manifest["mechanisms"][1:]]})
    with pytest.raises(DataError, match="damaged"):
        br.load(path)
    _rewrite(path, manifest={**manifest, "graph": {**manifest["graph"], "edges": manifest["graph"]["edges"][:-1]}})
    with pytest.raises(DataError, match="damaged"):
        br.load(path)


def test_loading_never_unpickles(tmp_path):
    path = _saved(tmp_path)
    buffer = io.BytesIO()
    np.savez(buffer, training_data=np.array([{"x": 1}], dtype=object))  # an object array needs pickle
    _rewrite(path, arrays=buffer.getvalue())
    with pytest.raises(DataError, match="not a readable"):
        br.load(path)


@pytest.mark.parametrize("noise, cls", [("bootstrap_gpd", "BootstrapGPD"), ("bootstrap", "ResidualKDE")])
def test_bootstrap_noises_round_trip_and_old_kde_models_still_load(tmp_path, noise, cls):
    """The GPD-tailed default round-trips; a model saved with the old ``"bootstrap"`` noise (the
    default before ``"bootstrap_gpd"``, stored with ``noise="bootstrap"`` in its parameters) loads
    as the plain KDE it was fitted with."""
    graph, frame = _data()
    mechs = {"a": br.RootDistribution(noise), "b": br.LinearANM(noise), "c": br.SplineANM(noise)}
    scm = br.BayesianSCM(graph, mechanisms=mechs, num_draws=12).fit(frame, seed=3)
    loaded = br.load(br.save(scm, tmp_path / "m.bayesrca"))
    value = torch.tensor([[-50.0], [0.3], [80.0]], dtype=torch.float64)
    for node in "abc":
        before, after = scm.mechanisms_[node], loaded.mechanisms_[node]
        assert type(after.noise_distribution()).__name__ == cls and after.noise == noise
        assert after.noise_params_.keys() == before.noise_params_.keys()
        for key, tensor in before.noise_params_.items():
            assert torch.equal(tensor, after.noise_params_[key]), (node, key)
        torch.testing.assert_close(after.noise_distribution().log_prob(value), before.noise_distribution().log_prob(value),
                                   rtol=0, atol=0)
        assert after.diagnostics_["inference"] == "bootstrap"
    pd.testing.assert_frame_equal(scm.sample(30, seed=4), loaded.sample(30, seed=4))
