"""Validation of user data at the public boundary. Everything else trusts its inputs."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from ._warnings import user_stacklevel
from .exceptions import ConfigError, ConstantColumnWarning, DataError

__all__ = ["check_frame", "check_positive_int", "check_positive_number", "check_probability", "constant_columns"]


def _names(cols: Sequence[Hashable], limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in list(cols)[:limit])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > limit else "")


def check_frame(
    data: object,
    required: Sequence[Hashable],
    *,
    what: str,
    allowed: Sequence[Hashable] | None = None,
    min_rows: int = 1,
    missing: bool = False,
) -> pd.DataFrame:
    """Validate a data frame and return the ``required`` columns as float64, in that order.

    Parameters
    ----------
    data : pandas.DataFrame
        The user's frame.
    required : sequence of hashable
        Columns that must be present (graph nodes that take part).
    what : str
        How to call the frame in messages ("training data", "anomaly_samples").
    allowed : sequence of hashable, optional
        Columns that may be present besides ``required`` (other graph nodes). Any column that is
        neither required nor allowed is an error: nothing is dropped silently. The exception is one
        datetime column, which becomes the index (it labels the rows, e.g. anomalies in results).
    min_rows : int
        Fewest rows accepted.
    missing : bool, default False
        Accept NaN (and pandas' ``NA``) as a missing value, returned as NaN; infinite values stay
        an error.

    Raises
    ------
    DataError
        Not a DataFrame, duplicate/missing/extra columns, non-numeric columns, NaN (unless
        ``missing``) or infinite values, or too few rows. The message names the columns and rows at fault.
    """
    if isinstance(data, pd.Series):
        data = data.to_frame().T
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame with one column per graph node, got {type(data).__name__}")
    dup = data.columns[data.columns.duplicated()].unique().tolist()
    if dup:
        raise DataError(f"{what} has duplicate columns {_names(dup)}; give every column a unique name")
    absent = [c for c in required if c not in data.columns]
    if absent:
        raise DataError(
            f"{what} lacks columns for graph nodes {_names(absent)}; add them, or remove those nodes from the graph"
        )
    known = set(required) | set(allowed or ())
    table = _timestamp_index(data, known)
    extra = [c for c in table.columns if c not in known]
    if extra:
        raise DataError(
            f"{what} has columns {_names(extra)} that are not nodes of the causal graph; "
            "drop them (df.drop(columns=[...])) or add them to the graph"
        )
    if len(table) < min_rows:
        raise DataError(f"{what} has {len(table)} row(s); at least {min_rows} are needed")
    frame = table.loc[:, list(required)]
    bad_types = [c for c in required if not (
        pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
    )]
    if bad_types:
        kinds = ", ".join(f"{c!r} ({frame[c].dtype})" for c in bad_types[:8])
        raise DataError(
            f"{what} has non-numeric columns {kinds}; encode them as numbers (e.g. 0/1 or category codes) first"
        )
    values = frame.astype("float64")
    arr = values.to_numpy()
    finite = np.isfinite(arr) | (np.isnan(arr) if missing else False)
    if not finite.all():
        bad_cols = [c for c, ok in zip(required, finite.all(axis=0)) if not ok]
        first_row = values.index[int(np.argmin(finite.all(axis=1)))]
        counts = ", ".join(f"{c!r}: {int((~finite[:, list(required).index(c)]).sum())}" for c in bad_cols[:8])
        if missing:
            raise DataError(
                f"{what} has infinite values (column: count) {counts}, first in row {first_row!r}; "
                "replace them by NaN if they mean a missing value, or drop those rows"
            )
        raise DataError(
            f"{what} has NaN or infinite values (column: count) {counts}, first in row {first_row!r}; "
            "impute them or drop those rows explicitly before calling bayesrca"
        )
    return values


def _timestamp_index(data: pd.DataFrame, known: set) -> pd.DataFrame:
    """Use the one datetime column that is not a graph node as the index (the rows' labels).

    Time series exported from monitoring carry a timestamp column; it labels the rows (anomalies
    are reported under it) and takes no part in the model. Two or more such columns are ambiguous
    and stay an error of the caller (extra columns).
    """
    stamps = [
        c for c in data.columns
        if c not in known and (pd.api.types.is_datetime64_any_dtype(data[c]) or isinstance(data[c].dtype, pd.PeriodDtype))
    ]
    return data.set_index(stamps[0]) if len(stamps) == 1 else data


def constant_columns(frame: pd.DataFrame, *, what: str) -> list[Hashable]:
    """Columns that take one value only; warn about each (their noise comes from the prior,
    :mod:`bayesrca.mechanisms.constant`)."""
    const = [c for c in frame.columns if frame[c].nunique(dropna=True) <= 1]  # NaN is missing, not a value
    if const:
        warnings.warn(
            f"{what}: columns {_names(const)} are constant; their noise is a spike at the level with a change "
            "of probability 1/(rows + 2) (the rule of succession), so a later deviation scores as a finite, "
            "surprising event (about log(rows + 2) nats), and a parent among them keeps its prior over its effect",
            ConstantColumnWarning,
            stacklevel=user_stacklevel(),
        )
    return const


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_probability(value: object, name: str) -> float:
    """Return ``value`` as float if it lies strictly between 0 and 1, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (float, int, np.floating, np.integer)) or not 0 < value < 1:
        raise ConfigError(f"{name} must be a number strictly between 0 and 1 (e.g. 0.9), got {value!r}")
    return float(value)


def check_positive_number(value: object, name: str) -> float:
    """Return ``value`` as float if it is a finite real number > 0, else raise :class:`ConfigError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (float, int, np.floating, np.integer))
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)
