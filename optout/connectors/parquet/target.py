"""Parquet files and folders: only the files that hold matching rows are rewritten, in record
batches (memory bounded by bytes, not by what a row group decodes to), keeping schema,
compression and row order."""

from __future__ import annotations

import os
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from optout.connectors.parquet.source import file_relation, parquet_files
from optout.connectors.prefetch import prefetched
from optout.connectors.source import file_fingerprint
from optout.connectors.target import (
    ApplyError,
    FileTarget,
    Staged,
    Target,
    ensure_writable,
    files_checksum,
    fsync_file,
    open_staged,
)
from optout.model.duck import memory_duckdb
from optout.model.matching import DuckDBMatcher, MatchQuery, Prefilter
from optout.model.redaction import one_line
from optout.model.row_numbers import RowNumbers
from optout.model.values import change

#: no row numbers
NO_ROWS = np.empty(0, np.int64)
NO_ROWS.setflags(write=False)
#: a rewrite holds at most about this many bytes of decoded rows (and reads BATCH_ROWS at once)
BATCH_BYTES = 64 << 20
BATCH_ROWS = 8192


class ParquetTarget(FileTarget):
    """A Parquet file, or a folder of part files."""

    formats = ("parquet",)
    stages_alone = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # per file: what this process's prepare matched (deletes only; see Prefilter)
        self._prefilters: dict[str, Prefilter] = {}

    def files(self) -> list[str]:
        """The dataset's files."""
        return parquet_files(self.step.location)

    def _matched(self, path: str, query: MatchQuery, prefilter: Prefilter | None = None,
                 rows: np.ndarray | None = None) -> np.ndarray:
        """Row numbers of one file that match (sorted, distinct), found by keyed hash inside
        DuckDB (among the given row numbers only, when `rows` is set)."""
        if not query.keys and not query.texts:
            return NO_ROWS
        con = memory_duckdb(threads=None)
        try:
            if rows is not None:  # a table, not a literal list DuckDB would parse for long
                con.register("optout_rows", pa.table({"r": pa.array(rows, pa.int64())}))
            matcher = DuckDBMatcher(con, self.hasher)
            found = matcher.select_arrays(file_relation(path, "optout_rows" if rows is not None
                                                        else None), query,
                                          ("file_row_number",), prefilter)["file_row_number"]
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot read {path}: {one_line(exc)}") from exc
        finally:
            con.close()
        return RowNumbers.of(found).array

    def _located(self, path: str) -> np.ndarray | None:
        """The row numbers the plan located in the file (sorted, distinct), while it is as it
        was then."""
        located = {p: (fp, rows) for p, fp, rows in self.step.locations}.get(path)
        if located is None or file_fingerprint(path) != located[0]:
            return None
        return RowNumbers.of(located[1]).array

    def _confirmed(self, path: str, query: MatchQuery, rows: np.ndarray,
                   taken: pa.Table) -> bool:
        """True when every row the plan located still matches, read from the rows the rewrite
        took out of the file (`taken`, in row order), not from the file again; a delete also
        teaches the file's prefilter their values. Where DuckDB would type a key column of
        those rows otherwise than it types the file's columns (the prefilter compares cheap
        hashes of typed values), the located rows are read from the file instead."""
        prefilter = self._prefilters[path] = Prefilter()
        use = prefilter if self.deletes else None
        if taken.num_rows != len(rows):
            return False
        con = memory_duckdb(threads=None)
        try:
            con.register("optout_taken", taken.append_column(
                "optout_row", pa.array(rows, pa.int64())))
            matcher = DuckDBMatcher(con, self.hasher)
            types = matcher.describe("optout_taken")
            del types["optout_row"]
            in_file = matcher.describe(file_relation(path))
            del in_file["file_row_number"]
            if types != in_file:
                return np.array_equal(self._matched(path, query, use, rows), rows)
            found = matcher.select_arrays("optout_taken", query, ("optout_row",),
                                          use)["optout_row"]
            return np.array_equal(RowNumbers.of(found).array, rows)
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot read {path}: {one_line(exc)}") from exc
        finally:
            con.close()

    def prepare(self) -> Staged:
        query = self.match_query()
        staged = Staged()
        kinds = self.kinds
        params = dict(self.step.params)
        # the text values of the subject's rows, from the rows a rewrite takes out (memory
        # only: the raw read of the physical erasure searches them literally); unknown once a
        # file's rows are found by a hash pass, which brings back row numbers only
        self.erased_values = set()
        for path in self.files():
            meta = pq.ParquetFile(path).metadata
            staged.rows_before += meta.num_rows
            rows = self._located(path) if query.keys or query.texts else NO_ROWS
            new = None
            if rows is not None and not rows.size:  # the plan found nothing of the subject
                self._prefilters[path] = Prefilter(ready=True)
                matched = NO_ROWS
            elif rows is not None:  # edit where the plan located the rows, then confirm
                ensure_writable(path, self.step.dataset)
                matched = rows
                new, taken = self._rewrite(path, matched, kinds, params, take=True)
                if self._confirmed(path, query, rows, taken):
                    self.capture(taken)
                else:  # not as planned: read it
                    os.unlink(new)
                    new = None
                    rows = None
            if rows is None:  # every row hashed: a pass over the whole file
                self._prefilters[path] = prefilter = Prefilter()
                matched = self._matched(path, query, prefilter if self.deletes else None)
                if matched.size:
                    ensure_writable(path, self.step.dataset)
                    new, _ = self._rewrite(path, matched, kinds, params)
                    self.erased_values = None
            if not matched.size:
                staged.rows_after += meta.num_rows
                continue
            fsync_file(new)
            staged.files.append((path, new))
            staged.rows_changed += len(matched)
            staged.rows_after += pq.ParquetFile(new).metadata.num_rows
        staged.checksum_before = files_checksum([p for p, _ in staged.files])
        staged.checksum_after = files_checksum([n for _, n in staged.files])
        return staged

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

    def _rewrite(self, path: str, matched: np.ndarray, kinds: dict[str, str],
                 params: dict, take: bool = False) -> tuple[str, pa.Table | None]:
        """Write the new version in record batches, in memory bounded by BATCH_BYTES whatever
        the row groups hold once decoded (a row group that fits stays one row group; a larger
        one becomes several of at most that size), read a few batches ahead in a thread.
        Columns are dictionary-encoded where the file's are. Returns the staged file's path
        and, with `take`, the matched rows as they were (in row order; at most the rows a
        plan locates)."""
        source = pq.ParquetFile(path)
        meta = source.metadata
        compression = _compression(meta)
        new, fh = open_staged(path, self.request_id)
        taken: list[pa.RecordBatch] | None = [] if take else None
        try:
            with pq.ParquetWriter(fh, source.schema_arrow, compression=compression,
                                  use_dictionary=_dictionary_columns(meta)) as writer:
                pending: list[pa.RecordBatch] = []
                size, group = 0, None
                for i, batch in prefetched(self._edited(source, matched, kinds, params,
                                                        taken)):
                    if pending and (i != group or size + batch.nbytes > BATCH_BYTES):
                        _write(writer, pending)
                        pending, size = [], 0
                    group = i
                    pending.append(batch)
                    size += batch.nbytes
                _write(writer, pending)
        except BaseException:
            fh.close()
            os.unlink(new)
            raise
        fh.close()
        if taken is None:
            return new, None
        return new, pa.Table.from_batches(taken, schema=source.schema_arrow)

    def _edited(self, source: pq.ParquetFile, matched: np.ndarray, kinds: dict[str, str],
                params: dict, taken: list[pa.RecordBatch] | None
                ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """The file's record batches with the matched rows (sorted, distinct row numbers)
        edited (or gone), each with the number of the row group it came from; empty batches
        are left out. The matched rows, as they were, go to `taken` (unless it is None)."""
        offset = 0
        for i in range(source.metadata.num_row_groups):
            for batch in source.iter_batches(batch_size=BATCH_ROWS, row_groups=[i],
                                             use_threads=False):
                lo, hi = np.searchsorted(matched, (offset, offset + batch.num_rows))
                hits = matched[lo:hi] - offset
                offset += batch.num_rows
                if hits.size:
                    if taken is not None:
                        taken.append(batch.take(pa.array(hits)))
                    edited = self._edit(pa.Table.from_batches([batch]), hits, kinds,
                                        params).combine_chunks().to_batches()
                    batch = edited[0] if edited else None
                if batch is not None and batch.num_rows:
                    yield i, batch

    def _edit(self, group: pa.Table, hits: np.ndarray, kinds: dict[str, str],
              params: dict) -> pa.Table:
        return edit_rows(self, group, hits, kinds, params)

    def count_residue(self, path: str, original: str | None = None) -> int:
        if original is not None:  # a staged version: the prefilter of the file it came from
            return len(self._matched(path, self.residue_query(), self._prefilters.get(original)))
        return sum(len(self._matched(p, self.residue_query(), self._prefilters.get(p)))
                   for p in parquet_files(path))


def edit_rows(target: Target, group: pa.Table, hits: list[int] | np.ndarray, kinds: dict[str, str],
              params: dict) -> pa.Table:
    """`group` with the rows at `hits` removed (a delete step) or their columns changed as
    the step says, in the column's own Arrow type."""
    if target.deletes:
        keep = np.ones(group.num_rows, dtype=bool)
        keep[np.asarray(hits, dtype=np.int64)] = False
        return group.filter(pa.array(keep))
    for column, action in target.column_actions.items():
        if column not in group.column_names:
            continue
        values = group.column(column).to_pylist()
        field = group.schema.field(column)
        bits = field.type.bit_width if pa.types.is_integer(field.type) else 64
        for i in hits:
            values[i] = change(action, values[i], kinds.get(column, "code"), params,
                               target.hasher, frozenset(target.step.text_hashes), bits)
        index = group.column_names.index(column)
        try:
            array = pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = pa.array([None if v is None else v for v in values]).cast(field.type)
        group = group.set_column(index, field, array)
    return group


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


def _dictionary_columns(meta: pq.FileMetaData) -> bool | list[str]:
    """The columns the file dictionary-encodes (in its first row group): a rewrite encodes
    those alike, and spends no time building dictionaries the file does not have."""
    if not meta.num_row_groups:
        return True
    group = meta.row_group(0)
    return [group.column(j).path_in_schema for j in range(group.num_columns)
            if any("DICTIONARY" in e for e in group.column(j).encodings)]


def _compression(meta: pq.FileMetaData) -> str:
    """The file's compression as pyarrow's writer names it (its first column chunk's; the
    metadata says UNCOMPRESSED where the writer says none)."""
    if not meta.num_row_groups:
        return "snappy"
    name = meta.row_group(0).column(0).compression.lower()
    return "none" if name == "uncompressed" else name


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
    compression = _compression(source.metadata)
    new, fh = open_staged(path, request_id)
    with fh:
        pq.write_table(table, fh, compression=compression)
    return new
