"""The shipped examples run: the script and the notebook's code cells."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


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


def test_microservice_notebook_cells_run():
    notebook = json.loads((ROOT / "examples" / "microservice_latency.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).replace("num_draws=200", "num_draws=30")
            exec(compile(source, "<notebook>", "exec"), namespace)  # noqa: S102 - our own notebook
    table = namespace["res"].summary()
    assert table.iloc[0]["node"] == "Caching Service"
