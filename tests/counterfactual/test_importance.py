"""Tests of bayesrca.counterfactual.importance: importance sampling against exact tail probabilities.

Two-node SCMs X = f(P) + N, fitted on data; for each posterior draw the exact P(X >= t) is an
integral over P, computed by quadrature in log space (scipy.special.log_ndtr / logsumexp) from the
draw's own parameters. The engine's IT score (v of the empty coalition) and v({X}) (the target's
noise kept: a weighted count, no Gaussian part to integrate) must match it within a few of the
Monte Carlo standard errors the engine reports (delta method from the ESS), at thresholds 3, 6, 10
and 15 standard deviations of X's marginal, where conditional Monte Carlo alone is off by orders
of magnitude.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_ndtr, logsumexp

import bayesrca as br
from bayesrca.counterfactual import CounterfactualEngine
from bayesrca.counterfactual import tails
from bayesrca.counterfactual.importance import RARE_IT, NoiseProposal, log_se, weighted_thresholds
from bayesrca.mechanisms.additive import AdditiveNoiseModel

FUNCTIONS = {
    "monotone": lambda p: 2 * p + torch.exp(p / 2),
    "cube": lambda p: p**3,
    "square": lambda p: p * p,
}
NUM_DRAWS = 4
M = 2000
#: Largest |estimate - truth| in reported Monte Carlo standard errors (over draws, thresholds and
#: functions: about 100 comparisons; a Gaussian error exceeds 4 sd once in 16,000).
Z_TOL = 4.0


class Feature(AdditiveNoiseModel):
    """``X = b0 + b f(P) + N`` with a known feature map f."""

    family = "feature"
    is_linear = False

    def __init__(self, noise: str = "gaussian", kind: str = "cube", **kwargs) -> None:
        super().__init__(noise, **kwargs)
        self.kind = kind

    def _learn_features(self, parents) -> None:
        self.num_parents_ = parents.shape[1]

    def _feature_columns(self, parents):
        yield FUNCTIONS[self.kind](parents[0])


def _fit(kind: str, noise: str = "gaussian", parent: str = "gaussian"):
    rng = np.random.default_rng(0)
    p = rng.normal(size=2000)
    mech = br.LinearANM(noise) if kind == "linear" else Feature(noise, kind)
    x = (2 * p if kind == "linear" else FUNCTIONS[kind](torch.tensor(p)).numpy()) + rng.normal(size=2000)
    scm = br.BayesianSCM(nx.DiGraph([("P", "X")]), mechanisms={"P": br.RootDistribution(parent), "X": mech}, num_draws=NUM_DRAWS)
    return scm.fit(pd.DataFrame({"P": p, "X": x}), seed=1), x


def _grid(scm):
    """Quadrature grid over P per draw, its log density and f(u) (the draw's fitted mechanism)."""
    root = scm.mechanisms_["P"]
    zero = torch.zeros(1, NUM_DRAWS, dtype=torch.float64)
    mu = root.forward(zero, [])[0].numpy()
    dist = root.noise_distribution()
    sd = dist.stddev.numpy()
    kde = not isinstance(dist, torch.distributions.Normal) or not isinstance(
        scm.mechanisms_["X"].noise_distribution(), torch.distributions.Normal
    )
    u = mu + sd * (np.linspace(-20, 20, 8_001) if kde else np.linspace(-40, 40, 200_001))[:, None]  # (U, D)
    log_p = np.concatenate([dist.log_prob(torch.tensor(b - mu)).numpy() for b in np.array_split(u, 40)])
    f = scm.mechanisms_["X"].forward(torch.zeros(u.shape, dtype=torch.float64), [torch.tensor(u)]).numpy()
    return u, log_p, f


def _log_survival(scm, y: np.ndarray) -> np.ndarray:
    """log P(N >= y) of the target's noise, per draw (last axis)."""
    dist = scm.mechanisms_["X"].noise_distribution()
    if isinstance(dist, torch.distributions.Normal):
        return log_ndtr(-y / dist.stddev.numpy())
    atoms, h = dist.atoms.numpy(), dist.bandwidth.numpy()  # ResidualKDE: a Gaussian mixture
    blocks = [logsumexp(log_ndtr((atoms.T[None] - b[:, None]) / h), axis=1) for b in np.array_split(y, 40)]  # (u, A, D)
    return np.concatenate(blocks) - math.log(atoms.shape[1])


def exact_log_tail(scm, t: float, kept_noise: np.ndarray | None = None) -> np.ndarray:
    """log P(X >= t) per draw; with ``kept_noise`` ``(D,)`` the target's noise is fixed there."""
    u, log_p, f = _grid(scm)
    if kept_noise is None:
        inner = _log_survival(scm, t - f)
    else:
        inner = np.where(f + kept_noise >= t, 0.0, -np.inf)
    return logsumexp(inner + log_p, axis=0) + np.log(u[1] - u[0])


def _engine(scm, p_value: float, x_value: float, seed: int = 0, **kwargs) -> CounterfactualEngine:
    observed = {"P": torch.tensor([[p_value]], dtype=torch.float64), "X": torch.tensor([[x_value]], dtype=torch.float64)}
    torch.manual_seed(seed)
    return CounterfactualEngine(scm, "X", ["P", "X"], observed, path="mc", num_mc_samples=M, base_score="upper", **kwargs)


def _anomaly(kind: str, scm, t: float) -> float:
    """P's value of an anomaly at X = t whose own noise is 2 (P explains the rest)."""
    u, _, f = _grid(scm)
    return float(u[np.argmin(np.abs(f[:, 0] - (t - 2.0))), 0])


CASES = [(kind, noise) for kind in FUNCTIONS for noise in ("gaussian",)] + [("cube", "bootstrap"), ("linear", "bootstrap")]


@pytest.mark.parametrize(
    ("kind", "noise"), [pytest.param(*c, marks=pytest.mark.slow) if c[1] == "bootstrap" else c for c in CASES]
)
def test_it_score_and_values_match_quadrature(kind, noise):
    """Within the reported error, or flagged (ESS < 10): never a silently wrong number.

    With Gaussian noises every draw is within error at 3 to 15 sd. A KDE ("bootstrap") noise has a
    kernel-thin far tail; where the event needs two such tails jointly (X = 2 P + N, both KDE)
    the one-coordinate proposal reaches it through few samples, and the low ESS says so.
    """
    parent = "bootstrap" if kind == "linear" else "gaussian"  # all-linear with KDE noise: the per-anomaly linear path
    scm, x = _fit(kind, noise, parent)
    for k in (3, 6, 10, 15) if noise == "gaussian" else (3, 10):
        t = float(x.mean() + k * x.std())
        engine = _engine(scm, _anomaly(kind, scm, t), t)
        v = engine.estimator(torch.tensor([[False, True]]))[0, 0, :, 0].numpy()  # the target's noise kept
        kept = engine.estimator.parts.abducted["X"][0].numpy()
        checks = [
            (-engine.it_score[0].numpy(), engine.tail_ess[0], exact_log_tail(scm, t)),
            (v, engine.estimator.last_ess[0, 0], exact_log_tail(scm, t, kept)),
        ]
        for estimate, ess, truth in checks:
            trusted = ess.numpy() >= 10
            if noise == "gaussian" or k == 3:
                assert trusted.all(), (kind, noise, k, ess)
            se = log_se(ess, M).numpy()
            ok = np.abs(estimate - truth) <= Z_TOL * se + 1e-3
            assert np.all(ok | ~trusted), (kind, noise, k, estimate, truth, se)


def test_without_importance_sampling_the_far_tail_is_absurd():
    """The regression this module fixes: conditional Monte Carlo alone at 10 sd through P**3."""
    scm, x = _fit("cube")
    t = float(x.mean() + 10 * x.std())
    engine = _engine(scm, _anomaly("cube", scm, t), t, importance=False)
    assert np.max(engine.it_score.numpy() + exact_log_tail(scm, t)) > 1.0  # far too high
    assert engine.tail_ess.min() < 10  # ... and flagged


def test_rare_coalition_value_triggers_importance_sampling():
    """An IT score below RARE_IT, but the target's own noise points away from the event: v({X})
    needs P in its far tail. The probe of the engine's first call finds that value at the Monte
    Carlo floor and draws from the proposal; v({X}) is then estimated, within its reported error."""
    scm, x = _fit("linear", "bootstrap", "bootstrap")
    u, _, f = _grid(scm)
    t = float(np.quantile(x, 0.97))  # IT score about 3.5 < log 100
    p_value = float(u[np.argmin(np.abs(f[:, 0] - (t + 2.5))), 0])  # X's own noise about -2.5
    masks = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    plain = _engine(scm, p_value, t, importance=False)
    plain(masks)
    assert bool((plain.estimator.last_ess[2, 0] < 10).any())  # v({X}) at the floor without the proposal
    engine = _engine(scm, p_value, t)
    assert bool((engine.it_score < RARE_IT).all()) and not engine.importance  # not rare by its IT score
    v = engine(masks)
    assert engine.importance
    ess = engine.estimator.last_ess[2, 0]
    assert bool((ess >= 10).all()), ess
    truth = exact_log_tail(scm, t, engine.estimator.parts.abducted["X"][0].numpy())
    se = log_se(ess, M).numpy()
    assert np.all(np.abs(v[2, 0, :, 0].numpy() - truth) <= Z_TOL * se + 1e-3), (v[2, 0, :, 0], truth, se)
    assert float(engine.value_ess.min()) >= 10
    usual = _engine(scm, float(u[np.argmin(np.abs(f[:, 0] - t)), 0]), t)  # X's own noise about 0: no rare value
    usual(masks)
    assert not usual.importance


def test_reported_standard_error_is_honest():
    """Across 12 seeds the spread of the IT estimates matches the reported MC standard error."""
    scm, x = _fit("cube")
    t = float(x.mean() + 10 * x.std())
    p_value = _anomaly("cube", scm, t)
    runs = [_engine(scm, p_value, t, seed=s) for s in range(12)]
    its = np.stack([e.it_score[0].numpy() for e in runs])  # (seeds, D)
    reported = np.median(np.stack([log_se(e.tail_ess[0], M).numpy() for e in runs]), 0)
    ratio = its.std(0, ddof=1) / reported
    assert np.all((ratio > 0.4) & (ratio < 2.5)), ratio
    assert np.all(np.abs(its.mean(0) + exact_log_tail(scm, t)) < 3 * reported / math.sqrt(12) + 0.02)


def test_median_cdf_thresholds_are_exact_in_both_tails():
    """X = P**2 + N is skewed: the mirror threshold of a far upper value comes from the weighted marginal."""
    scm, x = _fit("square")
    t = float(x.mean() + 10 * x.std())
    observed = {"P": torch.tensor([[_anomaly("square", scm, t)]], dtype=torch.float64), "X": torch.tensor([[t]], dtype=torch.float64)}
    torch.manual_seed(0)
    engine = CounterfactualEngine(scm, "X", ["P", "X"], observed, path="mc", num_mc_samples=M)
    lo, hi = engine.lo[0].numpy(), engine.hi[0].numpy()
    np.testing.assert_allclose(hi, t, rtol=1e-9)
    assert np.all(lo < x.min())
    u, log_p, f = _grid(scm)
    sd = scm.mechanisms_["X"].noise_distribution().stddev.numpy()
    log_lower = logsumexp(log_ndtr((lo - f) / sd) + log_p, axis=0) + np.log(u[1] - u[0])
    upper = exact_log_tail(scm, t)
    se = log_se(engine.tail_ess[0], M).numpy()
    assert np.all(np.abs(log_lower - upper) <= Z_TOL * se + 0.05)  # the mirror has the upper tail's mass
    assert np.all(np.abs(-engine.it_score[0].numpy() - np.logaddexp(log_lower, upper)) <= Z_TOL * se + 1e-3)


def test_proposal_allocation_and_weights():
    """Components share the samples in the same proportions in each half; weights are bounded by 1/alpha0."""
    scm, _ = _fit("cube")
    abducted = {"P": torch.full((2, NUM_DRAWS), 5.0, dtype=torch.float64), "X": torch.zeros(2, NUM_DRAWS, dtype=torch.float64)}
    proposal = NoiseProposal(scm, ["P", "X"], abducted, torch.tensor([True, False]), 1001, defensive=0.3)
    first, second = proposal.comp[:500], proposal.comp[500:]
    for c in range(-1, 6):
        assert abs(int((first == c).sum()) / 500 - int((second == c).sum()) / 501) < 0.01
    assert abs(float(proposal.alpha.sum()) - 0.7) < 0.01
    z = torch.randn(1001, 1, NUM_DRAWS, dtype=torch.float64)
    moved = {n: proposal.transform(n)(z) for n in ("P", "X")}
    assert torch.equal(moved["P"][:, 1], z[:, 0])  # an anomaly that is not rare keeps the model's samples
    shifted = proposal.comp == 0  # P's shift toward the anomaly
    torch.testing.assert_close(moved["P"][shifted, 0], z[shifted, 0] + 5.0)
    proposal.fit(moved, abducted)
    assert float(proposal.log_w.max()) <= -math.log(0.3) + 1e-9
    assert bool((proposal.log_w[:, 1] == 0).all())  # weight exactly 1 where no proposal is used


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), base_score=st.sampled_from(["median_cdf", "upper", "lower", "mean_deviation"]))
def test_unit_weights_reproduce_the_unweighted_estimator(seed, base_score):
    """With every weight 1 the weighted thresholds and p-value rule are those of the model's own samples."""
    gen = torch.Generator().manual_seed(seed)
    num_m, num_d = 101, 3
    reference = torch.randn(num_m, num_d, generator=gen, dtype=torch.float64).exp()  # skewed
    x = torch.tensor([[4.0], [0.05], [1.0]], dtype=torch.float64)
    lo, hi, it = tails.empirical_thresholds(reference, x, base_score)
    zero_sd = torch.zeros(num_d, dtype=torch.float64)
    log_w = torch.zeros(num_d, 3, num_m, dtype=torch.float64)
    lo_w, hi_w, it_w, ess = weighted_thresholds(
        reference.unsqueeze(1).expand(-1, 3, -1), zero_sd, torch.zeros(num_m, num_d, dtype=torch.float64), x, log_w,
        torch.zeros(3, num_d, dtype=torch.float64), base_score,
    )
    torch.testing.assert_close(it_w, it)
    if base_score != "mean_deviation":
        torch.testing.assert_close(lo_w, lo)
        torch.testing.assert_close(hi_w, hi)
    assert bool((ess <= num_m).all())

