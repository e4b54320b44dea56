"""What Delta Lake and Apache Iceberg tables share as erasure targets.

A table format keeps its rows in Parquet files and says which files make up each version in a
log of its own (Delta's `_delta_log/`, Iceberg's metadata and manifests). Rewriting its files
behind that log corrupts the table, so a change goes through the table's own transaction:
`prepare` reads the current version (through the format's library), edits the subject's rows
and stages the new content as one Parquet file beside the table (marked with the version it
was made from); `check` re-reads the staged file; `commit` overwrites the table with it in one
table commit, tagged with the request id, only while the table is still at that version. A
commit found in the table's history under the request's tag is not made twice (a process that
died after the table commit). Until the commit, the old version stays current.

The older versions still hold the subject (time travel): the format's physical store
(`optout/connectors/delta/physical.py`, `optout/connectors/iceberg/physical.py`) purges them.
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from optout.connectors.parquet.target import edit_rows
from optout.connectors.physical import FREED_BLOCKS, FileStore, Reach
from optout.connectors.target import (
    STAGED_SUFFIX,
    ApplyError,
    FileTarget,
    Staged,
    files_checksum,
    fsync_file,
    open_staged,
    staged_glob,
)
from optout.model.duck import memory_duckdb
from optout.model.faults import fault
from optout.model.matching import DuckDBMatcher, MatchQuery
from optout.model.plan import PlanStep
from optout.model.redaction import one_line
from optout.model.sandbox import Relation
from optout.model.secret import KeyedHash
from optout.model.sql import quote_literal

#: the commit property that tags a table commit with the request that made it
MARK = "optout.request"
#: the staged file's metadata key holding the version it was made from
BASE = b"optout.base_version"
#: the row number column a batch is matched by
ROW = "optout_row"


class TableHandle(ABC):
    """One table of a table format, opened at its current version."""

    @abstractmethod
    def version(self) -> str:
        """The current version (Delta) or snapshot id (Iceberg), as text."""

    @abstractmethod
    def batches(self) -> pa.RecordBatchReader:
        """The current version's rows."""

    def scannable(self) -> Any:
        """The current version as DuckDB can scan it (an Arrow dataset or table)."""
        return self.batches().read_all()

    @abstractmethod
    def overwrite(self, data: pa.RecordBatchReader, request_id: str) -> None:
        """Replace the table's rows with `data` in one table commit tagged `request_id`."""

    @abstractmethod
    def committed_since(self, base: str, request_id: str) -> bool:
        """True when a commit after version `base` carries `request_id`'s tag."""

    @abstractmethod
    def versions(self) -> list[tuple[str, Any]]:
        """(version, DuckDB-scannable rows) of every version still readable."""


def count_matches(scannable: Any, query: MatchQuery, hasher: KeyedHash) -> int:
    """Rows of an Arrow dataset/table (or a DuckDB relation text) that match `query`."""
    if not query.keys and not query.texts:
        return 0
    con = memory_duckdb(threads=None)
    try:
        if isinstance(scannable, str):
            relation = scannable
        else:
            con.register("optout_rows", scannable)
            relation = "optout_rows"
        matcher = DuckDBMatcher(con, hasher)
        columns = list(matcher.describe(relation))
        return len(matcher.select(relation, query, columns[0])) if columns else 0
    except duckdb.Error as exc:
        raise ApplyError(f"cannot read the table: {one_line(exc)}") from exc
    finally:
        con.close()


class LakehouseTarget(FileTarget):
    """A Delta or Iceberg table, changed through its own transaction."""

    @abstractmethod
    def table(self) -> TableHandle:
        """The table, opened now."""

    @abstractmethod
    def folder(self) -> str:
        """The table's local folder (the staged file is written beside it)."""

    def files(self) -> list[str]:
        return [self.folder()]

    def executable(self) -> str | None:
        try:
            folder = self.folder()
        except ApplyError as exc:
            return str(exc)
        try:
            st = os.lstat(folder)
        except OSError as exc:
            return f"{folder} cannot be read ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return f"{folder} is a symbolic link: scan the table it points to"
        for path in (folder, os.path.dirname(folder) or "."):
            if not os.access(path, os.W_OK | os.X_OK):
                return f"{path} is not writable"
        return None

    def prepare(self) -> Staged:
        self.erased_values = set()  # this process sees the rows it changes
        handle = self.table()
        base = handle.version()
        reader = handle.batches()
        schema = reader.schema.with_metadata({**(reader.schema.metadata or {}),
                                              BASE: base.encode()})
        query = self.match_query()
        new, fh = open_staged(self.folder(), self.request_id)
        staged = Staged()
        con = memory_duckdb(threads=None)
        try:
            matcher = DuckDBMatcher(con, self.hasher)
            with pq.ParquetWriter(fh, schema) as writer:
                for batch in reader:
                    table = pa.Table.from_batches([batch], schema=reader.schema)
                    staged.rows_before += table.num_rows
                    hits = self._hits(con, matcher, table, query)
                    if hits:
                        self.capture(table.take(pa.array(hits, pa.int64())))
                        table = edit_rows(self, table, hits, self.kinds,
                                          dict(self.step.params))
                    staged.rows_changed += len(hits)
                    staged.rows_after += table.num_rows
                    writer.write_table(table.replace_schema_metadata(schema.metadata))
        except BaseException:
            fh.close()
            os.unlink(new)
            raise
        finally:
            con.close()
        fh.close()
        if not staged.rows_changed:
            os.unlink(new)
            return staged
        fsync_file(new)
        staged.files.append((self.step.location, new))
        staged.checksum_after = files_checksum([new])
        return staged

    def _hits(self, con: duckdb.DuckDBPyConnection, matcher: DuckDBMatcher, table: pa.Table,
              query: MatchQuery) -> list[int]:
        if not table.num_rows or (not query.keys and not query.texts):
            return []
        con.register("optout_batch", table.append_column(
            ROW, pa.array(range(table.num_rows), pa.int64())))
        try:
            return sorted(matcher.select("optout_batch", query, ROW))
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: {one_line(exc)}") from exc
        finally:
            con.unregister("optout_batch")

    def prepare_rebuild(self, table: pa.Table) -> Staged:
        handle = self.table()
        current = handle.batches()
        schema = current.schema
        rows_before = sum(b.num_rows for b in current)
        missing = [n for n in schema.names if n not in table.column_names]
        if missing:
            raise ApplyError(f"{self.step.dataset}: the rebuilt rows have no column "
                             f"{missing[0]!r}, which the table has")
        try:
            table = table.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ApplyError(f"{self.step.dataset}: the rebuilt rows do not fit the table's "
                             f"schema: {one_line(exc)}") from exc
        table = table.replace_schema_metadata({**(schema.metadata or {}),
                                               BASE: handle.version().encode()})
        new, fh = open_staged(self.folder(), self.request_id)
        with fh:
            pq.write_table(table, fh)
        fsync_file(new)
        return Staged(files=[(self.step.location, new)], rows_before=rows_before,
                      rows_after=table.num_rows, rows_expected=table.num_rows,
                      rows_changed=rows_before - table.num_rows,
                      checksum_after=files_checksum([new]))

    def commit(self, staged: Staged) -> None:
        for _, new in staged.files:
            if not os.path.exists(new):
                continue  # committed and cleaned up by an earlier attempt
            base = (pq.read_schema(new).metadata or {}).get(BASE, b"").decode()
            handle = self.table()
            if handle.version() != base:
                if handle.committed_since(base, self.request_id):
                    os.unlink(new)  # the table commit happened; the process died after it
                    continue
                raise ApplyError(f"{self.step.dataset}: the table changed since its change was "
                                 f"staged (version {base} → {handle.version()})")
            source = pq.ParquetFile(new)
            schema = source.schema_arrow.remove_metadata()
            reader = pa.RecordBatchReader.from_batches(schema, (
                pa.RecordBatch.from_arrays(b.columns, schema=schema)
                for b in source.iter_batches()))
            try:
                handle.overwrite(reader, self.request_id)
            except ApplyError:
                raise
            except Exception as exc:  # the library's own errors: the old version stays
                raise ApplyError(f"{self.step.dataset}: the table commit failed: "
                                 f"{one_line(exc)}") from exc
            fault("after-table-commit")
            os.unlink(new)

    def count_residue(self, path: str, original: str | None = None) -> int:
        query = self.residue_query()
        if original is not None:
            return count_matches(f"read_parquet({quote_literal(path)})", query, self.hasher)
        return count_matches(self.table().scannable(), query, self.hasher)

    def version_residues(self) -> dict[str, int]:
        """Rows of the subject in every version still readable (time travel)."""
        query = self.residue_query()
        out = {}
        for version, rows in self.table().versions():
            try:
                out[version] = count_matches(rows, query, self.hasher)
            except ApplyError:
                continue  # its files are gone: the version cannot be read any more
        return out

    def sandbox_relation(self, staged: Staged | None) -> Relation:
        new = [n for _, n in staged.files] if staged is not None else []
        if new:
            return Relation(arrow=pq.read_table(new[0]).replace_schema_metadata(None))
        return Relation(arrow=self.table().batches())


class LakehouseStore(FileStore):
    """A table format's folder after the erasure: the versions before it still hold the
    subject (time travel) until they are purged, which each format does its own way; or,
    when the policy keeps history (or the table keeps a version: an Iceberg tag), they are
    named with the day their retention ends."""

    @abstractmethod
    def purge(self) -> list[str]:
        """Remove every version but the current one, and every file only they used."""

    @abstractmethod
    def current_files(self) -> list[str]:
        """The data files of the current version (what is read raw while history is kept)."""

    def kept(self) -> dict[str, tuple[str | None, str]]:
        """Versions the table itself keeps whatever optout does → (the day that ends, ISO, or
        None), what keeps them."""
        return {}

    @abstractmethod
    def retention(self, version: str) -> tuple[str | None, str]:
        """When a version kept by policy stops being kept by the table's own settings
        (the day, ISO, or None), and the settings that say so."""

    def target(self, step: PlanStep) -> LakehouseTarget:
        from optout.connectors import connector_for

        cls = connector_for(step.format).target_class()
        target = cls(step, self.hasher)
        target.request_id = self.request_id
        return target

    def folder(self) -> str:
        """The table's folder (the staged file was written beside it)."""
        return self.location.rstrip(os.sep)

    def erase(self) -> list[str]:
        left = [p for p in staged_glob(self.folder(), self.request_id)
                if p.endswith(STAGED_SUFFIX) and os.path.isfile(p) and not os.path.islink(p)]
        for path in left:
            os.unlink(path)
        done = ["changed through the table's own transaction (a new version)"]
        if left:
            done.append(f"removed {len(left)} staged leftover file(s)")
        if self.settings.keep_history:
            return [*done, "older versions kept by policy (table_history: retain)"]
        return done + self.purge()

    def reach(self) -> Reach:
        versions: dict[str, int] = {}
        current = self.target(self.steps[0]).table().version()
        for step in self.steps:
            for version, rows in self.target(step).version_residues().items():
                versions[version] = versions.get(version, 0) + rows
        by_table = self.kept()
        kept = {}
        for version, rows in list(versions.items()):
            if version == current or not rows:
                continue
            if version in by_table or self.settings.keep_history:
                kept[version] = by_table.get(version) or self.retention(version)
                del versions[version]
        if not kept:
            return Reach(files=[p for p in self.paths() if os.path.isfile(p)
                                and not os.path.islink(p)], versions=versions)
        return Reach(files=self.current_files(), versions=versions, kept=kept, unreachable=[
            "the files of the versions kept: not read raw (they hold the subject until their "
            "retention ends)"])

    def outside(self) -> list[str]:
        return [FREED_BLOCKS, "data files whose pages are compressed show a raw read only the "
                "values stored uncompressed; every version still readable is read back through "
                "the table's library"]
