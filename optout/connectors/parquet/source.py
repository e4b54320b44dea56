"""Parquet: one file, or a folder of part files / hive partitions read as one dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from optout.connectors.source import DuckDBReadSource, Located, file_fingerprint, flatten
from optout.model.dataset import DatasetRef, Sample
from optout.model.duck import memory_duckdb
from optout.model.errors import DatasetUnreadable
from optout.model.matching import DuckDBMatcher, MatchQuery, MatchResult, beyond, covers, merged
from optout.model.redaction import one_line
from optout.model.row_numbers import RowNumbers
from optout.model.sampling import windows
from optout.model.secret import KeyedHash
from optout.model.sql import quote_literal


class ParquetSource(DuckDBReadSource):
    """A Parquet file, or a folder whose Parquet files share one schema.

    Sampling seeks: row counts come from the footers, and only a few seeded row windows are
    read (DuckDB prunes row groups on `file_row_number`), so cost follows the sample.
    """

    kind = "parquet"
    seekable = True

    def __init__(self, location: str, name: str | None = None) -> None:
        super().__init__(location)
        self.path = Path(location)
        self.name = name or (self.path.stem if self.path.is_file() else self.path.name)
        self._con = memory_duckdb()
        self._match_con: duckdb.DuckDBPyConnection | None = None
        #: the files' fingerprints, the query and the columns of the last match that kept
        #: its rows
        self._kept: tuple[dict[str, str], MatchQuery, tuple[str, ...]] | None = None

    def files(self) -> list[str]:
        """The Parquet files that make up the dataset, sorted."""
        return parquet_files(str(self.path))

    def datasets(self) -> Iterator[DatasetRef]:
        yield DatasetRef(
            self.kind,
            str(self.path),
            self.name,
            "file" if self.path.is_file() else "folder",
            "parquet",
            (("hive", hive_partitioned(self.path)),),
        )

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        files = self.files()
        if not files:
            raise DatasetUnreadable(f"no Parquet files under {self.path}")
        try:
            counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        except Exception as exc:
            raise DatasetUnreadable(f"not a readable Parquet file: {one_line(exc)}") from exc
        total = sum(counts)
        # Windows over the concatenation of all files, then mapped back to (file, local range).
        conditions: list[str] = []
        offsets = [0]
        for c in counts:
            offsets.append(offsets[-1] + c)
        for start, end in windows(total, rows, seed):
            for i, f in enumerate(files):
                lo, hi = max(start, offsets[i]), min(end, offsets[i + 1])
                if lo < hi:
                    conditions.append(
                        f"(filename = {quote_literal(f)} AND file_row_number BETWEEN "
                        f"{lo - offsets[i]} AND {hi - offsets[i] - 1})"
                    )
        where = " OR ".join(conditions) or "false"
        hive = "true" if ref.option("hive") else "false"
        query = (
            f"SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet("
            f"{_literal_list(files)}, filename=true, file_row_number=true, "
            f"hive_partitioning={hive}, union_by_name=true) WHERE {where}"
        )
        try:
            table = self._con.sql(query).to_arrow_table()
        except Exception as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return Sample(flatten(table), total)

    def fingerprint(self, ref: DatasetRef) -> str:
        return file_fingerprint(*self.files())

    def _matcher(self, hasher: KeyedHash) -> DuckDBMatcher:
        """Matches run on every core (unlike a seeded sample, their answer does not depend on
        the number of threads), in a connection that keeps the last match's rows."""
        if self._match_con is None:
            self._match_con = memory_duckdb(threads=None)
        return DuckDBMatcher(self._match_con, hasher)

    def _fingerprints(self) -> dict[str, str]:
        return {f: file_fingerprint(f) for f in self.files()}

    def _covered(self, query: MatchQuery) -> dict[str, str] | None:
        """The files' fingerprints, when the kept rows of the last match hold every row that
        `query` can match (its query covers this one, it kept the columns this one reads, and
        no file changed since); else None."""
        if self._kept is None or not covers(self._kept[1], query) or \
                not within_columns(query, self._kept[2]):
            return None
        now = self._fingerprints()
        return now if now == self._kept[0] else None

    def _relation(self, ref: DatasetRef, files: list[str]) -> str:
        hive = "true" if ref.option("hive") else "false"
        return (f"read_parquet({_literal_list(files)}, filename='optout_file', "
                f"file_row_number=true, hive_partitioning={hive}, union_by_name=true)")

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        """Matching keeps the matching rows with their file and row number: a later match
        reads the files only for what the kept rows cannot answer (a key value learned since:
        only those values are searched for), and locating the rows reads none."""
        matcher = self._matcher(hasher)
        kept, self._kept = self._kept, None
        try:
            before = self._fingerprints()
            relation = self._relation(ref, list(before))
            if (kept is not None and kept[0] == before and within_columns(query, kept[2])
                    and matcher.keep_more(relation, beyond(query, kept[1]), KEPT, BY,
                                          kept[2])):
                result = matcher.match(KEPT, query)
                if self._fingerprints() == before:
                    self._kept = (before, merged(kept[1], query), kept[2])
                return result
            columns = matcher.reads(relation, query, BY)
            result = matcher.match(relation, query, keep=KEPT, columns=columns)
            if matcher.holds(KEPT) and self._fingerprints() == before:
                self._kept = (before, query, columns)
            return result
        except duckdb.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc

    def locate(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> Located:
        """Per part file, the row numbers of the matching rows: from the rows the last match
        kept when they cover the query, else one keyed-hash pass per file on every core.
        Empty when a file changed while it was read, or when more than MAX_LOCATED_ROWS rows
        match (apply then finds them again itself)."""
        matcher = self._matcher(hasher)
        fingerprints = self._covered(query)
        if fingerprints is not None:
            try:
                found = matcher.select_arrays(KEPT, query, ("optout_file", "file_row_number"))
            except duckdb.Error as exc:
                raise DatasetUnreadable(one_line(exc)) from exc
            if len(found["file_row_number"]) > MAX_LOCATED_ROWS:
                return ()
            # one pass over the rows whatever the number of part files
            grouped = pa.table({"f": pa.array(found["optout_file"], pa.string()),
                                "r": found["file_row_number"]}).group_by("f").aggregate(
                                    [("r", "list")])
            rows = {f: numbers.values.to_numpy() for f, numbers in
                    zip(grouped["f"].to_pylist(), grouped["r_list"], strict=True)}
            return tuple((f, fp, RowNumbers.of(rows.get(f, ())))
                         for f, fp in fingerprints.items())
        out = []
        try:
            total = 0
            for path in self.files():
                before = file_fingerprint(path)
                numbers = matcher.select_arrays(file_relation(path), query,
                                                ("file_row_number",))["file_row_number"]
                total += len(numbers)
                if file_fingerprint(path) != before or total > MAX_LOCATED_ROWS:
                    return ()
                out.append((path, before, RowNumbers.of(numbers)))
        except (duckdb.Error, OSError) as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return tuple(out)

    def relation(self, ref: DatasetRef) -> str:
        """The DuckDB call that reads every part of the dataset."""
        hive = "true" if ref.option("hive") else "false"
        return (f"read_parquet({_literal_list(self.files())}, hive_partitioning={hive}, "
                "union_by_name=true)")

    def close(self) -> None:
        self._con.close()
        if self._match_con is not None:
            self._match_con.close()


def within_columns(query: MatchQuery, columns: tuple[str, ...]) -> bool:
    """True when every column the query reads is (in) one of these top-level columns."""
    return all(c in columns or c.split(".")[0] in columns for c in query.columns())


#: the temporary table of the rows the last match kept (in memory, in the source's connection)
KEPT = "optout_kept"
#: what tells the kept rows apart
BY = ("optout_file", "file_row_number")
#: beyond this many matching rows a plan does not carry their positions (held as one int64
#: array: 200 MB at the bound; a million people's orders are some ten million rows)
MAX_LOCATED_ROWS = 25_000_000


def file_relation(path: str, rows: str | None = None) -> str:
    """One Parquet file as DuckDB reads it, with each row's number (`file_row_number`);
    only the row numbers in column `r` of the table named `rows`, when it is set."""
    where = f" WHERE file_row_number IN (SELECT r FROM {rows})" if rows is not None else ""
    return (f"(SELECT * FROM read_parquet({quote_literal(path)}, file_row_number=true, "
            f"hive_partitioning=false){where})")


def part_files(folder: Path) -> Iterator[str]:
    """Parquet part files below a folder, skipping hidden and `_`-prefixed entries (`_SUCCESS`)."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for n in names:
            if n.endswith(".parquet") and not n.startswith((".", "_")):
                yield os.path.join(root, n)


def parquet_files(location: str) -> list[str]:
    """The files of a Parquet dataset: the file itself, or the part files of a folder."""
    return [location] if os.path.isfile(location) else sorted(part_files(Path(location)))


def hive_partitioned(path: Path) -> bool:
    """True when a folder's sub-folders are named `key=value`."""
    return path.is_dir() and any("=" in d.name for d in path.iterdir() if d.is_dir())


def _literal_list(items: list[str]) -> str:
    return "[" + ", ".join(quote_literal(i) for i in items) + "]"
