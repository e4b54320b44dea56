"""Plain-text log files: one record per line, a single free-text column `line`."""

from __future__ import annotations

from optout.connectors.source import StreamedFileSource
from optout.model.dataset import DatasetRef, Sample
from optout.model.sql import quote_literal


class LogSource(StreamedFileSource):
    """One `.log` file."""

    kind = "log"
    format = "log"

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        sample = super().sample(ref, rows, seed)
        sample.free_text = frozenset({"line"})
        return sample

    def reader(self) -> str:
        # A delimiter that never occurs in text and no quoting: every line is one value as is.
        return (
            f"read_csv({quote_literal(self.location)}, columns={{'line': 'VARCHAR'}}, "
            "delim='\x1f', header=false, quote='', escape='', auto_detect=false, "
            "strict_mode=false)"
        )
