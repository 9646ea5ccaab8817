"""Counterfactuals over the one SCM program: abduction, noise replacement and tail probabilities.

The steps are Pyro effect handlers (:mod:`bayesrca.counterfactual.handlers`) over
:meth:`bayesrca.BayesianSCM.program`, combined into program-level operations
(:mod:`~bayesrca.counterfactual.ops`); the engine (:mod:`~bayesrca.counterfactual.engine`) turns
them into the set function :math:`v(S)` of the IT-score attribution, per posterior draw, with
closed-form Gaussian tails (:mod:`~bayesrca.counterfactual.analytic`) or plain and conditional
Monte Carlo (:mod:`~bayesrca.counterfactual.montecarlo`, :mod:`~bayesrca.counterfactual.counting`).
The tail probabilities and thresholds themselves are in :mod:`~bayesrca.counterfactual.tails`.
"""

from .analytic import AnalyticTails
from .counting import RARE_HITS
from .decomposition import TargetDecomposition, decompose_target
from .engine import CounterfactualEngine, choose_engine
from .handlers import AbductNoise, DropGaussianPart, KeepNoise, SwapMechanism, abduct, keep_noise
from .montecarlo import SORTED_MIN_ANOMALIES, MonteCarloTails
from .ops import abduct_noise, fresh_noise_trace, linearize, nonlinear_closure

__all__ = [
    "RARE_HITS",
    "SORTED_MIN_ANOMALIES",
    "AbductNoise",
    "AnalyticTails",
    "CounterfactualEngine",
    "DropGaussianPart",
    "KeepNoise",
    "MonteCarloTails",
    "SwapMechanism",
    "TargetDecomposition",
    "abduct",
    "abduct_noise",
    "choose_engine",
    "decompose_target",
    "fresh_noise_trace",
    "keep_noise",
    "linearize",
    "nonlinear_closure",
]
