"""Iceberg locations: what an `iceberg://` URI names, and opening its catalog and tables."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from optout.model.errors import SourceUnavailable
from optout.model.redaction import one_line, redact_uri_passwords

#: query keys whose values are secrets (never shown)
SECRET_KEYS = ("credential", "token", "password", "secret", "key")


def parse(uri: str) -> tuple[str, str | None, dict[str, str]]:
    """(catalog name, `namespace.table` or None, catalog properties) of an `iceberg://` URI."""
    parts = urlsplit(uri)
    if parts.scheme != "iceberg" or not parts.netloc:
        raise SourceUnavailable(f"{shown(uri)}: an Iceberg location is "
                                "iceberg://CATALOG[/NAMESPACE.TABLE][?property=value&…]")
    identifier = parts.path.strip("/") or None
    return parts.netloc, identifier, dict(parse_qsl(parts.query, keep_blank_values=True))


def table_uri(uri: str, identifier: str) -> str:
    """The URI of one table of the catalog `uri` names."""
    name, _, props = parse(uri)
    return f"iceberg://{name}/{identifier}" + (f"?{urlencode(props)}" if props else "")


def shown(uri: str) -> str:
    """The URI as messages and reports show it: secret-looking query values masked."""
    parts = urlsplit(uri)
    query = [(k, "***" if any(s in k.lower() for s in SECRET_KEYS) else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return redact_uri_passwords(parts._replace(query=urlencode(query, safe="/:")).geturl())


def open_catalog(uri: str) -> Any:
    """The pyiceberg catalog an `iceberg://` URI names."""
    from pyiceberg.catalog import load_catalog

    name, _, props = parse(uri)
    try:
        return load_catalog(name, **props)
    except Exception as exc:  # pyiceberg's own errors (missing config, unreachable service)
        raise SourceUnavailable(f"{shown(uri)}: cannot open the Iceberg catalog "
                                f"'{name}': {one_line(exc)}") from exc


def open_table(uri: str) -> Any:
    """The pyiceberg table an `iceberg://CATALOG/NAMESPACE.TABLE` URI names."""
    _, identifier, _ = parse(uri)
    if not identifier:
        raise SourceUnavailable(f"{shown(uri)}: names no table (iceberg://CATALOG/NS.TABLE)")
    catalog = open_catalog(uri)
    try:
        return catalog.load_table(identifier)
    except Exception as exc:
        raise SourceUnavailable(f"{shown(uri)}: cannot load table '{identifier}': "
                                f"{one_line(exc)}") from exc


def local_folder(table: Any) -> str | None:
    """The table's folder when it is on this machine's file system, else None."""
    location = str(table.location())
    if location.startswith("file://"):
        return location.removeprefix("file://").rstrip("/")
    if location.startswith("/"):
        return location.rstrip("/")
    return None if "://" in location else os.path.abspath(location)
