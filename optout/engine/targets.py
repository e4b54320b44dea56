"""The registry of erasure targets: one per dataset format, plus recompute and views."""

from __future__ import annotations

from optout.connectors.csv.target import CsvTarget
from optout.connectors.duckdb.target import DuckDBTableTarget
from optout.connectors.json.target import JsonTarget
from optout.connectors.log.target import LogTarget
from optout.connectors.parquet.target import ParquetTarget
from optout.connectors.sqlite.target import SQLiteTableTarget
from optout.connectors.target import ApplyError, Staged, Target
from optout.engine.dbt_build import DbtBuildTarget
from optout.engine.recompute import (
    RecomputeTarget,
    Upstream,
    ViewTarget,
    as_deleting,
    reader_step,
)
from optout.model.plan import PlanStep
from optout.model.runtime import DUCKDB, Engine
from optout.model.sandbox import Relation
from optout.model.secret import KeyedHash
from optout.scanner.catalog import Catalog


class _Targets(dict):
    """Format → target class; PostgreSQL's is imported when a step needs it (psycopg is not
    loaded by a run that touches no database)."""

    def get(self, key: str, default: type[Target] | None = None) -> type[Target] | None:
        if key == "postgresql" and key not in self:
            from optout.connectors.postgres.target import PostgresTableTarget

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
        from optout.connectors.parquet.spark import SparkParquetTarget

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
