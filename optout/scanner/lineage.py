"""Column-level lineage of derived datasets, from the SQL that built them (sqlglot) and from
declared lineage files (for jobs no SQL describes).

An edge links one upstream dataset to one downstream dataset. Its column map says, for each
downstream column, which upstream columns flow into it and how: `copied` (the value as is),
`transformed` (a function of it), `aggregated` (a sum, a count...). An upstream dataset that
only filters or joins has an edge of kind `filter` with an empty map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage as column_lineage
from sqlglot.optimizer.qualify import qualify

from optout.model.errors import ConfigError, ScannerError
from optout.model.yamlfile import load_validated
from optout.scanner.catalog import Catalog, DatasetRecord
from optout.scanner.relations import bind_known, resolve_table, shown

#: sqlglot logs what it cannot parse with the statement's text; optout names the file itself
logging.getLogger("sqlglot").setLevel(logging.ERROR)

KINDS = ("copied", "transformed", "aggregated", "filter")
RANK = {k: i for i, k in enumerate(KINDS)}  # lower rank: more of the value survives


@dataclass
class LineageEdge:
    """Upstream → downstream, with the column map and the kind of derivation."""

    upstream: str
    downstream: str
    columns: dict[str, dict[str, object]] = field(default_factory=dict)  # col → {from, kind}
    origin: str = "sql"  # sql | view | declared
    origin_ref: str | None = None

    @property
    def kind(self) -> str:
        """The edge's kind: `aggregated` when any column aggregates (rows are collapsed), else
        the kind that keeps most of the value among its columns."""
        kinds = [str(c["kind"]) for c in self.columns.values()] or ["filter"]
        if "aggregated" in kinds:
            return "aggregated"
        return min(kinds, key=RANK.__getitem__)


def _kind(node) -> str:
    """How much of the value survives along one column's lineage: the least along its path
    (an aggregate in any CTE on the way makes the column aggregated)."""
    kind = "copied"
    for n in node.walk():
        expression = n.expression
        if isinstance(expression, exp.Table):
            continue
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        if inner.find(exp.AggFunc) is not None:
            return "aggregated"
        if not isinstance(inner, exp.Column | exp.Star):
            kind = "transformed"
    return kind


@dataclass
class SqlLineage:
    """What one SQL text says: its edges, and every statement or table that could not be
    followed (named, never dropped in silence)."""

    edges: list[LineageEdge] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def edges_from_sql(text: str, dialect: str | None, records: list[DatasetRecord],
                   default_target: str | None = None, origin: str = "sql",
                   origin_ref: str | None = None,
                   prefer_location: str | None = None) -> SqlLineage:
    """Edges from every CREATE ... AS SELECT, CREATE VIEW, INSERT ... SELECT, or bare SELECT
    (a model named `default_target`, a catalog dataset name or `LOCATION#NAME`) in `text`.
    Table names resolve against the catalog (`t`, `schema.t`, `db.schema.t`, quoted or not;
    CTEs are not tables); `select *` expands through the catalog's schemas."""
    where = origin_ref or "SQL"
    out = SqlLineage()
    if "{{" in text or "{%" in text:
        out.problems.append(f"{where}: Jinja (a dbt model?): register the dbt project with "
                            "`optout lineage add-dbt PROJECT` instead")
        return out
    try:
        statements = [s for s in sqlglot.parse(text, dialect=dialect) if s is not None]
    except SqlglotError as exc:
        out.problems.append(f"{where}: cannot parse: {str(exc).splitlines()[0]}")
        return out
    for statement in statements:
        if isinstance(statement, exp.Command):
            out.problems.append(f"{where}: cannot parse {statement.sql()[:60]!r}")
            continue
        target, query = _target_and_query(statement, default_target, records, prefer_location)
        if query is None:
            continue
        if target is None:
            out.problems.append(f"{where}: builds a table that is not in the catalog "
                                f"({_target_name(statement) or default_target})")
            continue
        for problem in _add_edges(out.edges, query.copy(), target, dialect, records, origin,
                                  origin_ref, prefer_location):
            out.problems.append(f"{where}: {problem}")
    return out


def _add_edges(edges: list[LineageEdge], query: exp.Query, target: str, dialect: str | None,
               records: list[DatasetRecord], origin: str, origin_ref: str | None,
               prefer_location: str | None) -> list[str]:
    """The edges of one query into `target` from every table it reads that the catalog
    knows; the tables (or columns) it could not follow."""
    tables, problems = bind_known(query, records, prefer_location)
    schema = {name: {c.name: c.type or "VARCHAR" for c in r.columns}
              for name, r in tables.items()}
    by_upstream = {name: LineageEdge(_ref(r), target, origin=origin, origin_ref=origin_ref)
                   for name, r in tables.items()}
    try:
        qualified = qualify(query, schema=schema, dialect=dialect, validate_qualify_columns=False)
    except (SqlglotError, KeyError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        edges.extend(by_upstream.values())
        return [*problems, f"column lineage not followed ({why}); table-level edges kept"]
    selects = qualified.selects if isinstance(qualified, exp.Select) else (
        _first_select(qualified).selects if _first_select(qualified) else [])
    for expression in selects:
        out = expression.alias_or_name
        if not out or out == "*":
            continue
        try:
            node = column_lineage(out, qualified, schema=schema, dialect=dialect)
        except (SqlglotError, KeyError, ValueError):
            continue
        kind = _kind(node)
        sources = [(leaf.expression.name, leaf.name.split(".")[-1].strip('"'))
                   for leaf in node.walk()
                   if not leaf.downstream and isinstance(leaf.expression, exp.Table)]
        if not sources:  # count(*): aggregated from every table it reads
            for edge in by_upstream.values():
                edge.columns[out] = {"from": [], "kind": "aggregated"}
            continue
        for table, column in sources:
            edge = by_upstream.get(table)
            if edge is None:
                continue
            entry = edge.columns.setdefault(out, {"from": [], "kind": kind})
            entry["from"] = sorted({*entry["from"], column})
    edges.extend(by_upstream.values())
    return problems


def _ref(record: DatasetRecord) -> str:
    """A dataset named without ambiguity (the catalog resolves `LOCATION#NAME`)."""
    return f"{record.location}#{record.name}"


def _first_select(query: exp.Expression) -> exp.Select | None:
    return query if isinstance(query, exp.Select) else query.find(exp.Select)


def _target_name(statement: exp.Expression) -> str | None:
    if isinstance(statement, exp.Create | exp.Insert):
        table = statement.this if isinstance(statement.this, exp.Table) else \
            statement.this.find(exp.Table)
        return shown(table) if table is not None else None
    return None


def _target_and_query(statement: exp.Expression, default: str | None,
                      records: list[DatasetRecord], prefer_location: str | None,
                      ) -> tuple[str | None, exp.Query | None]:
    """The dataset a statement builds (`LOCATION#NAME`) and the query that builds it."""
    if isinstance(statement, exp.Create | exp.Insert) and isinstance(statement.expression,
                                                                     exp.Query):
        table = statement.this if isinstance(statement.this, exp.Table) else \
            statement.this.find(exp.Table)
        record, _ = resolve_table(records, table, prefer_location)
        return (_ref(record) if record else None), statement.expression
    if isinstance(statement, exp.Query) and default:
        if "#" in default:
            return default, statement
        found = [r for r in records if r.name == default]
        local = [r for r in found if r.location == prefer_location]
        pick = local if len(local) == 1 else found
        return (_ref(pick[0]) if len(pick) == 1 else None), statement
    return None, None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeclaredColumn(_Strict):
    """Where one downstream column comes from."""

    from_: list[str] = Field(default_factory=list, alias="from", max_length=1000)
    kind: Literal["copied", "transformed", "aggregated", "filter"] = "copied"


class DeclaredEdge(_Strict):
    """One declared edge: upstream → downstream, with its column map."""

    downstream: str = Field(min_length=1, max_length=512)
    upstream: str = Field(min_length=1, max_length=512)
    columns: dict[str, DeclaredColumn | None] = Field(default_factory=dict, max_length=10_000)


class DeclaredLineage(_Strict):
    """A declared lineage file."""

    lineage: list[DeclaredEdge] = Field(max_length=10_000)


def edges_from_declared(path: Path) -> list[LineageEdge]:
    """Edges from a declared lineage file (YAML), validated like policies (an error names the
    file, the line and the key; anchors and aliases, and files over 1 MiB, are refused):

        lineage:
          - downstream: customer_segments
            upstream: customers
            columns: {customer_id: {from: [id], kind: copied}, segment: {from: [], kind: transformed}}
    """
    declared, _ = load_validated(path, DeclaredLineage, ConfigError, "lineage file")
    edges = []
    for entry in declared.lineage:
        edge = LineageEdge(entry.upstream, entry.downstream, origin="declared",
                           origin_ref=str(path))
        for out, spec in entry.columns.items():
            spec = spec or DeclaredColumn()
            edge.columns[out] = {"from": list(spec.from_), "kind": spec.kind}
        edges.append(edge)
    return edges


LINEAGE_FILES = ("lineage.yaml", "lineage.yml")


def is_lineage_file(path: Path) -> bool:
    """SQL that builds datasets, or a declared lineage file (`lineage.yaml`, `*.lineage.yaml`)."""
    return path.suffix == ".sql" or path.name in LINEAGE_FILES or path.name.endswith(
        tuple("." + n for n in LINEAGE_FILES))


def read_lineage_file(catalog: Catalog, path: Path,
                      records: list[DatasetRecord] | None = None) -> SqlLineage:
    """The edges a SQL file or a declared lineage file describes, and what it could not
    follow (`records`: the catalog's datasets, when the caller has read them already)."""
    if path.suffix == ".sql":
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from exc
        records = catalog.datasets() if records is None else records
        return edges_from_sql(text, "duckdb", records, default_target=path.stem,
                              origin="sql", origin_ref=str(path.resolve()))
    return SqlLineage(edges_from_declared(path))


def register_lineage_file(catalog: Catalog, path: Path,
                          records: list[DatasetRecord] | None = None) -> tuple[int, list[str]]:
    """Parse and store the edges of one lineage file (replacing what it said before): how many
    were stored, and one line per statement, table or edge that was not."""
    found = read_lineage_file(catalog, path, records)
    for edge in found.edges:
        edge.origin_ref = str(path.resolve())
    unresolved: list[str] = []
    n = catalog.replace_lineage(str(path.resolve()), found.edges, unresolved=unresolved)
    return n, found.problems + [f"{path}: {u}" for u in unresolved]



def register_view_lineage(catalog: Catalog, run_id: str) -> list[str]:
    """Edges from the definitions of the views a scan run read; returns one line per view,
    table or edge that could not be followed."""
    errors = []
    records = catalog.datasets()
    for dataset_id, name, location, sql, dialect in catalog.view_definitions(run_id):
        try:
            found = edges_from_sql(sql, dialect, records, default_target=f"{location}#{name}",
                                   origin="view", origin_ref=dataset_id,
                                   prefer_location=location)
            unresolved: list[str] = []
            catalog.replace_lineage(dataset_id, found.edges, prefer_location=location,
                                    unresolved=unresolved)
            errors += [f"view {name} ({location}): {p.split(': ', 1)[-1]}"
                       for p in found.problems + unresolved]
        except ScannerError as exc:
            errors.append(f"view {name} ({location}): {exc}")
    return errors
