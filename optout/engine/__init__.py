"""optout engine: identity graph, policies, plans, apply, reports."""

from optout.model.errors import EngineError

__all__ = ["EngineError"]
