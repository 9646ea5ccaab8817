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
#: An anomaly whose probed values rest on too few samples in more than this share of the draws
#: uses importance sampling (the share above which its result would be flagged).
PROBE_SHARE = 0.1


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
    gaussian = all(m.is_linear and getattr(m, "noise_is_scale_mixture", False) for m in mechs)
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
        self._probed = False

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

        On the first call, with importance sampling, a probe of coalitions decides which
        anomalies draw their noises from the proposal (:meth:`_probe`).
        """
        if not self._probed:
            self._probed = True
            self._probe(masks)
        out = self.estimator(masks)
        ess = self._estimated_ess(masks)
        self._set_exact(masks, out)
        if ess is not None:
            self.value_ess = torch.minimum(self.value_ess, ess.amin(0))
        return out

    def _probe(self, masks: torch.Tensor) -> None:
        """Importance sampling for the anomalies some of whose coalition values are rare.

        The proposal is first used for anomalies whose IT score is rare; an anomaly whose IT score
        is not, but whose event becomes rare once a kept noise points away from it, would get
        values at the Monte Carlo floor. The singletons and their complements are evaluated from
        the model's samples (few distinct restrictions to the propagated players, whose program
        runs cost most); an anomaly with a value on fewer than :data:`~bayesrca.counterfactual.tails.MIN_TAIL_ESS` effective
        samples in more than :data:`PROBE_SHARE` of the draws draws from the proposal from then
        on, for every coalition (one set of samples and weights: common random numbers).
        """
        propose_for = getattr(self.estimator, "propose_for", None)
        if propose_for is None or not getattr(self.estimator, "importance", False):
            return
        current = getattr(self.estimator, "proposal", None)
        if current is not None and bool(current.rare.all()):  # every anomaly draws from it already
            return
        single = torch.eye(masks.shape[1], dtype=torch.bool)
        probe = torch.cat([single, ~single])
        self.estimator(probe)
        ess = self._estimated_ess(probe)  # (C, K, D)
        if ess is None or not len(ess):
            return
        low = ((ess < tails.MIN_TAIL_ESS).double().mean(-1) > PROBE_SHARE).any(0)  # (K,)
        if bool(low.any()):
            propose_for(low)

    def _estimated_ess(self, masks: torch.Tensor) -> torch.Tensor | None:
        """``(C, K, D)``: the ESS behind the estimator's last values, ``inf`` where they are set exactly."""
        ess = getattr(self.estimator, "last_ess", None)  # (C, K, D) on the Monte Carlo path
        if ess is None or not len(ess):
            return None
        moves = self.moves.T.to(torch.float64)  # (n, D)
        full = (~masks).to(torch.float64) @ moves == 0  # (C, D)
        inert = masks.to(torch.float64) @ moves == 0
        return torch.where((full | inert).unsqueeze(1), torch.full_like(ess, float("inf")), ess)

    def _set_exact(self, masks: torch.Tensor, out: torch.Tensor) -> None:
        """The values that are exact whatever the estimator, in place."""
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
