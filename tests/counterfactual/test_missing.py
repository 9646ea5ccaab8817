"""Missing values drawn inside the SCM program: the draws follow p(x_mis | x_obs) per posterior draw."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca._random import seeded
from bayesrca.counterfactual.missing import impute_missing


@pytest.fixture(scope="module")
def chain():
    """x0 ~ N(0, 1), x1 = x0 + N(0, 0.5^2), x2 = x1 + N(0, 0.5^2); 4000 rows, so theta is close to the truth."""
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=4000)
    x1 = x0 + 0.5 * rng.normal(size=4000)
    x2 = x1 + 0.5 * rng.normal(size=4000)
    graph = nx.DiGraph([("x0", "x1"), ("x1", "x2")])
    frame = pd.DataFrame({"x0": x0, "x1": x1, "x2": x2})
    return br.BayesianSCM(graph, mechanisms="gaussian", num_draws=100).fit(frame, seed=0)


def _impute(scm, rows: int, missing_node: str, values: dict, scales=None):
    observed = {n: torch.full((rows, 1), v, dtype=torch.float64) for n, v in values.items()}
    missing = {missing_node: torch.ones(rows, 1, dtype=torch.bool)}
    kwargs = {} if scales is None else {"scales": scales}
    with seeded(5):
        return impute_missing(scm, ["x0", "x1", "x2"], observed, missing, 1000, **kwargs)


def test_missing_root_follows_its_posterior_given_its_child(chain):
    """x1 = 3 observed: x0 | x1 ~ N(3 * 1 / 1.25, 1 * 0.25 / 1.25) = N(2.4, 0.2) under the true theta."""
    drawn, ess = _impute(chain, 200, "x0", {"x0": 0.0, "x1": 3.0, "x2": 3.0})
    x0 = drawn["x0"].numpy()
    assert x0.shape == (200, 100)
    assert abs(x0.mean() - 2.4) < 0.05 and abs(x0.std() - 0.2**0.5) < 0.03
    np.testing.assert_array_equal(drawn["x0"].isnan().numpy(), False)
    assert (ess > 10).all()


def test_missing_middle_node_uses_both_neighbours(chain):
    """x1 missing between x0 = 1 and x2 = 3: x1 | x0, x2 ~ N((1 + 3) / 2, 0.25 / 2)."""
    drawn, _ = _impute(chain, 200, "x1", {"x0": 1.0, "x1": 0.0, "x2": 3.0})
    x1 = drawn["x1"].numpy()
    assert abs(x1.mean() - 2.0) < 0.03 and abs(x1.std() - 0.125**0.5) < 0.03


def test_widened_proposal_keeps_more_effective_candidates_in_the_tail(chain):
    """Far in the tail (x1 = 5: x0 | x1 has mean 4) prior candidates alone rarely get there."""
    values = {"x0": 0.0, "x1": 5.0, "x2": 5.0}
    drawn, ess = _impute(chain, 20, "x0", values)
    _, ess_prior = _impute(chain, 20, "x0", values, scales=(1.0,))
    assert ess.median() > 5 * ess_prior.median()
    assert abs(drawn["x0"].mean() - 4.0) < 0.1
