"""Random ground-truth SCMs for the evaluation suite (numpy only; independent of bayesrca's code).

* :func:`random_dag` draws Erdős–Rényi DAGs (``"er"``) or latency-like call trees (``"tree"``:
  every node but the sink calls one earlier node, plus a few extra calls, so the sink's latency
  depends on all nodes as in DoWhy's microservice example).
* :class:`TrueSCM` holds additive-noise mechanisms ``X_j = f_j(PA_j) + N_j``: ``"linear"``
  (random weights) or ``"nonlinear"`` (a random sum of tanh, quadratic and linear terms per
  parent), each node's parental part rescaled on a reference sample so every node has sd of
  order one. Noise: ``gaussian``, ``uniform``, ``exponential`` (right-skewed, mean zero),
  ``half_normal`` (mean zero) or ``student_t`` (3 degrees of freedom); each node's noise has sd
  ``sigma_j`` in [0.5, 1].
* :meth:`TrueSCM.inject` shifts one root cause's noise by 3-5 noise sd (the ICML 2022
  protocol) and keeps the event only when the root cause is a but-for cause: the target is an
  outlier with the shift (p <= 1 %) and not without it (p > 10 %).
* :meth:`TrueSCM.true_contributions` gives the exact Shapley values of METHOD.md's set function
  under the true mechanisms: closed-form Gaussian tails for linear-Gaussian SCMs, very large
  Monte Carlo otherwise.
"""

from __future__ import annotations

import argparse
import math
import zlib
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
from scipy import special

NOISES = ("gaussian", "uniform", "exponential", "half_normal", "student_t")
MECHANISMS = ("linear", "nonlinear")


def random_dag(num_nodes: int, shape: str, rng: np.random.Generator, *, mean_parents: float = 1.5) -> nx.DiGraph:
    """A random DAG with nodes ``X0..X{n-1}`` in topological order."""
    nodes = [f"X{i}" for i in range(num_nodes)]
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    if shape == "er":
        p = min(1.0, 2 * mean_parents / max(num_nodes - 1, 1))
        for j in range(num_nodes):
            for i in range(j):
                if rng.random() < p:
                    graph.add_edge(nodes[i], nodes[j])
    elif shape == "tree":
        # call tree: node i (i < n-1) is called by one later node; edges callee -> caller
        for i in range(num_nodes - 1):
            graph.add_edge(nodes[i], nodes[int(rng.integers(i + 1, num_nodes))])
        for _ in range(num_nodes // 5):  # a few shared callees
            i, j = sorted(rng.choice(num_nodes, 2, replace=False))
            graph.add_edge(nodes[i], nodes[j])
    else:
        raise ValueError(f"shape must be 'er' or 'tree', got {shape!r}")
    return graph


def _noise(kind: str, size, rng: np.random.Generator) -> np.ndarray:
    """Standardised noise: mean 0, sd 1."""
    if kind == "gaussian":
        return rng.standard_normal(size)
    if kind == "uniform":
        return rng.uniform(-math.sqrt(3), math.sqrt(3), size)
    if kind == "exponential":
        return rng.exponential(1.0, size) - 1.0
    if kind == "half_normal":
        return (np.abs(rng.standard_normal(size)) - math.sqrt(2 / math.pi)) / math.sqrt(1 - 2 / math.pi)
    if kind == "student_t":
        return rng.standard_t(3, size) / math.sqrt(3.0)
    raise ValueError(f"unknown noise {kind!r}")


@dataclass
class TrueSCM:
    graph: nx.DiGraph
    mechanism: str
    noise: str
    seed: int
    order: list = field(init=False)
    sigma: dict = field(init=False)
    terms: dict = field(init=False)  # node -> list of (parent, a_lin, a_tanh, a_quad, centre)
    scale: dict = field(init=False)  # node -> divisor of the parental part
    offset: dict = field(init=False)

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS or self.noise not in NOISES:
            raise ValueError(f"mechanism in {MECHANISMS}, noise in {NOISES}")
        rng = np.random.default_rng(self.seed)
        self.order = list(nx.topological_sort(self.graph))
        self.sigma = {n: float(rng.uniform(0.5, 1.0)) for n in self.order}
        self.terms, self.scale, self.offset = {}, {}, {}
        for n in self.order:
            terms = []
            for p in self.graph.predecessors(n):
                sign = rng.choice([-1.0, 1.0])
                if self.mechanism == "linear":
                    terms.append((p, sign * rng.uniform(0.5, 1.5), 0.0, 0.0, 0.0))
                else:
                    terms.append((p, sign * rng.uniform(0.2, 0.6), rng.choice([-1, 1]) * rng.uniform(1.0, 2.0),
                                  rng.uniform(0.3, 0.8), rng.normal(0, 0.5)))
            self.terms[n] = terms
            self.scale[n], self.offset[n] = 1.0, float(rng.normal(0, 1))
        # rescale each parental part to sd 1 on a reference sample (keeps deep graphs O(1))
        reference = self.propagate(self.sample_noise(20_000, np.random.default_rng(self.seed + 1)), raw=True)
        for n in self.order:
            part = reference[f"__part_{n}"]
            sd = float(part.std())
            self.scale[n] = sd if sd > 1e-12 else 1.0

    # ---- sampling ----------------------------------------------------------------------
    def sample_noise(self, size, rng: np.random.Generator) -> dict:
        return {n: self.sigma[n] * _noise(self.noise, size, rng) for n in self.order}

    def _part(self, n, values: dict) -> np.ndarray | float:
        out = 0.0
        for p, a_lin, a_tanh, a_quad, c in self.terms[n]:
            x = values[p]
            out = out + a_lin * x
            if self.mechanism == "nonlinear":
                out = out + a_tanh * np.tanh(x - c) + a_quad * (x - c) ** 2 / 4
        return out

    def propagate(self, noise: dict, nodes=None, *, raw: bool = False) -> dict:
        """Node values from noise values (any common shape); ``nodes`` restricts to a closed subset."""
        values = {}
        for n in self.order if nodes is None else [m for m in self.order if m in set(nodes)]:
            part = self._part(n, values)
            if raw:
                values[f"__part_{n}"] = np.asarray(part) + 0 * noise[n]
            values[n] = self.offset[n] + part / self.scale[n] + noise[n]
        return values

    def sample(self, num_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        values = self.propagate(self.sample_noise(num_rows, rng))
        return pd.DataFrame({n: values[n] for n in self.order})

    # ---- outliers ----------------------------------------------------------------------
    def players(self, target) -> list:
        anc = nx.ancestors(self.graph, target)
        return [n for n in self.order if n in anc or n == target]

    def inject(self, target, root_cause, rng: np.random.Generator, *, shift=(3.0, 5.0), min_it: float = math.log(100),
               max_it_without: float = math.log(10), tries: int = 50, reference: np.ndarray | None = None):
        """An outlier caused by ``root_cause``: (row DataFrame, noise dict) or None if none is found.

        The root cause's noise is ``sigma * (+-(3..5))`` on top of a fresh draw of every noise. The
        draw is kept when the root cause is a but-for cause of the outlier: with the shift the
        target's true two-sided median-CDF IT score is >= ``min_it`` (p <= 1 %), without it (the
        root cause's own fresh draw) < ``max_it_without`` (p > 10 %, not an outlier at all).
        """
        if reference is None:
            reference = self.reference_target(target)
        players = self.players(target)
        for _ in range(tries):
            noise = {n: float(v[0]) for n, v in self.sample_noise(1, rng).items()}
            if empirical_it(reference, self.propagate(noise, players)[target]) >= max_it_without:
                continue
            sign = 1.0 if self.noise in ("exponential", "half_normal") else rng.choice([-1.0, 1.0])
            noise[root_cause] = sign * self.sigma[root_cause] * rng.uniform(*shift)
            values = self.propagate(noise)
            if empirical_it(reference, values[target]) >= min_it:
                return pd.DataFrame({n: [values[n]] for n in self.order}), noise
        return None

    def reference_target(self, target, num: int = 200_000, seed: int = 12345) -> np.ndarray:
        """Sorted samples of the target's true marginal."""
        values = self.propagate(self.sample_noise(num, np.random.default_rng(seed)), self.players(target))
        return np.sort(values[target])

    # ---- truth -------------------------------------------------------------------------
    def total_effects(self, target) -> tuple[float, dict]:
        """Linear SCMs: X_t = c + sum_j a_j N_j (exact by unit vectors)."""
        players = self.players(target)
        zero = {n: 0.0 for n in self.order}
        c = self.propagate(zero, players)[target]
        effects = {}
        for j in players:
            unit = dict(zero)
            unit[j] = 1.0
            effects[j] = self.propagate(unit, players)[target] - c
        return float(c), effects

    def true_contributions(self, target, anomaly_noise: dict, *, num_mc: int = 1_000_000, seed: int = 7, method: str = "auto",
                           return_values: bool = False):
        """Exact Shapley contributions (dict node -> value) and the true IT score.

        Closed-form Gaussian tails for linear-Gaussian SCMs; otherwise Monte Carlo with
        ``num_mc`` samples per coalition (common random numbers across coalitions).
        With ``return_values=True`` the coalition values ``v`` (array of length ``2**n``, bit j =
        ``players[j]``) are returned as a third element.
        """
        players = self.players(target)
        n = len(players)
        masks = np.array([[(i >> j) & 1 for j in range(n)] for i in range(2**n)], dtype=bool)
        if method != "mc" and self.mechanism == "linear" and self.noise == "gaussian":
            c, a = self.total_effects(target)
            coef = np.array([a[p] for p in players])
            var = coef**2 * np.array([self.sigma[p] ** 2 for p in players])
            kept = coef * np.array([anomaly_noise[p] for p in players])
            x = c + kept.sum()
            dist = abs(x - c)
            mean = c + masks @ kept
            sd = np.sqrt((~masks) @ var)
            with np.errstate(divide="ignore"):
                v = np.where(sd > 0, np.logaddexp(special.log_ndtr((c - dist - mean) / np.where(sd > 0, sd, 1)),
                                                  special.log_ndtr((mean - c - dist) / np.where(sd > 0, sd, 1))), 0.0)
            v = np.minimum(v, 0.0)
        else:
            reference = self.reference_target(target, num=num_mc, seed=seed + 1)
            x = self.propagate(anomaly_noise, players)[target]
            lo, hi = mirror_thresholds(reference, x)
            rng = np.random.default_rng(seed)
            v = np.empty(len(masks))
            chunk = 200_000
            counts = np.zeros(len(masks))
            for start in range(0, num_mc, chunk):
                size = min(chunk, num_mc - start)
                fresh = self.sample_noise(size, rng)
                for i, mask in enumerate(masks):
                    noise = {p: (np.full(size, anomaly_noise[p]) if mask[k] else fresh[p]) for k, p in enumerate(players)}
                    xt = self.propagate(noise, players)[target]
                    counts[i] += np.count_nonzero((xt <= lo) | (xt >= hi))
            v = np.log(np.maximum(counts, 0.5) / num_mc)
            v[-1] = 0.0  # all noise kept: the outlier itself
        v[0] = min(v[0], 0.0)
        phi = exact_shapley(v, n)
        if return_values:
            return dict(zip(players, phi)), float(-v[0]), v
        return dict(zip(players, phi)), float(-v[0])


def exact_shapley(values: np.ndarray, n: int) -> np.ndarray:
    """Shapley values of a set function given on all 2**n coalitions (bit j = player j)."""
    index = np.arange(2**n)
    size = np.array([int(i).bit_count() for i in index])
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.zeros(n)
    for j in range(n):
        without = index[(index >> j) & 1 == 0]
        phi[j] = np.sum(weight[size[without]] * (values[without | (1 << j)] - values[without]))
    return phi


def mirror_thresholds(sorted_reference: np.ndarray, x: float) -> tuple[float, float]:
    """Event bounds of the two-sided median-CDF score: x and its mirror quantile."""
    m = len(sorted_reference)
    f = np.searchsorted(sorted_reference, x, side="right") / m
    if f >= 0.5:
        return float(np.quantile(sorted_reference, max(1 - f, 0.0))), x
    return x, float(np.quantile(sorted_reference, min(1 - f, 1.0)))


def empirical_it(sorted_reference: np.ndarray, x: float) -> float:
    """-log P(tau(X) >= tau(x)) from sorted reference samples (two-sided median-CDF score)."""
    m = len(sorted_reference)
    le = np.searchsorted(sorted_reference, x, side="right")
    ge = m - np.searchsorted(sorted_reference, x, side="left")
    return -math.log(min(1.0, (2 * min(le, ge) + 1) / (m + 1)))


def ground_truth_setup(setting: dict, graph_index: int, *, seed: int, rows: int, max_ancestors: int | None):
    """The seeded start of every ground-truth problem (recall.py, extreme_ranking.py).

    Returns ``(rng, graph, truth, target, train, reference, players, tool_seed)``: a random DAG of
    the setting, its true SCM, a target with at least 3 ancestors, ``rows`` training rows, a large
    reference sample of the target, the players and the seed handed to the tools under test. The
    generator comes back for the outliers.
    """
    seq = np.random.SeedSequence([seed, zlib.crc32(setting["name"].encode()), graph_index])
    rng = np.random.default_rng(seq)
    graph = random_dag(setting["nodes"], setting["shape"], rng)
    truth = TrueSCM(graph, setting["mechanism"], setting["noise"], seed=int(rng.integers(2**31)))
    target = pick_target(graph, rng, min_ancestors=3, max_ancestors=max_ancestors)
    train = truth.sample(rows, rng)
    tool_seed = int(seq.generate_state(1)[0] % 2**31)
    return rng, graph, truth, target, train, truth.reference_target(target), truth.players(target), tool_seed


def parse_setting(name: str) -> dict:
    """``"er-10-linear-gaussian"`` -> ``{"name", "shape", "nodes", "mechanism", "noise"}`` (an argparse type)."""
    parts = name.split("-")
    if len(parts) != 4 or parts[0] not in ("er", "tree") or not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"setting must look like 'er-10-linear-gaussian', got {name!r}")
    if parts[2] not in MECHANISMS or parts[3] not in NOISES:
        raise argparse.ArgumentTypeError(f"mechanism in {MECHANISMS}, noise in {NOISES}; got {name!r}")
    return {"name": name, "shape": parts[0], "nodes": int(parts[1]), "mechanism": parts[2], "noise": parts[3]}


def pick_target(graph: nx.DiGraph, rng: np.random.Generator, *, min_ancestors: int = 3, max_ancestors: int | None = None):
    """A random node with between min and max ancestors (the sink-most one if none qualifies)."""
    counts = {n: len(nx.ancestors(graph, n)) for n in graph.nodes}
    ok = [n for n, c in counts.items() if c >= min_ancestors and (max_ancestors is None or c <= max_ancestors)]
    if not ok:
        return max(counts, key=counts.get)
    return ok[int(rng.integers(len(ok)))]


__all__ = [
    "MECHANISMS",
    "NOISES",
    "TrueSCM",
    "empirical_it",
    "exact_shapley",
    "ground_truth_setup",
    "mirror_thresholds",
    "parse_setting",
    "pick_target",
    "random_dag",
]
