"""Tables in a DuckDB database file."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from optout.connectors.database import DatabaseTarget
from optout.connectors.target import ApplyError, writable_problem
from optout.model.matching import DuckDBMatcher, MatchQuery
from optout.model.redaction import one_line
from optout.model.sql import quote_ident


class DuckDBTableTarget(DatabaseTarget):
    """One table of a `.duckdb` file."""

    formats = ("duckdb",)
    db_errors = (duckdb.Error,)

    @property
    def relation(self) -> str:
        """The quoted table name."""
        return f"{quote_ident(self.options['schema'])}.{quote_ident(self.options['table'])}"

    def open(self) -> Any:
        try:
            con = duckdb.connect(self.step.location, config={
                "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot open {self.step.location} for "
                             f"writing: {one_line(exc)}") from exc
        con.execute("BEGIN TRANSACTION")
        return con

    def matched(self, con: Any, query: MatchQuery, columns: list[str]) -> list[tuple]:
        if not query.keys and not query.texts:
            return []
        ids = DuckDBMatcher(con, self.hasher).select(self.relation, query, "rowid")
        if not columns or not ids:
            return [(i,) for i in ids]
        cols = ", ".join(quote_ident(c) for c in columns)
        return con.execute(f"SELECT rowid, {cols} FROM {self.relation} WHERE rowid IN "
                           f"(SELECT unnest(?::BIGINT[]))", [ids]).fetchall()

    def count(self, con: Any) -> int:
        return con.execute(f"SELECT count(*) FROM {self.relation}").fetchall()[0][0]

    def delete(self, con: Any, row_ids: list) -> None:
        con.execute(f"DELETE FROM {self.relation} WHERE rowid IN (SELECT unnest(?::BIGINT[]))",
                    [row_ids])

    def update(self, con: Any, column: str, changes: list[tuple[Any, Any]]) -> None:
        con.executemany(f"UPDATE {self.relation} SET {quote_ident(column)} = ? WHERE rowid = ?",
                        [[v, i] for i, v in changes])

    def checksum(self, con: Any) -> str:
        value = con.execute(f"SELECT sha256(coalesce(string_agg(h, '' ORDER BY h), '')) FROM "
                            f"(SELECT md5(t::VARCHAR) AS h FROM {self.relation} t)"
                            ).fetchall()[0][0]
        return f"sha256:{value}"

    def column_type(self, con: Any, column: str) -> str:
        rows = con.execute("SELECT data_type FROM information_schema.columns WHERE "
                           "table_schema = ? AND table_name = ? AND column_name = ?",
                           [self.options["schema"], self.options["table"], column]).fetchall()
        return rows[0][0] if rows else ""

    def read(self, con: Any) -> pa.Table:
        return con.sql(f"SELECT * FROM {self.relation}").to_arrow_table()

    def delete_all(self, con: Any) -> None:
        con.execute(f"DELETE FROM {self.relation}")

    def insert(self, con: Any, table: pa.Table) -> None:
        con.register("optout_rebuilt", table)
        try:
            con.execute(f"INSERT INTO {self.relation} BY NAME SELECT * FROM optout_rebuilt")
        finally:
            con.unregister("optout_rebuilt")

    def executable(self) -> str | None:
        return writable_problem(self.step.location, replaced=False)

