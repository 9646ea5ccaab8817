"""Tests of bayesrca.results.base: the shared PosteriorResult and its validation helpers."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bayesrca.exceptions import ConfigError, DataError
from bayesrca.results import AttributionResult, ContributionResult, PosteriorResult, ScoreResult
from bayesrca.results.base import as_float_array, check_labels

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def base():
    draws = np.random.default_rng(0).normal([[0.0, 2.0, 1.0]], 0.3, size=(40, 2, 3))
    return PosteriorResult(draws, ["u", 9], ["a", "b", "c"], method_info={"seed": 3})


def test_every_result_is_a_posterior_result():
    for cls in (AttributionResult, ContributionResult, ScoreResult):
        assert issubclass(cls, PosteriorResult)


def test_base_attributes(base):
    assert base.draws.shape == (40, 2, 3) and not base.draws.flags.writeable
    assert base.units == ("u", 9) and base.nodes == ("a", "b", "c") and base.num_draws == 40
    assert base.method_info["seed"] == 3
    with pytest.raises(TypeError):
        base.method_info["seed"] = 4
    assert base.unit_position() == 0 and base.unit_position(9) == 1
    with pytest.raises(ConfigError, match="Unknown unit"):
        base.unit_position("x")


def test_base_summary_dataframe_and_reprs(base):
    table = base.summary(0.8, ci_kind="hdi")
    assert list(table.columns) == ["unit", "node", "mean", "median", "sd", "lower", "upper"]
    assert list(table["node"][:3]) == ["b", "c", "a"]
    long = base.to_dataframe()
    assert list(long.columns) == ["draw", "unit", "node", "value"] and len(long) == 40 * 2 * 3
    np.testing.assert_array_equal(long["value"], base.draws.ravel())
    assert "PosteriorResult: 2 units, 3 nodes, 40 draws" in repr(base)
    assert "<table" in base._repr_html_()
    with pytest.raises(ConfigError, match="ci_kind"):
        base.summary(ci_kind="central")


def test_base_inference_data(base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        post = base.to_inference_data().posterior
    assert post["value"].dims == ("chain", "draw", "unit", "node")
    assert post.attrs["seed"] == "3"


def test_validation_helpers():
    arr = as_float_array([[1, 2]], "x", (None, 2), "(a, b)")
    assert arr.dtype == float and not arr.flags.writeable
    with pytest.raises(ConfigError, match="shape"):
        as_float_array([[1, 2]], "x", (None, 3), "(a, b)")
    with pytest.raises(ConfigError, match="numeric"):
        as_float_array([["a", None]], "x", (None, 2), "(a, b)")
    with pytest.raises(ConfigError, match="non-empty"):
        as_float_array(np.zeros((0, 2)), "x", (None, 2), "(a, b)")
    with pytest.raises(DataError, match="NaN"):
        as_float_array([[np.nan, 1.0]], "x", (None, 2), "(a, b)")
    assert check_labels(["a", "b"], "nodes", 2) == ("a", "b")
    with pytest.raises(ConfigError, match="unique"):
        check_labels(["a", "a"], "nodes", 2)
    with pytest.raises(ConfigError, match="strings"):
        check_labels(["a", 1], "nodes", 2)
    with pytest.raises(ConfigError, match="not the string"):
        check_labels("ab", "rows", 2)
    with pytest.raises(ConfigError, match="rows has 1 entries"):
        check_labels(["a"], "rows", 2)


def test_base_rejects_bad_draws():
    with pytest.raises(ConfigError, match="draws"):
        PosteriorResult(np.zeros((3, 2)), ["u", "v"], ["a", "b"])
    with pytest.raises(ConfigError, match="units"):
        PosteriorResult(np.zeros((3, 2, 2)), ["u"], ["a", "b"])


def test_importing_results_does_not_import_matplotlib():
    # Load bayesrca.results under a stub package so that other modules that
    # bayesrca/__init__.py may import cannot affect the answer.
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('bayesrca'); pkg.__path__ = [{str(ROOT / 'bayesrca')!r}]\n"
        "sys.modules['bayesrca'] = pkg\n"
        "import bayesrca.results, bayesrca.plotting, bayesrca.stats\n"
        "print('matplotlib' in sys.modules, 'arviz' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
