"""An Iceberg table changed through its own transaction: the current snapshot's rows, edited,
overwrite the table (pyiceberg's copy-on-write overwrite: a delete and an append snapshot),
with the request id in the snapshots' summary."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from optout.connectors.iceberg.tables import local_folder, open_table, shown
from optout.connectors.lakehouse import MARK, LakehouseTarget, TableHandle
from optout.connectors.target import ApplyError


class IcebergHandle(TableHandle):
    def __init__(self, uri: str) -> None:
        self.table = open_table(uri)

    def version(self) -> str:
        snapshot = self.table.current_snapshot()
        return str(snapshot.snapshot_id) if snapshot else "none"

    def batches(self) -> pa.RecordBatchReader:
        return self.table.scan().to_arrow_batch_reader()

    def scannable(self) -> Any:
        return self.table.scan().to_arrow()

    def overwrite(self, data: pa.RecordBatchReader, request_id: str) -> None:
        self.table.overwrite(data.read_all(), snapshot_properties={MARK: request_id})

    def committed_since(self, base: str, request_id: str) -> bool:
        return any(s.summary is not None and s.summary.get(MARK) == request_id
                   for s in self.table.snapshots())

    def versions(self) -> list[tuple[str, Any]]:
        out = []
        for snapshot in self.table.snapshots():
            try:
                rows = self.table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
            except Exception:  # a file it needs is gone: not readable
                continue
            out.append((str(snapshot.snapshot_id), rows))
        return out


class IcebergTarget(LakehouseTarget):
    formats = ("iceberg",)

    def table(self) -> IcebergHandle:
        return IcebergHandle(self.step.location)

    def folder(self) -> str:
        folder = local_folder(self.table().table)
        if folder is None:
            raise ApplyError(f"{shown(self.step.location)}: optout changes Iceberg tables whose "
                             "warehouse is on this machine's file system")
        return folder
