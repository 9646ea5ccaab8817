"""Tests of bayesrca._progress: off means untouched, on wraps in tqdm, never a TqdmWarning."""

from __future__ import annotations

import importlib.util
import io
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


def test_auto_is_off_in_ci_and_when_stderr_is_not_a_terminal(monkeypatch):
    from bayesrca import _progress

    monkeypatch.setenv("CI", "true")
    assert _progress.resolve(None) is False
    monkeypatch.delenv("CI")
    monkeypatch.setattr(_progress.sys, "stderr", io.StringIO())  # redirected: no terminal
    monkeypatch.delitem(_progress.sys.modules, "ipykernel", raising=False)
    assert _progress.resolve(None) is False
    assert _progress.resolve(True) is True and _progress.resolve(False) is False


def test_auto_is_on_in_a_terminal_and_in_a_notebook_kernel(monkeypatch):
    from bayesrca import _progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(_progress.sys, "stderr", Terminal())
    assert _progress.resolve(None) is True
    monkeypatch.setattr(_progress.sys, "stderr", io.StringIO())
    monkeypatch.setitem(_progress.sys.modules, "ipykernel", object())
    assert _progress.resolve(None) is True


def test_the_attribution_bar_counts_every_coalition_of_every_chunk(monkeypatch):
    import networkx as nx
    import numpy as np
    import pandas as pd

    import bayesrca as br
    from bayesrca import _progress

    seen = []

    class Bar:
        def __init__(self, total, desc, unit):
            self.total, self.n = total, 0
            seen.append(self)

        def update(self, n):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(_progress, "_tqdm", lambda: Bar)
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    frame = pd.DataFrame({"a": a, "b": a + rng.normal(size=300)})
    scm = br.BayesianSCM(nx.DiGraph([("a", "b")]), mechanisms="gaussian", num_draws=10).fit(frame, seed=0, progress=False)
    anomalies = pd.DataFrame({"a": [3.0, 0.0, 1.0], "b": [3.0, 4.0, 1.0]})
    br.attribute_anomalies(scm, "b", anomalies, seed=0, progress=True, max_memory_mb=64)
    (bar,) = seen
    assert bar.total == 3 * 2**2 and bar.n == bar.total
