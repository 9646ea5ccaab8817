"""Where benchmark results go, and what a report says about the run that made it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Outputs:
    """The output folder of one script and the suffix of its files (``_smoke`` for smoke runs).

    Every file is ``<folder>/<stem><suffix><tail>``, e.g. ``recall_smoke.csv``.
    """

    folder: Path
    suffix: str = ""

    @classmethod
    def create(cls, folder: Path, smoke: bool) -> Outputs:
        """The outputs of a run into ``folder`` (created), smoke-suffixed when ``smoke``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, "_smoke" if smoke else "")

    def path(self, stem: str, tail: str) -> Path:
        """``folder / (stem + suffix + tail)``; ``tail`` is the extension with its dot (``".md"``)."""
        return self.folder / f"{stem}{self.suffix}{tail}"

    def write_text(self, stem: str, text: str, tail: str = ".md") -> Path:
        """Write a text file (a report by default); returns its path."""
        path = self.path(stem, tail)
        path.write_text(text)
        return path

    def write_csv(self, stem: str, frame: pd.DataFrame, tail: str = ".csv") -> Path:
        """Write a DataFrame without its index; returns the path."""
        path = self.path(stem, tail)
        frame.to_csv(path, index=False)
        return path

    def write_json(self, stem: str, data: object) -> Path:
        """Write JSON (indent 1; numpy numbers as floats); returns the path."""
        path = self.path(stem, ".json")
        path.write_text(json.dumps(data, indent=1, default=float))
        return path


def git_revision() -> str:
    """The short git revision of the checkout, flagged when ``bayesrca/`` has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bayesrca"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in bayesrca/" if dirty else "")


def utc_now() -> str:
    """The current time as ``"YYYY-mm-dd HH:MM UTC"``."""
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def package_version(name: str) -> str:
    """The installed version of a distribution, ``"not installed"`` when absent."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def environment(threads: int | None = None) -> str:
    """Python, bayesrca (with the git revision), DoWhy, torch, scikit-learn, numpy, pandas and the machine."""
    torch = f"torch {package_version('torch')}" + (f" ({threads} threads)" if threads is not None else "")
    return (
        f"python {platform.python_version()}, bayesrca {package_version('bayesrca')} (git {git_revision()}), "
        f"dowhy {package_version('dowhy')}, {torch}, scikit-learn {package_version('scikit-learn')}, "
        f"numpy {package_version('numpy')}, pandas {package_version('pandas')}; {os.cpu_count()} CPUs, "
        f"{platform.platform()}"
    )
