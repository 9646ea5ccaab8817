"""Progress messages and warnings of the benchmark scripts."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections import Counter
from collections.abc import Iterator


def log(msg: str) -> None:
    """A progress message on stderr (stdout carries the report)."""
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings (DoWhy, sklearn) inside benchmark loops."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def record_warnings(sink: Counter, width: int = 120) -> Iterator[None]:
    """Count every warning raised inside the block in ``sink``, by ``"Category: message"``.

    Parameters
    ----------
    sink : collections.Counter
        Updated when the block ends, also when it raises.
    width : int, default 120
        Characters of the message kept in the key.
    """
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            sink.update(f"{w.category.__name__}: {str(w.message)[:width]}" for w in seen)


def warnings_summary(counts: Counter, most: int) -> str:
    """The ``most`` commonest warnings as ``"message (xN); ..."``, or ``"none"``."""
    return "; ".join(f"{m} (x{c})" for m, c in counts.most_common(most)) or "none"
