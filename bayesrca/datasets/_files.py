"""Reading the benchmark loaders' files: every failure of a damaged file becomes a DataError naming it."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pandas as pd

from ..exceptions import BayesRCAError, DataError

__all__ = ["READ_ERRORS", "reading"]

#: What reading a damaged file can raise (pandas, gzip, zlib, json, text decoding, networkx).
READ_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OSError, EOFError, zlib.error,
               UnicodeDecodeError, nx.NetworkXError, pd.errors.ParserError)


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn any error of reading or parsing ``path`` into a :class:`DataError` that names it.

    ``what`` says what the file should have been (e.g. "a PetShop metrics file with a 3-level
    header"); the package's own errors pass through unchanged.
    """
    try:
        yield
    except BayesRCAError:
        raise
    except READ_ERRORS as err:
        detail = str(err).splitlines()[0][:200] if str(err) else ""
        raise DataError(f"{path}: not {what} ({type(err).__name__}: {detail})") from err
