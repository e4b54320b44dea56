"""DuckDB database files: every table and view in every schema, opened read-only."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from optout.connectors.source import DuckDBReadSource, file_fingerprint
from optout.model.dataset import DatasetRef, ForeignKey, Sample
from optout.model.errors import DatasetUnreadable, SourceUnavailable
from optout.model.redaction import one_line
from optout.model.sampling import windows
from optout.model.sql import quote_ident


class DuckDBFileSource(DuckDBReadSource):
    """A `.duckdb` file. Tables are sampled by rowid windows; views by a reservoir."""

    kind = "duckdb"
    seekable = True

    def __init__(self, location: str) -> None:
        super().__init__(location)
        try:
            self._con = duckdb.connect(
                location,
                read_only=True,
                config={
                    "threads": 1,
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                },
            )
        except duckdb.Error as exc:
            raise SourceUnavailable(
                f"{location}: not a readable DuckDB file: {one_line(exc)}"
            ) from exc

    def datasets(self) -> Iterator[DatasetRef]:
        rows = self._con.execute(
            "SELECT schema_name, table_name, 'table' FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT schema_name, view_name, 'view' FROM duckdb_views() "
            "WHERE NOT internal AND schema_name NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY 1, 2"
        ).fetchall()
        for schema, table, kind in rows:
            name = table if schema == "main" else f"{schema}.{table}"
            yield DatasetRef(
                self.kind,
                self.location,
                name,
                kind,
                "duckdb",
                (("schema", schema), ("table", table)),
            )

    def relation(self, ref: DatasetRef) -> str:
        return f"{quote_ident(ref.option('schema'))}.{quote_ident(ref.option('table'))}"

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        rel = self.relation(ref)
        try:
            total = self._con.execute(f"SELECT count(*) FROM {rel}").fetchall()[0][0]
            if ref.kind == "table":
                spans = windows(total, rows, seed)
                where = " OR ".join(f"rowid BETWEEN {a} AND {b - 1}" for a, b in spans) or "false"
                # rowid follows insertion order with gaps after deletes; windows stay bounded.
                table = self._con.sql(f"SELECT * FROM {rel} WHERE {where}").to_arrow_table()
            else:
                table = self._con.sql(
                    f"SELECT * FROM {rel} USING SAMPLE reservoir({int(rows)} ROWS) "
                    f"REPEATABLE ({int(seed)})"
                ).to_arrow_table()
            types = dict(
                self._con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ?",
                    [ref.option("schema"), ref.option("table")],
                ).fetchall()
            )
        except duckdb.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return Sample(table, int(total), declared_types=types)

    def foreign_keys(self, ref: DatasetRef) -> list[ForeignKey]:
        rows = self._con.execute(
            "SELECT constraint_column_names, referenced_table, referenced_column_names "
            "FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY' "
            "AND schema_name = ? AND table_name = ?",
            [ref.option("schema"), ref.option("table")]).fetchall()
        schema = ref.option("schema")
        return [ForeignKey(tuple(cols), table if schema == "main" else f"{schema}.{table}",
                           tuple(ref_cols)) for cols, table, ref_cols in rows]

    def definition(self, ref: DatasetRef) -> str | None:
        if ref.kind != "view":
            return None
        rows = self._con.execute("SELECT sql FROM duckdb_views() WHERE schema_name = ? "
                                 "AND view_name = ?",
                                 [ref.option("schema"), ref.option("table")]).fetchall()
        return rows[0][0] if rows else None

    def fingerprint(self, ref: DatasetRef) -> str:
        # The file changes whenever any table in it does; cheap and never misses a change.
        return file_fingerprint(self.location, salt=ref.name)

    def close(self) -> None:
        self._con.close()
