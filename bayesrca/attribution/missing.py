"""Anomaly rows with missing values: the checks, and the per-draw imputation the attribution uses.

:func:`impute_anomalies` draws, for every anomaly with a missing ancestor value and every posterior
draw, one value of the missing nodes from their conditional distribution given the row's observed
values (:func:`bayesrca.counterfactual.missing.impute_missing`). The attribution then abducts each
draw's noise from its own completed row, so the contributions are a draw of the mixture over the
missing values and their intervals include that uncertainty.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from .._random import seeded
from .._warnings import user_stacklevel
from ..counterfactual.missing import impute_missing
from ..exceptions import DataError, ImputationWarning

__all__ = ["MIN_IMPUTE_ESS", "Imputation", "check_target_observed", "impute_anomalies", "imputation_info"]

#: An anomaly whose imputation rests on fewer effective candidates than this in more than 10 % of
#: the posterior draws is flagged (``method_info["unreliable_imputation"]``) with an :class:`ImputationWarning`.
MIN_IMPUTE_ESS = 10.0


class Imputation(NamedTuple):
    """The missing values of a frame of anomalies, drawn once per posterior draw."""

    #: node to ``(anomalies, draws)`` float64 values (observed where observed); nodes without NaN left out
    values: dict
    #: ``(anomalies, draws)`` effective sample size of each draw's candidates (inf: nothing missing)
    ess: np.ndarray
    #: anomaly label to its missing nodes (only anomalies with some)
    missing: dict


def check_target_observed(frame: pd.DataFrame, target: Hashable) -> None:
    """Raise :class:`DataError` when an anomaly's target value is missing (there is nothing to explain)."""
    absent = frame.index[frame[target].isna()].tolist()
    if absent:
        raise DataError(
            f"anomaly_samples: the target {target!r} is missing (NaN) in {len(absent)} row(s), e.g. {absent[0]!r}; "
            "an anomaly needs its target value. Drop those rows (missing values of other nodes are integrated out)"
        )


def impute_anomalies(
    scm, players: Sequence[Hashable], frame: pd.DataFrame, *, seed: int, num_candidates: int, max_elements: int,
) -> Imputation | None:
    """Draw the anomalies' missing player values per posterior draw; None when nothing is missing.

    Rows are imputed in chunks of a size set by ``max_elements`` alone, under one seed derived
    from ``seed``, so the draws do not depend on how the attribution batches the anomalies.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    players : sequence
        The target's ancestors and itself, in topological order.
    frame : pandas.DataFrame
        The anomalies' player columns (float64; NaN where missing, never at the target).
    seed : int
        The attribution's seed.
    num_candidates : int
        Prior candidates per anomaly and draw.
    max_elements : int
        Bound on the candidates tensor (candidates x anomalies x draws) of one chunk.

    Returns
    -------
    Imputation or None
    """
    absent = frame.isna().to_numpy()
    rows = np.flatnonzero(absent.any(axis=1))
    if not len(rows):
        return None
    num_draws = scm.num_draws_
    columns = [p for i, p in enumerate(players) if absent[:, i].any()]
    values = {p: np.repeat(frame[p].to_numpy()[:, None], num_draws, axis=1) for p in columns}
    ess = np.full((len(frame), num_draws), np.inf)
    # a placeholder in each node's support where it is missing (never used, keeps densities finite)
    fill = {p: float(np.nanmedian(scm.training_data_[p].to_numpy())) for p in columns}
    chunk = max(1, max_elements // (num_candidates * num_draws * max(1, len(players))))
    state = int(np.random.SeedSequence([seed, 19]).generate_state(1)[0])  # not the Monte Carlo noise's stream
    with seeded(state), torch.no_grad():
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            sub = frame.iloc[part]
            observed = {p: torch.tensor(sub[p].fillna(fill.get(p, 0.0)).to_numpy()).unsqueeze(-1) for p in players}
            missing = {p: torch.tensor(sub[p].isna().to_numpy()).unsqueeze(-1) for p in columns}
            drawn, part_ess = impute_missing(scm, players, observed, missing, num_candidates)
            for p in columns:
                values[p][part] = drawn[p].numpy()
            ess[part] = part_ess.numpy()
    labels = list(frame.index)
    missing_nodes = {labels[i]: [str(p) for j, p in enumerate(players) if absent[i, j]] for i in rows}
    return Imputation(values, ess, missing_nodes)


def imputation_info(imputation: Imputation | None, anomalies: list) -> dict:
    """``method_info`` entries on the missing values, and the warning for a poorly covered imputation."""
    if imputation is None:
        return {}
    low = (imputation.ess < MIN_IMPUTE_ESS).mean(axis=1)  # share of draws with too few effective candidates
    bad = [a for a, share in zip(anomalies, low) if share > 0.1]
    if bad:
        warnings.warn(
            f"the missing values of {len(bad)} anomal{'y' if len(bad) == 1 else 'ies'} (e.g. {bad[0]!r}) were drawn "
            f"from fewer than {MIN_IMPUTE_ESS:.0f} effective candidates in many posterior draws: their observed "
            "descendants are far from what the prior candidates predict, so the drawn values (and the contributions) "
            "may be off. Raise num_impute_candidates. See method_info['impute_ess_min'] and ['unreliable_imputation'].",
            ImputationWarning,
            stacklevel=user_stacklevel(),
        )
    missing = [imputation.missing.get(a, []) for a in anomalies]
    return {
        "missing": missing,  # per anomaly, its missing nodes
        "imputed_per_anomaly": int(imputation.ess.shape[1]),  # one draw of the missing values per posterior draw
        "impute_ess_min": [round(float(e), 2) if m else None for e, m in zip(imputation.ess.min(axis=1), missing)],
        "unreliable_imputation": bad,
    }
