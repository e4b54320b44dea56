"""Finding all of the subject on data nobody here wrote, and saying honestly what is left:
proposals a reviewer accepts in one step (`optout review`), the same plan on every new
catalog, a foreign key the data lost recovered from names and values, and statuses that never
say "complete" while known rows of the subject remain."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import psycopg
import pytest
from conftest import throwaway_database
from staff import Staff
from world_db import copy_sqlite, load_postgres

from optout.engine.apply import ApplyOptions, apply_plan, final_status
from optout.engine.erasure_report import build_report
from optout.engine.journal import Journal
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.report_render import report_html, report_markdown
from optout.engine.subjects import parse_subject
from optout.model.plan import load_plan
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.scan import ScanOptions, scan

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
SUBJECT = 5  # a Chinook customer with invoices


def chinook_with_export(tmp_path: Path) -> tuple[Path, Path, list[dict[str, str]]]:
    """Chinook (SQLite, as shipped) and, in a folder of its own, a CSV the support team
    exported from it: notes keyed by `customer_id`, in another namespace (no link may be
    inferred across it without a person saying so)."""
    db = copy_sqlite("chinook_sqlite", tmp_path)
    exports = tmp_path / "exports"
    exports.mkdir()
    with sqlite3.connect(db) as con:
        customers = [r[0] for r in con.execute("SELECT CustomerId FROM Customer ORDER BY 1")]
    rows = [{"note_id": str(n), "customer_id": str(c), "note": "called about an invoice",
             "noted_on": f"2025-0{1 + n % 9}-1{n % 10}"}
            for n, c in enumerate(c for c in customers for _ in range(1 + c % 3))]
    with open(exports / "customer_notes.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return db, exports, rows


def test_review_lists_the_link_and_accepting_it_reaches_the_rows(tmp_path: Path) -> None:
    """End to end through the CLI: the plan leaves the export (another namespace) and names
    the link that would reach it; `optout review` lists it numbered, a requester may look but
    not accept, an admin accepts it in one step, and the new plan deletes exactly the
    subject's notes."""
    db, exports, rows = chinook_with_export(tmp_path)
    staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
    assert staff.cli("admin", "scan", str(db), str(exports)).returncode == 0
    plan_file = tmp_path / "plan.json"
    done = staff.cli("requester", "plan", "--subject", f"customer_id={SUBJECT}", "--policy",
                     "gdpr-erasure", "-o", str(plan_file))
    assert done.returncode == 4, done.stderr
    plan = load_plan(plan_file)
    notes = [n for n in plan.review if n.dataset == "customer_notes"]
    assert notes and set(notes[0].proposals[0]["columns"]) == {"customer_notes:customer_id",
                                                               "Customer:CustomerId"}
    listed = staff.cli("requester", "review", str(plan_file))
    assert listed.returncode == 4
    assert "[1] links: " in listed.stdout and "customer_notes:customer_id" in listed.stdout
    denied = staff.cli("requester", "review", str(plan_file), "--accept", "1")
    assert denied.returncode == 3 and "admin" in denied.stderr
    bad = staff.cli("admin", "review", str(plan_file), "--accept", "99")
    assert bad.returncode == 2 and "no proposal 99" in bad.stderr
    accepted = staff.cli("admin", "review", str(plan_file), "--accept", "1",
                         "-o", str(tmp_path / "new.json"))
    assert "+ customer_notes" in accepted.stdout, accepted.stdout + accepted.stderr
    new = load_plan(tmp_path / "new.json")
    step = next(s for s in new.steps if s.dataset == "customer_notes")
    assert step.rows == sum(r["customer_id"] == str(SUBJECT) for r in rows)
    shown = staff.cli("admin", "config", "show")
    assert "customer_notes:customer_id" in shown.stdout


@pytest.mark.postgres
def test_a_foreign_key_the_data_lost_is_recovered_from_names_and_values(
        tmp_path: Path, classifier: Classifier) -> None:
    """Northwind without `orders.customer_id`'s foreign key: the exact-name, fully contained
    key is linked in its own schema (its evidence in the plan), and the customer's orders and
    their details are erased as the truth says; nobody else's row changes."""
    databases = throwaway_database()
    uri = next(databases)
    try:
        load_postgres("northwind", uri)
        with psycopg.connect(uri, autocommit=True) as con:
            [(fk,)] = con.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND "
                "contype = 'f' AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE "
                "attrelid = 'orders'::regclass AND attname = 'customer_id')]").fetchall()
            con.execute(f'ALTER TABLE orders DROP CONSTRAINT "{fk}"')
            before = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("customers", "orders", "order_details", "employees")}
            mine = {"customers": 1,
                    "orders": con.execute("SELECT count(*) FROM orders WHERE customer_id = "
                                          "'ALFKI'").fetchone()[0],
                    "order_details": con.execute(
                        "SELECT count(*) FROM order_details WHERE order_id IN (SELECT order_id "
                        "FROM orders WHERE customer_id = 'ALFKI')").fetchone()[0],
                    "employees": 0}
        catalog = Catalog(str(tmp_path / "catalog.duckdb"))
        scan([uri], catalog, classifier=classifier)
        policy = load_policy(POLICY)
        plan = build_plan(catalog, PlanRequest([parse_subject("customer_id=ALFKI",
                                                              policy.identifiers)],
                                               policy, str(POLICY)))
        orders = next(s for s in plan.steps if s.dataset == "orders")
        assert orders.rows == mine["orders"] and any("customer_id (owner: customer)" in v
                                                     for v in orders.via)
        apply_plan(catalog, plan, ApplyOptions())
        with psycopg.connect(uri) as con:
            after = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
        assert {t: before[t] - after[t] for t in before} == mine
    finally:
        databases.close()


def planned(db: Path, classifier: Classifier, subject: str = f"customer_id={SUBJECT}"):
    """A world scanned into a catalog beside it and the subject planned: (catalog, plan)."""
    catalog = Catalog(str(db.parent / "catalog.duckdb"))
    scan([str(db)], catalog, classifier=classifier)
    policy = load_policy(POLICY)
    return catalog, build_plan(catalog, PlanRequest([parse_subject(subject, policy.identifiers)],
                                                    policy, str(POLICY)))


@pytest.fixture(scope="module")
def left_behind(tmp_path_factory: pytest.TempPathFactory, classifier: Classifier):
    """Chinook in SQLite with `InvoiceLine`'s foreign key gone (a copy of the table without
    it): the plan erases the customer's invoices and finds, by value, lines that hold their
    ids, which it leaves. Applied: the request is not complete in any form."""
    tmp = tmp_path_factory.mktemp("left")
    db = copy_sqlite("chinook_sqlite", tmp)
    with sqlite3.connect(db) as con:
        con.executescript("CREATE TABLE Lines AS SELECT InvoiceLineId, InvoiceId, TrackId, "
                          "UnitPrice, Quantity FROM InvoiceLine; DROP TABLE InvoiceLine; "
                          "ALTER TABLE Lines RENAME TO InvoiceLine;")
        left = con.execute("SELECT count(*) FROM InvoiceLine WHERE InvoiceId IN (SELECT "
                           "InvoiceId FROM Invoice WHERE CustomerId = ?)", [SUBJECT]).fetchone()[0]
    catalog, plan = planned(db, classifier)
    apply_plan(catalog, plan, ApplyOptions())
    return catalog, plan, left


def test_known_rows_left_are_never_reported_complete(left_behind) -> None:
    catalog, plan, left = left_behind
    assert left and plan.rows_left() == left
    status = Journal(catalog).request(plan.request_id)["status"]
    assert status == final_status(plan) == "incomplete_needs_review"
    report = build_report(catalog, plan.request_id)
    assert "complete" not in report["status"].replace("incomplete", "")
    assert report["summary"].startswith(f"{left} rows of the subject known to remain")
    markdown = report_markdown(report)
    assert "**incomplete_needs_review**" in markdown.split("\n\n", 2)[1]
    assert f"{left} rows of the subject known to remain" in markdown.split("\n\n", 2)[1]
    html = report_html(report)
    assert "<strong id='status'>incomplete_needs_review</strong>" in html
    assert ">complete<" not in html and "complete_with_review" not in html


def test_a_plan_that_leaves_nothing_is_complete(tmp_path: Path, classifier: Classifier) -> None:
    """The control: the same world with its foreign key, nothing left, `complete`."""
    db = copy_sqlite("chinook_sqlite", tmp_path)
    catalog, plan = planned(db, classifier)
    apply_plan(catalog, plan, ApplyOptions())
    assert plan.rows_left() == 0
    assert Journal(catalog).request(plan.request_id)["status"] == "complete"


def test_empty_datasets_are_listed_apart(tmp_path: Path, classifier: Classifier) -> None:
    """A table created LIKE another and never filled is not a review item."""
    db = copy_sqlite("chinook_sqlite", tmp_path)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE CustomerBackup AS SELECT * FROM Customer WHERE 0")
    _, plan = planned(db, classifier)
    assert not [n for n in plan.review if n.dataset == "CustomerBackup"]
    assert [n.reason for n in plan.searched if n.dataset == "CustomerBackup"] == [
        "empty: nothing to erase"]


def test_a_link_at_the_evidence_threshold_is_decided_the_same_on_every_catalog(
        tmp_path: Path, classifier: Classifier) -> None:
    """Where a sketch keeps only part of a key's values (3,000 customers, 2,500 loyalty ids;
    sketches hold 2,000) and the containment estimate sits at the threshold, which values a
    sketch keeps decides the link: chosen by the catalog's secret (as it was), the plan
    differed from catalog to catalog. Ten catalogs, one plan."""
    import duckdb

    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE customers AS SELECT i AS id, 'c' || i || '@shop.example.com' "
                    "AS email FROM range(1, 3001) t(i)")
        con.execute("CREATE TABLE loyalty AS SELECT CASE WHEN i > 1800 THEN 90000 + i ELSE "
                    "i END AS customer_id, i % 7 AS tier FROM range(1, 2501) t(i)")
    policy = load_policy(POLICY)
    seen = set()
    for n in range(10):
        catalog = Catalog(str(tmp_path / f"catalog{n}.duckdb"))
        # a sample larger than a sketch: which sampled values a sketch keeps matters
        scan([str(db)], catalog, ScanOptions(sample_rows=10_000), classifier=classifier)
        plan = build_plan(catalog, PlanRequest([parse_subject("customer_id=7",
                                                              policy.identifiers)],
                                               policy, str(POLICY)))
        seen.add(json.dumps([sorted((s.dataset, s.rows) for s in plan.steps),
                             sorted((r.dataset, r.reason) for r in plan.review)]))
    assert len(seen) == 1, seen
