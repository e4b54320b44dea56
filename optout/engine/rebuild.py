"""The SQL a derived dataset is rebuilt from, taken into the plan when the plan is made.

The plan carries the SELECT that built the dataset with every table it reads bound to a
placeholder (`optout_upstream_0`, ...) and the catalog dataset behind each placeholder. Apply
runs that text (covered by the plan's content hash, approved with it) in the rebuild sandbox
(`optout/model/sandbox.py`) over exactly those datasets: never a file read again at apply time, and
never a table name resolved again against whatever is there then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from optout.scanner.catalog import DatasetRecord
from optout.scanner.relations import bind_tables, matches


@dataclass(frozen=True)
class Rebuild:
    """How to rebuild one derived dataset, or why it cannot be."""

    sql: str | None  # the bound SELECT
    tables: tuple[tuple[str, str], ...] = ()  # placeholder → catalog dataset id
    problem: str | None = None

    def params(self, sql_file: str) -> tuple[tuple[str, object], ...]:
        """The plan step's params (no SQL when it cannot be rebuilt: the plan says why)."""
        if self.sql is None:
            return (("sql_file", sql_file), ("sql_problem", self.problem or "no SELECT"))
        return (("sql_file", sql_file), ("sql", self.sql),
                ("sql_sha256", hashlib.sha256(self.sql.encode()).hexdigest()),
                ("tables", self.tables))


def _target(statement: exp.Expression) -> exp.Table | None:
    if isinstance(statement, exp.Create | exp.Insert):
        this = statement.this
        return this if isinstance(this, exp.Table) else this.find(exp.Table)
    return None


def bind(text: str, target: DatasetRecord, records: list[DatasetRecord]) -> Rebuild:
    """The SELECT in `text` that builds `target` (a CREATE ... AS SELECT or INSERT ... SELECT
    of it, or a bare SELECT file named after it), its tables bound to catalog datasets."""
    try:
        statements = [s for s in sqlglot.parse(text, dialect="duckdb") if s is not None]
    except SqlglotError as exc:
        return Rebuild(None, problem=f"the SQL does not parse: {str(exc).splitlines()[0]}")
    unparsed = [s for s in statements if isinstance(s, exp.Command)]
    if unparsed:
        return Rebuild(None, problem="the SQL does not parse (sqlglot read "
                                     f"{unparsed[0].sql()[:60]!r} as an opaque command)")
    select = None
    for statement in statements:
        table = _target(statement)
        if table is not None and matches(target, table) and isinstance(
                statement.expression, exp.Query):
            select = statement.expression.copy()
            break
        if table is None and isinstance(statement, exp.Query) and select is None:
            select = statement.copy()
    if select is None:
        return Rebuild(None, problem=f"the SQL holds no SELECT that builds {target.name}")
    tables, problem = bind_tables(select, records, target.location)
    if problem:
        return Rebuild(None, problem=problem)
    if any(r.id == target.id for r in tables.values()):
        return Rebuild(None, problem=f"it reads {target.name} itself (incremental): "
                                    "it cannot be rebuilt from its sources alone")
    return Rebuild(select.sql(dialect="duckdb"),
                   tuple(sorted((name, r.id) for name, r in tables.items())))


def rebuild_of(sql_file: str, target: DatasetRecord, records: list[DatasetRecord]) -> Rebuild:
    """How `target` is rebuilt from the SQL file that built it (read now, once)."""
    try:
        text = Path(sql_file).read_text()
    except OSError as exc:
        return Rebuild(None, problem=f"{sql_file} is not readable ({exc.strerror})")
    return bind(text, target, records)


def dbt_rebuild(origin_ref: str, target: DatasetRecord, records: list[DatasetRecord]) -> Rebuild:
    """How `target` is rebuilt from the dbt model that builds it (`MANIFEST#unique_id`): its
    compiled SQL, read from the manifest now, once. An incremental model reads itself: it is
    erased as a table, and a seed is its CSV's copy (both erased row by row)."""
    from optout.scanner.dbt import model_of

    found = model_of(origin_ref)
    if found is None:
        return Rebuild(None, problem="its dbt manifest or model is gone")
    node, code = found
    if node.materialized == "incremental":
        return Rebuild(None, problem="an incremental dbt model: erased as a table (a rebuild "
                                     "from its sources may not give back its history)")
    if node.resource_type == "seed":
        return Rebuild(None, problem="a dbt seed: erased as a table, like its CSV")
    if not code:
        return Rebuild(None, problem="no compiled SQL in the dbt manifest or under target/"
                                     "compiled (run `dbt compile`)")
    return bind(code, target, records)


def dbt_command_params(origin_ref: str, dbt) -> tuple[tuple[str, object], ...]:
    """A plan step's params for a model dbt rebuilds itself (`dbt: {rebuild: command}`): the
    project, the model, and the command (approved with the plan); () when the model is not a
    plain table (incremental models and seeds are erased as tables)."""
    from optout.scanner.dbt import model_of

    found = model_of(origin_ref)
    if found is None or found[0].resource_type != "model" or \
            found[0].materialized not in ("table", "view"):
        return ()
    from optout.engine.dbt_project import ProjectError, project_files

    manifest = Path(origin_ref.rpartition("#")[0]).resolve()
    project = manifest.parent.parent
    try:
        files = tuple(sorted(project_files(project, list(dbt.args)).items()))
    except (OSError, ProjectError):
        files = ()  # the step is unexecutable: its target says why
    return (("rebuild", "dbt"), ("dbt_project", str(project)),
            ("dbt_model", found[0].name), ("dbt_command", tuple(dbt.command)),
            ("dbt_args", tuple(dbt.args)), ("dbt_files", files),
            ("dbt_allow_hooks", dbt.allow_hooks), ("dbt_env", tuple(dbt.env)))
