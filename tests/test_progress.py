"""Tests of bayesrca._progress: off means untouched, on wraps in tqdm, never a TqdmWarning."""

from __future__ import annotations

import importlib.util
import warnings

from bayesrca._progress import progress_bar


def test_disabled_returns_the_items_themselves():
    items = [1, 2, 3]
    assert progress_bar(items, False, "x") is items


def test_enabled_iterates_the_same_items_without_warnings(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress_bar(range(4), True, "counting")
        assert list(bar) == [0, 1, 2, 3]
    assert type(bar).__module__.startswith("tqdm")
