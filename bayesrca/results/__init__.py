"""Posterior results: draws with their labels, tidy summaries, InferenceData; no plotting imports."""

from .attribution import AttributionResult
from .base import PosteriorResult
from .contributions import ContributionResult
from .root_cause import RootCauseResult
from .scores import ScoreResult

__all__ = ["AttributionResult", "ContributionResult", "PosteriorResult", "RootCauseResult", "ScoreResult"]
