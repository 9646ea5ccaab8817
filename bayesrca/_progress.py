"""Progress bars: on where a person is watching, off in CI, in scripts whose stderr is a file, and on request.

Every public function that can take long has ``progress: bool | None = None``; None means
:func:`interactive`. The bars go to standard error (tqdm's default), never to standard output.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["interactive", "resolve", "progress_bar", "open_bar", "counting"]


def interactive() -> bool:
    """Whether a person is likely watching: a Jupyter/IPython kernel, or standard error is a terminal.

    False whenever the environment variable ``CI`` is set (continuous integration logs would fill
    with bar redraws), and when standard error is redirected to a file or pipe.
    """
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return False
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def resolve(progress: bool | None) -> bool:
    """``progress`` as given, or :func:`interactive` when it is None (the default)."""
    return interactive() if progress is None else bool(progress)


def _tqdm() -> Any:
    """tqdm's notebook-aware class where ipywidgets exist, else the text bar.

    Without ipywidgets tqdm's ``auto`` would warn with a ``TqdmWarning`` and fall back to the text
    bar anyway.
    """
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def progress_bar(items: Iterable, enabled: bool, desc: str) -> Iterable:
    """Wrap ``items`` in a tqdm bar when ``enabled``; otherwise return them unchanged."""
    if not enabled:
        return items
    return _tqdm()(items, desc=desc)


class _NoBar:
    """Stands in for a bar when progress is off: same methods, does nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def open_bar(enabled: bool, total: float, desc: str, unit: str = "it") -> Any:
    """A bar of ``total`` units updated by hand (``bar.update(n)``), usable as a context manager."""
    if not enabled:
        return _NoBar()
    return _tqdm()(total=total, desc=desc, unit=unit)


def counting(set_function: Callable[[torch.Tensor], torch.Tensor], bar: Any, weight: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """``set_function`` that advances ``bar`` by ``weight`` units per coalition it evaluates.

    Wraps the set function given to the Shapley estimator, so the bar follows the work itself
    (coalitions × anomalies), not only the chunks of anomalies.
    """

    def counted(masks: torch.Tensor) -> torch.Tensor:
        out = set_function(masks)
        bar.update(masks.shape[0] * weight)
        return out

    return counted
