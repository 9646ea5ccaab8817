"""Tests of bayesrca.stats: intervals, summaries of draws, P(largest), tidy tables, InferenceData."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesrca import stats
from bayesrca.exceptions import ConfigError


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.9", 0.0, 1.0, None, True, float("nan")])
def test_check_interval_args_rejects_bad_probabilities(bad):
    with pytest.raises(ConfigError, match="ci_prob"):
        stats.check_interval_args(bad)
    with pytest.raises(ConfigError, match="inner_prob"):
        stats.check_interval_args(bad, name="inner_prob")


def test_check_interval_args_normalises_the_kind():
    assert stats.check_interval_args(0.9) == "eti"
    assert stats.check_interval_args(np.float32(0.5), "HDI") == "hdi"
    for bad in ("median", "", None, 3):
        with pytest.raises(ConfigError, match="ci_kind"):
            stats.check_interval_args(0.9, bad)
    assert stats.CI_KINDS == ("eti", "hdi")


def test_eti_is_the_central_quantiles():
    draws = np.random.default_rng(0).normal(size=(1000, 3))
    lower, upper = stats.interval(draws, 0.8, "eti")
    np.testing.assert_allclose(lower, np.quantile(draws, 0.1, axis=0))
    np.testing.assert_allclose(upper, np.quantile(draws, 0.9, axis=0))


def test_hdi_matches_arviz_and_is_narrower_on_skewed_draws():
    draws = np.random.default_rng(1).exponential(size=(2000, 2))
    lower, upper = stats.interval(draws, 0.9, "hdi")
    eti_lower, eti_upper = stats.interval(draws, 0.9, "eti")
    assert ((upper - lower) < (eti_upper - eti_lower)).all()
    np.testing.assert_allclose([lower[0], upper[0]], _arviz().hdi(draws[:, 0], hdi_prob=0.9))


def test_summarise_draws():
    draws = np.arange(12.0).reshape(4, 3)
    out = stats.summarise_draws(draws, 0.5)
    assert list(out) == ["mean", "median", "sd", "lower", "upper"]
    np.testing.assert_allclose(out["mean"], draws.mean(axis=0))
    np.testing.assert_allclose(out["sd"], draws.std(axis=0, ddof=1))
    assert stats.summarise_draws(draws[:1], 0.5)["sd"].tolist() == [0.0, 0.0, 0.0]  # one draw: ddof 0


def test_top_probability_splits_ties():
    draws = np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, -1.0, 3.0]])
    prob = stats.top_probability(draws)
    np.testing.assert_allclose(prob, [(0.5 + 1 + 1 / 3) / 4, (0.5 + 1 / 3) / 4, (1 / 3 + 1) / 4])
    assert stats.top_probability(draws[:, None, :]).shape == (1, 3)


def test_tidy_summary_sorts_within_groups():
    draws = np.array([[[1.0, -3.0, 2.0], [0.0, 1.0, 2.0]]] * 3)  # (3 draws, 2 groups, 3 nodes)
    table = stats.tidy_summary(draws, ["g", 7], ["a", "b", "c"], "group", 0.9, "eti", extra=np.ones((2, 3)), skip=None)
    assert list(table.columns) == ["group", "node", "mean", "median", "sd", "lower", "upper", "extra"]
    assert list(table["group"]) == ["g"] * 3 + [7] * 3
    assert list(table["node"]) == ["c", "a", "b", "c", "b", "a"]
    by_size = stats.tidy_summary(draws, ["g", 7], ["a", "b", "c"], "group", 0.9, "eti", by_magnitude=True)
    assert list(by_size["node"][:3]) == ["b", "c", "a"]


def test_labels_and_coords():
    assert list(stats.label_index([("a", 1), "b"])) == [("a", 1), "b"]  # tuples stay one label
    assert stats.coord_values([3, 1, 2]) == [3, 1, 2]
    assert stats.coord_values([1, 1]) == ["1", "1"]
    assert stats.coord_values(["x", 2, True]) == ["x", "2", "True"]


def test_inference_data_has_one_chain_and_the_attrs():
    draws = np.random.default_rng(2).normal(size=(50, 2, 3))
    idata = stats.inference_data(
        {"v": (draws, ["unit", "node"]), "total": (draws.sum(axis=(1, 2)), [])},
        {"unit": ["p", "q"], "node": ["a", "b", "c"]},
        {"target": "c"},
    )
    post = idata.posterior
    assert post["v"].dims == ("chain", "draw", "unit", "node") and post["v"].shape == (1, 50, 2, 3)
    assert post["total"].dims == ("chain", "draw")
    assert post.attrs["target"] == "c"
    np.testing.assert_array_equal(post["v"].values[0], draws)


def test_inference_data_on_the_arviz_1_api(monkeypatch):
    """arviz 1.x re-exports arviz-base's ``from_dict`` (groups in one dict, attrs per group), which
    needs Python >= 3.12 as ``arviz``; arviz-base itself installs on 3.11, so the 1.x branch runs
    here against the real function, with ``arviz`` standing in as version 1."""
    import sys
    import types

    arviz_base = pytest.importorskip("arviz_base")
    shim = types.ModuleType("arviz")
    shim.__version__ = "1.0.0"
    shim.from_dict = arviz_base.from_dict
    monkeypatch.setitem(sys.modules, "arviz", shim)
    draws = np.random.default_rng(2).normal(size=(40, 2, 3))
    tree = stats.inference_data(
        {"v": (draws, ["unit", "node"]), "total": (draws.sum(axis=(1, 2)), [])},
        {"unit": ["p", "q"], "node": ["a", "b", "c"]},
        {"target": "c"},
    )
    post = tree["posterior"]
    assert post["v"].dims == ("chain", "draw", "unit", "node") and post["v"].shape == (1, 40, 2, 3)
    assert post["total"].dims == ("chain", "draw")
    assert post.attrs["target"] == "c" and tree.attrs["target"] == "c"
    assert list(post["node"].values) == ["a", "b", "c"]
    np.testing.assert_array_equal(post["v"].values[0], draws)


def test_stats_imports_no_plotting():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(stats.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names]
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not any("matplotlib" in m or "plotting" in m or "results" in m for m in names + modules)
    assert isinstance(stats.label_index(["a"]), pd.Index)
