"""Recompute: a derived table is rebuilt from the SQL that made it, reading its sources as
they are after the erasure; views need nothing (they follow their base tables)."""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb

from engine.sandbox import Relation, SandboxError, run_select
from engine.targets.base import ApplyError, Staged, Target
from engine.targets.duckdb_table import DuckDBTableTarget
from scanner.catalog import Catalog, DatasetRecord
from scanner.sources import open_source
from scanner.sources.readers import FILE_FORMATS, reader_sql
from scanner.sql import quote_ident


def upstream_relation(record: DatasetRecord) -> Relation:
    """How the sandbox reads a file dataset of the catalog: its reader over its own files."""
    if record.format not in FILE_FORMATS:
        raise ApplyError(f"cannot read {record.name} ({record.format}) to recompute from it")
    with open_source(record.location) as source:
        paths = source.files() if hasattr(source, "files") else [record.location]
    return Relation(reader_sql(record.format, paths, record.options), tuple(paths))


class RecomputeTarget(DuckDBTableTarget):
    """A DuckDB table rebuilt inside one transaction from its SQL."""

    def __init__(self, step: Any, hasher: Any, catalog: Catalog) -> None:
        super().__init__(step, hasher)
        self.catalog = catalog

    @property
    def deletes(self) -> bool:
        return True  # after the rebuild none of the subject's rows may remain

    def prepare(self) -> Staged:
        # The SELECT the plan carries (approved with it), never the file as it is now, run in
        # the sandbox over the datasets the plan bound its tables to.
        select = self.step.param("sql")
        if not select or hashlib.sha256(select.encode()).hexdigest() != self.step.param(
                "sql_sha256"):
            why = self.step.param("sql_problem") or "it had no readable SELECT"
            raise ApplyError(f"{self.step.dataset}: the plan carries no SQL to rebuild it from "
                             f"({self.step.param('sql_file')}: {why})")
        tx = self.transaction()
        con = tx.con
        try:
            staged = Staged(handle=tx)
            staged.rows_before = self.count(con)
            staged.checksum_before = self.checksum(con)
            relations = {}
            for name, dataset_id in self.step.param("tables", ()):
                record = self.catalog.find(dataset_id)
                if record.location == self.step.location and record.format == "duckdb":
                    table = (f"{quote_ident(record.options['schema'])}."
                             f"{quote_ident(record.options['table'])}")
                    relations[name] = Relation(arrow=con.execute(
                        f"SELECT * FROM {table}").to_arrow_table())
                else:
                    relations[name] = upstream_relation(record)
            rebuilt = run_select(select, relations)
            con.execute(f"DELETE FROM {self.relation}")
            con.register("optout_rebuilt", rebuilt)
            con.execute(f"INSERT INTO {self.relation} BY NAME SELECT * FROM optout_rebuilt")
            con.unregister("optout_rebuilt")
            staged.rows_after = self.count(con)
            staged.rows_changed = staged.rows_before - staged.rows_after
            staged.checksum_after = self.checksum(con)
        except (duckdb.Error, SandboxError, ApplyError) as exc:
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
        with open_source(self.step.location) as source:
            return source.match(self.step.ref(), self.residue_query(), self.hasher).rows
