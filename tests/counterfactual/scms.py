"""Small fitted SCMs shared by the counterfactual tests and their property tests (not a test module).

* the handler models: R -> A -> B with R -> B, fitted with linear, Gaussian, spline and mixed
  mechanisms (nonlinear data, so the spline and bootstrap noise paths are exercised);
* a linear-Gaussian triangle X0 -> X1 -> X2 with X0 -> X2 and known coefficients, optionally
  with a spline mechanism on X1 (a nonlinear part upstream of the target).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import torch
from pyro import poutine

import bayesrca as br
from bayesrca.counterfactual.handlers import AbductNoise
from bayesrca.mechanisms import noise_site

# ---------------------------------------------------------------------------------------------
# the handler models
# ---------------------------------------------------------------------------------------------
NODES = ["R", "A", "B"]
GRAPH_EDGES = [("R", "A"), ("R", "B"), ("A", "B")]
NUM_DRAWS = 12
MODEL_NAMES = ["linear", "gaussian", "spline", "lognormal"]


def handler_training_data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    r = rng.lognormal(0.0, 0.5, n)
    a = np.sin(2 * r) + 0.3 * rng.normal(size=n)
    b = r - 0.5 * a**2 + rng.exponential(0.5, n)
    return pd.DataFrame({"R": r, "A": a, "B": b})


def fit_handler_models() -> dict[str, br.BayesianSCM]:
    """The four handler models by name (:data:`MODEL_NAMES`)."""
    train = handler_training_data()
    specs = {
        "linear": "linear",
        "gaussian": "gaussian",
        "spline": "spline",
        "lognormal": {"R": br.RootDistribution("lognormal"), "A": "spline", "B": br.LinearANM("gaussian")},
    }
    out = {}
    for name, spec in specs.items():
        out[name] = br.BayesianSCM(nx.DiGraph(GRAPH_EDGES), mechanisms=spec, num_draws=NUM_DRAWS).fit(train, seed=1)
    assert out["lognormal"].mechanisms_["R"].describe() == "root/lognormal"
    assert out["spline"].mechanisms_["A"].describe() == "spline/bootstrap_gpd"
    return out


def observed_rows(row_list) -> dict[str, torch.Tensor]:
    """Node to ``(K, 1)`` values from rows ``(R, A, B)``."""
    arr = torch.tensor(row_list, dtype=torch.float64)  # (K, 3)
    return {n: arr[:, i : i + 1] for i, n in enumerate(NODES)}  # each (K, 1)


def abducted(scm, observed) -> dict[str, torch.Tensor]:
    """Node to the abducted noise of the observed rows, straight from the handler's trace."""
    trace = poutine.trace(AbductNoise(observed)(scm.program)).get_trace()
    return {n: trace.nodes[noise_site(n)]["value"] for n in NODES}


# ---------------------------------------------------------------------------------------------
# the triangle: X0 ~ N(0, 1); X1 = 2 X0 + N(0, 1); X2 = X1 - 0.5 X0 + N(0, 1)
# ---------------------------------------------------------------------------------------------
TRIANGLE = ["X0", "X1", "X2"]
TRIANGLE_EDGES = [("X0", "X1"), ("X1", "X2"), ("X0", "X2")]
#: total effects of the noises on X2 (N0, N1, N2), and the direct coefficients of X2 on (X0, X1)
TRIANGLE_TOTAL = (1.5, 1.0, 1.0)
TRIANGLE_DIRECT = (-0.5, 1.0)


def triangle_data(noise: np.ndarray) -> pd.DataFrame:
    """Values of the triangle from noise rows ``(n, 3)``."""
    x0 = noise[:, 0]
    x1 = 2 * x0 + noise[:, 1]
    x2 = x1 - 0.5 * x0 + noise[:, 2]
    return pd.DataFrame({"X0": x0, "X1": x1, "X2": x2})


def fit_triangle(mechanisms="gaussian", num_draws: int = 8, n: int = 500) -> br.BayesianSCM:
    """The triangle fitted on ``n`` rows (``mechanisms`` as :class:`bayesrca.BayesianSCM` takes them)."""
    train = triangle_data(np.random.default_rng(0).normal(size=(n, 3)))
    return br.BayesianSCM(nx.DiGraph(TRIANGLE_EDGES), mechanisms=mechanisms, num_draws=num_draws).fit(train, seed=0)


def triangle_observed(noise) -> dict[str, torch.Tensor]:
    """Node to ``(K, 1)`` values of the triangle rows made from noise rows ``(K, 3)``."""
    frame = triangle_data(np.asarray(noise, dtype=float))
    return {p: torch.tensor(frame[p].to_numpy()).unsqueeze(-1) for p in TRIANGLE}
