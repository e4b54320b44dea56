"""An Iceberg table's past, purged: every snapshot but the current one is expired (unless a
branch or tag keeps it: the report names those), and, since pyiceberg's expiry changes the
metadata only, optout deletes every data, delete, manifest, manifest-list and metadata file of
the table's folder that the current metadata no longer references."""

from __future__ import annotations

import datetime as dt
import os

from optout.connectors.iceberg.tables import local_folder, open_table, shown
from optout.connectors.lakehouse import LakehouseStore
from optout.connectors.target import ApplyError
from optout.model.faults import fault
from optout.model.redaction import one_line

#: the table property after which a snapshot may be expired, and its default (5 days)
MAX_AGE = "history.expire.max-snapshot-age-ms"
DEFAULT_MAX_AGE_MS = 5 * 86_400_000


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


def _path(location: str) -> str:
    return os.path.abspath(location.removeprefix("file://"))


def referenced(table: object) -> set[str]:
    """Every file the table's current metadata reaches: itself, the manifest lists and
    manifests of its snapshots, their data and delete files, statistics files."""
    io = table.io
    meta = table.metadata
    out = {_path(table.metadata_location)}
    for snapshot in table.snapshots():
        out.add(_path(snapshot.manifest_list))
        for manifest in snapshot.manifests(io):
            out.add(_path(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                out.add(_path(entry.data_file.file_path))
    for stats in [*getattr(meta, "statistics", []), *getattr(meta, "partition_statistics", [])]:
        out.add(_path(stats.statistics_path))
    return out


class IcebergStore(LakehouseStore):
    """One Iceberg table's folder (a warehouse on this machine's file system)."""

    @property
    def name(self) -> str:
        return shown(self.location)

    def folder(self) -> str:
        folder = local_folder(open_table(self.location))
        if folder is None:
            raise ApplyError(f"{self.name}: the table's warehouse is not on this machine")
        return folder

    def paths(self) -> list[str]:
        folder = self.folder()
        if not os.path.isdir(folder):
            return []
        return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files)

    def current_files(self) -> list[str]:
        table = open_table(self.location)
        return [_path(t.file.file_path) for t in table.scan().plan_files()]

    def kept(self) -> dict[str, tuple[str | None, str]]:
        """Snapshots a branch or tag other than `main` keeps: until the ref's maximum age
        (from the snapshot's time), or for as long as the ref exists."""
        table = open_table(self.location)
        out: dict[str, tuple[str | None, str]] = {}
        for name, ref in table.metadata.refs.items():
            if name == "main":
                continue
            snapshot = table.snapshot_by_id(ref.snapshot_id)
            until = None
            if ref.max_ref_age_ms is not None and snapshot is not None:
                until = _day(snapshot.timestamp_ms + ref.max_ref_age_ms)
            out[str(ref.snapshot_id)] = (until, f"kept by the table's {ref.snapshot_ref_type} "
                                                f"{name!r}")
        return out

    def retention(self, version: str) -> tuple[str | None, str]:
        table = open_table(self.location)
        age = int(table.properties.get(MAX_AGE, DEFAULT_MAX_AGE_MS))
        snapshot = table.snapshot_by_id(int(version))
        stamp = snapshot.timestamp_ms if snapshot is not None else 0
        return _day(stamp + age), (f"{MAX_AGE} = {age} ms: snapshot expiry may drop it from "
                                   "then on")

    def purge(self) -> list[str]:
        table = open_table(self.location)
        current = table.current_snapshot()
        kept = {ref.snapshot_id: name for name, ref in table.metadata.refs.items()}
        expire = [s.snapshot_id for s in table.snapshots()
                  if current is None or s.snapshot_id != current.snapshot_id
                  if s.snapshot_id not in kept]
        try:
            if expire:
                table.maintenance.expire_snapshots().by_ids(expire).commit()
            fault("physical-iceberg")  # snapshots expired, their files not deleted yet
            table = open_table(self.location)
            keep = referenced(table)
        except Exception as exc:  # pyiceberg's own errors
            raise ApplyError(f"{self.name}: purging the table's history failed: "
                             f"{one_line(exc)}") from exc
        folder = local_folder(table)
        deleted = 0
        for sub in ("data", "metadata"):
            for root, _, files in os.walk(os.path.join(folder, sub)):
                for name in files:
                    path = os.path.abspath(os.path.join(root, name))
                    if path not in keep and name != "version-hint.text":
                        os.unlink(path)
                        deleted += 1
        done = [f"{len(expire)} snapshot(s) before the current one expired",
                f"{deleted} file(s) no remaining snapshot uses deleted (data, manifests, "
                "manifest lists, older metadata)"]
        others = sorted(f"{name} (snapshot {sid})" for sid, name in kept.items()
                        if current is None or sid != current.snapshot_id)
        if others:
            done.append("kept by the table's branches or tags: " + ", ".join(others))
        return done
