"""A SQLite file after an erasure: the erasure's transaction ran with `secure_delete` on
(deleted content zeroed, whatever the build's default); then the write-ahead log is folded in
and truncated, and the database is VACUUMed (rebuilt page by page, free pages gone)."""

from __future__ import annotations

import sqlite3
from typing import Any

from optout.connectors.physical import FREED_BLOCKS, Reach, Store, database_files
from optout.connectors.target import ApplyError
from optout.model.faults import fault
from optout.model.redaction import one_line

SIDE_FILES = ("-wal", "-journal")


def scrub(con: Any) -> str:
    """Zero what a committed erasure left in a SQLite database's bytes, through any connection
    with `execute(sql).fetchall()` (Python's sqlite3, apsw); returns the journal mode."""
    con.execute("PRAGMA secure_delete=ON").fetchall()
    mode = str(con.execute("PRAGMA journal_mode").fetchall()[0][0]).lower()
    if mode == "wal":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    fault("physical-sqlite")  # the log folded in, the free pages not yet rebuilt
    con.execute("VACUUM").fetchall()
    if mode == "wal":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return mode


class SQLiteStore(Store):
    """A SQLite database file."""

    def erase(self) -> list[str]:
        try:
            con = sqlite3.connect(self.location, isolation_level=None, timeout=30)
            try:
                mode = scrub(con)
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise ApplyError(f"{self.location}: {one_line(exc)}") from exc
        return ["erased with secure_delete on; VACUUMed (every page rebuilt, no free page "
                "left)" + ("; write-ahead log checkpointed and truncated" if mode == "wal"
                           else "")]

    def reach(self) -> Reach:
        try:
            con = sqlite3.connect(f"file:{self.location}?mode=ro", uri=True)
            try:
                encoding = con.execute("PRAGMA encoding").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            encoding = "UTF-8"
        return Reach(files=database_files(self.location, SIDE_FILES),
                     utf16=encoding.upper().startswith("UTF-16"))

    def outside(self) -> list[str]:
        return [FREED_BLOCKS.replace("replaced version", "rebuilt database and its deleted "
                                     "rollback journal")]
