"""The registry of sources: turns what a user types (a path or a URI) into a `Source`."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from urllib.parse import urlsplit

from optout.connectors.csv.source import CsvSource
from optout.connectors.directory import DirectorySource, is_parquet_folder
from optout.connectors.duckdb.source import DuckDBFileSource
from optout.connectors.json.source import JsonSource
from optout.connectors.log.source import LogSource
from optout.connectors.parquet.source import ParquetSource
from optout.connectors.postgres.source import SCHEMES, PostgresSource, redact_uri
from optout.connectors.source import Source
from optout.connectors.sqlite.source import SQLiteSource
from optout.model.errors import SourceUnavailable, UnknownSource
from optout.model.runtime import DUCKDB, Engine

#: file suffix → source class; a directory walk reads exactly these
FILE_SOURCES: dict[str, type[Source]] = {
    ".parquet": ParquetSource,
    ".csv": CsvSource,
    ".tsv": CsvSource,
    ".json": JsonSource,
    ".jsonl": JsonSource,
    ".ndjson": JsonSource,
    ".log": LogSource,
    ".duckdb": DuckDBFileSource,
    ".sqlite": SQLiteSource,
    ".sqlite3": SQLiteSource,
    ".db": SQLiteSource,
}
URI_SOURCES: dict[str, type[Source]] = dict.fromkeys(SCHEMES, PostgresSource)


def open_source(spec: str, exclude: frozenset[str] = frozenset(),
                engine: Engine = DUCKDB) -> Source:
    """The source a path or URI names, read by `engine`; raises `UnknownSource` or
    `SourceUnavailable`.

    `exclude` holds absolute paths a directory walk passes over (the catalog itself).
    """
    scheme = urlsplit(spec).scheme
    if "://" in spec:
        if scheme in URI_SOURCES:
            return engine.wrap(URI_SOURCES[scheme](spec))
        hint = difflib.get_close_matches(scheme, list(URI_SOURCES), n=1)
        did_you_mean = f" Did you mean {hint[0]}://?" if hint else ""
        raise UnknownSource(
            f"Unknown source scheme '{scheme}://' in {redact_uri(spec)}.{did_you_mean}"
        )
    if not os.path.exists(spec):
        raise SourceUnavailable(f"{spec}: no such file or directory")
    if os.path.islink(spec) and os.path.isfile(spec):
        spec = os.path.realpath(spec)  # the data is the file a link points to
    if os.path.isdir(spec):
        if is_parquet_folder(Path(spec), os.listdir(spec)):
            return engine.wrap(ParquetSource(spec))
        return DirectorySource(spec, lambda path: _wrapped(open_file(path), engine), exclude,
                               engine.wrap)
    source = _wrapped(open_file(spec), engine)
    if source is None:
        suffix = os.path.splitext(spec)[1] or "(none)"
        known = " ".join(sorted(FILE_SOURCES))
        raise UnknownSource(f"{spec}: no reader for '{suffix}' files (known: {known})")
    return source


def _wrapped(source: Source | None, engine: Engine) -> Source | None:
    return None if source is None else engine.wrap(source)


def open_file(path: str) -> Source | None:
    """The source for one file by its suffix, or None when the suffix is not one we read."""
    cls = FILE_SOURCES.get(os.path.splitext(path)[1].lower())
    if cls is None:
        return None
    if not os.access(path, os.R_OK):
        raise SourceUnavailable(f"{path}: permission denied")
    return cls(path)


__all__ = ["FILE_SOURCES", "Source", "open_file", "open_source"]
