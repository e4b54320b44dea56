"""Tables in a SQLite file (Python's sqlite3; matching functions registered on the connection)."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import sqlite3
from typing import Any

import pyarrow as pa

from optout.connectors.database import DatabaseTarget
from optout.connectors.source import rows_to_arrow
from optout.connectors.target import ApplyError, writable_problem
from optout.model.matching import MatchQuery, PythonMatcher
from optout.model.redaction import one_line
from optout.model.sql import quote_ident


class SQLiteTableTarget(DatabaseTarget):
    """One table of a SQLite file."""

    formats = ("sqlite",)
    db_errors = (sqlite3.Error,)

    @property
    def relation(self) -> str:
        """The quoted table name."""
        return quote_ident(self.options["table"])

    def open(self) -> Any:
        try:
            con = sqlite3.connect(self.step.location, isolation_level=None, timeout=30)
            # deleted content is zeroed in the file, whatever the build's default
            con.execute("PRAGMA secure_delete=ON")
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot open {self.step.location} for "
                             f"writing: {one_line(exc)}") from exc
        return con

    def matched(self, con: Any, query: MatchQuery, columns: list[str]) -> list[tuple]:
        if not query.keys and not query.texts:
            return []
        m = PythonMatcher(query, self.hasher)
        con.create_function("optout_member", 2, m.member, deterministic=True)
        con.create_function("optout_text_hit", 1, m.text_hit, deterministic=True)
        where = " OR ".join(
            [f"optout_member({i}, {quote_ident(k.column)})"
             for i, k in enumerate(query.keys)]
            + [f"optout_text_hit({quote_ident(t)})" for t in query.texts])
        cols = "".join(f", {quote_ident(c)}" for c in columns)
        return con.execute(f"SELECT rowid{cols} FROM {self.relation} WHERE {where}").fetchall()

    def count(self, con: Any) -> int:
        return con.execute(f"SELECT count(*) FROM {self.relation}").fetchone()[0]

    def delete(self, con: Any, row_ids: list) -> None:
        con.executemany(f"DELETE FROM {self.relation} WHERE rowid = ?", [(i,) for i in row_ids])

    def update(self, con: Any, column: str, changes: list[tuple[Any, Any]]) -> None:
        con.executemany(f"UPDATE {self.relation} SET {quote_ident(column)} = ? WHERE rowid = ?",
                        [(v, i) for i, v in changes])

    def checksum(self, con: Any) -> str:
        rows = sorted(hashlib.md5(repr(row).encode(), usedforsecurity=False).hexdigest()
                      for row in con.execute(f"SELECT * FROM {self.relation}"))
        return "sha256:" + hashlib.sha256("".join(rows).encode()).hexdigest()

    def read(self, con: Any) -> pa.Table:
        cur = con.execute(f"SELECT * FROM {self.relation}")
        return rows_to_arrow([d[0] for d in cur.description], cur.fetchall())

    def delete_all(self, con: Any) -> None:
        con.execute(f"DELETE FROM {self.relation}")

    def insert(self, con: Any, table: pa.Table) -> None:
        names = table.column_names
        con.executemany(
            f"INSERT INTO {self.relation} ({', '.join(quote_ident(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)})",
            [tuple(_sqlite_value(row[n]) for n in names) for row in table.to_pylist()])

    def executable(self) -> str | None:
        return writable_problem(self.step.location, replaced=False)


def _sqlite_value(value: Any) -> Any:
    """A rebuilt value as SQLite stores it (dates as ISO text, decimals as numbers)."""
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat(" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
