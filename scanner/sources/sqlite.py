"""SQLite files: every table and view, read through Python's sqlite3 in read-only mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from scanner.errors import DatasetUnreadable, SourceUnavailable
from scanner.model import DatasetRef, Sample
from scanner.sampling import reservoir, windows
from scanner.sources.base import Source, file_fingerprint, one_line, quote_ident, rows_to_arrow

MAGIC = b"SQLite format 3\x00"


class SQLiteSource(Source):
    """A `.sqlite`, `.sqlite3` or `.db` file. Tables are sampled by rowid; views by a reservoir."""

    kind = "sqlite"
    seekable = True

    def __init__(self, location: str) -> None:
        super().__init__(location)
        try:
            with open(location, "rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise SourceUnavailable(f"{location}: {exc.strerror}") from exc
        if header != MAGIC:
            raise SourceUnavailable(f"{location}: not a SQLite database")
        uri = Path(location).resolve().as_uri() + "?mode=ro"
        self._con = sqlite3.connect(uri, uri=True)

    def datasets(self) -> Iterator[DatasetRef]:
        try:
            rows = self._con.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise SourceUnavailable(f"{self.location}: {one_line(exc)}") from exc
        for name, kind in rows:
            yield DatasetRef(self.kind, self.location, name, kind, "sqlite", (("table", name),))

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        rel = quote_ident(ref.option("table"))
        try:
            info = self._con.execute(f"PRAGMA table_info({rel})").fetchall()
            declared = {r[1]: (r[2] or "ANY") for r in info}
            total = self._con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
            if ref.kind == "table" and self._has_rowid(rel):
                # Windows over the rowid range: each is a b-tree seek, never a full scan.
                lo, hi = self._con.execute(f"SELECT min(rowid), max(rowid) FROM {rel}").fetchone()
                picked: list[tuple] = []
                cur = self._con.execute(f"SELECT * FROM {rel} LIMIT 0")
                for start, end in windows(0 if lo is None else hi - lo + 1, rows, seed):
                    cur = self._con.execute(
                        f"SELECT * FROM {rel} WHERE rowid BETWEEN ? AND ?",
                        (lo + start, lo + end - 1),
                    )
                    picked.extend(cur.fetchall())
            else:
                cur = self._con.execute(f"SELECT * FROM {rel}")
                picked, _ = reservoir(cur, rows, seed)
            names = [d[0] for d in cur.description]
        except sqlite3.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return Sample(rows_to_arrow(names, picked), int(total), declared_types=declared)

    def _has_rowid(self, rel: str) -> bool:
        try:
            self._con.execute(f"SELECT rowid FROM {rel} LIMIT 0")
            return True
        except sqlite3.OperationalError:
            return False

    def fingerprint(self, ref: DatasetRef) -> str:
        return file_fingerprint(self.location, salt=ref.name)

    def close(self) -> None:
        self._con.close()
