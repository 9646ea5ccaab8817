r"""Model averaging over mechanism families, one family per posterior draw.

:class:`FamilyMixture` holds several fitted mechanisms of one node (each fitted on all training
data with D posterior draws) and assigns every posterior draw s to one of them,
:math:`k(s)`, with about :math:`D w_k` draws for component k. Draw s of the node is then draw s
of component :math:`k(s)`: its value, noise, abduction and density. Over the draws this is a
sample of the model-averaged posterior :math:`\sum_k w_k\, p(\theta_k \mid \text{data}, M_k)`,
so every posterior summary downstream (contributions, intervals, P(top)) averages over the
families with weights w, without any change to the attribution code.

The allocation is deterministic given the weights and the random state: the counts follow the
largest-remainder rule (each :math:`\lfloor D w_k \rfloor` or one more, summing to D), then the
draws are permuted at random so that the families of different nodes are not aligned.

Each component is fitted with as many posterior draws as it is assigned (:math:`D_k`), and every
method evaluates component k on its own draws only (the inputs' last dimension indexed by the
draws of k) and scatters the results back: a node costs one evaluation per draw, not one per
draw and family. A family too light to be assigned a single draw is not fitted at all.
Models saved before this (every component fitted with all D draws) still load and evaluate every
component on every draw, keeping each draw's own.
"""

from __future__ import annotations

import copy

import math

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pyro
import torch
from pyro.distributions import TorchDistribution, constraints

from ..exceptions import ConfigError
from .additive import AdditiveNoiseModel
from .base import Mechanism
from .noise import split_gaussian

__all__ = ["FamilyMixture", "DrawSelection", "allocate_draws", "draw_indices", "split_gaussian_part", "has_additive_noise"]


def allocate_draws(weights: Sequence[float] | np.ndarray, num_draws: int) -> torch.Tensor:
    """Component of each of ``num_draws`` draws: largest-remainder counts, randomly permuted.

    Component k gets ``floor(num_draws * w_k)`` draws or one more (the ones with the largest
    remainders, ties to the heavier, then earlier, component); the order of the draws comes
    from torch's random state (seed it with :func:`bayesrca._random.seeded`).

    Returns
    -------
    torch.Tensor
        ``(num_draws,)`` int64 component indices.
    """
    w = np.asarray(weights, dtype=np.float64)
    exact = num_draws * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    order = sorted(range(len(w)), key=lambda k: (-(exact[k] - counts[k]), -w[k], k))
    for k in order[: num_draws - int(counts.sum())]:
        counts[k] += 1
    labels = torch.repeat_interleave(torch.arange(len(w)), torch.as_tensor(counts))
    return labels[torch.randperm(num_draws)]


def _select(assignment: torch.Tensor, values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per draw (the last dimension) the value of the draw's component (every value over all D draws)."""
    out = values[0]
    for k in range(1, len(values)):
        out = torch.where(assignment == k, values[k], out)
    return out


def draw_indices(assignment: torch.Tensor, num_components: int) -> list[torch.Tensor]:
    """The draws of each component, ascending: ``(D_k,)`` int64 each."""
    return [torch.nonzero(assignment == k).reshape(-1) for k in range(num_components)]


def _take(x: torch.Tensor, index: torch.Tensor, num_draws: int) -> torch.Tensor:
    """``x``'s draws ``index`` (its last dimension); a tensor without a draw dimension (0-d, or a
    last dimension of 1 that broadcasts) is the same for every draw and passes unchanged."""
    if x.dim() == 0 or x.shape[-1] != num_draws:
        return x
    return x.index_select(-1, index)


def _merge(values: Sequence[torch.Tensor], index: Sequence[torch.Tensor], inverse: torch.Tensor) -> torch.Tensor:
    """Scatter per-component values ``(..., D_k)`` back to ``(..., D)`` (the inverse of :func:`_take`)."""
    lead = torch.broadcast_shapes(*(v.shape[:-1] for v in values))
    parts = [v.expand(*lead, len(i)) for v, i in zip(values, index)]
    return torch.cat(parts, -1).index_select(-1, inverse)


class DrawSelection(TorchDistribution):
    """The noise of a :class:`FamilyMixture`: draw s follows component ``assignment[s]``.

    With ``index`` (component k holds only its ``D_k`` draws, :func:`draw_indices`) every method
    evaluates each component on its own draws of the argument and scatters the results back;
    without it (every component over all D draws) every component is evaluated on every draw and
    each draw keeps its component's value. Values outside a component's support (a negative value
    under a log-normal) get density 0 there (``log_prob`` -inf).

    Parameters
    ----------
    components : sequence of TorchDistribution
        Each with batch shape ``(..., D_k)`` (with ``index``) or ``(..., D)``.
    assignment : torch.Tensor
        ``(D,)`` component index per draw.
    batch_shape : torch.Size, optional
        Broadcast batch shape (used by plates through :meth:`expand`).
    index : sequence of torch.Tensor, optional
        The draws of each component (:func:`draw_indices` of ``assignment``).
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, components: Sequence[TorchDistribution], assignment: torch.Tensor, batch_shape=None,
                 validate_args=None, index: Sequence[torch.Tensor] | None = None) -> None:
        self.components = list(components)
        self.assignment = assignment
        self.index = None if index is None else list(index)
        self._inverse = None if index is None else torch.argsort(torch.cat(list(index)))
        if batch_shape is None:
            shapes = [c.batch_shape[:-1] for c in self.components] if index is not None else [c.batch_shape for c in self.components]
            batch_shape = torch.broadcast_shapes(*shapes, assignment.shape)
        super().__init__(torch.Size(batch_shape), torch.Size(), validate_args=False)

    def expand(self, batch_shape, _instance=None) -> DrawSelection:
        batch_shape = torch.Size(batch_shape)
        if self.index is None:
            return DrawSelection([c.expand(batch_shape) for c in self.components], self.assignment, batch_shape)
        parts = [c.expand(batch_shape[:-1] + (len(i),)) for c, i in zip(self.components, self.index)]
        return DrawSelection(parts, self.assignment, batch_shape, index=self.index)

    def part(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Component k's draws of ``x`` (all of ``x`` without ``index``)."""
        return x if self.index is None else _take(x, self.index[k], len(self.assignment))

    def combine(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        """One value per draw from the components' values (each over its own draws with ``index``)."""
        if self.index is None:
            return _select(self.assignment, values)
        return _merge(values, self.index, cast(torch.Tensor, self._inverse))

    def _pick(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.combine(values).expand(self.batch_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self._pick([c.mean for c in self.components])

    @property
    def variance(self) -> torch.Tensor:
        return self._pick([c.variance for c in self.components])

    @property
    def stddev(self) -> torch.Tensor:
        return self._pick([c.stddev for c in self.components])

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.combine([c.sample(sample_shape) for c in self.components])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.combine([_within_support(c, self.part(value, k), c.log_prob, -math.inf)
                             for k, c in enumerate(self.components)])

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        # every support here is real or bounded below (log-normal): outside it the cdf is 0
        return self.combine([_within_support(c, self.part(value, k), c.cdf, 0.0) for k, c in enumerate(self.components)])


def _within_support(component: TorchDistribution, value: torch.Tensor, fn, outside: float) -> torch.Tensor:
    """``fn(value)`` where ``value`` lies in the component's support, ``outside`` elsewhere.

    Another component's draws (a negative value beside a log-normal) or an importance-sampling
    proposal can put values outside a component's support; torch's argument validation would
    raise there. Such a value has density 0 (log-density -inf) under the component.
    """
    support = component.support if component.support is not None else constraints.real
    inside = support.check(value)
    if bool(inside.all()):
        return fn(value)
    safe = torch.where(inside, value, component.mean.expand_as(value).to(value.dtype))
    return torch.where(inside, fn(safe), torch.full_like(safe, outside))


class FamilyMixture(Mechanism):
    """A node modelled by several families at once, each posterior draw by one of them.

    Parameters
    ----------
    components : sequence of Mechanism
        The families (unfitted; :meth:`fit` fits a clone of each on all the training data with
        the number of draws it is assigned). All must fit the node's position (root or not).
    weights : sequence of float
        Non-negative weight per component (normalised in :meth:`fit`); e.g. pseudo-BMA+ or
        stacking weights from :func:`bayesrca.selection.select_mechanism`.

    Attributes
    ----------
    components_ : list of Mechanism
        The fitted components: those assigned at least one draw, component k fitted with its
        ``D_k`` draws.
    weights_ : torch.Tensor
        ``(K',)`` their weights (normalised over all the given components).
    assignment_ : torch.Tensor
        ``(D,)`` the fitted component of each posterior draw (:func:`allocate_draws`).
    draw_index_ : list of torch.Tensor
        The draws of each fitted component, ascending (:func:`draw_indices`): draw j of
        component k is posterior draw ``draw_index_[k][j]`` of the node.
    """

    family = "mixture"

    def __init__(self, components: Sequence[Mechanism] = (), weights: Sequence[float] = ()) -> None:
        self.components = components
        self.weights = weights

    def _check_params(self) -> tuple[list[Mechanism], np.ndarray]:
        comps = list(self.components)
        if not comps or not all(isinstance(c, Mechanism) for c in comps):
            raise ConfigError(f"FamilyMixture needs a non-empty list of Mechanism components, got {self.components!r}")
        if any(isinstance(c, FamilyMixture) for c in comps):
            raise ConfigError("FamilyMixture components cannot be mixtures themselves")
        w = np.asarray(list(self.weights), dtype=np.float64)
        if w.shape != (len(comps),) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ConfigError(f"FamilyMixture needs one finite non-negative weight per component (not all 0), got {self.weights!r}")
        return comps, w / w.sum()

    def fit(self, y: np.ndarray, parents: np.ndarray, *, num_draws: int, progress: bool = False, node: str = "") -> FamilyMixture:
        comps, w = self._check_params()
        labels = allocate_draws(w, num_draws)
        counts = torch.bincount(labels, minlength=len(comps))
        used = [k for k in range(len(comps)) if int(counts[k]) > 0]
        remap = torch.full((len(comps),), -1, dtype=torch.long)
        remap[used] = torch.arange(len(used))
        fitted = [comps[k].clone().fit(y, parents, num_draws=int(counts[k]), progress=progress, node=node) for k in used]
        self.components_ = fitted
        self.weights_ = torch.as_tensor(w[used])
        self.assignment_ = remap[labels]
        self.draw_index_ = draw_indices(self.assignment_, len(used))
        diags = [dict(getattr(c, "diagnostics_", {})) for c in fitted]
        info: dict[str, Any] = {"inference": "+".join(str(d.get("inference", "?")) for d in diags),
                                "exact": all(bool(d.get("exact", False)) for d in diags)}
        for key, pick in (("rhat_max", max), ("ess_min", min)):
            values = [d[key] for d in diags if np.isscalar(d.get(key))]
            if values:
                info[key] = pick(values)
        if len(used) < len(comps):  # a family lighter than half a draw gets none and is not fitted
            info["families_without_draws"] = len(comps) - len(used)
        self.diagnostics_ = info
        self.num_draws_ = int(num_draws)
        return self

    # -- per-draw selection ----------------------------------------------------------------------
    def _parts(self) -> list[Mechanism]:
        self._check_fitted()
        return self.components_

    def _index(self) -> list[torch.Tensor] | None:
        """The draws of each component; None for a model saved when every component held all D draws."""
        return getattr(self, "draw_index_", None)

    def _per_component(self, method: str, value: torch.Tensor | None, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """``component.method([value,] parents)`` of each component on its own draws, one per draw."""
        parts, index = self._parts(), self._index()
        if index is None:
            args = [] if value is None else [value]
            return _select(self.assignment_, [getattr(c, method)(*args, parents) for c in parts])
        inverse = torch.argsort(torch.cat(index))
        out = []
        for c, i in zip(parts, index):
            args = [] if value is None else [_take(value, i, self.num_draws_)]
            out.append(getattr(c, method)(*args, [_take(p, i, self.num_draws_) for p in parents]))
        return _merge(out, index, inverse)

    def noise_distribution(self) -> DrawSelection:
        # component distributions are built without argument validation: each is evaluated on
        # values outside its support too (e.g. a log-normal at a negative value)
        with pyro.validation_enabled(False):
            return DrawSelection([c.noise_distribution() for c in self._parts()], self.assignment_, index=self._index())

    def forward(self, noise: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._per_component("forward", noise, parents)

    def abduct(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._per_component("abduct", value, parents)

    def log_prob(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        with pyro.validation_enabled(False):
            return self._per_component("log_prob", value, parents)

    def log_abs_det_jacobian(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._per_component("log_abs_det_jacobian", value, parents)

    def conditioned_on(self, y: np.ndarray, parents: np.ndarray, *, seed: int = 0) -> FamilyMixture:
        """Each component conditioned (:meth:`Mechanism.conditioned_on`); ``self`` when none changes."""
        parts = self._parts()
        new = [c.conditioned_on(y, parents, seed=seed + k) for k, c in enumerate(parts)]
        if all(a is b for a, b in zip(new, parts)):
            return self
        out = copy.copy(self)
        out.components_ = new
        return out

    def check_values(self, values: np.ndarray, node: str = "") -> None:
        for c in self._parts():
            c.check_values(values, node)

    def design(self, y: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The working regression of the heaviest component (see :meth:`Mechanism.design`)."""
        return self._heaviest().design(y, parents)

    @property
    def prior_g(self) -> float:
        """The coefficient prior scale of the heaviest component (used with :meth:`design`)."""
        return float(getattr(self._heaviest(), "prior_g"))

    def _heaviest(self) -> Mechanism:
        parts = self._parts()
        return parts[int(torch.argmax(self.weights_))]

    # -- properties that hold only when they hold for every component ------------------------------
    def _members(self) -> list[Mechanism]:
        return self.components_ if self.is_fitted else list(self.components)

    @property
    def is_linear(self) -> bool:  # type: ignore[override]
        """True when every component is linear (then the node is linear under every draw)."""
        return all(c.is_linear for c in self._members())

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        """True when every component's noise is a deterministic function of the value."""
        return all(c.invertible for c in self._members())

    @property
    def noise_is_gaussian(self) -> bool:
        """True when every component's noise is Gaussian (the closed-form tails then apply)."""
        self._check_fitted()
        return all(bool(getattr(c, "noise_is_gaussian", False)) for c in self.components_)

    @property
    def noise_is_scale_mixture(self) -> bool:
        """As :attr:`noise_is_gaussian`: a per-draw selection of families gets closed-form tails only
        when every family's noise is Gaussian."""
        return self.noise_is_gaussian

    @property
    def any_position(self) -> bool:
        """True when every component may stand at a root or a non-root node."""
        return all(bool(getattr(c, "any_position", False)) for c in self._members())

    @property
    def noise(self) -> str | None:
        """The components' common noise family, or None when they differ."""
        families = {getattr(c, "noise", None) for c in self._members()}
        return families.pop() if len(families) == 1 else None

    def describe(self) -> str:
        if not self.is_fitted:
            return self.family
        parts = ", ".join(f"{c.describe()} {float(w):.2f}" for c, w in zip(self.components_, self.weights_))
        return f"mixture({parts})"

    def weight_table(self) -> dict[str, float]:
        """Component description to weight (fitted)."""
        self._check_fitted()
        return {c.describe(): float(w) for c, w in zip(self.components_, self.weights_)}

    def get_params(self) -> dict[str, Any]:
        return {"components": list(self.components), "weights": [float(w) for w in self.weights]}

    def clone(self) -> FamilyMixture:
        return FamilyMixture([c.clone() for c in self.components], list(self.weights))


def split_gaussian_part(noise: TorchDistribution) -> tuple[TorchDistribution, torch.Tensor]:
    """:func:`~bayesrca.mechanisms.noise.split_gaussian`, also per draw for a :class:`DrawSelection`.

    A draw whose component has a Gaussian part keeps it (its rest is the component's rest), the
    other draws have none; conditional Monte Carlo then integrates the Gaussian draws in closed
    form as it does for a single Gaussian family.
    """
    if not isinstance(noise, DrawSelection):
        return split_gaussian(noise)
    parts = [split_gaussian(c) for c in noise.components]
    rest = DrawSelection([r for r, _ in parts], noise.assignment, noise.batch_shape, index=noise.index)
    sd = noise.combine([s.to(torch.float64) for _, s in parts]).expand(noise.batch_shape)
    return rest, sd


def has_additive_noise(mech: Mechanism) -> bool:
    """True when the node's value is ``f(PA) + N`` under every draw (an additive-noise model or a
    mixture of them), so a Gaussian part of N can be integrated in closed form."""
    if isinstance(mech, FamilyMixture):
        return all(isinstance(c, AdditiveNoiseModel) for c in mech._members())
    return isinstance(mech, AdditiveNoiseModel)
