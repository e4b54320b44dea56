"""Parquet: one file, or a folder of part files / hive partitions read as one dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from scanner.errors import DatasetUnreadable
from scanner.model import DatasetRef, Sample
from scanner.sampling import windows
from scanner.sources.base import (
    DuckDBReadSource,
    file_fingerprint,
    flatten,
    memory_duckdb,
    one_line,
)
from scanner.sql import quote_literal


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

    def relation(self, ref: DatasetRef) -> str:
        """The DuckDB call that reads every part of the dataset."""
        hive = "true" if ref.option("hive") else "false"
        return (f"read_parquet({_literal_list(self.files())}, hive_partitioning={hive}, "
                "union_by_name=true)")

    def close(self) -> None:
        self._con.close()


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
