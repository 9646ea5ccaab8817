r"""Discrete mechanisms: binary, categorical and count nodes with an explicit uniform noise.

Each is a generalised linear model of the parents, ``eta = intercept + parents @ coef``, with the
node's value the inverse CDF of its conditional distribution at a uniform noise:

.. math:: X = F^{-1}(U \mid PA;\ \theta), \qquad U \sim \mathcal U(0, 1).

The observed value does not pin down the noise: abduction draws ``U`` from its posterior given
``(x, PA, theta)``, the uniform on the CDF interval :math:`(F(x - 1), F(x)]`, exactly (no rounding).
Any such ``U`` reproduces ``x``, so keeping every abducted noise reproduces the anomaly.

* :class:`BernoulliGLM`: binary node, ``P(X = 1) = sigmoid(eta)``;
* :class:`PoissonGLM`: count node, ``X ~ Poisson(exp(eta))``;
* :class:`CategoricalGLM`: categories coded ``0 .. K-1``, softmax probabilities, the inverse CDF in
  code order.

The posterior over ``(intercept, coef)`` is a Laplace approximation at the posterior mode (Newton's
method on the log posterior, which is concave for these models), with weakly informative Gaussian
priors on the standardised parents; ``inference="nuts"`` runs Pyro's NUTS instead, to check it,
and stores per coefficient the R-hat and bulk ESS in ``diagnostics_`` (see
:mod:`bayesrca.mechanisms.glm_posterior`).
The same classes serve as root distributions (no parents: an intercept only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pyro.distributions as dist
import torch

from ..exceptions import ConfigError, DataError
from .base import Mechanism, never_varied
from .glm_posterior import laplace_draws, nuts_draws

__all__ = ["DiscreteGLM", "BernoulliGLM", "PoissonGLM", "CategoricalGLM"]

_INTERCEPT_SCALE = 10.0


class DiscreteGLM(Mechanism):
    """Shared implementation of the discrete families (see the module docstring).

    Parameters
    ----------
    inference : {"laplace", "nuts"}
        Laplace approximation at the posterior mode (fast, default) or NUTS.
    prior_scale : float
        Standard deviation of the Gaussian prior on each coefficient of a standardised parent (of a
        parent that never varied in training, per unit of the parent: its posterior is this prior).
    num_warmup : int
        NUTS warm-up steps.

    Attributes
    ----------
    coef_, intercept_ : torch.Tensor
        Posterior draws of the coefficients ``(D, p, k)`` and intercepts ``(D, k)`` on the data's scale.
    diagnostics_ : dict
        ``inference`` and ``exact``; with NUTS also ``rhat_max`` and ``ess_min`` (scalars, shown by
        :meth:`bayesrca.BayesianSCM.summary`) and per coefficient (standardised scale)
        ``parameters`` (names), ``r_hat`` and ``ess_bulk`` (arrays). A
        :class:`~bayesrca.exceptions.ConvergenceWarning` is issued when R-hat exceeds 1.01 or the
        bulk ESS is low.
    """

    is_linear = False
    invertible = False
    #: discrete mechanisms can model a root or a non-root node
    any_position: ClassVar[bool] = True

    def __init__(self, inference: str = "laplace", *, prior_scale: float = 2.5, num_warmup: int = 300) -> None:
        self.inference = inference
        self.prior_scale = prior_scale
        self.num_warmup = num_warmup

    # -- family-specific pieces ---------------------------------------------------------------
    def _num_outputs(self, y: np.ndarray) -> int:
        return 1

    def _check_values(self, y: np.ndarray, node: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_values(self, values: np.ndarray, node: str = "") -> None:
        """Refuse values outside the fitted family's support (e.g. 2 for a binary node)."""
        self._check_values(np.asarray(values, dtype=np.float64), node)

    def _likelihood(self, eta: torch.Tensor) -> dist.Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def _cdf(self, value: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``P(X <= value)`` (``value`` integer-valued, possibly -1)."""
        raise NotImplementedError

    def _icdf(self, u: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, y, parents, *, num_draws, progress=False, node=""):
        if self.inference not in ("laplace", "nuts"):
            raise ConfigError(f"{type(self).__name__}: inference must be 'laplace' or 'nuts', got {self.inference!r}")
        y = np.asarray(y, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.float64).reshape(len(y), -1)
        self._check_values(y, node)
        self.num_outputs_ = self._num_outputs(y)
        centre, scale = parents.mean(0), parents.std(0)
        live = ~never_varied(parents)
        scale = np.where(live, scale, 1.0)
        X = torch.as_tensor(np.column_stack([np.ones(len(y)), (parents - centre) / scale]))
        t = torch.as_tensor(y.copy())
        k, p = self.num_outputs_, X.shape[1]
        prior_sd = torch.full((p, k), float(self.prior_scale), dtype=torch.float64)
        prior_sd[0] = _INTERCEPT_SCALE
        # a parent that never varied: its column is 0 on the training data, so the likelihood does
        # not see its coefficient and the posterior keeps the prior (per unit of the parent, which
        # has no sd to standardise by), not an effect of 0

        def log_post(theta: torch.Tensor) -> torch.Tensor:
            beta = theta.reshape(p, k)
            eta = X @ beta
            prior = dist.Normal(0.0, prior_sd).log_prob(beta).sum()
            return self._likelihood(eta if k > 1 else eta[:, 0]).log_prob(t).sum() + prior

        if self.inference == "laplace":
            draws, info = laplace_draws(log_post, p * k, num_draws)
        else:
            names = _coefficient_names(p - 1, k)
            draws, info = nuts_draws(log_post, names, num_draws, self.num_warmup, progress=progress, node=node)
        beta = draws.reshape(num_draws, p, k)
        coef = beta[:, 1:] / torch.as_tensor(scale)[None, :, None]
        self.coef_ = coef  # (D, p - 1, k) on the data's scale
        self.intercept_ = beta[:, 0] - (coef * torch.as_tensor(centre)[None, :, None]).sum(1)  # (D, k)
        self.diagnostics_ = {**info, "unvaried_prior": int((~live).sum())} if bool((~live).any()) else info
        self.num_draws_ = int(num_draws)
        self.num_train_ = len(y)
        return self

    # -- the mechanism ------------------------------------------------------------------------
    def eta(self, parents: Sequence[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Linear predictor per draw: shape ``(..., D)``, or ``(..., D, K)`` for categories."""
        self._check_fitted()
        dtype = dtype or (parents[0].dtype if parents else torch.float64)
        out = self.intercept_.to(dtype)  # (D, k)
        coef = self.coef_.to(dtype)
        for f, column in enumerate(parents):
            out = out + column.unsqueeze(-1) * coef[:, f]
        return out if self.num_outputs_ > 1 else out[..., 0]

    def noise_distribution(self) -> dist.TorchDistribution:
        self._check_fitted()
        zeros = torch.zeros(self.num_draws_, dtype=torch.float64)
        return dist.Uniform(zeros, torch.ones_like(zeros))

    def forward(self, noise: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._icdf(noise, self.eta(parents, noise.dtype)).to(noise.dtype)

    def abduct(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """A draw of the noise posterior: uniform on ``(F(x - 1), F(x)]`` under each draw."""
        eta = self.eta(parents, torch.float64)
        value = value.to(torch.float64)
        low, high = self._cdf(value - 1, eta), self._cdf(value, eta)
        low, high = torch.broadcast_tensors(low, high)
        u = torch.rand(low.shape, dtype=torch.float64)
        return (low + u * (high - low)).clamp(min=torch.finfo(torch.float64).tiny, max=1.0)

    def log_prob(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        self._check_fitted()
        eta = self.eta(parents, torch.float64)
        like = self._likelihood(eta)
        value = value.to(torch.float64)
        if self.num_outputs_ > 1:
            value = value.long().clamp(0, self.num_outputs_ - 1)
            return like.log_prob(value.expand(eta.shape[:-1]))
        return like.log_prob(value.expand(eta.shape))

    def describe(self) -> str:
        return f"{self.family}/{getattr(self, 'diagnostics_', {}).get('inference', self.inference)}"


class BernoulliGLM(DiscreteGLM):
    """Binary node (values 0/1 or booleans): logistic regression on the parents."""

    family = "bernoulli"

    def _check_values(self, y, node):
        if not np.all(np.isin(y, (0.0, 1.0))):
            raise DataError(f"node {node!r}: BernoulliGLM needs values 0 and 1 (or booleans); found {np.unique(y)[:5]!r}")

    def _likelihood(self, eta):
        return dist.Bernoulli(logits=eta)

    def _cdf(self, value, eta):
        p0 = torch.sigmoid(-eta)  # P(X = 0)
        return torch.where(value < 0, torch.zeros_like(p0), torch.where(value < 1, p0, torch.ones_like(p0)))

    def _icdf(self, u, eta):
        return (u > torch.sigmoid(-eta)).to(u.dtype)


class PoissonGLM(DiscreteGLM):
    """Count node (non-negative integers): Poisson regression with a log link."""

    family = "poisson"

    def _check_values(self, y, node):
        if np.any(y < 0) or np.any(y != np.round(y)):
            raise DataError(f"node {node!r}: PoissonGLM needs non-negative integers; found e.g. {y[(y < 0) | (y != np.round(y))][:3]!r}")

    def _likelihood(self, eta):
        return dist.Poisson(eta.clamp(max=80.0).exp())

    def _cdf(self, value, eta):
        rate = eta.clamp(max=80.0).exp()
        k = torch.floor(value).clamp(min=-1.0)
        cdf = torch.special.gammaincc(torch.clamp(k + 1, min=1e-30).to(rate.dtype), rate)
        return torch.where(k < 0, torch.zeros_like(cdf), cdf)

    def _icdf(self, u, eta):
        """Smallest k with F(k) >= u, by bisection over the integers."""
        rate = eta.clamp(max=80.0).exp()
        u, rate = torch.broadcast_tensors(u, rate)
        lo = torch.full_like(rate, -1.0)  # F(lo) < u
        hi = torch.ceil(rate + 40 * rate.sqrt() + 40)  # F(hi) >= u for u < 1 - 1e-300
        while bool((hi - lo > 1).any()):
            mid = torch.floor((lo + hi) / 2)
            above = self._cdf(mid, eta.expand_as(mid)) >= u
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        return hi


class CategoricalGLM(DiscreteGLM):
    """Categorical node coded ``0 .. K-1``: multinomial logistic regression (softmax).

    The inverse CDF follows the code order, so counterfactual values depend on the coding. All K
    logits get the same Gaussian prior, which identifies them softly (no reference category).
    """

    family = "categorical"

    def _num_outputs(self, y):
        return int(y.max()) + 1

    def _check_values(self, y, node):
        if np.any(y < 0) or np.any(y != np.round(y)):
            raise DataError(f"node {node!r}: CategoricalGLM needs category codes 0, 1, ..., K-1; found {np.unique(y)[:5]!r}")
        known = getattr(self, "num_outputs_", None)
        if known is not None and np.any(y >= known):
            raise DataError(
                f"node {node!r}: category code {int(y.max())} was never seen in training (codes 0..{known - 1}); "
                "refit with data that contains it"
            )

    def _likelihood(self, eta):
        return dist.Categorical(logits=eta)

    def _cdf(self, value, eta):
        cum = torch.softmax(eta, -1).cumsum(-1)
        idx = value.clamp(min=0, max=eta.shape[-1] - 1).long()
        idx = idx.expand(eta.shape[:-1]).unsqueeze(-1)
        out = torch.gather(cum, -1, idx).squeeze(-1)
        return torch.where(value.expand(out.shape) < 0, torch.zeros_like(out), out)

    def _icdf(self, u, eta):
        cum = torch.softmax(eta, -1).cumsum(-1)
        u = u.unsqueeze(-1).expand(cum.shape[:-1] + (1,))
        return (cum < u).sum(-1).clamp(max=eta.shape[-1] - 1).to(u.dtype)


def _coefficient_names(num_parents: int, num_outputs: int) -> list[str]:
    """Names of the flattened ``(1 + num_parents, num_outputs)`` coefficients on the standardised scale."""
    rows = ["intercept"] + [f"coef[{j}]" for j in range(num_parents)]
    if num_outputs == 1:
        return rows
    return [f"{r}[{c}]" for r in rows for c in range(num_outputs)]
