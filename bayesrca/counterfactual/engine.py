r"""Counterfactual set functions for outlier attribution, derived from the one SCM program.

For anomaly rows and a target t with players P (its ancestors and itself), the engine returns
for coalitions S (boolean masks over P) the log-probabilities

.. math:: v_s(S) = \log P(\tau(X_t) \ge \tau(x_t) \mid N_S = n_S^{(s)})

per anomaly and posterior draw s. Everything comes from the one SCM program and its handlers:

* abduction and the split of X_t into a propagated and a linearised part
  (:mod:`bayesrca.counterfactual.ops`, :mod:`bayesrca.counterfactual.decomposition`);
* one tail estimator with a common interface (``__call__(masks) -> (C, K, D, E)``, ``it_score``,
  ``lo``, ``hi``, ``integrated``): closed-form Gaussian tails when every player is
  linear-Gaussian (:class:`~bayesrca.counterfactual.analytic.AnalyticTails`), else plain or
  conditional Monte Carlo, with importance sampling toward rare events
  (:class:`~bayesrca.counterfactual.montecarlo.MonteCarloTails`,
  :mod:`~bayesrca.counterfactual.importance`);
* the engine itself, which picks the estimator (:func:`choose_engine`) and sets the values that
  are exact whatever the estimator: ``v = 0`` when no free player moves X_t, ``v = -IT`` when no
  kept player does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch

from . import tails
from .analytic import AnalyticTails
from .decomposition import decompose_target
from .montecarlo import MonteCarloTails
from ..exceptions import ConfigError

__all__ = ["PATHS", "choose_engine", "CounterfactualEngine"]

#: The estimator paths: closed-form Gaussian tails and Monte Carlo.
PATHS = ("analytic", "mc")


def choose_engine(scm, players: Sequence[Hashable], tail: str = "auto") -> str:
    """The estimator path for a target's players.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    players : sequence
        The target's ancestors and itself.
    tail : {"auto", "analytic", "mc", "conditional", "plain"}
        The requested tail estimator; ``"auto"`` takes the closed form where it is exact.

    Returns
    -------
    str
        ``"analytic"`` (all linear-Gaussian) or ``"mc"`` (Monte Carlo tails).

    Raises
    ------
    ConfigError
        If ``tail="analytic"`` but some player is not linear with Gaussian noise.
    """
    mechs = [scm.mechanisms_[p] for p in players]
    gaussian = all(m.is_linear and getattr(m, "noise_is_gaussian", False) for m in mechs)
    if tail == "analytic" and not gaussian:
        raise ConfigError(
            "tail='analytic' needs linear mechanisms with Gaussian noise on the target and all its ancestors; "
            "use tail='auto'"
        )
    return "analytic" if gaussian and tail in ("auto", "analytic") else "mc"  # "mc", "conditional", "plain": Monte Carlo


class CounterfactualEngine:
    """Set function ``v(S)`` for a batch of anomalies, every posterior draw at once.

    Parameters
    ----------
    scm : BayesianSCM
        A fitted model.
    target : hashable
        The target node.
    players : sequence
        The target's ancestors and itself in topological order (player j is ``players[j]``).
    observed : mapping
        Node to observed values of shape ``(K, 1)``.
    path : {"analytic", "mc"}
        Closed-form Gaussian tails or Monte Carlo, see :func:`choose_engine`.
    num_mc_samples : int
        Fresh noise samples M per draw for Monte Carlo.
    base_score : str, optional
        Base score of the IT score, see :mod:`bayesrca.counterfactual.tails`.
    max_elements : int, optional
        Largest intermediate tensor (elements) the Monte Carlo path builds at once.
    conditional : bool, optional
        Integrate the Gaussian part of the noises that enter X_t additively in closed form where
        an event is rare (conditional Monte Carlo, no floor on probabilities); False gives plain
        Monte Carlo with the ``(count + 1) / (M + 1)`` rule, capped near ``log(M + 1)``.
    importance : bool, optional
        With ``conditional``: importance sampling of the sampled noises toward the events of the
        anomalies whose event is rare (:mod:`bayesrca.counterfactual.importance`).

    Raises
    ------
    ConfigError
        If ``path`` or ``base_score`` is unknown.
    """

    def __init__(
        self,
        scm,
        target: Hashable,
        players: Sequence[Hashable],
        observed: Mapping[Hashable, torch.Tensor],
        *,
        path: str,
        num_mc_samples: int,
        base_score: str = "median_cdf",
        max_elements: int = 2**25,
        conditional: bool = True,
        importance: bool = True,
    ) -> None:
        tails.event_side(base_score)
        if path not in PATHS:
            raise ConfigError(f"path must be one of {PATHS}, got {path!r}")
        self.path = path
        parts = decompose_target(scm, target, players, observed, propagate_nonlinear=path == "mc")
        self.players = parts.players
        #: ``(D, n)`` bool: players whose noise can move X_t in a draw
        self.moves = parts.moves
        x = observed[target]  # (K, 1)
        if path == "analytic":
            self.estimator: AnalyticTails | MonteCarloTails = AnalyticTails(scm, parts, x, base_score)
        else:
            self.estimator = MonteCarloTails(
                scm, parts, x, base_score=base_score, num_mc_samples=num_mc_samples,
                max_elements=max_elements, conditional=conditional, importance=importance,
            )
        #: ``(K, D)``: the smallest ESS behind any estimated coalition value so far (``inf``: none,
        #: or closed form); values set exactly (``v = 0``, ``v = -IT``) do not count
        self.value_ess = torch.full(x.shape[:1] + (scm.num_draws_,), float("inf"), dtype=torch.float64)

    @property
    def it_score(self) -> torch.Tensor:
        """``(K, D)``: the IT score of each anomaly per draw."""
        return self.estimator.it_score

    @property
    def lo(self) -> torch.Tensor:
        """``(K, D)``: the lower threshold of the event (``-inf`` for an upper one-sided score)."""
        return self.estimator.lo

    @property
    def hi(self) -> torch.Tensor:
        """``(K, D)``: the upper threshold of the event (``inf`` for a lower one-sided score)."""
        return self.estimator.hi

    @property
    def tail_ess(self) -> torch.Tensor:
        """``(K, D)``: effective sample size behind each IT score (``inf`` in closed form)."""
        return self.estimator.tail_ess

    @property
    def integrated(self) -> bool:
        """Whether a Gaussian part is integrated by conditional Monte Carlo."""
        return self.estimator.integrated

    @property
    def importance(self) -> bool:
        """Whether some anomaly's noises are drawn from an importance-sampling proposal."""
        return getattr(self.estimator, "proposal", None) is not None

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(S)`` for masks of shape ``(C, n)``: a tensor ``(C, K, D, E)`` of log-probabilities.

        ``E = 1`` on the closed-form path. On the Monte Carlo path ``E = 3``: the estimate from all
        M fresh samples, then the estimates from each half of them, whose difference measures the
        Monte Carlo error at no extra cost.
        """
        out = self.estimator(masks)
        ess = getattr(self.estimator, "last_ess", None)  # (C, K, D) on the Monte Carlo path
        # no free player moves X_t: the kept noises reproduce x_t, which lies in the event (v = 0, as
        # for the full set); left to the tails, the zero spread would give log 1/2 or -inf from rounding
        moves = self.moves.T.to(torch.float64)  # (n, D)
        full = (~masks).to(torch.float64) @ moves == 0  # (C, D)
        if bool(full.any()):
            out.masked_fill_(full.reshape(-1, 1, self.moves.shape[0], 1), 0.0)
        # no kept player moves X_t (the empty set, or only null players kept): X_t follows its
        # marginal, v = -IT exactly, so a null player's marginal contributions are exactly 0
        inert = masks.to(torch.float64) @ moves == 0
        rows = inert.any(-1).nonzero().squeeze(-1)
        if len(rows):
            it = -self.it_score.to(out.dtype)  # (K, D)
            out[rows, :, :, 0] = torch.where(inert[rows].unsqueeze(1), it, out[rows, :, :, 0])
        if ess is not None and len(ess):
            exact = (full | inert).unsqueeze(1)  # (C, 1, D)
            estimated = torch.where(exact, torch.full_like(ess, float("inf")), ess)
            self.value_ess = torch.minimum(self.value_ess, estimated.amin(0))
        return out
