r"""Weights for averaging a node's mechanism over families, from pointwise held-out log densities.

:func:`bayesrca.selection.select_mechanism` scores every candidate family on held-out rows
(K-fold cross-validation): ``lpd[i, k] = log mean_s p_k(y_i | pa_i, theta_s)``. Two weightings of
the candidates follow from that matrix (Yao, Vehtari, Simpson & Gelman 2018, "Using stacking to
average Bayesian predictive distributions", Bayesian Analysis 13(3)):

* **pseudo-BMA+** (the default, :func:`pseudo_bma_plus_weights`): ``w_k ∝ exp(elpd_k)``, averaged
  over Bayesian-bootstrap replicates of the held-out rows. It answers "how sure are the held-out
  data that family k predicts best?": a family whose elpd is many standard errors behind gets
  ~0, families whose elpd differences are within their uncertainty share the weight. That is the
  uncertainty of the per-node choice that a single chosen family hides, which is what averaging
  is for here. Two near-identical families split the weight evenly.
* **stacking** (:func:`stacking_weights`): the simplex point maximising
  ``sum_i log sum_k w_k p_k(y_i)``, the best predictive *mixture*. It can give weight to a family
  that is worse on its own but complements another, and is not identified for near-duplicate
  families (the objective is flat along the line between them), so it does not measure the
  uncertainty of the choice; offered as ``averaging="stacking"``.

Components whose weight is below :data:`WEIGHT_CUTOFF` are dropped and the rest renormalised
(:func:`trim_weights`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["WEIGHTINGS", "WEIGHT_CUTOFF", "pseudo_bma_plus_weights", "stacking_weights", "trim_weights", "model_weights"]

#: The weighting methods ``BayesianSCM(averaging=...)`` accepts besides ``"none"``.
WEIGHTINGS = ("pseudo-bma+", "stacking")

#: Components with a smaller weight are dropped and the others renormalised. With weight w a family
#: supplies about w * num_draws posterior draws; below 5 % that is fewer than 10 of the default 200
#: draws, too few to move an interval's end (the 5 % and 95 % quantiles) by more than a few draws'
#: worth, while each kept family costs a fit and, for a nonlinear one, Monte Carlo propagation in
#: every attribution and takes away the closed-form path. 5 % is also the tail mass of the
#: reported 90 % intervals: a family the data give less weight than that is an outlier of the
#: model space at the resolution of the results. The number is a convention, not fitted to data.
WEIGHT_CUTOFF = 0.05

#: Bayesian-bootstrap replicates for pseudo-BMA+ (the ``loo`` package's default).
NUM_BOOTSTRAP = 1000


def _check(lpd: np.ndarray) -> np.ndarray:
    lpd = np.asarray(lpd, dtype=np.float64)
    if lpd.ndim != 2 or lpd.shape[0] < 1 or lpd.shape[1] < 1:
        raise ValueError(f"lpd must be a (rows, candidates) matrix, got shape {lpd.shape}")
    if np.isnan(lpd).any() or np.isposinf(lpd).any():
        raise ValueError("lpd must not hold NaN or +inf")
    return lpd


def _usable(lpd: np.ndarray) -> np.ndarray:
    """Candidates with finite held-out densities on every row (the others get weight 0)."""
    ok = np.isfinite(lpd).all(0)
    if not ok.any():
        raise ValueError("no candidate has finite held-out log densities")
    return ok


def pseudo_bma_plus_weights(
    lpd: np.ndarray, rng: np.random.Generator, num_bootstrap: int = NUM_BOOTSTRAP, log_prior: np.ndarray | None = None,
) -> np.ndarray:
    r"""Pseudo-BMA+ weights: ``exp(elpd_k)`` normalised, averaged over Bayesian-bootstrap replicates.

    Replicate b draws Dirichlet(1, ..., 1) row weights :math:`\alpha^{(b)}`, sets
    :math:`\mathrm{elpd}^{(b)}_k = n \sum_i \alpha^{(b)}_i\,\mathrm{lpd}_{ik}` and softmaxes over
    k; the weights are the mean over replicates. The same row weights serve every candidate, so
    the result does not depend on the candidates' order.

    Parameters
    ----------
    lpd : ndarray, shape (n, K)
        Pointwise held-out log predictive densities; a column with a non-finite entry (a
        candidate that could not be fitted) gets weight 0.
    rng : numpy.random.Generator
        Source of the bootstrap weights.
    num_bootstrap : int
        Replicates.
    log_prior : ndarray, shape (K,), optional
        Log prior weights of the candidates, added to every replicate's elpd before the softmax
        (``w_k ∝ prior_k exp(elpd_k)``; used to weight graphs, :mod:`bayesrca.ensemble`); a
        candidate with prior 0 (``-inf``) gets weight 0. None: equal priors.

    Returns
    -------
    ndarray, shape (K,)
        Non-negative weights summing to 1.
    """
    lpd = _check(lpd)
    ok = _usable(lpd)
    if log_prior is not None:
        log_prior = np.asarray(log_prior, dtype=np.float64)
        if log_prior.shape != (lpd.shape[1],) or np.isnan(log_prior).any() or np.isposinf(log_prior).any():
            raise ValueError(f"log_prior must be {lpd.shape[1]} log weights (no NaN or +inf), got {log_prior!r}")
        ok &= np.isfinite(log_prior)
        if not ok.any():
            raise ValueError("no candidate has both a positive prior and finite held-out log densities")
    n = lpd.shape[0]
    alpha = rng.dirichlet(np.ones(n), size=num_bootstrap)  # (B, n)
    elpd = n * alpha @ lpd[:, ok]  # (B, K_ok)
    if log_prior is not None:
        elpd = elpd + log_prior[ok]
    elpd -= elpd.max(1, keepdims=True)
    w = np.exp(elpd)
    w /= w.sum(1, keepdims=True)
    out = np.zeros(lpd.shape[1])
    out[ok] = w.mean(0)
    return out / out.sum()


def stacking_weights(lpd: np.ndarray, *, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    r"""Stacking weights: maximise :math:`\sum_i \log \sum_k w_k p_k(y_i)` over the simplex.

    The objective is concave in w; the EM fixed point for mixing proportions,
    :math:`w_k \leftarrow w_k\,\frac1n \sum_i p_{ik} / \sum_j w_j p_{ij}`, increases it at every
    step and converges to the maximum. It starts from equal weights, so the result does not
    depend on the candidates' order.

    Parameters
    ----------
    lpd : ndarray, shape (n, K)
        Pointwise held-out log predictive densities (non-finite columns get weight 0).
    tol : float
        Stop when no weight moves by more than this.
    max_iter : int
        Iteration cap.

    Returns
    -------
    ndarray, shape (K,)
        Non-negative weights summing to 1.
    """
    lpd = _check(lpd)
    ok = _usable(lpd)
    sub = lpd[:, ok]
    dens = np.exp(sub - sub.max(1, keepdims=True))  # rows rescaled: the maximiser is unchanged
    w = np.full(sub.shape[1], 1.0 / sub.shape[1])
    for _ in range(max_iter):
        new = w * (dens / (dens @ w)[:, None]).mean(0)
        new /= new.sum()
        done = np.abs(new - w).max() < tol
        w = new
        if done:
            break
    out = np.zeros(lpd.shape[1])
    out[ok] = w
    return out


def model_weights(lpd: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
    """Weights by ``method`` (one of :data:`WEIGHTINGS`); see the module docstring."""
    if method == "pseudo-bma+":
        return pseudo_bma_plus_weights(lpd, rng)
    if method == "stacking":
        return stacking_weights(lpd)
    raise ValueError(f"unknown weighting {method!r}; choose one of {WEIGHTINGS}")


def trim_weights(weights: np.ndarray, cutoff: float = WEIGHT_CUTOFF) -> np.ndarray:
    """Zero the weights below ``cutoff`` and renormalise (the largest weight is always kept).

    Parameters
    ----------
    weights : ndarray, shape (K,)
        Non-negative weights summing to 1.
    cutoff : float
        Smallest weight kept, :data:`WEIGHT_CUTOFF` by default.

    Returns
    -------
    ndarray, shape (K,)
        The trimmed weights, summing to 1.
    """
    w = np.asarray(weights, dtype=np.float64)
    keep = (w >= cutoff) | (w == w.max())
    out = np.where(keep, w, 0.0)
    return out / out.sum()
