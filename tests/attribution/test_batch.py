"""Tests of bayesrca.attribution.batch: cutting anomaly rows into batches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bayesrca.attribution.batch import split_chunks


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6), data=st.data())
def test_split_chunks_covers_every_row_once_and_isolates_the_single_ones(sizes, data):
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start, start + size))
        start += size
    single = dict.fromkeys(data.draw(st.sets(st.integers(0, start - 1))))
    out = split_chunks(bounds, single)
    rows = [i for _, lo, hi in out for i in range(lo, hi)]
    assert rows == list(range(start))  # every row once, in order
    for first, lo, hi in out:
        assert first == lo  # no padding rows in a split batch
        if any(i in single for i in range(lo, hi)):
            assert hi - lo == 1  # a conditioned row is a batch of its own


def test_split_chunks_keeps_untouched_batches_with_their_padding():
    assert split_chunks([(0, 2, 5), (5, 5, 8)], {6: None}) == [(0, 2, 5), (5, 5, 6), (6, 6, 7), (7, 7, 8)]
