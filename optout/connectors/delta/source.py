"""A Delta Lake table read at its current version, through delta-rs: the rows of the version
(partition values included, deletion vectors applied) as an Arrow dataset DuckDB scans."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from optout.connectors.source import DuckDBReadSource
from optout.model.dataset import DatasetRef, Sample
from optout.model.duck import memory_duckdb
from optout.model.errors import DatasetUnreadable, SourceUnavailable
from optout.model.redaction import one_line

#: the name the current version is registered under in the source's DuckDB connection
ROWS = "optout_delta_rows"


def is_delta_table(path: str) -> bool:
    """A folder holding a Delta transaction log."""
    return os.path.isdir(os.path.join(path, "_delta_log"))


def open_delta(path: str, version: int | None = None) -> Any:
    """The `deltalake.DeltaTable` at `path` (at `version`, else the current one)."""
    from deltalake import DeltaTable

    try:
        return DeltaTable(path, version=version) if version is not None else DeltaTable(path)
    except Exception as exc:  # delta-rs raises its own errors (TableNotFoundError, …)
        raise SourceUnavailable(f"{path}: not a readable Delta table: {one_line(exc)}") from exc


class DeltaSource(DuckDBReadSource):
    """One Delta table."""

    kind = "delta"

    def __init__(self, location: str, name: str | None = None) -> None:
        super().__init__(os.path.abspath(location).rstrip(os.sep))
        self.name = name or os.path.basename(self.location)
        self._table = open_delta(self.location)
        self._con = memory_duckdb()
        self._registered = False

    def datasets(self) -> Iterator[DatasetRef]:
        partitions = tuple(self._table.metadata().partition_columns)
        yield DatasetRef(self.kind, self.location, self.name, "table", "delta",
                         (("partitions", ",".join(partitions)),) if partitions else ())

    def relation(self, ref: DatasetRef) -> str:
        if not self._registered:
            try:
                self._con.register(ROWS, self._table.to_pyarrow_dataset())
            except Exception as exc:
                raise DatasetUnreadable(f"{self.location}: {one_line(exc)}") from exc
            self._registered = True
        return ROWS

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        return self.reservoir(self.relation(ref), rows, seed)

    def fingerprint(self, ref: DatasetRef) -> str:
        table_id = self._table.metadata().id
        return hashlib.sha256(f"delta\x00{table_id}\x00{self._table.version()}".encode()
                              ).hexdigest()[:32]

    def close(self) -> None:
        self._con.close()
