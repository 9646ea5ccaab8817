"""Posterior inference for regression-type mechanisms on a standardised scale.

All engines take a design matrix ``X`` (n, F) whose first column is the intercept and a
standardised response ``y`` (n,), and return posterior draws as a dict of tensors with leading
dimension D (the number of draws) plus a diagnostics dict:

* ``conjugate``: exact Normal-Inverse-Gamma posterior (Gaussian noise);
* ``bootstrap``: Rubin's Bayesian bootstrap (Dirichlet weights) for the coefficients and the
  residual distribution (non-parametric noise, no MCMC), optionally with generalised Pareto
  tails whose (shape, scale) posterior is computed on a grid;
* ``nuts`` / ``svi``: the same Pyro regression model run with NUTS or with SVI and an
  ``AutoMultivariateNormal`` guide (Gaussian or Student-t noise).

The prior, shared by the conjugate path and the Pyro model so that they agree exactly, is
``sigma2 ~ InverseGamma(A0, B0)`` and ``coef | sigma2 ~ Normal(0, sigma2 * g)`` per coefficient.
``g`` (default ``PRIOR["g"]``) is set per mechanism family: a flexible basis (splines) needs the
shrinkage, a linear mechanism gets a vague prior (``VAGUE_G``) so that an exact relation among
strongly collinear parents (profit = revenue - cost) is not biased by the ridge.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch

from ._warnings import user_stacklevel
from .threads import torch_threads
from .exceptions import ConvergenceWarning

__all__ = ["PRIOR", "VAGUE_G", "SCALE_KEYS", "regression_model", "conjugate_posterior", "conjugate_log_evidence",
           "residual_kde", "bootstrap_posterior", "mcmc_posterior", "svi_posterior",
           "chain_diagnostics"]

#: Weakly informative prior on the standardised scale (unit-variance response and features).
PRIOR = {"a0": 2.0, "b0": 1.0, "g": 100.0, "df_rate": 0.1}
#: Coefficient prior scale of linear mechanisms: practically flat on the standardised scale.
VAGUE_G = 1e6

RHAT_MAX = 1.01
ESS_MIN = 100.0


def _one_thread():
    """NUTS and SVI run many tiny tensor ops, for which thread hand-offs cost more than they give."""
    return torch_threads(1)


def regression_model(
    X: torch.Tensor, y: torch.Tensor | None = None, noise: str = "gaussian", g: float = PRIOR["g"]
) -> None:
    """Pyro model of a Bayesian regression with Gaussian or Student-t noise (standardised scale)."""
    n, num_features = X.shape
    sigma2 = pyro.sample("sigma2", dist.InverseGamma(X.new_tensor(PRIOR["a0"]), X.new_tensor(PRIOR["b0"])))
    coef = pyro.sample(
        "coef", dist.Normal(X.new_zeros(num_features), (sigma2 * g).sqrt()).to_event(1)
    )
    loc = X @ coef
    if noise == "gaussian":
        likelihood = dist.Normal(loc, sigma2.sqrt())
    elif noise == "student_t":
        df = pyro.sample("df", dist.Gamma(X.new_tensor(2.0), X.new_tensor(PRIOR["df_rate"])))
        likelihood = dist.StudentT(df, loc, sigma2.sqrt())
    else:  # pragma: no cover - guarded by the mechanisms
        raise ValueError(f"unknown noise {noise!r}")
    with pyro.plate("data", n):
        pyro.sample("y", likelihood, obs=y)


def conjugate_posterior(
    X: torch.Tensor, y: torch.Tensor, num_draws: int, *, g: float = PRIOR["g"],
    gram: torch.Tensor | None = None, xty: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Exact Normal-Inverse-Gamma posterior draws of ``coef`` (D, F) and ``sigma`` (D,).

    ``gram`` (``X^T X``) and ``xty`` (``X^T y``) may be passed when the caller has them (a grid
    of hyperparameters scores every design's sufficient statistics first); only ``X``'s shape
    is then read.
    """
    n, num_features = X.shape
    precision0 = torch.eye(num_features, dtype=X.dtype) / g
    precision = precision0 + (X.T @ X if gram is None else gram)
    chol_prec = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve((X.T @ y if xty is None else xty).unsqueeze(-1), chol_prec).squeeze(-1)
    a_n = PRIOR["a0"] + n / 2
    b_n = PRIOR["b0"] + 0.5 * (y @ y - mean @ (precision @ mean))
    b_n = torch.clamp(b_n, min=1e-12)
    sigma2 = dist.InverseGamma(X.new_tensor(a_n), b_n).sample((num_draws,))
    # coef | sigma2 ~ N(mean, sigma2 * precision^-1): solve L^T z = eps with L = chol(precision)
    eps = torch.randn(num_draws, num_features, dtype=X.dtype)
    z = torch.linalg.solve_triangular(chol_prec.T, eps.T, upper=True).T
    coef = mean + sigma2.sqrt().unsqueeze(-1) * z
    return {"coef": coef, "sigma": sigma2.sqrt()}, {"inference": "conjugate", "exact": True}


def conjugate_log_evidence(
    gram: torch.Tensor, xty: torch.Tensor, yty: torch.Tensor | float, n: int, *, g: float = PRIOR["g"]
) -> torch.Tensor:
    """Exact log marginal likelihood ``log p(y)`` of the Normal-Inverse-Gamma regression.

    The model of :func:`conjugate_posterior` (prior ``sigma2 ~ IG(A0, B0)``, ``coef | sigma2 ~
    N(0, sigma2 * g)``), from the sufficient statistics, batched over leading dimensions: many
    designs (e.g. one per hyperparameter value) are scored at once.

    Parameters
    ----------
    gram : torch.Tensor, shape (..., F, F)
        ``X^T X``.
    xty : torch.Tensor, shape (..., F)
        ``X^T y``.
    yty : torch.Tensor or float
        ``y^T y``.
    n : int
        Number of rows.
    g : float
        Prior variance of every coefficient relative to ``sigma2``.

    Returns
    -------
    torch.Tensor, shape (...)
        The log evidence of each design.
    """
    num_features = gram.shape[-1]
    precision = gram + torch.eye(num_features, dtype=gram.dtype) / g
    chol = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve(xty.unsqueeze(-1), chol).squeeze(-1)
    a0, b0 = PRIOR["a0"], PRIOR["b0"]
    a_n = a0 + n / 2
    b_n = torch.clamp(b0 + 0.5 * (yty - (mean * xty).sum(-1)), min=1e-300)
    log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return (-0.5 * n * math.log(2 * math.pi) - 0.5 * num_features * math.log(g) - log_det
            + a0 * math.log(b0) - a_n * torch.log(b_n) + math.lgamma(a_n) - math.lgamma(a0))


def bootstrap_posterior(
    X: torch.Tensor, y: torch.Tensor, num_draws: int, *, num_atoms: int = 1000, g: float = PRIOR["g"],
    gpd_tails: bool = False, signs: torch.Tensor | None = None, node: str = "",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Bayesian bootstrap: Dirichlet-weighted least squares and a residual KDE per draw.

    With ``signs`` (``+1``, ``-1`` or ``0`` per column of ``X``) each draw's least squares is
    solved under those sign constraints (:func:`bayesrca.constrained.sign_constrained_solve`).

    Returns ``coef`` (D, F), ``atoms`` (D, K) and ``bandwidth`` (D,). The KDE bandwidth is
    Silverman's rule on each draw's atoms, with the training size n in the rate ``n^(-1/5)``.
    With ``gpd_tails`` it also returns the generalised Pareto tails of
    :class:`~bayesrca.mechanisms.noise.BootstrapGPD` (see :func:`bayesrca.mechanisms.gpd.gpd_tail_draws`),
    or none (plain KDE noise, ``diagnostics["tails"] == "kde"``) when the residuals are too few or
    tied at the thresholds (:data:`bayesrca.mechanisms.gpd.MIN_TAIL_COUNT`,
    :data:`bayesrca.mechanisms.gpd.MIN_BODY_RATIO`).
    """
    n, num_features = X.shape
    weights = torch.distributions.Exponential(X.new_ones(())).sample((num_draws, n))
    weights = weights / weights.sum(-1, keepdim=True)
    gram = torch.einsum("dn,nf,ng->dfg", weights, X, X) + torch.eye(num_features, dtype=X.dtype) / (g * n)
    rhs = torch.einsum("dn,nf,n->df", weights, X, y)
    if signs is None:
        coef = torch.linalg.solve(gram, rhs)
    else:
        from .constrained import sign_constrained_solve

        coef = sign_constrained_solve(gram, rhs, signs, node=node)
    residuals = y - coef @ X.T  # (D, n)
    atoms, bandwidth = residual_kde(residuals, weights, num_atoms=num_atoms)
    draws = {"coef": coef, "atoms": atoms, "bandwidth": bandwidth}
    info: dict[str, Any] = {"inference": "bootstrap", "exact": True}
    if gpd_tails:
        from .mechanisms.gpd import attach_gpd_tails  # here: mechanisms import this module

        attach_gpd_tails(draws, info, residuals, weights, y - coef.mean(0) @ X.T)
    return draws, info


def residual_kde(
    residuals: torch.Tensor, weights: torch.Tensor, *, num_atoms: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Atoms and bandwidth of the smoothed Bayesian-bootstrap noise of each draw.

    Parameters
    ----------
    residuals : torch.Tensor, shape (D, n)
        Each draw's residuals.
    weights : torch.Tensor, shape (D, n)
        Each draw's Dirichlet weights of the rows.
    num_atoms : int
        Atoms kept per draw (at most n), resampled with the weights.

    Returns
    -------
    atoms : torch.Tensor, shape (D, K)
    bandwidth : torch.Tensor, shape (D,)
        Silverman's rule on each draw's atoms, with the training size n in the rate ``n^(-1/5)``.
    """
    n = residuals.shape[-1]
    k = min(num_atoms, n)
    idx = torch.multinomial(weights, k, replacement=True)
    atoms = torch.gather(residuals, 1, idx)
    q = torch.quantile(atoms, residuals.new_tensor([0.25, 0.75]), dim=-1)
    spread = torch.minimum(atoms.std(-1), (q[1] - q[0]) / 1.349)
    spread = torch.where(spread > 0, spread, atoms.std(-1))
    bandwidth = 0.9 * spread * n ** (-0.2)
    bandwidth = torch.clamp(bandwidth, min=1e-6)
    return atoms, bandwidth


#: Noise parameters measured in the response's units (rescaled from the standardised scale).
SCALE_KEYS = ("sigma", "atoms", "bandwidth", "lower", "upper", "scale_lower", "scale_upper")


def _pack(samples: dict[str, torch.Tensor], noise: str) -> dict[str, torch.Tensor]:
    out = {"coef": samples["coef"], "sigma": samples["sigma2"].sqrt()}
    if noise == "student_t":
        out["df"] = samples["df"]
    return out


def chain_diagnostics(draws: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat and bulk ESS per parameter (Vehtari et al. 2021).

    Computed with Pyro's :func:`pyro.ops.stats.gelman_rubin` and
    :func:`pyro.ops.stats.effective_sample_size` on the rank-normalised split chains, so the
    diagnostics do not depend on the arviz version (0.x and 1.x differ in their API).

    Parameters
    ----------
    draws : torch.Tensor, shape (S, P) or (C, S, P)
        ``S`` successive draws of ``P`` parameters from one chain, or from each of ``C`` chains.

    Returns
    -------
    tuple of ndarray
        ``(r_hat, ess_bulk)``, each of shape ``(P,)``. Every chain is split in halves (the middle
        draw of an odd chain is dropped), all draws are replaced by the normal scores of their
        pooled ranks, and R-hat and ESS are computed on the ``2C`` half chains. A parameter that
        is constant gets R-hat 1 and ESS ``C * S``; with fewer than 4 draws per chain both are NaN
        (not enough draws to judge).
    """
    from pyro.ops.stats import effective_sample_size, gelman_rubin

    draws = torch.as_tensor(draws, dtype=torch.float64)
    if draws.dim() == 2:
        draws = draws.unsqueeze(0)
    draws = draws.reshape(draws.shape[0], draws.shape[1], -1)  # (C, S, P)
    num_chains, num_draws = draws.shape[:2]
    half = num_draws // 2
    if half < 2:
        nan = np.full(draws.shape[-1], np.nan)
        return nan, nan.copy()
    split = torch.cat([draws[:, :half], draws[:, num_draws - half :]])  # (2C, half, P)
    pooled = split.reshape(-1, split.shape[-1]).numpy()
    ranks = pd.DataFrame(pooled).rank(method="average").to_numpy()
    z = torch.special.ndtri(torch.as_tensor((ranks - 0.375) / (len(pooled) + 0.25))).reshape(split.shape)
    r_hat = gelman_rubin(z).numpy()
    ess = effective_sample_size(z).numpy()
    constant = pooled.std(0) <= 1e-12 * np.maximum(1.0, np.abs(pooled).max(0))
    r_hat = np.where(constant, 1.0, r_hat)
    ess = np.where(constant, float(num_chains * num_draws), ess)
    return r_hat.astype(np.float64), ess.astype(np.float64)


def _diagnose(chains: list[dict[str, torch.Tensor]], node: str) -> dict[str, Any]:
    draws = torch.cat([torch.stack([c[k] for c in chains]).reshape(len(chains), len(chains[0][k]), -1)
                       for k in chains[0]], dim=-1)  # (C, S, all parameters)
    r_hat, ess_bulk = chain_diagnostics(draws)
    rhat, ess = float(np.max(r_hat)), float(np.min(ess_bulk))
    num_draws = sum(len(next(iter(c.values()))) for c in chains)
    ess_min = min(ESS_MIN, num_draws / 2)
    if np.isfinite(rhat) and np.isfinite(ess) and not (rhat <= RHAT_MAX and ess >= ess_min):
        warnings.warn(
            f"node {node!r}: NUTS did not converge well (max R-hat {rhat:.3f}, limit {RHAT_MAX}; min bulk ESS "
            f"{ess:.0f}, limit {ess_min:.0f}); raise num_warmup / num_draws or choose another mechanism",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return {"rhat_max": rhat, "ess_min": ess}


def mcmc_posterior(
    X: torch.Tensor,
    y: torch.Tensor,
    num_draws: int,
    *,
    noise: str = "gaussian",
    num_chains: int = 2,
    num_warmup: int = 300,
    node: str = "",
    progress: bool = False,
    g: float = PRIOR["g"],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """NUTS draws from :func:`regression_model`; chains run one after the other in-process."""
    from pyro.infer import MCMC, NUTS

    per_chain = math.ceil(num_draws / num_chains)
    chains = []
    with _one_thread():
        for _ in range(num_chains):
            kernel = NUTS(regression_model, jit_compile=False, target_accept_prob=0.85)
            mcmc = MCMC(kernel, num_samples=per_chain, warmup_steps=num_warmup, disable_progbar=not progress)
            mcmc.run(X, y, noise, g)
            chains.append({k: v.detach() for k, v in mcmc.get_samples().items()})
    diagnostics = {"inference": "nuts", "num_chains": num_chains, **_diagnose(chains, node)}
    merged = {k: torch.cat([c[k] for c in chains])[:num_draws] for k in chains[0]}
    return _pack(merged, noise), diagnostics


def svi_posterior(
    X: torch.Tensor,
    y: torch.Tensor,
    num_draws: int,
    *,
    noise: str = "gaussian",
    num_steps: int = 2000,
    learning_rate: float = 0.02,
    node: str = "",
    progress: bool = False,
    g: float = PRIOR["g"],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """SVI with an ``AutoMultivariateNormal`` guide; returns guide draws and the ELBO trace."""
    from pyro.infer import SVI, Predictive, Trace_ELBO
    from pyro.infer.autoguide import AutoMultivariateNormal
    from pyro.infer.autoguide.initialization import init_to_mean
    from pyro.optim import ClippedAdam

    # a scope of its own: guide parameters never touch (or are warm-started from) the caller's param store
    with pyro.get_param_store().scope(), _one_thread():
        # start at the prior mean (coef 0, sigma2 1): a draw from a vague prior can start far away
        guide = AutoMultivariateNormal(regression_model, init_loc_fn=init_to_mean)
        svi = SVI(regression_model, guide, ClippedAdam({"lr": learning_rate, "lrd": 0.1 ** (1 / num_steps)}), Trace_ELBO())
        losses = np.empty(num_steps)
        for step in range(num_steps):
            losses[step] = svi.step(X, y, noise, g)
        tail = max(num_steps // 10, 10)
        last, prev = losses[-tail:].mean(), losses[-2 * tail : -tail].mean()
        rel_change = float(abs(last - prev) / max(abs(last), 1.0))
        if rel_change > 1e-3:
            warnings.warn(
                f"node {node!r}: SVI's ELBO still moved by {rel_change:.2e} (relative) over the last "
                f"{tail} steps; raise num_steps or use inference='nuts'",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        with torch.no_grad():
            draws = Predictive(guide, num_samples=num_draws)(X, None, noise, g)
    draws = {k: v.detach().reshape(num_draws, -1) for k, v in draws.items()}
    draws = {k: v.squeeze(-1) if k != "coef" else v.reshape(num_draws, -1) for k, v in draws.items()}
    diagnostics = {"inference": "svi", "elbo_final": float(last), "elbo_rel_change": rel_change, "elbo": losses}
    return _pack(draws, noise), diagnostics
