"""Optional progress bars (off by default in the library)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable


def progress_bar(items: Iterable, enabled: bool, desc: str) -> Iterable:
    """Wrap ``items`` in a tqdm bar when ``enabled``; otherwise return them unchanged.

    In a notebook the widget bar needs ``ipywidgets``; without it the text bar is used (tqdm's
    ``auto`` would warn with a ``TqdmWarning`` and fall back to it anyway).
    """
    if not enabled:
        return items
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm

    return tqdm(items, desc=desc)
