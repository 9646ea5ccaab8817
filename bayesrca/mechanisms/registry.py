"""The one registry of bayesrca's mechanism classes and of the families named by strings.

Everything that needs to know which mechanisms exist reads it here:

* :data:`MECHANISM_CLASSES` — class name to class, the only classes a model file may name
  (:mod:`bayesrca.persistence`);
* :data:`FAMILY_NAMES` and :func:`family_mechanism` — the strings ``"linear"``, ``"gaussian"``,
  ``"spline"``, ``"gp"``, ``"linear_monotone"`` and ``"gaussian_monotone"`` that :class:`~bayesrca.BayesianSCM` accepts for ``mechanisms``, each with its
  root and non-root mechanism;
* :func:`default_candidates` — the mechanisms ``mechanisms="auto"`` compares on a continuous
  node (:mod:`bayesrca.selection`);
* :data:`DISCRETE_KIND_CLASSES`, :func:`is_discrete`, :func:`is_root_mechanism` and
  :func:`check_position` — which classes model discrete columns and which may stand at a root.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ..exceptions import ConfigError
from ..graph import check_known_nodes
from .additive import AdditiveNoiseModel
from .base import Mechanism
from .discrete import BernoulliGLM, CategoricalGLM, DiscreteGLM, PoissonGLM
from .gp import GPANM
from .linear import LinearANM
from .mixture import FamilyMixture
from .root import RootDistribution
from .spline import SplineANM

__all__ = [
    "resolve_spec",
    "is_user_mechanism",
    "MECHANISM_CLASSES",
    "CONTINUOUS_CLASSES",
    "DISCRETE_CLASSES",
    "DISCRETE_KIND_CLASSES",
    "FAMILY_NAMES",
    "family_mechanism",
    "default_candidates",
    "MIN_CONTINUOUS_VALUES",
    "discrete_class",
    "is_discrete",
    "is_root_mechanism",
    "check_position",
]

#: Continuous built-in classes (additive noise models).
CONTINUOUS_CLASSES: tuple[type[Mechanism], ...] = (LinearANM, SplineANM, GPANM, RootDistribution)
#: Discrete built-in classes (generalised linear models with a uniform noise); root or not.
DISCRETE_CLASSES: tuple[type[Mechanism], ...] = (BernoulliGLM, PoissonGLM, CategoricalGLM)
#: Every built-in class by name: the only classes a saved model may name.
MECHANISM_CLASSES: Mapping[str, type[Mechanism]] = MappingProxyType(
    {c.__name__: c for c in CONTINUOUS_CLASSES + DISCRETE_CLASSES + (FamilyMixture,)}
)
#: The class modelling each discrete column kind found by :func:`bayesrca.selection.discrete_kind`.
DISCRETE_KIND_CLASSES: Mapping[str, type[DiscreteGLM]] = MappingProxyType({"binary": BernoulliGLM, "count": PoissonGLM})

#: Family string -> ((root class, noise), (non-root class, noise)).
_FAMILIES: Mapping[str, tuple[tuple[type[AdditiveNoiseModel], str], tuple[type[AdditiveNoiseModel], str]]] = MappingProxyType(
    {
        "linear": ((RootDistribution, "bootstrap_gpd"), (LinearANM, "bootstrap_gpd")),
        "gaussian": ((RootDistribution, "gaussian"), (LinearANM, "gaussian")),
        "spline": ((RootDistribution, "bootstrap_gpd"), (SplineANM, "bootstrap_gpd")),
        "gp": ((RootDistribution, "gaussian"), (GPANM, "gaussian")),
        "linear_monotone": ((RootDistribution, "bootstrap_gpd"), (LinearANM, "bootstrap_gpd")),
        "gaussian_monotone": ((RootDistribution, "gaussian"), (LinearANM, "gaussian")),
    }
)
#: Constructor options of a family's non-root mechanism beyond its noise (the call-graph priors).
_FAMILY_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"linear_monotone": {"coef_sign": "positive"}, "gaussian_monotone": {"coef_sign": "positive"}}
)
#: The family strings accepted for ``BayesianSCM(mechanisms=...)`` besides ``"auto"``, sorted.
FAMILY_NAMES: tuple[str, ...] = tuple(sorted(_FAMILIES))


def family_mechanism(family: str, *, is_root: bool) -> Mechanism:
    """A new unfitted mechanism of ``family`` for a root node or a node with parents.

    Parameters
    ----------
    family : str
        One of :data:`FAMILY_NAMES`: ``"linear"`` (linear regression, bootstrap noise with
        generalised Pareto tails, ``"bootstrap_gpd"``), ``"gaussian"`` (linear regression,
        Gaussian noise), ``"spline"`` (spline regression, ``"bootstrap_gpd"`` noise), ``"gp"``
        (additive Gaussian-process regression, Gaussian noise), ``"linear_monotone"`` and
        ``"gaussian_monotone"`` (``"linear"`` and ``"gaussian"`` with every coefficient ``>= 0``,
        ``LinearANM(coef_sign="positive")``: the call-graph prior, docs/method.md); roots get a
        :class:`RootDistribution` with the same noise.
    is_root : bool
        True for a node without parents.

    Raises
    ------
    ConfigError
        If ``family`` is not a known family string.
    """
    if not isinstance(family, str) or family not in _FAMILIES:
        raise ConfigError(f"unknown mechanism family {family!r}; choose one of {list(FAMILY_NAMES)}")
    cls, noise = _FAMILIES[family][0 if is_root else 1]
    return cls(noise) if is_root else cls(noise, **_FAMILY_OPTIONS.get(family, {}))


#: A parent counts as continuous for :func:`default_candidates` with at least this many distinct values.
MIN_CONTINUOUS_VALUES = 20


def default_candidates(y: np.ndarray, is_root: bool, parents: np.ndarray | None = None) -> list[Mechanism]:
    """Candidates tried by ``mechanisms="auto"`` on a continuous node, simplest first (all fit without MCMC).

    Roots: Gaussian, log-normal (only for strictly positive ``y``) and bootstrap noise; other
    nodes: linear and spline regressions with Gaussian or bootstrap noise, then, when ``parents``
    is given and every parent has at least :data:`MIN_CONTINUOUS_VALUES` distinct values, the
    additive Gaussian process (:class:`GPANM`) with Gaussian or bootstrap noise. The bootstrap
    noise is ``"bootstrap_gpd"`` (generalised Pareto tails), so that no candidate's noise ends at
    the largest training residual.
    """
    if is_root:
        out: list[Mechanism] = [RootDistribution("gaussian")]
        if np.all(y > 0):
            out.append(RootDistribution("lognormal"))
        out.append(RootDistribution("bootstrap_gpd"))
        return out
    out = [LinearANM("gaussian"), LinearANM("bootstrap_gpd"), SplineANM("gaussian"), SplineANM("bootstrap_gpd")]
    if parents is not None:
        parents = np.asarray(parents).reshape(len(y), -1)
        if parents.shape[1] and all(len(np.unique(parents[:, k])) >= MIN_CONTINUOUS_VALUES for k in range(parents.shape[1])):
            out += [GPANM("gaussian"), GPANM("bootstrap_gpd")]
    return out


def discrete_class(kind: str) -> type[DiscreteGLM]:
    """The class for a discrete column kind (``"binary"`` or ``"count"``).

    Raises
    ------
    ConfigError
        If ``kind`` is not one of :data:`DISCRETE_KIND_CLASSES`.
    """
    if not isinstance(kind, str) or kind not in DISCRETE_KIND_CLASSES:
        raise ConfigError(f"unknown discrete column kind {kind!r}; choose one of {list(DISCRETE_KIND_CLASSES)}")
    return DISCRETE_KIND_CLASSES[kind]


def is_discrete(mech: Mechanism) -> bool:
    """True for a discrete mechanism (values on a lattice, noise not pinned down by the value)."""
    return isinstance(mech, DiscreteGLM)


def is_root_mechanism(mech: Mechanism) -> bool:
    """True for a mechanism that models a node without parents only."""
    return isinstance(mech, RootDistribution)


def check_position(mech: Mechanism, node: Hashable, is_root: bool) -> None:
    """Check that ``mech`` may model ``node``, a root when ``is_root``.

    Discrete mechanisms (``any_position``) fit anywhere; a :class:`RootDistribution` fits only a
    root and the regression mechanisms only a node with parents.

    Raises
    ------
    ConfigError
        If the mechanism does not fit the node's position in the graph.
    """
    if isinstance(mech, FamilyMixture):  # model averaging: every component must fit
        for part in mech.components:
            check_position(part, node, is_root)
        return
    if getattr(mech, "any_position", False) or is_root == is_root_mechanism(mech):
        return
    want = "a RootDistribution" if is_root else "a non-root mechanism (LinearANM, SplineANM, GPANM)"
    raise ConfigError(f"node {node!r} {'has no' if is_root else 'has'} parents, so it needs {want}, got {mech!r}")


def is_user_mechanism(spec: Any, node: Hashable) -> bool:
    """True when the user passed a Mechanism instance for ``node`` (its own settings are kept)."""
    if isinstance(spec, Mapping):
        spec = spec.get(node)
    return isinstance(spec, Mechanism)


def resolve_spec(spec: Any, node: Hashable, is_root: bool) -> Any:
    """A node's mechanism specification resolved: a clone of a user's :class:`Mechanism` (checked
    for the node's position), ``"auto"``, or the family's mechanism; a :class:`ConfigError` otherwise."""
    if isinstance(spec, Mechanism):
        check_position(spec, node, is_root)
        return spec.clone()
    if spec == "auto":
        return "auto"
    if isinstance(spec, str) and spec in FAMILY_NAMES:
        return family_mechanism(spec, is_root=is_root)
    raise ConfigError(
        f"mechanism for node {node!r} must be 'auto', one of {list(FAMILY_NAMES)}, a Mechanism instance "
        f"or a mapping of nodes to these; got {spec!r}"
    )


def mechanism_specs(spec: Any, graph) -> dict[Hashable, Any]:
    """Every node's resolved specification (:func:`resolve_spec`) from ``BayesianSCM(mechanisms=spec)``:
    one specification for all nodes, or a mapping of some nodes to theirs (the others ``"auto"``).

    Raises
    ------
    GraphError
        If the mapping names nodes that are not in ``graph``.
    """
    per_node: Mapping = spec if isinstance(spec, Mapping) else {}
    check_known_nodes(graph, list(per_node), "mechanisms")
    return {
        node: resolve_spec(per_node.get(node, "auto") if isinstance(spec, Mapping) else spec, node, graph.in_degree(node) == 0)
        for node in graph.nodes
    }
