"""The interface every source implements, and the helpers sources share."""

from __future__ import annotations

import hashlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import duckdb
import pyarrow as pa

from optout.model.dataset import DatasetRef, ForeignKey, Sample
from optout.model.duck import memory_duckdb
from optout.model.errors import DatasetUnreadable
from optout.model.matching import DuckDBMatcher, MatchQuery, MatchResult
from optout.model.redaction import one_line
from optout.model.row_numbers import RowNumbers
from optout.model.secret import KeyedHash


class Source(ABC):
    """A place that holds datasets: lists them and samples each one.

    Capability flags tell callers (the scanner now, erasure targets later) what the engine
    behind the source can do without reading everything.
    """

    kind: ClassVar[str]
    #: the engine can read a row range without scanning what comes before it
    seekable: ClassVar[bool] = False

    def __init__(self, location: str) -> None:
        self.location = location

    @abstractmethod
    def datasets(self) -> Iterator[DatasetRef]:
        """Every dataset this source holds."""

    @abstractmethod
    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        """A seeded sample of at most `rows` rows of `ref`, and its row count."""

    @abstractmethod
    def fingerprint(self, ref: DatasetRef) -> str | None:
        """A cheap value that changes whenever the dataset's content or schema changes.

        None when the source cannot tell (the dataset is then re-read on every scan).
        """

    def foreign_keys(self, ref: DatasetRef) -> list[ForeignKey]:
        """Foreign keys the engine declares for the dataset (none for files)."""
        return []

    def definition(self, ref: DatasetRef) -> str | None:
        """The SQL that defines a view, when the dataset is one."""
        return None

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        """Count the dataset's rows that match `query`, inside the engine holding them."""
        raise DatasetUnreadable(f"{self.kind} sources cannot be searched for a subject")

    def locate(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> Located:
        """Where the rows that match `query` are, for sources whose rows keep their position
        while the data's fingerprint holds (files): per file, its fingerprint and the row
        numbers. Empty when the source cannot tell; apply then matches by a full pass."""
        return ()

    def close(self) -> None:  # noqa: B027 - most sources hold a connection; some hold nothing
        """Release connections; the source is not used afterwards."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



#: per file: (path, fingerprint when read, row numbers of the matching rows)
Located = tuple[tuple[str, str, RowNumbers | tuple[int, ...]], ...]


def file_fingerprint(*paths: str, salt: str = "") -> str:
    """Size and modification time of each file: changes when a file is rewritten or replaced.

    `salt` tells apart the datasets that live in one file (the tables of a database file).
    """
    h = hashlib.sha256(salt.encode())
    for path in sorted(paths):
        st = os.stat(path)
        h.update(f"{path}\x00{st.st_size}\x00{st.st_mtime_ns}\x00{st.st_ino}\n".encode())
    return h.hexdigest()[:32]





class DuckDBReadSource(Source):
    """A source whose datasets DuckDB reads as a relation (a file reader, a table): matching
    a subject runs in the source's own DuckDB connection."""

    _con: duckdb.DuckDBPyConnection

    @abstractmethod
    def relation(self, ref: DatasetRef) -> str:
        """SQL naming the dataset in the source's connection (a table function call or table)."""

    def reservoir(self, relation: str, rows: int, seed: int) -> Sample:
        """A seeded reservoir sample of a relation of the source's connection, streamed (memory
        bounded by the sample), and its row count."""
        try:
            total = self._con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
            table = self._con.sql(
                f"SELECT * FROM {relation} USING SAMPLE reservoir({int(rows)} ROWS) "
                f"REPEATABLE ({int(seed)})"
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return Sample(flatten(table), int(total))

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        try:
            return DuckDBMatcher(self._con, hasher).match(self.relation(ref), query)
        except duckdb.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc


class StreamedFileSource(DuckDBReadSource):
    """A single file DuckDB reads front to back (CSV, JSON, logs): one dataset, reservoir-sampled.

    Subclasses say how DuckDB reads the file (`reader`); the streaming sample keeps memory
    bounded by the sample size whatever the file's size.
    """

    format: ClassVar[str]

    def __init__(self, location: str, name: str | None = None) -> None:
        super().__init__(location)
        self.name = name or os.path.splitext(os.path.basename(location))[0]
        self._con = memory_duckdb()

    @abstractmethod
    def reader(self) -> str:
        """The DuckDB table function call that reads the file."""

    def dialect(self) -> tuple[tuple[str, object], ...]:
        """Reader options worth recording with the dataset (they are needed to rewrite it)."""
        return ()

    def datasets(self) -> Iterator[DatasetRef]:
        yield DatasetRef(self.kind, self.location, self.name, "file", self.format, self.dialect())

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        return self.reservoir(self.reader(), rows, seed)

    def relation(self, ref: DatasetRef) -> str:
        return self.reader()

    def fingerprint(self, ref: DatasetRef) -> str:
        return file_fingerprint(self.location)

    def close(self) -> None:
        self._con.close()


def flatten(table: pa.Table) -> pa.Table:
    """Nested struct fields become dotted column names (`address.city`)."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def rows_to_arrow(names: list[str], rows: list[tuple]) -> pa.Table:
    """Arrow from DB-API rows; a column whose values Arrow cannot type becomes text, and so
    does a UUID column (Arrow would make it 16 raw bytes, which no text reader can read)."""
    arrays = []
    for i, _ in enumerate(names):
        values = [row[i] for row in rows]
        if any(isinstance(v, uuid.UUID) for v in values):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
            continue
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.Table.from_arrays(arrays, names=_unique(names)) if names else pa.table({})


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}_{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out
