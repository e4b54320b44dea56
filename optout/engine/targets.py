"""The target that carries out a plan step: the connector of the dataset's format (on the
runtime the plan is applied with), or a rebuild (recompute, dbt build), or a view."""

from __future__ import annotations

from optout.connectors import connector_for
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
from optout.model.runtime import DUCKDB, Runtime
from optout.model.sandbox import Relation
from optout.model.secret import KeyedHash
from optout.scanner.catalog import Catalog


def target_class(fmt: str, engine: Runtime = DUCKDB) -> type[Target] | None:
    """The class that changes datasets of format `fmt` on `engine`, or None."""
    found = connector_for(fmt)
    return found.target_class(spark=engine.spark) if found else None


def target_for(step: PlanStep, hasher: KeyedHash, catalog: Catalog, request_id: str,
               upstream: Upstream | None = None, engine: Runtime = DUCKDB) -> Target:
    """The target that carries out one step; `upstream` tells a rebuild how to read the
    datasets it reads (by default, as they are now). On the Spark runtime, a format whose
    connector has a Spark target (Parquet) is changed by Spark; others as on DuckDB."""
    if step.kind == "view":
        cls = target_class(step.format)
        return ViewTarget(step, hasher, cls(step, hasher) if cls else None)
    if step.action == "recompute" and step.param("rebuild") == "dbt":
        return DbtBuildTarget(step, hasher)
    found = connector_for(step.format)
    if found is None or found.target is None:
        raise ApplyError(f"{step.dataset}: no target for format '{step.format}'")
    if step.action == "recompute":
        inner = target_for(as_deleting(step), hasher, catalog, request_id)
        return RecomputeTarget(step, hasher, inner,
                               upstream or (lambda ident: reader_for(catalog, hasher, ident)))
    spark = engine.spark and found.spark_target is not None
    cls = found.target_class(spark)
    target = cls(step, hasher, engine) if spark else cls(step, hasher)
    if hasattr(target, "request_id"):
        target.request_id = request_id
    return target


def reader_for(catalog: Catalog, hasher: KeyedHash, dataset_id: str) -> Relation:
    """How a rebuild reads a catalog dataset as it is now (through its database's open
    transaction when there is one)."""
    record = catalog.find(dataset_id)
    cls = target_class(record.format)
    if cls is None:
        raise ApplyError(f"{record.name}: no reader for format '{record.format}'")
    return cls(reader_step(record), hasher).sandbox_relation(None)


__all__ = ["ApplyError", "Staged", "Target", "reader_for", "target_class", "target_for"]
