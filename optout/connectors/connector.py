"""How a data format is declared to optout: its key, where it is found (file suffixes, URI
schemes), what reads and changes it (imported only when first used), and what it can do.

A format's folder (`optout/connectors/<format>/__init__.py`) declares one `Connector`; the
registry (`optout/connectors/__init__.py`) lists the folders. Scan, planner and apply look a
connector up by the dataset's format and ask its capabilities; they never import a format."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optout.connectors.physical import Store
    from optout.connectors.source import Source
    from optout.connectors.target import Target


@dataclass(frozen=True)
class Capabilities:
    """What a format's connector can do; callers decide by these, never by the format's name."""

    #: samples where the data lives (row windows, TABLESAMPLE), never reading all of it
    sample_in_place: bool = False
    #: rows keep their position while the data's fingerprint holds: the plan's located rows
    #: are what apply changes, without another search (files)
    locate: bool = False
    #: a change is staged out of sight and made visible by a commit (a new file version, or
    #: an open transaction)
    stage: bool = True
    #: the changes of several of its datasets commit in one database transaction
    transactional: bool = False
    #: a derived dataset in this format can be rebuilt from its SQL (recompute)
    rebuild: bool = True
    #: it holds views (their SQL is read for lineage; a view is verified, never changed)
    views: bool = False
    #: it declares foreign keys
    foreign_keys: bool = False
    #: rows are held in files of rows or records (read whole; no server to ask)
    files: bool = False
    #: erased values are gone from its bytes after commit, not only from what it reads
    physical_erasure: bool = False


def _load(ref: str) -> Any:
    """`module:Name` imported (a connector's classes load only when a dataset needs them)."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Connector:
    """One data format: the dataset format the catalog records (`key`), how to open it, what
    reads and changes it on each runtime, and its capabilities."""

    key: str
    #: the Source class (`module:Class`) that lists and samples its datasets
    source: str
    #: the Target class that stages, checks and commits a change of one dataset
    target: str | None = None
    suffixes: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    #: the Source class that reads it on Spark (wrapping `source`), when Spark reads it
    spark_source: str | None = None
    #: the Target class that changes it on Spark, when Spark writes it
    spark_target: str | None = None
    #: the Store class (optout/connectors/physical.py) that makes an erasure physical
    physical: str | None = None
    #: a folder holding an entry of this name is one dataset of this format (a table format's
    #: log), never a folder of loose files
    marker: str | None = None
    #: the port a URI of its schemes means when it names none (a server's)
    default_port: int | None = None
    #: the SQL dialect of the views it holds (sqlglot's name)
    dialect: str = "duckdb"
    capabilities: Capabilities = field(default_factory=Capabilities)

    def physical_class(self) -> type[Store] | None:
        return _load(self.physical) if self.physical else None

    def source_class(self) -> type[Source]:
        return _load(self.source)

    def target_class(self, spark: bool = False) -> type[Target] | None:
        ref = (self.spark_target if spark else None) or self.target
        return _load(ref) if ref else None

    def spark_source_class(self) -> type[Source] | None:
        return _load(self.spark_source) if self.spark_source else None
