"""The registry of erasure targets: one per dataset format, plus recompute and views."""

from __future__ import annotations

from optout.engine.plan import PlanStep
from optout.engine.sandbox import Relation
from optout.engine.targets.base import ApplyError, Staged, Target
from optout.engine.targets.csv import CsvTarget
from optout.engine.targets.dbt_build import DbtBuildTarget
from optout.engine.targets.duckdb_table import DuckDBTableTarget
from optout.engine.targets.json import JsonTarget
from optout.engine.targets.log import LogTarget
from optout.engine.targets.parquet import ParquetTarget
from optout.engine.targets.recompute import (
    RecomputeTarget,
    Upstream,
    ViewTarget,
    as_deleting,
    reader_step,
)
from optout.engine.targets.sqlite_table import SQLiteTableTarget
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.secret import KeyedHash
from optout.scanner.engines import DUCKDB, Engine


class _Targets(dict):
    """Format → target class; PostgreSQL's is imported when a step needs it (psycopg is not
    loaded by a run that touches no database)."""

    def get(self, key: str, default: type[Target] | None = None) -> type[Target] | None:
        if key == "postgresql" and key not in self:
            from optout.engine.targets.postgres_table import PostgresTableTarget

            self[key] = PostgresTableTarget
        return super().get(key, default)


TARGETS: dict[str, type[Target]] = _Targets({
    cls.formats[0]: cls
    for cls in (ParquetTarget, CsvTarget, JsonTarget, LogTarget, DuckDBTableTarget,
                SQLiteTableTarget)
})


def target_for(step: PlanStep, hasher: KeyedHash, catalog: Catalog, request_id: str,
               upstream: Upstream | None = None, engine: Engine = DUCKDB) -> Target:
    """The target that carries out one step; `upstream` tells a rebuild how to read the
    datasets it reads (by default, as they are now). On the Spark engine, Spark rewrites
    Parquet datasets (engine/targets/spark_parquet.py); other formats change as on DuckDB."""
    if step.kind == "view":
        cls = TARGETS.get(step.format)
        return ViewTarget(step, hasher, cls(step, hasher) if cls else None)
    if step.action == "recompute" and step.param("rebuild") == "dbt":
        return DbtBuildTarget(step, hasher)
    cls = TARGETS.get(step.format)
    if cls is None:
        raise ApplyError(f"{step.dataset}: no target for format '{step.format}'")
    if step.action == "recompute":
        inner = target_for(as_deleting(step), hasher, catalog, request_id)
        return RecomputeTarget(step, hasher, inner,
                               upstream or (lambda ident: reader_for(catalog, hasher, ident)))
    if engine.spark and step.format == "parquet":
        from optout.engine.targets.spark_parquet import SparkParquetTarget

        target = SparkParquetTarget(step, hasher, engine)
    else:
        target = cls(step, hasher)
    if hasattr(target, "request_id"):
        target.request_id = request_id
    return target


def reader_for(catalog: Catalog, hasher: KeyedHash, dataset_id: str) -> Relation:
    """How a rebuild reads a catalog dataset as it is now (through its database's open
    transaction when there is one)."""
    record = catalog.find(dataset_id)
    cls = TARGETS.get(record.format)
    if cls is None:
        raise ApplyError(f"{record.name}: no reader for format '{record.format}'")
    return cls(reader_step(record), hasher).sandbox_relation(None)


__all__ = ["TARGETS", "ApplyError", "Staged", "Target", "reader_for", "target_for"]
