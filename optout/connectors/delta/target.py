"""A Delta Lake table changed through its own transaction: the current version's rows, edited,
overwrite the table in one commit tagged with the request (delta-rs never writes deletion
vectors: its deletes rewrite files too; an overwrite records no predicate, so no identifier of
the subject enters the transaction log)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from optout.connectors.delta.source import open_delta
from optout.connectors.lakehouse import MARK, LakehouseTarget, TableHandle


class DeltaHandle(TableHandle):
    def __init__(self, path: str) -> None:
        self.path = path
        self.dt = open_delta(path)

    def version(self) -> str:
        return str(self.dt.version())

    def batches(self) -> pa.RecordBatchReader:
        return self.dt.to_pyarrow_dataset().scanner().to_reader()

    def scannable(self) -> Any:
        return self.dt.to_pyarrow_dataset()

    def _compression(self) -> str:
        """The codec of the table's first data file (a rewrite keeps it)."""
        files = self.dt.file_uris()
        if not files:
            return "SNAPPY"
        meta = pq.ParquetFile(files[0].removeprefix("file://")).metadata
        return (meta.row_group(0).column(0).compression if meta.num_row_groups
                else "SNAPPY").upper()

    def overwrite(self, data: pa.RecordBatchReader, request_id: str) -> None:
        from deltalake import CommitProperties, WriterProperties, write_deltalake

        partitions = self.dt.metadata().partition_columns
        write_deltalake(self.dt, data, mode="overwrite", partition_by=partitions or None,
                        writer_properties=WriterProperties(compression=self._compression()),
                        commit_properties=CommitProperties(
                            custom_metadata={MARK: request_id}))

    def committed_since(self, base: str, request_id: str) -> bool:
        return any(h.get("version", -1) > int(base) and h.get(MARK) == request_id
                   for h in self.dt.history())

    def versions(self) -> list[tuple[str, Any]]:
        out = []
        for version in range(self.dt.version() + 1):
            try:
                out.append((str(version), open_delta(self.path, version).to_pyarrow_dataset()))
            except Exception:  # its log or files are gone: not readable
                continue
        return out


class DeltaTarget(LakehouseTarget):
    formats = ("delta",)

    def table(self) -> DeltaHandle:
        return DeltaHandle(self.step.location)

    def folder(self) -> str:
        return self.step.location
