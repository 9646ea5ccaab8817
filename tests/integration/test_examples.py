"""The shipped example script runs (the notebooks are executed in tests/test_notebooks.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_microservice_script_finds_caching_service(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "microservice_latency.py"), "--draws", "40", "--rows", "3000", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Most likely root cause: Caching Service" in proc.stdout
    assert (tmp_path / "microservice_forest.png").stat().st_size > 10_000
