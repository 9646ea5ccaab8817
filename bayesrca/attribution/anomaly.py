"""Root-cause attribution of outliers: the set function, handed to the generic Shapley estimator."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable
from concurrent.futures import Executor

import numpy as np
import pandas as pd
import torch
from pyro.distributions import constraints

from .._warnings import user_stacklevel
from ..threads import thread_policy
from .. import graph as graphs
from .budget import memory_plan
from .batch import attribute_batch_with, split_chunks
from .extrapolation import check_extrapolation, conditioned_models
from .missing import check_target_observed, impute_anomalies, imputation_info
from ..counterfactual.missing import IMPUTE_CANDIDATES
from .common import (
    check_common_arguments,
    check_fitted_scm,
    check_num_mc_samples,
    check_player_frame,
    check_unique_labels,
    shapley_error_info,
)
from .._progress import open_bar, resolve
from ..parallel import check_executor, run_tasks
from ..counterfactual import (
    choose_engine,
    nonlinear_closure,
)
from ..exceptions import ConfigError, TailEstimateWarning
from ..results import AttributionResult
from ..shapley import ShapleyOptions
from ..counterfactual.importance import log_se
from ..counterfactual.tails import MIN_TAIL_ESS, event_side
from ..validation import check_positive_int, check_positive_number

__all__ = ["attribute_anomalies"]

_log = logging.getLogger(__name__)

_TAILS = ("auto", "analytic", "mc", "conditional", "plain")
_EXTRAPOLATION = ("condition", "prior")


@thread_policy
def attribute_anomalies(
    scm,
    target_node: Hashable,
    anomaly_samples: pd.DataFrame,
    *,
    seed: int | None = None,
    num_mc_samples: int = 2000,
    shapley: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    tail: str = "auto",
    base_score: str = "median_cdf",
    max_elements: int = 2**25,
    max_memory_mb: float | None = None,
    batch_size: int | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    num_impute_candidates: int = IMPUTE_CANDIDATES,
    extrapolation: str = "condition",
) -> AttributionResult:
    r"""Posterior contributions of the target's ancestors to each anomaly's IT outlier score.

    For every posterior draw s, the noise of each anomaly is abducted, and the Shapley values
    of :math:`v_s(S) = \log P(\tau(X_t) \ge \tau(x_t) \mid N_S = n_S)` over the target's
    ancestors and itself are computed. They sum to the draw's IT score
    :math:`-\log P(\tau(X_t) \ge \tau(x_t))` exactly (Budhathoki et al., ICML 2022).

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target_node : hashable
        The node where the outliers were seen.
    anomaly_samples : pandas.DataFrame
        One row per anomaly, with a column for the target and each of its ancestors (other graph
        nodes may be present and are ignored). NaN marks a missing ancestor value: it is
        integrated out, one draw of the missing values given the row's observed values per
        posterior draw (:mod:`bayesrca.attribution.missing`), so the intervals include it. The
        target's value must be observed.
    seed : int, optional
        Seed of the Monte Carlo and permutation draws; the same seed gives identical numbers.
    num_mc_samples : int, default 2000
        Fresh noise samples per posterior draw for Monte Carlo tail probabilities (not used on
        the closed-form linear-Gaussian path).
    shapley : {"auto", "exact", "permutation", "early_stopping"} or ShapleyOptions
        Shapley estimator; ``"auto"`` is exact up to ``max_exact_players`` players. A
        :class:`~bayesrca.shapley.ShapleyOptions` gives the estimator and its settings at once.
        ``"early_stopping"`` (for targets with many ancestors) adds permutations until the
        standard error is below a tolerance, and folds that error into the draws
        (:func:`~bayesrca.attribution.common.estimate_shapley`; ``method_info["shapley_se"]``).
    num_permutations : int, optional
        Permutations for ``shapley="permutation"`` (default ``max(2n, 32)``).
    max_exact_players : int, default 12
        Largest number of players for which ``"auto"`` enumerates all coalitions.
    tail : {"auto", "analytic", "mc", "conditional", "plain"}
        ``"auto"`` uses closed-form Gaussian tails where every ancestor is linear-Gaussian and
        Monte Carlo otherwise; ``"mc"`` forces Monte Carlo. Monte Carlo integrates the Gaussian
        part of every Gaussian noise that enters the target additively in closed form wherever
        an event is rare (fewer than
        ``bayesrca.counterfactual.RARE_HITS`` samples in it), so IT scores and contributions of
        extreme outliers are not capped near ``log(num_mc_samples)``, and for an anomaly whose
        event is rare (IT score above log 100 in some draw) draws the other noises from an
        importance-sampling proposal toward the event (:mod:`bayesrca.counterfactual.importance`),
        every value with its ESS and Monte Carlo error. ``"conditional"`` is the same without
        importance sampling, ``"plain"`` is plain Monte Carlo with the ``(count + 1) / (M + 1)``
        rule (capped, as in DoWhy); both for comparison.
    base_score : str, default "median_cdf"
        Base score tau of the IT score: ``"median_cdf"`` (two-sided quantile score, DoWhy's
        default), ``"mean_deviation"``, ``"median_deviation"``, ``"upper"`` (only large values are
        anomalous, e.g. latencies), ``"lower"``, or DoWhy's ``"rank"`` (``RankBasedAnomalyScorer``,
        the median-CDF event) and ``"density"`` (``InverseDensityScorer``: p(X) <= p(x), p a kernel
        density estimate), each per posterior draw from that draw's marginal
        (:mod:`bayesrca.counterfactual.tails`).
    max_elements : int, default 2**25
        Bound on the elements of the largest intermediate tensor (coalitions x Monte Carlo
        samples x anomalies x draws, float32); coalitions and anomalies are chunked to respect it.
    max_memory_mb : float, optional
        Memory budget of the call in MiB (2**20 bytes): the working set it adds to the process,
        the returned draws included. Anomalies are attributed in chunks, and ``max_elements`` is
        lowered, so that the estimated working set fits (an estimate calibrated with
        ``benchmarks/memory.py``, see docs/guarantees.md); the numbers do not depend on the budget
        (same seed, same draws up to float32 rounding and, under importance sampling, about 1e-4
        nats of density-table interpolation). The budget is of live tensors: glibc's allocator
        can keep freed blocks resident beyond it (``MALLOC_MMAP_THRESHOLD_=65536`` returns them). ``None``
        (default): no budget, only ``max_elements``. A budget below what the call needs for any
        chunk size (the returned draws, the Monte Carlo noise of one chunk) raises
        :class:`~bayesrca.exceptions.ConfigError` with the smallest feasible budget. On the
        Monte Carlo path the fixed part grows with ``num_mc_samples`` x draws x players: lower
        ``num_mc_samples`` (or use fewer posterior draws) to fit a small budget.
    batch_size : int, optional
        At most this many anomalies per batch (a batch is one task on ``executor``); None: as the
        memory plan cuts them (all at once without a budget). The numbers depend on the batches
        only through float32 rounding, and are bit-identical for the same batches.
    executor : concurrent.futures.Executor, optional
        Attribute the batches as tasks on this executor (a
        :class:`~concurrent.futures.ProcessPoolExecutor`, or a Dask client's ``get_executor()``):
        the same seed and ``batch_size`` give bit-identical numbers to ``executor=None`` (every
        batch seeds itself, :mod:`bayesrca.parallel`). The fitted model is sent with each task, so
        make batches few and large (e.g. ``batch_size = ceil(anomalies / workers)``).
        ``max_memory_mb`` applies per task.
    progress : bool or None, default None
        Show a progress bar over the whole attribution (coalitions x anomalies evaluated). None:
        on in a terminal or a notebook, off in CI and when standard error is redirected. With an
        executor it advances as batches finish.
    num_impute_candidates : int, default 1000
        For anomalies with missing values: candidates drawn from the missing nodes' mechanisms
        per anomaly and posterior draw, of which one is resampled by the likelihood of the
        observed values (method_info reports the effective number, ``impute_ess_min``).
    extrapolation : {"condition", "prior"}, default "condition"
        The part of a mechanism that no training row informs, its slope beyond the training range
        (the hinges of :class:`~bayesrca.GPANM` and, once conditioned, of
        :class:`~bayesrca.SplineANM`), is for each anomaly beyond the data conditioned on that
        anomaly's own values (``"condition"``, exact per posterior draw,
        :mod:`bayesrca.mechanisms.hinges`): the function there moves towards the observed
        child as far as its prior allows, instead of the child's abducted noise absorbing the
        extrapolation's error. ``"prior"`` keeps the training posterior (the behaviour before).
        Anomalies inside the training range, and models without such a part, are unaffected.
        ``method_info["conditioned"]`` lists the anomalies whose model was conditioned.

    Returns
    -------
    AttributionResult
        Contribution draws of shape (draws, anomalies, nodes) and IT-score draws.
        ``method_info["extrapolated"]`` lists the anomalies that feed a mechanism more than half a
        training range beyond its training values (an :class:`~bayesrca.ExtrapolationWarning`
        names the edges; :mod:`bayesrca.attribution.extrapolation`).
    """
    check_fitted_scm(scm)
    players = graphs.players_of(scm.graph_, target_node)
    frame = check_player_frame(anomaly_samples, scm.graph_, players, what="anomaly_samples", missing=True)
    check_target_observed(frame, target_node)
    check_unique_labels(frame, "anomaly_samples")
    num_mc_samples = check_num_mc_samples(num_mc_samples)
    args = check_common_arguments(seed=seed, shapley=shapley, num_permutations=num_permutations,
                                  max_exact_players=max_exact_players, max_elements=max_elements)
    if max_memory_mb is not None:
        max_memory_mb = check_positive_number(max_memory_mb, "max_memory_mb")
    if tail not in _TAILS:
        raise ConfigError(f"tail must be one of {_TAILS}, got {tail!r}")
    event_side(base_score)
    for p in players:  # discrete nodes: values outside their support cannot be attributed
        values = frame[p].to_numpy()
        scm.mechanisms_[p].check_values(values[~np.isnan(values)], str(p))
    num_impute_candidates = check_positive_int(num_impute_candidates, "num_impute_candidates")
    if extrapolation not in _EXTRAPOLATION:
        raise ConfigError(f"extrapolation must be one of {_EXTRAPOLATION}, got {extrapolation!r}")
    extrapolated = check_extrapolation(scm, players, frame)
    path = choose_engine(scm, players, tail)
    num_draws = scm.num_draws_
    n = len(players)
    estimator = args.shapley.resolve(n)  # the concrete Shapley method, as reported
    plan = memory_plan(
        path=path,
        # the sorted path shares samples across anomalies; an importance-sampling proposal (for
        # non-Gaussian noise, which is sampled) is per anomaly, so it is planned for the direct path
        sorted_path=path == "mc" and not nonlinear_closure(scm, players)
        and not (tail in ("auto", "mc") and any(_sampled_on_r(scm, p) for p in players)),
        num_anomalies=len(frame),
        num_draws=num_draws,
        num_players=n,
        num_mc_samples=num_mc_samples,
        num_coalitions=estimator.num_coalitions(n),
        max_elements=args.max_elements,
        budget_mb=max_memory_mb,
        importance=tail in ("auto", "mc"),
        max_chunk=None if batch_size is None else check_positive_int(batch_size, "batch_size"),
    )
    executor = check_executor(executor)
    imputation = impute_anomalies(scm, players, frame, seed=args.seed, num_candidates=num_impute_candidates,
                                  max_elements=args.max_elements)
    contributions = np.empty((num_draws, len(frame), n))
    it_scores = np.empty((num_draws, len(frame)))
    mc_se = np.empty((len(frame), n))
    tail_ess = np.empty((num_draws, len(frame)))
    value_ess = np.empty((num_draws, len(frame)))
    flags = {"integrated": False, "importance": False}  # did any batch integrate a Gaussian part / sample by importance?
    shapley_ms = np.zeros((len(frame), n))  # early stopping: mean square standard error over draws
    shapley_runs: list = []  # early stopping: (permutations, converged) per batch
    num_coalitions = estimator.num_coalitions(n)
    # an anomaly beyond the training data gets mechanisms conditioned on it, in a batch of its own
    conditioned = {} if extrapolation == "prior" else conditioned_models(scm, players, frame, np.ones(len(frame), bool), args.seed)
    chunks = split_chunks(plan.chunks, conditioned) if conditioned else plan.chunks
    work = sum(stop - first for first, _, stop in chunks) * num_coalitions
    _log.info("attribution at %r: %d players, %s path, %s Shapley, %d batch(es) of anomalies",
              target_node, n, path, estimator.method, len(chunks))
    options = {
        "path": path, "num_mc_samples": num_mc_samples, "base_score": base_score, "max_elements": plan.max_elements,
        "tail": tail, "seed": args.seed, "estimator": estimator,
        "threads": torch.get_num_threads(),  # this call's thread policy, in every worker too
    }

    def done(i: int, out: dict) -> None:
        first, start, stop = chunks[i]
        skip = start - first  # rows only there to give a short last batch the sorted path's size
        contributions[:, start:stop] = out["contributions"][:, skip:]
        it_scores[:, start:stop] = out["it_scores"][:, skip:]
        tail_ess[:, start:stop] = out["tail_ess"][:, skip:]
        value_ess[:, start:stop] = out["value_ess"][:, skip:]
        mc_se[start:stop] = out["mc_se"][skip:]
        for key in flags:
            flags[key] = flags[key] or out[key]
        if out["shapley"]:
            shapley_ms[start:stop] = out["shapley"]["se_ms"][skip:]
            shapley_runs.append((out["shapley"]["num_permutations"], out["shapley"]["converged"]))
        if executor is not None:  # in this process the bar follows the coalitions themselves
            bar.update((stop - first) * num_coalitions)

    bar = open_bar(resolve(progress), work, "attributing anomalies", unit="coalition")
    with bar:
        tasks = [(conditioned.get(start), target_node, players, frame.iloc[first:stop], options, None if executor else bar,
                  None if imputation is None else {p: v[first:stop] for p, v in imputation.values.items()})
                 for first, start, stop in chunks]
        run_tasks(executor, attribute_batch_with, tasks, done, shared=(scm,))  # the model reaches a Dask worker once
    integrated, importance = flags["integrated"], flags["importance"]
    info = {
        "engine": path,
        "shapley": estimator.method,
        "num_draws": num_draws,
        "num_mc_samples": 0 if path == "analytic" else num_mc_samples,
        # conditional Monte Carlo needs a Gaussian noise entering the target additively; without
        # one (e.g. bootstrap noise throughout) the Monte Carlo path is plain
        "tail": "closed form" if path == "analytic" else (
            ("importance sampling + " if importance else "") + ("conditional Monte Carlo" if integrated else "plain Monte Carlo")
        ),
        "seed": args.seed,
        "base_score": base_score,
    }
    if max_memory_mb is not None:
        info["max_memory_mb"] = max_memory_mb
    info.update(_check_tail_ess(tail_ess, value_ess, list(frame.index), num_mc_samples))
    if shapley_runs:
        info.update(shapley_error_info(np.sqrt(shapley_ms), [str(p) for p in players],
                                       max(r[0] for r in shapley_runs), all(r[1] for r in shapley_runs)))
    info.update(imputation_info(imputation, list(frame.index)))
    info["extrapolated"] = list(frame.index[extrapolated])
    info["conditioned"] = list(frame.index[sorted(conditioned)])
    return AttributionResult(
        contributions,
        it_scores,
        nodes=[str(p) for p in players],
        anomalies=list(frame.index),
        target=str(target_node),
        method_info=info,
        mc_std_error=mc_se,
    )


def _sampled_on_r(scm, node) -> bool:
    """A linear node's noise is sampled (not Gaussian) with support on the real line: importance sampling may move it."""
    mech = scm.mechanisms_[node]
    return not getattr(mech, "noise_is_gaussian", False) and mech.noise_distribution().support is constraints.real


def _check_tail_ess(tail_ess: np.ndarray, value_ess: np.ndarray, anomalies: list, num_mc_samples: int) -> dict:
    """``method_info`` entries on the effective samples behind the IT scores and coalition values, and the warning.

    ``tail_ess`` (IT scores) and ``value_ess`` (the smallest over the estimated coalition values)
    are ``(D, K)``. An anomaly is flagged when, in more than 10 % of the posterior draws, its IT
    score or one of its coalition values rests on fewer than
    :data:`~bayesrca.counterfactual.tails.MIN_TAIL_ESS` effective samples. ``value_mc_se_max`` is
    the delta-method Monte Carlo standard error of that least-supported log-probability
    (:func:`~bayesrca.counterfactual.importance.log_se`), median over draws.
    """
    if np.isinf(tail_ess).all():  # closed form
        return {}
    low = ((tail_ess < MIN_TAIL_ESS) | (value_ess < MIN_TAIL_ESS)).mean(axis=0)  # (K,): share of draws with too few samples
    ess_min = tail_ess.min(axis=0)
    value_min = np.minimum(value_ess, tail_ess).min(axis=0)
    se = log_se(torch.from_numpy(np.minimum(value_ess, tail_ess)), num_mc_samples).numpy()
    bad = [a for a, share in zip(anomalies, low) if share > 0.1]
    if bad:
        warnings.warn(
            f"the IT score or coalition values of {len(bad)} anomal{'y' if len(bad) == 1 else 'ies'} (e.g. {bad[0]!r}) "
            f"rest on fewer than {MIN_TAIL_ESS:.0f} effective Monte Carlo samples: at the Monte Carlo floor (a lower "
            "bound), or reached through a few far samples (the estimate can be far off); "
            "its contributions are not to be trusted. Raise num_mc_samples, or use Gaussian noise on the target "
            "and linear mechanisms upstream (closed form). See method_info['tail_ess_min'], ['value_ess_min'] "
            "and ['unreliable_tail'].",
            TailEstimateWarning,
            stacklevel=user_stacklevel(),
        )
    return {
        "tail_ess_min": [round(float(e), 2) for e in ess_min],
        "value_ess_min": [round(float(e), 2) for e in value_min],
        "value_mc_se_max": [round(float(e), 4) for e in np.median(se, axis=0)],
        "unreliable_tail": bad,
    }
