"""Did a mechanism change? Exact Bayes factors of "separate mechanisms" against "one shared mechanism".

Step 1 of :func:`~bayesrca.attribution.distribution_change` (see :mod:`bayesrca.attribution.change`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np
import pandas as pd

from .. import inference
from ..mechanisms import Mechanism

__all__ = ["change_log_bayes_factor", "expit"]


def change_log_bayes_factor(mech: Mechanism, old: pd.DataFrame, new: pd.DataFrame, node: Hashable,
                            parents: tuple) -> float:
    r"""Log Bayes factor of "separate mechanisms for old and new data" against "one shared mechanism".

    Both hypotheses are the conjugate Gaussian regression of :mod:`bayesrca.inference` (prior
    :math:`\sigma^2 \sim IG(a_0, b_0)`, coefficients :math:`\sim N(0, \sigma^2 g)` with the
    mechanism's ``prior_g``) on the mechanism's own feature map of the parents (linear: the parents;
    spline: its basis; root: the intercept only), on the scale standardised over the pooled data, so
    both marginal likelihoods are exact and comparable:
    :math:`\log BF = \log p(y_{old}) + \log p(y_{new}) - \log p(y_{old}, y_{new})`.
    It detects changes of the regression function and of the noise scale (a Gaussian working model:
    a change of the noise's shape alone at equal mean and variance is not seen).

    Returns
    -------
    float
        The log Bayes factor (``-inf`` when the node is constant over the pooled data).
    """
    def design(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        y = frame[node].to_numpy(dtype=np.float64)
        pa = frame[list(parents)].to_numpy(dtype=np.float64).reshape(len(y), len(parents))
        return mech.design(y, pa)

    (f_old, y_old), (f_new, y_new) = design(old), design(new)
    feats, y = np.vstack([f_old, f_new]), np.concatenate([y_old, y_new])
    center, scale = y.mean(), y.std()
    if not scale > 1e-12 * max(1.0, abs(center)):
        return -math.inf
    f_center, f_scale = feats.mean(0), feats.std(0)
    live = f_scale > 1e-12 * np.maximum(1.0, np.abs(f_center))

    def standard(f: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.column_stack([np.ones(len(t)), (f[:, live] - f_center[live]) / f_scale[live]]), (t - center) / scale

    g = float(getattr(mech, "prior_g", inference.PRIOR["g"]))
    split = _log_evidence(*standard(f_old, y_old), g) + _log_evidence(*standard(f_new, y_new), g)
    return float(split - _log_evidence(*standard(feats, y), g))


def expit(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))`` elementwise, exactly as ``scipy.special.expit``.

    ``math.exp`` is the C library's ``exp``, as in scipy; numpy's and torch's vectorised ``exp``
    differ from it in the last bit for some inputs.
    """
    def one(v: float) -> float:
        try:
            return 1.0 / (1.0 + math.exp(-v))
        except OverflowError:  # exp(-v) beyond the float range: the limit 0
            return 0.0

    return np.array([one(float(v)) for v in np.asarray(x, dtype=np.float64).reshape(-1)]).reshape(np.shape(x))


def _log_evidence(X: np.ndarray, y: np.ndarray, g: float) -> float:
    """Exact log marginal likelihood of the Normal-Inverse-Gamma regression of :mod:`bayesrca.inference`."""
    n, f = X.shape
    a0, b0 = inference.PRIOR["a0"], inference.PRIOR["b0"]
    precision = X.T @ X + np.eye(f) / g
    chol = np.linalg.cholesky(precision)
    mean = np.linalg.solve(precision, X.T @ y)
    a_n = a0 + n / 2
    b_n = max(b0 + 0.5 * (y @ y - mean @ (precision @ mean)), 1e-300)
    return float(-0.5 * n * math.log(2 * math.pi) - 0.5 * f * math.log(g) - np.log(np.diag(chol)).sum()
                 + a0 * math.log(b0) - a_n * math.log(b_n) + math.lgamma(a_n) - math.lgamma(a0))
