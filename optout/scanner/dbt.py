"""dbt projects as a lineage source: the manifest (`target/manifest.json`, schema v12, dbt Core
1.8+) says which relation every model, seed and snapshot builds, what it depends on, how it is
materialized and the SQL it compiled to.

- A model's edges come from its compiled SQL (column-level, through sqlglot, CTEs and
  ephemeral models inlined by dbt), and every dependency the SQL does not show is kept as a
  table-level edge. Ephemeral models build nothing: their dependencies become their readers'.
- A seed's CSV is the source of its table: the two are linked column by column (copied), so
  erasing the person from the table erases them from the CSV too (or the next `dbt seed`
  brings them back).
- Relations (`"db"."main"."orders"`) resolve to the scanned datasets like any SQL name.
Everything that cannot be followed is named in the returned problems, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path

from sqlglot import exp
from sqlglot.errors import SqlglotError

from optout.connectors.dbt import (
    BUILT,
    Manifest,
    Node,
    manifest_of,
    read_manifest,
)
from optout.model.errors import ConfigError
from optout.scanner.catalog import Catalog, DatasetRecord
from optout.scanner.lineage import LineageEdge, edges_from_sql
from optout.scanner.relations import resolve_table


def relation_record(node: Node, records: list[DatasetRecord]) -> tuple[DatasetRecord | None,
                                                                        str | None]:
    """The scanned dataset a node builds (its `relation_name`), or None and why."""
    if not node.relation_name:
        return None, f"{node.unique_id} builds no relation ({node.materialized or 'ephemeral'})"
    try:
        table = exp.to_table(node.relation_name, dialect="duckdb")
    except (SqlglotError, ValueError) as exc:
        return None, f"{node.unique_id}: relation {node.relation_name} ({exc})"
    table = exp.Table(this=exp.to_identifier(table.name), db=exp.to_identifier(table.db)
                      if table.db else None,
                      catalog=exp.to_identifier(table.catalog) if table.catalog else None)
    record, problem = resolve_table(records, table, None)
    if record is None:
        return None, (f"{node.unique_id}: {problem.removeprefix('it reads ')} (scan the "
                      "database dbt builds)")
    return record, None


def _upstream(manifest: Manifest, node: Node) -> list[Node]:
    """The nodes a node reads, ephemeral models replaced by what they read."""
    out: list[Node] = []
    seen: set[str] = set()
    todo = list(node.depends_on.nodes)
    while todo:
        uid = todo.pop(0)
        if uid in seen:
            continue
        seen.add(uid)
        up = manifest.node(uid)
        if up is None:
            continue
        if up.materialized == "ephemeral":
            todo += up.depends_on.nodes
        else:
            out.append(up)
    return out


def compiled_sql(manifest_path: Path, node: Node) -> str | None:
    """A model's compiled SQL: in the manifest, or (after a `dbt test` or `dbt seed`, whose
    manifests carry none) the file the last compile wrote under `target/compiled/`."""
    if node.compiled_code:
        return node.compiled_code
    if not (node.package_name and node.original_file_path):
        return None
    path = manifest_path.parent / "compiled" / node.package_name / node.original_file_path
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


class DbtLineage:
    """What a manifest says: edges, the models each dataset is built by, and problems."""

    def __init__(self) -> None:
        self.edges: list[LineageEdge] = []
        self.problems: list[str] = []


def dbt_edges(manifest_path: Path, manifest: Manifest, records: list[DatasetRecord],
              ) -> DbtLineage:
    """The edges of a manifest over the scanned datasets."""
    out = DbtLineage()
    root = manifest_path.resolve().parent.parent
    by_location = {r.location: r for r in records if r.kind == "file"}
    for uid, node in sorted(manifest.nodes.items()):
        if node.resource_type not in BUILT or node.materialized == "ephemeral":
            continue
        record, problem = relation_record(node, records)
        if record is None:
            out.problems.append(problem or uid)
            continue
        ref = f"{manifest_path.resolve()}#{uid}"
        if node.resource_type == "seed":
            csv = by_location.get(str((root / (node.original_file_path or "")).resolve()))
            if csv is None:
                out.problems.append(f"{uid}: its CSV {node.original_file_path} is not in the "
                                    "catalog (scan the project folder)")
                continue
            names = {c.name for c in csv.columns}
            out.edges.append(LineageEdge(
                f"{csv.location}#{csv.name}", f"{record.location}#{record.name}",
                {c.name: {"from": [c.name], "kind": "copied"} for c in record.columns
                 if c.name in names}, origin="dbt", origin_ref=ref))
            continue
        found = []
        code = compiled_sql(manifest_path, node)
        if code:
            sql = edges_from_sql(code, manifest.metadata.adapter_type or "duckdb",
                                 records, default_target=f"{record.location}#{record.name}",
                                 origin="dbt", origin_ref=ref, prefer_location=record.location)
            found = sql.edges
            out.problems += [f"{uid}: {p.split(': ', 1)[-1]}" for p in sql.problems]
        else:
            out.problems.append(f"{uid}: no compiled SQL in the manifest or under target/"
                                "compiled (run `dbt compile`): table-level edges only")
        shown = {e.upstream for e in found}
        for up in _upstream(manifest, node):
            up_record, problem = relation_record(up, records)
            if up_record is None:
                out.problems.append(f"{uid} reads {problem}")
                continue
            name = f"{up_record.location}#{up_record.name}"
            if name not in shown:  # a dependency its SQL does not show (a macro, a test)
                found.append(LineageEdge(name, f"{record.location}#{record.name}",
                                         origin="dbt", origin_ref=ref))
        out.edges += found
    return out


#: column tags that say a column holds personal data
PII_TAGS = frozenset({"pii", "contains_pii", "personal_data", "gdpr"})


def declared_pii(node: Node) -> dict[str, str | None]:
    """Columns a model's owners declare personal (`meta: {pii: EMAIL_ADDRESS}` or
    `meta: {pii: true}`, `contains_pii: true`, or a `pii`/`contains_pii` tag): column →
    entity (None when the declaration names none)."""
    out: dict[str, str | None] = {}
    for name, column in node.columns.items():
        meta = {str(k).lower(): v for k, v in column.meta.items()}
        value = meta.get("pii", meta.get("contains_pii"))
        tagged = PII_TAGS & {t.lower() for t in column.tags}
        if value in (None, False, "false", "no") and not tagged:
            continue
        entity = value.upper() if isinstance(value, str) and value.strip() and value.upper() \
            not in ("TRUE", "YES") else None
        out[column.name or name] = entity
    return out


def declared_keys(manifest: Manifest, records: list[DatasetRecord]
                  ) -> list[tuple[str, str, str | None, str | None, str]]:
    """The keys a project's tests declare, over the scanned datasets: a `relationships` test
    is a foreign key (column → `to`'s `field`), `unique` and `not_null` on one column a key
    of its table's rows. (dataset id, column, referenced dataset id, column, evidence)."""
    out = []
    tested: dict[tuple[str, str], set[str]] = {}
    for uid, node in sorted(manifest.nodes.items()):
        meta = node.test_metadata
        if node.resource_type != "test" or meta is None or meta.namespace or not \
                node.attached_node:
            continue
        attached = manifest.node(node.attached_node)
        record = relation_record(attached, records)[0] if attached is not None else None
        name = meta.kwargs.get("column_name") or node.column_name
        column = record.column_named(str(name).strip('"')) if record is not None and name else None
        if record is None or column is None:
            continue
        if meta.name in ("unique", "not_null"):
            tested.setdefault((record.id, column), set()).add(meta.name)
        elif meta.name == "relationships":
            targets = [manifest.node(n) for n in node.depends_on.nodes if n != node.attached_node]
            target = targets[0] if len(targets) == 1 and targets[0] is not None else None
            to = relation_record(target, records)[0] if target is not None else None
            field = to.column_named(str(meta.kwargs["field"]).strip('"')) \
                if to is not None and meta.kwargs.get("field") else None
            if to is not None and field is not None:
                out.append((record.id, column, to.id, field,
                            f"dbt test {uid.rsplit('.', 1)[0]}"))
    out += [(ds, col, None, None, "dbt tests unique and not_null")
            for (ds, col), names in sorted(tested.items()) if names == {"unique", "not_null"}]
    return out


def register_dbt(catalog: Catalog, path: Path) -> tuple[int, list[str]]:
    """Register the lineage of a dbt project folder or manifest, and the columns its models
    declare personal: (edges stored, problems)."""
    manifest_path = manifest_of(path)
    manifest = read_manifest(manifest_path)
    records = catalog.datasets()
    found = dbt_edges(manifest_path, manifest, records)
    unresolved: list[str] = []
    n = catalog.replace_lineage(str(manifest_path.resolve()), found.edges, unresolved=unresolved)
    catalog.replace_declared_keys(str(manifest_path.resolve()), declared_keys(manifest, records))
    for node in manifest.nodes.values():
        declared = declared_pii(node) if node.resource_type in BUILT else {}
        record = relation_record(node, records)[0] if declared else None
        for column, entity in declared.items():
            if record is not None and column in {c.name for c in record.columns}:
                catalog.declare_pii(record.id, column, entity,
                                    f"declared: dbt meta of {node.unique_id}")
    return n, found.problems + unresolved


def model_of(origin_ref: str) -> tuple[Node, str | None] | None:
    """The node an edge of origin `dbt` names (`MANIFEST#unique_id`) and its compiled SQL,
    read now."""
    path, _, uid = origin_ref.rpartition("#")
    try:
        manifest = read_manifest(Path(path))
    except ConfigError:
        return None
    node = manifest.node(uid)
    return (node, compiled_sql(Path(path), node)) if node is not None else None

