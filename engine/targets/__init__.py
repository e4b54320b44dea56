"""The registry of erasure targets: one per dataset format, plus recompute and views."""

from __future__ import annotations

from engine.plan import PlanStep
from engine.targets.base import ApplyError, Staged, Target
from engine.targets.csv import CsvTarget
from engine.targets.duckdb_table import DuckDBTableTarget
from engine.targets.json import JsonTarget
from engine.targets.log import LogTarget
from engine.targets.parquet import ParquetTarget
from engine.targets.postgres_table import PostgresTableTarget
from engine.targets.recompute import RecomputeTarget, ViewTarget
from engine.targets.sqlite_table import SQLiteTableTarget
from scanner.catalog import Catalog
from scanner.catalog.secret import KeyedHash

TARGETS: dict[str, type[Target]] = {
    cls.formats[0]: cls
    for cls in (ParquetTarget, CsvTarget, JsonTarget, LogTarget, DuckDBTableTarget,
                SQLiteTableTarget, PostgresTableTarget)
}


def target_for(step: PlanStep, hasher: KeyedHash, catalog: Catalog, request_id: str) -> Target:
    """The target that carries out one step."""
    if step.kind == "view":
        return ViewTarget(step, hasher)
    if step.action == "recompute":
        if step.format != "duckdb":
            raise ApplyError(f"{step.dataset}: recompute of {step.format} datasets is not "
                             "supported; declare a delete_rows rule for it")
        return RecomputeTarget(step, hasher, catalog)
    cls = TARGETS.get(step.format)
    if cls is None:
        raise ApplyError(f"{step.dataset}: no target for format '{step.format}'")
    target = cls(step, hasher)
    if hasattr(target, "request_id"):
        target.request_id = request_id
    return target


__all__ = ["TARGETS", "ApplyError", "Staged", "Target", "target_for"]
