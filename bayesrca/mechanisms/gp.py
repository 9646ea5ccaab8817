"""Additive Gaussian-process noise model ``X = b0 + b . PA + sum_k g_k(PA_k) + N``.

Each ``g_k`` is a Gaussian process with a squared-exponential kernel on the standardised parent,
approximated by random Fourier features at fixed frequencies: the columns ``cos(w_j z / l)`` and
``sin(w_j z / l)`` (``z`` the standardised parent, ``l`` the length scale, ``w_j`` the quantiles
of a half-normal, so no seed is needed), with weights ``~ N(0, (r sigma)^2 / m)``: the process's
prior variance is ``(r sigma)^2`` at every point. Unlike a spline basis (linear beyond its outer
knots, with the slope's uncertainty only), the features are defined everywhere and, away from the
data, the function reverts to its prior around the linear trend ``b . PA``. Two hinge columns
per parent, ``(z - z_max)_+`` and ``(z_min - z)_+``, are zero on the training data, so their
weights keep their prior ``N(0, (r sigma / l)^2)``, the standard deviation of the process's
derivative: beyond the data the slope may change as much as the process's slope varies, and the
uncertainty of ``f`` grows linearly with the distance from the data (a trend fitted to a
saturating or convex function is wrong far out, and the interval says so). Inside the training
range the hinges are zero and change nothing. The posterior of ``f(PA)`` widens where there were
no data, which is where outliers live.

The hyperparameters are not fixed. The length scale ``l`` (on the standardised scale) and the
amplitude ``r`` (the process's standard deviation in units of the noise sd, which keeps the
Normal-Inverse-Gamma prior conjugate, so the noise variance is integrated out exactly) take values
on a grid; each grid point is weighted by its exact marginal likelihood
(:func:`bayesrca.inference.conjugate_log_evidence`) times a uniform prior over the grid. Every
posterior draw samples a grid point from these weights and then the weights and the noise from
the conjugate posterior of that grid point (:func:`bayesrca.inference.conjugate_posterior`). With
``noise="bootstrap"`` the function's draws are the same (a Gaussian working likelihood: the grid
weights and the weights' posterior) and the noise of each draw is a smoothed Bayesian bootstrap of
that draw's residuals (:func:`bayesrca.inference.residual_kde`, as for the other families): the
Dirichlet-weighted least squares of :func:`bayesrca.inference.bootstrap_posterior` would cost
``D n F^2`` with F about 70 columns per parent. One length scale and one amplitude are shared by all parents (each standardised).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from .. import inference
from ..exceptions import ConfigError, DataError
from .additive import AdditiveNoiseModel
from .base import never_varied
from .constant import constant_noise_params
from .gp_tables import fourier_sum, fourier_tables, hermite
from .gpd import attach_gpd_tails
from .hinges import condition_hinges

__all__ = ["GPANM", "fourier_frequencies"]

#: Prior variance (relative to the noise variance) of the intercept and the linear coefficients.
_TREND_G = inference.PRIOR["g"]


def fourier_frequencies(num: int) -> np.ndarray:
    """``num`` frequencies of a unit squared-exponential kernel: quantiles of the half-normal.

    ``(1 / m) sum_j cos(w_j t)`` approximates the kernel ``exp(-t^2 / 2)``; with the sine columns
    the pair ``cos, sin`` at ``w_j`` spans the same functions as the pair at ``-w_j``, so the
    positive half suffices.
    """
    probs = torch.as_tensor(0.5 + 0.5 * (np.arange(num) + 0.5) / num, dtype=torch.float64)
    return torch.special.ndtri(probs).numpy()  # torch, not scipy: scipy is no runtime dependency


class GPANM(AdditiveNoiseModel):
    """Additive Gaussian-process regression (random Fourier features) with a linear trend.

    Parameters
    ----------
    noise : {"gaussian", "bootstrap_gpd", "bootstrap"}
        Noise family: ``"gaussian"`` has an exact conjugate posterior given the hyperparameters;
        ``"bootstrap_gpd"`` and ``"bootstrap"`` keep the Gaussian working posterior of the function
        and model the noise by a smoothed Bayesian bootstrap of each draw's residuals (skewed or
        heavy-tailed noise), with generalised Pareto tails (``"bootstrap_gpd"``, as for the other
        families, :class:`~bayesrca.mechanisms.noise.BootstrapGPD`) or without.
    inference : {"auto", "conjugate", "bootstrap"}
        Posterior engine; ``"auto"`` takes the one of the noise family (``"conjugate"`` for
        Gaussian noise, ``"bootstrap"``, the residual bootstrap above, for bootstrap noise).
    num_frequencies : int
        Fourier frequencies per parent (each gives a cosine and a sine column).
    lengthscales : sequence of float
        Grid of length scales, in standard deviations of each parent.
    amplitudes : sequence of float
        Grid of the process's prior standard deviation, in units of the noise sd.
    **kwargs
        ``num_atoms`` and ``constant_noise_scale``, see
        :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel`.

    Notes
    -----
    Fitted attributes: ``lengthscale_`` (the length scale of each draw), ``hinge_sd_`` (the prior
    standard deviation of each draw's hinge weights, data units per parent sd), ``grid_weights_``
    (posterior weights of the ``(lengthscale, amplitude)`` grid), ``x_center_`` / ``x_scale_``
    (the parents' standardisation) and those of the additive base class.
    """

    family = "gp"
    is_linear = False

    def __init__(
        self,
        noise: str = "gaussian",
        inference: str = "auto",
        *,
        num_frequencies: int = 32,
        lengthscales: Sequence[float] = (0.25, 0.4, 0.63, 1.0, 1.6, 2.5, 4.0),
        amplitudes: Sequence[float] = (0.25, 1.0, 4.0, 16.0, 64.0),
        **kwargs: Any,
    ) -> None:
        self.num_frequencies = num_frequencies
        self.lengthscales = lengthscales
        self.amplitudes = amplitudes
        super().__init__(noise, inference, **kwargs)

    @classmethod
    def from_fitted_state(cls, params: Mapping[str, Any], state: Mapping[str, Any]) -> GPANM:
        """See :meth:`Mechanism.from_fitted_state`; the grids come back as tuples (JSON stores lists)."""
        params = {k: tuple(v) if k in ("lengthscales", "amplitudes") and isinstance(v, list) else v
                  for k, v in params.items()}
        state = {k: tuple(v) if k in ("lengthscale_grid_", "amplitude_grid_") and isinstance(v, list) else v
                 for k, v in state.items()}
        return cast(GPANM, super().from_fitted_state(params, state))

    def _allowed_noise(self) -> tuple[str, ...]:
        return ("gaussian", "bootstrap", "bootstrap_gpd")

    def _check_params(self) -> tuple[np.ndarray, np.ndarray, str]:
        method = self._resolve_inference()
        if method not in ("conjugate", "bootstrap"):
            raise ConfigError(f"GPANM supports inference 'conjugate' (Gaussian noise) or 'bootstrap', got {method!r}")
        m = self.num_frequencies
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ConfigError(f"GPANM: num_frequencies must be a positive integer, got {m!r}")
        grids = []
        for name in ("lengthscales", "amplitudes"):
            try:
                grid = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                grid = np.array([np.nan])
            if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
                raise ConfigError(f"GPANM: {name} must be a non-empty sequence of positive numbers, got {getattr(self, name)!r}")
            grids.append(grid)
        return grids[0], grids[1], method

    # -- feature map --------------------------------------------------------------------------
    def _learn_features(self, parents: np.ndarray) -> None:
        self.num_parents_ = parents.shape[1]
        scale = parents.std(0)
        center = parents.mean(0)
        scale = np.where(never_varied(parents), 1.0, scale)
        self.x_center_ = torch.as_tensor(center, dtype=torch.float64)
        self.x_scale_ = torch.as_tensor(scale, dtype=torch.float64)
        self.frequencies_ = torch.as_tensor(fourier_frequencies(int(self.num_frequencies)), dtype=torch.float64)
        z = (parents - center) / scale
        self.z_low_ = torch.as_tensor(z.min(0), dtype=torch.float64)
        self.z_high_ = torch.as_tensor(z.max(0), dtype=torch.float64)

    def _columns(self, parents: Sequence[torch.Tensor], inv_lengthscale: torch.Tensor) -> Iterator[torch.Tensor]:
        """Per parent: the parent, ``cos, sin`` of each frequency over the length scale, two hinges.

        The hinges ``(z - z_max)_+`` and ``(z_min - z)_+`` are zero on the training data.
        """
        for k, p in enumerate(parents):
            yield p
            z = (p - self.x_center_[k].to(p.dtype)) / self.x_scale_[k].to(p.dtype)
            for w in self.frequencies_:
                angle = z * (w * inv_lengthscale).to(p.dtype)
                yield torch.cos(angle)
                yield angle.sin_()
            yield (z - self.z_high_[k].to(p.dtype)).clamp_(min=0)
            yield (self.z_low_[k].to(p.dtype) - z).clamp_(min=0)

    def _feature_columns(self, parents: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        # the length scale varies over the draws: every column is shaped (..., D)
        return self._columns(parents, 1.0 / self.lengthscale_)

    # -- fast evaluation: each draw's Fourier sum tabulated on a grid of z -----------------------
    def loc(self, parents: Sequence[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Posterior draws of ``f(PA)``, shape ``(..., D)`` (see :meth:`AdditiveNoiseModel.loc`).

        The Fourier sum of each parent and draw is a smooth function of one variable: it is
        tabulated once per dtype on a grid of step ``0.1 l_min / w_max`` (ten points per radian
        of the fastest feature) reaching ``TABLE_MARGIN`` sd beyond the training data, and read by
        cubic Hermite interpolation with exact slopes (relative error ~1e-8, below float32's
        round-off), instead of ``2 m`` sines and cosines per element. Parent values beyond the
        table (importance sampling moves some far out) take the exact sum, those values only.
        """
        self._check_fitted()
        dtype = dtype or (parents[0].dtype if parents else self.intercept_.dtype)
        tables = fourier_tables(self, dtype) if parents else None
        if tables is None:
            return super().loc(parents, dtype)
        per_parent = 3 + 2 * int(self.num_frequencies)
        coef = self.coef_.to(dtype)
        out = self.intercept_.to(dtype)
        for k, (p, (p_low, p_high, low, step, values, slopes)) in enumerate(zip(parents, tables)):
            base = k * per_parent  # coef_ columns: per parent the trend, 2 m Fourier weights, 2 hinges
            z = (p - self.x_center_[k].to(dtype)) / self.x_scale_[k].to(dtype)
            far = (p < p_low) | (p > p_high)
            if bool(far.any()):
                top = low + step * (values.numel() // self.num_draws_ - 1)
                fourier = hermite(z.clamp(low, top), low, step, values, slopes, self.num_draws_)
                far = far.expand(fourier.shape)
                draws = torch.arange(self.num_draws_).expand(fourier.shape)[far]
                fourier[far] = fourier_sum(self, z.expand(fourier.shape)[far], draws, k, dtype)
            else:
                fourier = hermite(z, low, step, values, slopes, self.num_draws_)
            out = out + p * coef[:, base] + fourier
            out = out + (z - self.z_high_[k].to(dtype)).clamp_(min=0) * coef[:, base + per_parent - 2]
            out = out + (self.z_low_[k].to(dtype) - z).clamp_(min=0) * coef[:, base + per_parent - 1]
        return out

    def conditioned_on(self, y: np.ndarray, parents: np.ndarray, *, seed: int = 0) -> GPANM:
        """The hinge weights conditioned on rows beyond the data (:func:`~bayesrca.mechanisms.hinges.condition_hinges`)."""
        return condition_hinges(self, y, parents, seed=seed)

    def design(self, y: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The features at the most probable length scale, and ``y`` (see :meth:`Mechanism.design`)."""
        self._check_fitted()
        y = np.asarray(y, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.float64).reshape(len(y), -1)
        if parents.shape[1] == 0:
            return np.zeros((len(y), 0)), y
        inv = torch.tensor(1.0 / self.lengthscale_mode_, dtype=torch.float64)
        cols = list(self._columns([torch.as_tensor(parents[:, k]) for k in range(parents.shape[1])], inv))
        return torch.stack(cols, -1).numpy(), y

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, y: np.ndarray, parents: np.ndarray, *, num_draws: int, progress: bool = False, node: str = "") -> GPANM:
        lengthscales, amplitudes, method = self._check_params()
        y = np.asarray(y, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.float64).reshape(len(y), -1)
        p, n = parents.shape[1], len(y)
        if p == 0:
            raise ConfigError(f"node {node!r}: GPANM models a node with parents; use RootDistribution for a root")
        if n < p + 2:
            raise DataError(f"node {node!r} has {p} parent(s) but only {n} training rows; at least {p + 2} rows are needed")
        self.__dict__.pop("_table_cache", None)
        self._learn_features(parents)
        m = int(self.num_frequencies)
        per_parent = 3 + 2 * m  # trend, Fourier pairs, two hinges
        y_center, y_scale = float(y.mean()), float(y.std())
        self.constant_ = bool(never_varied(y))
        self.lengthscale_grid_ = tuple(float(v) for v in lengthscales)
        self.amplitude_grid_ = tuple(float(v) for v in amplitudes)
        if self.constant_:
            self._fit_constant(y, num_draws, lengthscales, amplitudes, p * per_parent)
            return self
        t = torch.as_tensor((y - y_center) / y_scale)
        z = torch.as_tensor((parents - self.x_center_.numpy()) / self.x_scale_.numpy())  # (n, p)
        # column scale that turns the prior N(0, sigma2 * prior_var) into N(0, sigma2 * g): the
        # conjugate engines of `inference` take one g for every coefficient
        def column_scale(r: float) -> torch.Tensor:
            unit = torch.cat([torch.ones(1, dtype=torch.float64), torch.full((2 * m,), r / (m * _TREND_G) ** 0.5)])
            return torch.cat([torch.ones(1, dtype=torch.float64), unit.repeat(p)])

        scales = torch.stack([column_scale(float(r)) for r in amplitudes])  # (R, F)
        designs, stats, log_ev = [], [], []
        for ell in lengthscales:
            X = self._standard_design(z, 1.0 / float(ell))
            gram, xty = X.T @ X, X.T @ t
            sg, sxty = scales.unsqueeze(-1) * gram * scales.unsqueeze(-2), scales * xty  # (R, F, F), (R, F)
            log_ev.append(inference.conjugate_log_evidence(sg, sxty, float(t @ t), n, g=_TREND_G))
            designs.append(X)
            stats.append((sg, sxty))  # the chosen cells' posteriors reuse them
        log_ev_t = torch.stack(log_ev)  # (L, R); uniform prior over the grid
        weights = torch.softmax(log_ev_t.reshape(-1), 0)
        self.grid_weights_ = weights.reshape(log_ev_t.shape).numpy()
        self.lengthscale_mode_ = float(lengthscales[int(self.grid_weights_.sum(1).argmax())])
        choice = torch.multinomial(weights, num_draws, replacement=True)
        order = torch.randperm(num_draws)
        choice = choice[order]
        coefs = torch.zeros(num_draws, 1 + p * per_parent, dtype=torch.float64)
        fitted_cols = torch.cat([torch.ones(1, dtype=torch.bool),
                                 (torch.arange(per_parent) < per_parent - 2).repeat(p)])  # all but the hinges
        hinge_cols = ~fitted_cols
        noise_parts: dict[str, torch.Tensor] = {}
        boot_residuals = torch.empty(num_draws, n, dtype=torch.float64)  # for the GPD tails
        boot_weights = torch.empty(num_draws, n, dtype=torch.float64)
        ell_draw = torch.empty(num_draws, dtype=torch.float64)
        hinge_sd = torch.empty(num_draws, dtype=torch.float64)
        for idx in torch.unique(choice).tolist():
            where = (choice == idx).nonzero().squeeze(-1)
            i, j = divmod(idx, len(amplitudes))
            draws, _ = inference.conjugate_posterior(designs[i], t, len(where), g=_TREND_G, gram=stats[i][0][j],
                                                     xty=stats[i][1][j])  # the design's columns times scales[j]
            if method == "bootstrap":  # the noise: a smoothed Bayesian bootstrap of each draw's residuals
                residuals = t - (draws["coef"] * scales[j]) @ designs[i].T
                rows = torch.distributions.Exponential(t.new_ones(())).sample(residuals.shape)
                rows = rows / rows.sum(-1, keepdim=True)
                atoms, bandwidth = inference.residual_kde(residuals, rows, num_atoms=self.num_atoms)
                boot_residuals[where], boot_weights[where] = residuals, rows
                draws = {"coef": draws["coef"], "atoms": atoms, "bandwidth": bandwidth}
            block = torch.zeros(len(where), 1 + p * per_parent, dtype=torch.float64)
            block[:, fitted_cols] = draws.pop("coef") * scales[j]
            # the hinges are zero on the data, so their weights keep the prior: the slope beyond
            # the data may change by as much as the process's derivative (sd amplitude / length
            # scale); the uncertainty of f then grows linearly with the distance from the data
            sigma = draws["sigma"] if "sigma" in draws else draws["atoms"].std(-1)
            slope_sd = sigma * float(amplitudes[j]) / float(lengthscales[i])
            block[:, hinge_cols] = torch.randn(len(where), 2 * p, dtype=torch.float64) * slope_sd.unsqueeze(-1)
            hinge_sd[where] = slope_sd
            coefs[where] = block
            for key, value in draws.items():
                if key not in noise_parts:
                    noise_parts[key] = torch.empty((num_draws,) + value.shape[1:], dtype=torch.float64)
                noise_parts[key][where] = value
            ell_draw[where] = float(lengthscales[i])
        # back to the data's scale: the trend columns are the raw parents, the Fourier columns
        # are computed from the standardised parent inside the feature map
        beta = coefs[:, 1:].reshape(num_draws, p, per_parent)
        slope = beta[:, :, 0] / self.x_scale_
        beta[:, :, 0] = slope
        self.intercept_ = y_center + y_scale * (coefs[:, 0] - (slope * self.x_center_).sum(-1))
        self.coef_ = y_scale * beta.reshape(num_draws, -1)
        tails: dict[str, Any] = {}
        if self.noise == "bootstrap_gpd":  # one GPD posterior per tail from all draws' residuals
            attach_gpd_tails(noise_parts, tails, boot_residuals, boot_weights, boot_residuals.mean(0))
        grids = tails.pop("tail_grids", None)
        self._tail_pool = None if grids is None else {**grids, "unit": y_scale}  # for tail_pooling
        self.noise_params_ = {k: v * y_scale if k in inference.SCALE_KEYS else v for k, v in noise_parts.items()}
        self.noise_family_ = "bootstrap" if tails.get("tails") == "kde" else self.noise
        self.lengthscale_ = ell_draw
        self.hinge_sd_ = hinge_sd * y_scale  # the hinge weights' prior sd per draw, on the data's scale
        w = self.grid_weights_
        self.diagnostics_ = {
            "inference": method, "exact": True, "hyperparameters": "grid (marginal likelihood x uniform prior)",
            "lengthscale_mode": self.lengthscale_mode_,
            "amplitude_mode": float(amplitudes[int(w.sum(0).argmax())]),
            "grid_effective_points": float(1.0 / np.sum(w**2)),
            **tails,
        }
        self.num_draws_ = int(num_draws)
        self.num_train_ = n
        return self

    def _standard_design(self, z: torch.Tensor, inv_lengthscale: float) -> torch.Tensor:
        """Design on the standardised scale: intercept, then per parent ``z, cos, sin, ...``."""
        m = len(self.frequencies_)
        X = torch.empty(len(z), 1 + z.shape[1] * (1 + 2 * m), dtype=torch.float64)  # filled in place, no copies
        X[:, 0] = 1.0
        for k in range(z.shape[1]):
            base = 1 + k * (1 + 2 * m)
            X[:, base] = z[:, k]
            angle = z[:, k, None] * (self.frequencies_ * inv_lengthscale)  # (n, m)
            torch.cos(angle, out=X[:, base + 1: base + 1 + 2 * m: 2])
            torch.sin(angle, out=X[:, base + 2: base + 1 + 2 * m: 2])
        return X

    def _fit_constant(self, y: np.ndarray, num_draws: int, lengthscales: np.ndarray, amplitudes: np.ndarray,
                      num_features: int) -> None:
        level = float(y.mean())
        self.intercept_ = torch.full((num_draws,), level, dtype=torch.float64)
        self.coef_ = torch.zeros(num_draws, num_features, dtype=torch.float64)
        self.noise_params_ = constant_noise_params(level, len(y), self.constant_noise_scale, num_draws)
        self.noise_family_ = "constant"
        self.lengthscale_ = torch.full((num_draws,), float(lengthscales.max()), dtype=torch.float64)
        self.hinge_sd_ = torch.zeros(num_draws, dtype=torch.float64)
        self.lengthscale_mode_ = float(lengthscales.max())
        self.grid_weights_ = np.full((len(lengthscales), len(amplitudes)), 1.0 / (len(lengthscales) * len(amplitudes)))
        self.diagnostics_ = {"inference": "prior (constant column)", "exact": True}
        self.num_draws_ = int(num_draws)
        self.num_train_ = len(y)
