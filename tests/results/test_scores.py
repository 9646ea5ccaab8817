"""Tests of bayesrca.results.scores (ScoreResult)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesrca.exceptions import ConfigError
from bayesrca.results import ScoreResult


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    return rng.gamma(2.0, np.array([1.0, 3.0, 0.5]), size=(200, 2, 3))


def test_score_result(scores):
    res = ScoreResult(scores, ["r2", "r1"], ["x", "y", "w"], conditioning="conditional")
    assert res.conditioning == "conditional" and res.rows == res.units == ("r2", "r1")
    table = res.summary()
    assert list(table.columns) == ["row", "node", "mean", "median", "sd", "lower", "upper"]
    assert list(table["row"]) == ["r2"] * 3 + ["r1"] * 3
    assert list(table["node"][:3]) == ["y", "x", "w"]
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    wide = res.median()
    assert list(wide.index) == ["r2", "r1"] and list(wide.columns) == ["x", "y", "w"]
    np.testing.assert_allclose(wide.to_numpy(), np.median(scores, axis=0))
    idata = res.to_inference_data()
    assert idata.posterior["it_score"].dims == ("chain", "draw", "row", "node")
    assert idata.posterior["it_score"].shape == (1, 200, 2, 3)
    assert idata.posterior.attrs["conditioning"] == "conditional"
    assert "<table" in res._repr_html_() and "conditional" in repr(res)
    long = res.to_dataframe()
    assert list(long.columns) == ["draw", "row", "node", "it_score"] and len(long) == 200 * 2 * 3


def test_score_result_method_info_and_defaults(scores):
    res = ScoreResult(scores, [0, 1], ["x", "y", "w"], method_info={"base_score": "upper", "seed": 4})
    assert res.conditioning == "marginal"
    assert dict(res.method_info) == {"base_score": "upper", "seed": 4}
    assert res.to_inference_data().posterior.attrs["base_score"] == "upper"
    assert not hasattr(res, "kind")  # renamed to conditioning


def test_score_result_validation(scores):
    with pytest.raises(ConfigError, match="scores"):
        ScoreResult(scores[0], ["r2", "r1"], ["x", "y", "w"])
    with pytest.raises(ConfigError, match="rows"):
        ScoreResult(scores, ["r2"], ["x", "y", "w"])
    with pytest.raises(ConfigError, match="conditioning"):
        ScoreResult(scores, ["r2", "r1"], ["x", "y", "w"], conditioning="joint")
    with pytest.raises(ConfigError, match="ci_kind"):
        ScoreResult(np.zeros((2, 1, 1)), [0], ["a"]).summary(0.9, ci_kind="x")
