"""Tests of bayesrca.shapley: Shapley axioms, exactness, estimators and validation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesrca.exceptions import ConfigError
from bayesrca.shapley import ShapleyOptions, all_coalitions, exact_shapley_coefficients, shapley_estimate, shapley_values

SETTINGS = settings(max_examples=50, deadline=None)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
small_n = st.integers(min_value=1, max_value=6)
batch_shapes = st.lists(st.integers(min_value=1, max_value=3), min_size=0, max_size=2).map(tuple)


def keys_of(masks: torch.Tensor) -> torch.Tensor:
    """Integer key of each coalition row (player j <-> bit j)."""
    return (masks.long() << torch.arange(masks.shape[1])).sum(dim=1)


def table_game(table: torch.Tensor):
    """Set function that looks each coalition up in ``table[2**n, *batch]``."""
    return lambda masks: table[keys_of(masks)]


def random_table(n: int, batch: tuple[int, ...], seed: int, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((2**n, *batch), generator=gen, dtype=dtype)


def additive_game(weights: torch.Tensor):
    """v(S) = sum_{j in S} weights[j, ...]; weights has shape (n, *batch)."""
    return lambda masks: torch.tensordot(masks.to(weights.dtype), weights, dims=([1], [0]))


def brute_force(table: torch.Tensor, n: int) -> torch.Tensor:
    """Textbook Shapley formula, looping over players and subsets."""
    phi = torch.zeros((*table.shape[1:], n), dtype=table.dtype)
    for j in range(n):
        others = [i for i in range(n) if i != j]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                key = sum(1 << i for i in subset)
                phi[..., j] += weight * (table[key | (1 << j)] - table[key])
    return phi


def test_all_coalitions_binary_digits():
    masks = all_coalitions(3)
    assert masks.dtype == torch.bool and masks.shape == (8, 3)
    assert torch.equal(keys_of(masks), torch.arange(8))
    assert masks[5].tolist() == [True, False, True]


@SETTINGS
@given(n=small_n)
def test_coefficients_rows_and_columns(n):
    coef = exact_shapley_coefficients(n)
    assert coef.shape == (2**n, n) and coef.dtype == torch.float64
    # Column j: positive weights over S containing j sum to 1, negative ones to -1.
    masks = all_coalitions(n)
    assert torch.allclose((coef * masks).sum(0), torch.ones(n, dtype=torch.float64))
    assert torch.allclose((coef * ~masks).sum(0), -torch.ones(n, dtype=torch.float64))
    assert exact_shapley_coefficients(n, dtype=torch.float32).dtype == torch.float32


def test_coefficients_stable_for_twenty_players():
    coef = exact_shapley_coefficients(20)
    assert torch.isfinite(coef).all()
    assert torch.allclose(coef.sum(0), torch.zeros(20, dtype=torch.float64), atol=1e-12)


@SETTINGS
@given(n=st.integers(1, 5), batch=batch_shapes, seed=seeds)
def test_exact_matches_textbook_formula(n, batch, seed):
    table = random_table(n, batch, seed)
    phi = shapley_values(table_game(table), n, method="exact")
    assert phi.shape == (*batch, n)
    torch.testing.assert_close(phi, brute_force(table, n), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(n=small_n, batch=batch_shapes, seed=seeds, method=st.sampled_from(["exact", "permutation"]))
def test_efficiency(n, batch, seed, method):
    table = random_table(n, batch, seed)
    gen = torch.Generator().manual_seed(seed)
    phi = shapley_values(table_game(table), n, method=method, num_permutations=7, generator=gen)
    torch.testing.assert_close(phi.sum(-1), table[-1] - table[0], rtol=1e-10, atol=1e-10)


@SETTINGS
@given(n=st.integers(2, 6), seed=seeds, data=st.data())
def test_symmetry_exact(n, seed, data):
    i, k = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
    table = random_table(n, (2,), seed)
    masks = all_coalitions(n)
    swapped = masks.clone()
    swapped[:, [i, k]] = masks[:, [k, i]]
    symmetric = table + table[keys_of(swapped)]  # v(S) = v(swap(S))
    phi = shapley_values(table_game(symmetric), n, method="exact")
    torch.testing.assert_close(phi[..., i], phi[..., k], rtol=1e-10, atol=1e-10)


@SETTINGS
@given(n=st.integers(2, 6), seed=seeds, data=st.data())
def test_null_player_exact(n, seed, data):
    null = data.draw(st.integers(0, n - 1))
    table = random_table(n, (3,), seed)
    without_null = all_coalitions(n).clone()
    without_null[:, null] = False
    game = table[keys_of(without_null)]  # v(S) = v(S \ {null})
    phi = shapley_values(table_game(game), n, method="exact")
    torch.testing.assert_close(phi[..., null], torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


@SETTINGS
@given(n=st.integers(2, 8), seed=seeds, data=st.data())
def test_null_player_permutation_additive(n, seed, data):
    null = data.draw(st.integers(0, n - 1))
    weights = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weights[null] = 0.0
    gen = torch.Generator().manual_seed(seed)
    phi = shapley_values(additive_game(weights), n, method="permutation", generator=gen)
    torch.testing.assert_close(phi[..., null], torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)


@SETTINGS
@given(n=small_n, batch=batch_shapes, seed=seeds)
def test_linearity_exact(n, batch, seed):
    v, w = random_table(n, batch, seed), random_table(n, batch, seed + 1)
    phi_v = shapley_values(table_game(v), n, method="exact")
    phi_w = shapley_values(table_game(w), n, method="exact")
    phi_sum = shapley_values(table_game(2.0 * v + w), n, method="exact")
    torch.testing.assert_close(phi_sum, 2.0 * phi_v + phi_w, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(n=st.integers(1, 30), seed=seeds, method=st.sampled_from(["exact", "permutation"]))
def test_additive_game(n, seed, method):
    if method == "exact":
        n = min(n, 8)
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randint(-20, 21, (n, 2), generator=gen).to(torch.float64)
    phi = shapley_values(additive_game(weights), n, method=method, num_permutations=5, generator=gen)
    torch.testing.assert_close(phi, weights.T, rtol=0, atol=1e-12)


def test_single_player():
    game = lambda masks: torch.where(masks[:, 0], 5.0, 2.0)[:, None].expand(-1, 3)  # noqa: E731
    for method in ("exact", "permutation"):
        phi = shapley_values(game, 1, method=method)
        assert phi.shape == (3, 1)
        torch.testing.assert_close(phi, torch.full((3, 1), 3.0))


def test_permutation_agrees_with_exact_on_nonlinear_game():
    n = 6
    weights = torch.linspace(-1.0, 2.0, n, dtype=torch.float64)

    def game(masks):
        x = masks.to(torch.float64)
        s = x @ weights
        return torch.stack([s**2, torch.sin(3 * s) + x[:, 0] * x[:, 3]], dim=-1)

    exact = shapley_values(game, n, method="exact")
    gen = torch.Generator().manual_seed(0)
    approx = shapley_values(game, n, method="permutation", num_permutations=4000, generator=gen)
    torch.testing.assert_close(approx, exact, rtol=0, atol=0.05)


def test_permutation_handles_more_than_one_key_word():
    n = 130  # keys span three int64 words
    weights = torch.arange(n, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    phi = shapley_values(additive_game(weights), n, num_permutations=4, generator=gen)
    torch.testing.assert_close(phi, weights, rtol=0, atol=1e-9)


def test_permutation_evaluates_each_coalition_once():
    seen = []

    def game(masks):
        seen.append(masks)
        return masks.sum(1).to(torch.float64) ** 2

    shapley_values(game, 5, method="permutation", num_permutations=64, chunk_size=7,
                   generator=torch.Generator().manual_seed(3))
    keys = keys_of(torch.cat(seen))
    assert keys.numel() == keys.unique().numel()
    assert max(m.shape[0] for m in seen) <= 7


def test_exact_evaluates_each_coalition_once():
    seen = []

    def game(masks):
        seen.append(masks)
        return masks.sum(1).to(torch.float64)

    shapley_values(game, 4, method="exact")
    assert torch.equal(torch.sort(keys_of(torch.cat(seen))).values, torch.arange(16))


def test_auto_switches_on_max_exact_players():
    calls = []

    def game(masks):
        calls.append(masks.shape[0])
        return masks.sum(1).to(torch.float64)

    shapley_values(game, 4, max_exact_players=4)
    assert calls == [16]
    calls.clear()
    shapley_values(game, 4, max_exact_players=3, num_permutations=2,
                   generator=torch.Generator().manual_seed(0))
    assert calls[0] <= 2 * 5 - 2  # one permutation and its reverse share the empty and full sets


@SETTINGS
@given(n=st.integers(2, 10), seed=seeds)
def test_determinism_with_seeded_generator(n, seed):
    table = random_table(n, (2,), seed)
    runs = [
        shapley_values(table_game(table), n, method="permutation", num_permutations=9,
                       generator=torch.Generator().manual_seed(seed))
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


@SETTINGS
@given(n=st.integers(1, 6), seed=seeds, chunk=st.integers(1, 70),
       method=st.sampled_from(["exact", "permutation"]))
def test_chunk_size_gives_identical_results(n, seed, chunk, method):
    table = random_table(n, (2, 2), seed)

    def run(chunk_size):
        gen = torch.Generator().manual_seed(seed)
        return shapley_values(table_game(table), n, method=method, generator=gen, chunk_size=chunk_size)

    # chunks are contracted one by one and summed: equal up to float rounding
    torch.testing.assert_close(run(None), run(chunk), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["exact", "permutation"])
def test_dtype_preserved(dtype, method):
    table = random_table(4, (3,), 0, dtype=dtype)
    phi = shapley_values(table_game(table), 4, method=method, generator=torch.Generator().manual_seed(0))
    assert phi.dtype == dtype and phi.shape == (3, 4)


def test_gradients_flow_through_values():
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    phi = shapley_values(lambda m: (m.to(torch.float64) @ weights) ** 2, 3, method="exact")
    phi.sum().backward()
    assert weights.grad is not None and torch.isfinite(weights.grad).all()


def _game(masks):
    return masks.sum(1).to(torch.float64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "banzhaf"}, "method"),
        ({"num_players": 0}, "num_players"),
        ({"num_players": 2.5}, "num_players"),
        ({"num_permutations": 0, "method": "permutation"}, "num_permutations"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"max_exact_players": -1}, "max_exact_players"),
        ({"max_exact_players": 40}, "max_exact_players"),
        ({"num_players": 40, "method": "exact"}, "permutation"),
        ({"set_function": lambda m: torch.zeros(m.shape[0] + 1)}, "first dimension"),
        ({"set_function": lambda m: torch.tensor(1.0)}, "first dimension"),
        ({"set_function": lambda m: [0.0] * m.shape[0]}, "torch.Tensor"),
        ({"set_function": lambda m: torch.zeros(m.shape[0], m.shape[0]), "chunk_size": 3}, "batch shape"),
        ({"set_function": 3}, "callable"),
    ],
)
def test_config_errors(kwargs, match):
    args = {"set_function": _game, "num_players": 3, **kwargs}
    with pytest.raises(ConfigError, match=match):
        shapley_values(args.pop("set_function"), args.pop("num_players"), **args)


def test_all_coalitions_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="num_players"):
        all_coalitions(0)
    with pytest.raises(ConfigError, match="num_players"):
        exact_shapley_coefficients(64)


# --- early stopping -------------------------------------------------------------------------


def _nonlinear_game(n: int, batch: int = 6, seed: int = 0):
    """v(S) = log(1 + s^2) + sin(s), s = sum of the members' weights: no closed-form Shapley values."""
    weights = torch.rand(n, batch, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def game(masks: torch.Tensor) -> torch.Tensor:
        s = masks.to(torch.float64) @ weights
        return torch.log1p(s**2) + torch.sin(s)

    return game


def test_early_stopping_is_within_its_reported_error_of_a_large_permutation_answer():
    n = 25
    game = _nonlinear_game(n)
    est = shapley_estimate(game, n, method=ShapleyOptions("early_stopping", tolerance=0.03),
                           generator=torch.Generator().manual_seed(1))
    assert est.converged and est.num_permutations < 2000
    ref = shapley_values(game, n, method="permutation", num_permutations=20_000,
                         generator=torch.Generator().manual_seed(2))
    ref_se = est.std_error * math.sqrt(est.num_permutations / 20_000)  # the reference's own error, same variance
    z = (est.values - ref) / (est.std_error**2 + ref_se**2).sqrt()
    assert float(z.abs().max()) < 4.5  # 150 players x elements: a 4.5-sd miss is a defect, not chance
    assert 0.5 < float(z.std()) < 1.5  # the reported error is of the right size, neither far too small nor too large
    full, empty = game(torch.ones(1, n, dtype=torch.bool))[0], game(torch.zeros(1, n, dtype=torch.bool))[0]
    torch.testing.assert_close(est.values.sum(-1), full - empty)  # efficiency of the estimate
    torch.testing.assert_close((est.values + est.jitter).sum(-1), full - empty)  # and with the error folded in
    assert float((est.jitter / est.std_error).std()) == pytest.approx(1.0, abs=0.25)


def test_early_stopping_error_shrinks_with_a_tighter_tolerance_and_stops_at_the_cap():
    n = 20
    game = _nonlinear_game(n, seed=3)
    loose = shapley_estimate(game, n, method=ShapleyOptions("early_stopping", tolerance=0.06),
                             generator=torch.Generator().manual_seed(0))
    tight = shapley_estimate(game, n, method=ShapleyOptions("early_stopping", tolerance=0.03),
                             generator=torch.Generator().manual_seed(0))
    assert loose.converged and tight.converged
    assert tight.num_permutations > loose.num_permutations
    pooled = [e.std_error.pow(2).mean(0).sqrt() for e in (loose, tight)]  # per player, over the batch
    assert float(pooled[0].max()) <= 0.06 and float(pooled[1].max()) <= 0.03
    assert float(pooled[1].max()) < float(pooled[0].max())
    capped = shapley_estimate(game, n, method=ShapleyOptions("early_stopping", 64, tolerance=1e-6),
                              generator=torch.Generator().manual_seed(0))
    assert not capped.converged and capped.num_permutations == 64
    default = shapley_estimate(game, n, method="early_stopping", generator=torch.Generator().manual_seed(0))
    total = game(torch.ones(1, n, dtype=torch.bool))[0] - game(torch.zeros(1, n, dtype=torch.bool))[0]
    assert default.converged  # default tolerance: 1 % of the root-mean-square total
    assert float(default.std_error.pow(2).mean(0).sqrt().max()) <= 0.01 * float(total.pow(2).mean().sqrt())


@SETTINGS
@given(n=st.integers(min_value=2, max_value=9), seed=seeds, data=st.data())
def test_early_stopping_null_player_gets_zero_and_efficiency_holds(n, seed, data):
    null = data.draw(st.integers(min_value=0, max_value=n - 1))
    table = random_table(n, (3,), seed)
    keep = torch.ones(n, dtype=torch.bool)
    keep[null] = False

    def game(masks: torch.Tensor) -> torch.Tensor:
        return table[keys_of(masks & keep)]  # any game of the others; the null player never changes a value

    est = shapley_estimate(game, n, method=ShapleyOptions("early_stopping", 96, tolerance=1e-3),
                           generator=torch.Generator().manual_seed(seed))
    # zero up to the rounding of the contraction (GEMM may pair +v(S) and -v(S) through other terms)
    assert float(est.values[..., null].abs().max()) <= 1e-12 and float(est.std_error[..., null].max()) <= 1e-12
    assert float(est.jitter[..., null].abs().max()) <= 1e-12
    full, empty = game(torch.ones(1, n, dtype=torch.bool))[0], game(torch.zeros(1, n, dtype=torch.bool))[0]
    torch.testing.assert_close((est.values + est.jitter).sum(-1), full - empty)


@SETTINGS
@given(n=st.integers(min_value=2, max_value=8), seed=seeds)
def test_early_stopping_symmetric_players_agree_within_their_error(n, seed):
    weights = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weights[1] = weights[0]  # players 0 and 1 are interchangeable

    def game(masks: torch.Tensor) -> torch.Tensor:
        s = masks.to(torch.float64) @ weights
        return torch.sqrt(1 + s**2)

    est = shapley_estimate(game, n, method="early_stopping", generator=torch.Generator().manual_seed(seed))
    gap = (est.values[..., 0] - est.values[..., 1]).abs()
    bound = 6 * (est.std_error[..., 0] ** 2 + est.std_error[..., 1] ** 2).sqrt() + 1e-12
    assert torch.all(gap <= bound)


def test_exact_and_permutation_estimates_report_their_error_as_documented():
    game = _nonlinear_game(4)
    exact = shapley_estimate(game, 4, method="exact")
    assert torch.all(exact.std_error == 0) and exact.jitter is None and exact.num_permutations is None
    perm = shapley_estimate(game, 4, method="permutation", num_permutations=8, generator=torch.Generator().manual_seed(0))
    assert perm.std_error is None and perm.num_permutations == 8
    torch.testing.assert_close(
        perm.values, shapley_values(game, 4, method="permutation", num_permutations=8, generator=torch.Generator().manual_seed(0))
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "permutation", "tolerance": 0.1}, "early_stopping"),
        ({"method": "early_stopping", "tolerance": 0.0}, "tolerance"),
        ({"method": "early_stopping", "tolerance": float("nan")}, "tolerance"),
        ({"method": "early_stopping", "tolerance": True}, "tolerance"),
        ({"method": "early_stopping", "num_permutations": 0}, "num_permutations"),
    ],
)
def test_early_stopping_options_are_checked(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ShapleyOptions(**kwargs)
