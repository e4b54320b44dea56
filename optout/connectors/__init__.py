"""The registry of connectors: one per data format, each declared in its own folder
(`optout/connectors/<format>/__init__.py`). Turns what a user types (a path or a URI) into a
`Source`, and a dataset's format into its connector.

Adding a format: a folder with its source (and target) modules and a `CONNECTOR`
declaration, and one line in `REGISTERED`."""

from __future__ import annotations

import difflib
import functools
import importlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from optout.connectors.connector import Capabilities, Connector
from optout.connectors.source import Source
from optout.model.errors import SourceUnavailable, UnknownSource
from optout.model.redaction import redact_uri_passwords
from optout.model.runtime import DUCKDB, Runtime

#: the connector packages under optout.connectors, one line each
REGISTERED = (
    "parquet",
    "csv",
    "json",
    "log",
    "duckdb",
    "sqlite",
    "postgres",
    "delta",
    "iceberg",
)


@functools.cache
def connectors() -> tuple[Connector, ...]:
    """Every registered connector (their declarations only: no format's code is imported)."""
    return tuple(importlib.import_module(f"optout.connectors.{name}").CONNECTOR
                 for name in REGISTERED)


def connector_for(key: str) -> Connector | None:
    """The connector of a dataset format (`parquet`, `postgresql`), or None."""
    return next((c for c in connectors() if c.key == key), None)


def capabilities(key: str) -> Capabilities:
    """What the connector of a dataset format can do (nothing, for an unknown format)."""
    found = connector_for(key)
    return found.capabilities if found else Capabilities(stage=False, rebuild=False)


def dialect_of(key: str) -> str:
    """The SQL dialect (sqlglot's name) of the views a format's datasets hold."""
    found = connector_for(key)
    return found.dialect if found else "duckdb"


def folder_connector(path: str) -> Connector | None:
    """The connector whose datasets are whole folders marked by an entry (a Delta table's
    `_delta_log/`) when `path` is one, else None."""
    return next((c for c in connectors()
                 if c.marker and os.path.exists(os.path.join(path, c.marker))), None)


def suffixes() -> dict[str, Connector]:
    """File suffix → connector; a directory walk reads exactly these."""
    return {suffix: c for c in connectors() for suffix in c.suffixes}


def schemes() -> dict[str, Connector]:
    """URI scheme → connector."""
    return {scheme: c for c in connectors() for scheme in c.schemes}


def on_runtime(source: Source, runtime: Runtime) -> Source:
    """`source` as `runtime` reads it: on Spark, through the connector's Spark source when it
    has one (files Spark reads, PostgreSQL through JDBC); anything else as it is."""
    if not runtime.spark:
        return source
    found = connector_for(source.kind)
    wrapper = found.spark_source_class() if found else None
    return wrapper(source, runtime) if wrapper else source


def open_source(spec: str, exclude: frozenset[str] = frozenset(),
                engine: Runtime = DUCKDB) -> Source:
    """The source a path or URI names, read by `engine` (the runtime); raises
    `UnknownSource` or `SourceUnavailable`.

    `exclude` holds absolute paths a directory walk passes over (the catalog itself).
    """
    from optout.connectors.directory import DirectorySource, is_parquet_folder

    scheme = urlsplit(spec).scheme
    if "://" in spec:
        by_scheme = schemes()
        if scheme in by_scheme:
            return on_runtime(by_scheme[scheme].source_class()(spec), engine)
        hint = difflib.get_close_matches(scheme, list(by_scheme), n=1)
        did_you_mean = f" Did you mean {hint[0]}://?" if hint else ""
        raise UnknownSource(f"Unknown source scheme '{scheme}://' in "
                            f"{redact_uri_passwords(spec)}.{did_you_mean}")
    if not os.path.exists(spec):
        raise SourceUnavailable(f"{spec}: no such file or directory")
    if os.path.islink(spec) and os.path.isfile(spec):
        spec = os.path.realpath(spec)  # the data is the file a link points to
    if os.path.isdir(spec):
        marked = folder_connector(spec)
        if marked is not None:
            return on_runtime(marked.source_class()(spec), engine)
        if is_parquet_folder(Path(spec), os.listdir(spec)):
            return on_runtime(connector_for("parquet").source_class()(spec), engine)
        return DirectorySource(spec, lambda path: _on(open_file(path), engine), exclude,
                               lambda source: on_runtime(source, engine))
    source = _on(open_file(spec), engine)
    if source is None:
        suffix = os.path.splitext(spec)[1] or "(none)"
        known = " ".join(sorted(suffixes()))
        raise UnknownSource(f"{spec}: no reader for '{suffix}' files (known: {known})")
    return source


def _on(source: Source | None, runtime: Runtime) -> Source | None:
    return None if source is None else on_runtime(source, runtime)


def open_file(path: str) -> Source | None:
    """The source for one file by its suffix, or None when the suffix is not one we read."""
    found = suffixes().get(os.path.splitext(path)[1].lower())
    if found is None:
        return None
    if not os.access(path, os.R_OK):
        raise SourceUnavailable(f"{path}: permission denied")
    return found.source_class()(path)


__all__ = ["Capabilities", "Connector", "Source", "capabilities", "connector_for",
           "connectors", "dialect_of", "folder_connector", "on_runtime", "open_file", "open_source", "suffixes"]
