"""bayesrca: Bayesian root-cause analysis of outliers with Pyro.

Fit a :class:`BayesianSCM` on normal data, then :func:`attribute_anomalies` gives the posterior
of every upstream node's contribution to an outlier's IT score, with credible intervals and
the probability that each node is the top root cause.
"""

from .attribution import (
    attribute_anomalies,
    attribute_mean_deviation,
    distribution_change,
    intrinsic_causal_influence,
    intrinsic_causal_influence_sample,
    root_cause_posterior,
)
from .exceptions import (
    BayesRCAError,
    BayesRCAWarning,
    ConfigError,
    ConstantColumnWarning,
    ConvergenceWarning,
    DataError,
    ExtrapolationWarning,
    ImputationWarning,
    CompleteCaseWarning,
    TailEstimateWarning,
    GraphError,
    NotFittedError,
)
from .mechanisms import (
    BernoulliGLM,
    CategoricalGLM,
    FamilyMixture,
    GPANM,
    LinearANM,
    Mechanism,
    PoissonGLM,
    RootDistribution,
    SplineANM,
)
from .ensemble import GraphEnsemble
from .graph_check import check_graph
from .persistence import load, save
from .report import write_report
from .results import AttributionResult, ContributionResult, RootCauseResult, ScoreResult
from .scm import BayesianSCM
from .scores import outlier_scores, reference_it_scores
from .shapley import shapley_values

__version__ = "0.1.0"

__all__ = [
    "BayesianSCM",
    "attribute_anomalies",
    "outlier_scores",
    "reference_it_scores",
    "load",
    "save",
    "write_report",
    "shapley_values",
    "AttributionResult",
    "ScoreResult",
    "Mechanism",
    "LinearANM",
    "SplineANM",
    "GPANM",
    "RootDistribution",
    "BernoulliGLM",
    "CategoricalGLM",
    "PoissonGLM",
    "FamilyMixture",
    "BayesRCAError",
    "GraphError",
    "DataError",
    "ConfigError",
    "NotFittedError",
    "BayesRCAWarning",
    "ConvergenceWarning",
    "ConstantColumnWarning",
    "ExtrapolationWarning",
    "ImputationWarning",
    "CompleteCaseWarning",
    "TailEstimateWarning",
    "distribution_change",
    "intrinsic_causal_influence",
    "intrinsic_causal_influence_sample",
    "attribute_mean_deviation",
    "ContributionResult",
    "GraphEnsemble",
    "check_graph",
    "root_cause_posterior",
    "RootCauseResult",
]
