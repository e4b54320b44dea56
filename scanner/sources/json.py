"""JSON arrays and JSON Lines; nested objects are flattened to dotted column names."""

from __future__ import annotations

from scanner.sources.base import StreamedFileSource
from scanner.sql import quote_literal

LINES_SUFFIXES = (".jsonl", ".ndjson")


class JsonSource(StreamedFileSource):
    """One JSON file: an array of records, or one record per line."""

    kind = "json"
    format = "json"

    def dialect(self) -> tuple[tuple[str, object], ...]:
        return (("lines", self.location.lower().endswith(LINES_SUFFIXES)),)

    def reader(self) -> str:
        fmt = "newline_delimited" if dict(self.dialect())["lines"] else "auto"
        return f"read_json({quote_literal(self.location)}, format={quote_literal(fmt)})"
