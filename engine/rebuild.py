"""The SQL a derived dataset is rebuilt from, taken into the plan when the plan is made.

The plan carries the SELECT that built the dataset with every table it reads bound to a
placeholder (`optout_upstream_0`, ...) and the catalog dataset behind each placeholder. Apply
runs that text (covered by the plan's content hash, approved with it) in the rebuild sandbox
(`engine/sandbox.py`) over exactly those datasets: never a file read again at apply time, and
never a table name resolved again against whatever is there then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from scanner.catalog import DatasetRecord

PLACEHOLDER = "optout_upstream_{}"
DEFAULT_SCHEMAS = ("main", "public")


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


def database_of(location: str) -> str:
    """The name SQL gives a dataset's database: a DuckDB or SQLite file's stem, a PostgreSQL
    URI's database name."""
    if "://" in location:
        return urlparse(location).path.lstrip("/")
    return Path(location).stem


def _matches(record: DatasetRecord, table: exp.Table) -> bool:
    schema = table.db
    name = table.name if not schema or schema in DEFAULT_SCHEMAS else f"{schema}.{table.name}"
    if record.name.lower() != name.lower():
        return False
    return not table.catalog or database_of(record.location).lower() == table.catalog.lower()


def resolve_table(records: list[DatasetRecord], table: exp.Table,
                  prefer_location: str) -> tuple[DatasetRecord | None, str | None]:
    """The catalog dataset a table reference of SQL names (`t`, `schema.t`, `db.schema.t`,
    quoted or not), preferring the derived dataset's own database; else None and why."""
    found = [r for r in records if _matches(r, table)]
    exact = [r for r in found if r.name == table.name or r.name.endswith("." + table.name)]
    found = exact if len(exact) == 1 else found
    local = [r for r in found if r.location == prefer_location]
    if len(local) == 1:
        return local[0], None
    if len(found) == 1:
        return found[0], None
    shown = ".".join(p for p in (table.catalog, table.db, table.name) if p)
    if not found:
        return None, f"it reads {shown}, which is not in the catalog"
    return None, (f"it reads {shown}, which names {len(found)} datasets ("
                  f"{', '.join(sorted(r.location for r in found))})")


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
        if table is not None and _matches(target, table) and isinstance(
                statement.expression, exp.Query):
            select = statement.expression.copy()
            break
        if table is None and isinstance(statement, exp.Query) and select is None:
            select = statement.copy()
    if select is None:
        return Rebuild(None, problem=f"the SQL holds no SELECT that builds {target.name}")
    ctes = {c.alias_or_name.lower() for c in select.find_all(exp.CTE)}
    bound: dict[str, str] = {}
    for table in list(select.find_all(exp.Table)):
        if not table.db and not table.catalog and table.name.lower() in ctes:
            continue  # a CTE of the query, not a table
        if not isinstance(table.this, exp.Identifier):
            return Rebuild(None, problem=f"it calls {table.this.sql(dialect='duckdb')[:60]}: a "
                                         "rebuild reads catalog datasets only")
        record, problem = resolve_table(records, table, target.location)
        if record is None:
            return Rebuild(None, problem=problem)
        if record.id == target.id:
            return Rebuild(None, problem=f"it reads {target.name} itself (incremental): "
                                         "it cannot be rebuilt from its sources alone")
        name = bound.setdefault(record.id, PLACEHOLDER.format(len(bound)))
        alias = table.alias or (table.name if table.name != name else "")
        table.replace(exp.Table(this=exp.to_identifier(name, quoted=True),
                                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
                                if alias else None))
    return Rebuild(select.sql(dialect="duckdb"),
                   tuple(sorted((name, ident) for ident, name in bound.items())))


def rebuild_of(sql_file: str, target: DatasetRecord, records: list[DatasetRecord]) -> Rebuild:
    """How `target` is rebuilt from the SQL file that built it (read now, once)."""
    try:
        text = Path(sql_file).read_text()
    except OSError as exc:
        return Rebuild(None, problem=f"{sql_file} is not readable ({exc.strerror})")
    return bind(text, target, records)
