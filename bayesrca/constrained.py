"""Sign-constrained regression posteriors (the call-graph priors of :class:`~bayesrca.mechanisms.LinearANM`).

A sign constraint restricts some coefficients of the standardised regression of
:mod:`bayesrca.inference` to ``>= 0`` (sign ``+1``) or ``<= 0`` (sign ``-1``); sign ``0`` leaves
a coefficient free. The prior is the one of :mod:`bayesrca.inference` truncated to that orthant
(``coef | sigma2 ~ Normal(0, sigma2 * g)`` per coefficient, ``sigma2 ~ InverseGamma(A0, B0)``).
The orthant's prior mass, ``2^-k``, does not depend on ``sigma2``, so the posterior is the
unconstrained Normal-Inverse-Gamma posterior restricted to the orthant.

* Gaussian noise (:func:`conjugate_posterior`): exact draws by rejection where the unconstrained
  posterior puts enough mass in the orthant, then :data:`GIBBS_SWEEPS` sweeps of a Gibbs sampler
  over ``sigma2`` and each coefficient (univariate truncated normals by the inverse CDF in log
  space, :func:`positive_normal`), all draws at once. The Gibbs kernel leaves the posterior
  invariant, so draws that start exact stay exact and the others converge to it.
* Bootstrap noise (:func:`sign_constrained_solve`): each draw's Dirichlet-weighted least squares
  solved under the constraint by coordinate descent to a tolerance.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import pyro.distributions as dist

from ._warnings import user_stacklevel
from .exceptions import ConvergenceWarning

__all__ = ["GIBBS_SWEEPS", "REJECTION_TRIES", "ndtri_exp", "positive_normal", "conjugate_posterior",
           "sign_constrained_solve"]

#: Gibbs sweeps (``sigma2``, then every coefficient in turn) run on every draw.
GIBBS_SWEEPS = 100
#: Unconstrained candidates tried per draw for an exact start (rejection sampling).
REJECTION_TRIES = 32
#: Coordinate descent of :func:`sign_constrained_solve`: relative tolerance and the most sweeps.
SOLVE_TOL = 1e-10
SOLVE_MAX_SWEEPS = 20_000
#: Standardised bounds beyond this use the exponential tail in :func:`positive_normal` (log_ndtr overflows far out).
FAR_TAIL = 1e3


def ndtri_exp(log_p: torch.Tensor) -> torch.Tensor:
    """The standard normal quantile of ``exp(log_p)`` for ``log_p <= log(1/2)``, stable far in the tail.

    ``torch.special.ndtri(exp(log_p))`` where ``exp(log_p)`` is a normal float, refined by Newton
    steps on ``log_ndtr(z) = log_p`` (which also serve ``log_p`` below the smallest float, started
    from the asymptotic quantile ``-sqrt(-2 log_p - log(-4 pi log_p))``).
    """
    tiny = torch.finfo(log_p.dtype).tiny
    p = torch.exp(log_p)
    asym = -torch.sqrt(torch.clamp(-2 * log_p - torch.log(torch.clamp(-4 * math.pi * log_p, min=1e-300)), min=0.0))
    z = torch.where(p > tiny * 1e10, torch.special.ndtri(torch.clamp(p, min=tiny)), asym)
    for _ in range(4):
        log_cdf = torch.special.log_ndtr(z)
        log_pdf = -0.5 * z * z - 0.5 * math.log(2 * math.pi)
        # d log_ndtr / dz = pdf / cdf; Newton on the log keeps the far tail well conditioned
        step = (log_cdf - log_p) / torch.exp(log_pdf - log_cdf)
        z = z - step
    return z


def positive_normal(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Draws of ``Normal(mean, std)`` truncated to ``[0, inf)``, by the inverse CDF in log space.

    With ``a = -mean / std`` the standardised bound, a draw is ``mean + std * z`` where ``z`` is
    the standard normal truncated to ``[a, inf)``: ``z = -ndtri(u * Phi(-a))`` computed from
    ``log u + log_ndtr(-a)`` (:func:`ndtri_exp`), so a bound many standard deviations out (a
    posterior far on the wrong side of the constraint) still gives draws just above it; beyond
    :data:`FAR_TAIL` standard deviations, ``z = a - log(u) / a`` (the exponential tail).
    """
    u = torch.rand_like(mean).clamp(min=torch.finfo(mean.dtype).tiny)
    a = -mean / std
    # upper-tail form: P(Z > z) = u * P(Z > a); symmetric, exact for any a
    log_q = torch.log(u) + torch.special.log_ndtr(-a)
    z = -ndtri_exp(torch.clamp(log_q, max=math.log(0.5)))
    # where the bound is far below the mean (q > 1/2) the lower-tail form is the accurate one
    lower = torch.special.ndtri(torch.special.ndtr(a) + (1 - u) * torch.special.ndtr(-a))
    z = torch.where(log_q > math.log(0.5), lower, z)
    # beyond FAR_TAIL sd the tail above a is exponential to a relative error of 1/a^2: P(Z > a + t | Z > a) = exp(-a t)
    z = torch.where(a > FAR_TAIL, a - torch.log(u) / a.clamp(min=FAR_TAIL), z)
    return torch.clamp(mean + std * torch.maximum(z, a), min=0.0)


def _truncated(mean: torch.Tensor, std: torch.Tensor, sign: int) -> torch.Tensor:
    if sign == 0:
        return mean + std * torch.randn_like(mean)
    return sign * positive_normal(sign * mean, std)


def conjugate_posterior(
    X: torch.Tensor, y: torch.Tensor, num_draws: int, signs: torch.Tensor, *, g: float,
    a0: float, b0: float, sweeps: int = GIBBS_SWEEPS, tries: int = REJECTION_TRIES,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Posterior draws of ``coef`` (D, F) and ``sigma`` (D,) of the Gaussian regression under ``signs``.

    Parameters
    ----------
    X, y : torch.Tensor
        Design ``(n, F)`` and response ``(n,)`` on the standardised scale.
    num_draws : int
        D.
    signs : torch.Tensor, shape (F,)
        ``+1``, ``-1`` or ``0`` (free) per column of ``X``.
    g, a0, b0 : float
        The prior (:data:`bayesrca.inference.PRIOR`).
    sweeps : int
        Gibbs sweeps per draw.
    tries : int
        Unconstrained candidates per draw for an exact start.

    Returns
    -------
    draws : dict
        ``coef`` and ``sigma``.
    info : dict
        ``inference`` ("conjugate+gibbs"), ``gibbs_sweeps`` and ``exact_start_fraction`` (the
        share of draws that started from an exact rejection draw).
    """
    n, num_features = X.shape
    gram = X.T @ X
    xty = X.T @ y
    yty = y @ y
    precision = gram + torch.eye(num_features, dtype=X.dtype) / g
    chol = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve(xty.unsqueeze(-1), chol).squeeze(-1)
    a_n = a0 + n / 2
    b_n = torch.clamp(b0 + 0.5 * (yty - mean @ (precision @ mean)), min=1e-12)
    # exact start: the first of `tries` unconstrained draws that lands in the orthant
    sigma2 = dist.InverseGamma(X.new_tensor(a_n), b_n).sample((tries, num_draws))
    eps = torch.randn(tries, num_draws, num_features, dtype=X.dtype)
    z = torch.linalg.solve_triangular(chol.T, eps.unsqueeze(-1), upper=True).squeeze(-1)
    cand = mean + sigma2.sqrt().unsqueeze(-1) * z  # (tries, D, F)
    ok = ((cand * signs) >= 0).all(-1)  # (tries, D)
    first = torch.where(ok.any(0), ok.float().argmax(0), torch.zeros(num_draws, dtype=torch.long))
    coef = cand[first, torch.arange(num_draws)]
    sigma2 = sigma2[first, torch.arange(num_draws)]
    exact = ok.any(0)
    coef = torch.where(signs > 0, coef.clamp(min=0), torch.where(signs < 0, coef.clamp(max=0), coef))
    diag = torch.diagonal(precision)
    sign_list = [int(s) for s in signs.tolist()]
    a_gibbs = a0 + n / 2 + num_features / 2
    for _ in range(sweeps):
        rss = yty - 2 * coef @ xty + ((coef @ gram) * coef).sum(-1)
        rate = torch.clamp(b0 + 0.5 * (rss + (coef * coef).sum(-1) / g), min=1e-12)
        sigma2 = dist.InverseGamma(X.new_tensor(a_gibbs), rate).sample()
        for j, sign in enumerate(sign_list):
            # coef_j | rest ~ Normal(mean_j - sum_{k != j} P_jk (coef_k - mean_k) / P_jj, sigma2 / P_jj)
            offset = (coef - mean) @ precision[j] - diag[j] * (coef[:, j] - mean[j])
            cond_mean = mean[j] - offset / diag[j]
            coef[:, j] = _truncated(cond_mean, (sigma2 / diag[j]).sqrt(), sign)
    info = {"inference": "conjugate+gibbs", "exact": True, "gibbs_sweeps": sweeps,
            "exact_start_fraction": float(exact.double().mean())}
    return {"coef": coef, "sigma": sigma2.sqrt()}, info


def sign_constrained_solve(
    gram: torch.Tensor, rhs: torch.Tensor, signs: torch.Tensor, *, tol: float = SOLVE_TOL,
    max_sweeps: int = SOLVE_MAX_SWEEPS, node: str = "",
) -> torch.Tensor:
    """Minimise ``b^T G b / 2 - r^T b`` subject to ``sign_j * b_j >= 0`` for each batch of ``(G, r)``.

    Coordinate descent, started from the unconstrained solution moved into the orthant, until no
    coefficient moves by more than ``tol`` times the largest (a :class:`ConvergenceWarning`
    after ``max_sweeps`` sweeps). Each problem is strictly convex (``G`` positive definite), so
    the minimiser is unique and coordinate descent converges to it.

    Parameters
    ----------
    gram : torch.Tensor, shape (D, F, F)
    rhs : torch.Tensor, shape (D, F)
    signs : torch.Tensor, shape (F,)

    Returns
    -------
    torch.Tensor, shape (D, F)
    """
    coef = torch.linalg.solve(gram, rhs)
    coef = torch.where(signs > 0, coef.clamp(min=0), torch.where(signs < 0, coef.clamp(max=0), coef))
    diag = torch.diagonal(gram, dim1=-2, dim2=-1)  # (D, F)
    sign_list = [int(s) for s in signs.tolist()]
    for _ in range(max_sweeps):
        old = coef.clone()
        for j, sign in enumerate(sign_list):
            grad_j = (gram[:, j] * coef).sum(-1) - rhs[:, j]
            value = coef[:, j] - grad_j / diag[:, j]
            coef[:, j] = value if sign == 0 else (value.clamp(min=0) if sign > 0 else value.clamp(max=0))
        change = float((coef - old).abs().max())
        if change <= tol * max(1.0, float(coef.abs().max())):
            return coef
    warnings.warn(
        f"node {node!r}: the sign-constrained least squares did not converge in {max_sweeps} sweeps "
        f"(last change {change:.2e}); the parents are nearly collinear",
        ConvergenceWarning, stacklevel=user_stacklevel(),
    )
    return coef
