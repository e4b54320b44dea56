"""Column-level lineage of derived datasets, from the SQL that built them (sqlglot) and from
declared lineage files (for jobs no SQL describes).

An edge links one upstream dataset to one downstream dataset. Its column map says, for each
downstream column, which upstream columns flow into it and how: `copied` (the value as is),
`transformed` (a function of it), `aggregated` (a sum, a count...). An upstream dataset that
only filters or joins has an edge of kind `filter` with an empty map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage as column_lineage

from scanner.catalog import Catalog
from scanner.errors import ConfigError, ScannerError
from scanner.yamlfile import load_validated

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


def _table_name(table: exp.Table) -> str:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    return ".".join(p for p in parts if p not in ("main", "public") or p == parts[-1])


def _kind(expression: exp.Expression) -> str:
    inner = expression.this if isinstance(expression, exp.Alias) else expression
    if isinstance(inner, exp.Column):
        return "copied"
    if inner.find(exp.AggFunc) is not None:
        return "aggregated"
    return "transformed"


def edges_from_sql(text: str, dialect: str | None, schemas: dict[str, dict[str, str]],
                   default_target: str | None = None, origin: str = "sql",
                   origin_ref: str | None = None) -> list[LineageEdge]:
    """Edges from every CREATE ... AS SELECT, CREATE VIEW, INSERT ... SELECT, or bare SELECT
    (a dbt-style model named `default_target`) in `text`."""
    try:
        statements = [s for s in sqlglot.parse(text, dialect=dialect) if s is not None]
    except SqlglotError as exc:
        raise ConfigError(f"{origin_ref or 'SQL'}: cannot parse: {str(exc).splitlines()[0]}") from exc
    edges: list[LineageEdge] = []
    for statement in statements:
        target, select = _target_and_select(statement, default_target)
        if target is None or select is None:
            continue
        by_upstream: dict[str, LineageEdge] = {}
        for table in select.find_all(exp.Table):
            name = _table_name(table)
            by_upstream.setdefault(name, LineageEdge(name, target, origin=origin,
                                                     origin_ref=origin_ref))
        for expression in select.selects:
            out = expression.alias_or_name
            if not out or out == "*":
                continue
            try:
                node = column_lineage(out, select, schema=schemas or None, dialect=dialect)
            except (SqlglotError, KeyError, ValueError):
                continue
            kind = _kind(expression)
            leaves = [n for n in node.walk() if not n.downstream]
            sources = [(leaf.expression, leaf.name.split(".")[-1]) for leaf in leaves
                       if isinstance(leaf.expression, exp.Table)]
            if not sources:  # count(*): aggregated from every table in FROM
                for edge in by_upstream.values():
                    edge.columns[out] = {"from": [], "kind": "aggregated"}
                continue
            for table, column in sources:
                edge = by_upstream[_table_name(table)]
                entry = edge.columns.setdefault(out, {"from": [], "kind": kind})
                entry["from"] = sorted({*entry["from"], column})
        edges.extend(by_upstream.values())
    return edges


def _target_and_select(statement: exp.Expression,
                       default: str | None) -> tuple[str | None, exp.Select | None]:
    if isinstance(statement, exp.Create) and isinstance(statement.expression, exp.Query):
        table = statement.this if isinstance(statement.this, exp.Table) else statement.this.find(exp.Table)
        return _table_name(table), _select(statement.expression)
    if isinstance(statement, exp.Insert) and isinstance(statement.expression, exp.Query):
        table = statement.this if isinstance(statement.this, exp.Table) else statement.this.find(exp.Table)
        return _table_name(table), _select(statement.expression)
    if isinstance(statement, exp.Query):
        return default, _select(statement)
    return None, None


def _select(query: exp.Expression) -> exp.Select | None:
    return query if isinstance(query, exp.Select) else query.find(exp.Select)


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


def read_lineage_file(catalog: Catalog, path: Path) -> list[LineageEdge]:
    """The edges a SQL file or a declared lineage file describes."""
    if path.suffix == ".sql":
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from exc
        return edges_from_sql(text, "duckdb", catalog.schemas(), default_target=path.stem,
                              origin="sql", origin_ref=str(path.resolve()))
    return edges_from_declared(path)


def register_lineage_file(catalog: Catalog, path: Path) -> int:
    """Parse and store the edges of one lineage file (replacing what it said before)."""
    edges = read_lineage_file(catalog, path)
    for edge in edges:
        edge.origin_ref = str(path.resolve())
    return catalog.replace_lineage(str(path.resolve()), edges)


def register_found_lineage(catalog: Catalog, folder: str) -> list[str]:
    """Register every lineage file below a scanned folder; returns one-line errors."""
    errors = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and is_lineage_file(path) and not any(
                p.startswith((".", "_")) for p in path.relative_to(folder).parts):
            try:
                register_lineage_file(catalog, path)
            except ScannerError as exc:
                errors.append(str(exc))
    return errors


def register_view_lineage(catalog: Catalog, run_id: str) -> list[str]:
    """Edges from the definitions of the views a scan run read; returns one-line errors."""
    errors = []
    for dataset_id, name, location, sql, dialect in catalog.view_definitions(run_id):
        try:
            edges = edges_from_sql(sql, dialect, catalog.schemas(), default_target=name,
                                   origin="view", origin_ref=dataset_id)
            for edge in edges:
                edge.downstream = name
            catalog.replace_lineage(dataset_id, edges, prefer_location=location)
        except ScannerError as exc:
            errors.append(f"view {name} ({location}): {exc}")
    return errors
