"""The base of every result: posterior draws of shape draws x units x nodes with their labels.

:class:`PosteriorResult` holds the draws tensor, the unit labels (anomalies, scored rows, or the
one attributed quantity), the node names and a read-only ``method_info``, and gives the shared
``summary()``, ``to_dataframe()``, ``to_inference_data()`` and reprs. :func:`as_float_array` and
:func:`check_labels` validate the arrays and labels the subclasses take.
"""

from __future__ import annotations

import html
import types
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bayesrca import stats
from bayesrca.exceptions import ConfigError, DataError

__all__ = ["PosteriorResult", "as_float_array", "check_labels"]


def as_float_array(values: Any, name: str, shape: tuple, layout: str) -> np.ndarray:
    """Read-only float copy of ``values``, checked against a shape.

    Parameters
    ----------
    values : array_like
        The numbers.
    name : str
        Argument name, for error messages.
    shape : tuple
        Required size per axis; ``None`` accepts any size.
    layout : str
        Words for the axes, e.g. ``"(num_draws, num_nodes)"``.

    Returns
    -------
    numpy.ndarray
        A non-writeable float array.

    Raises
    ------
    ConfigError
        If ``values`` is not numeric, empty, or of the wrong shape.
    DataError
        If it contains NaN.
    """
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array of shape {layout}: {exc}") from None
    if arr.ndim != len(shape) or 0 in arr.shape or any(e not in (None, a) for e, a in zip(shape, arr.shape)):
        need = f" = {shape}" if None not in shape else ""
        raise ConfigError(f"{name} must be a non-empty array of shape {layout}{need}; got shape {arr.shape}.")
    if np.isnan(arr).any():
        raise DataError(f"{name} contains NaN values; every posterior draw must be a number.")
    arr.flags.writeable = False
    return arr


def check_labels(labels: Sequence[Any], name: str, expected: int) -> tuple:
    """Labels as a tuple of the expected length; node names (``name="nodes"``) must be unique strings.

    Raises
    ------
    ConfigError
        If ``labels`` is a string, has the wrong length, or holds bad node names.
    """
    if isinstance(labels, str):
        raise ConfigError(f"{name} must be a sequence of labels, not the string {labels!r}.")
    labels = tuple(labels)
    if len(labels) != expected:
        raise ConfigError(f"{name} has {len(labels)} entries but the draws have {expected} along that axis.")
    if name == "nodes":
        if not all(isinstance(v, str) for v in labels):
            raise ConfigError(f"nodes must be strings; got {[v for v in labels if not isinstance(v, str)][:3]!r}.")
        dup = sorted({v for v in labels if labels.count(v) > 1})
        if dup:
            raise ConfigError(f"nodes must be unique; duplicated: {dup!r}.")
    return labels


class PosteriorResult:
    """Posterior draws of one quantity per (unit, node), with labels and a method description.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(D, U, n)``: per posterior draw, unit and node.
    units : sequence
        The ``U`` unit labels (anomalies, scored rows, ...).
    nodes : sequence of str
        The ``n`` node names.
    method_info : mapping, optional
        Free-form description of the method (kept read-only).

    Raises
    ------
    ConfigError
        If shapes or label counts do not match.
    DataError
        If the draws contain NaN.

    Notes
    -----
    Subclasses name the unit axis (``unit_column``, ``units_name``) and the drawn quantity
    (``value_name``), and add their own columns to :meth:`summary`.
    """

    #: Column (and InferenceData dimension) naming the units.
    unit_column: ClassVar[str] = "unit"
    #: Plural of the units, for messages.
    units_name: ClassVar[str] = "units"
    #: Name of the drawn quantity in long tables and InferenceData.
    value_name: ClassVar[str] = "value"

    def __init__(
        self,
        draws: np.ndarray,
        units: Sequence[Any],
        nodes: Sequence[str],
        *,
        method_info: Mapping[str, Any] | None = None,
    ) -> None:
        arr = as_float_array(draws, "draws", (None,) * 3, "(num_draws, num_units, num_nodes)")
        self._init_draws(arr, units, nodes, method_info)

    def _init_draws(self, arr: np.ndarray, units: Sequence[Any], nodes: Sequence[str],
                    method_info: Mapping[str, Any] | None) -> None:
        """Store checked draws (subclasses validate their own arrays first)."""
        self._nodes = check_labels(nodes, "nodes", arr.shape[2])
        self._units = check_labels(units, self.units_name, arr.shape[1])
        self._draws = arr
        self._method_info = types.MappingProxyType(dict(method_info or {}))

    draws = property(lambda self: self._draws, doc="Read-only ``(D, U, n)`` draws.")
    units = property(lambda self: self._units, doc="Tuple of unit labels.")
    nodes = property(lambda self: self._nodes, doc="Tuple of node names.")
    method_info = property(lambda self: self._method_info, doc="Read-only mapping describing the method.")
    num_draws = property(lambda self: self._draws.shape[0], doc="Number of posterior draws ``D``.")

    def unit_position(self, unit: Any = None) -> int:
        """Position of a unit label along the unit axis (the first unit when ``unit`` is None).

        Raises
        ------
        ConfigError
            If the label is unknown.
        """
        hits = [0] if unit is None else np.flatnonzero(stats.label_index(self._units) == unit)
        if len(hits):
            return int(hits[0])
        raise ConfigError(f"Unknown {self.unit_column} {unit!r}; known {self.units_name}: {list(self._units)[:10]!r}.")

    def summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Tidy posterior summary, one row per (unit, node).

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        ci_kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``<unit>, node, mean, median, sd, lower, upper``, sorted by unit in the
            original order, then by median descending.

        Raises
        ------
        ConfigError
            For a bad ``ci_prob`` or ``ci_kind``.
        """
        ci_kind = stats.check_interval_args(ci_prob, ci_kind)
        return stats.tidy_summary(self._draws, self._units, self._nodes, self.unit_column, ci_prob, ci_kind)

    def to_dataframe(self) -> pd.DataFrame:
        """All draws in long format: columns ``draw, <unit>, node, <value>``."""
        draw, unit, node = np.indices(self._draws.shape).reshape(3, -1)
        units, names = stats.label_index(self._units).take(unit), np.asarray(self._nodes, dtype=object)[node]
        return pd.DataFrame({"draw": draw, self.unit_column: units, "node": names, self.value_name: self._draws.ravel()})

    def _idata_parts(self) -> tuple[dict, dict, dict]:
        """Variables ``{name: (draws, dims)}``, coords and extra attributes of :meth:`to_inference_data`."""
        variables = {self.value_name: (self._draws, [self.unit_column, "node"])}
        coords = {self.unit_column: stats.coord_values(self._units), "node": list(self._nodes)}
        return variables, coords, {}

    def to_inference_data(self) -> Any:
        """Posterior draws as one-chain :class:`arviz.InferenceData` (a ``DataTree`` on arviz 1.x).

        The posterior group holds the draws with dims ``(chain, draw, <unit>, node)`` (subclasses
        add variables); attributes hold ``method_info`` as strings.
        """
        variables, coords, extra = self._idata_parts()
        attrs = {str(key): str(value) for key, value in self._method_info.items()}
        attrs.update(extra)
        return stats.inference_data(variables, coords, attrs)

    def _heading(self) -> list[str]:
        """Two lines describing the result (repr and HTML heading)."""
        return [
            f"{type(self).__name__}: {len(self._units)} {self.units_name}, {len(self._nodes)} nodes, "
            f"{self.num_draws} draws",
            "posterior summary (median, 90% interval)",
        ]

    def _html_body(self) -> str:
        """The table under the HTML heading."""
        return self.summary().head(20).to_html(index=False, float_format=lambda v: f"{v:.3g}")

    def __repr__(self) -> str:
        return "\n".join(self._heading())

    def _repr_html_(self) -> str:
        head = self._heading()
        return (
            f"<h4>{html.escape(head[0], quote=False)}</h4><p>{html.escape(head[1], quote=False)}</p>"
            + self._html_body()
        )
