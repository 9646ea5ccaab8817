"""Posterior results: draws with their labels, tidy summaries, InferenceData; no plotting imports."""

from .attribution import AttributionResult, ScoreResult
from .contributions import ContributionResult

__all__ = ["AttributionResult", "ContributionResult", "ScoreResult"]
