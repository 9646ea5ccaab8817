"""The thread policy: one torch thread per call by default, BAYESRCA_NUM_THREADS to change it."""

from __future__ import annotations

import pytest
import torch

from bayesrca.exceptions import ConfigError
from bayesrca.threads import ENV, num_threads, thread_policy, torch_threads


@thread_policy
def _threads_inside() -> int:
    return torch.get_num_threads()


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_one_thread_by_default_and_the_callers_setting_restored(monkeypatch, restore_threads):
    monkeypatch.delenv(ENV, raising=False)
    torch.set_num_threads(2)
    assert _threads_inside() == 1
    assert torch.get_num_threads() == 2


def test_the_environment_variable_sets_the_threads_at_each_call(monkeypatch, restore_threads):
    torch.set_num_threads(1)
    monkeypatch.setenv(ENV, "2")
    assert num_threads() == 2 and _threads_inside() == 2
    monkeypatch.setenv(ENV, " 3 ")
    assert _threads_inside() == 3
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_a_bad_setting_says_what_to_fix(monkeypatch, bad):
    monkeypatch.setenv(ENV, bad)
    with pytest.raises(ConfigError, match=ENV):
        _threads_inside()


def test_torch_threads_restores_after_an_error(restore_threads):
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == 2


def test_public_entry_points_follow_the_policy():
    import bayesrca as br

    for fn in (br.BayesianSCM.fit, br.BayesianSCM.sample, br.attribute_anomalies, br.distribution_change,
               br.intrinsic_causal_influence, br.attribute_mean_deviation, br.outlier_scores, br.reference_it_scores):
        assert getattr(fn, "__wrapped__", None) is not None, fn.__name__


def test_warnings_of_decorated_calls_point_at_the_callers_line():
    import networkx as nx
    import numpy as np
    import pandas as pd

    import bayesrca as br

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"a": rng.normal(size=50), "b": np.ones(50)})
    with pytest.warns(br.ConstantColumnWarning) as record:
        br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="gaussian", num_draws=4).fit(data, seed=0)
    assert [w.filename for w in record if issubclass(w.category, br.ConstantColumnWarning)] == [__file__]
