"""Honest full-ranking evaluation: top-K over the whole catalogue, metrics, bootstrap CIs, reports."""

from kg.errors import MMKGError


class EvaluationError(MMKGError):
    """Bad evaluation input (ids out of range, malformed sets, NaN scores) or a protocol violation."""
