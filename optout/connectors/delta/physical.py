"""A Delta table's past, purged: `vacuum` (retention 0, `full`) deletes every data file and
change-data-feed file the current version does not use, a checkpoint at the current version
makes the older log entries unnecessary, and those entries (`_delta_log/<version>.json`, their
checkpoints and checksums), whose add actions carry per-column minimum and maximum values, are
deleted. Time travel to a version before the erasure then fails: it no longer exists."""

from __future__ import annotations

import os
import re

from optout.connectors.delta.source import open_delta
from optout.connectors.lakehouse import LakehouseStore
from optout.connectors.target import ApplyError
from optout.model.faults import fault
from optout.model.redaction import one_line

#: a log entry of one version: a commit, a checkpoint (single or multi-part), a checksum
LOG_ENTRY = re.compile(r"^(\d{20})\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet)$")


class DeltaStore(LakehouseStore):
    """One Delta table's folder."""

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
