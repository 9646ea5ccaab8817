r"""Why did the distribution change? Posterior attribution of a change to mechanism changes.

The Bayesian port of DoWhy's ``gcm.distribution_change`` (Budhathoki, Janzing, Bloebaum & Ng,
"Why did the distribution change?", AISTATS 2021). For a target t with players P (its ancestors and
itself):

1. **Did a mechanism change?** For every player j the data decide between "one mechanism for old
   and new data" and "separate mechanisms" by their marginal likelihoods (a Bayes factor, not a
   significance test), see :func:`change_log_bayes_factor`. With prior probability ``prior_change``
   of a change this gives :math:`\pi_j = P(\text{mechanism } j \text{ changed} \mid \text{data})`.
2. **Model averaging per draw.** Each posterior draw s draws an indicator
   :math:`z_{sj} \sim \text{Bernoulli}(\pi_j)`. Where :math:`z_{sj} = 1` node j's old and new
   mechanisms are draw s of separate fits to the old and the new data; where :math:`z_{sj} = 0`
   both are draw s of one fit to the pooled data (so node j is a null player of draw s and gets
   exactly 0). The draws are thus from the posterior averaged over "changed" and "unchanged",
   and the intervals carry the uncertainty about whether each mechanism changed.
3. **Shapley over mechanism swaps.** :math:`v_s(S) = \psi(X_t^{S}) - \psi(X_t^{\emptyset})`, where
   :math:`X_t^{S}` is the target of the SCM whose nodes in S use their new mechanism and the others
   their old one, and :math:`\psi` a summary (mean by default) estimated from Monte Carlo samples of
   fresh noise shared by every coalition (common random numbers); or, for ``summary="kl"``,
   :math:`v_s(S) = KL(X_t^{\emptyset} \,\|\, X_t^{S})` (DoWhy's default difference). Shapley
   values per draw sum exactly to :math:`v_s(P)`, the draw's change of the summary.
   For the mean of an all-linear model the summary is exact (the SCM is affine in its noises, so
   the mean propagates the noise means) and needs no Monte Carlo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Executor
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch
from pyro import poutine

from ..threads import thread_policy, torch_threads
from .. import graph as graphs
from .._progress import resolve as resolve_progress
from .._random import child_seeds, seeded
from ..counterfactual import fresh_noise_trace
from ..counterfactual.handlers import SwapMechanism
from ..exceptions import ConfigError
from ..mechanisms import Mechanism
from ..mechanisms.base import noise_site
from ..parallel import check_executor, run_tasks
from ..results import ContributionResult
from ..scm import BayesianSCM
from ..shapley import ShapleyOptions
from ..validation import check_positive_int, check_probability
from .change_evidence import change_log_bayes_factor, expit
from .common import (
    check_common_arguments,
    check_num_mc_samples,
    check_player_frame,
    estimate_shapley,
    mc_std_error,
    shapley_error_info,
)

__all__ = ["change_log_bayes_factor", "distribution_change"]

_SUMMARIES = ("mean", "variance", "kl")


@thread_policy
def distribution_change(
    scm_or_graph: BayesianSCM | nx.DiGraph,
    old_data: pd.DataFrame,
    new_data: pd.DataFrame,
    target_node: Hashable,
    *,
    summary: str | Callable[[torch.Tensor], torch.Tensor] = "mean",
    mechanisms: Any = "auto",
    num_draws: int | None = None,
    prior_change: float = 0.5,
    invariant_nodes: Iterable[Hashable] = (),
    num_mc_samples: int = 2000,
    shapley: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    max_elements: int = 2**25,
    seed: int | None = None,
    progress: bool | None = None,
    executor: Executor | None = None,
) -> ContributionResult:
    r"""Posterior contributions of mechanism changes to the change of the target's distribution.

    See the module docstring (:mod:`bayesrca.attribution.change`) for the definitions. Contributions are
    per posterior draw; a node deemed unchanged in a draw contributes exactly 0 there, and the
    contributions of a draw sum to that draw's change of the summary (efficiency).

    Parameters
    ----------
    scm_or_graph : BayesianSCM or networkx.DiGraph
        The causal graph, or a model: a fitted model lends its per-node mechanism families (they
        are refitted, not reused), an unfitted one its ``mechanisms`` and ``num_draws``.
    old_data, new_data : pandas.DataFrame
        Rows from before and after the change, with a column for the target and each ancestor
        (other graph nodes may be present and are ignored).
    target_node : hashable
        The node whose distribution changed.
    summary : {"mean", "variance", "kl"} or callable, default "mean"
        What changed: the mean, the variance, the KL divergence :math:`KL(\text{old} \| S)` (a
        histogram estimate with :math:`\sqrt{M}` equal-probability bins of the old samples and
        add-1/2 smoothing), or a callable mapping a tensor of target samples ``(..., M)`` to a
        tensor ``(...)`` (reduce the last dimension, e.g. ``lambda x: x.quantile(0.9, dim=-1)``).
    mechanisms : str, Mechanism or mapping, default "auto"
        Mechanisms when a graph is given, as for :class:`BayesianSCM` (the choice is made once on
        the pooled data; old and new fits use the same family).
    num_draws : int, optional
        Posterior draws (default: the model's, else 200).
    prior_change : float, default 0.5
        Prior probability that a node's mechanism changed (0.5: prior odds 1:1).
    invariant_nodes : iterable, optional
        Nodes known not to have changed (probability of change set to 0).
    num_mc_samples : int, default 2000
        Fresh noise samples per draw for the summary (not used for the exact linear mean).
    shapley : {"auto", "exact", "permutation", "early_stopping"} or ShapleyOptions
        Shapley estimator over the nodes that changed in at least one draw. A
        :class:`~bayesrca.shapley.ShapleyOptions` gives the estimator and its settings at once.
    num_permutations : int, optional
        Permutations for ``shapley="permutation"``.
    max_exact_players : int, default 12
        Largest number of changed nodes solved exactly by ``"auto"``.
    max_elements : int, default 2**25
        Bound on the elements of one intermediate tensor (coalitions x samples x draws).
    seed : int, optional
        Seed of all randomness (fits, change indicators, Monte Carlo, permutations).
    progress : bool or None, default None
        Show progress bars while fitting. None: on in a terminal or a notebook, off in CI and
        when standard error is redirected.
    executor : concurrent.futures.Executor, optional
        Run the fits (the shared model's nodes, then each changed node's old and new mechanism)
        as tasks on this executor (:mod:`bayesrca.parallel`); bit-identical numbers to None
        (default: in this process). The Shapley values are computed here.

    Returns
    -------
    ContributionResult
        ``attribution="distribution_change"``; ``prob_changed`` per node, ``changed`` per draw and node,
        ``total`` the change of the summary per draw. ``method_info["log_bayes_factor"]`` holds
        the log Bayes factors (changed vs shared) per node.

    Raises
    ------
    GraphError
        If the target or an invariant node is not in the graph.
    DataError
        If a data frame lacks columns or holds non-finite values.
    ConfigError
        For an invalid setting.
    """
    graph, spec, num_draws = _resolve_model(scm_or_graph, mechanisms, num_draws)
    players = graphs.players_of(graph, target_node)
    old = check_player_frame(old_data, graph, players, what="old_data", min_rows=2)
    new = check_player_frame(new_data, graph, players, what="new_data", min_rows=2)
    prior_change = check_probability(prior_change, "prior_change")
    invariant = _check_nodes(invariant_nodes, graph)
    num_mc_samples = check_num_mc_samples(num_mc_samples)
    args = check_common_arguments(seed=seed, shapley=shapley, num_permutations=num_permutations,
                                  max_exact_players=max_exact_players, max_elements=max_elements)
    psi, quantity = _summary_function(summary, target_node)
    progress = resolve_progress(progress)
    executor = check_executor(executor)
    seeds = child_seeds(args.seed, 3 + 2 * len(players))
    sub = nx.DiGraph()
    sub.add_nodes_from(players)
    sub.add_edges_from((u, v) for u, v in graph.edges if u in sub and v in sub)
    if isinstance(spec, Mapping):
        spec = {n: m for n, m in spec.items() if n in sub}
    pooled = pd.concat([old, new], ignore_index=True)
    shared = BayesianSCM(sub, mechanisms=spec, num_draws=num_draws).fit(pooled, seed=seeds[0], progress=progress, executor=executor)
    parents = shared.parents_
    log_bf = np.array([
        -np.inf if n in invariant else change_log_bayes_factor(shared.mechanisms_[n], old, new, n, parents[n])
        for n in players
    ])
    prob = expit(log_bf + math.log(prior_change / (1 - prior_change)))
    with seeded(seeds[1]), torch.no_grad():
        changed = torch.rand(num_draws, len(players), dtype=torch.float64) < torch.as_tensor(prob)
    active = [n for i, n in enumerate(players) if bool(changed[:, i].any())]
    tasks = [
        (shared.mechanisms_[node].clone(), frame[node].to_numpy(),
         frame[list(parents[node])].to_numpy().reshape(len(frame), -1),
         seeds[3 + 2 * i + k], num_draws, progress and executor is None, str(node), torch.get_num_threads())
        for i, node in enumerate(active) for k, frame in enumerate((old, new))
    ]
    fitted: dict[int, Mechanism] = {}
    run_tasks(executor, _fit_period, tasks, fitted.__setitem__)
    fits = {node: (fitted[2 * i], fitted[2 * i + 1]) for i, node in enumerate(active)}
    contributions, total = np.zeros((num_draws, len(players))), np.zeros(num_draws)
    mc_se = np.zeros(len(players))
    exact_mean = summary == "mean" and all(
        m.is_linear for m in [shared.mechanisms_[n] for n in players] + [m for p in fits.values() for m in p]
    )
    info: dict[str, Any] = {"summary": getattr(summary, "__name__", summary), "num_draws": num_draws,
                            "prior_change": prior_change, "seed": args.seed, "engine": "exact mean" if exact_mean else "mc",
                            "num_mc_samples": 0 if exact_mean else num_mc_samples, "shapley": "none",
                            "log_bayes_factor": dict(zip(map(str, players), np.round(log_bf, 3).tolist()))}
    if active:
        flags = {n: changed[:, players.index(n)] for n in active}
        estimator = args.shapley.resolve(len(active))  # the concrete Shapley method, as reported
        with seeded(seeds[2]) as generator, torch.no_grad():
            value = _SwapValue(shared, players, target_node, fits, flags, psi, num_mc_samples, exact_mean)
            step = max(1, args.max_elements // (4 * value.num_samples * num_draws))
            phi, error = estimate_shapley(value, len(active), estimator, generator, step)  # (D, E, A)
            total = value(torch.ones(1, len(active), dtype=torch.bool))[0, :, 0].numpy()  # v(P) - v(empty)
        idx = [players.index(n) for n in active]
        contributions[:, idx] = phi[:, 0].numpy()
        mc_se[idx] = mc_std_error(phi)
        info["shapley"] = estimator.method
        if error:
            info.update(shapley_error_info(error["se"].pow(2).mean(0, keepdim=True).sqrt().numpy(),
                                           [str(n) for n in active], error["num_permutations"], error["converged"]))
    info["active_nodes"] = [str(n) for n in active]
    return ContributionResult(
        contributions, total, [str(p) for p in players], str(target_node),
        attribution="distribution_change", quantity=quantity, method_info=info, prob_changed=prob,
        changed=changed.numpy().astype(float), mc_std_error=mc_se,
    )


def _fit_period(mech: Mechanism, y: np.ndarray, pa: np.ndarray, seed: int, num_draws: int, progress: bool,
                node: str, threads: int) -> Mechanism:
    """One node's mechanism fitted to one period's rows (a task; C-ordered copies and the caller's
    torch threads, as in :func:`bayesrca.fitting.fit_node_task`, so the numbers do not depend on
    where it runs)."""
    with seeded(seed), torch_threads(threads):
        mech.fit(np.array(y, order="C"), np.array(pa, dtype=np.float64, order="C"), num_draws=num_draws,
                 progress=progress, node=node)
    return mech


class _SwapValue:
    """``v(S)`` per draw for coalitions S of changed nodes: shape ``(C, D, E)``.

    The target is computed by the SCM program under two
    :class:`~bayesrca.counterfactual.handlers.SwapMechanism` handlers: where node j changed in
    draw s (``flags``) the inner one swaps in its old fit, the outer one its new fit where j is
    also in the coalition. Noise is drawn once per node and mechanism version (the shared fit's
    from a Pyro trace of the SCM program, the old and new fits' from their noise distributions)
    and reused by every coalition (common random numbers). ``E = 3`` on the Monte Carlo path: the
    estimate from all samples, then from each half (their difference measures the Monte Carlo
    error); ``E = 1`` for the exact mean.
    """

    def __init__(self, shared, players, target, fits, flags, psi, num_samples, exact_mean):
        self.shared, self.players, self.target, self.fits, self.flags, self.psi = shared, players, target, fits, flags, psi
        self.active = list(fits)
        self.exact = exact_mean
        self.num_samples = 1 if exact_mean else num_samples
        if exact_mean:  # the SCM is affine in the noises: E[X_t] propagates the noise means
            self.noise = {n: (shared.mechanisms_[n].noise_distribution().mean.unsqueeze(0),
                              *(m.noise_distribution().mean.unsqueeze(0) for m in fits.get(n, ()))) for n in players}
        else:
            trace = fresh_noise_trace(shared, players, num_samples, dim=-2)
            self.noise = {n: (trace.nodes[noise_site(n)]["value"].float(),
                              *(m.noise_distribution().sample((num_samples,)).float() for m in fits.get(n, ())))
                          for n in players}
        self.reference = self._target(torch.zeros(1, len(self.active), dtype=torch.bool))[0]  # (D, M): all old

    def _target(self, masks: torch.Tensor) -> torch.Tensor:
        """Target samples ``(C, D, M)`` of the SCMs that swap in the new mechanisms of ``masks``."""
        shared_noise = {noise_site(n): self.noise[n][0] for n in self.players}
        program = poutine.condition(self.shared.program, data=shared_noise)
        old = SwapMechanism({n: self.fits[n][0] for n in self.active}, {n: self.noise[n][1] for n in self.active},
                            {n: self.flags[n] for n in self.active})
        new = SwapMechanism({n: self.fits[n][1] for n in self.active}, {n: self.noise[n][2] for n in self.active},
                            {n: self.flags[n] & masks[:, i].reshape(-1, 1, 1) for i, n in enumerate(self.active)})
        x = new(old(program))(self.players)[self.target]
        return x.expand(masks.shape[0], *x.shape[-2:]).transpose(1, 2)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        x = self._target(masks)
        ref = self.reference
        if self.exact:
            return (x - ref).double()
        half = x.shape[-1] // 2
        parts = [(x, ref), (x[..., :half], ref[..., :half]), (x[..., half:], ref[..., half:])]
        return torch.stack([self.psi(a, r) for a, r in parts], -1).double()


def _summary_function(summary: Any, target: Hashable) -> tuple[Callable, str]:
    """``psi(x, ref)``: the summary difference of samples ``x (C, D, M)`` against ``ref (D, M)``."""
    if callable(summary):
        name = getattr(summary, "__name__", "summary")

        def user(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
            out, base = summary(x), summary(ref)
            if not isinstance(out, torch.Tensor) or out.shape != x.shape[:-1]:
                raise ConfigError(f"summary must map a tensor of shape (..., M) to shape (...) (reduce the last "
                                  f"dimension); for shape {tuple(x.shape)} it returned {getattr(out, 'shape', type(out))}")
            return out - base

        return user, f"change of {name} of {target!r}"
    if summary == "mean":
        return (lambda x, ref: x.mean(-1) - ref.mean(-1)), f"change of the mean of {target!r}"
    if summary == "variance":
        return (lambda x, ref: x.var(-1) - ref.var(-1)), f"change of the variance of {target!r}"
    if summary == "kl":
        return _kl_histogram, f"KL divergence of {target!r} (old to new)"
    raise ConfigError(f"summary must be one of {_SUMMARIES} or a callable, got {summary!r}")


def _kl_histogram(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    r""":math:`KL(ref \| x)` per row from histograms on ``sqrt(M)`` equal-probability bins of ``ref``."""
    m = ref.shape[-1]
    bins = max(4, round(math.sqrt(m)))
    q = torch.linspace(0, 1, bins + 1, dtype=ref.dtype)[1:-1]
    edges = torch.quantile(ref, q, dim=-1).T.contiguous()  # (D, B - 1)

    def probs(s: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(edges.expand(*s.shape[:-1], bins - 1).contiguous(), s.contiguous())
        counts = torch.zeros(*s.shape[:-1], bins, dtype=s.dtype).scatter_add_(-1, idx, torch.ones_like(s))
        return (counts + 0.5) / (s.shape[-1] + 0.5 * bins)

    p_ref, p_x = probs(ref), probs(x)
    return (p_ref * (p_ref.log() - p_x.log())).sum(-1)


def _resolve_model(scm_or_graph: Any, mechanisms: Any, num_draws: int | None) -> tuple[nx.DiGraph, Any, int]:
    """The graph, the mechanism specification and the number of draws to use."""
    if isinstance(scm_or_graph, BayesianSCM):
        if not (isinstance(mechanisms, str) and mechanisms == "auto"):
            raise ConfigError("mechanisms is taken from the BayesianSCM; pass it to BayesianSCM(...), not here")
        scm = scm_or_graph
        graph = graphs.validate_graph(scm.graph)
        if hasattr(scm, "mechanisms_"):
            scm.check_fitted()
            spec: Any = {n: m.clone() for n, m in scm.mechanisms_.items()}
            default = scm.num_draws_
        else:
            spec, default = scm.mechanisms, scm.num_draws
    else:
        graph, spec, default = graphs.validate_graph(scm_or_graph), mechanisms, 200
    draws = check_positive_int(default if num_draws is None else num_draws, "num_draws")
    return graph, spec, draws


def _check_nodes(nodes: Any, graph: nx.DiGraph) -> set:
    if isinstance(nodes, str) or not isinstance(nodes, Iterable):
        raise ConfigError(f"invariant_nodes must be a list of node names, got {nodes!r}")
    nodes = list(nodes)
    graphs.check_known_nodes(graph, nodes, "invariant_nodes")
    return set(nodes)
