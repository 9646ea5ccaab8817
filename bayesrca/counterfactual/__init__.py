"""Counterfactuals over the one SCM program: abduction, noise replacement and tail probabilities.

The steps are Pyro effect handlers (:mod:`bayesrca.counterfactual.handlers`) over
:meth:`bayesrca.BayesianSCM.program`; the engine turns them into the set function
:math:`v(S)` of the IT-score attribution, per posterior draw.
"""

from .engine import (
    RARE_HITS,
    SORTED_MIN_ANOMALIES,
    CounterfactualEngine,
    abduct_noise,
    choose_engine,
    fresh_noise_trace,
    linearize,
    nonlinear_closure,
)
from .handlers import AbductNoise, DropGaussianPart, KeepNoise, abduct, keep_noise

__all__ = [
    "RARE_HITS",
    "SORTED_MIN_ANOMALIES",
    "AbductNoise",
    "CounterfactualEngine",
    "DropGaussianPart",
    "KeepNoise",
    "abduct",
    "abduct_noise",
    "choose_engine",
    "fresh_noise_trace",
    "keep_noise",
    "linearize",
    "nonlinear_closure",
]
