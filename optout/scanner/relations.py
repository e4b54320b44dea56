"""Table references of SQL bound to catalog datasets: `t`, `schema.t`, `db.schema.t`, quoted or
not, CTEs left alone. Lineage (optout/scanner/lineage.py) and rebuilds (optout/engine/rebuild.py) resolve
names the same way, so an edge and the rebuild that follows it read the same datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from sqlglot import exp

if TYPE_CHECKING:
    from optout.scanner.catalog import DatasetRecord

PLACEHOLDER = "optout_upstream_{}"
DEFAULT_SCHEMAS = ("main", "public")


def database_of(location: str) -> str:
    """The name SQL gives a dataset's database: a DuckDB or SQLite file's stem, a PostgreSQL
    URI's database name."""
    if "://" in location:
        return urlparse(location).path.lstrip("/")
    return Path(location).stem


def matches(record: DatasetRecord, table: exp.Table) -> bool:
    """True when a table reference can name the dataset."""
    schema = table.db
    name = table.name if not schema or schema in DEFAULT_SCHEMAS else f"{schema}.{table.name}"
    if record.name.lower() != name.lower():
        return False
    return not table.catalog or database_of(record.location).lower() == table.catalog.lower()


def shown(table: exp.Table) -> str:
    """A table reference as written (without quotes)."""
    return ".".join(p for p in (table.catalog, table.db, table.name) if p)


def resolve_table(records: list[DatasetRecord], table: exp.Table,
                  prefer_location: str | None) -> tuple[DatasetRecord | None, str | None]:
    """The catalog dataset a table reference names, preferring the reader's own database;
    else None and why (not in the catalog, or every candidate when it is ambiguous)."""
    found = [r for r in records if matches(r, table)]
    exact = [r for r in found if r.name == table.name or r.name.endswith("." + table.name)]
    found = exact if len(exact) == 1 else found
    local = [r for r in found if r.location == prefer_location]
    if len(local) == 1:
        return local[0], None
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, f"it reads {shown(table)}, which is not in the catalog"
    return None, (f"it reads {shown(table)}, which names {len(found)} datasets ("
                  f"{', '.join(sorted(f'{r.location}#{r.name}' for r in found))})")


def cte_names(query: exp.Expression) -> set[str]:
    """The names of the query's CTEs (at any depth), lower-cased."""
    return {c.alias_or_name.lower() for c in query.find_all(exp.CTE)}


def is_cte(table: exp.Table, ctes: set[str]) -> bool:
    """True when a table reference is one of the query's CTEs, not a table."""
    return not table.db and not table.catalog and table.name.lower() in ctes


def bind_tables(query: exp.Expression, records: list[DatasetRecord], prefer_location: str | None,
                ) -> tuple[dict[str, DatasetRecord], str | None]:
    """Replace every table the query reads (in place) by a placeholder
    (`optout_upstream_0`, ...) bound to its dataset; (placeholder → dataset, None), or
    ({}, why) when a table cannot be bound or is not a plain table."""
    out, problems = bind_known(query, records, prefer_location, strict=True)
    return (out, None) if not problems else ({}, problems[0])


def bind_known(query: exp.Expression, records: list[DatasetRecord], prefer_location: str | None,
               strict: bool = False) -> tuple[dict[str, DatasetRecord], list[str]]:
    """Like `bind_tables`, but tables that cannot be bound are left as they are and named
    (lineage keeps the edges it can follow); `strict` stops at the first one."""
    ctes = cte_names(query)
    bound: dict[str, str] = {}
    out: dict[str, DatasetRecord] = {}
    problems: list[str] = []
    for table in list(query.find_all(exp.Table)):
        if is_cte(table, ctes):
            continue
        if not isinstance(table.this, exp.Identifier):
            problems.append(f"it calls {table.this.sql(dialect='duckdb')[:60]}: a rebuild reads "
                            "catalog datasets only")
            if strict:
                return {}, problems
            continue
        record, problem = resolve_table(records, table, prefer_location)
        if record is None:
            problems.append(problem or shown(table))
            if strict:
                return {}, problems
            continue
        name = bound.setdefault(record.id, PLACEHOLDER.format(len(bound)))
        out[name] = record
        alias = table.alias or (table.name if table.name != name else "")
        # renamed in place: a parenthesized join hangs its joins on the table node itself
        table.set("this", exp.to_identifier(name, quoted=True))
        table.set("db", None)
        table.set("catalog", None)
        if alias and not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return out, problems
