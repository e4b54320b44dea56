"""Plain-text logs: the subject's mentions are redacted line by line (or the lines deleted);
every other line keeps its exact bytes."""

from __future__ import annotations

from optout.connectors.target import (
    FileTarget,
    Staged,
    ensure_writable,
    files_checksum,
    fsync_file,
    open_staged,
)
from optout.model.matching import redact


class LogTarget(FileTarget):
    """One `.log` file; its single column is `line`."""

    formats = ("log",)

    def prepare(self) -> Staged:
        path = self.step.location
        hashes = frozenset(self.step.text_hashes)
        ensure_writable(path, self.step.dataset)
        new, dst = open_staged(path, self.request_id, "w", encoding="utf-8",
                               errors="surrogateescape", newline="")
        before = changed = 0
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as src, dst:
            for line in src:
                before += 1
                body = line.rstrip("\r\n")
                redacted, hits = redact(body, hashes, self.hasher)
                if not hits:
                    dst.write(line)
                    continue
                changed += 1
                if not self.deletes:
                    dst.write(redacted + line[len(body):])
        fsync_file(new)
        after = before - (changed if self.deletes else 0)
        return Staged([(path, new)], before, after, changed, files_checksum([path]),
                      files_checksum([new]))

    def count_residue(self, path: str, original: str | None = None) -> int:
        hashes = frozenset(self.step.text_hashes)
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return sum(1 for line in fh if redact(line, hashes, self.hasher)[1])
