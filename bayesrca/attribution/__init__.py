"""Attributions: each builds a set function over the target's ancestors and hands it to the
generic Shapley estimator (:func:`bayesrca.shapley.shapley_values`).

* :func:`attribute_anomalies` — contributions to an outlier's IT score (Budhathoki et al., 2022);
* :func:`distribution_change` — contributions of mechanism changes to a change of distribution;
* :func:`intrinsic_causal_influence` — each noise's share of the target's variance;
* :func:`attribute_mean_deviation` — contributions to an outlier's deviation from the mean (of its
  value or of a score), DoWhy's ``attribute_mean_deviation=True``;
* :func:`intrinsic_causal_influence_sample` — each noise's share of one row's deviation from the
  target's mean, DoWhy's ``intrinsic_causal_influence_sample``;
* :func:`root_cause_posterior` — not a Shapley attribution: P(node is the one faulty node) under a
  single-fault model, pooling the rows of an incident window by likelihood.
"""

from .anomaly import attribute_anomalies
from .change import change_log_bayes_factor, distribution_change
from .influence import intrinsic_causal_influence
from .mean_deviation import attribute_mean_deviation
from .root_cause import root_cause_posterior
from .sample_influence import intrinsic_causal_influence_sample

__all__ = ["attribute_anomalies", "attribute_mean_deviation", "change_log_bayes_factor", "distribution_change", "intrinsic_causal_influence",
           "intrinsic_causal_influence_sample", "root_cause_posterior"]
