"""The identity graph and lineage: links, domains, PII flowing into derived columns."""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from optout.engine import EngineError
from optout.engine.graph import build_graph
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.config import Config, load_config
from optout.scanner.scan import scan


def names(graph, domain: str) -> set[str]:
    return {graph.name(c) for c in graph.domain_columns(domain)}


def test_domains_keep_customers_and_employees_apart(company_scan) -> None:
    _, catalog = company_scan
    graph = build_graph(catalog)
    customers = names(graph, "key customers:id")
    assert {"orders:customer_id", "payments:customer_id", "tickets:customer.id",
            "customer_ltv:customer_id", "customer_segments:customer_id"} <= customers
    assert "payroll:employee_id" in names(graph, "key employees:employee_id")
    assert not [c for c in customers if "employee" in c]
    candidate = [x for x in graph.links if graph.name(x.a) == "employees:employee_id"
                 and graph.name(x.b) == "customers:id"]
    assert candidate and candidate[0].status == "candidate"
    assert graph.domains_for_key("customer_id") == ["key customers:id"]
    assert graph.domains_for_key("email") == ["EMAIL_ADDRESS"]


def test_config_adds_and_rejects_links(company_scan, tmp_path: Path) -> None:
    _, catalog = company_scan
    config = tmp_path / "optout.yaml"
    config.write_text('identity:\n  links:\n    - columns: ["events:user_id", "customers:id"]\n'
                      '  reject:\n    - columns: ["orders:customer_id", "customers:id"]\n')
    graph = build_graph(catalog, load_config(str(config)))
    assert graph.domains[(catalog.find("events").id, "user_id")] == "key customers:id"
    rejected = [x for x in graph.links if x.status == "rejected"]
    assert {frozenset((graph.name(x.a), graph.name(x.b))) for x in rejected} == {
        frozenset(("orders:customer_id", "customers:id"))}
    config.write_text('identity:\n  links:\n    - columns: ["events:nope", "customers:id"]\n')
    with pytest.raises(EngineError, match="dataset 'events' has no column 'nope'"):
        build_graph(catalog, load_config(str(config)))
    config.write_text('identity:\n  references:\n    - columns: ["lines:id", "orders:id"]\n')
    with pytest.raises(EngineError, match=r"^identity reference 'lines:id': no dataset named "
                                          r"'lines' in the catalog$"):
        build_graph(catalog, load_config(str(config)))


def test_pii_flows_along_lineage_into_derived_columns(tmp_path: Path,
                                                      classifier: Classifier) -> None:
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE people AS SELECT range AS person_id, "
                "'p' || range || '@example.com' AS email FROM range(50)")
    con.execute("CREATE TABLE contact_export (c_x VARCHAR)")  # empty: its sample shows nothing
    con.close()
    (tmp_path / "contact_export.sql").write_text(
        "INSERT INTO contact_export SELECT upper(email) AS c_x FROM people")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    scan([str(tmp_path)], catalog, classifier=classifier)
    export = catalog.find("contact_export")
    assert not export.columns[0].pii
    graph = build_graph(catalog, Config())
    flowed = graph.columns[(export.id, "c_x")]
    assert (flowed.entity, flowed.signals["lineage"]) == ("EMAIL_ADDRESS", "people")
    assert graph.domains[(export.id, "c_x")] == "EMAIL_ADDRESS"


def test_postgres_view_and_foreign_key_lineage(pg_uri: str, tmp_path: Path,
                                               classifier: Classifier) -> None:
    with psycopg.connect(pg_uri, autocommit=True) as con:
        con.execute("CREATE SCHEMA shop")
        con.execute("CREATE TABLE shop.clients (client_id int PRIMARY KEY, email text)")
        con.execute("INSERT INTO shop.clients SELECT i, 'c' || i || '@example.org' "
                    "FROM generate_series(1, 40) i")
        con.execute("CREATE TABLE shop.invoices (client_id int REFERENCES shop.clients, "
                    "total numeric)")
        con.execute("INSERT INTO shop.invoices SELECT 1 + i % 40, i FROM generate_series(1, 90) i")
        con.execute("CREATE VIEW shop.client_emails AS SELECT client_id, email FROM shop.clients")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    assert not scan([pg_uri], catalog, classifier=classifier).failed
    edges = {(e["upstream"], e["downstream"], e["origin"]) for e in catalog.lineage()}
    assert ("shop.clients", "shop.client_emails", "view") in edges
    graph = build_graph(catalog)
    fk = [x for x in graph.links if x.kind == "foreign_key"]
    assert [(graph.name(x.a), graph.name(x.b)) for x in fk] == [
        ("shop.invoices:client_id", "shop.clients:client_id")]
