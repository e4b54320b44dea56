"""CSV and TSV files: delimiter, quoting and header detected by DuckDB's sniffer."""

from __future__ import annotations

import duckdb

from optout.connectors.readers import reader_sql
from optout.connectors.source import StreamedFileSource
from optout.model.errors import DatasetUnreadable
from optout.model.redaction import one_line
from optout.model.sql import quote_literal


class CsvSource(StreamedFileSource):
    """One delimited text file."""

    kind = "csv"
    format = "csv"

    def __init__(self, location: str, name: str | None = None) -> None:
        super().__init__(location, name)
        self._dialect: dict[str, object] | None = None

    def sniffed(self) -> dict[str, object]:
        """The dialect DuckDB detected: delimiter, quote, escape, header."""
        if self._dialect is None:
            delim = "\t" if self.location.lower().endswith(".tsv") else None
            args = f", delim={quote_literal(delim)}" if delim else ""
            try:
                row = self._con.execute(
                    f"SELECT Delimiter, Quote, Escape, HasHeader FROM "
                    f"sniff_csv({quote_literal(self.location)}{args})"
                ).fetchall()[0]
            except duckdb.Error as exc:
                raise DatasetUnreadable(one_line(exc)) from exc
            self._dialect = {
                "delimiter": row[0],
                "quote": row[1],
                "escape": row[2],
                "header": bool(row[3]),
            }
        return self._dialect

    def dialect(self) -> tuple[tuple[str, object], ...]:
        return tuple(sorted(self.sniffed().items()))

    def reader(self) -> str:
        return reader_sql("csv", [self.location], self.sniffed())
