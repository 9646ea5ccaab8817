"""Automatic per-node choice of mechanism by held-out expected log predictive density (elpd).

Each candidate is scored by K-fold cross-validation (K = 3): fitted on K-1 folds and scored on the
held-out fold with the posterior predictive density ``log mean_s p(x_i | pa_i, theta_s)`` (a
Bayesian criterion: the log score of the posterior predictive). Folds are scored until at least
``min_scored_rows`` rows are held out, by default all of them: every row is held out once, so the
choice does not hinge on which rows one random split held out (on the microservice example a single
split of 2,000 rows chose a log-normal root and a linear Caching Service, and the target's IT score
fell from 2.9 to 1.9 against an empirical 3.1). A smaller ``min_scored_rows`` trades this for speed.
Candidates are listed from simplest to most flexible;
candidates fall in cost classes (linear-Gaussian: closed-form attributions; linear: one matrix
product; nonlinear: propagation per coalition), and the best candidate of the cheapest class whose
elpd is within ``threshold`` standard errors of the overall best, and at most ``max_loss_per_row``
nats per held-out row below it, is chosen, in the spirit of the one-standard-error rule used with
PSIS-LOO model comparison.

The same pointwise held-out densities give every candidate a model-averaging weight
(:mod:`bayesrca.averaging`); :class:`~bayesrca.BayesianSCM` averages over the families by default
(``averaging="pseudo-bma+"``) and keeps the single choice with ``averaging="none"``.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ._random import seeded
from .averaging import WEIGHT_CUTOFF, WEIGHTINGS, model_weights, trim_weights
from .exceptions import BayesRCAError, ConfigError, ConvergenceWarning, DataError
from .mechanisms import GPANM, LinearANM, Mechanism, PoissonGLM, SplineANM
from .mechanisms.registry import default_candidates, discrete_class

__all__ = [
    "default_candidates", "discrete_kind", "discrete_mechanism", "heldout_elpd", "nests", "redundant_families",
    "select_mechanism",
]

#: elpd differences below this many nats count as small whatever the number of held-out rows.
SMALL_ELPD_DIFF = 4.0

# ``default_candidates`` lives in :mod:`bayesrca.mechanisms.registry` (the one list of families) and
# is re-exported here, where model selection uses it.


def discrete_kind(column: pd.Series) -> str | None:
    """``"binary"``, ``"count"`` or None (continuous) for a training column, from its dtype.

    Booleans, and integer columns with values 0/1, are binary; other non-negative integer
    columns are counts; a float column is binary only when it holds both 0 and 1 and nothing
    else (a column that is constant 1.0, e.g. an availability, stays continuous).
    """
    if pd.api.types.is_bool_dtype(column):
        return "binary"
    values = column.to_numpy()
    if pd.api.types.is_integer_dtype(column):
        if np.isin(values, (0, 1)).all():
            return "binary"
        return "count" if values.min() >= 0 else None
    if pd.api.types.is_float_dtype(column) and np.isin(values, (0.0, 1.0)).all() and len(np.unique(values)) == 2:
        return "binary"
    return None


#: A count column whose Pearson dispersion under the fitted Poisson model exceeds this is
#: modelled as continuous (large, overdispersed counts such as page views).
MAX_POISSON_DISPERSION = 1.5


def discrete_mechanism(kind: str, y: np.ndarray, parents: np.ndarray) -> Mechanism | None:
    """The discrete family for a ``discrete_kind`` column, or None to model it as continuous.

    A binary column is Bernoulli. A count is Poisson unless the Poisson fit is overdispersed
    (Pearson statistic ``mean((y - mu)^2 / mu) > MAX_POISSON_DISPERSION``): held-out densities of
    continuous families and probabilities of a count model are not comparable (a narrow density
    on integer-valued residuals exceeds 1), so this is decided by a dispersion check, not by elpd.
    """
    cls = discrete_class(kind)
    if cls is not PoissonGLM:  # binary: Bernoulli, no check needed
        return cls()
    trial = PoissonGLM().fit(y, parents, num_draws=4)
    pa = [torch.tensor(parents[:, k]).unsqueeze(-1) for k in range(parents.shape[1])]
    with torch.no_grad():
        mu = trial.eta(pa, torch.float64).mean(-1).exp().clamp(min=1e-9).numpy()
    dispersion = float(np.mean((y - mu) ** 2 / mu))
    return PoissonGLM() if dispersion <= MAX_POISSON_DISPERSION else None


def heldout_elpd(mech: Mechanism, y: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Pointwise ``log mean_s p(y_i | parents_i, theta_s)`` of a fitted mechanism."""
    value = torch.as_tensor(y).unsqueeze(-1)
    pa = [torch.as_tensor(parents[:, k]).unsqueeze(-1) for k in range(parents.shape[1])]
    with torch.no_grad():
        logp = mech.log_prob(value, pa)  # (n, D)
    return (torch.logsumexp(logp, dim=-1) - math.log(logp.shape[-1])).numpy()


def select_mechanism(
    candidates: Sequence[Mechanism],
    y: np.ndarray,
    parents: np.ndarray,
    *,
    rng: np.random.Generator,
    num_draws: int = 16,
    max_rows: int = 2000,
    num_atoms: int = 256,
    num_folds: int = 3,
    min_scored_rows: int = 2000,
    threshold: float = 2.0,
    max_loss_per_row: float = 0.02,
    weighting: str = "pseudo-bma+",
    cutoff: float = WEIGHT_CUTOFF,
    node: str = "",
) -> tuple[Mechanism, pd.DataFrame]:
    """Pick one of ``candidates`` for a node; return the unfitted choice and the comparison table.

    A cheaper class is kept when its best candidate's elpd is within ``threshold`` standard
    errors of the overall best *and* the difference is small: below 4 nats, or at most
    ``max_loss_per_row`` nats per held-out row. A few extreme held-out rows inflate the standard
    error and must not hide a misfit that costs every row (e.g. a linear fit of a clearly
    nonlinear mechanism). The comparison uses K-fold cross-validation over up to ``max_rows``
    rows, scoring folds until ``min_scored_rows`` rows are held out.

    The table has one row per candidate: ``elpd`` and its standard error ``se``, ``elpd_diff``
    and ``se_diff`` against the best, ``cost_class``, ``chosen`` (the single choice above) and
    ``weight``, the candidate's model-averaging weight by ``weighting`` (``"pseudo-bma+"`` or
    ``"stacking"``, :mod:`bayesrca.averaging`) from the same pointwise held-out densities, and
    ``averaged_weight``, the weight ``BayesianSCM(averaging=...)`` gives it: a family that nests
    a cheaper candidate without predicting clearly better than it (the closeness rule above) is
    ``redundant`` and left out (:func:`redundant_families`), the others are weighted afresh, and
    weights below ``cutoff`` are dropped and the rest renormalised. The weights' bootstrap draws come
    from ``rng`` after the cross-validation, so the single choice is the same whatever the
    weighting.
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    idx = rng.permutation(len(y))[: min(len(y), max_rows)]
    folds = np.array_split(idx, max(2, min(num_folds, len(idx) // 2)))
    # score folds until min_scored_rows rows are held out (by default all folds: one random split
    # is a noisy judge); a smaller min_scored_rows stops after fewer folds, for speed
    used, scored = [], 0
    for fold in folds:
        used.append(fold)
        scored += len(fold)
        if scored >= min_scored_rows:
            break
    n_val = scored
    rows, pointwise = [], []
    base_seed = int(rng.integers(2**32))
    for cand in candidates:
        lpd = np.empty(0)
        # each candidate's posterior draws are seeded by its own description, so neither its
        # held-out densities nor the weights depend on the order of the candidates
        cand_seed = int(np.random.SeedSequence([base_seed, zlib.crc32(repr(cand).encode())]).generate_state(1)[0])
        try:
            for k, val in enumerate(used):
                train = np.concatenate([f for j, f in enumerate(folds) if j != k])
                trial = cand.clone()
                if hasattr(trial, "num_atoms"):
                    trial.num_atoms = num_atoms
                with warnings.catch_warnings(), seeded(cand_seed + k):
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    trial.fit(y[train], parents[train], num_draws=num_draws, node=node)
                lpd = np.concatenate([lpd, heldout_elpd(trial, y[val], parents[val])])
        except BayesRCAError:
            lpd = np.full(n_val, -np.inf)
        if not np.all(np.isfinite(lpd)):
            lpd = np.full(n_val, -np.inf)
        pointwise.append(lpd)
        rows.append({"node": node, "candidate": trial.describe(), "elpd": float(lpd.sum())})
    table = pd.DataFrame(rows)
    best = int(np.argmax(table["elpd"].to_numpy()))
    if not np.isfinite(table["elpd"].iloc[best]):
        raise DataError(f"node {node!r}: no candidate mechanism could be fitted; check the column's values")
    diffs = [pointwise[best] - p for p in pointwise]
    table["se"] = [float(np.sqrt(len(p)) * p.std()) if np.all(np.isfinite(p)) else np.nan for p in pointwise]
    table["elpd_diff"] = [float(d.sum()) if np.all(np.isfinite(d)) else np.inf for d in diffs]
    table["se_diff"] = [float(np.sqrt(len(d)) * d.std()) if np.all(np.isfinite(d)) else np.nan for d in diffs]
    # cheaper classes first: linear-Gaussian (closed-form tails), linear (one matrix product), nonlinear
    classes = [_cost_class(c) for c in candidates]
    table["cost_class"] = classes
    chosen = best
    for cls in sorted(set(classes)):
        members = [i for i in range(len(candidates)) if classes[i] == cls]
        top = max(members, key=lambda i: table["elpd"].iloc[i])
        diff = table["elpd_diff"].iloc[top]
        # within `threshold` SE, and either a small difference (< 4 nats, the usual "small" in
        # elpd comparisons) or a small loss per held-out row
        small = diff <= SMALL_ELPD_DIFF or diff <= max_loss_per_row * n_val
        close = diff <= threshold * np.nan_to_num(table["se_diff"].iloc[top]) and small
        if top == best or close:
            chosen = top
            break
    table["chosen"] = [i == chosen for i in range(len(candidates))]
    lpd = np.column_stack(pointwise)
    table["weight"] = model_weights(lpd, weighting, rng)
    redundant = redundant_families(candidates, pointwise, threshold=threshold, max_loss_per_row=max_loss_per_row)
    averaged = np.zeros(len(candidates))
    averaged[~redundant] = trim_weights(model_weights(lpd[:, ~redundant], weighting, rng), cutoff)
    table["redundant"] = redundant
    table["averaged_weight"] = averaged
    return candidates[chosen].clone(), table


#: (simpler class, richer class) pairs whose feature maps are nested (a spline basis holds the
#: linear term); every class nests itself.
NESTED_CLASSES = frozenset({(LinearANM, SplineANM), (LinearANM, GPANM)})  # the GP has a linear trend


def nests(simple: Mechanism, rich: Mechanism) -> bool:
    """True when ``simple`` is a special case of ``rich`` (and not the same family).

    The regression functions are nested (same class, or a pair in :data:`NESTED_CLASSES`) and
    so are the noises (the same family, or ``rich`` has a non-parametric bootstrap noise, plain or
    GPD-tailed, which can take any shape).
    """
    same_class = type(simple) is type(rich)
    if not (same_class or (type(simple), type(rich)) in NESTED_CLASSES):
        return False
    ns, nr = getattr(simple, "noise", None), getattr(rich, "noise", None)
    if ns is None or nr is None or (same_class and ns == nr):
        return False
    return ns == nr or nr in ("bootstrap", "bootstrap_gpd")


def redundant_families(
    candidates: Sequence[Mechanism], pointwise: Sequence[np.ndarray], *, threshold: float, max_loss_per_row: float,
) -> np.ndarray:
    """Which candidates nest a cheaper candidate that they do not clearly beat (left out of averaging).

    A richer family (a spline, a bootstrap noise) that nests a simpler candidate (:func:`nests`)
    gets weight when the held-out data cannot tell them apart, because it can imitate the simpler
    one; averaging the two then changes the answer little but costs the richer family's price
    (Monte Carlo propagation for a nonlinear family, the loss of the closed-form tails for a
    non-Gaussian noise). So a family is redundant when it nests a candidate of a cheaper cost
    class and is not better than it by the selection's closeness rule (within ``threshold``
    standard errors and a small difference); the averaging weights are computed without it.
    Families of the same cost class (a log-normal and a bootstrap root; spline/gaussian and
    spline/bootstrap) and non-nested families (a Gaussian and a log-normal root; linear/bootstrap
    and spline/gaussian) are never redundant: averaging them costs nothing extra, or the data's
    indecision is about different answers. The cheapest candidates are never redundant.

    Returns
    -------
    ndarray of bool, shape (K,)
    """
    n = len(pointwise[0])
    cost = [_cost_class(c) for c in candidates]

    def not_better(k: int, c: int) -> bool:
        d = pointwise[k] - pointwise[c]
        if not np.all(np.isfinite(d)):
            return not np.all(np.isfinite(pointwise[k]))
        diff, se = float(d.sum()), float(np.sqrt(n) * d.std())
        return diff <= threshold * se and (diff <= SMALL_ELPD_DIFF or diff <= max_loss_per_row * n)

    return np.array([
        any(cost[c] < cost[k] and nests(candidates[c], candidates[k]) and not_better(k, c) for c in range(len(candidates)))
        for k in range(len(candidates))
    ])


def _cost_class(mech: Mechanism) -> int:
    if not mech.is_linear:
        return 2
    return 0 if getattr(mech, "noise", None) == "gaussian" else 1
