"""Parquet files and folders: only the files that hold matching rows are rewritten, in record
batches (memory bounded by bytes, not by what a row group decodes to), keeping schema,
compression and row order."""

from __future__ import annotations

import bisect
import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.targets.base import (
    ApplyError,
    FileTarget,
    Staged,
    ensure_writable,
    files_checksum,
    fsync_file,
    open_staged,
)
from engine.values import change
from scanner.matching import DuckDBMatcher, MatchQuery, Prefilter
from scanner.sources.base import file_fingerprint, memory_duckdb, one_line
from scanner.sources.parquet import file_relation, parquet_files

#: a rewrite holds at most about this many bytes of decoded rows (and reads BATCH_ROWS at once)
BATCH_BYTES = 64 << 20
BATCH_ROWS = 8192


class ParquetTarget(FileTarget):
    """A Parquet file, or a folder of part files."""

    formats = ("parquet",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # per file: what this process's prepare matched (deletes only; see Prefilter)
        self._prefilters: dict[str, Prefilter] = {}

    def files(self) -> list[str]:
        """The dataset's files."""
        return parquet_files(self.step.location)

    def _matched(self, path: str, query: MatchQuery, prefilter: Prefilter | None = None,
                 rows: tuple[int, ...] | None = None) -> set[int]:
        """Row numbers of one file that match, found by keyed hash inside DuckDB (among the
        given row numbers only, when `rows` is set)."""
        if not query.keys and not query.texts:
            return set()
        con = memory_duckdb(threads=None)
        try:
            matcher = DuckDBMatcher(con, self.hasher)
            found = matcher.select(file_relation(path, rows), query, "file_row_number",
                                   prefilter)
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot read {path}: {one_line(exc)}") from exc
        finally:
            con.close()
        return set(found)

    def _find(self, path: str, query: MatchQuery) -> set[int]:
        """The file's matching rows: where the plan located them while the file is as it was
        then (only those rows are hashed), else by a keyed-hash pass over the whole file. A
        delete also teaches the file's prefilter the matched rows' values."""
        prefilter = self._prefilters[path] = Prefilter()
        use = prefilter if self.deletes else None
        located = {p: (fp, rows) for p, fp, rows in self.step.locations}.get(path)
        if located is not None and file_fingerprint(path) == located[0]:
            rows = located[1]
            if not rows:
                prefilter.ready = True  # nothing of the subject in this file
                return set()
            matched = self._matched(path, query, use, rows)
            if matched == set(rows):
                return matched
            prefilter = self._prefilters[path] = Prefilter()  # not as planned: read it all
            use = prefilter if self.deletes else None
        return self._matched(path, query, use)

    def prepare(self) -> Staged:
        query = self.match_query()
        staged = Staged()
        kinds = self.kinds
        params = dict(self.step.params)
        for path in self.files():
            meta = pq.ParquetFile(path).metadata
            staged.rows_before += meta.num_rows
            matched = self._find(path, query)
            if not matched:
                staged.rows_after += meta.num_rows
                continue
            ensure_writable(path, self.step.dataset)
            new = self._rewrite(path, matched, kinds, params)
            fsync_file(new)
            staged.files.append((path, new))
            staged.rows_changed += len(matched)
            staged.rows_after += pq.ParquetFile(new).metadata.num_rows
        staged.checksum_before = files_checksum([p for p, _ in staged.files])
        staged.checksum_after = files_checksum([n for _, n in staged.files])
        return staged

    rebuildable = True

    def prepare_rebuild(self, table: pa.Table) -> Staged:
        """Every part file gets a new version holding the rebuilt rows that belong in it: in a
        hive-partitioned folder, the rows of its partition (in the folder's first file of that
        partition; its other files are emptied); elsewhere all rows in the first file. Each
        file keeps its schema and compression."""
        files = self.files()
        if not files:
            raise ApplyError(f"{self.step.dataset}: no Parquet files to rebuild")
        staged = Staged(rows_expected=table.num_rows)
        parts = _partitions(self.step.location, files) if self.options.get("hive") else {}
        keys = sorted({k for p in parts.values() for k, _ in p})
        placed: set[int] = set()
        first_of: dict[tuple, str] = {}
        for path in files:
            first_of.setdefault(parts.get(path, ()), path)
        for path in files:
            ensure_writable(path, self.step.dataset)
            source = pq.ParquetFile(path)
            staged.rows_before += source.metadata.num_rows
            rows = np.zeros(table.num_rows, dtype=bool)
            if first_of[parts.get(path, ())] == path:
                rows = _rows_of(table, dict(parts.get(path, ())))
                placed.update(np.flatnonzero(rows).tolist())
            part = table.filter(pa.array(rows)).drop_columns(
                [k for k in keys if k in table.column_names
                 and k not in source.schema_arrow.names])
            new = _write_like(source, part, path, self.request_id, self.step.dataset)
            fsync_file(new)
            staged.files.append((path, new))
            staged.rows_after += pq.ParquetFile(new).metadata.num_rows
        if len(placed) != table.num_rows:
            raise ApplyError(f"{self.step.dataset}: {table.num_rows - len(placed)} rebuilt rows "
                             "belong to partitions the folder does not have")
        staged.rows_changed = staged.rows_before - staged.rows_after
        staged.checksum_before = files_checksum([p for p, _ in staged.files])
        staged.checksum_after = files_checksum([n for _, n in staged.files])
        return staged

    def _rewrite(self, path: str, matched: set[int], kinds: dict[str, str],
                 params: dict) -> str:
        """Write the new version in record batches, in memory bounded by BATCH_BYTES whatever
        the row groups hold once decoded (a row group that fits stays one row group; a larger
        one becomes several of at most that size). Returns the staged file's path."""
        source = pq.ParquetFile(path)
        meta = source.metadata
        compression = (meta.row_group(0).column(0).compression.lower()
                       if meta.num_row_groups else "snappy")
        new, fh = open_staged(path, self.request_id)
        writer = pq.ParquetWriter(fh, source.schema_arrow, compression=compression)
        ordered = sorted(matched)
        try:
            offset = 0
            for i in range(meta.num_row_groups):
                pending: list[pa.RecordBatch] = []
                size = 0
                for batch in source.iter_batches(batch_size=BATCH_ROWS, row_groups=[i],
                                                 use_threads=False):
                    hits = [r - offset for r in ordered[
                        bisect.bisect_left(ordered, offset):
                        bisect.bisect_left(ordered, offset + batch.num_rows)]]
                    offset += batch.num_rows
                    if hits:
                        batch = self._edit(pa.Table.from_batches([batch]), hits, kinds,
                                           params).combine_chunks().to_batches()
                        batch = batch[0] if batch else None
                    if batch is None or not batch.num_rows:
                        continue
                    if pending and size + batch.nbytes > BATCH_BYTES:
                        _write(writer, pending)
                        pending, size = [], 0
                    pending.append(batch)
                    size += batch.nbytes
                _write(writer, pending)
        finally:
            writer.close()
            fh.close()
        return new

    def _edit(self, group: pa.Table, hits: list[int], kinds: dict[str, str],
              params: dict) -> pa.Table:
        if self.deletes:
            keep = np.ones(group.num_rows, dtype=bool)
            keep[np.asarray(hits, dtype=np.int64)] = False
            return group.filter(pa.array(keep))
        for column, action in self.column_actions.items():
            if column not in group.column_names:
                continue
            values = group.column(column).to_pylist()
            field = group.schema.field(column)
            bits = field.type.bit_width if pa.types.is_integer(field.type) else 64
            for i in hits:
                values[i] = change(action, values[i], kinds.get(column, "code"), params,
                                   self.hasher, frozenset(self.step.text_hashes), bits)
            index = group.column_names.index(column)
            try:
                array = pa.array(values, type=field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                array = pa.array([None if v is None else v for v in values]).cast(field.type)
            group = group.set_column(index, field, array)
        return group

    def count_residue(self, path: str, original: str | None = None) -> int:
        if original is not None:  # a staged version: the prefilter of the file it came from
            return len(self._matched(path, self.residue_query(), self._prefilters.get(original)))
        return sum(len(self._matched(p, self.residue_query(), self._prefilters.get(p)))
                   for p in parquet_files(path))


def _partitions(root: str, files: list[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Per file, its hive partition (`key=value` folders between the root and the file)."""
    out = {}
    for path in files:
        rel = os.path.relpath(os.path.dirname(path), root)
        out[path] = tuple(tuple(d.split("=", 1)) for d in rel.split(os.sep) if "=" in d)
    return out


def _rows_of(table: pa.Table, partition: dict[str, str]) -> np.ndarray:
    """Which rows of a rebuilt table belong in a partition (all, when there is none)."""
    keep = np.ones(table.num_rows, dtype=bool)
    for key, value in partition.items():
        if key not in table.column_names:
            raise ApplyError(f"the rebuilt rows have no column {key!r} to place them in "
                             "the folder's partitions")
        column = table.column(key).cast(pa.string()).to_numpy(zero_copy_only=False)
        keep &= column == value
    return keep


def _write(writer: pq.ParquetWriter, batches: list[pa.RecordBatch]) -> None:
    """One row group of the batches (none: nothing)."""
    if batches:
        table = pa.Table.from_batches(batches)
        writer.write_table(table, row_group_size=max(table.num_rows, 1))


def _write_like(source: pq.ParquetFile, table: pa.Table, path: str, request_id: str,
                dataset: str) -> str:
    """A staged version of `path` holding `table`, with the schema and compression of
    `source`; returns its path."""
    schema = source.schema_arrow
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise ApplyError(f"{dataset}: the rebuilt rows have no column {missing[0]!r}, which "
                         "the file has")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ApplyError(f"{dataset}: the rebuilt rows do not fit the file's schema: "
                         f"{one_line(exc)}") from exc
    meta = source.metadata
    compression = (meta.row_group(0).column(0).compression.lower()
                   if meta.num_row_groups else "snappy")
    new, fh = open_staged(path, request_id)
    with fh:
        pq.write_table(table, fh, compression=compression)
    return new
