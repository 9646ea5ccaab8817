"""Tests of the discrete mechanisms (binary, count, categorical) and of attribution through them."""

from __future__ import annotations

import math
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import bayesrca as br
from bayesrca.datasets import load_online_shop
from bayesrca.mechanisms import BernoulliGLM, CategoricalGLM, PoissonGLM
from bayesrca.mechanisms.glm_posterior import chain_diagnostics, warn_if_not_converged
from bayesrca.selection import discrete_kind


def _mixed(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b = rng.random(n) < 0.3
    c = rng.poisson(np.where(b, 6.0, 2.0))
    return pd.DataFrame({"B": b, "C": c.astype(np.int64)})


@pytest.fixture(scope="module")
def mixed_scm():
    return br.BayesianSCM(nx.DiGraph([("B", "C")]), num_draws=200).fit(_mixed(3000), seed=0)


def test_auto_detects_binary_and_count_columns(mixed_scm):
    assert isinstance(mixed_scm.mechanisms_["B"], BernoulliGLM)
    assert isinstance(mixed_scm.mechanisms_["C"], PoissonGLM)
    assert discrete_kind(pd.Series([0.0, 1.0, 1.0])) == "binary"
    assert discrete_kind(pd.Series([1.0, 1.0])) is None  # a constant float column stays continuous
    assert discrete_kind(pd.Series([0, 3, 7])) == "count"
    assert discrete_kind(pd.Series([0.5, 3.0])) is None


def test_posterior_recovers_the_generating_parameters(mixed_scm):
    b, c = mixed_scm.mechanisms_["B"], mixed_scm.mechanisms_["C"]
    p = torch.sigmoid(b.intercept_[:, 0])
    assert abs(float(p.mean()) - 0.3) < 0.03
    rate0, rate1 = c.intercept_[:, 0].exp(), (c.intercept_[:, 0] + c.coef_[:, 0, 0]).exp()
    assert abs(float(rate0.mean()) - 2.0) < 0.15 and abs(float(rate1.mean()) - 6.0) < 0.4


def test_bernoulli_and_categorical_round_trip():
    rng = np.random.default_rng(1)
    x = rng.normal(size=800)
    binary = (rng.random(800) < 1 / (1 + np.exp(-2 * x))).astype(float)
    cats = np.digitize(x + 0.5 * rng.normal(size=800), [-0.5, 0.7]).astype(float)
    for mech, y in ((BernoulliGLM(), binary), (CategoricalGLM(), cats)):
        mech.fit(y, x[:, None], num_draws=50)
        pa = [torch.tensor(x[:20, None])]
        val = torch.tensor(y[:20, None])
        torch.testing.assert_close(mech.forward(mech.abduct(val, pa), pa), val.expand(20, 50))
        assert torch.isfinite(mech.log_prob(val, pa)).all()


def test_laplace_agrees_with_nuts():
    rng = np.random.default_rng(2)
    x = rng.normal(size=400)
    y = rng.poisson(np.exp(0.5 + 0.4 * x)).astype(float)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lap = PoissonGLM().fit(y, x[:, None], num_draws=400)
        with warnings.catch_warnings():  # moments are compared here; convergence is tested below
            warnings.simplefilter("ignore", br.ConvergenceWarning)
            nuts = PoissonGLM(inference="nuts", num_warmup=200).fit(y, x[:, None], num_draws=300)
    for attr in ("intercept_", "coef_"):
        a, b = getattr(lap, attr).flatten(1), getattr(nuts, attr).flatten(1)
        torch.testing.assert_close(a.mean(0), b.mean(0), atol=0.02, rtol=0)
        torch.testing.assert_close(a.std(0), b.std(0), atol=0.01, rtol=0.25)


def test_nuts_reports_rhat_and_bulk_ess_per_coefficient():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 2))
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.3 + x @ np.array([1.0, -0.5]))))).astype(float)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", br.ConvergenceWarning)
            mech = BernoulliGLM(inference="nuts", num_warmup=300).fit(y, x, num_draws=400, node="b")
    diag = mech.diagnostics_
    assert diag["parameters"] == ["intercept", "coef[0]", "coef[1]"]
    assert diag["r_hat"].shape == diag["ess_bulk"].shape == (3,)
    assert np.all((diag["r_hat"] > 0.95) & (diag["r_hat"] < 1.1))
    assert np.all((diag["ess_bulk"] > 20) & (diag["ess_bulk"] <= 4 * 400))
    assert diag["rhat_max"] == diag["r_hat"].max() and diag["ess_min"] == diag["ess_bulk"].min()
    assert mech.describe() == "bernoulli/nuts"
    # surfaced as scalars in the model's summary table
    graph = nx.DiGraph([("x", "b")])
    frame = pd.DataFrame({"x": x[:, 0], "b": y})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", br.ConvergenceWarning)
        scm = br.BayesianSCM(graph, mechanisms={"x": "gaussian", "b": BernoulliGLM(inference="nuts", num_warmup=100)},
                             num_draws=100).fit(frame, seed=0)
    row = scm.summary().set_index("node").loc["b"]
    assert np.isfinite(row["rhat_max"]) and np.isfinite(row["ess_min"])


def test_categorical_coefficient_names():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 120).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", br.ConvergenceWarning)
        mech = CategoricalGLM(inference="nuts", num_warmup=50).fit(y, rng.normal(size=(120, 1)), num_draws=20)
    assert mech.diagnostics_["parameters"] == [
        "intercept[0]", "intercept[1]", "intercept[2]", "coef[0][0]", "coef[0][1]", "coef[0][2]"
    ]


def test_chain_diagnostics_flag_a_stuck_chain_and_pass_independent_draws():
    rng = np.random.default_rng(7)
    good = torch.as_tensor(rng.normal(size=(1000, 2)))
    r_hat, ess = chain_diagnostics(good)
    assert np.all(np.abs(r_hat - 1) < 0.01) and np.all(ess > 700)
    drifting = good + torch.linspace(0, 3, 1000)[:, None].double()  # the chain's halves disagree
    r_hat, ess = chain_diagnostics(drifting)
    assert np.all(r_hat > 1.1) and np.all(ess < 200)
    r_hat, ess = chain_diagnostics(torch.ones(10, 1, dtype=torch.float64))  # a constant parameter
    assert r_hat[0] == 1.0 and ess[0] == 10.0
    assert np.isnan(chain_diagnostics(good[:3])[0]).all()  # too few draws to judge


def test_chain_diagnostics_agree_with_arviz_bulk_ess():
    az = pytest.importorskip("arviz")
    if not az.__version__.startswith("0."):
        pytest.skip("the comparison uses the arviz 0.x array API")
    rng = np.random.default_rng(8)
    ar = np.zeros(800)
    for t in range(1, 800):  # an autocorrelated chain, AR(1) with coefficient 0.6
        ar[t] = 0.6 * ar[t - 1] + rng.normal()
    _, ess = chain_diagnostics(torch.as_tensor(ar[:, None]))
    expected = float(az.ess(ar[None, :], method="bulk"))
    assert abs(ess[0] - expected) < 0.05 * expected


def test_a_drifting_chain_warns_with_the_node_and_parameter():
    drifting = torch.linspace(0.0, 5.0, 40, dtype=torch.float64)[:, None]
    r_hat, ess = chain_diagnostics(drifting)
    info = {"rhat_max": float(r_hat.max()), "ess_min": float(ess.min()), "parameters": ["beta"], "r_hat": r_hat}
    with pytest.warns(br.ConvergenceWarning, match="node 'c'.*R-hat.*beta"):
        warn_if_not_converged(info, 40, "c")


def test_nuts_reports_r_hat_and_ess():
    rng = np.random.default_rng(9)
    y = rng.poisson(3.0, 200).astype(float)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mech = PoissonGLM(inference="nuts", num_warmup=50).fit(y, np.zeros((200, 0)), num_draws=40, node="c")
    info = mech.diagnostics_
    assert info["inference"] == "nuts" and np.isfinite(info["rhat_max"]) and info["ess_min"] > 0
    assert len(info["r_hat"]) == len(info["parameters"]) == len(info["ess_bulk"])


def test_invalid_values_are_rejected():
    with pytest.raises(br.DataError, match="non-negative integers"):
        PoissonGLM().fit(np.array([0.0, 1.5, 2.0]), np.zeros((3, 0)), num_draws=5, node="c")
    with pytest.raises(br.DataError, match="0 and 1"):
        BernoulliGLM().fit(np.array([0.0, 2.0]), np.zeros((2, 0)), num_draws=5, node="b")


# ---------------------------------------------------------------------------------------------
# attribution equals a brute-force enumeration of the definition
# ---------------------------------------------------------------------------------------------
def _brute_force(scm, x_b: int, x_c: int):
    """Per draw: IT score and E_u[phi_B], E_u[phi_C] for base_score="upper", enumerating B's two
    values and integrating the abducted count noise u over its interval on a fine grid."""
    mb, mc = scm.mechanisms_["B"], scm.mechanisms_["C"]
    p1 = torch.sigmoid(mb.intercept_[:, 0])  # (D,)
    prob_b = {0: 1 - p1, 1: p1}
    eta = {b: mc.intercept_[:, 0] + b * mc.coef_[:, 0, 0] for b in (0, 1)}
    x = torch.tensor(float(x_c), dtype=torch.float64)

    def surv(b):  # P(C >= x_c | B = b)
        return 1 - mc._cdf(x - 1, eta[b])

    v_empty = torch.log(prob_b[0] * surv(0) + prob_b[1] * surv(1))
    v_b = torch.log(surv(x_b))
    # keep C's noise: u uniform on (F(x-1 | x_b), F(x | x_b)]; B redrawn
    lo, hi = mc._cdf(x - 1, eta[x_b]), mc._cdf(x, eta[x_b])
    grid = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000
    u = lo[:, None] + grid[None, :] * (hi - lo)[:, None]  # (D, G)
    other = 1 - x_b
    c_other = mc._icdf(u, eta[other][:, None])
    v_c = torch.log(prob_b[x_b][:, None] + prob_b[other][:, None] * (c_other >= x_c))  # (D, G)
    phi_b = 0.5 * ((v_b - v_empty) + (0 - v_c.mean(-1)))
    # E_u[v(C)] enters phi linearly, so the expectation of phi is phi at E_u[v(C)]
    return -v_empty, phi_b, -v_empty - phi_b


def test_attribution_matches_brute_force_enumeration(mixed_scm):
    row = pd.DataFrame({"B": [True], "C": [12]})
    res = br.attribute_anomalies(mixed_scm, "C", row, seed=0, num_mc_samples=6000, base_score="upper")
    assert res.method_info["engine"] == "mc"
    it, phi_b, phi_c = (t.numpy() for t in _brute_force(mixed_scm, 1, 12))
    # the IT score per draw: Monte Carlo over B and the counts (6,000 samples, P about 0.006)
    assert np.abs(res.it_scores[:, 0] - it).mean() < 0.03 * it.mean()
    np.testing.assert_allclose(res.it_scores[:, 0], it, rtol=0.15)
    got = dict(zip(res.nodes, np.moveaxis(res.contributions[:, 0], -1, 0)))
    # per draw the abducted u is one draw of its posterior; averaged over the 200 draws the
    # contributions match the enumeration's expectation
    assert abs(got["B"].mean() - phi_b.mean()) < 0.05 * it.mean()
    assert abs(got["C"].mean() - phi_c.mean()) < 0.05 * it.mean()
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)  # efficiency per draw


def test_binary_parent_outlier_blames_the_right_node(mixed_scm):
    # B = 1 is not rare (30 %); C = 12 given B = 1 is (rate 6): the count's own noise is the cause
    row = pd.DataFrame({"B": [True], "C": [12]})
    res = br.attribute_anomalies(mixed_scm, "C", row, seed=0, num_mc_samples=4000)
    top = res.summary().sort_values("median", ascending=False).iloc[0]
    assert top["node"] == "C"
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)


def test_discrete_model_saves_and_loads(mixed_scm, tmp_path):
    path = br.save(mixed_scm, tmp_path / "mixed.bayesrca")
    loaded = br.load(path)
    row = pd.DataFrame({"B": [True], "C": [12]})
    a = br.attribute_anomalies(mixed_scm, "C", row, seed=3, num_mc_samples=500)
    b = br.attribute_anomalies(loaded, "C", row, seed=3, num_mc_samples=500)
    np.testing.assert_array_equal(a.contributions, b.contributions)


def test_online_shop_with_discrete_columns_runs_end_to_end():
    graph, data, _ = load_online_shop()
    typed = data.astype({"Shopping Event?": bool, "Page Views": np.int64, "Sold Units": np.int64})
    scm = br.BayesianSCM(graph, num_draws=20).fit(typed, seed=0)
    assert isinstance(scm.mechanisms_["Shopping Event?"], BernoulliGLM)
    kinds = {n: scm.mechanisms_[n].family for n in ("Page Views", "Sold Units")}
    assert set(kinds.values()) <= {"poisson", "linear", "spline", "root", "mixture"}
    row = typed.iloc[[-1]].copy()
    row["Page Views"] = int(typed["Page Views"].max() * 1.5)
    res = br.attribute_anomalies(scm, "Profit", row, seed=0, num_mc_samples=500)
    assert np.isfinite(res.contributions).all()
    np.testing.assert_allclose(res.contributions.sum(-1), res.it_scores, atol=1e-6)
    assert not math.isnan(res.summary()["prob_top"].sum())


@pytest.mark.parametrize("row", [{"B": 2.0, "C": 3}, {"B": True, "C": -1}, {"B": True, "C": 2.5}])
def test_values_outside_a_discrete_support_are_refused(mixed_scm, row):
    """An impossible anomaly (2 for a binary node, a negative or fractional count) is an error
    naming the node, never a silently wrong attribution or score."""
    frame = pd.DataFrame({k: [v] for k, v in row.items()})
    bad = "B" if row["B"] == 2.0 else "C"
    with pytest.raises(br.DataError, match=f"node '{bad}'"):
        br.attribute_anomalies(mixed_scm, "C", frame, num_mc_samples=100)
    with pytest.raises(br.DataError, match=f"node '{bad}'"):
        br.outlier_scores(mixed_scm, frame, num_mc_samples=100)


def test_unseen_category_code_is_refused():
    rng = np.random.default_rng(4)
    mech = CategoricalGLM().fit(rng.integers(0, 3, 200).astype(float), np.zeros((200, 0)), num_draws=5, node="k")
    mech.check_values(np.array([0.0, 2.0]), "k")
    with pytest.raises(br.DataError, match="never seen"):
        mech.check_values(np.array([3.0]), "k")


@pytest.mark.parametrize("inference", ["laplace", "nuts"])
def test_a_parent_that_never_varied_keeps_its_prior_effect(inference):
    """A constant parent's coefficient is not identified: its draws follow the prior N(0, prior_scale)
    (per unit of the parent), and at the training level the fit is unchanged."""
    from bayesrca.mechanisms import BernoulliGLM

    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    parents = np.column_stack([np.full(n, 3.0), x])
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.5 + x)))).astype(float)
    torch.manual_seed(0)
    draws = 400 if inference == "nuts" else 4000
    mech = BernoulliGLM(inference, prior_scale=2.0, num_warmup=200).fit(y, parents, num_draws=draws)
    coef = mech.coef_[:, 0, 0]
    assert mech.diagnostics_["unvaried_prior"] == 1
    assert abs(float(coef.mean())) < 0.25 and float(coef.std()) == pytest.approx(2.0, rel=0.15)
    slope = mech.coef_[:, 1, 0]
    assert float(slope.mean()) == pytest.approx(1.0, abs=0.35) and float(slope.std()) < 0.3
    # at the training level the constant parent's draws cancel in the linear predictor
    eta = mech.intercept_[:, 0] + 3.0 * coef
    assert float(eta.std()) < 0.3
