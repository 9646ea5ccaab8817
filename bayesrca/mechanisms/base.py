"""The protocol every node mechanism follows.

A mechanism is a Pyro model of one node, ``X_j = f_j(PA_j, N_j; theta_j)``, with an explicit
noise site. After :meth:`Mechanism.fit` it holds ``D`` posterior draws of ``theta_j`` and every
method broadcasts over them: tensors carry the draw dimension last, so a node value has shape
``(..., D)`` and can be combined with plates over Monte Carlo samples, anomalies or coalitions.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import numpy as np
import pyro
import torch
from pyro.poutine.runtime import effectful

from ..exceptions import ConfigError, NotFittedError

__all__ = ["Mechanism", "noise_site", "apply_mechanism", "never_varied", "NOISE_ROLE", "MECHANISM_EFFECT"]

#: ``infer`` tag of the noise sites; the counterfactual handlers act on these sites only.
NOISE_ROLE = "bayesrca.noise"


def never_varied(values: np.ndarray) -> np.ndarray:
    """Whether each column of ``values`` (rows first; a 1-D array is one column) never varied in
    training: its sd is at most ``1e-12`` of ``max(1, |mean|)`` (rounding of a constant).

    Returns a bool array of the columns' shape (0-d for 1-D input). The one test behind every
    "never varied" rule: a constant column's own noise (:mod:`bayesrca.mechanisms.constant`) and the
    prior kept over the effect of a constant parent.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim > 1 and values.shape[1] == 0:
        return np.zeros(0, dtype=bool)
    centre, scale = values.mean(0), values.std(0)
    return scale <= 1e-12 * np.maximum(1.0, np.abs(centre))


def noise_site(node: object) -> str:
    """Pyro site name of a node's noise."""
    return f"noise[{node}]"


#: Pyro effect type of a mechanism's application; a handler sees it in ``_pyro_mechanism``.
MECHANISM_EFFECT = "mechanism"


def _forward(mechanism: Mechanism, noise: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
    return mechanism.forward(noise, parents)


#: ``apply_mechanism(mechanism, noise, parents, infer={"node": name})``: ``mechanism.forward(noise,
#: parents)`` as a Pyro effect, so that a handler (e.g.
#: :class:`~bayesrca.counterfactual.handlers.SwapMechanism`) can compute the node another way.
#: Without handlers it is the plain call.
apply_mechanism = effectful(_forward, type=MECHANISM_EFFECT)


class Mechanism(abc.ABC):
    """Base class of node mechanisms (scikit-learn style: parameters in ``__init__``, state after fit).

    Subclasses implement :meth:`fit`, :meth:`noise_distribution`, :meth:`forward` and
    :meth:`abduct`; the node's Pyro program, its log-likelihood and sampling follow from these.
    """

    #: Short family name used in summaries ("linear", "spline", "root").
    family: ClassVar[str] = "mechanism"
    #: True when ``forward`` is affine in the parents and additive in the noise.
    is_linear: ClassVar[bool] = False
    #: True when the noise is a deterministic function of (x, parents, theta).
    invertible: ClassVar[bool] = True

    # learned state, set by ``fit`` (declared for type checkers; absent until fitted)
    #: posterior draws the mechanism was fitted with
    num_draws_: int
    #: fit diagnostics (scalars are shown in the model summary)
    diagnostics_: dict[str, Any]

    # -- fitted state -------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "num_draws_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit() first")

    def fitted_state(self) -> dict[str, Any]:
        """The learned attributes (scikit-learn convention: names ending in ``_``) by name.

        Together with :meth:`get_params` this is everything :meth:`from_fitted_state` needs to
        re-create the fitted mechanism (e.g. when a model is saved).
        """
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    @classmethod
    def from_fitted_state(cls, params: Mapping[str, Any], state: Mapping[str, Any]) -> Mechanism:
        """Re-create a fitted mechanism from its parameters and its :meth:`fitted_state`.

        The restore hook of :mod:`bayesrca.persistence`: the mechanism sets its own learned
        attributes, nobody else writes them.

        Parameters
        ----------
        params : mapping
            Constructor parameters, as returned by :meth:`get_params`.
        state : mapping
            Learned attributes, as returned by :meth:`fitted_state`.

        Returns
        -------
        Mechanism
            A fitted instance of ``cls``.

        Raises
        ------
        ConfigError
            If a state name is not a learned attribute (it must end in ``_``) or the state lacks
            ``num_draws_``.
        """
        bad = [k for k in state if not (isinstance(k, str) and k.endswith("_") and not k.startswith("_"))]
        if bad:
            raise ConfigError(f"{cls.__name__}: fitted state names must end in '_'; got {bad!r}")
        if "num_draws_" not in state:
            raise ConfigError(f"{cls.__name__}: the fitted state lacks 'num_draws_'")
        mech = cls(**params)
        for key, value in state.items():
            setattr(mech, key, value)
        return mech

    @abc.abstractmethod
    def fit(self, y: np.ndarray, parents: np.ndarray, *, num_draws: int, progress: bool = False, node: str = "") -> Mechanism:
        """Draw ``num_draws`` posterior samples of the parameters from training data.

        Parameters
        ----------
        y : ndarray, shape (n,)
            The node's training values.
        parents : ndarray, shape (n, p)
            The parents' training values, in the graph's parent order (p may be 0).
        num_draws : int
            Number of posterior draws D to keep.
        progress : bool
            Show a progress bar for long inference (NUTS, SVI).
        node : str
            The node's name, used in warnings.

        Returns
        -------
        Mechanism
            ``self``.
        """

    @abc.abstractmethod
    def noise_distribution(self) -> pyro.distributions.TorchDistribution:
        """The noise distribution with batch shape ``(D,)``, one per posterior draw."""

    @abc.abstractmethod
    def forward(self, noise: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """The node's value given its noise and parents (all shaped ``(..., D)``)."""

    @abc.abstractmethod
    def abduct(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """The noise that reproduces ``value`` from ``parents`` under every draw (invertible case)."""

    def check_values(self, values: np.ndarray, node: str = "") -> None:
        """Raise :class:`~bayesrca.exceptions.DataError` for values this mechanism cannot produce.

        Continuous mechanisms accept any finite value (checked elsewhere); discrete ones check
        their support, so an impossible anomaly is refused instead of silently misattributed.
        """

    def design(self, y: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature matrix and response of the mechanism's Gaussian working regression.

        The regression ``response ~ features`` that a change test compares across data sets
        (:func:`bayesrca.attribution.change_log_bayes_factor`). This default uses the parents as
        the features and ``y`` as the response; additive-noise models use their own feature map
        (e.g. a spline basis) and response (e.g. the log for a log-normal root). Needs no fit
        beyond the feature map's learned settings.

        Parameters
        ----------
        y : ndarray, shape (n,)
            The node's values.
        parents : ndarray, shape (n, p)
            The parents' values, in the graph's parent order (p may be 0).

        Returns
        -------
        features : ndarray, shape (n, F)
            float64 features (F may be 0).
        response : ndarray, shape (n,)
            float64 response.
        """
        y = np.asarray(y, dtype=np.float64)
        return np.asarray(parents, dtype=np.float64).reshape(len(y), -1), y

    def conditioned_on(self, y: np.ndarray, parents: np.ndarray, *, seed: int = 0) -> Mechanism:
        """The mechanism with its unidentified part beyond the training data conditioned on rows.

        A mechanism whose posterior keeps a part at its prior because the training data never
        reach it (:class:`~bayesrca.mechanisms.GPANM`'s hinges beyond the training range)
        returns a copy with that part conditioned on the rows ``(y, parents)``; every other
        mechanism (this default) returns ``self``. Used by
        :func:`~bayesrca.attribute_anomalies` for anomalies beyond the data.
        """
        return self

    def log_prob(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Log-likelihood of ``value`` given ``parents`` per draw, shape ``(..., D)``."""
        self._check_fitted()
        return self.noise_distribution().log_prob(self.abduct(value, parents)) + self.log_abs_det_jacobian(value, parents)

    def log_abs_det_jacobian(self, value: torch.Tensor, parents: Sequence[torch.Tensor]) -> torch.Tensor:
        """log |d noise / d value|; zero for additive noise."""
        return torch.zeros((), dtype=value.dtype)

    def node_program(self, name: object, parents: Sequence[torch.Tensor], parent_names: Sequence[object]) -> torch.Tensor:
        """The node's Pyro program: sample the noise site, then apply the mechanism.

        The noise site carries an ``abduct`` callback in its ``infer`` dict so that the
        :class:`~bayesrca.counterfactual.handlers.AbductNoise` handler can replace the sampled noise by the
        noise that reproduces an observed row, from the observed parent values. The mechanism is
        applied through the :data:`MECHANISM_EFFECT` effect (:func:`apply_mechanism`), so that
        :class:`~bayesrca.counterfactual.handlers.SwapMechanism` can swap it for another one.
        """
        self._check_fitted()

        def abduct(observed: Mapping[object, torch.Tensor]) -> torch.Tensor:
            return self.abduct(observed[name], [observed[p] for p in parent_names])

        infer: dict[str, Any] = {"role": NOISE_ROLE, "node": name, "abduct": abduct}
        noise = pyro.sample(noise_site(name), self.noise_distribution(), infer=cast(Any, infer))  # our own keys
        return apply_mechanism(self, noise, parents, infer={"node": name})

    def describe(self) -> str:
        """One-line description, e.g. ``linear/bootstrap``."""
        return self.family

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def clone(self) -> Mechanism:
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

