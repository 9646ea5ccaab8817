"""Posterior IT outlier scores of data rows: :class:`ScoreResult` (made by :func:`bayesrca.outlier_scores`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesrca import stats
from bayesrca.exceptions import ConfigError

from .base import PosteriorResult, as_float_array

__all__ = ["CONDITIONINGS", "ScoreResult"]

#: What a score compares a value with: the node's marginal, or its noise given the parents.
CONDITIONINGS = ("marginal", "conditional")


class ScoreResult(PosteriorResult):
    """Posterior IT outlier scores of data rows, per draw, row and node.

    Parameters
    ----------
    scores : numpy.ndarray
        Shape ``(D, R, n)``: IT outlier score per posterior draw, row and node.
    rows : sequence
        The ``R`` row labels (index values of the scored data frame).
    nodes : sequence of str
        The ``n`` node names.
    conditioning : {"marginal", "conditional"}, default "marginal"
        What each value was compared with: the node's marginal distribution, or (conditional)
        its abducted noise against the noise distribution, i.e. given its parents.
    method_info : mapping, optional
        How the scores were computed; :func:`bayesrca.outlier_scores` records ``conditioning``,
        ``base_score``, ``seed`` and ``num_mc_samples``.

    Raises
    ------
    ConfigError
        If shapes, labels or ``conditioning`` are wrong.
    DataError
        If the draws contain NaN.
    """

    unit_column = "row"
    units_name = "rows"
    value_name = "it_score"

    def __init__(
        self,
        scores: np.ndarray,
        rows: Sequence[Any],
        nodes: Sequence[str],
        *,
        conditioning: str = "marginal",
        method_info: Mapping[str, Any] | None = None,
    ) -> None:
        arr = as_float_array(scores, "scores", (None,) * 3, "(num_draws, num_rows, num_nodes)")
        self._init_draws(arr, rows, nodes, method_info)
        if conditioning not in CONDITIONINGS:
            raise ConfigError(f"conditioning must be one of {CONDITIONINGS}; got {conditioning!r}.")
        self._conditioning = conditioning

    scores = property(lambda self: self._draws, doc="Read-only ``(D, R, n)`` score draws.")
    rows = property(lambda self: self._units, doc="Tuple of row labels.")
    conditioning = property(lambda self: self._conditioning, doc="``'marginal'`` or ``'conditional'``.")

    def summary(self, ci_prob: float = 0.9, *, ci_kind: str = "eti") -> pd.DataFrame:
        """Tidy summary, one row per (row, node).

        Parameters
        ----------
        ci_prob : float, default 0.9
            Probability mass of the credible interval, in (0, 1).
        ci_kind : {"eti", "hdi"}, default "eti"
            Equal-tailed or highest-density interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``row, node, mean, median, sd, lower, upper``, sorted by row in the original
            order, then by median score descending.
        """
        return super().summary(ci_prob, ci_kind=ci_kind)

    def median(self) -> pd.DataFrame:
        """Posterior median scores as a wide table (rows x nodes)."""
        index, columns = stats.label_index(self._units), list(self._nodes)
        return pd.DataFrame(np.median(self._draws, axis=0), index=index, columns=columns)

    def _idata_parts(self) -> tuple[dict, dict, dict]:
        variables, coords, _ = super()._idata_parts()
        return variables, coords, {"conditioning": self._conditioning}

    def to_inference_data(self) -> Any:
        """Draws as one-chain :class:`arviz.InferenceData`: ``it_score`` (chain, draw, row, node).

        Attributes hold ``conditioning`` and method_info.
        """
        return super().to_inference_data()

    def to_dataframe(self) -> pd.DataFrame:
        """All draws in long format: columns ``draw, row, node, it_score``."""
        return super().to_dataframe()

    def _heading(self) -> list[str]:
        rows, nodes = len(self._units), len(self._nodes)
        return [
            f"ScoreResult(conditioning={self._conditioning!r}, rows={rows}, nodes={nodes}, draws={self.num_draws})",
            "posterior median IT outlier scores",
        ]

    def __repr__(self) -> str:
        return self._heading()[0]

    def _html_body(self) -> str:
        wide = self.median()
        more = f"<p>showing 20 of {len(wide)} rows</p>" if len(wide) > 20 else ""
        return wide.head(20).to_html(float_format=lambda v: f"{v:.3g}") + more
