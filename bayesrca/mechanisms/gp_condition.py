r"""Condition a Gaussian-process mechanism's behaviour beyond its training data on extra rows.

:class:`~bayesrca.mechanisms.GPANM` carries two hinge columns per parent, ``(z - z_max)_+`` and
``(z_min - z)_+``, that are zero on every training row: their weights ``h`` keep their prior
``N(0, tau^2)`` (``tau = hinge_sd_``, the sd of the process's slope), so they are the part of
``f`` that the training data say nothing about. An anomaly row whose parents lie beyond the data
is an observation of exactly that part: ``x = g(pa) + a . h + n`` with ``a`` the row's hinge
values, ``g`` the rest of the function and ``n`` the node's noise. Given a posterior draw (``g``,
``tau``, noise sd ``sigma``) the update is conjugate (Gaussian working likelihood, as the fit of
the function uses for every noise family), and a draw of the conditional follows from the prior
draw by pathwise conditioning (Matheron's rule):

.. math::

    h' = h + \tau^2 A^\top (\tau^2 A A^\top + \sigma^2 I)^{-1} (r - A h - \varepsilon),
    \qquad \varepsilon \sim N(0, \sigma^2 I),

with ``A`` the rows' hinge values (K x 2p) and ``r = x - g(pa)``. ``h'`` is an exact draw of
``h | rows``, so the result is again a posterior draw of the mechanism: inside the training range
nothing changes (the hinges are zero there), at the rows the function moves towards the
observed values as far as the prior of the slope allows (a narrow ``tau``, as for a function
the data show to be nearly linear, moves it little), and the abducted noise there becomes a
draw of the node's noise instead of absorbing the extrapolation's error.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .gp import GPANM

__all__ = ["condition_hinges", "hinge_values"]


def hinge_values(mech: GPANM, parents: np.ndarray) -> torch.Tensor:
    """The hinge columns ``(K, 2p)`` at parent rows ``(K, p)``: per parent ``(z - z_max)_+, (z_min - z)_+``."""
    z = (torch.as_tensor(parents, dtype=torch.float64) - mech.x_center_) / mech.x_scale_
    upper = (z - mech.z_high_).clamp(min=0)
    lower = (mech.z_low_ - z).clamp(min=0)
    return torch.stack([upper, lower], -1).reshape(len(z), -1)


def _noise_sd(mech: GPANM) -> torch.Tensor:
    params = mech.noise_params_
    return params["sigma"] if "sigma" in params else params["atoms"].std(-1)


def condition_hinges(mech: GPANM, y: np.ndarray, parents: np.ndarray, *, seed: int = 0) -> GPANM:
    """A copy of a fitted :class:`GPANM` whose hinge weights are conditioned on rows ``(y, parents)``.

    Parameters
    ----------
    mech : GPANM
        A fitted mechanism (with ``hinge_sd_``; a model saved before it existed is returned as is).
    y : ndarray, shape (K,)
        The node's values in the rows.
    parents : ndarray, shape (K, p)
        The parents' values in the rows (NaN: the row is not used).
    seed : int
        Seed of the working-noise draws ``epsilon``.

    Returns
    -------
    GPANM
        ``mech`` itself when no row lies beyond the training data, else a shallow copy with new
        ``coef_`` (only the hinge columns differ).
    """
    mech._check_fitted()
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    parents = np.asarray(parents, dtype=np.float64).reshape(len(y), -1)
    usable = np.isfinite(y) & np.isfinite(parents).all(1)
    if not hasattr(mech, "hinge_sd_") or not usable.any() or mech.constant_:
        return mech
    A = hinge_values(mech, parents[usable])
    active = A.abs().sum(1) > 0
    if not bool(active.any()):
        return mech
    A, y_t = A[active], torch.as_tensor(y[usable])[active]
    rows = parents[usable][active.numpy()]
    m = int(mech.num_frequencies)
    per_parent = 3 + 2 * m
    cols = torch.tensor([k * per_parent + per_parent - 2 + side for k in range(mech.num_parents_) for side in (0, 1)])
    coef = mech.coef_.clone()
    h = coef[:, cols]  # (D, 2p): prior draws, the data never touched them
    with torch.no_grad():
        loc = mech.loc([torch.as_tensor(rows[:, k]).unsqueeze(-1) for k in range(rows.shape[1])], torch.float64)  # (K, D)
    resid = y_t.unsqueeze(-1) - loc  # = r - A h, (K, D)
    tau2 = mech.hinge_sd_.square()  # (D,)
    sigma = _noise_sd(mech)  # (D,)
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(resid.shape, generator=gen, dtype=torch.float64) * sigma  # (K, D)
    K = len(A)
    S = tau2[:, None, None] * (A @ A.T) + sigma.square()[:, None, None] * torch.eye(K, dtype=torch.float64)  # (D, K, K)
    step = torch.linalg.solve(S, (resid - eps).T.unsqueeze(-1)).squeeze(-1)  # (D, K)
    coef[:, cols] = h + tau2[:, None] * (step @ A)
    out = copy.copy(mech)
    out.coef_ = coef
    return out
