"""Tests of bayesrca.counterfactual.direct: event sums from the weight table, and the recount of
halves whose weights underflow float32."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesrca.counterfactual import direct
from bayesrca.counterfactual.decomposition import decompose_target
from bayesrca.counterfactual.montecarlo import MonteCarloTails
from tests.counterfactual.scms import TRIANGLE, fit_triangle, triangle_observed


def _twice(shape, seed: int) -> torch.Tensor:
    """Twice a random event indicator: 0, 1 (boundary) or 2, mostly 0 or 2."""
    g = torch.Generator().manual_seed(seed)
    out = 2 * (torch.rand(shape, generator=g) < 0.4).float()
    out[torch.rand(shape, generator=g) < 0.02] = 1.0
    return out


def _log_sum(twice: torch.Tensor, log_w: torch.Tensor, power: int) -> torch.Tensor:
    """Reference in float64 log space: log sum_m (twice_m / 2) w_m^power per half, (..., 2)."""
    num_m = twice.shape[-1]
    terms = torch.where(twice > 0, power * log_w + (twice.double() / 2).log(), -math.inf)
    first = torch.arange(num_m) < num_m // 2
    return torch.stack([terms[..., first].logsumexp(-1), terms[..., ~first].logsumexp(-1)], -1)


def test_half_columns_put_the_odd_sample_in_the_second_half():
    cols = direct.half_columns(7)
    assert cols.tolist() == [[1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1]]


def test_unweighted_hits_are_exact_counts():
    """Shared half columns give, per half, the number of samples in the event (boundary 1/2), exactly."""
    twice = _twice((3, 5, 2, 101), seed=0)
    hits = direct.weighted_hits(twice, torch.ones(3, 1, 1, 101))
    expected = torch.stack([twice[..., :50].sum(-1), twice[..., 50:].sum(-1)], -1) / 2
    assert torch.equal(hits, expected)


def test_per_anomaly_columns_weigh_each_anomaly_with_its_own():
    twice = _twice((3, 4, 2, 60), seed=1)
    columns = torch.rand(3, 2, 2, 60, generator=torch.Generator().manual_seed(2))
    per_half = columns.double().unsqueeze(-2) * direct.half_columns(60).double()  # (D, K, J, 2, M)
    expected = torch.einsum("dckm,dkjhm->dckjh", twice.double(), per_half).flatten(-2) / 2
    torch.testing.assert_close(direct.weighted_hits(twice, columns).double(), expected, rtol=1e-6, atol=1e-6)


def test_event_sums_reach_weights_far_below_float32():
    """Events reached only through samples of weight e^-700 (relative to the draw's largest weight)
    keep their sums: recounted relative to their own largest weight, as the float64 reference."""
    num_d, num_c, num_k, num_m = 2, 6, 1, 400
    g = torch.Generator().manual_seed(3)
    log_w = torch.rand(num_d, num_k, num_m, dtype=torch.float64, generator=g) * 2 - 1
    far = torch.arange(num_m) % 10 == 0  # a tenth of the samples, in both halves
    log_w[..., far] = -700 - 20 * torch.rand(num_d, num_k, int(far.sum()), dtype=torch.float64, generator=g)
    twice = _twice((num_d, num_c, num_k, num_m), seed=4)
    twice[:, 0] = torch.where(far, twice[:, 0], 0.0)  # coalition 0: only far samples in the event
    twice[:, 1] = 0.0  # coalition 1: an empty event
    twice[:, 2] = torch.where(far, 0.0, twice[:, 2])  # coalition 2: no far sample in the event
    columns, log_scale = direct.weight_columns(log_w)
    hits, hits2, log_count_scale = direct.weighted_event_sums(twice, columns, log_scale.unsqueeze(1), log_w)
    # the ordinary coalitions keep the draw's scale; the far ones were recounted
    assert torch.equal(log_count_scale[:, 2], log_scale)
    assert bool((log_count_scale[:, 0] < -600).all())
    assert torch.equal(hits[:, 1], torch.zeros_like(hits[:, 1]))
    rows = [0, 2, 3, 4, 5]
    log_hits = hits[:, rows].double().log() + log_count_scale[:, rows].unsqueeze(-1)
    log_hits2 = hits2[:, rows].double().log() + 2 * log_count_scale[:, rows].unsqueeze(-1)
    # float32 log weights of -700 carry an error of about 3e-5
    torch.testing.assert_close(log_hits, _log_sum(twice[:, rows], log_w.unsqueeze(1), 1), rtol=0, atol=1e-3)
    torch.testing.assert_close(log_hits2, _log_sum(twice[:, rows], log_w.unsqueeze(1), 2), rtol=0, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(shift=st.floats(-600, 600), seed=st.integers(0, 10**6))
def test_event_sums_do_not_depend_on_the_weights_scale(shift, seed):
    """Multiplying every weight by e^shift multiplies every sum by it: the log sums move by shift
    (resp. 2 shift), whatever part is recounted."""
    g = torch.Generator().manual_seed(seed)
    log_w = torch.randn(2, 1, 200, dtype=torch.float64, generator=g) * 30
    twice = _twice((2, 3, 1, 200), seed=seed)
    out = []
    for lw in (log_w, log_w + shift):
        columns, log_scale = direct.weight_columns(lw)
        hits, hits2, log_count_scale = direct.weighted_event_sums(twice, columns, log_scale.unsqueeze(1), lw)
        out.append((hits.double().log() + log_count_scale.unsqueeze(-1), hits2.double().log() + 2 * log_count_scale.unsqueeze(-1)))
    (a1, a2), (b1, b2) = out
    torch.testing.assert_close(b1 - shift, a1, rtol=0, atol=1e-3 + 1e-6 * abs(shift))
    torch.testing.assert_close(b2 - 2 * shift, a2, rtol=0, atol=1e-3 + 2e-6 * abs(shift))


def _far_estimator(scm, chunk: int, monkeypatch) -> torch.Tensor:
    """Values of every coalition of the spline triangle for a far anomaly under the proposal."""
    monkeypatch.setattr(direct, "CHUNK_ELEMENTS", chunk)
    observed = triangle_observed([[0.0, 6.0, 0.5], [1.0, -1.0, 7.0]])
    parts = decompose_target(scm, "X2", TRIANGLE, observed, propagate_nonlinear=True)
    torch.manual_seed(0)
    est = MonteCarloTails(scm, parts, observed["X2"], base_score="median_cdf", num_mc_samples=401,
                          max_elements=2**25, conditional=True)
    est.propose_for(torch.ones(2, dtype=torch.bool))
    assert est.proposal is not None
    masks = torch.tensor(list(itertools.product([False, True], repeat=3)))
    return est(masks)


def test_chunks_of_coalitions_change_nothing_under_a_proposal(monkeypatch):
    """One coalition per chunk or all at once: the same values (up to float32 summation order)."""
    scm = fit_triangle({"X0": "gaussian", "X1": "spline", "X2": "gaussian"}, num_draws=4)
    one = _far_estimator(scm, 1, monkeypatch)
    many = _far_estimator(scm, 10**9, monkeypatch)
    assert bool(one[..., 0].isfinite().all())
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-5)


def test_anomalies_under_a_proposal_get_their_own_values_in_a_batch():
    """Two anomalies attributed together get the values each gets alone: the linear players'
    free part under a proposal, ``(D, R, K, M)``, pairs every anomaly with its own samples."""
    import networkx as nx
    import numpy as np
    import pandas as pd

    import bayesrca as br

    rng = np.random.default_rng(3)
    data = pd.DataFrame({k: rng.normal(size=500) for k in "AB"})
    data["Y"] = data.A + data.B + 0.5 * rng.normal(size=500)
    mechanisms = {"A": br.RootDistribution("bootstrap_gpd"), "B": br.RootDistribution("bootstrap_gpd"),
                  "Y": br.LinearANM("bootstrap_gpd")}
    scm = br.BayesianSCM(nx.DiGraph([("A", "Y"), ("B", "Y")]), mechanisms=mechanisms, num_draws=4).fit(data, seed=0)
    rows = [[-2.0, 8.0, 6.0], [5.0, 0.0, 5.5]]
    masks = torch.tensor(list(itertools.product([False, True], repeat=3)))

    def values(observed_rows):
        observed = {k: torch.tensor([[r[i]] for r in observed_rows], dtype=torch.float64) for i, k in enumerate("ABY")}
        parts = decompose_target(scm, "Y", ["A", "B", "Y"], observed, propagate_nonlinear=True)
        torch.manual_seed(0)
        est = MonteCarloTails(scm, parts, observed["Y"], base_score="median_cdf", num_mc_samples=401,
                              max_elements=2**25, conditional=True)
        est.propose_for(torch.ones(len(observed_rows), dtype=torch.bool))
        assert est.proposal is not None and (est.free_effect.dim() == 4 or len(observed_rows) == 1)
        return est(masks)

    both = values(rows)
    for k, row in enumerate(rows):
        torch.testing.assert_close(both[:, k], values([row])[:, 0], rtol=1e-5, atol=1e-5)
