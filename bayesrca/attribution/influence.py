r"""Intrinsic causal influence: which node's own noise drives the target's variability?

The Bayesian port of DoWhy's ``gcm.intrinsic_causal_influence`` (Janzing, Bloebaum, Mastakouri,
Faller & Budhathoki, "Quantifying intrinsic causal contributions via structure preserving
interventions", AISTATS 2024). Players P are the target t's ancestors and t itself; player j stands
for its noise :math:`N_j`. Per posterior draw s (DoWhy's convention, its default ``attribution_func``):

.. math:: v_s(S) = \mathrm{Var}\big(\mathbb E[X_t \mid N_S]\big), \qquad v_s(\emptyset) = 0,
          \quad v_s(P) = \mathrm{Var}(X_t),

so the Shapley values of a draw add up to the draw's variance of the target. Two engines:

* ``"analytic"`` (every player linear, finite noise variances): :math:`X_t = c + \sum_j a_j N_j`
  with :math:`a_j` from :func:`bayesrca.counterfactual.linearize`, so
  :math:`v_s(S) = \sum_{j \in S} a_j^2 \mathrm{Var}(N_j)` and the contribution of j is exactly
  :math:`a_j^2 \mathrm{Var}(N_j)` under draw s;
* ``"mc"`` (nested Monte Carlo): ``num_outer`` samples of the kept noises :math:`N_S` and, for
  each, ``num_inner`` independent samples of the other noises, pushed through the SCM program
  under :class:`~bayesrca.counterfactual.handlers.KeepNoise` (coalitions are a tensor dimension, the samples are
  shared by every coalition). The conditional mean is the inner average and
  :math:`\hat v(S) = \widehat{\mathrm{Var}}_{outer}(\bar x) - \overline{s^2_{inner}} / M_{inner}`
  removes the inner Monte Carlo variance (unbiased for the variance of the conditional mean).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from typing import cast

import pyro
import torch
from pyro import poutine

from ..threads import thread_policy
from .. import graph as graphs
from .._random import seeded
from ..parallel import ExecutorSetFunction, check_executor
from .common import check_common_arguments, check_fitted_scm, estimate_shapley, mc_std_error, shapley_error_info
from ..results import ContributionResult
from ..counterfactual import linearize
from ..exceptions import ConfigError
from ..counterfactual.handlers import KeepNoise
from ..mechanisms.base import noise_site
from ..scm import BayesianSCM
from ..shapley import ShapleyOptions
from ..validation import check_positive_int

__all__ = ["intrinsic_causal_influence"]

_ENGINES = ("auto", "analytic", "mc")


@thread_policy
def intrinsic_causal_influence(
    scm: BayesianSCM,
    target_node: Hashable,
    *,
    measure: str | Callable[[torch.Tensor], torch.Tensor] = "variance",
    engine: str = "auto",
    num_outer: int = 1000,
    num_inner: int = 10,
    shapley: str | ShapleyOptions = "auto",
    num_permutations: int | None = None,
    max_exact_players: int = 12,
    max_elements: int = 2**25,
    seed: int | None = None,
    executor: Executor | None = None,
) -> ContributionResult:
    r"""Posterior intrinsic causal influence of every upstream node's noise on the target.

    See the module docstring (:mod:`bayesrca.attribution.influence`) for the set function and the engines.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target_node : hashable
        The node whose variability is decomposed.
    measure : "variance" or callable, default "variance"
        The uncertainty measure of the conditional mean :math:`\mathbb E[X_t \mid N_S]`. A callable
        maps samples of it, a tensor ``(..., M)``, to ``(...)`` (reduce the last dimension, e.g. a
        robust spread); the empty coalition gets the measure of a constant. Callables use the
        Monte Carlo engine without the inner-variance correction.
    engine : {"auto", "analytic", "mc"}
        ``"auto"``: closed form when every player is linear with finite noise variance and the
        measure is the variance, nested Monte Carlo otherwise.
    num_outer, num_inner : int, default 1000 and 10
        Nested Monte Carlo sample sizes per posterior draw. The outer size drives the Monte Carlo
        error (the inner variance is corrected for); ``mc_se`` in the summary reports it.
    shapley : {"auto", "exact", "permutation", "early_stopping"} or ShapleyOptions
        Shapley estimator (the closed form is additive, so both are exact there). A
        :class:`~bayesrca.shapley.ShapleyOptions` gives the estimator and its settings at once.
    num_permutations : int, optional
        Permutations for ``shapley="permutation"``.
    max_exact_players : int, default 12
        Largest number of players solved exactly by ``"auto"``.
    max_elements : int, default 2**25
        Bound on the elements of one intermediate tensor (coalitions x samples x draws).
    seed : int, optional
        Seed of the Monte Carlo and permutation draws.
    executor : concurrent.futures.Executor, optional
        Evaluate the coalitions of the nested Monte Carlo engine as tasks on this executor (a
        :class:`~concurrent.futures.ProcessPoolExecutor`, or a Dask client's ``get_executor()``;
        :mod:`bayesrca.parallel`): bit-identical numbers to None. A callable ``measure`` must then
        be picklable (a module-level function). The closed form runs in this process.

    Returns
    -------
    ContributionResult
        ``attribution="intrinsic_causal_influence"``; ``total`` is the target's variance per draw (or the
        measure of the target itself).

    Raises
    ------
    GraphError
        If the target is not in the graph.
    ConfigError
        For an invalid setting, or ``engine="analytic"`` on a model that is not linear.
    NotFittedError
        If the model is not fitted.
    """
    check_fitted_scm(scm)
    executor = check_executor(executor)
    players = graphs.players_of(scm.graph_, target_node)
    if engine not in _ENGINES:
        raise ConfigError(f"engine must be one of {_ENGINES}, got {engine!r}")
    args = check_common_arguments(seed=seed, shapley=shapley, num_permutations=num_permutations,
                                  max_exact_players=max_exact_players, max_elements=max_elements)
    if not (callable(measure) or measure == "variance"):
        raise ConfigError(f"measure must be 'variance' or a callable reducing the last dimension, got {measure!r}")
    num_outer = check_positive_int(num_outer, "num_outer", minimum=4)
    num_inner = check_positive_int(num_inner, "num_inner", minimum=2)
    num_draws = scm.num_draws_
    estimator = args.shapley.resolve(len(players))  # the concrete Shapley method, as reported
    linear = all(scm.mechanisms_[p].is_linear for p in players) and measure == "variance"
    if engine == "analytic" and not linear:
        raise ConfigError("engine='analytic' needs linear mechanisms on the target and all its ancestors and "
                          "measure='variance'; use engine='auto'")
    with seeded(args.seed) as generator, torch.no_grad():
        weights = _linear_weights(scm, players, target_node) if linear and engine != "mc" else None
        path = "analytic" if weights is not None else "mc"
        if weights is not None:  # the analytic path
            linear_weights = weights

            def value(masks: torch.Tensor) -> torch.Tensor:
                return (masks.to(torch.float64) @ linear_weights.T).unsqueeze(-1)  # (C, D, 1)
            step = None
        else:
            value = _NestedValue(scm, players, target_node, measure, num_outer, num_inner)
            if executor is not None:  # the samples are drawn here; the coalitions are evaluated there
                value = ExecutorSetFunction(value, executor)
            step = max(1, args.max_elements // (3 * num_outer * num_inner * num_draws))
        phi, error = estimate_shapley(value, len(players), estimator, generator, step)  # (D, E, n)
        total = value(torch.ones(1, len(players), dtype=torch.bool))[0, :, 0].numpy()  # v(P); v(empty) = 0
    mc_se = mc_std_error(phi) if path == "mc" else None
    contributions = phi[:, 0].numpy()
    name = "variance" if measure == "variance" else getattr(measure, "__name__", "measure")
    info = {"engine": path, "measure": name, "shapley": estimator.method, "num_draws": num_draws,
            "num_outer": 0 if path == "analytic" else num_outer, "num_inner": 0 if path == "analytic" else num_inner,
            "seed": args.seed}
    if error:
        info.update(shapley_error_info(error["se"].pow(2).mean(0, keepdim=True).sqrt().numpy(), [str(p) for p in players],
                                       error["num_permutations"], error["converged"]))
    return ContributionResult(
        contributions, total, [str(p) for p in players], str(target_node),
        attribution="intrinsic_causal_influence", quantity=f"{name} of {target_node!r}", method_info=info,
        mc_std_error=mc_se,
    )


def _linear_weights(scm: BayesianSCM, players: list, target: Hashable) -> torch.Tensor | None:
    """``a_j^2 Var(N_j)`` per draw, shape ``(D, n)``; None when a noise variance is not finite."""
    _, coef = linearize(scm, players)
    variance = torch.stack([scm.mechanisms_[p].noise_distribution().variance.to(torch.float64) for p in players], -1)
    if not bool(torch.isfinite(variance).all()):
        return None
    return coef[target] ** 2 * variance


class _NestedValue:
    """``v(S)`` by nested Monte Carlo, shape ``(C, D, 3)``: all outer samples, then each half."""

    def __init__(self, scm, players, target, measure, num_outer, num_inner) -> None:
        self.scm, self.players, self.target, self.measure = scm, players, target, measure
        self.num_inner = num_inner

        def model(inner: bool) -> dict:
            with pyro.plate("outer", num_outer, dim=-3):
                if not inner:
                    return scm.program(players)
                with pyro.plate("inner", num_inner, dim=-2):
                    return scm.program(players)

        def noise(inner: bool) -> dict:
            trace = poutine.trace(model).get_trace(inner)
            return {p: cast(torch.Tensor, trace.nodes[noise_site(p)]["value"]).float() for p in players}

        self.kept = noise(False)  # (outer, 1, D)
        self.fresh = {noise_site(p): v for p, v in noise(True).items()}  # (outer, inner, D)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        c = masks.shape[0]
        node_masks = {p: masks[:, j].reshape(c, 1, 1, 1) for j, p in enumerate(self.players)}
        program = KeepNoise(self.kept, node_masks)(poutine.condition(self.scm.program, data=self.fresh))
        x = program(self.players)[self.target]
        x = x.expand(c, *self.fresh[noise_site(self.target)].shape)  # (C, outer, inner, D)
        mean = x.mean(2).transpose(1, 2)  # (C, D, outer)
        empty = ~masks.any(1)
        if bool(empty.any()):  # nothing kept: the conditional mean is one constant
            mean[empty] = mean[empty].mean(-1, keepdim=True).expand_as(mean[empty])
        inner_var = x.var(2).transpose(1, 2) / self.num_inner  # (C, D, outer)
        half = mean.shape[-1] // 2
        parts = [slice(None), slice(0, half), slice(half, None)]
        if self.measure == "variance":
            var = torch.stack([mean[..., s].var(-1) - inner_var[..., s].mean(-1) for s in parts], -1)
            var[empty] = 0.0
            return var.double()
        out = [self.measure(mean[..., s]) for s in parts]
        if not all(isinstance(o, torch.Tensor) and o.shape == mean.shape[:-1] for o in out):
            raise ConfigError("measure must map a tensor of shape (..., M) to shape (...) (reduce the last dimension)")
        return torch.stack(out, -1).double()
