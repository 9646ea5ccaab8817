"""Tests of bayesrca.counterfactual.density_tables: tabulated log densities against exact ones."""

from __future__ import annotations

import torch
from pyro.distributions import Categorical, MixtureSameFamily, Normal

from bayesrca.counterfactual.density_tables import GRID, GRID_TOL, log_densities
from bayesrca.mechanisms.noise import ResidualKDE


def test_tabulated_log_densities_match_exact_and_fall_back_when_the_table_is_wrong():
    """``log_densities``: a kernel density of 200 draws is tabulated (with the check on a subset
    of rows) to within GRID_TOL at every query; a density with a spike narrower than the grid's
    step fails the check and is evaluated exactly, so no query is off."""
    gen = torch.Generator().manual_seed(3)
    draws = 200
    kde = ResidualKDE(torch.randn(draws, 300, generator=gen, dtype=torch.float64),
                      torch.full((draws,), 0.3, dtype=torch.float64))
    queries = [4 * torch.randn(3000, 1, draws, generator=gen, dtype=torch.float64) for _ in range(2)]
    for got, q in zip(log_densities(kde, queries), queries):
        assert torch.allclose(got, kde.log_prob(q), atol=GRID_TOL, rtol=0)

    # a spike of width 1e-5 on a grid of GRID points over [-5, 5] (step ~ 2.4e-3): missed by the table
    spike = MixtureSameFamily(
        Categorical(probs=torch.tensor([[0.5, 0.5]] * draws, dtype=torch.float64)),
        Normal(torch.zeros(draws, 2, dtype=torch.float64), torch.tensor([[1.0, 1e-5]] * draws, dtype=torch.float64)),
    )
    near = 1e-5 * torch.randn(GRID, 1, draws, generator=gen, dtype=torch.float64)
    span = torch.linspace(-5, 5, GRID, dtype=torch.float64).reshape(-1, 1, 1).expand(GRID, 1, draws)
    query = torch.cat([near, span])
    (got,) = log_densities(spike, [query])
    assert torch.allclose(got, spike.log_prob(query), atol=1e-9, rtol=0)
