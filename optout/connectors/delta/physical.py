"""A Delta table's past, purged: `vacuum` (retention 0, `full`) deletes every data file and
change-data-feed file the current version does not use, a checkpoint at the current version
makes the older log entries unnecessary, and those entries (`_delta_log/<version>.json`, their
checkpoints and checksums), whose add actions carry per-column minimum and maximum values, are
deleted. Time travel to a version before the erasure then fails: it no longer exists."""

from __future__ import annotations

import datetime as dt
import os
import re

from optout.connectors.delta.source import open_delta
from optout.connectors.lakehouse import LakehouseStore
from optout.connectors.target import ApplyError
from optout.model.faults import fault
from optout.model.redaction import one_line

#: the table settings that keep a removed file and a log entry, and their defaults
FILE_RETENTION = ("delta.deletedFileRetentionDuration", "interval 1 week")
LOG_RETENTION = ("delta.logRetentionDuration", "interval 30 days")
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
INTERVAL = re.compile(r"^\s*interval\s+(\d+)\s+(second|minute|hour|day|week)s?\s*$", re.I)

#: a log entry of one version: a commit, a checkpoint (single or multi-part), a checksum
LOG_ENTRY = re.compile(r"^(\d{20})\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet)$")


def _seconds(text: str) -> int | None:
    found = INTERVAL.match(text)
    return int(found.group(1)) * UNITS[found.group(2).lower()] if found else None


class DeltaStore(LakehouseStore):
    """One Delta table's folder."""

    def current_files(self) -> list[str]:
        return [f.removeprefix("file://") for f in open_delta(self.location).file_uris()]

    def retention(self, version: str) -> tuple[str | None, str]:
        """The day the table's own retention lets VACUUM and log cleanup drop a version the
        erasure replaced: the later of the removed files' and the log entries' retention,
        counted from today (the erasure's commit)."""
        config = open_delta(self.location).metadata().configuration
        settings = [(key, config.get(key) or default) for key, default in (FILE_RETENTION,
                                                                           LOG_RETENTION)]
        seconds = [_seconds(value) for _, value in settings]
        why = ", ".join(f"{k} = {v}" for k, v in settings)
        if None in seconds:
            return None, why + " (not an interval optout reads)"
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max(seconds))
        return until.date().isoformat(), why

    def purge(self) -> list[str]:
        try:
            removed = open_delta(self.location).vacuum(
                retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True)
            fault("physical-delta")  # files vacuumed, the log not yet
            table = open_delta(self.location)
            table.create_checkpoint()
        except Exception as exc:  # delta-rs' own errors
            raise ApplyError(f"{self.location}: purging the table's history failed: "
                             f"{one_line(exc)}") from exc
        current = table.version()
        log = os.path.join(self.location, "_delta_log")
        old = [name for name in os.listdir(log) if (m := LOG_ENTRY.match(name))
               and int(m.group(1)) < current]
        for name in old:
            os.unlink(os.path.join(log, name))
        return [f"vacuumed (retention 0 hours, full): {len(removed)} file(s) no longer in the "
                "current version deleted, change-data-feed files included",
                f"checkpoint at version {current}; {len(old)} older log entries deleted (time "
                f"travel before version {current} is gone)"]
