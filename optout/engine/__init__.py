"""optout engine: identity graph, policies, plans, reports, and the `optout` command line."""


class EngineError(Exception):
    """Root of every error the engine raises on purpose (messages are one line)."""
