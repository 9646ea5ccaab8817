"""Memory planning for :func:`bayesrca.attribute_anomalies`: chunk sizes within a budget.

The working set of an attribution call is estimated from its sizes (draws, anomalies, players,
Monte Carlo samples, coalitions) with per-element costs calibrated on ``benchmarks/memory.py``;
anomalies are then processed in chunks and the engine's ``max_elements`` lowered to fit. Chunking
does not change the numbers (every chunk starts from the same seed), except through importance
sampling's density tables, whose grid spans a chunk's queries (differences of about 1e-4 nats).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..counterfactual import SORTED_MIN_ANOMALIES
from ..exceptions import ConfigError

__all__ = ["memory_plan"]

_RESULT_COPIES = 2  # the draws filled chunk by chunk + the read-only copy AttributionResult keeps
_MC_FIXED_PER_SAMPLE = 48  # per (Monte Carlo sample x draw x player): fresh-noise trace and the engine's copies
_BYTES_PER_ELEMENT = {"analytic": 16, "mc": 80}  # working set per element of max_elements
_CALL_OVERHEAD = {"analytic": 16 * 2**20, "mc": 48 * 2**20}  # first-call allocations (allocator arenas, sort buffers)
_MIB = 2**20
#: importance sampling, per (Monte Carlo sample x draw) of each anomaly: the moved noise of every
#: player (float64, its float32 copy and the linear players' free effect, per player) and one
#: player's density queries and mixture terms at a time (the weights are a running log-sum-exp over
#: players); calibrated on ``benchmarks/memory.py`` (29 players, 100 samples, 100 draws)
_IS_BYTES_PER_SAMPLE_PLAYER = 16
_IS_BYTES_PER_SAMPLE = 160

class _Plan(NamedTuple):
    """How one call is cut: the engine's ``max_elements`` and ``(first, start, stop)`` anomaly chunks
    (rows ``first:start`` are computed only to pad a short last chunk and are dropped)."""

    max_elements: int
    chunks: list[tuple[int, int, int]]


def memory_plan(
    *,
    path: str,
    sorted_path: bool,
    num_anomalies: int,
    num_draws: int,
    num_players: int,
    num_mc_samples: int,
    num_coalitions: int,
    max_elements: int,
    budget_mb: float | None,
    importance: bool = False,
    max_chunk: int | None = None,
) -> _Plan:
    """Chunk sizes that keep the estimated working set of a call within ``budget_mb``.

    The budget is of live tensors. The process's resident set can exceed it by what the C
    allocator keeps after frees (glibc: blocks below its adaptive mmap threshold, returned only from
    the top of its heap; about +90 MiB measured at a 128 MiB budget, ``benchmarks/memory.py``);
    ``MALLOC_MMAP_THRESHOLD_=65536`` in the environment makes glibc return them at once.
    The estimate has three parts: the returned draws (``_RESULT_COPIES`` float64 copies of
    draws x anomalies x (players + 1)); on the Monte Carlo path the fresh noise of one chunk's engine
    (``_MC_FIXED_PER_SAMPLE`` bytes per sample x draw x player, independent of the anomalies); and
    the chunked part: ``_BYTES_PER_ELEMENT`` bytes per element of ``max_elements`` plus the per-anomaly
    state of a chunk (abducted noises, kept effects and the Shapley accumulators, float64).
    On the sorted Monte Carlo path anomaly chunks are made as large as the budget allows (each
    chunk sorts every coalition's samples again) and the rest goes to ``max_elements``; elsewhere
    the number of engine calls depends on ``max_elements`` only, and half goes to each.

    With ``importance`` (the Monte Carlo path may sample by importance) each anomaly of a chunk also
    holds its proposal: the moved noise of every player and one player's log terms of the mixture
    weights at a time, ``_IS_BYTES_PER_SAMPLE_PLAYER * players + _IS_BYTES_PER_SAMPLE`` bytes per
    sample x draw, counted whether or not the
    anomaly turns out rare (that is decided inside the engine).

    ``max_chunk`` caps the anomalies per chunk (a user's ``batch_size``); the sorted path's
    minimum chunk size still holds (a short chunk is padded with the rows before it).

    Raises
    ------
    ConfigError
        If the budget is below the fixed parts plus one chunk of the smallest size.
    """
    d, n, m, k = num_draws, num_players, num_mc_samples, num_anomalies
    per_k_values = 1 if path == "analytic" else 3  # estimates per contribution (all samples, two halves)
    if path == "analytic":
        per_anomaly = d * min(num_coalitions, 2**20)
        floor_elements = 3 * d  # one coalition of one anomaly
    elif sorted_path and k >= SORTED_MIN_ANOMALIES:  # sorted samples are shared by all anomalies of a chunk
        per_anomaly = d * 16
        floor_elements = d * (2 * m + 4 * SORTED_MIN_ANOMALIES)
    else:  # every sample compared with every anomaly
        per_anomaly = d * 16 * m
        floor_elements = 2 * d * m
    # the sorted path needs SORTED_MIN_ANOMALIES anomalies per chunk: the numbers would differ otherwise
    min_chunk = SORTED_MIN_ANOMALIES if sorted_path and k >= SORTED_MIN_ANOMALIES else 1
    if budget_mb is None:
        elements = max_elements
        chunk = max(min_chunk, min(k, elements // per_anomaly))
    else:
        bpe = _BYTES_PER_ELEMENT[path]
        state = 8 * d * n * (2 * per_k_values + 6)  # per anomaly of a chunk
        if importance and path == "mc":
            state += (_IS_BYTES_PER_SAMPLE_PLAYER * n + _IS_BYTES_PER_SAMPLE) * m * d
        result = 8 * _RESULT_COPIES * (d * k * (n + 1) + k * n)
        fixed = result + _CALL_OVERHEAD[path] + (0 if path == "analytic" else _MC_FIXED_PER_SAMPLE * m * d * n)
        floor = fixed + bpe * floor_elements + min_chunk * state
        budget = budget_mb * _MIB
        if budget < floor:
            mc = "" if path == "analytic" else (
                f", {_MC_FIXED_PER_SAMPLE * m * d * n / _MIB:.0f} MiB for the Monte Carlo noise "
                f"({m} samples x {d} draws x {n} players; lower num_mc_samples to need less)"
            )
            raise ConfigError(
                f"max_memory_mb={budget_mb:g} is too small for this call: it needs at least "
                f"{math.ceil(floor / _MIB)} MiB ({result / _MIB:.0f} MiB for the returned draws of {k} anomalies x "
                f"{d} draws x {n} nodes{mc}); raise max_memory_mb, or attribute fewer anomalies per call"
            )
        avail = budget - fixed
        if sorted_path and min_chunk > 1:  # anomalies first: each chunk sorts every coalition's samples again
            chunk = max(min_chunk, min(k, int((avail - bpe * floor_elements) // state)))
            elements = int(min(max_elements, max(floor_elements, (avail - chunk * state) / bpe)))
        else:  # the number of engine calls falls with max_elements, whatever the chunk: share the budget
            elements = int(min(max_elements, max(floor_elements, avail / 2 / bpe)))
            by_state = int((avail - bpe * elements) // state)
            chunk = max(min_chunk, min(k, max(1, elements // per_anomaly), by_state))
        chunk = max(min_chunk, min(chunk, elements // (3 * d)))  # one coalition of the chunk fits
    if max_chunk is not None:
        chunk = max(min_chunk, min(chunk, max_chunk))
    chunk = min(chunk, k) if k >= min_chunk else k
    chunks = []
    for start in range(0, k, max(chunk, 1)):
        stop = min(k, start + chunk)
        first = min(start, max(0, stop - min_chunk))  # pad a short last chunk with the rows before it
        chunks.append((first, start, stop))
    return _Plan(elements, chunks)
