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


def test_kernels_wider_than_the_atoms_are_many_and_few_distinct_atoms_are_exact():
    """A bandwidth spanning thousands of grid steps tabulates exactly (no convolution as wide as
    the grid); a density on a few distinct atoms is evaluated exactly at every query."""
    from bayesrca.counterfactual.density_tables import binned_log_kde

    gen = torch.Generator().manual_seed(5)
    draws = 3
    kde = ResidualKDE(torch.randn(draws, 40, generator=gen, dtype=torch.float64), torch.full((draws,), 5.0, dtype=torch.float64))
    lo, width = torch.full((draws,), -1.0, dtype=torch.float64), torch.full((draws,), 2.0, dtype=torch.float64)
    table = binned_log_kde(kde, lo, width, GRID)
    grid = lo.unsqueeze(-1) + width.unsqueeze(-1) * torch.linspace(0, 1, GRID, dtype=torch.float64)
    torch.testing.assert_close(table, kde.log_prob(grid.T.contiguous()).T, rtol=1e-9, atol=1e-9)

    few = ResidualKDE(torch.tensor([0.0, 100.0], dtype=torch.float64)[torch.randint(2, (draws, 300), generator=gen)],
                      torch.full((draws,), 1e-6, dtype=torch.float64))
    query = 200 * torch.randn(5000, 1, draws, generator=gen, dtype=torch.float64)
    (got,) = log_densities(few, [query])
    torch.testing.assert_close(got, few.log_prob(query), rtol=0, atol=0)


def test_exact_table_sums_over_distinct_atoms_and_a_moderately_wide_kernel_convolves():
    """Exact table sums use the distinct atoms with their counts (the same sum); a kernel a few
    times wider than the atoms are many is binned and convolved (within the table's error)."""
    from bayesrca.counterfactual.density_tables import EXP_COST, binned_log_kde

    gen = torch.Generator().manual_seed(7)
    draws = 3
    values = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    atoms = values[torch.randint(4, (draws, 400), generator=gen)]  # 4 distinct atoms of 400
    kde = ResidualKDE(atoms, torch.full((draws,), 3.0, dtype=torch.float64))
    assert kde._distinct() is not None
    lo, width = torch.full((draws,), -1.0, dtype=torch.float64), torch.full((draws,), 2.0, dtype=torch.float64)
    table = binned_log_kde(kde, lo, width, 512)  # kernel ~ 12,000 steps wide: exact sums over 4 terms
    grid = lo.unsqueeze(-1) + width.unsqueeze(-1) * torch.linspace(0, 1, 512, dtype=torch.float64)
    torch.testing.assert_close(table, kde.log_prob(grid.T.contiguous()).T, rtol=1e-9, atol=1e-9)

    spread = ResidualKDE(torch.randn(draws, 100, generator=gen, dtype=torch.float64), torch.full((draws,), 0.05, dtype=torch.float64))
    size = 401  # step 0.005 = h / 10: the kernel spans 161 steps, more than the 100 atoms, below EXP_COST x 100
    assert 100 < 161 < EXP_COST * 100
    table = binned_log_kde(spread, lo, width, size)
    grid = lo.unsqueeze(-1) + width.unsqueeze(-1) * torch.linspace(0, 1, size, dtype=torch.float64)
    torch.testing.assert_close(table, spread.log_prob(grid.T.contiguous()).T, rtol=0, atol=GRID_TOL)
