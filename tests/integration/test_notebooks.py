"""Every example notebook runs top to bottom in a real Jupyter kernel, with small settings.

The notebooks read ``BAYESRCA_EXAMPLE_DRAWS`` (posterior draws) and ``BAYESRCA_EXAMPLE_ROWS``
(training rows, where the example has many) from the environment, which the kernel inherits.
Each notebook ends by printing ``Most likely root cause: <node> (P(top) = ...)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
SMALL_SETTINGS = {"BAYESRCA_EXAMPLE_DRAWS": "30", "BAYESRCA_EXAMPLE_ROWS": "2000"}
NOTEBOOK_TIMEOUT_S = 300  # the whole notebook; each takes well under a minute on a 2-core CPU
# The root cause each notebook must name; a notebook not listed here must still run and name one.
EXPECTED_TOP = {
    "microservice_latency.ipynb": "Caching Service",
    "online_shop.ipynb": "Page Views",
    "petshop_incident.ipynb": "PetSearch_AWS::ECS::Fargate",
}
MARKER = "Most likely root cause: "
PROBE = "import sys\nprint('KERNEL', sys.executable)\nprint('PREFIX', sys.prefix)"


def _stream_text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def test_the_expected_notebooks_exist():
    assert set(EXPECTED_TOP) <= {p.name for p in NOTEBOOKS}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_finds_the_root_cause(path, monkeypatch):
    for name, value in SMALL_SETTINGS.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(PROBE))  # which interpreter runs the kernel?
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        # every cell may use what is left of the notebook's budget, so the whole notebook is bounded
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    start = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - start
    print(f"{path.name}: {elapsed:.1f} s")

    probe = dict(line.split(" ", 1) for line in _stream_text(notebook.cells[0]).splitlines())
    kernel_python, kernel_prefix = probe["KERNEL"], probe["PREFIX"]
    assert Path(kernel_prefix).resolve() == Path(sys.prefix).resolve(), (
        f"the kernel ran {kernel_python}, not this environment's interpreter {sys.executable}"
    )

    lines = [line for cell in notebook.cells for line in _stream_text(cell).splitlines() if line.startswith(MARKER)]
    assert lines, f"{path.name} printed no '{MARKER}...' line"
    if path.name in EXPECTED_TOP:
        assert lines[-1].startswith(MARKER + EXPECTED_TOP[path.name] + " "), lines[-1]
