"""Recompute: a derived table is rebuilt from the SQL that made it, reading its sources as
they are after the erasure; views need nothing (they follow their base tables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from engine.targets.base import ApplyError, Staged, Target
from engine.targets.duckdb_table import DuckDBTableTarget
from scanner.catalog import Catalog, DatasetRecord
from scanner.sources.parquet import part_files
from scanner.sql import quote_ident, quote_literal


def reader_sql(record: DatasetRecord) -> str:
    """How DuckDB reads a file dataset of the catalog."""
    loc, opts = record.location, record.options
    if record.format == "parquet":
        files = [loc] if os.path.isfile(loc) else sorted(part_files(loc))
        listed = "[" + ", ".join(quote_literal(f) for f in files) + "]"
        hive = "true" if opts.get("hive") else "false"
        return f"read_parquet({listed}, hive_partitioning={hive}, union_by_name=true)"
    if record.format == "csv":
        header = "true" if opts.get("header", True) else "false"
        return (f"read_csv({quote_literal(loc)}, delim={quote_literal(str(opts.get('delimiter', ',')))}"
                f", header={header})")
    if record.format == "json":
        fmt = "newline_delimited" if opts.get("lines") else "auto"
        return f"read_json({quote_literal(loc)}, format={quote_literal(fmt)})"
    raise ApplyError(f"cannot read {record.name} ({record.format}) to recompute from it")


def select_of(sql_text: str) -> str:
    """The SELECT of a CREATE ... AS SELECT, an INSERT ... SELECT, or a bare SELECT file."""
    for statement in sqlglot.parse(sql_text, dialect="duckdb"):
        if isinstance(statement, exp.Create | exp.Insert) and isinstance(
                statement.expression, exp.Query):
            return statement.expression.sql(dialect="duckdb")
        if isinstance(statement, exp.Query):
            return statement.sql(dialect="duckdb")
    raise ApplyError("the SQL file holds no SELECT to rebuild from")


class RecomputeTarget(DuckDBTableTarget):
    """A DuckDB table rebuilt inside one transaction from its SQL."""

    def __init__(self, step: Any, hasher: Any, catalog: Catalog) -> None:
        super().__init__(step, hasher)
        self.catalog = catalog

    @property
    def deletes(self) -> bool:
        return True  # after the rebuild none of the subject's rows may remain

    def prepare(self) -> Staged:
        sql_file = self.step.param("sql_file")
        if not sql_file:
            raise ApplyError(f"{self.step.dataset}: no SQL to rebuild it from")
        try:
            select = select_of(Path(sql_file).read_text())
        except OSError as exc:
            raise ApplyError(f"{self.step.dataset}: cannot read {sql_file}: {exc.strerror}") from exc
        tx = self.transaction()
        con = tx.con
        try:
            staged = Staged(handle=tx)
            staged.rows_before = self.count(con)
            staged.checksum_before = self.checksum(con)
            for upstream in self.step.param("upstream", ()):
                record = self.catalog.find(upstream)
                if record.location != self.step.location:
                    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(record.name)} AS "
                                f"SELECT * FROM {reader_sql(record)}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE optout_rebuilt AS {select}")
            con.execute(f"DELETE FROM {self.relation}")
            con.execute(f"INSERT INTO {self.relation} BY NAME SELECT * FROM optout_rebuilt")
            staged.rows_after = self.count(con)
            staged.rows_changed = staged.rows_before - staged.rows_after
            staged.checksum_after = self.checksum(con)
        except duckdb.Error as exc:
            self.rollback(Staged(handle=tx))
            raise ApplyError(f"{self.step.dataset}: recompute failed: "
                             f"{str(exc).splitlines()[0]}") from exc
        return staged

    def check(self, staged: Staged) -> None:
        left = len(self.matched(staged.handle.con, self.residue_query(), []))
        if left:
            raise ApplyError(f"{self.step.dataset}: the rebuilt table still holds {left} rows "
                             "of the subject")


class ViewTarget(Target):
    """A view: nothing to change; verification reads it after its base tables are cleaned."""

    formats = ()
    durable_staging = True

    def prepare(self) -> Staged:
        return Staged()

    def check(self, staged: Staged) -> None:
        """Nothing staged."""

    def commit(self, staged: Staged) -> None:
        """Nothing to commit."""

    def rollback(self, staged: Staged) -> None:
        """Nothing to roll back."""

    def residue(self) -> int:
        from engine.planner import ref_of
        from scanner.sources import open_source

        record = DatasetRecord(self.step.dataset_id, self.step.dataset, self.step.kind,
                               self.step.format, self.step.location, None, "ok", None, None,
                               None, None, dict(self.step.options))
        with open_source(self.step.location) as source:
            return source.match(ref_of(record), self.residue_query(), self.hasher).rows
