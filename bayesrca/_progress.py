"""Optional progress bars (off by default in the library)."""

from __future__ import annotations

from collections.abc import Iterable


def progress_bar(items: Iterable, enabled: bool, desc: str) -> Iterable:
    """Wrap ``items`` in a tqdm bar when ``enabled``; otherwise return them unchanged."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)
