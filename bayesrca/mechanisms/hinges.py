r"""Condition a mechanism's behaviour beyond its training data on extra rows (its hinge weights).

Beyond the training range of a parent, two *hinge* columns per parent, ``(z - z_max)_+`` and
``(z_min - z)_+`` (``z`` the parent in its training sd), are zero on every training row, so their
weights ``h`` keep their prior ``N(0, tau^2)``: they are the part of ``f`` the training data say
nothing about, a change of the slope beyond the data.

* :class:`~bayesrca.mechanisms.GPANM` has them in its feature map, with ``tau = hinge_sd_`` the
  sd of the process's slope (amplitude / length scale).
* :class:`~bayesrca.mechanisms.SplineANM` (linear beyond its outer knots) has them only when
  conditioned: ``tau`` per parent and draw is the sd of the draw's own slope over the training
  values (``hinge_sd_``): beyond the data the slope may change as much as it changes across the
  data (a straight fit gives ``tau`` near 0 and stays straight). The unconditioned spline keeps
  its weights at their prior mean 0, i.e. its posterior of before.

An anomaly row whose parents lie beyond the data observes exactly that part: ``x = g(pa) + a . h
+ n`` with ``a`` the row's hinge values, ``g`` the rest of the function and ``n`` the node's noise.
Given a posterior draw (``g``, ``tau``, noise sd ``sigma``) the update is conjugate (a Gaussian
working likelihood, as the function's fit uses for every noise family), and a draw of the
conditional follows from a prior draw by pathwise conditioning (Matheron's rule):

.. math::

    h' = h + T A^\top (A T A^\top + \sigma^2 I)^{-1} (r - A h - \varepsilon),
    \qquad \varepsilon \sim N(0, \sigma^2 I),\; T = \mathrm{diag}(\tau^2),

with ``A`` the rows' hinge values (K x 2p) and ``r = x - g(pa)``. ``h'`` is an exact draw of
``h | rows``: inside the training range nothing changes (the hinges are zero there), at the rows
the function moves towards the observed values as far as the prior of the slope allows, and the
abducted noise there becomes a draw of the node's noise instead of absorbing the extrapolation's
error.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

__all__ = ["beyond_data", "condition_hinges", "hinge_values"]


def hinge_values(low: torch.Tensor, high: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                 parents: torch.Tensor) -> torch.Tensor:
    """Hinge columns ``(..., 2p)`` at parents ``(..., p)``: per parent ``(z - z_high)_+, (z_low - z)_+``.

    ``z = (parent - center) / scale``; ``low`` and ``high`` are the training range on that scale.
    """
    z = (parents - center.to(parents.dtype)) / scale.to(parents.dtype)
    upper = (z - high.to(parents.dtype)).clamp(min=0)
    lower = (low.to(parents.dtype) - z).clamp(min=0)
    return torch.stack([upper, lower], -1).flatten(-2)


def _hinges_at(mech, parents: torch.Tensor) -> torch.Tensor | None:
    """The mechanism's hinge values at parent rows ``(K, p)``, or None for a mechanism without hinges."""
    if not hasattr(mech, "hinge_sd_") or getattr(mech, "constant_", False):
        return None
    family = getattr(mech, "family", None)  # by family name: gp.py and spline.py import this module
    if family == "gp":
        return hinge_values(mech.z_low_, mech.z_high_, mech.x_center_, mech.x_scale_, parents)
    if family == "spline":
        return hinge_values(mech.hinge_low_, mech.hinge_high_, mech.hinge_center_, mech.hinge_scale_, parents)
    return None


def beyond_data(mech, parents: np.ndarray) -> np.ndarray:
    """Which parent rows ``(K, p)`` lie beyond the training range of a mechanism with hinges (bool ``(K,)``).

    Those are the rows :func:`condition_hinges` would use; all False for other mechanisms (a
    :class:`~bayesrca.mechanisms.FamilyMixture`: any component's rows).
    """
    parents = np.array(parents, dtype=np.float64)  # a copy: pandas may hand out read-only views
    out = np.zeros(len(parents), dtype=bool)
    for part in getattr(mech, "components_", [mech]):
        A = _hinges_at(part, torch.as_tensor(parents))
        if A is not None:
            out |= (A.abs().sum(1) > 0).numpy() & np.isfinite(parents).all(1)
    return out


def _noise_sd(mech) -> torch.Tensor:
    params = mech.noise_params_
    return params["sigma"] if "sigma" in params else params["atoms"].std(-1)


def _matheron(h: torch.Tensor, A: torch.Tensor, tau2: torch.Tensor, sigma: torch.Tensor, resid: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
    """Draws ``(D, C)`` of ``h | rows`` from prior draws ``h`` ``(D, C)``; ``resid = x - g - A h`` ``(K, D)``."""
    eps = torch.randn(resid.shape, generator=generator, dtype=torch.float64) * sigma  # (K, D)
    at = A.unsqueeze(0) * tau2.unsqueeze(1)  # (D, K, C): A T
    S = at @ A.T + sigma.square()[:, None, None] * torch.eye(len(A), dtype=torch.float64)  # (D, K, K)
    step = torch.linalg.solve(S, (resid - eps).T.unsqueeze(-1)).squeeze(-1)  # (D, K)
    return h + (step.unsqueeze(-1) * at).sum(1)


def _loc(mech, rows: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return mech.loc([torch.as_tensor(rows[:, k]).unsqueeze(-1) for k in range(rows.shape[1])], torch.float64)


def condition_hinges(mech, y: np.ndarray, parents: np.ndarray, *, seed: int = 0):
    """A copy of a fitted GPANM or SplineANM whose hinge weights are conditioned on rows ``(y, parents)``.

    Parameters
    ----------
    mech : GPANM or SplineANM
        A fitted mechanism (with ``hinge_sd_``; a model saved before it existed is returned as is).
    y : ndarray, shape (K,)
        The node's values in the rows.
    parents : ndarray, shape (K, p)
        The parents' values in the rows (a row with NaN is not used).
    seed : int
        Seed of the draws (the spline's prior draws of ``h`` and the working noise ``epsilon``).

    Returns
    -------
    GPANM or SplineANM
        ``mech`` itself when no row lies beyond the training data, else a shallow copy whose
        hinge weights differ (the GP's hinge columns of ``coef_``; the spline's ``hinge_coef_``).
    """
    mech._check_fitted()
    y = np.array(y, dtype=np.float64).reshape(-1)
    parents = np.array(parents, dtype=np.float64).reshape(len(y), -1)  # a copy: pandas may hand out read-only views
    usable = np.isfinite(y) & np.isfinite(parents).all(1)
    A = _hinges_at(mech, torch.as_tensor(parents[usable])) if usable.any() else None
    if A is None:
        return mech
    y, parents = y[usable], parents[usable]
    active = (A.abs().sum(1) > 0).numpy()
    if not active.any():
        return mech
    A, values, parents = A[active], torch.as_tensor(y[active]), parents[active]
    generator = torch.Generator().manual_seed(int(seed))
    sigma = _noise_sd(mech)
    out = copy.copy(mech)
    if mech.family == "gp":
        per_parent = 3 + 2 * int(mech.num_frequencies)
        cols = torch.tensor([k * per_parent + per_parent - 2 + side for k in range(mech.num_parents_) for side in (0, 1)])
        coef = mech.coef_.clone()
        resid = values.unsqueeze(-1) - _loc(mech, parents)  # x - g - A h: the prior draws h are in coef_
        tau2 = mech.hinge_sd_.square().unsqueeze(-1).expand(-1, len(cols))
        coef[:, cols] = _matheron(coef[:, cols], A, tau2, sigma, resid, generator)
        out.coef_ = coef
    else:
        tau2 = mech.hinge_sd_.square().repeat_interleave(2, dim=-1)  # (D, 2p): upper and lower hinge per parent
        h = torch.randn(tau2.shape, generator=generator, dtype=torch.float64) * tau2.sqrt()  # prior draws
        base = copy.copy(mech)
        base.hinge_coef_ = None  # g: the spline without hinges (the fitted mechanism's own loc)
        resid = values.unsqueeze(-1) - _loc(base, parents) - A @ h.T
        out.hinge_coef_ = _matheron(h, A, tau2, sigma, resid, generator)
    return out
