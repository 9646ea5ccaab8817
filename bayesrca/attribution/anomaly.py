"""Root-cause attribution of outliers: the set function, handed to the generic Shapley estimator."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable

import numpy as np
import pandas as pd
import torch
from pyro.distributions import constraints

from .. import graph as graphs
from .budget import memory_plan
from .common import check_common_arguments, check_fitted_scm, check_num_mc_samples, check_player_frame, mc_std_error
from .._progress import counting, open_bar, resolve
from .._random import seeded
from ..counterfactual import (
    CounterfactualEngine,
    choose_engine,
    nonlinear_closure,
)
from ..exceptions import ConfigError, DataError, ExtrapolationWarning, TailEstimateWarning
from ..results import AttributionResult
from ..shapley import ShapleyOptions, shapley_values
from ..counterfactual.importance import log_se
from ..counterfactual.tails import MIN_TAIL_ESS, event_side
from ..validation import check_positive_number

__all__ = ["attribute_anomalies"]

_log = logging.getLogger(__name__)

_TAILS = ("auto", "analytic", "mc", "conditional", "plain")


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
    progress: bool | None = None,
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
        nodes may be present and are ignored).
    seed : int, optional
        Seed of the Monte Carlo and permutation draws; the same seed gives identical numbers.
    num_mc_samples : int, default 2000
        Fresh noise samples per posterior draw for Monte Carlo tail probabilities (not used on
        the closed-form linear-Gaussian path).
    shapley : {"auto", "exact", "permutation"} or ShapleyOptions
        Shapley estimator; ``"auto"`` is exact up to ``max_exact_players`` players. A
        :class:`~bayesrca.shapley.ShapleyOptions` gives the estimator and its settings at once.
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
        anomalous, e.g. latencies) or ``"lower"``.
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
    progress : bool or None, default None
        Show a progress bar over the whole attribution (coalitions x anomalies evaluated). None:
        on in a terminal or a notebook, off in CI and when standard error is redirected.

    Returns
    -------
    AttributionResult
        Contribution draws of shape (draws, anomalies, nodes) and IT-score draws.
    """
    check_fitted_scm(scm)
    players = graphs.players_of(scm.graph_, target_node)
    frame = check_player_frame(anomaly_samples, scm.graph_, players, what="anomaly_samples")
    if frame.index.has_duplicates:  # results, plots and the report address anomalies by label
        dup = list(dict.fromkeys(frame.index[frame.index.duplicated()]))[:5]
        raise DataError(
            f"anomaly_samples has duplicate index labels {dup!r}, but anomalies are addressed by label; "
            "give every row its own label, e.g. anomaly_samples.reset_index(drop=True) after pd.concat"
        )
    num_mc_samples = check_num_mc_samples(num_mc_samples)
    args = check_common_arguments(seed=seed, shapley=shapley, num_permutations=num_permutations,
                                  max_exact_players=max_exact_players, max_elements=max_elements)
    if max_memory_mb is not None:
        max_memory_mb = check_positive_number(max_memory_mb, "max_memory_mb")
    if tail not in _TAILS:
        raise ConfigError(f"tail must be one of {_TAILS}, got {tail!r}")
    event_side(base_score)
    for p in players:  # discrete nodes: values outside their support cannot be attributed
        scm.mechanisms_[p].check_values(frame[p].to_numpy(), str(p))
    _warn_extrapolation(scm, players, frame)
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
    )
    contributions = np.empty((num_draws, len(frame), n))
    it_scores = np.empty((num_draws, len(frame)))
    mc_se = np.empty((len(frame), n))
    tail_ess = np.empty((num_draws, len(frame)))
    value_ess = np.empty((num_draws, len(frame)))
    integrated = importance = False  # did any chunk integrate a Gaussian part (conditional Monte Carlo)?
    work = sum(stop - first for first, _, stop in plan.chunks) * estimator.num_coalitions(n)
    _log.info("attribution at %r: %d players, %s path, %s Shapley, %d chunk(s) of anomalies",
              target_node, n, path, estimator.method, len(plan.chunks))
    bar = open_bar(resolve(progress), work, "attributing anomalies", unit="coalition")
    with torch.no_grad(), bar:
        for first, start, stop in plan.chunks:
            rows = frame.iloc[first:stop]
            observed = {p: torch.tensor(rows[p].to_numpy()).unsqueeze(-1) for p in players}
            # every chunk starts from the same seed: the same fresh noise and the same permutations
            # for every anomaly, so how the anomalies are chunked does not change the numbers
            with seeded(args.seed) as generator:
                engine = CounterfactualEngine(
                    scm,
                    target_node,
                    players,
                    observed,
                    path=path,
                    num_mc_samples=num_mc_samples,
                    base_score=base_score,
                    max_elements=plan.max_elements,
                    conditional=tail != "plain",
                    importance=tail in ("auto", "mc"),
                )
                phi = shapley_values(
                    counting(engine, bar, stop - first),
                    n,
                    method=estimator,
                    generator=generator,
                    chunk_size=max(1, plan.max_elements // (len(rows) * num_draws * 3)),  # values of a chunk, float64
                )  # (K, D, E, n)
            skip = start - first  # rows only there to give a short last chunk the sorted path's size
            contributions[:, start:stop] = phi[skip:, :, 0].permute(1, 0, 2).numpy()
            it_scores[:, start:stop] = engine.it_score[skip:].T.numpy()
            tail_ess[:, start:stop] = engine.tail_ess[skip:].T.numpy()
            value_ess[:, start:stop] = engine.value_ess[skip:].T.numpy()
            mc_se[start:stop] = mc_std_error(phi[skip:])
            integrated = integrated or engine.integrated
            importance = importance or engine.importance
            del engine, phi  # before the next chunk's engine is built
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
            stacklevel=3,
        )
    return {
        "tail_ess_min": [round(float(e), 2) for e in ess_min],
        "value_ess_min": [round(float(e), 2) for e in value_min],
        "value_mc_se_max": [round(float(e), 4) for e in np.median(se, axis=0)],
        "unreliable_tail": bad,
    }


# Memory model of one call, in bytes (measured on CPU with benchmarks/memory.py, with head room):
#: A parent value further than this many training ranges beyond the training data triggers an
#: :class:`ExtrapolationWarning` for a nonlinear child.
EXTRAPOLATION_RANGES = 0.5


def _warn_extrapolation(scm, players, frame) -> None:
    """Warn when an anomaly's parent values lie far outside what a nonlinear mechanism saw.

    A spline continues linearly beyond its data and a GLM follows its link: far outside the
    training range the fitted mechanism is an extrapolation, and a wrong one moves the blame (the
    child's abducted noise absorbs the misfit, with full confidence).
    """
    train = scm.training_data_
    far = []
    for node in players:
        if scm.mechanisms_[node].is_linear:
            continue
        for parent in scm.parents_[node]:
            lo, hi = float(train[parent].min()), float(train[parent].max())
            margin = EXTRAPOLATION_RANGES * max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
            values = frame[parent].to_numpy(dtype=float)
            outside = (values < lo - margin) | (values > hi + margin)
            if outside.any():
                far.append(f"{parent!r} -> {node!r} ({int(outside.sum())} row(s), e.g. {values[outside][0]:.4g} "
                           f"vs training [{lo:.4g}, {hi:.4g}])")
    if far:
        warnings.warn(
            "anomalies feed nonlinear mechanisms far outside their training range, so their contributions rest "
            "on extrapolation: " + "; ".join(far[:5]) + ("; ..." if len(far) > 5 else "")
            + ". Consider linear mechanisms for these nodes, or check the result against them.",
            ExtrapolationWarning,
            stacklevel=3,
        )

