"""Parquet files and folders: only the files that hold matching rows are rewritten, row group
by row group (memory bounded by a row group), keeping schema, compression and row order."""

from __future__ import annotations

import bisect

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.targets.base import (
    ApplyError,
    FileTarget,
    Staged,
    ensure_writable,
    file_checksum,
    fsync_file,
    staged_path,
)
from engine.values import change
from scanner.matching import DuckDBMatcher, MatchQuery, Prefilter
from scanner.sources.parquet import parquet_files
from scanner.sql import quote_literal


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

    def _matched(self, path: str, query: MatchQuery, prefilter: Prefilter | None = None
                 ) -> set[int]:
        """Row numbers of one file that match, found by keyed hash inside DuckDB."""
        if not query.keys and not query.texts:
            return set()
        con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})
        try:
            relation = (f"(SELECT * FROM read_parquet({quote_literal(path)}, "
                        "file_row_number=true, hive_partitioning=false))")
            matcher = DuckDBMatcher(con, self.hasher)
            rows = matcher.select(relation, query, "file_row_number", prefilter)
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: cannot read {path}: {exc}") from exc
        finally:
            con.close()
        return set(rows)

    def prepare(self) -> Staged:
        query = self.match_query()
        staged = Staged()
        kinds = self.kinds
        params = dict(self.step.params)
        for path in self.files():
            meta = pq.ParquetFile(path).metadata
            staged.rows_before += meta.num_rows
            prefilter = self._prefilters.setdefault(path, Prefilter())
            matched = self._matched(path, query, prefilter if self.deletes else None)
            if not matched:
                staged.rows_after += meta.num_rows
                continue
            ensure_writable(path, self.step.dataset)
            new = staged_path(path, self.request_id)
            self._rewrite(path, new, matched, kinds, params)
            fsync_file(new)
            staged.files.append((path, new))
            staged.rows_changed += len(matched)
            staged.rows_after += pq.ParquetFile(new).metadata.num_rows
        staged.checksum_before = _checksums([p for p, _ in staged.files])
        staged.checksum_after = _checksums([n for _, n in staged.files])
        return staged

    def _rewrite(self, path: str, new: str, matched: set[int], kinds: dict[str, str],
                 params: dict) -> None:
        source = pq.ParquetFile(path)
        meta = source.metadata
        compression = (meta.row_group(0).column(0).compression.lower()
                       if meta.num_row_groups else "snappy")
        writer = pq.ParquetWriter(new, source.schema_arrow, compression=compression)
        ordered = sorted(matched)
        try:
            offset = 0
            for i in range(meta.num_row_groups):
                group = source.read_row_group(i)
                hits = [r - offset for r in ordered[bisect.bisect_left(ordered, offset):
                                                   bisect.bisect_left(ordered, offset + group.num_rows)]]
                offset += group.num_rows
                if hits:
                    group = self._edit(group, hits, kinds, params)
                if group.num_rows:
                    writer.write_table(group, row_group_size=max(group.num_rows, 1))
        finally:
            writer.close()

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
            for i in hits:
                values[i] = change(action, values[i], kinds.get(column, "code"), params,
                                   self.hasher, frozenset(self.step.text_hashes))
            field = group.schema.field(column)
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


def _checksums(paths: list[str]) -> str | None:
    return ",".join(file_checksum(p)[:16] for p in paths) or None
