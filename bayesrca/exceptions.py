"""Exceptions and warnings raised by bayesrca.

Every error raised for bad user input is a subclass of :class:`BayesRCAError`, and its
message names the offending node, column or value and says what to change.
"""

from __future__ import annotations

__all__ = [
    "BayesRCAError",
    "GraphError",
    "DataError",
    "NotFittedError",
    "ConfigError",
    "BayesRCAWarning",
    "ConvergenceWarning",
    "ConstantColumnWarning",
    "ExtrapolationWarning",
    "ImputationWarning",
    "CompleteCaseWarning",
]


class BayesRCAError(Exception):
    """Base class of every error bayesrca raises on purpose."""


class GraphError(BayesRCAError, ValueError):
    """The causal graph is not usable: a cycle, an unknown node, or a graph changed after fit."""


class DataError(BayesRCAError, ValueError):
    """A data frame does not match the graph or holds values that cannot be modelled."""


class ConfigError(BayesRCAError, ValueError):
    """An argument has a value outside its allowed range or set."""


class NotFittedError(BayesRCAError, AttributeError):
    """A model was used before :meth:`bayesrca.BayesianSCM.fit` was called."""


class BayesRCAWarning(UserWarning):
    """Base class of bayesrca's warnings."""


class ConvergenceWarning(BayesRCAWarning):
    """Posterior inference did not converge well (R-hat, ESS or ELBO diagnostics)."""


class ConstantColumnWarning(BayesRCAWarning):
    """A column is constant in the training data; its noise scale comes from the prior."""


class ExtrapolationWarning(BayesRCAWarning):
    """An anomaly feeds a nonlinear mechanism far outside the parent values it was fitted on."""


class TailEstimateWarning(BayesRCAWarning):
    """An IT score rests on too few effective Monte Carlo samples to be trusted.

    Either the anomaly's event was (almost) never sampled, so the score sits at the Monte Carlo
    floor, a lower bound, or conditional Monte Carlo reached it through one or a few sampled
    centres, so the score can be far too high. ``method_info["tail_ess_min"]`` gives the effective
    sample size per anomaly and ``method_info["unreliable_tail"]`` the anomalies concerned.
    """


class ImputationWarning(BayesRCAWarning):
    """An anomaly's missing values were drawn from too few effective candidates to be trusted.

    Its observed descendants lie far from what the candidates drawn from the missing nodes'
    mechanisms predict, so the resampled values (and the contributions that rest on them) may be
    off. ``method_info["impute_ess_min"]`` gives the effective sample size per anomaly and
    ``method_info["unreliable_imputation"]`` the anomalies concerned.
    """


class CompleteCaseWarning(BayesRCAWarning):
    """A node was fitted on a small share of the training rows that observe it.

    Each mechanism is fitted on the rows where the node and all its parents are observed; when a
    parent is often missing, those rows are few, and if the parent's missingness depends on the
    values (e.g. "no requests" in monitoring data) they are a biased sample, so the node's fitted
    noise can be far too narrow. ``BayesianSCM.rows_used_`` gives the rows per node.
    """
