"""Tests of bayesrca.mechanisms.tail_pooling: one prior for the GPD tail shapes of a model."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca.mechanisms.tail_pooling import POOL_GRID, pool_tail_shapes


def _system(heavy: bool = False, n: int = 100, seed: int = 0) -> tuple[nx.DiGraph, pd.DataFrame]:
    """A chain of six nodes with exponential noise (the last one Student-t(2) with ``heavy``)."""
    rng = np.random.default_rng(seed)
    graph = nx.DiGraph([(f"X{i}", f"X{i + 1}") for i in range(5)])
    cols, prev = {}, np.zeros(n)
    for i in range(6):
        noise = rng.standard_t(2, n) if heavy and i == 5 else rng.exponential(1.0, n)
        prev = 0.5 * prev + noise
        cols[f"X{i}"] = prev
    return graph, pd.DataFrame(cols)


def _fit(graph, data, pooling: bool, num_draws: int = 400, seed: int = 0) -> br.BayesianSCM:
    return br.BayesianSCM(graph, mechanisms="linear", num_draws=num_draws, tail_pooling=pooling).fit(data, seed=seed)


def _shapes(scm, side: str = "upper") -> torch.Tensor:
    """``(nodes, D)``: every node's tail shape per draw."""
    return torch.stack([scm.mechanisms_[n].noise_params_[f"shape_{side}"] for n in scm.nodes_])


def test_pooling_draws_tails_from_the_exact_pooled_posterior():
    """Per tail, P(shape = 0) over the draws is E[pi B / (pi B + 1 - pi) | data] under the grid posterior of pi."""
    graph, data = _system()
    scm = _fit(graph, data, pooling=False, num_draws=20_000)
    tails = [scm.mechanisms_[n]._tail_pool["upper"] for n in scm.nodes_]
    pool_tail_shapes(scm.mechanisms_, 20_000, seed=3)
    log_bf = torch.tensor([t.log_bf for t in tails], dtype=torch.float64)
    grid = (torch.arange(POOL_GRID, dtype=torch.float64) + 0.5) / POOL_GRID
    post = torch.softmax(torch.logaddexp(grid.log()[:, None] + log_bf, torch.log1p(-grid)[:, None]).sum(-1), 0)
    expected = (post[:, None] * torch.sigmoid(torch.logit(grid)[:, None] + log_bf)).sum(0)
    # a slab draw in the shape-0 cell is clamped to 0 when its jitter is negative (half of them)
    row0 = torch.tensor([float(t.slab.reshape(t.log_scale.shape)[0].sum()) for t in tails], dtype=torch.float64)
    expected = expected + (1 - expected) * row0 / 2
    observed = (_shapes(scm) == 0).double().mean(-1)
    torch.testing.assert_close(observed, expected, atol=0.012, rtol=0)  # 4 binomial sd at 20,000 draws
    # the tails of one draw are correlated through the shared pi: all light together more often than independently
    all_light = float((_shapes(scm) == 0).all(0).double().mean())
    assert all_light > float(expected.prod()) + 0.02


def test_light_tailed_system_gets_more_draws_with_every_tail_light():
    graph, data = _system()
    alone, pooled = _fit(graph, data, pooling=False), _fit(graph, data, pooling=True)
    share = {name: float((_shapes(m) == 0).all(0).double().mean()) for name, m in (("alone", alone), ("pooled", pooled))}
    assert share["pooled"] > 2 * share["alone"], share
    info = pooled.mechanisms_["X0"].diagnostics_
    assert 0.5 < info["tail_pool_exponential_upper"] < 1.0
    assert info["tail_shape_upper"] == pytest.approx(float(pooled.mechanisms_["X0"].noise_params_["shape_upper"].mean()))


def test_a_clearly_heavy_tail_stays_heavy_when_pooled_with_light_ones():
    graph, data = _system(heavy=True, n=2000)
    pooled = _fit(graph, data, pooling=True, num_draws=200)
    assert float((pooled.mechanisms_["X5"].noise_params_["shape_upper"] > 0).double().mean()) > 0.95
    assert float((pooled.mechanisms_["X5"].noise_params_["shape_lower"] > 0).double().mean()) > 0.95


def test_pooling_is_seeded_and_off_leaves_each_tail_alone():
    graph, data = _system()
    a, b = _fit(graph, data, pooling=True, num_draws=50), _fit(graph, data, pooling=True, num_draws=50)
    torch.testing.assert_close(_shapes(a), _shapes(b), rtol=0, atol=0)
    off = _fit(graph, data, pooling=False, num_draws=50)
    assert not torch.equal(_shapes(off), _shapes(a))
    assert "tail_pool_exponential_upper" not in off.mechanisms_["X0"].diagnostics_


def test_one_tail_per_side_is_left_as_fitted():
    rng = np.random.default_rng(1)
    graph = nx.DiGraph()
    graph.add_node("A")
    mechanisms = {"A": br.RootDistribution("bootstrap_gpd")}
    data = pd.DataFrame({"A": rng.exponential(size=300)})
    kwargs = {"mechanisms": mechanisms, "num_draws": 30}
    pooled = br.BayesianSCM(graph, tail_pooling=True, **kwargs).fit(data, seed=0)
    alone = br.BayesianSCM(graph, tail_pooling=False, **kwargs).fit(data, seed=0)
    torch.testing.assert_close(pooled.mechanisms_["A"].noise_params_["shape_upper"],
                               alone.mechanisms_["A"].noise_params_["shape_upper"], rtol=0, atol=0)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_tail_pooling_must_be_a_bool(value):
    graph, data = _system(n=50)
    with pytest.raises(br.ConfigError, match="tail_pooling"):
        br.BayesianSCM(graph, mechanisms="linear", num_draws=5, tail_pooling=value).fit(data, seed=0)


def test_saved_model_keeps_the_pooled_draws(tmp_path):
    graph, data = _system(n=80)
    scm = _fit(graph, data, pooling=True, num_draws=20)
    br.save(scm, tmp_path / "m.bayesrca")
    loaded = br.load(tmp_path / "m.bayesrca")
    assert loaded.tail_pooling is True
    torch.testing.assert_close(_shapes(loaded), _shapes(scm), rtol=0, atol=0)


def test_pooled_draws_do_not_depend_on_the_order_the_node_fits_finish(monkeypatch):
    """An executor hands back node fits as they finish: the pooled draws must not follow that order."""
    import bayesrca.scm as scm_module

    graph, data = _system(n=120)
    serial = _fit(graph, data, pooling=True, num_draws=30)
    real = scm_module.run_tasks

    def reversed_tasks(executor, fn, tasks, on_result, shared=()):
        results = []
        real(None, fn, tasks, lambda i, r: results.append((i, r)), shared)
        for i, r in reversed(results):
            on_result(i, r)

    monkeypatch.setattr(scm_module, "run_tasks", reversed_tasks)
    backwards = _fit(graph, data, pooling=True, num_draws=30)
    torch.testing.assert_close(_shapes(backwards), _shapes(serial), rtol=0, atol=0)
    torch.testing.assert_close(_shapes(backwards, "lower"), _shapes(serial, "lower"), rtol=0, atol=0)
