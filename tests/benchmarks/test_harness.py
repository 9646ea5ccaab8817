"""Unit tests of the benchmark harness (``benchmarks/harness``): no DoWhy, no bayesrca fits, no timings asserted."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def harness():
    """The harness package, imported as the scripts import it (``benchmarks/`` on ``sys.path``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import harness.cli
        import harness.logs
        import harness.outputs
        import harness.stats
        import harness.tables
        import harness.timing

        yield harness
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_fmt(harness):
    fmt = harness.tables.fmt
    assert fmt(1.23456) == "1.235"
    assert fmt(1.23456, 1) == "1.2"
    assert fmt(np.float32(0.5), 2) == "0.50"
    assert fmt(3) == "3" and fmt(np.int64(7)) == "7"
    assert fmt(None) == "—" and fmt(float("nan")) == "—"
    assert fmt("DoWhy") == "DoWhy"


def test_fmt_ci(harness):
    assert harness.tables.fmt_ci(0.75, 0.3, 0.95) == "0.75 [0.30, 0.95]"
    assert harness.tables.fmt_ci(float("nan"), 0.1, 0.2) == "—"
    assert harness.tables.ci_column([0.5, np.nan], [0.25, np.nan], [0.75, np.nan]) == ["0.50 [0.25, 0.75]", "—"]


def test_markdown_table(harness):
    frame = pd.DataFrame({"method": ["a", "b"], "n": [1, 2], "recall": [0.5, np.nan]})
    assert harness.tables.markdown_table(frame, digits=2).splitlines() == [
        "| method | n | recall |",
        "|---|---|---|",
        "| a | 1 | 0.50 |",
        "| b | 2 | — |",
    ]
    assert harness.tables.markdown_rows(["x", "y"], [[1, "z"]]) == "| x | y |\n|---|---|\n| 1 | z |"


def test_heading(harness):
    assert harness.tables.heading("Recall", smoke=True) == "## Recall (smoke)"
    assert harness.tables.heading("Recall", smoke=False, level=1) == "# Recall"


def test_wilson_and_proportion(harness):
    lo, hi = harness.stats.wilson(5, 10)
    assert 0 < lo < 0.5 < hi < 1
    assert all(math.isnan(b) for b in harness.stats.wilson(0, 0))
    assert harness.stats.wilson(10, 10)[1] == 1.0
    row = harness.stats.proportion("top1", 3, 4)
    assert row["top1"] == 0.75 and (row["top1_lo"], row["top1_hi"]) == harness.stats.wilson(3, 4)
    assert harness.stats.median([3.0, 1.0, 2.0]) == 2.0 and math.isnan(harness.stats.median([]))


def test_stopwatch(harness):
    with harness.timing.Stopwatch() as watch:
        sum(range(1000))
    assert watch.seconds >= 0
    laps = harness.timing.Stopwatch()
    first, second = laps.lap(), laps.lap()
    assert first >= 0 and second >= 0 and laps.elapsed() >= first + second
    assert harness.timing.peak_rss_mib() > 0


def test_record_warnings(harness):
    import warnings

    counts: Counter = Counter()
    for _ in range(2):
        with harness.logs.record_warnings(counts, width=5):
            warnings.warn("abcdefgh", UserWarning)
    assert counts == Counter({"UserWarning: abcde": 2})
    assert harness.logs.warnings_summary(counts, 3) == "UserWarning: abcde (x2)"
    assert harness.logs.warnings_summary(Counter(), 3) == "none"


def test_outputs(harness, tmp_path):
    out = harness.outputs.Outputs.create(tmp_path / "results", smoke=True)
    assert out.path("recall", ".csv") == tmp_path / "results" / "recall_smoke.csv"
    out.write_text("recall", "# report\n")
    out.write_csv("recall", pd.DataFrame({"a": [1]}))
    out.write_json("recall", {"x": np.float64(1.5)})
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "recall_smoke.csv", "recall_smoke.json", "recall_smoke.md"]
    assert harness.outputs.Outputs.create(tmp_path, smoke=False).path("scale", "_shapley_error.csv").name == \
        "scale_shapley_error.csv"


def test_cli_defaults_and_checks(harness, tmp_path):
    full, smoke = {"graphs": 5, "rows": 100}, {"graphs": 1, "rows": 10}

    def parser():
        p = harness.cli.parser("test")
        harness.cli.add_sized(p, full, smoke, [("--graphs", "graphs"), ("--rows", "rows")])
        harness.cli.add_shift(p, (3.0, 5.0), "shift")
        harness.cli.add_common(p, smoke_help="tiny")
        return p

    args = harness.cli.parse(parser(), [], full, smoke, at_least_one=["graphs"])
    assert (args.graphs, args.rows, args.seed, args.smoke, args.shift) == (5, 100, 0, False, (3.0, 5.0))
    assert args.out == harness.outputs.RESULTS
    args = harness.cli.parse(parser(), ["--smoke", "--rows", "7", "--out", str(tmp_path)], full, smoke)
    assert (args.graphs, args.rows, args.out) == (1, 7, tmp_path)
    with pytest.raises(SystemExit):
        harness.cli.parse(parser(), ["--graphs", "0"], full, smoke, at_least_one=["graphs"])
    with pytest.raises(SystemExit):
        harness.cli.parse(parser(), ["--shift", "5", "3"], full, smoke)
