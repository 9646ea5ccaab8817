r"""Attribution over graphs the user is unsure of: candidate graphs weighted by held-out predictive density.

:class:`GraphEnsemble` takes either a list of candidate graphs or a base graph with uncertain
edges (a prior probability per edge, :math:`2^k` graphs for k uncertain edges, cyclic ones
dropped). It fits every node once per distinct parent set (a node with the same parents in two
graphs shares its fitted mechanism), scores each (node, parent set) on the same held-out rows by
K-fold cross-validation (:func:`~bayesrca.graph_check.node_heldout`), and gives graph g the
pseudo-BMA+ weight (:func:`~bayesrca.averaging.pseudo_bma_plus_weights`)

.. math:: w_g \propto \pi(g)\,\exp\Big(\sum_i \sum_j \log p(x_{ij} \mid pa^g_{ij})\Big),

averaged over Bayesian-bootstrap replicates of the held-out rows, where the inner sum is the
node-wise factorisation of the held-out joint density under g. The rows, folds and node seeds are
the same for every graph, so the sums are comparable. These are *pseudo*-posterior weights: they
measure how sure the held-out rows are that g predicts best. A real, strong edge gets weight near
1; an edge absent from the truth keeps a share (two graphs that predict equally well split the
weight) rather than going to 0 as a Bayes factor of nested models would.

:meth:`GraphEnsemble.attribute_anomalies` attributes the anomalies under every graph whose weight
is at least ``min_weight`` (the others are dropped, the rest renormalised), takes
:math:`\approx w_g D` of each graph's D posterior draws (a seeded random subset) and stacks them
along the draw axis: a node that is not an ancestor of the target in a graph contributes exactly 0
there. Every summary of the result (intervals, ``prob_top``) then integrates over the graph
uncertainty; ``method_info["graph_weights"]`` says which graph carried how much weight.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from . import graph as graphs
from ._random import resolve_seed
from .attribution import attribute_anomalies as attribute
from .averaging import WEIGHT_CUTOFF, pseudo_bma_plus_weights, trim_weights
from .exceptions import ConfigError, GraphError, NotFittedError
from .fitting import fit_node
from .graph_check import heldout_folds, node_heldout
from .results import AttributionResult
from .mechanisms.registry import is_user_mechanism, resolve_spec
from .scm import BayesianSCM
from .selection import discrete_kind
from .threads import thread_policy
from .validation import check_frame, check_positive_int, constant_columns

__all__ = ["GraphEnsemble", "MAX_UNCERTAIN_EDGES"]

#: Most uncertain edges :class:`GraphEnsemble` enumerates (2**10 = 1024 graphs).
MAX_UNCERTAIN_EDGES = 10

Edge = tuple[Hashable, Hashable]


class GraphEnsemble:
    """Several causal graphs, weighted by how well each predicts held-out data.

    Parameters
    ----------
    candidates : sequence of networkx.DiGraph, optional
        The graphs to consider (same nodes, each a DAG). Give either ``candidates`` or ``edge_probs``.
    edge_probs : mapping, optional
        ``{(cause, effect): p}``, the prior probability (0 < p < 1) of each uncertain edge; every
        graph of ``base_graph`` with each uncertain edge present or not is a candidate, with prior
        the product of ``p`` or ``1 - p`` over the uncertain edges (cyclic graphs dropped, the rest
        renormalised). At most :data:`MAX_UNCERTAIN_EDGES`.
    base_graph : networkx.DiGraph, optional
        The edges the user is sure of (with ``edge_probs``); an uncertain edge may be in it or not.
    prior : sequence of float, optional
        Prior weights of ``candidates`` (default equal).
    mechanisms, averaging, num_draws, constant_noise_scale
        As in :class:`~bayesrca.BayesianSCM`; every candidate uses them.
    num_folds : int, default 3
        Cross-validation folds of the held-out scores (each (node, parent set) is fitted once per
        fold, on the other folds, and once on all rows).

    Notes
    -----
    Node seeds follow the node order of the first candidate (or ``base_graph``): with one
    candidate, the ensemble's model equals ``BayesianSCM(graph).fit(data, seed=seed)`` draw for
    draw, and so does its attribution.
    """

    def __init__(
        self,
        candidates: Sequence[nx.DiGraph] | None = None,
        *,
        edge_probs: Mapping[Edge, float] | None = None,
        base_graph: nx.DiGraph | None = None,
        prior: Sequence[float] | None = None,
        mechanisms: Any = "auto",
        averaging: str = "pseudo-bma+",
        num_draws: int = 200,
        constant_noise_scale: float = 1e-3,
        num_folds: int = 3,
    ) -> None:
        self.candidates = candidates
        self.edge_probs = edge_probs
        self.base_graph = base_graph
        self.prior = prior
        self.mechanisms = mechanisms
        self.averaging = averaging
        self.num_draws = num_draws
        self.constant_noise_scale = constant_noise_scale
        self.num_folds = num_folds

    _PARAM_NAMES = ("candidates", "edge_probs", "base_graph", "prior", "mechanisms", "averaging", "num_draws",
                    "constant_noise_scale", "num_folds")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters by name (scikit-learn convention; ``deep`` is accepted, unused)."""
        return {name: getattr(self, name) for name in self._PARAM_NAMES}

    def set_params(self, **params: Any) -> GraphEnsemble:
        """Set constructor parameters (scikit-learn convention); refit afterwards. Returns self."""
        unknown = sorted(set(params) - set(self._PARAM_NAMES))
        if unknown:
            raise ConfigError(f"GraphEnsemble has no parameter(s) {unknown}; valid: {list(self._PARAM_NAMES)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    # -- candidates ---------------------------------------------------------------------------
    def _candidates(self) -> tuple[list[nx.DiGraph], np.ndarray, list[str], list[Edge]]:
        """The candidate graphs (frozen), their prior, their labels and the uncertain edges."""
        if (self.candidates is None) == (self.edge_probs is None):
            raise ConfigError("give either candidates=[graph, ...] or edge_probs={(cause, effect): p} (with base_graph)")
        if self.candidates is not None:
            if isinstance(self.candidates, nx.DiGraph) or len(self.candidates) == 0:
                raise ConfigError("candidates must be a non-empty list of networkx.DiGraph")
            found = [graphs.validate_graph(g) for g in self.candidates]  # GraphError for a cyclic candidate
            nodes = set(found[0].nodes)
            if any(set(g.nodes) != nodes for g in found):
                raise GraphError("every candidate graph must have the same nodes (one per data column)")
            prior = np.ones(len(found)) if self.prior is None else np.asarray(self.prior, dtype=np.float64)
            if prior.shape != (len(found),) or not np.all(np.isfinite(prior)) or (prior < 0).any() or prior.sum() <= 0:
                raise ConfigError(f"prior must be {len(found)} non-negative weights, not all 0; got {self.prior!r}")
            edges = sorted({e for g in found for e in g.edges} - set.intersection(*(set(g.edges) for g in found)),
                           key=repr)
            return found, prior / prior.sum(), [f"g{i}" for i in range(len(found))], edges
        if self.base_graph is None:
            raise ConfigError("edge_probs needs base_graph, the graph of the edges you are sure of")
        if self.prior is not None:
            raise ConfigError("prior applies to candidates; with edge_probs the prior is the product of edge probabilities")
        if not isinstance(self.edge_probs, Mapping) or not self.edge_probs:
            raise ConfigError("edge_probs must be a non-empty mapping {(cause, effect): probability}")
        uncertain = list(self.edge_probs)
        if len(uncertain) > MAX_UNCERTAIN_EDGES:
            raise ConfigError(
                f"{len(uncertain)} uncertain edges make 2**{len(uncertain)} graphs; at most {MAX_UNCERTAIN_EDGES} are "
                "enumerated. Mark fewer edges uncertain (decide the likeliest with check_graph), or pass the few "
                "graphs you consider as candidates=[...]"
            )
        base = graphs.validate_graph(self.base_graph)
        probs = []
        for edge in uncertain:
            if not (isinstance(edge, tuple) and len(edge) == 2 and edge[0] in base and edge[1] in base and edge[0] != edge[1]):
                raise ConfigError(f"edge_probs key {edge!r} is not a (cause, effect) pair of two distinct graph nodes")
            p = self.edge_probs[edge]
            if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 < p < 1:
                raise ConfigError(f"edge_probs[{edge!r}] = {p!r}: an uncertain edge needs a number 0 < p < 1; put a "
                                  "sure edge in base_graph (p = 1) or leave it out (p = 0)")
            probs.append(p)
        found, weights, labels = [], [], []
        for present in itertools.product((True, False), repeat=len(uncertain)):
            g = nx.DiGraph()
            g.add_nodes_from(base.nodes)
            g.add_edges_from(e for e in base.edges if e not in self.edge_probs)
            g.add_edges_from(e for e, keep in zip(uncertain, present) if keep)
            if not nx.is_directed_acyclic_graph(g):
                continue
            found.append(nx.freeze(g))
            weights.append(math.prod(p if keep else 1 - p for p, keep in zip(probs, present)))
            labels.append("{" + ", ".join(f"{u}->{v}" for (u, v), keep in zip(uncertain, present) if keep) + "}")
        return found, np.asarray(weights) / sum(weights), labels, uncertain

    # -- fitting ------------------------------------------------------------------------------
    @thread_policy
    def fit(self, data: pd.DataFrame, *, seed: int | None = None) -> GraphEnsemble:
        """Fit every (node, parent set) once, score it on held-out rows and weight the graphs.

        Parameters
        ----------
        data : pandas.DataFrame
            One column per node, finite numeric values (as for :meth:`BayesianSCM.fit`).
        seed : int, optional
            Seed of the folds, the fits and the weights' bootstrap.

        Returns
        -------
        GraphEnsemble
            ``self``, fitted: ``graphs_`` (label to graph), ``weights_`` (one row per graph),
            ``edge_probs_`` (posterior probability of each uncertain edge), ``models_`` (label
            to fitted :class:`~bayesrca.BayesianSCM`) and ``mechanisms_`` ((node, parents) to
            the one fitted mechanism they share).
        """
        found, prior, labels, uncertain = self._candidates()
        num_draws = check_positive_int(self.num_draws, "num_draws")
        num_folds = check_positive_int(self.num_folds, "num_folds", minimum=2)
        nodes = list(found[0].nodes) if self.base_graph is None else list(graphs.validate_graph(self.base_graph).nodes)
        spec = self.mechanisms
        if isinstance(spec, Mapping) and any(n not in nodes for n in spec):
            raise GraphError(f"mechanisms names nodes {[n for n in spec if n not in nodes]!r} that are not in the graph")
        frame = check_frame(data, graphs.topological_order(found[0]), what="training data", min_rows=8)
        constant = set(constant_columns(frame, what="training data"))
        base_seed = resolve_seed(seed)
        node_seeds = dict(zip(nodes, np.random.SeedSequence(base_seed).spawn(len(nodes))))
        folds = heldout_folds(len(frame), num_folds, np.random.default_rng(np.random.SeedSequence([base_seed, 1])))
        if self.averaging not in ("pseudo-bma+", "stacking", "none"):
            raise ConfigError(f"averaging must be one of ('pseudo-bma+', 'stacking', 'none'), got {self.averaging!r}")
        options: dict[str, Any] = {"num_draws": num_draws, "averaging": self.averaging, "progress": False,
                   "weighting": "pseudo-bma+" if self.averaging == "none" else self.averaging}
        fitted, tables, scores = {}, {}, {}
        for g in found:
            for node in graphs.topological_order(g):
                key = (node, graphs.parents_of(g, node))
                if key in fitted:
                    continue
                parents = key[1]
                node_spec = resolve_spec(spec.get(node, "auto") if isinstance(spec, Mapping) else spec, node, not parents)
                node_options = {**options, "constant": node in constant, "constant_noise_scale":
                                None if is_user_mechanism(spec, node) else self.constant_noise_scale}
                kind = discrete_kind(data[node]) if node_spec == "auto" else None
                y, pa = frame[node].to_numpy(), frame[list(parents)].to_numpy().reshape(len(frame), len(parents))
                fitted[key], tables[key] = fit_node(str(node), node_spec, kind, y, pa, seed=node_seeds[node], **node_options)
                scores[key] = node_heldout(str(node), node_spec, kind, y, pa, folds, options=node_options,
                                           seed=np.random.SeedSequence([base_seed, 2, zlib.crc32(repr(node).encode())]))
        lpd = np.column_stack([sum(scores[(n, graphs.parents_of(g, n))][0] for n in g.nodes) for g in found])
        with np.errstate(divide="ignore"):
            weights = pseudo_bma_plus_weights(lpd, np.random.default_rng(np.random.SeedSequence([base_seed, 3])),
                                              log_prior=np.log(prior))
        self.graphs_ = dict(zip(labels, found))
        self.mechanisms_ = fitted
        self.models_ = {}
        for label, g in self.graphs_.items():
            order = graphs.topological_order(g)
            keys = [(n, graphs.parents_of(g, n)) for n in order]
            selection = [tables[k] for k in keys if tables[k] is not None]
            self.models_[label] = BayesianSCM.from_fitted_state(
                g, {n: fitted[k] for n, k in zip(order, keys)}, nodes=order, num_draws=num_draws, training_data=frame,
                seed=base_seed, selection=pd.concat(selection, ignore_index=True) if selection else pd.DataFrame(),
                params={"mechanisms": spec, "averaging": self.averaging, "constant_noise_scale": self.constant_noise_scale},
            )
        elpd = lpd.sum(0)
        self.weights_ = pd.DataFrame({
            "graph": labels, "prior": prior, "elpd": elpd, "elpd_diff": elpd.max() - elpd,
            "se_diff": [float(np.sqrt(len(d)) * d.std()) for d in (lpd[:, [int(np.argmax(elpd))]] - lpd).T],
            "weight": weights, "num_edges": [g.number_of_edges() for g in found],
        })
        self.edge_probs_ = pd.DataFrame({
            "edge": [f"{u}->{v}" for u, v in uncertain],
            "prior": [float(prior[[e in g.edges for g in found]].sum()) for e in uncertain],
            "posterior": [float(weights[[e in g.edges for g in found]].sum()) for e in uncertain],
        })
        self.num_rows_scored_ = lpd.shape[0]
        self.seed_ = base_seed
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise NotFittedError("this GraphEnsemble is not fitted yet; call ensemble.fit(train_df) first")

    @property
    def best_model(self) -> BayesianSCM:
        """The fitted model of the graph with the largest weight."""
        self._check_fitted()
        return self.models_[self.weights_.loc[self.weights_["weight"].idxmax(), "graph"]]

    # -- attribution --------------------------------------------------------------------------
    def attribute_anomalies(
        self, target_node: Hashable, anomaly_samples: pd.DataFrame, *, seed: int | None = None,
        min_weight: float = WEIGHT_CUTOFF, **options: Any,
    ) -> AttributionResult:
        """Posterior contributions averaged over the graphs: each graph supplies draws in proportion to its weight.

        Parameters
        ----------
        target_node, anomaly_samples, seed, **options
            As in :func:`bayesrca.attribute_anomalies` (the same seed for every graph).
        min_weight : float, default 0.05
            Graphs with a smaller weight are left out and the others' weights renormalised (the
            heaviest graph is always kept), as for family averaging (:data:`~bayesrca.averaging.WEIGHT_CUTOFF`).

        Returns
        -------
        AttributionResult
            Draws of the kept graphs stacked along the draw axis; nodes are the union of the
            graphs' players (0 where a node is not an ancestor of the target). ``method_info``
            adds ``graph_weights`` (label to weight used), ``graph_draws`` (label to draws) and
            ``graph_edges`` (label to edge list); other entries come from the heaviest graph's
            attribution, Monte Carlo diagnostics combined over the graphs.
        """
        self._check_fitted()
        if isinstance(min_weight, bool) or not isinstance(min_weight, (int, float)) or not 0 <= min_weight < 1:
            raise ConfigError(f"min_weight must be a number in [0, 1), got {min_weight!r}")
        seed = resolve_seed(seed)
        labels = list(self.weights_["graph"])
        weights = trim_weights(self.weights_["weight"].to_numpy(), min_weight)
        num_draws = self.models_[labels[0]].num_draws_
        counts = _largest_remainder(weights, num_draws)
        kept = [i for i in np.argsort(-weights, kind="stable") if counts[i] > 0]
        results = {i: attribute(self.models_[labels[i]], target_node, anomaly_samples, seed=seed, **options) for i in kept}
        nodes = list(results[kept[0]].nodes)
        nodes += [str(n) for n in self.graphs_[labels[kept[0]]].nodes if str(n) not in nodes and any(
            str(n) in results[i].nodes for i in kept)]
        parts, its, se = [], [], np.zeros((len(results[kept[0]].anomalies), len(nodes)))
        info = dict(results[kept[0]].method_info)
        for i in kept:
            res = results[i]
            rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
            pick = np.sort(rng.choice(num_draws, size=counts[i], replace=False))
            full = np.zeros((counts[i], len(res.anomalies), len(nodes)))
            cols = [nodes.index(n) for n in res.nodes]
            full[:, :, cols] = res.contributions[pick]
            parts.append(full)
            its.append(res.it_scores[pick])
            if res.mc_std_error is not None:  # the mixture's mean: at most the weighted sum of the graphs' errors
                se[:, cols] += counts[i] / num_draws * res.mc_std_error
            _merge_diagnostics(info, res.method_info)
        info.update({
            "engine": "/".join(dict.fromkeys(results[i].method_info["engine"] for i in kept)),
            "num_draws": num_draws, "seed": seed,
            "graph_weights": {labels[i]: round(float(weights[i]), 4) for i in kept},
            "graph_draws": {labels[i]: int(counts[i]) for i in kept},
            "graph_edges": {labels[i]: [f"{u}->{v}" for u, v in self.graphs_[labels[i]].edges] for i in kept},
        })
        return AttributionResult(np.concatenate(parts), np.concatenate(its), nodes=nodes,
                                 anomalies=list(results[kept[0]].anomalies), target=str(target_node),
                                 method_info=info, mc_std_error=se)

    def __repr__(self) -> str:
        state = f"{len(self.weights_)} graphs, fitted" if hasattr(self, "weights_") else "not fitted"
        what = f"{len(self.candidates)} candidates" if self.candidates is not None else (
            f"{len(self.edge_probs or {})} uncertain edges")
        return f"GraphEnsemble({what}, mechanisms={self.mechanisms!r}, {state})"


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total``, proportional to ``weights`` (ties to the heavier, then earlier)."""
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    order = sorted(range(len(weights)), key=lambda k: (-(exact[k] - counts[k]), -weights[k], k))
    for k in order[: total - int(counts.sum())]:
        counts[k] += 1
    return counts


def _merge_diagnostics(info: dict, other: Mapping[str, Any]) -> None:
    """Monte Carlo diagnostics over graphs: the smallest ESS, the largest error, every unreliable anomaly."""
    for key, pick in (("tail_ess_min", min), ("value_ess_min", min), ("value_mc_se_max", max)):
        if key in other:
            info[key] = [pick(a, b) for a, b in zip(info[key], other[key])] if key in info else list(other[key])
    if "unreliable_tail" in other:
        info["unreliable_tail"] = list(dict.fromkeys(list(info.get("unreliable_tail", [])) + list(other["unreliable_tail"])))
