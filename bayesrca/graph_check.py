r"""Checks of a causal graph against data, to run before attributing.

:func:`check_graph` returns one tidy table with three kinds of rows:

* ``heldout_elpd`` (one per node): the node's held-out log predictive density given its parents,
  ``log mean_s p(x_i | pa_i, theta_s)`` averaged over rows, from K-fold cross-validation (every
  row held out once; the node's mechanism, ``"auto"`` selection included, refitted on the other
  folds). A node whose parents miss an important cause predicts worse than it could.
* ``ppc_pit`` (one per node): a held-out posterior predictive check. For every held-out row, the
  probability integral transform :math:`u_i = P(X_j^{rep} < x_{ij} \mid pa_i)` under the posterior
  predictive of the fold's fit (randomised at ties, for discrete nodes); a well-specified node has
  uniform :math:`u`, so the statistic is the Kolmogorov-Smirnov distance of :math:`u` from the
  uniform and the p-value its KS test. It flags a wrong noise family or mechanism, not a missing
  edge alone.
* ``independence`` (one per implied independence): the local Markov property of the graph says
  every node is independent of its non-descendants given its parents, :math:`X \perp Y \mid PA(X)`.
  Each such statement is tested by the partial correlation of X and Y given PA(X) (Fisher's z;
  ``test="spearman"`` uses ranks), or, with ``test="pit"``, by the rank correlation of X's
  held-out PIT with Y: the PIT is X's noise as the fitted mechanism sees it (for an additive-noise
  model a monotone function of :math:`x - f(pa)`), which the graph says is independent of every
  non-descendant, so a nonlinear mechanism does not leave dependence behind as a linear
  residualisation does. A rejected independence means the data contradict the graph there:
  typically a missing edge between the two nodes or a missing common cause (or, for the partial
  correlations, a nonlinear mechanism). These tests see linear (or monotone) dependence only; a
  non-rejection is no proof of independence.

P-values of each kind are corrected for multiple testing (Holm by default, or Benjamini-Hochberg)
and ``rejected`` compares the corrected p-value with ``alpha``. The held-out scores come from
:func:`node_heldout`, which :class:`~bayesrca.ensemble.GraphEnsemble` also uses to weight graphs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from . import graph as graphs
from ._random import resolve_seed, seeded
from .exceptions import ConfigError
from .fitting import fit_node
from .mechanisms.registry import is_user_mechanism, resolve_spec
from .scm import BayesianSCM
from .selection import discrete_kind, heldout_elpd
from .validation import check_frame, check_positive_int, check_probability

__all__ = ["check_graph", "local_independences", "partial_correlation_test", "adjust_pvalues", "node_heldout",
           "heldout_folds"]

#: Multiple-testing corrections :func:`check_graph` accepts.
CORRECTIONS = ("holm", "bh")
#: Conditional-independence tests :func:`check_graph` accepts.
TESTS = ("fisher-z", "spearman", "pit")
#: Posterior predictive replicates per draw and held-out row for the PIT.
PIT_REPLICATES = 8


def heldout_folds(num_rows: int, num_folds: int, rng: np.random.Generator, max_rows: int = 2000) -> list[np.ndarray]:
    """Random folds of up to ``max_rows`` rows (the rows scored), the same for every node and graph."""
    idx = rng.permutation(num_rows)[: min(num_rows, max_rows)]
    return np.array_split(idx, max(2, min(num_folds, len(idx) // 2)))


def node_heldout(
    node: str, spec: Any, kind: str | None, y: np.ndarray, pa: np.ndarray, folds: Sequence[np.ndarray], *,
    seed: np.random.SeedSequence, options: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise held-out log predictive density and PIT of one node given one parent set.

    Each fold is held out once; the node is fitted on all other rows with :func:`~bayesrca.fitting.fit_node`
    (``spec``, ``kind`` and ``options`` as there) and scores the fold's rows.

    Returns
    -------
    lpd : ndarray, shape (rows scored,)
        ``log mean_s p(y_i | pa_i, theta_s)``, rows in the order of ``np.concatenate(folds)``.
    pit : ndarray, shape (rows scored,)
        ``P(y_rep < y_i) + V * P(y_rep = y_i)`` under the fold's posterior predictive (V uniform).
    """
    num_rows = len(y)
    lpd, pit = [], []
    for k, val in enumerate(folds):
        train = np.setdiff1d(np.arange(num_rows), val)
        fold_seed = np.random.SeedSequence([*seed.generate_state(2), 1 + k])
        mech, _ = fit_node(node, spec.clone() if hasattr(spec, "clone") else spec, kind, y[train], pa[train],
                           seed=fold_seed, **options)
        lpd.append(heldout_elpd(mech, y[val], pa[val]))
        with seeded(int(fold_seed.generate_state(1)[0])), torch.no_grad():
            parents = [torch.as_tensor(pa[val, j]).unsqueeze(-1) for j in range(pa.shape[1])]
            noise = mech.noise_distribution().sample((PIT_REPLICATES, len(val)))  # (R, rows, D)
            rep = mech.forward(noise, parents).to(torch.float64)
            obs = torch.as_tensor(y[val], dtype=torch.float64).unsqueeze(-1)
            below = (rep < obs).to(torch.float64).mean((0, -1))
            ties = (rep == obs).to(torch.float64).mean((0, -1))
            pit.append((below + torch.rand(len(val), dtype=torch.float64) * ties).numpy())
    return np.concatenate(lpd), np.concatenate(pit)


def local_independences(graph: nx.DiGraph) -> list[tuple[Hashable, Hashable, tuple[Hashable, ...]]]:
    """The local Markov independences of a DAG: ``(x, y, parents of x)`` for every non-descendant y of x.

    Parents are excluded (they are conditioned on) and so is x itself; pairs appear once per
    direction when neither node descends from the other (two different statements).
    """
    out = []
    for x in graph.nodes:
        parents = graphs.parents_of(graph, x)
        excluded = nx.descendants(graph, x) | set(parents) | {x}
        out += [(x, y, parents) for y in graph.nodes if y not in excluded]
    return out


def partial_correlation_test(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Partial correlation of ``x`` and ``y`` given the columns of ``z`` and its Fisher-z p-value.

    Returns ``(r, p)``; NaN for both when a residual is constant or there are too few rows
    (``n - |z| - 3 <= 0``).
    """
    n = len(x)
    design = np.column_stack([np.ones(n), z.reshape(n, -1)])
    res = [v - design @ np.linalg.lstsq(design, v, rcond=None)[0] for v in (x, y)]
    dof = n - (design.shape[1] - 1) - 3
    scale = math.sqrt(float(res[0] @ res[0]) * float(res[1] @ res[1]))
    if dof <= 0 or scale <= 1e-12 * max(1.0, float(np.abs(x).max()) * float(np.abs(y).max())) * n:
        return float("nan"), float("nan")
    r = float(np.clip(res[0] @ res[1] / scale, -1 + 1e-15, 1 - 1e-15))
    z_stat = math.atanh(r) * math.sqrt(dof)
    return r, float(2 * sps.norm.sf(abs(z_stat)))


def adjust_pvalues(p: np.ndarray, method: str = "holm") -> np.ndarray:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values; NaN stays NaN."""
    if method not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    out[order] = np.minimum(adj, 1.0)
    return out


def check_graph(
    model: Any,
    data: pd.DataFrame | None = None,
    *,
    mechanisms: Any = "auto",
    alpha: float = 0.05,
    correction: str = "holm",
    test: str = "fisher-z",
    num_folds: int = 3,
    num_draws: int = 100,
    seed: int | None = None,
) -> pd.DataFrame:
    """Check a causal graph against data: held-out density and PIT per node, implied independences.

    Parameters
    ----------
    model : networkx.DiGraph or BayesianSCM
        The graph to check, or a fitted model (its graph, mechanisms and, by default, training
        data are used).
    data : pandas.DataFrame, optional
        One column per node; required for a graph, default the model's training data.
    mechanisms : "auto", str, Mechanism or mapping, default "auto"
        The node mechanisms for a graph (as in :class:`~bayesrca.BayesianSCM`); a model's own are used.
    alpha : float, default 0.05
        Level of the tests, after the correction.
    correction : {"holm", "bh"}, default "holm"
        Multiple-testing correction within each kind of test.
    test : {"fisher-z", "spearman", "pit"}, default "fisher-z"
        Partial correlation of the values, or of their ranks; or rank correlation of the node's
        held-out PIT with the other node (uses the fitted mechanisms: for nonlinear ones).
    num_folds : int, default 3
        Cross-validation folds of the held-out scores.
    num_draws : int, default 100
        Posterior draws of each fold's fit.
    seed : int, optional
        Seed of the folds and fits.

    Returns
    -------
    pandas.DataFrame
        One row per check: ``check`` (``heldout_elpd``, ``ppc_pit`` or ``independence``),
        ``node``, ``other`` and ``given`` (the independence ``node ⊥ other | given``),
        ``statistic`` (mean held-out log density per row; KS distance of the PIT; partial
        correlation), ``se`` (of the mean log density), ``p_value``, ``p_adjusted`` and
        ``rejected`` (missing for the held-out density). ``attrs`` records alpha, correction and test.
    """
    if isinstance(model, BayesianSCM):
        model.check_fitted()
        graph, spec = model.graph_, model.mechanisms
        averaging, noise_scale = model.averaging, model.constant_noise_scale
        data = model.training_data_ if data is None else data
    else:
        graph, spec, averaging, noise_scale = graphs.validate_graph(model), mechanisms, "pseudo-bma+", 1e-3
        if data is None:
            raise ConfigError("check_graph(graph, data): data are needed to check a graph")
    alpha = check_probability(alpha, "alpha")
    if test not in TESTS:
        raise ConfigError(f"test must be one of {TESTS}, got {test!r}")
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    num_folds = check_positive_int(num_folds, "num_folds", minimum=2)
    num_draws = check_positive_int(num_draws, "num_draws")
    order = graphs.topological_order(graph)
    frame = check_frame(data, order, what="data", min_rows=8)
    base_seed = resolve_seed(seed)
    folds = heldout_folds(len(frame), num_folds, np.random.default_rng(base_seed))
    rows, pits = [], {}
    for i, node in enumerate(order):
        parents = graphs.parents_of(graph, node)
        node_spec = spec.get(node, "auto") if isinstance(spec, Mapping) else spec
        resolved = resolve_spec(node_spec, node, not parents)
        options = {"num_draws": num_draws, "averaging": averaging,
                   "weighting": "pseudo-bma+" if averaging == "none" else averaging, "progress": False,
                   "constant": bool(frame[node].nunique() == 1),
                   "constant_noise_scale": None if is_user_mechanism(spec, node) else noise_scale}
        lpd, pits[node] = node_heldout(
            str(node), resolved, discrete_kind(data[node]) if resolved == "auto" else None,
            frame[node].to_numpy(), frame[list(parents)].to_numpy().reshape(len(frame), len(parents)), folds,
            seed=np.random.SeedSequence([base_seed, i]), options=options,
        )
        ks = sps.kstest(pits[node], "uniform")
        rows.append({"check": "heldout_elpd", "node": node, "statistic": float(lpd.mean()),
                     "se": float(lpd.std() / math.sqrt(len(lpd)))})
        rows.append({"check": "ppc_pit", "node": node, "statistic": float(ks.statistic), "p_value": float(ks.pvalue)})
    values = frame.rank().to_numpy() if test == "spearman" else frame.to_numpy()
    column = {n: j for j, n in enumerate(frame.columns)}
    scored = np.concatenate(folds)  # the rows of the held-out PITs, in their order
    for x, y, given in local_independences(graph):
        if test == "pit":  # x's held-out PIT is a function of its noise, independent of y under the graph
            r, p = partial_correlation_test(sps.rankdata(pits[x]), sps.rankdata(values[scored, column[y]]),
                                            np.empty((len(scored), 0)))
        else:
            r, p = partial_correlation_test(values[:, column[x]], values[:, column[y]],
                                            values[:, [column[g] for g in given]])
        rows.append({"check": "independence", "node": x, "other": y, "given": ", ".join(map(str, given)),
                     "statistic": r, "p_value": p})
    table = pd.DataFrame(rows, columns=["check", "node", "other", "given", "statistic", "se", "p_value",
                                        "p_adjusted", "rejected"])
    table["rejected"] = pd.array([pd.NA] * len(table), dtype="boolean")
    for kind in ("ppc_pit", "independence"):
        mask = (table["check"] == kind).to_numpy()
        if mask.any():
            adj = adjust_pvalues(table.loc[mask, "p_value"].to_numpy(dtype=float), correction)
            table.loc[mask, "p_adjusted"] = adj
            table.loc[mask, "rejected"] = pd.array([bool(a <= alpha) if np.isfinite(a) else pd.NA for a in adj],
                                                   dtype="boolean")
    table.attrs.update({"alpha": alpha, "correction": correction, "test": test, "seed": base_seed})
    return table
