"""The Bayesian structural causal model: one Pyro program over all nodes, fitted node by node."""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pyro
import torch

from .threads import thread_policy
from . import graph as graphs
from ._progress import open_bar
from ._progress import resolve as resolve_progress
from ._random import resolve_seed, seeded
from .exceptions import ConfigError, GraphError, NotFittedError
from .averaging import WEIGHTINGS
from .mechanisms import Mechanism
from .mechanisms.mixture import FamilyMixture
from .mechanisms.registry import is_user_mechanism, mechanism_specs
from .mechanisms.tail_pooling import pool_tail_shapes
from .fitting import complete_cases, fit_node_task
from .parallel import check_executor, run_tasks
from .selection import discrete_kind
from .validation import check_frame, check_positive_int, constant_columns

__all__ = ["BayesianSCM"]

_log = logging.getLogger(__name__)


class BayesianSCM:
    """A structural causal model whose mechanisms are Bayesian Pyro models.

    Parameters
    ----------
    graph : networkx.DiGraph
        Causal DAG; node names must be columns of the training data.
    mechanisms : "auto", str, Mechanism or mapping, default "auto"
        How to model each node. ``"auto"`` chooses per node by cross-validated log predictive
        density among linear / spline / additive-GP regressions with Gaussian or Bayesian-bootstrap noise
        (roots: Gaussian, log-normal, bootstrap). The shorthands ``"linear"``, ``"gaussian"``,
        ``"spline"`` and ``"gp"`` apply one family to every node. A mapping overrides single nodes
        (values: a shorthand, ``"auto"`` or a :class:`~bayesrca.mechanisms.Mechanism`); nodes
        not in the mapping are chosen automatically.
    averaging : {"pseudo-bma+", "stacking", "none"}, default "pseudo-bma+"
        How ``"auto"`` nodes combine the candidate families. With a weighting
        (:mod:`bayesrca.averaging`) each family gets a weight from its held-out log predictive
        densities (a richer family that does not predict clearly better than a cheaper one it
        nests is left out), weights below 5 % are dropped, and a node left with several
        families becomes a :class:`~bayesrca.mechanisms.FamilyMixture` (each posterior draw from
        one family, about ``weight * num_draws`` draws each), so the results' intervals include
        the uncertainty of the choice. A node whose data clearly support one family keeps that
        family alone. ``"none"`` keeps the single cheapest adequate family per node (the choice
        of :func:`~bayesrca.selection.select_mechanism`).
    num_draws : int, default 200
        Posterior draws kept per node; draw s of the SCM combines draw s of every node.
    constant_noise_scale : float, default 1e-3
        Columns constant in the training data get a point mass at their level with a change of
        probability ``1 / (rows + 2)`` and scale ``max(|level|, 1)`` (:mod:`bayesrca.mechanisms.constant`);
        this is the relative sd of the narrow Gaussian that stands in for the point mass in densities.
    tail_pooling : bool, default True
        Whether the generalised Pareto tails of the ``"bootstrap_gpd"`` noises share one prior
        probability of being exponential (upper and lower tails separately), learned from all of
        them (:mod:`bayesrca.mechanisms.tail_pooling`); False: each tail alone, prior 1/2.

    Notes
    -----
    Save a fitted model with :func:`bayesrca.save` and read it back with :func:`bayesrca.load`
    (:mod:`bayesrca.persistence`); the same seed then gives identical attributions.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        mechanisms: Any = "auto",
        *,
        averaging: str = "pseudo-bma+",
        num_draws: int = 200,
        constant_noise_scale: float = 1e-3,
        tail_pooling: bool = True,
    ) -> None:
        self.graph = graph
        self.mechanisms = mechanisms
        self.averaging = averaging
        self.num_draws = num_draws
        self.constant_noise_scale = constant_noise_scale
        self.tail_pooling = tail_pooling

    # -- scikit-learn parameter protocol (so that sklearn.base.clone works) ------------------
    _PARAM_NAMES = ("graph", "mechanisms", "averaging", "num_draws", "constant_noise_scale", "tail_pooling")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters by name (scikit-learn convention; ``deep`` is accepted, unused)."""
        return {name: getattr(self, name) for name in self._PARAM_NAMES}

    def set_params(self, **params: Any) -> BayesianSCM:
        """Set constructor parameters (scikit-learn convention); refit afterwards. Returns self.

        Raises
        ------
        ConfigError
            For a name that is not a constructor parameter.
        """
        unknown = sorted(set(params) - set(self._PARAM_NAMES))
        if unknown:
            raise ConfigError(f"BayesianSCM has no parameter(s) {unknown}; valid: {list(self._PARAM_NAMES)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    # -- fitting ----------------------------------------------------------------------------
    @thread_policy
    def fit(
        self,
        data: pd.DataFrame,
        *,
        seed: int | None = None,
        progress: bool | None = None,
        executor: Executor | None = None,
    ) -> BayesianSCM:
        """Fit every node's mechanism to normal-operation data.

        Parameters
        ----------
        data : pandas.DataFrame
            One column per graph node (no other columns), numeric values; NaN marks a missing
            value. Each node's mechanism is fitted on the rows where the node and all its
            parents are observed (their number is ``rows_used_``).
        seed : int, optional
            Seed of all randomness; the same seed gives identical draws.
        progress : bool or None, default None
            Show a progress bar over nodes. None: on in a terminal or a notebook, off in CI and
            when standard error is redirected.
        executor : concurrent.futures.Executor, optional
            Fit the nodes as tasks on this executor (a
            :class:`~concurrent.futures.ProcessPoolExecutor`, or a Dask client's
            ``get_executor()``); None (default): one after the other in this process. Each node
            has its own seed, so the fit is bit-identical either way (:mod:`bayesrca.parallel`).

        Returns
        -------
        BayesianSCM
            ``self``, fitted.

        Raises
        ------
        DataError
            Besides malformed data (:func:`~bayesrca.validation.check_frame`): a node with fewer
            than two rows where it and its parents are all observed.
        """
        graph = graphs.validate_graph(self.graph)
        num_draws = check_positive_int(self.num_draws, "num_draws")
        if not (isinstance(self.constant_noise_scale, (int, float)) and self.constant_noise_scale > 0):
            raise ConfigError(f"constant_noise_scale must be a positive number, got {self.constant_noise_scale!r}")
        progress = resolve_progress(progress)
        executor = check_executor(executor)
        if not isinstance(self.tail_pooling, bool):
            raise ConfigError(f"tail_pooling must be True or False, got {self.tail_pooling!r}")
        if self.averaging not in WEIGHTINGS + ("none",):
            raise ConfigError(f"averaging must be one of {WEIGHTINGS + ('none',)}, got {self.averaging!r}")
        weighting = "pseudo-bma+" if self.averaging == "none" else self.averaging
        order = graphs.topological_order(graph)
        frame = check_frame(data, order, what="training data", min_rows=2, missing=True)
        rows_used = complete_cases(frame, graph, order)
        constant = set(constant_columns(frame, what="training data"))
        specs = mechanism_specs(self.mechanisms, graph)
        base_seed = resolve_seed(seed)
        node_seeds = np.random.SeedSequence(base_seed).spawn(len(order))
        position = {n: i for i, n in enumerate(graph.nodes)}
        tasks = []
        for node in order:
            parents = graphs.parents_of(graph, node)
            rows = frame[[node, *parents]].notna().all(axis=1).to_numpy()  # complete cases of (node, parents)
            used = frame[rows] if rows_used[node] < len(frame) else frame  # the very same arrays for complete data
            tasks.append((
                str(node),
                specs[node],
                discrete_kind(data[node][rows]) if specs[node] == "auto" else None,
                used[node].to_numpy(),
                used[list(parents)].to_numpy().reshape(len(used), len(parents)),
            ))
        options = {
            "num_draws": num_draws, "averaging": self.averaging, "weighting": weighting,
            "progress": progress and executor is None,  # a worker's bar would draw in its own log
            "threads": torch.get_num_threads(),  # this call's thread policy, in every worker too
        }
        fitted: dict[Hashable, Mechanism] = {}
        tables: dict[int, pd.DataFrame] = {}

        def done(i: int, result: tuple[Mechanism, pd.DataFrame | None]) -> None:
            node, (mech, table) = order[i], result
            _log.info("node %r: %s", node, mech.describe())
            fitted[node] = mech
            if table is not None:
                tables[i] = table
            bar.update(1)

        with open_bar(progress, len(order), "fitting nodes", unit="node") as bar:
            run_tasks(executor, fit_node_task, [
                (*task, {**options, "seed": node_seeds[position[node]], "constant": node in constant,
                         "constant_noise_scale": None if is_user_mechanism(self.mechanisms, node) else self.constant_noise_scale})
                for node, task in zip(order, tasks)
            ], done)
        if self.tail_pooling:
            # in the nodes' order, not the order the fits finished in (an executor's): the same seed, the same draws
            pooled = pool_tail_shapes({n: fitted[n] for n in order}, num_draws,
                                      int(np.random.SeedSequence([base_seed, 1]).generate_state(1)[0]))
            for side, info in pooled.items():
                _log.info("%s GPD tails pooled: %d tails, posterior mean share of exponential tails %.2f",
                          side, info["tails"], info["exponential_share"])
        self._set_fitted_state(
            graph, {n: fitted[n] for n in order}, nodes=order, num_draws=num_draws,
            selection=pd.concat([tables[i] for i in sorted(tables)], ignore_index=True) if tables else pd.DataFrame(),
            training_data=frame, seed=base_seed,
        )
        return self

    @classmethod
    def from_fitted_state(
        cls,
        graph: nx.DiGraph,
        fitted_mechanisms: Mapping[Hashable, Mechanism],
        *,
        nodes: Sequence[Hashable],
        num_draws: int,
        training_data: pd.DataFrame,
        seed: int | None,
        selection: pd.DataFrame | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> BayesianSCM:
        """Re-create a fitted model from its learned state, without fitting (the restore hook).

        :mod:`bayesrca.persistence` loads models through this classmethod only: the model sets
        its learned attributes itself, and ``graph_fingerprint_`` and ``parents_`` are derived
        from ``graph`` as :meth:`fit` derives them (``rows_used_`` from ``training_data``, whose
        NaN cells are the missing values the fit left out).

        Parameters
        ----------
        graph : networkx.DiGraph
            The fitted graph; it becomes ``graph``, and a validated frozen copy ``graph_``, as in
            :meth:`fit`.
        fitted_mechanisms : mapping
            Node to fitted :class:`~bayesrca.mechanisms.Mechanism`, one per node.
        nodes : sequence
            The nodes in the topological order they were fitted in (``nodes_``).
        num_draws : int
            Posterior draws per node (``num_draws_``).
        training_data : pandas.DataFrame
            The training data (``training_data_``).
        seed : int or None
            The base seed of the fit (``seed_``).
        selection : pandas.DataFrame, optional
            The model-selection table (``selection_``); default empty.
        params : mapping, optional
            Constructor parameters (``mechanisms``, ``averaging``, ``num_draws``, ``constant_noise_scale``);
            ``mechanisms`` defaults to unfitted clones of ``fitted_mechanisms`` and
            ``num_draws`` to ``num_draws``.

        Returns
        -------
        BayesianSCM
            A fitted model.

        Raises
        ------
        GraphError
            If the graph is not a DAG, or ``nodes`` is not a topological order of its nodes.
        ConfigError
            If a node has no fitted mechanism, a mechanism is not fitted or ``num_draws`` differs
            from a mechanism's number of draws.
        """
        frozen = graphs.validate_graph(graph)
        nodes = list(nodes)
        if set(nodes) != set(frozen.nodes) or len(set(nodes)) != len(nodes):
            raise GraphError(f"nodes {nodes!r} are not the graph's nodes {list(frozen.nodes)!r}")
        position = {n: i for i, n in enumerate(nodes)}
        if any(position[u] > position[v] for u, v in frozen.edges):
            raise GraphError(f"nodes {nodes!r} are not in a topological order of the graph")
        missing = [n for n in nodes if n not in fitted_mechanisms]
        if missing:
            raise ConfigError(f"no fitted mechanism for nodes {missing!r}")
        num_draws = check_positive_int(num_draws, "num_draws")
        for node in nodes:
            mech = fitted_mechanisms[node]
            if not isinstance(mech, Mechanism) or not mech.is_fitted or mech.num_draws_ != num_draws:
                raise ConfigError(f"node {node!r}: {mech!r} is not a Mechanism fitted with {num_draws} draws")
        params = dict(params or {})
        spec = params.pop("mechanisms", None) or {n: m.clone() for n, m in fitted_mechanisms.items()}
        scm = cls(graph, mechanisms=spec, **{"num_draws": num_draws, **params})
        scm._set_fitted_state(
            frozen, dict(fitted_mechanisms), nodes=nodes, num_draws=num_draws,
            selection=selection if selection is not None else pd.DataFrame(), training_data=training_data, seed=seed,
        )
        return scm

    def _set_fitted_state(
        self,
        graph: nx.DiGraph,
        fitted: dict[Hashable, Mechanism],
        *,
        nodes: list[Hashable],
        num_draws: int,
        selection: pd.DataFrame,
        training_data: pd.DataFrame,
        seed: int | None,
    ) -> None:
        """The one place that sets the learned attributes (used by :meth:`fit` and :meth:`from_fitted_state`)."""
        self.graph_ = graph
        self.graph_fingerprint_ = graphs.graph_fingerprint(graph)
        self.nodes_ = nodes
        self.parents_ = {n: graphs.parents_of(graph, n) for n in nodes}
        self.mechanisms_ = {n: fitted[n] for n in nodes}
        self.num_draws_ = num_draws
        self.selection_ = selection
        self.training_data_ = training_data
        #: node to the number of training rows its mechanism was fitted on (where the node and its
        #: parents are all observed); derived from ``training_data_``, so saved models carry it
        self.rows_used_ = {n: int(training_data[[n, *self.parents_[n]]].notna().all(axis=1).sum()) for n in nodes}
        self.seed_ = seed

    # -- checks used by every consumer -----------------------------------------------------------
    def check_fitted(self) -> None:
        """Raise :class:`NotFittedError` if unfitted and :class:`GraphError` if the graph changed."""
        if not hasattr(self, "mechanisms_"):
            raise NotFittedError("this BayesianSCM is not fitted yet; call scm.fit(train_df) first")
        if graphs.graph_fingerprint(self.graph) != self.graph_fingerprint_:
            raise GraphError(
                "the causal graph was changed after fit (nodes or edges differ); call scm.fit(...) again"
            )

    # -- the Pyro program ----------------------------------------------------------------------
    def program(
        self, nodes: Sequence[Hashable] | None = None, given: Mapping[Hashable, torch.Tensor] | None = None
    ) -> dict[Hashable, torch.Tensor]:
        """The SCM as one Pyro program: every node's noise site, in topological order.

        Run it under handlers: plates add Monte Carlo dimensions to the left of the draw
        dimension; :class:`~bayesrca.counterfactual.handlers.AbductNoise` and
        :class:`~bayesrca.counterfactual.handlers.KeepNoise` make it counterfactual.

        Parameters
        ----------
        nodes : sequence, optional
            Restrict to these nodes; every parent of a node must be in ``nodes`` or in
            ``given`` (e.g. a target and its ancestors). Default: all nodes.
        given : mapping, optional
            Values of upstream nodes outside ``nodes`` that the program takes as inputs
            (a hard intervention on them).

        Returns
        -------
        dict
            Node name to value tensor of shape ``(..., D)``.
        """
        if not hasattr(self, "mechanisms_"):  # cheap: the program runs once per chunk of coalitions
            raise NotFittedError("this BayesianSCM is not fitted yet; call scm.fit(train_df) first")
        order = self.nodes_ if nodes is None else graphs.topological_order(self.graph_, nodes)
        values: dict[Hashable, torch.Tensor] = dict(given or {})
        for node in order:
            parent_names = self.parents_[node]
            values[node] = self.mechanisms_[node].node_program(node, [values[p] for p in parent_names], parent_names)
        return values

    @thread_policy
    def sample(self, num_samples: int, *, seed: int | None = None) -> pd.DataFrame:
        """Draw from the posterior predictive: each row uses a random posterior draw."""
        self.check_fitted()
        num_samples = check_positive_int(num_samples, "num_samples")
        per_draw = -(-num_samples // self.num_draws_)
        with seeded(resolve_seed(seed)), torch.no_grad():
            with pyro.plate("mc", per_draw, dim=-2):
                values = self.program()
            pick = torch.randperm(per_draw * self.num_draws_)[:num_samples]
        return pd.DataFrame({n: v.reshape(-1)[pick].numpy() for n, v in values.items()})[list(self.graph_.nodes)]

    # -- reporting ----------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per node: parents, mechanism, family weights, training rows used, inference engine and its diagnostics.

        ``weights`` lists the families the node averages over with their weights (one family
        with weight 1 unless the node is a :class:`~bayesrca.mechanisms.FamilyMixture`); the
        held-out comparison of every candidate is in ``selection_``.
        """
        self.check_fitted()
        rows = []
        for node in self.nodes_:
            mech = self.mechanisms_[node]
            diag = {k: v for k, v in mech.diagnostics_.items() if np.isscalar(v)}
            table = mech.weight_table() if isinstance(mech, FamilyMixture) else {mech.describe(): 1.0}
            weights = ", ".join(f"{name} {w:.2f}" for name, w in table.items())
            rows.append({"node": node, "parents": list(self.parents_[node]), "mechanism": mech.describe(),
                         "weights": weights, "rows_used": self.rows_used_[node], **diag})
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        """Notebook display: the one-line description and, once fitted, :meth:`summary` as a table."""
        import html

        head = f"<p><b>{html.escape(repr(self))}</b></p>"
        if not hasattr(self, "mechanisms_"):
            return head
        try:
            table = self.summary().to_html(index=False, float_format=lambda v: f"{v:.3g}")
        except GraphError as err:
            return head + f"<p>{html.escape(str(err))}</p>"
        return head + table

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "mechanisms_") else "not fitted"
        n = self.graph.number_of_nodes() if isinstance(self.graph, nx.DiGraph) else "?"
        avg = "" if self.averaging == "pseudo-bma+" else f", averaging={self.averaging!r}"
        return f"BayesianSCM({n} nodes, mechanisms={self.mechanisms!r}{avg}, num_draws={self.num_draws}, {state})"
