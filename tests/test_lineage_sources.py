"""Lineage that does not lose edges: compiled SQL (three-part and quoted names, CTEs that are
not tables, `select *` through CTEs), ambiguous names that list their candidates, files that
cannot be parsed named by the scan and the CLI, OpenLineage events (spec 2-0-2), and a scan
that survives files it does not understand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.lineage import register_lineage_file
from optout.scanner.openlineage import register_openlineage
from optout.scanner.scan import scan

ROOT = Path(__file__).resolve().parent.parent
N = 30
OL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
COLUMN_FACET = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"


def people() -> pa.Table:
    return pa.table({"id": list(range(1, N + 1)),
                     "email": [f"p{i}@example.org" for i in range(1, N + 1)],
                     "name": [f"Person {chr(65 + i % 26)}. Smith" for i in range(N)]})


@pytest.fixture()
def shop(tmp_path: Path, classifier: Classifier):
    """A DuckDB database `jaffle` (customers, orders, built tables), and a CSV named like one
    of its tables (a seed beside the database), scanned."""
    root = tmp_path / "shop"
    root.mkdir()
    with duckdb.connect(str(root / "jaffle.duckdb")) as con:
        con.register("p", people())
        con.execute("CREATE TABLE customers AS SELECT * FROM p")
        con.execute("CREATE TABLE orders AS SELECT range AS order_id, 1 + range % 30 AS "
                    "customer_id, 10.0 * range AS amount FROM range(90)")
        con.execute("CREATE TABLE customer_totals AS SELECT c.id AS customer_id, c.email, "
                    "sum(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id "
                    "= c.id GROUP BY ALL")
        con.execute("CREATE TABLE customer_list AS SELECT * FROM customers")
    pq.write_table(people(), root / "customers.parquet")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(root)], catalog, classifier=classifier)
    return root, catalog


def edges(catalog: Catalog, origin: str) -> dict[tuple[str, str], dict]:
    return {(e["upstream"], e["downstream"]): e for e in catalog.lineage()
            if e["origin"] == origin}


def test_compiled_sql_three_part_names_ctes_and_select_star(shop) -> None:
    root, catalog = shop
    sql = root / "customer_totals.sql"
    sql.write_text('''-- compiled by dbt: three-part quoted names, a CTE called like a table
with orders as (
    select * from "jaffle"."main"."orders"
),
customers as (
    select id as customer_id, email from "jaffle"."main"."customers"
),
final as (
    select customers.customer_id, customers.email, sum(orders.amount) as total
    from customers join orders on orders.customer_id = customers.customer_id
    group by all
)
select * from final
''')
    n, problems = register_lineage_file(catalog, sql)
    assert problems == [] and n == 2
    found = edges(catalog, "sql")
    assert set(found) == {("orders", "customer_totals"), ("customers", "customer_totals")}
    up = found[("customers", "customer_totals")]
    assert up["columns"]["email"] == {"from": ["email"], "kind": "copied"}
    assert up["columns"]["customer_id"] == {"from": ["id"], "kind": "copied"}
    assert found[("orders", "customer_totals")]["columns"]["total"] == {
        "from": ["amount"], "kind": "aggregated"}
    # the database's customers table, not the Parquet file of the same name
    assert found[("customers", "customer_totals")]["upstream_id"] == catalog.resolve(
        f"{root / 'jaffle.duckdb'}#customers")


def test_an_ambiguous_name_lists_its_candidates_and_location_names_one(shop) -> None:
    root, catalog = shop
    sql = root / "build" / "customer_list.sql"
    sql.parent.mkdir()
    sql.write_text("CREATE TABLE customer_list AS SELECT * FROM customers")
    n, problems = register_lineage_file(catalog, sql)
    assert n == 0
    [problem] = problems
    assert "names 2 datasets" in problem and f"{root / 'customers.parquet'}#customers" in problem
    assert f"{root / 'jaffle.duckdb'}#customers" in problem
    declared = root / "build" / "lineage.yaml"
    declared.write_text(f"lineage:\n  - downstream: {root / 'jaffle.duckdb'}#customer_list\n"
                        f"    upstream: {root / 'customers.parquet'}#customers\n"
                        "    columns: {email: {from: [email], kind: copied}}\n")
    n, problems = register_lineage_file(catalog, declared)
    assert (n, problems) == (1, [])
    [edge] = [e for e in catalog.lineage() if e["origin"] == "declared"]
    assert edge["upstream_id"] == catalog.resolve(f"{root / 'customers.parquet'}#customers")


def test_files_that_cannot_be_followed_are_named_by_the_scan_and_the_cli(
        tmp_path: Path, classifier: Classifier) -> None:
    root = tmp_path / "models"
    root.mkdir()
    pq.write_table(people(), root / "customers.parquet")
    (root / "stg_customers.sql").write_text("select id, email from {{ ref('customers') }}\n")
    (root / "broken.sql").write_text("CREATE TABLE x AS SELEC id FROM customers WHERE (\n")
    (root / "ghost.sql").write_text("CREATE TABLE ghost AS SELECT * FROM nowhere\n")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    report = scan([str(root)], catalog, classifier=classifier)
    problems = "\n".join(report.lineage_errors)
    assert f"{root / 'stg_customers.sql'}: Jinja" in problems
    assert f"{root / 'broken.sql'}: cannot parse" in problems
    assert f"{root / 'ghost.sql'}: builds a table that is not in the catalog (ghost)" in problems
    from optout.scanner.access.principals import init_catalog

    token = init_catalog(catalog)
    done = subprocess.run([sys.executable, "-m", "optout.cli.main", "--catalog", catalog.path,
                           "lineage", "add-sql", str(root / "broken.sql")],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"OPTOUT_TOKEN": token, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stdout.strip() == f"{root / 'broken.sql'}: 0 lineage edges"
    assert done.stderr.startswith(f"warning: {root / 'broken.sql'}: cannot parse")


def ol_event(inputs: list[dict], outputs: list[dict], job: str = "nightly") -> dict:
    return {"eventTime": "2026-12-01T02:00:00Z", "eventType": "COMPLETE",
            "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.40.0/integration/airflow",
            "schemaURL": OL, "run": {"runId": "0193f1c4-5a4e-7b1a-9c1e-3f0d2b9a7c11"},
            "job": {"namespace": "airflow", "name": job}, "inputs": inputs, "outputs": outputs}


def test_openlineage_events_map_to_catalog_datasets(shop, tmp_path: Path) -> None:
    root, catalog = shop
    db = f"duckdb://{root / 'jaffle.duckdb'}"
    file_ns = "file"

    def field(name: str, column: str, subtype: str, type_: str = "DIRECT") -> dict:
        return {"namespace": db, "name": f"jaffle.main.{name}", "field": column,
                "transformations": [{"type": type_, "subtype": subtype, "description": "",
                                     "masking": False}]}

    totals = ol_event(
        [{"namespace": db, "name": "jaffle.main.customers"},
         {"namespace": db, "name": "jaffle.main.orders"}],
        [{"namespace": db, "name": "jaffle.main.customer_totals", "facets": {"columnLineage": {
            "_producer": "https://github.com/OpenLineage/OpenLineage", "_schemaURL": COLUMN_FACET,
            "fields": {
                "customer_id": {"inputFields": [field("customers", "id", "IDENTITY"),
                                                field("orders", "customer_id", "JOIN",
                                                      "INDIRECT")]},
                "email": {"inputFields": [field("customers", "email", "IDENTITY")]},
                "total": {"inputFields": [field("orders", "amount", "AGGREGATION")]}}}}}])
    export = ol_event([{"namespace": db, "name": "jaffle.main.customers"}],
                      [{"namespace": file_ns, "name": str(root / "customers.parquet")}],
                      job="export")
    stray = ol_event([{"namespace": db, "name": "jaffle.main.customers"}],
                     [{"namespace": "postgres://warehouse:5432", "name": "dw.public.people"}],
                     job="to-warehouse")
    events = tmp_path / "events"
    events.mkdir()
    (events / "run1.json").write_text(json.dumps(totals, indent=2))
    (events / "runs.jsonl").write_text(json.dumps(export) + "\n" + json.dumps(stray) + "\n")
    n, problems = register_openlineage(catalog, events)
    assert n == 3
    assert problems == [
        f"{events / 'runs.jsonl'}:1: file/{root / 'customers.parquet'}: no column lineage "
        "facet: dataset-level edges only",
        f"{events / 'runs.jsonl'}:2: postgres://warehouse:5432/dw.public.people: "
        "dw.public.people, which is not in the catalog"]
    found = edges(catalog, "openlineage")
    assert found[("customers", "customer_totals")]["columns"] == {
        "customer_id": {"from": ["id"], "kind": "copied"},
        "email": {"from": ["email"], "kind": "copied"}}
    orders = found[("orders", "customer_totals")]
    assert orders["columns"] == {"total": {"from": ["amount"], "kind": "aggregated"}}
    assert orders["kind"] == "aggregated"
    assert found[("customers", "customers")]["columns"] == {}  # dataset level: the export


def test_a_bad_event_file_is_one_line_naming_it(shop, tmp_path: Path) -> None:
    _, catalog = shop
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"eventType": "COMPLETE", "outputs": []}))
    from optout.model.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bad\.json: not an OpenLineage RunEvent"):
        register_openlineage(catalog, bad)


def test_a_scan_survives_files_it_does_not_understand(tmp_path: Path,
                                                      classifier: Classifier) -> None:
    root = tmp_path / "data"
    root.mkdir()
    pq.write_table(people(), root / "customers.parquet")
    (root / "manifest.json").write_text(json.dumps(
        {"metadata": {"dbt_schema_version": "v12"}, "nodes": {"a": {"x": 1}},
         "sources": {}, "macros": {"m": {"y": [1, 2]}}}))
    (root / "run_results.json").write_text(json.dumps(
        {"results": [{"unique_id": "model.a", "timing": [{"name": "compile"}]}],
         "args": {"select": ["a", "b"]}}))
    (root / "keys.jsonl").write_text("\n".join(json.dumps(
        {"user_id": [i, i + 1], "email": f"p{i}@example.org"}) for i in range(N)) + "\n")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    report = scan([str(root)], catalog, classifier=classifier)
    status = {r.ref.name: (r.status, r.error) for r in report.results}
    assert status["customers"][0] == "scanned"
    assert status["keys"][0] == "scanned"  # a list-valued key column is no crash
    for name in ("manifest", "run_results"):
        assert status[name][0] == "failed"
        assert status[name][1].startswith("not a table: one JSON object"), status[name]
    again = scan([str(root)], catalog, classifier=classifier)
    assert {r.ref.name: r.status for r in again.results}["manifest"] == "failed"


def test_a_config_link_names_a_dataset_by_location_when_its_name_is_shared(
        shop, tmp_path: Path) -> None:
    from optout.engine import EngineError
    from optout.engine.graph import build_graph
    from optout.scanner.config import load_config

    root, catalog = shop
    parquet, db = root / "customers.parquet", root / "jaffle.duckdb"
    config = tmp_path / "optout.yaml"
    config.write_text("identity:\n  links:\n"
                      f"    - columns: ['{parquet}#customers:id', '{db}#orders:customer_id']\n")
    graph = build_graph(catalog, load_config(str(config)))
    ids = {catalog.resolve(f"{parquet}#customers"), catalog.resolve(f"{db}#orders")}
    assert [x for x in graph.links if x.kind == "declared" and {x.a[0], x.b[0]} == ids]
    config.write_text("identity:\n  links:\n    - columns: ['customers:id', 'orders:customer_id']\n")
    with pytest.raises(EngineError, match="2 datasets are named 'customers'") as err:
        build_graph(catalog, load_config(str(config)))
    assert f"{parquet}#customers" in str(err.value) and f"{db}#customers" in str(err.value)


# Pagila's view definitions (../shared/worlds/pagila/pagila-schema.sql), read as the schema
# states them: what each view selects from, and how a few columns come about.
PAGILA_VIEWS = {
    "customer_list": {"customer", "address", "city", "country"},
    "staff_list": {"staff", "address", "city", "country"},
    "sales_by_store": {"payment", "rental", "inventory", "store", "address", "city", "country",
                       "staff"},
}
PAGILA_COLUMNS = {  # (view, upstream, column) → (upstream columns, kind)
    ("customer_list", "customer", "id"): (["customer_id"], "copied"),
    ("customer_list", "customer", "name"): (["first_name", "last_name"], "transformed"),
    ("customer_list", "address", "phone"): (["phone"], "copied"),
    ("staff_list", "staff", "id"): (["staff_id"], "copied"),
    ("sales_by_store", "payment", "total_sales"): (["amount"], "aggregated"),
}


@pytest.mark.postgres
@pytest.mark.world
def test_view_lineage_of_a_real_schema(tmp_path: Path, classifier: Classifier) -> None:
    """Pagila, unedited: every table its views read is an edge, with the column maps the
    definitions give, and nothing is left unfollowed."""
    from conftest import throwaway_database

    from fixtures.worlds import load_postgres

    for uri in throwaway_database():
        load_postgres("pagila", uri)
        catalog = Catalog(str(tmp_path / "catalog.duckdb"))
        report = scan([uri], catalog, classifier=classifier)
        assert not [e for e in report.lineage_errors
                    if any(f"view {v} " in e for v in PAGILA_VIEWS)], report.lineage_errors
        found = edges(catalog, "view")
        for view, tables in PAGILA_VIEWS.items():
            assert {u for u, d in found if d == view} == tables, view
        for (view, upstream, column), (cols, kind) in PAGILA_COLUMNS.items():
            assert found[(upstream, view)]["columns"][column] == {"from": cols, "kind": kind}
