"""A directory, walked recursively: each readable file (or Parquet folder) is a dataset."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from optout.connectors.connector import Connector
from optout.connectors.dbt import artifact_dirs, unloaded_seeds
from optout.connectors.parquet.source import ParquetSource, hive_partitioned, part_files
from optout.connectors.source import Located, Source
from optout.model.dataset import DatasetRef, ForeignKey, Sample
from optout.model.errors import ScannerError
from optout.model.matching import MatchQuery, MatchResult
from optout.model.secret import KeyedHash


class DirectorySource(Source):
    """Every dataset below a folder. A folder of Parquet part files with one schema, or with
    hive partitions, is one dataset; anything else is read file by file.

    A file that cannot be opened becomes a failed dataset of the scan, never the end of it.
    In a dbt project, what dbt writes (target/, dbt_packages/, logs/) is not data: its
    manifest is read for lineage (optout/scanner/dbt.py), its compiled SQL never scanned.
    """

    kind = "directory"

    def __init__(
        self,
        location: str,
        opener: Callable[[str], Source | None],
        exclude: frozenset[str] = frozenset(),
        wrap: Callable[[Source], Source] = lambda source: source,
    ) -> None:
        super().__init__(location)
        self._opener = opener
        self._wrap = wrap  # how the engine reads a Parquet folder
        self._exclude = exclude
        self._owners: dict[str, Source] = {}
        self._broken: dict[str, ScannerError] = {}
        self._children: list[Source] = []

    def datasets(self) -> Iterator[DatasetRef]:
        for path in self._walk(Path(self.location)):
            try:
                if path.is_dir():
                    marked = _folder_connector(str(path))
                    child = self._wrap(marked.source_class()(str(path)) if marked
                                       else ParquetSource(str(path)))
                else:
                    child = self._opener(str(path))
            except ScannerError as exc:
                ref = DatasetRef("file", str(path), path.name, "file", path.suffix.lstrip("."))
                self._broken[ref.id] = exc
                yield ref
                continue
            if child is None:
                continue
            self._children.append(child)
            try:
                refs = list(child.datasets())
            except ScannerError as exc:
                ref = DatasetRef(child.kind, str(path), path.name, "file", child.kind)
                self._broken[ref.id] = exc
                yield ref
                continue
            for ref in refs:
                self._owners[ref.id] = child
                yield ref

    def _walk(self, root: Path) -> Iterator[Path]:
        """Datasets below the root; a symbolic link to a file is the file it points to (what
        apply changes is the data, never a link), each file once."""
        seen: set[Path] = set()
        unloaded: set[Path] = set()  # seeds a dbt project does not load: not its data
        for dirpath, dirs, files in os.walk(root):
            here = Path(dirpath)
            skip = artifact_dirs(here) if "dbt_project.yml" in files else set()
            if "dbt_project.yml" in files:
                unloaded |= unloaded_seeds(here)
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and d not in skip)
            if here != root and (_folder_connector(dirpath) or is_parquet_folder(here, files)):
                dirs[:] = []
                yield here
                continue
            for name in sorted(files):
                path = here / name
                if path.is_symlink():
                    path = path.resolve()
                    if not path.is_file():
                        continue
                if (not name.startswith((".", "_")) and str(path.resolve()) not in self._exclude
                        and path not in seen and path.resolve() not in unloaded):
                    seen.add(path)
                    yield path

    def _owner(self, ref: DatasetRef) -> Source:
        if ref.id in self._broken:
            raise self._broken[ref.id]
        return self._owners[ref.id]

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        return self._owner(ref).sample(ref, rows, seed)

    def foreign_keys(self, ref: DatasetRef) -> list[ForeignKey]:
        return self._owner(ref).foreign_keys(ref)

    def definition(self, ref: DatasetRef) -> str | None:
        return self._owner(ref).definition(ref)

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        return self._owner(ref).match(ref, query, hasher)

    def locate(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> Located:
        return self._owner(ref).locate(ref, query, hasher)

    def fingerprint(self, ref: DatasetRef) -> str | None:
        return None if ref.id in self._broken else self._owners[ref.id].fingerprint(ref)

    def close(self) -> None:
        for child in self._children:
            child.close()


def _folder_connector(path: str) -> Connector | None:
    from optout.connectors import folder_connector  # the registry imports this module

    return folder_connector(path)


def is_parquet_folder(folder: Path, files: list[str]) -> bool:
    """A folder that is one Parquet dataset: hive partitions, or only Parquet part files
    (at least two) that share one schema."""
    if hive_partitioned(folder):
        return True
    visible = [f for f in files if not f.startswith((".", "_"))]
    if len(visible) < 2 or not all(f.endswith(".parquet") for f in visible):
        return False
    try:
        schemas = {pq.read_schema(p).remove_metadata().to_string() for p in part_files(folder)}
    except (OSError, pa.ArrowException):
        return False  # a corrupt part: read the files one by one so the bad one is reported
    return len(schemas) == 1
