"""An Iceberg catalog's tables, each read at its current snapshot through pyiceberg."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import duckdb

from optout.connectors.iceberg.tables import open_catalog, open_table, parse, shown, table_uri
from optout.connectors.source import DuckDBReadSource
from optout.model.dataset import DatasetRef, Sample
from optout.model.duck import memory_duckdb
from optout.model.errors import DatasetUnreadable
from optout.model.redaction import one_line


class IcebergSource(DuckDBReadSource):
    """Every table of an Iceberg catalog (or the one table its URI names)."""

    kind = "iceberg"

    def __init__(self, location: str) -> None:
        super().__init__(location)
        _, self.identifier, _ = parse(location)
        self._con = memory_duckdb()
        self._tables: dict[str, Any] = {}

    def _identifiers(self) -> list[str]:
        if self.identifier:
            return [self.identifier]
        catalog = open_catalog(self.location)
        try:
            return sorted(".".join(t) for ns in catalog.list_namespaces()
                          for t in catalog.list_tables(ns))
        except Exception as exc:
            raise DatasetUnreadable(f"{shown(self.location)}: cannot list its tables: "
                                    f"{one_line(exc)}") from exc

    def datasets(self) -> Iterator[DatasetRef]:
        for identifier in self._identifiers():
            uri = self.location if self.identifier else table_uri(self.location, identifier)
            yield DatasetRef(self.kind, uri, identifier, "table", "iceberg")

    def _table(self, ref: DatasetRef) -> Any:
        if ref.location not in self._tables:
            self._tables[ref.location] = open_table(ref.location)
        return self._tables[ref.location]

    def relation(self, ref: DatasetRef) -> str:
        name = "optout_iceberg_" + hashlib.sha256(ref.location.encode()).hexdigest()[:12]
        try:
            self._con.execute(f"SELECT 1 FROM {name} LIMIT 0").fetchall()
        except duckdb.Error:
            try:
                self._con.register(name, self._table(ref).scan().to_arrow())
            except Exception as exc:
                raise DatasetUnreadable(f"{ref.name}: {one_line(exc)}") from exc
        return name

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        return self.reservoir(self.relation(ref), rows, seed)

    def fingerprint(self, ref: DatasetRef) -> str:
        table = self._table(ref)
        snapshot = table.current_snapshot()
        return hashlib.sha256(f"iceberg\x00{table.metadata.table_uuid}\x00"
                              f"{snapshot.snapshot_id if snapshot else 'none'}".encode()
                              ).hexdigest()[:32]

    def close(self) -> None:
        self._con.close()
