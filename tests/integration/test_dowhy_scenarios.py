"""DoWhy's own anomaly-attribution scenarios, ported to bayesrca (tests/gcm/test_anomaly_attribution.py).

The nonlinear one ("non-trivial graph with nonlinear relationships": X1 = X0² + N,
X3 = (X1 + X2)² + N, Gaussian N, 10,000 rows, the true functional forms given to X1 and X3) is
the hard case of issue 16: outliers 1 and 2 reach X3 through X0 ten standard deviations out, an
event the model's own fresh samples never cover (conditional Monte Carlo alone gave IT ~ 4e7
nats). Importance sampling toward each anomaly's event reaches it: the IT scores match the exact
value of the data-generating model (quadrature) and the contributions give DoWhy's qualitative
answer. Coalition values that need two noises jointly in their tails (X1's noise and X2 beyond its
training range) keep a low ESS and are flagged.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy.special import log_ndtr, logsumexp
from scipy.stats import norm

import bayesrca as br
from bayesrca.mechanisms.additive import AdditiveNoiseModel


class SquaredSum(AdditiveNoiseModel):
    """``X = b0 + b (sum of parents)² + N``: the true form of DoWhy's scenario."""

    family = "squared_sum"
    is_linear = False

    def _learn_features(self, parents):
        self.num_parents_ = parents.shape[1]

    def _feature_columns(self, parents):
        total = parents[0]
        for p in parents[1:]:
            total = total + p
        yield total * total


@pytest.fixture(scope="module")
def nonlinear():
    rng = np.random.default_rng(0)
    n = 10_000
    x0 = rng.normal(0, 1, n)
    x1 = x0**2 + rng.normal(0, 1, n)
    x2 = rng.uniform(-5, 5, n)
    x3 = (x1 + x2) ** 2 + rng.normal(0, 1, n)
    train = pd.DataFrame({"X0": x0, "X1": x1, "X2": x2, "X3": x3})
    graph = nx.DiGraph([("X0", "X1"), ("X1", "X3"), ("X2", "X3")])
    mechanisms = {"X0": "gaussian", "X2": "auto", "X1": SquaredSum("gaussian"), "X3": SquaredSum("gaussian")}
    scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=30).fit(train, seed=0)
    anomalies = pd.DataFrame(
        {"X0": [10.0, 10.0, 0.0], "X1": [100.0, 110.0, 0.0], "X2": [0.0, 0.0, 10.0], "X3": [10_000.0, 12_100.0, 110.0]}
    )
    with pytest.warns(br.TailEstimateWarning):
        res = br.attribute_anomalies(scm, "X3", anomalies, seed=0, num_mc_samples=2000)
    return res


def true_it(x3: float) -> float:
    """IT score of X3 = x3 under the data-generating model, by quadrature (log space).

    X3 >= x3 iff |X1 + X2| >= sqrt(x3) up to N3 ~ N(0, 1), negligible against the slope of
    (X1 + X2)^2 there; X1 + X2 = X0^2 + S with S = N1 + X2 (normal plus uniform) and
    P(X0^2 >= u) = 2 Phi(-sqrt(u)). The median-CDF score doubles the tail.
    """
    t = np.sqrt(x3)
    s = np.linspace(-15, 15, 300_001)
    log_density = np.log(np.clip(norm.cdf(s + 5) - norm.cdf(s - 5), 1e-300, None) / 10)
    log_tail = np.log(2) + log_ndtr(-np.sqrt(np.clip(t - s, 0, None)))
    return -(np.log(2) + logsumexp(log_density + log_tail) + np.log(s[1] - s[0]))


def test_it_scores_match_the_exact_value(nonlinear):
    """Outliers 1 and 2 (X0 at 10 sd): the IT score within posterior spread and MC error of the truth."""
    info = nonlinear.method_info
    assert info["tail"] == "importance sampling + conditional Monte Carlo"
    for k, x3 in ((0, 10_000.0), (1, 12_100.0)):
        assert info["tail_ess_min"][k] >= 10  # the IT score itself is well supported
        se = np.sqrt(1 / info["tail_ess_min"][k])  # delta-method MC error of a log-probability
        low, high = np.percentile(nonlinear.it_scores[:, k], [5, 95])
        assert low - 3 * se <= true_it(x3) <= high + 3 * se, (low, high, true_it(x3))


def test_joint_tails_are_flagged_not_silent(nonlinear):
    """Coalition values reached only through two noises jointly in their tails have a low ESS: flagged."""
    info = nonlinear.method_info
    assert {1, 2} <= set(info["unreliable_tail"])
    assert all(info["value_ess_min"][k] < 10 for k in (1, 2))
    assert all(se > 0 for se in info["value_mc_se_max"])


def test_contributions_sum_to_the_it_score(nonlinear):
    np.testing.assert_allclose(nonlinear.contributions.sum(-1), nonlinear.it_scores, rtol=1e-6, atol=1e-6)


def test_dowhy_qualitative_answer(nonlinear):
    """X0 alone for outlier 1, X0 and X1 for outlier 2, X2 and X3 for outlier 3 (DoWhy's answer)."""
    med = nonlinear.summary().pivot(index="anomaly", columns="node", values="median")
    assert med.loc[0, "X0"] > 8 and med.loc[0, ["X1", "X2", "X3"]].abs().max() < 0.1 * med.loc[0, "X0"]
    assert set(med.loc[1].nlargest(2).index) == {"X0", "X1"} and med.loc[1, "X0"] > 4 and med.loc[1, "X1"] > 1
    assert set(med.loc[2].nlargest(2).index) == {"X2", "X3"} and med.loc[2, ["X2", "X3"]].min() > 1
    assert med.loc[2, ["X0", "X1"]].max() < 1
    assert np.median(nonlinear.it_scores[:, 0]) < 100  # the true IT score is about 51 nats
