"""Posterior root-cause probabilities: :class:`RootCauseResult` (made by :func:`bayesrca.root_cause_posterior`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesrca import stats
from bayesrca.exceptions import DataError

from .base import PosteriorResult, as_float_array

__all__ = ["RootCauseResult"]


class RootCauseResult(PosteriorResult):
    """P(node is the root cause), per posterior draw, unit (anomaly or window) and candidate node.

    Parameters
    ----------
    probabilities : numpy.ndarray
        Shape ``(D, U, n)``: under each posterior draw, the probability of each candidate per
        unit (rows sum to 1 over the candidates).
    units : sequence
        The ``U`` unit labels (anomaly labels, or ``"window"``).
    nodes : sequence of str
        The ``n`` candidate names.
    method_info : mapping, optional
        How the probabilities were computed.

    Raises
    ------
    ConfigError
        If shapes or labels are wrong.
    DataError
        If the draws contain NaN or a unit's probabilities do not sum to 1.
    """

    unit_column = "anomaly"
    units_name = "anomalies"
    value_name = "prob_root_cause"

    def __init__(self, probabilities: np.ndarray, units: Sequence[Any], nodes: Sequence[str], *,
                 method_info: Mapping[str, Any] | None = None) -> None:
        arr = as_float_array(probabilities, "probabilities", (None,) * 3, "(num_draws, num_units, num_nodes)")
        if np.any(arr < 0) or not np.allclose(arr.sum(-1), 1.0, atol=1e-6):
            raise DataError("root-cause probabilities must be non-negative and sum to 1 over the candidates")
        self._init_draws(arr, units, nodes, method_info)

    probabilities = property(lambda self: self._draws, doc="Read-only ``(D, U, n)`` probability draws.")

    def probability(self) -> pd.DataFrame:
        """Posterior probability of each candidate (the mean over draws) as a wide table (units x nodes)."""
        return pd.DataFrame(self._draws.mean(0), index=stats.label_index(self._units), columns=list(self._nodes))

    def summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Tidy summary, one row per (unit, candidate), ranked by posterior probability.

        Parameters
        ----------
        ci_prob : float, default 0.9
            Mass of the interval of the per-draw probabilities (how much the answer depends on
            the parameters' uncertainty), in (0, 1).
        ci_kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``<unit>, node, prob, lower, upper, rank``: ``prob`` the posterior
            probability (mean over draws), sorted by unit, then ``prob`` descending.
        """
        ci_kind = stats.check_interval_args(ci_prob, ci_kind)
        table = stats.tidy_summary(self._draws, self._units, self._nodes, self.unit_column, ci_prob, ci_kind)
        table = table.rename(columns={"mean": "prob"}).drop(columns=["median", "sd"])
        order = {u: i for i, u in enumerate(stats.label_index(self._units))}
        table = table.sort_values([self.unit_column, "prob"], ascending=[True, False], kind="stable",
                                  key=lambda col: col.map(order) if col.name == self.unit_column else col)
        table["rank"] = table.groupby(self.unit_column, sort=False).cumcount() + 1
        return table.reset_index(drop=True)

    def top(self, unit: Any = None) -> str:
        """The most probable root cause of a unit (the first when None)."""
        return str(np.asarray(self._nodes)[int(np.argmax(self._draws[:, self.unit_position(unit)].mean(0)))])

    def _heading(self) -> list[str]:
        return [f"RootCauseResult: {len(self._units)} {self.units_name}, {len(self._nodes)} candidates, {self.num_draws} draws",
                "posterior probability of being the root cause (90% interval over draws)"]
