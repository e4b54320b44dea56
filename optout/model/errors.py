"""optout's exceptions: a root for the scanner's and one for the engine's, each a one-line
message a user can act on."""

from __future__ import annotations


class ScannerError(Exception):
    """Root of every error the scanner raises on purpose."""


class UnknownSource(ScannerError):
    """A source string names nothing the scanner can read."""


class SourceUnavailable(ScannerError):
    """A source exists in principle but cannot be reached or opened (missing path, database down)."""


class DatasetUnreadable(ScannerError):
    """One dataset could not be read or sampled (corrupt file, permission denied, bad rows)."""


class ConfigError(ScannerError):
    """A config or recognizer file is invalid; the message names the file and the field."""


class CatalogError(ScannerError):
    """The catalog file cannot be opened, migrated or queried."""


class DatasetNotFound(CatalogError):
    """No dataset in the catalog matches the name or id given."""


class EngineError(Exception):
    """Root of every error the engine raises on purpose (messages are one line)."""
