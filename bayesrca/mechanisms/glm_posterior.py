"""Posterior draws for the discrete mechanisms' GLM coefficients: Laplace or NUTS, with diagnostics.

Both engines take the log posterior of the flattened coefficient vector ``theta`` and return
``(draws, info)``: draws of shape ``(num_draws, dim)`` and a diagnostics dict stored as the
mechanism's ``diagnostics_``.

The NUTS engine reports, per parameter, the rank-normalised split R-hat and the bulk effective
sample size of Vehtari et al. (2021), from :func:`bayesrca.inference.chain_diagnostics` (the
same function the continuous mechanisms' NUTS path uses), and warns with :class:`~bayesrca.exceptions.ConvergenceWarning` when
the largest R-hat exceeds :data:`bayesrca.inference.RHAT_MAX` or the smallest bulk ESS is below
``min(ESS_MIN, num_draws / 2)``, the limits the continuous mechanisms' NUTS path uses.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .._warnings import user_stacklevel
from ..exceptions import ConvergenceWarning
from ..inference import ESS_MIN, RHAT_MAX, chain_diagnostics

__all__ = ["laplace_draws", "nuts_draws", "chain_diagnostics"]

LogPosterior = Callable[[torch.Tensor], torch.Tensor]


def laplace_draws(log_post: LogPosterior, dim: int, num_draws: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Draws from the Laplace approximation at the mode of a concave log posterior (Newton)."""
    theta = torch.zeros(dim, dtype=torch.float64)
    value = log_post(theta)
    for _ in range(100):
        grad = torch.autograd.functional.jacobian(log_post, theta)
        hess = torch.autograd.functional.hessian(log_post, theta)
        step = torch.linalg.solve(-hess + 1e-10 * torch.eye(dim, dtype=torch.float64), grad)
        scale = 1.0
        while scale > 1e-8:
            new = theta + scale * step
            new_value = log_post(new)
            if torch.isfinite(new_value) and new_value >= value - 1e-12:
                break
            scale /= 2
        converged = bool((new - theta).abs().max() < 1e-9)
        theta, value = new, new_value
        if converged:
            break
    hess = torch.autograd.functional.hessian(log_post, theta)
    chol = torch.linalg.cholesky(-hess + 1e-10 * torch.eye(dim, dtype=torch.float64))
    z = torch.randn(num_draws, dim, dtype=torch.float64)
    draws = theta + torch.linalg.solve_triangular(chol.T, z.T, upper=True).T
    return draws.detach(), {"inference": "laplace", "exact": False}


def nuts_draws(
    log_post: LogPosterior,
    names: Sequence[str],
    num_draws: int,
    num_warmup: int,
    *,
    progress: bool = False,
    node: str = "",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Draws from one NUTS chain on the same log posterior (a check of the Laplace approximation).

    Parameters
    ----------
    log_post : callable
        Log posterior of the flattened coefficient vector.
    names : sequence of str
        One name per coefficient, used in the diagnostics and the warning.
    num_draws, num_warmup : int
        Draws kept and warm-up steps.
    progress : bool
        Show Pyro's progress bar.
    node : str
        The node's name, used in the warning.

    Returns
    -------
    tuple
        Draws ``(num_draws, len(names))`` and the diagnostics: ``inference``, ``exact``,
        ``rhat_max``, ``ess_min`` (scalars, shown by :meth:`bayesrca.BayesianSCM.summary`) and
        per parameter ``parameters``, ``r_hat`` and ``ess_bulk``.
    """
    from pyro.infer import MCMC, NUTS

    def potential(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return -log_post(params["theta"])

    mcmc = MCMC(
        NUTS(potential_fn=potential),
        num_samples=num_draws,
        warmup_steps=num_warmup,
        initial_params={"theta": torch.zeros(len(names), dtype=torch.float64)},
        disable_progbar=not progress,
    )
    mcmc.run()
    draws = mcmc.get_samples()["theta"].detach()
    r_hat, ess_bulk = chain_diagnostics(draws)
    info: dict[str, Any] = {
        "inference": "nuts",
        "exact": True,
        "rhat_max": float(np.max(r_hat)),
        "ess_min": float(np.min(ess_bulk)),
        "parameters": list(names),
        "r_hat": r_hat,
        "ess_bulk": ess_bulk,
    }
    warn_if_not_converged(info, num_draws, node)
    return draws, info


def warn_if_not_converged(info: dict[str, Any], num_draws: int, node: str) -> None:
    """Warn with :class:`ConvergenceWarning` when ``rhat_max`` or ``ess_min`` in ``info`` is off limits."""
    ess_limit = min(ESS_MIN, num_draws / 2)
    rhat, ess = info["rhat_max"], info["ess_min"]
    if not (np.isfinite(rhat) and np.isfinite(ess)) or (rhat <= RHAT_MAX and ess >= ess_limit):
        return  # NaN: too few draws to judge
    names = info.get("parameters") or []
    worst = names[int(np.argmax(info["r_hat"]))] if len(names) else "?"
    warnings.warn(
        f"node {node!r}: NUTS did not converge well (max R-hat {rhat:.3f} at {worst}, limit {RHAT_MAX}; "
        f"min bulk ESS {ess:.0f}, limit {ess_limit:.0f}); raise num_warmup / num_draws or use inference='laplace'",
        ConvergenceWarning,
        stacklevel=user_stacklevel(),
    )
