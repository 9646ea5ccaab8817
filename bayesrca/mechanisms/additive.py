"""Additive noise models ``X = f(PA) + N`` with f linear in a feature map of the parents.

The feature map is what distinguishes the families (identity: linear; natural cubic splines:
spline; none: root). Every family shares the Bayesian regression machinery of
:mod:`bayesrca.inference` on a standardised scale and stores its draws on the data's scale:
``loc = intercept + features(PA) @ coef`` plus noise.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyro.distributions as dist
import torch

from .. import constrained, inference
from ..exceptions import ConfigError, DataError
from .base import Mechanism, never_varied
from .constant import SpikeSlabNormal, constant_noise_params
from .noise import TAIL_PARAMS, BootstrapGPD, ResidualKDE

__all__ = ["AdditiveNoiseModel", "NOISE_FAMILIES", "INFERENCE_METHODS"]

NOISE_FAMILIES = ("gaussian", "student_t", "bootstrap", "bootstrap_gpd")
INFERENCE_METHODS = ("auto", "conjugate", "bootstrap", "nuts", "svi")
_EXACT = {"gaussian": "conjugate", "bootstrap": "bootstrap", "bootstrap_gpd": "bootstrap", "student_t": "nuts",
          "lognormal": "conjugate"}


class AdditiveNoiseModel(Mechanism):
    """Shared implementation of additive-noise mechanisms; subclasses define the feature map.

    Parameters
    ----------
    noise : {"bootstrap_gpd", "bootstrap", "gaussian", "student_t"}
        Noise family. ``"bootstrap_gpd"`` (the default) is a smoothed Bayesian bootstrap of the
        residuals with generalised Pareto tails beyond their 10 % and 90 % quantiles
        (:class:`~bayesrca.mechanisms.noise.BootstrapGPD`): flexible for skewed noise, with a
        posterior over the tails' heaviness, so values beyond the largest training residual get
        a tail probability that does not collapse; fitted without MCMC. ``"bootstrap"`` is the
        same body without the tails (:class:`~bayesrca.mechanisms.noise.ResidualKDE`, whose
        Gaussian kernel ends about one bandwidth beyond the largest residual; kept for saved
        models and comparisons). ``"gaussian"`` has an exact conjugate posterior;
        ``"student_t"`` needs NUTS or SVI.
    inference : {"auto", "conjugate", "bootstrap", "nuts", "svi"}
        Posterior engine. ``"auto"`` takes the exact engine of the noise family (conjugate for
        Gaussian, Bayesian bootstrap for both bootstrap noises, NUTS for Student-t).
    num_warmup : int
        NUTS warm-up steps per chain.
    num_chains : int
        NUTS chains, run one after the other (R-hat needs at least 2).
    svi_steps : int
        SVI optimisation steps.
    num_atoms : int
        Atoms per draw kept by the bootstrap noise (residuals resampled with the draw's
        Dirichlet weights).
    constant_noise_scale : float
        For a node constant in the training data, whose noise is a point mass with a rare slab
        (:mod:`bayesrca.mechanisms.constant`): the sd, relative to ``max(|value|, 1)``, of the
        narrow Gaussian that stands in for the point mass in densities.
    """

    #: coefficient prior scale on the standardised scale (see :mod:`bayesrca.inference`)
    prior_g: float = inference.PRIOR["g"]
    #: sd of the prior over the effect of a parent that never varied in training, in the data's
    #: units (child per parent); :class:`~bayesrca.mechanisms.linear.LinearANM` takes it as a parameter
    unvaried_coef_sd: float = 1.0

    def __init__(
        self,
        noise: str = "bootstrap_gpd",
        inference: str = "auto",
        *,
        num_warmup: int = 300,
        num_chains: int = 2,
        svi_steps: int = 2000,
        num_atoms: int = 1000,
        constant_noise_scale: float = 1e-3,
    ) -> None:
        self.noise = noise
        self.inference = inference
        self.num_warmup = num_warmup
        self.num_chains = num_chains
        self.svi_steps = svi_steps
        self.num_atoms = num_atoms
        self.constant_noise_scale = constant_noise_scale

    # -- feature map, defined by subclasses ---------------------------------------------------
    @abc.abstractmethod
    def _learn_features(self, parents: np.ndarray) -> None:
        """Learn data-dependent settings of the feature map (e.g. knots) from training parents."""

    @abc.abstractmethod
    def _feature_columns(self, parents: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The F feature columns, each shaped like the broadcast parents ``(..., D)``."""

    def _features(self, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Feature tensor ``(..., F)`` (used for fitting; evaluation accumulates columns)."""
        return torch.stack(list(self._feature_columns(parents)), dim=-1)

    def _allowed_noise(self) -> tuple[str, ...]:
        return NOISE_FAMILIES

    # -- fitting ----------------------------------------------------------------------------
    def _resolve_inference(self) -> str:
        if self.noise not in self._allowed_noise():
            raise ConfigError(
                f"{type(self).__name__}: noise must be one of {self._allowed_noise()}, got {self.noise!r}"
            )
        if self.inference not in INFERENCE_METHODS:
            raise ConfigError(f"{type(self).__name__}: inference must be one of {INFERENCE_METHODS}, got {self.inference!r}")
        method = _EXACT[self.noise] if self.inference == "auto" else self.inference
        allowed = {
            "gaussian": ("conjugate", "nuts", "svi"),
            "lognormal": ("conjugate", "nuts", "svi"),
            "student_t": ("nuts", "svi"),
            "bootstrap": ("bootstrap",),
            "bootstrap_gpd": ("bootstrap",),
        }[self.noise]
        if method not in allowed:
            raise ConfigError(
                f"{type(self).__name__}(noise={self.noise!r}) supports inference in {allowed}, got {method!r}"
            )
        return method

    def _response(self, y: np.ndarray) -> np.ndarray:
        """The regression response (identity; the log for a log-normal root)."""
        return y

    def design(self, y: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The feature map of the parents and the regression response (see :meth:`Mechanism.design`)."""
        y = np.asarray(y, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.float64).reshape(len(y), -1)
        if parents.shape[1] == 0:
            return np.zeros((len(y), 0)), np.asarray(self._response(y), dtype=np.float64)
        feats = self._features([torch.tensor(parents[:, k]) for k in range(parents.shape[1])]).numpy()
        return feats.reshape(len(y), -1), np.asarray(self._response(y), dtype=np.float64)

    def fit(self, y: np.ndarray, parents: np.ndarray, *, num_draws: int, progress: bool = False, node: str = "") -> AdditiveNoiseModel:
        method = self._resolve_inference()
        y = np.asarray(y, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.float64).reshape(len(y), -1)
        min_rows = parents.shape[1] + 2
        if len(y) < min_rows:
            raise DataError(
                f"node {node!r} has {parents.shape[1]} parent(s) but only {len(y)} training rows; "
                f"at least {min_rows} rows are needed"
            )
        self._learn_features(parents)
        feats = self._features([torch.tensor(parents[:, k]) for k in range(parents.shape[1])]).numpy()
        feats = feats.reshape(len(y), -1)
        response = self._response(y)
        y_center, y_scale = float(response.mean()), float(response.std())
        self.constant_ = bool(never_varied(response))
        f_center = feats.mean(0)
        f_scale = feats.std(0)
        live = ~never_varied(feats)  # constant features carry no information
        num_features = feats.shape[1]
        signs = self._coef_signs(num_features, method)  # None: unconstrained (the default)
        coef = torch.zeros(num_draws, num_features, dtype=torch.float64)
        info: dict[str, Any]
        self._tail_pool: dict[str, Any] | None = None  # the GPD tails' grid posteriors, for tail_pooling
        if self.constant_:
            level = float(y.mean())
            intercept = torch.full((num_draws,), level, dtype=torch.float64)
            noise_params = constant_noise_params(level, len(y), self.constant_noise_scale, num_draws)
            info = {"inference": "prior (constant column)", "exact": True}
            self.noise_family_ = "constant"
        else:
            design = np.column_stack([np.ones(len(y)), (feats[:, live] - f_center[live]) / f_scale[live]])
            X = torch.as_tensor(design)
            t = torch.as_tensor((response - y_center) / y_scale)
            live_signs = None if signs is None or not signs[live].any() else torch.as_tensor(np.r_[0, signs[live]], dtype=torch.float64)
            draws, info = self._run_engine(method, X, t, num_draws, progress=progress, node=node, signs=live_signs)
            beta = draws.pop("coef")
            coef[:, torch.as_tensor(live)] = y_scale * beta[:, 1:] / torch.as_tensor(f_scale[live])
            intercept = y_center + y_scale * (beta[:, 0] - (beta[:, 1:] * torch.as_tensor(f_center[live] / f_scale[live])).sum(-1))
            noise_params = {k: (v * y_scale if k in inference.SCALE_KEYS else v) for k, v in draws.items()}
            grids = info.pop("tail_grids", None)
            if grids is not None:
                self._tail_pool = {**grids, "unit": y_scale}
            # too few residuals for GPD tails: the plain smoothed bootstrap (recorded in diagnostics)
            self.noise_family_ = "bootstrap" if info.get("tails") == "kde" else self.noise
        # a parent that never varied: its effect is not identified, so its draws come from the
        # prior over the effect (restricted to a constraint's sign), not a coefficient fixed at 0
        # (see _unvaried_prior); the intercept absorbs coef * level, so the fit at the training
        # level is unchanged
        self.unvaried_coef_: torch.Tensor | None = None
        unvaried_parents = never_varied(parents)
        if self.is_linear and bool((~live).any()):
            unvaried = torch.as_tensor(~live)
            prior = self._unvaried_prior(num_draws, int(unvaried.sum()))
            if signs is not None:
                sign = torch.as_tensor(signs[unvaried.numpy()], dtype=torch.float64)
                prior = torch.where(sign != 0, prior.abs() * sign, prior)
            coef[:, unvaried] = prior
            intercept = intercept - (prior * torch.as_tensor(f_center[unvaried.numpy()])).sum(-1)
            info = {**info, "unvaried_prior": int(unvaried.sum())}
            if signs is not None and bool((signs[~live] != 0).any()):
                info["unvaried_constrained"] = int((signs[~live] != 0).sum())
        elif not self.is_linear and unvaried_parents.any():
            # nonlinear families: a linear term with the same prior, outside the feature map
            prior = self._unvaried_prior(num_draws, int(unvaried_parents.sum()))
            self.unvaried_coef_ = torch.zeros(num_draws, parents.shape[1], dtype=torch.float64)
            self.unvaried_coef_[:, torch.as_tensor(unvaried_parents)] = prior
            self.unvaried_level_ = torch.as_tensor(parents.mean(0), dtype=torch.float64)
            info = {**info, "unvaried_prior": int(unvaried_parents.sum())}
        self.intercept_ = intercept
        self.coef_ = coef
        self.noise_params_ = noise_params
        self.diagnostics_ = {k: v for k, v in info.items()}
        self.num_draws_ = int(num_draws)
        self.num_train_ = len(y)
        return self

    def _coef_signs(self, num_features: int, method: str) -> np.ndarray | None:
        """Sign constraint per feature (``+1``, ``-1``, ``0`` free), or None for none (the default)."""
        return None

    def _unvaried_prior(self, num_draws: int, count: int) -> torch.Tensor:
        """Draws ``(D, count)`` of the effect of parents that never varied in training: the prior
        ``Normal(0, unvaried_coef_sd)`` in the data's units (child per parent)."""
        return self.unvaried_coef_sd * torch.randn(num_draws, count, dtype=torch.float64)

    def _unvaried_effect(self, parents: Sequence[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """``out`` plus the prior effect of the parents that never varied (nonlinear families)."""
        coef = getattr(self, "unvaried_coef_", None)
        if coef is None or not parents:
            return out
        dtype = out.dtype
        for k, p in enumerate(parents):
            if bool(coef[:, k].any()):
                out = out + (p - self.unvaried_level_[k].to(dtype)) * coef[:, k].to(dtype)
        return out

    def _run_engine(self, method: str, X: torch.Tensor, t: torch.Tensor, num_draws: int, *, progress: bool, node: str,
                    signs: torch.Tensor | None = None):
        noise = "gaussian" if self.noise == "lognormal" else self.noise
        g = self.prior_g
        if method == "conjugate" and signs is not None:
            return constrained.conjugate_posterior(X, t, num_draws, signs, g=g, a0=inference.PRIOR["a0"],
                                                   b0=inference.PRIOR["b0"])
        if method == "conjugate":
            return inference.conjugate_posterior(X, t, num_draws, g=g)
        if method == "bootstrap":
            return inference.bootstrap_posterior(
                X, t, num_draws, num_atoms=self.num_atoms, g=g, gpd_tails=self.noise == "bootstrap_gpd",
                signs=signs, node=node,
            )
        if method == "nuts":
            return inference.mcmc_posterior(
                X, t, num_draws, noise=noise, num_chains=self.num_chains, num_warmup=self.num_warmup, node=node,
                progress=progress, g=g,
            )
        return inference.svi_posterior(
            X, t, num_draws, noise=noise, num_steps=self.svi_steps, node=node, progress=progress, g=g
        )

    # -- the mechanism ------------------------------------------------------------------------
    def loc(self, parents: Sequence[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Posterior draws of ``f(PA)``, shape ``(..., D)``, in ``dtype`` (default: the parents')."""
        self._check_fitted()
        dtype = dtype or (parents[0].dtype if parents else self.intercept_.dtype)
        out = self.intercept_.to(dtype)
        coef = self.coef_.to(dtype)
        for f, column in enumerate(self._feature_columns(parents)):
            # in place only when the result keeps its shape: parents may broadcast to a larger
            # shape than the first feature column (e.g. one parent kept per anomaly, one fresh)
            if f == 0 or torch.broadcast_shapes(out.shape, column.shape) != out.shape:
                out = torch.addcmul(out, column, coef[:, f])
            else:
                out.addcmul_(column, coef[:, f])
        return self._unvaried_effect(parents, out)

    def noise_distribution(self) -> dist.TorchDistribution:
        self._check_fitted()
        p = self.noise_params_
        family = self.noise_family_
        if family == "gaussian":
            return dist.Normal(torch.zeros_like(p["sigma"]), p["sigma"])
        if family == "student_t":
            return dist.StudentT(p["df"], torch.zeros_like(p["sigma"]), p["sigma"])
        if family == "constant":
            return SpikeSlabNormal(p["sigma"], p["slab"], p["slab_prob"])
        if family == "bootstrap":
            return ResidualKDE(p["atoms"], p["bandwidth"])
        if family == "bootstrap_gpd":
            return BootstrapGPD(p["atoms"], p["bandwidth"], *(p[k] for k in TAIL_PARAMS))
        raise ConfigError(f"unknown noise family {family!r}")  # pragma: no cover

    def forward(self, noise: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.loc(parents, noise.dtype) + noise

    def abduct(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        return value - self.loc(parents, value.dtype)

    @property
    def noise_is_gaussian(self) -> bool:
        """True when every draw's noise is Gaussian (enables closed-form tail probabilities)."""
        self._check_fitted()
        return self.noise_family_ == "gaussian"

    @property
    def noise_is_scale_mixture(self) -> bool:
        """True when every draw's noise is Gaussian or the spike-and-slab noise of a column that
        never varied (:mod:`bayesrca.mechanisms.constant`): the closed-form tails still apply."""
        self._check_fitted()
        return self.noise_family_ in ("gaussian", "constant")

    def describe(self) -> str:
        if getattr(self, "constant_", False):
            return f"{self.family}/constant"
        return f"{self.family}/{getattr(self, 'noise_family_', self.noise)}"
