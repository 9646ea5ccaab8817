"""Timed bayesrca runs of the benchmarks (public API only) and the untimed warm-up."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable

import networkx as nx
import pandas as pd

from .logs import quiet, record_warnings
from .timing import Stopwatch


def fit(graph: nx.DiGraph, data: pd.DataFrame, *, mechanisms: str = "auto", num_draws: int, seed: int,
        warnings: Counter | None = None, width: int = 120, **options):
    """``BayesianSCM(graph, mechanisms, num_draws, **options).fit(data, seed)``: (fitted SCM, seconds).

    Parameters
    ----------
    warnings : collections.Counter, optional
        Where the warnings raised are counted (:func:`harness.logs.record_warnings`, ``width``
        characters of each message); without it they are shown as usual.
    **options
        Other :class:`~bayesrca.BayesianSCM` parameters (e.g. ``tail_pooling``).
    """
    import bayesrca as br

    with _warnings_to(warnings, width), Stopwatch() as watch:
        scm = br.BayesianSCM(graph, mechanisms=mechanisms, num_draws=num_draws, **options).fit(data, seed=seed)
    return scm, watch.seconds


def attribute(scm, target, anomalies: pd.DataFrame, *, seed: int, warnings: Counter | None = None, width: int = 120,
              **options):
    """``attribute_anomalies(scm, target, anomalies, seed=seed, **options)``: (result, seconds).

    ``warnings`` as in :func:`fit`; ``options`` go to ``attribute_anomalies`` (``num_mc_samples``,
    ``tail``, ``num_permutations``, ...).
    """
    import bayesrca as br

    with _warnings_to(warnings, width), Stopwatch() as watch:
        result = br.attribute_anomalies(scm, target, anomalies, seed=seed, **options)
    return result, watch.seconds


def warm_up(graph: nx.DiGraph, data: pd.DataFrame, target, *, anomalies: pd.DataFrame | None = None,
            mechanisms: Iterable[str] = ("auto",), tails: Iterable[str | None] = (None,), dowhy: bool = True,
            seed: int = 0) -> None:
    """Untimed tiny fits and attributions: torch/Pyro lazy initialisation, sklearn and joblib workers.

    Parameters
    ----------
    graph, data, target
        A tiny problem.
    anomalies : pandas.DataFrame, optional
        The rows attributed; default the first row of ``data``.
    mechanisms : iterable of str
        bayesrca ``mechanisms`` settings to fit (4 draws each; none: no bayesrca warm-up).
    tails : iterable of str or None
        ``tail`` options to attribute with (None: the default).
    dowhy : bool
        Also fit DoWhy once.
    """
    from . import dowhy_runner

    outlier = data.iloc[:1] if anomalies is None else anomalies
    with quiet():
        for mech in mechanisms:
            scm, _ = fit(graph, data, mechanisms=mech, num_draws=4, seed=seed)
            for tail in tails:
                attribute(scm, target, outlier, seed=seed, num_mc_samples=20, **({} if tail is None else {"tail": tail}))
    if dowhy:
        dowhy_runner.fit(graph, data, seed=seed)


def _warnings_to(sink: Counter | None, width: int) -> contextlib.AbstractContextManager:
    """Record warnings into ``sink``; without one, leave them to the usual filters."""
    return record_warnings(sink, width) if sink is not None else contextlib.nullcontext()


def ranking_method(mechanisms: str, draws: int, seed: int, *, target_of, ci_prob: float = 0.9):
    """The ``(fit, rank)`` pair of the real-incident benchmarks (PetShop, Nezha) for bayesrca.

    ``fit(system)`` fits ``BayesianSCM(system.graph, mechanisms, draws)`` on ``system.normal`` with
    the package's warnings silenced; ``rank(scm, system, case)`` attributes ``case.anomaly`` at
    ``target_of(case)`` and returns the summary's node, median, interval and prob_top columns with
    the IT score's median.
    """
    import warnings as _warnings

    import bayesrca as br

    def fit(system):
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", br.BayesRCAWarning)
            return br.BayesianSCM(system.graph, mechanisms=mechanisms, num_draws=draws).fit(system.normal, seed=seed)

    def rank(scm, system, case):
        res = br.attribute_anomalies(scm, target_node=target_of(case), anomaly_samples=case.anomaly, seed=seed)
        table = res.summary(ci_prob=ci_prob)
        it = res.it_score_summary(ci_prob=ci_prob).iloc[0]
        return table[["node", "median", "lower", "upper", "prob_top"]], {"it_median": float(it["median"])}

    return fit, rank


def posterior_method(mechanisms: str, draws: int, seed: int, *, target_of, ci_prob: float = 0.9, robust: bool = True):
    """The ``(fit, rank)`` pair of :func:`bayesrca.root_cause_posterior` (single-fault posterior).

    As :func:`ranking_method`, but ``rank`` ranks the candidates by their posterior probability of
    being the root cause of ``case.anomaly``; the table's ``median`` and ``prob_top`` columns both
    hold that probability (mean over draws), ``lower`` / ``upper`` its interval over draws.
    ``robust`` is passed on (False: the plain single-fault model).
    """
    import warnings as _warnings

    import bayesrca as br

    fit, _ = ranking_method(mechanisms, draws, seed, target_of=target_of, ci_prob=ci_prob)

    def rank(scm, system, case):
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", br.BayesRCAWarning)
            res = br.root_cause_posterior(scm, target_of(case), case.anomaly, seed=seed, robust=robust)
        table = res.summary(ci_prob=ci_prob)
        return table.assign(median=table["prob"], prob_top=table["prob"])[["node", "median", "lower", "upper", "prob_top"]], {}

    return fit, rank
