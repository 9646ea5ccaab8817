"""One batch of anomalies, attributed: the task that :func:`~bayesrca.attribution.attribute_anomalies`
runs serially or hands to an executor, and how anomaly rows are cut into batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .._progress import counting
from .._random import seeded
from ..counterfactual import CounterfactualEngine
from ..threads import torch_threads
from .common import estimate_shapley, mc_std_error
from .extrapolation import with_mechanisms

__all__ = ["attribute_batch", "attribute_batch_with", "split_chunks"]


def split_chunks(chunks: list, single: dict) -> list:
    """The batches ``(first, start, stop)`` with every row in ``single`` taken out as a batch of its own.

    Padding rows (``first < start``, the sorted path's) are dropped from a split batch: a model
    conditioned on an anomaly is nonlinear, and the sorted path is for all-linear models only.
    """
    out = []
    for first, start, stop in chunks:
        cuts = [i for i in range(start, stop) if i in single]
        if not cuts:
            out.append((first, start, stop))
            continue
        lo = start
        for i in cuts:
            if lo < i:
                out.append((lo, lo, i))
            out.append((i, i, i + 1))
            lo = i + 1
        if lo < stop:
            out.append((lo, lo, stop))
    return out


def attribute_batch_with(scm, changed: dict | None, *task) -> dict:
    """:func:`attribute_batch` under ``scm`` with ``changed`` mechanisms (an anomaly's conditioned ones), if any.

    The task carries only the conditioned mechanisms; the model itself reaches a worker once.
    """
    return attribute_batch(with_mechanisms(scm, changed), *task)


def attribute_batch(
    scm, target_node, players: list, rows: pd.DataFrame, options: dict, bar=None, imputed: dict | None = None,
) -> dict:
    """Attribute one batch of anomalies (a task): posterior contributions and diagnostics as arrays.

    ``imputed`` maps the nodes with missing values to their ``(rows, draws)`` values, one completed
    row per posterior draw (:func:`~bayesrca.attribution.missing.impute_anomalies`): their noise is
    abducted per draw.

    Seeds itself from ``options["seed"]``: the same fresh noise and the same permutations for every
    batch, so how the anomalies are batched, and where a batch runs, does not change the numbers.
    """
    with torch.no_grad(), torch_threads(options["threads"]):
        observed = {p: torch.tensor(rows[p].to_numpy()).unsqueeze(-1) for p in players}
        observed.update({p: torch.from_numpy(np.ascontiguousarray(v)) for p, v in (imputed or {}).items()})
        estimator, num_draws = options["estimator"], scm.num_draws_
        with seeded(options["seed"]) as generator:
            engine = CounterfactualEngine(
                scm,
                target_node,
                players,
                observed,
                path=options["path"],
                num_mc_samples=options["num_mc_samples"],
                base_score=options["base_score"],
                max_elements=options["max_elements"],
                conditional=options["tail"] != "plain",
                importance=options["tail"] in ("auto", "mc"),
            )
            function = engine if bar is None else counting(engine, bar, len(rows))
            phi, error = estimate_shapley(
                function,
                len(players),
                estimator,
                generator,
                max(1, options["max_elements"] // (len(rows) * num_draws * 3)),  # values of a batch, float64
                unit_dims=1,  # every anomaly meets early stopping's tolerance
            )  # (K, D, E, n)
        return {
            "contributions": phi[:, :, 0].permute(1, 0, 2).numpy(),
            "it_scores": engine.it_score.T.numpy(),
            "tail_ess": engine.tail_ess.T.numpy(),
            "value_ess": engine.value_ess.T.numpy(),
            "mc_se": mc_std_error(phi),
            "integrated": engine.integrated,
            "importance": engine.importance,
            "shapley": error and {"se_ms": error["se"].pow(2).mean(1).numpy(), "num_permutations": error["num_permutations"],
                                  "converged": error["converged"]},
        }
