"""PostgreSQL tables, changed in one transaction kept open from prepare to commit.

Two-phase commit (`PREPARE TRANSACTION`) would let a prepared change survive the process; it
needs `max_prepared_transactions > 0`, which the server here (and PostgreSQL's default) does
not allow. So the transaction stays open in the applying process: a crash before commit rolls
it back in the server, and `optout resume` prepares it again.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from optout.connectors.database import DatabaseTarget
from optout.connectors.postgres.source import match_condition
from optout.connectors.source import rows_to_arrow
from optout.connectors.target import ApplyError
from optout.model.matching import MatchQuery
from optout.model.redaction import one_line


class PostgresTableTarget(DatabaseTarget):
    """One table of a PostgreSQL database."""

    formats = ("postgresql",)
    db_errors = (psycopg.Error,)

    def relation(self, con: Any) -> str:
        """The quoted table name."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.options["schema"]),
                                       sql.Identifier(self.options["table"])).as_string(con)

    def open(self) -> Any:
        try:
            con = psycopg.connect(self.step.location, connect_timeout=5, autocommit=True)
        except psycopg.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot connect to {self.step.location}: "
                             f"{one_line(exc)}") from exc
        con.execute("BEGIN")
        return con

    def matched(self, con: Any, query: MatchQuery, columns: list[str]) -> list[tuple]:
        if not query.keys and not query.texts:
            return []
        where, params = match_condition(con, query, self.hasher)
        cols = "".join(", " + sql.Identifier(c).as_string(con) for c in columns)
        # A ctid names a row within one physical table: a partitioned table's partitions each
        # have their own, so a row is (tableoid, ctid).
        return con.execute(f"SELECT tableoid::int8::text || ':' || ctid::text{cols} "
                           f"FROM {self.relation(con)} WHERE {where}", params).fetchall()

    def count(self, con: Any) -> int:
        return con.execute(f"SELECT count(*) FROM {self.relation(con)}").fetchone()[0]

    def delete(self, con: Any, row_ids: list) -> None:
        by_table: dict[int, list[str]] = {}
        for row in row_ids:
            table, _, ctid = str(row).partition(":")
            by_table.setdefault(int(table), []).append(ctid)
        for table, ctids in by_table.items():
            con.execute(f"DELETE FROM {self.relation(con)} WHERE tableoid = %s::int8::oid "
                        "AND ctid = ANY(%s::tid[])", (table, ctids))

    def update(self, con: Any, column: str, changes: list[tuple[Any, Any]]) -> None:
        col = sql.Identifier(column).as_string(con)
        with con.cursor() as cur:
            cur.executemany(f"UPDATE {self.relation(con)} SET {col} = %s WHERE tableoid = "
                            "%s::int8::oid AND ctid = %s::tid",
                            [(v, *str(i).split(":", 1)) for i, v in changes])

    def checksum(self, con: Any) -> str:
        rel = self.relation(con)
        value = con.execute(f"SELECT encode(sha256(convert_to(coalesce(string_agg(md5(t::text), "
                            f"'' ORDER BY md5(t::text)), ''), 'UTF8')), 'hex') FROM {rel} t"
                            ).fetchone()[0]
        return f"sha256:{value}"

    def column_type(self, con: Any, column: str) -> str:
        row = con.execute("SELECT data_type FROM information_schema.columns WHERE "
                          "table_schema = %s AND table_name = %s AND column_name = %s",
                          [self.options["schema"], self.options["table"], column]).fetchone()
        return row[0] if row else ""

    def read(self, con: Any) -> pa.Table:
        with con.cursor() as cur:
            cur.execute(f"SELECT * FROM {self.relation(con)}")
            return rows_to_arrow([d.name for d in cur.description], cur.fetchall())

    def delete_all(self, con: Any) -> None:
        con.execute(f"DELETE FROM {self.relation(con)}")

    def insert(self, con: Any, table: pa.Table) -> None:
        names = table.column_names
        columns = sql.SQL(", ").join(sql.Identifier(n) for n in names).as_string(con)
        with con.cursor() as cur, cur.copy(
                f"COPY {self.relation(con)} ({columns}) FROM STDIN") as copy:
            for row in table.to_pylist():
                copy.write_row([row[n] for n in names])

    def executable(self) -> str | None:
        """The connecting role may delete and update the table (asked, nothing written)."""
        try:
            with psycopg.connect(self.step.location, connect_timeout=5) as con:
                ok = con.execute("SELECT has_table_privilege(%s, 'DELETE') AND "
                                 "has_table_privilege(%s, 'UPDATE') AND "
                                 "has_table_privilege(%s, 'INSERT')",
                                 [self.relation(con)] * 3).fetchone()[0]
        except psycopg.Error as exc:
            return f"cannot check the role's privileges: {one_line(exc)}"
        return None if ok else "the connecting role may not delete, update and insert rows"
