"""The sources a plan reads, opened once per location (files, database connections) and
closed together; and the source-level reference of a catalog dataset."""

from __future__ import annotations

from optout.connectors import open_source
from optout.connectors.source import Located, Source
from optout.model.dataset import DatasetRef
from optout.model.matching import MatchQuery, MatchResult
from optout.model.runtime import DUCKDB, Runtime
from optout.model.secret import KeyedHash
from optout.scanner.catalog import DatasetRecord


class SourcePool:
    """Sources opened once per location while planning."""

    def __init__(self, exclude: frozenset[str], engine: Runtime = DUCKDB) -> None:
        self._open: dict[str, Source] = {}
        self._exclude = exclude
        self._engine = engine

    def match(self, record: DatasetRecord, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        """Run a match against the dataset a catalog record describes."""
        source = self._open.get(record.location)
        if source is None:
            source = self._open[record.location] = open_source(record.location, self._exclude,
                                                                   self._engine)
        return source.match(ref_of(record), query, hasher)

    def locate(self, record: DatasetRecord, query: MatchQuery, hasher: KeyedHash) -> Located:
        """Where the matching rows of a dataset are (files whose rows keep their place)."""
        return self._open[record.location].locate(ref_of(record), query, hasher)

    def close(self) -> None:
        """Close every source."""
        for source in self._open.values():
            source.close()


def ref_of(record: DatasetRecord) -> DatasetRef:
    """The source-level reference of a catalog record."""
    options = tuple(sorted((k, v) for k, v in record.options.items()))
    return DatasetRef(record.format, record.location, record.name, record.kind, record.format,
                      options)
