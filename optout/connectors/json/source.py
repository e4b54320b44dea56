"""JSON arrays and JSON Lines; nested objects are flattened to dotted column names."""

from __future__ import annotations

import pyarrow as pa

from optout.connectors.source import StreamedFileSource
from optout.model.dataset import DatasetRef, Sample
from optout.model.errors import DatasetUnreadable
from optout.model.sql import quote_literal

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

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        # read unflattened first: a manifest or a config is one object of objects and lists
        sample = super().sample(ref, rows, seed)
        if sample.row_count <= 1 and _document(self._con, self.reader()):
            raise DatasetUnreadable(
                "not a table: one JSON object whose fields are objects and lists (a manifest "
                "or a configuration file?)")
        return sample


def _document(con, reader: str) -> bool:
    """True when the JSON holds one object most of whose fields are objects or lists."""
    schema = con.sql(f"SELECT * FROM {reader} LIMIT 0").to_arrow_table().schema
    nested = sum(pa.types.is_nested(f.type) for f in schema)
    return len(schema) > 0 and nested * 2 >= len(schema)
