"""Linear additive noise model ``X = b0 + b . PA + N``, optionally with sign-constrained coefficients."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from .. import inference
from ..exceptions import ConfigError
from .additive import AdditiveNoiseModel

__all__ = ["LinearANM", "COEF_SIGNS"]

#: The string forms of ``LinearANM(coef_sign=...)``: every coefficient >= 0 or every one <= 0.
COEF_SIGNS = {"positive": 1, "negative": -1}


class LinearANM(AdditiveNoiseModel):
    """Bayesian linear regression on the parents with a learned noise distribution.

    Linear in the noise, so attributions through chains of linear nodes use the fast
    matrix-product path (and closed-form tails when the noise is Gaussian).
    See :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel` for the other parameters.

    Parameters
    ----------
    noise, inference
        As in :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel`.
    coef_sign : None, "positive", "negative" or sequence of {1, -1, 0}
        Sign constraint on the parents' coefficients (the call-graph prior, see docs/method.md,
        "Call-graph priors"). None (default): unconstrained. ``"positive"``: every coefficient
        ``>= 0`` (a callee's latency or error rate can only raise its caller's; a callee's
        availability drop can only lower its caller's). ``"negative"``: every one ``<= 0``. A
        sequence gives one sign per parent (``1``: ``>= 0``, ``-1``: ``<= 0``, ``0``: free) in the
        order of :func:`bayesrca.graph.parents_of` (the order of ``graph.nodes``). The posterior
        is the unconstrained one restricted to the signs: exact draws for Gaussian noise
        (rejection and a Gibbs sampler, :mod:`bayesrca.constrained`), sign-constrained weighted
        least squares per draw for the bootstrap noises; Student-t noise, NUTS and SVI do not
        take a constraint.
    unvaried_coef_sd : float
        A parent that never varied in the training data keeps its prior over the effect instead of
        a coefficient fixed at 0: its coefficient's draws are ``Normal(0, unvaried_coef_sd)`` in the
        data's units (child per parent), ``sign * |Normal(0, unvaried_coef_sd)|`` under a sign
        constraint. The
        default 1 is the standardised scale's unit prior with the parent measured in the child's
        standard deviations (it has none of its own): a move of the parent moves the child by
        about as much, which is the call-graph reading of same-unit metrics (latency adds up,
        error rates and log-availabilities compose additively). Set it for parents in other units.
    **kwargs
        The other parameters of :class:`~bayesrca.mechanisms.additive.AdditiveNoiseModel`.
    """

    family = "linear"
    is_linear = True
    #: vague coefficient prior: few coefficients, and a ridge would bias exact relations among
    #: collinear parents (e.g. profit = revenue - cost), whose residuals are tiny
    prior_g = inference.VAGUE_G

    def __init__(self, noise: str = "bootstrap_gpd", inference: str = "auto", *, coef_sign: str | Sequence[int] | None = None,
                 unvaried_coef_sd: float = 1.0, **kwargs) -> None:
        super().__init__(noise, inference, **kwargs)
        self.coef_sign = coef_sign
        self.unvaried_coef_sd = unvaried_coef_sd

    def _learn_features(self, parents: np.ndarray) -> None:
        self.num_parents_ = parents.shape[1]

    def _feature_columns(self, parents: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        return iter(parents)

    def _coef_signs(self, num_features: int, method: str) -> np.ndarray | None:
        spec = self.coef_sign
        if spec is None:
            return None
        name = type(self).__name__
        if isinstance(spec, Mapping):
            raise ConfigError(
                f"{name}: coef_sign cannot be a mapping (a mechanism does not see its parents' names); "
                "give one sign per parent as a sequence, in the order of bayesrca.graph.parents_of(graph, node)"
            )
        if isinstance(spec, str):
            if spec not in COEF_SIGNS:
                raise ConfigError(f"{name}: coef_sign must be None, one of {sorted(COEF_SIGNS)} or a sequence of 1, -1, 0; got {spec!r}")
            signs = np.full(num_features, COEF_SIGNS[spec], dtype=np.int64)
        else:
            values = list(spec)
            if len(values) != num_features or any(isinstance(v, bool) or v not in (1, -1, 0) for v in values):
                raise ConfigError(
                    f"{name}: coef_sign as a sequence needs one of 1, -1, 0 per parent ({num_features} parent(s), in "
                    f"the order of bayesrca.graph.parents_of), got {spec!r}"
                )
            signs = np.asarray(values, dtype=np.int64)
        sd = self.unvaried_coef_sd
        if not (isinstance(sd, (int, float)) and not isinstance(sd, bool) and math.isfinite(sd) and sd > 0):
            raise ConfigError(f"{name}: unvaried_coef_sd must be a positive finite number, got {sd!r}")
        if method not in ("conjugate", "bootstrap") and signs.any():
            raise ConfigError(
                f"{name}: coef_sign needs noise 'gaussian' (conjugate) or 'bootstrap'/'bootstrap_gpd' "
                f"(bootstrap inference), got noise={self.noise!r} with inference {method!r}"
            )
        return signs if signs.any() else None

    def __repr__(self) -> str:
        # the repr seeds each candidate's cross-validation in mechanisms="auto"
        # (bayesrca.selection): without a constraint it stays what it was before coef_sign existed
        params = self.get_params()
        if self.coef_sign is None and self.unvaried_coef_sd == 1.0:
            del params["coef_sign"], params["unvaried_coef_sd"]
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    def describe(self) -> str:
        base = super().describe()
        return base if self.coef_sign is None else f"{base}/sign-constrained"
