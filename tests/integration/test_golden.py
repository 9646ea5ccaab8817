"""Golden test: fixed seeded runs (attribution on the closed-form and Monte Carlo paths, outlier
scores, save/load, permutation Shapley, memory-budgeted chunks, distribution change, intrinsic
causal influence, discrete nodes) reproduce the recorded numbers bit for bit.

The numbers were recorded before the package was reorganised (issue 15) with
``python -m tests.golden.cases --write``; a change that moves any of them is a change of behaviour
and must say so (re-record deliberately, never to make this pass).
"""

import numpy as np
import pytest

from tests.golden.cases import GOLDEN, compute


@pytest.fixture(scope="module")
def computed():
    return compute()


def test_golden_numbers_unchanged(computed):
    recorded = np.load(GOLDEN)
    assert sorted(computed) == sorted(recorded.files)
    changed = [k for k in recorded.files if not np.array_equal(computed[k], recorded[k], equal_nan=True)]
    detail = {k: float(np.nanmax(np.abs(computed[k] - recorded[k]))) for k in changed if computed[k].shape == recorded[k].shape}
    assert not changed, f"golden numbers moved: {detail or changed}"
