"""Tests of bayesrca._random: seed resolution, child seeds and the ``seeded`` RNG/param-store sandbox."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from bayesrca._random import child_seeds, resolve_seed, seeded
from bayesrca.exceptions import BayesRCAError, ConfigError


# ---------------------------------------------------------------------------------------------
# resolve_seed
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40])
def test_resolve_seed_int_is_returned_unchanged(seed):
    out = resolve_seed(seed)
    assert out == seed
    assert type(out) is int


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint32, np.uint64])
def test_resolve_seed_numpy_integer_becomes_python_int(dtype):
    out = resolve_seed(dtype(7))
    assert out == 7
    assert type(out) is int


def test_resolve_seed_none_draws_fresh_non_negative_ints():
    draws = [resolve_seed(None) for _ in range(20)]
    assert all(type(s) is int and 0 <= s < 2**32 for s in draws)
    # 32-bit OS entropy: twenty identical draws would mean the seed is not fresh
    assert len(set(draws)) > 1


def test_resolve_seed_generator_is_deterministic_and_advances_it():
    a = resolve_seed(np.random.default_rng(3))
    b = resolve_seed(np.random.default_rng(3))
    c = resolve_seed(np.random.default_rng(4))
    assert a == b
    assert a != c
    assert type(a) is int and 0 <= a < 2**31 - 1
    rng = np.random.default_rng(3)
    first, second = resolve_seed(rng), resolve_seed(rng)
    assert first == a
    assert second != first  # the generator's state moved on


def test_resolve_seed_generator_matches_its_integers_draw():
    expected = int(np.random.default_rng(11).integers(0, 2**31 - 1))
    assert resolve_seed(np.random.default_rng(11)) == expected


@pytest.mark.parametrize("bad", [-1, -(2**40), 1.5, 2.0, "3", True, False, [1], (1,), np.float64(1.0)])
def test_resolve_seed_rejects_invalid_seeds(bad):
    with pytest.raises(ConfigError, match="seed must be a non-negative integer") as info:
        resolve_seed(bad)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, BayesRCAError) and isinstance(info.value, ValueError)


def test_resolve_seed_rejects_legacy_random_state():
    with pytest.raises(ConfigError):
        resolve_seed(np.random.RandomState(0))


def test_resolve_seed_rejects_negative_numpy_integer():
    with pytest.raises(ConfigError):
        resolve_seed(np.int64(-5))


# ---------------------------------------------------------------------------------------------
# child_seeds
# ---------------------------------------------------------------------------------------------
def test_child_seeds_deterministic_distinct_and_in_range():
    seeds = child_seeds(42, 50)
    assert seeds == child_seeds(42, 50)
    assert len(seeds) == 50
    assert len(set(seeds)) == 50
    assert all(type(s) is int and 0 <= s < 2**32 for s in seeds)


def test_child_seeds_depend_on_the_parent_seed():
    assert child_seeds(0, 5) != child_seeds(1, 5)
    assert set(child_seeds(0, 5)).isdisjoint(child_seeds(1, 5))


def test_child_seeds_are_seed_sequence_words():
    expected = [int(s) for s in np.random.SeedSequence(9).generate_state(4)]
    assert child_seeds(9, 4) == expected
    # the children are not just the parent seed or consecutive integers
    seeds = child_seeds(9, 4)
    assert 9 not in seeds
    assert np.diff(seeds).tolist() != [1, 1, 1]


def test_child_seeds_zero_count():
    assert child_seeds(5, 0) == []


# ---------------------------------------------------------------------------------------------
# seeded
# ---------------------------------------------------------------------------------------------
def test_seeded_makes_global_draws_reproducible():
    with seeded(5):
        a = torch.randn(10)
    with seeded(5):
        b = torch.randn(10)
    with seeded(6):
        c = torch.randn(10)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_seeded_seeds_torch_as_manual_seed_does():
    with seeded(123):
        inside = torch.rand(5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        expected = torch.rand(5)
    assert torch.equal(inside, expected)


def test_seeded_restores_global_torch_rng_state():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with seeded(1):
        torch.randn(1000)
    assert torch.equal(torch.get_rng_state(), before)
    # the caller's stream continues as if the block had never run
    after_block = torch.randn(5)
    torch.manual_seed(0)
    untouched = torch.randn(5)
    assert torch.equal(after_block, untouched)


def test_seeded_restores_rng_state_on_exception():
    torch.manual_seed(2)
    before = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        with seeded(3):
            torch.randn(100)
            raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), before)


def test_seeded_yields_its_own_generator_stream():
    with seeded(8) as gen:
        assert isinstance(gen, torch.Generator)
        perm_a = torch.randperm(20, generator=gen)
    with seeded(8) as gen:
        torch.randn(5000)  # drawing global noise must not shift the generator's stream
        perm_b = torch.randperm(20, generator=gen)
    assert torch.equal(perm_a, perm_b)
    assert torch.equal(perm_a, torch.randperm(20, generator=torch.Generator().manual_seed(8)))
    with seeded(9) as gen:
        perm_c = torch.randperm(20, generator=gen)
    assert not torch.equal(perm_a, perm_c)


def test_seeded_starts_with_empty_store_and_restores_callers_params():
    pyro.clear_param_store()
    try:
        pyro.param("outer", torch.tensor([1.0, 2.0]))
        with seeded(0):
            store = pyro.get_param_store()
            assert "outer" not in store.keys()  # the block starts with an empty store
            pyro.param("outer", torch.tensor([9.0]))  # same name, other value, inside the block
            assert "outer" in store.keys()
        assert torch.equal(pyro.param("outer").detach(), torch.tensor([1.0, 2.0]))
    finally:
        pyro.clear_param_store()


# Regression: ParamStoreDict.set_state merges the saved params into the store instead of
# replacing it, so seeded() must clear the store before restoring it.


def test_seeded_does_not_leak_params_created_in_the_block():
    pyro.clear_param_store()
    try:
        pyro.param("outer", torch.tensor([1.0, 2.0]))
        with seeded(0):
            pyro.param("inner", torch.tensor(3.0))
        assert set(pyro.get_param_store().keys()) == {"outer"}
    finally:
        pyro.clear_param_store()


def test_seeded_does_not_leak_params_on_exception():
    pyro.clear_param_store()
    try:
        pyro.param("kept", torch.tensor(5.0))
        with pytest.raises(ValueError):
            with seeded(0):
                pyro.param("temp", torch.tensor(1.0))
                raise ValueError("fail")
        assert pyro.param("kept").item() == 5.0
        assert set(pyro.get_param_store().keys()) == {"kept"}
    finally:
        pyro.clear_param_store()


def test_seeded_leaves_the_callers_later_param_init_alone():
    # consequence of the leak: a caller's later pyro.param(name, init) silently gets the
    # block's value instead of its own init
    pyro.clear_param_store()
    try:
        with seeded(0):
            pyro.param("w", torch.tensor(100.0))
        assert pyro.param("w", torch.tensor(0.0)).item() == 0.0
    finally:
        pyro.clear_param_store()


def test_seeded_nested_blocks_restore_outer_stream():
    with seeded(1):
        first = torch.randn(3)
        with seeded(2):
            torch.randn(100)
        second = torch.randn(3)
    with seeded(1):
        expected = torch.randn(6)
    assert torch.equal(torch.cat([first, second]), expected)
