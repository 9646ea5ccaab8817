"""Shared test plumbing: the fuzz tests report how many cases they tried in pytest's summary."""

from __future__ import annotations

from collections import Counter

import pytest

_FUZZ_CASES: Counter = Counter()


@pytest.fixture
def fuzz_counter() -> Counter:
    """Count fuzz cases per test; totals are printed at the end of the run."""
    return _FUZZ_CASES


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _FUZZ_CASES:
        terminalreporter.write_sep("-", "fuzz cases tried")
        for name, count in sorted(_FUZZ_CASES.items()):
            terminalreporter.write_line(f"{name}: {count} cases")
