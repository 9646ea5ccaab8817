"""DoWhy's rank- and density-based anomaly scorers against ``base_score="rank"`` / ``"density"``, on the same data.

DoWhy fits one model and estimates every probability from 3,000 (here 1,500 for the slow density
scorer) samples with the ``(count + 0.5) / (N + 0.5)`` rule; its Monte Carlo sd on these
contributions is about 0.3 nats (measured over seeds at N = 3,000), which sets the tolerances.
bayesrca's numbers are posterior medians.
"""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import bayesrca as br
from bayesrca.exceptions import TailEstimateWarning

gcm = pytest.importorskip("dowhy.gcm")

GRAPH = nx.DiGraph([("X0", "X1"), ("X1", "X2"), ("X0", "X2")])


def _dowhy_model(data: pd.DataFrame):
    model = gcm.InvertibleStructuralCausalModel(GRAPH)
    model.set_causal_mechanism("X0", gcm.EmpiricalDistribution())
    for node in ("X1", "X2"):
        model.set_causal_mechanism(node, gcm.AdditiveNoiseModel(gcm.ml.create_linear_regressor()))
    np.random.seed(0)
    gcm.fit(model, data)
    return model


def _compare(theirs: dict, ours: br.AttributionResult, tol: float) -> None:
    med = np.median(ours.contributions, axis=0)  # (K, n)
    for node, values in theirs.items():
        j = list(ours.nodes).index(node)
        np.testing.assert_allclose(values, med[:, j], atol=tol, err_msg=node)
    total = sum(theirs.values())  # DoWhy's IT score (its contributions sum to it)
    np.testing.assert_allclose(total, np.median(ours.it_scores, axis=0), atol=tol)
    their_top = np.array(list(theirs)).take(np.argmax(np.stack(list(theirs.values()), -1), -1))
    assert list(their_top) == [ours.nodes[j] for j in med.argmax(-1)]


def test_rank_based_scorer_agrees_with_dowhy():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=2000)
    x1 = 2 * x0 + rng.normal(size=2000)
    data = pd.DataFrame({"X0": x0, "X1": x1, "X2": x1 - 0.5 * x0 + rng.normal(size=2000)})
    anomalies = pd.DataFrame({"X0": [2.5, 0.0], "X1": [5.0, -3.0], "X2": [3.75, -4.5]})
    from dowhy.gcm.anomaly_scorers import RankBasedAnomalyScorer

    np.random.seed(1)
    theirs = gcm.attribute_anomalies(_dowhy_model(data), "X2", anomalies, anomaly_scorer=RankBasedAnomalyScorer(),
                                     num_distribution_samples=3000)
    scm = br.BayesianSCM(GRAPH, mechanisms="gaussian", num_draws=40).fit(data, seed=0)
    ours = br.attribute_anomalies(scm, "X2", anomalies, seed=0, base_score="rank")
    assert ours.method_info["base_score"] == "rank"
    _compare(theirs, ours, tol=0.6)
    # for a continuous marginal the rank score orders values as the median-CDF score: the same event
    same = br.attribute_anomalies(scm, "X2", anomalies, seed=0, base_score="median_cdf")
    np.testing.assert_array_equal(ours.contributions, same.contributions)


def test_density_based_scorer_agrees_with_dowhy_on_a_skewed_target():
    """X2's own noise is exponential: density-based and median-CDF IT scores differ by up to 1 nat here."""
    from dowhy.gcm.anomaly_scorers import InverseDensityScorer
    from dowhy.gcm.density_estimators import KernelDensityEstimator1D

    rng = np.random.default_rng(0)
    n = 2000
    x0 = rng.normal(size=n)
    x1 = 2 * x0 + rng.normal(size=n)
    data = pd.DataFrame({"X0": x0, "X1": x1, "X2": 0.5 * x1 - 0.5 * x0 + 3 * (rng.exponential(size=n) - 1)})

    def row(n0: float, n1: float, e: float) -> dict:  # the noises: X0, X1, and X2's exponential draw
        return {"X0": n0, "X1": 2 * n0 + n1, "X2": 0.5 * (2 * n0 + n1) - 0.5 * n0 + 3 * (e - 1)}

    # far in the long right tail; an upstream cause on the short side; the short (left) tail
    anomalies = pd.DataFrame([row(0.0, 0.5, 4.5), row(2.5, 0.0, 0.3), row(0.0, 0.0, 0.02)])
    np.random.seed(1)
    theirs = gcm.attribute_anomalies(_dowhy_model(data), "X2", anomalies,
                                     anomaly_scorer=InverseDensityScorer(KernelDensityEstimator1D()),
                                     num_distribution_samples=1500)
    scm = br.BayesianSCM(GRAPH, mechanisms="linear", num_draws=16).fit(data, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TailEstimateWarning)  # unimodal: no warning about the density's shape
        ours = br.attribute_anomalies(scm, "X2", anomalies, seed=0, base_score="density", num_mc_samples=3000)
    assert ours.method_info["engine"] == "mc"
    _compare(theirs, ours, tol=0.45)
    # the test can tell the scores apart: the median-CDF IT scores of rows 1 and 2 are far from these
    quantile = br.attribute_anomalies(scm, "X2", anomalies, seed=0, base_score="median_cdf", num_mc_samples=3000)
    gap = np.median(quantile.it_scores, 0) - np.median(ours.it_scores, 0)
    assert gap[2] > 0.6 and abs(gap[1]) > 0.25, gap


def test_new_base_scores_in_outlier_and_reference_scores():
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=600)
    x1 = 2 * x0 + rng.normal(size=600)
    data = pd.DataFrame({"X0": x0, "X1": x1, "X2": x1 - 0.5 * x0 + rng.exponential(size=600)})
    scm = br.BayesianSCM(GRAPH, mechanisms="linear", num_draws=10).fit(data, seed=0)
    rows = pd.DataFrame({"X0": [0.0, 3.0], "X1": [0.0, 6.0], "X2": [0.5, 9.0]})
    for base in ("rank", "density"):
        res = br.outlier_scores(scm, rows, seed=0, base_score=base)
        assert res.method_info["base_score"] == base
        med = np.median(res.scores, axis=0)
        assert np.all(med[1] > med[0]) and np.all(np.isfinite(res.scores))
        ref = br.reference_it_scores(scm, "X2", num_rows=50, base_score=base)
        assert ref.shape == (50,) and np.median(ref) < 2.0
        cond = br.outlier_scores(scm, rows, seed=0, base_score=base, conditioning="conditional")
        assert np.all(np.isfinite(cond.scores))
    rank = br.outlier_scores(scm, rows, seed=0, base_score="rank")
    np.testing.assert_array_equal(rank.scores, br.outlier_scores(scm, rows, seed=0, base_score="median_cdf").scores)
