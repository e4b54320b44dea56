"""Chinook (unedited, from the shipped SQLite file) exported to Parquet, where it has no foreign
keys: planning finds a customer's row by email and their invoices by the customer id it
learned (a second round over the files), locates them without another read, and apply removes
exactly them. The truths come from the schema: a customer is the `Customer` row with that
email, their invoices are the `Invoice` rows with its `CustomerId`. `InvoiceLine` holds no
identifier of a person (invoice, track, price, quantity): without the foreign key declared it
is not the subject's, and stays byte for byte — but the plan names the lines of the erased
invoices for review, and erases them once the foreign key the export dropped is declared."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from world_db import copy_sqlite

from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.plan_settings import SettingsChanged
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.scanner.catalog import Catalog
from optout.scanner.config import Config, load_config
from optout.scanner.scan import scan

pytestmark = pytest.mark.world

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
#: the subjects of tests/worlds/chinook_sqlite.yaml, with the customers the schema says they are
SUBJECTS = {"frantisekw@jetbrains.com": 5, "steve.murray@yahoo.uk": 54}


@pytest.fixture()
def chinook(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    con = sqlite3.connect(copy_sqlite("chinook", tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    for table in ("Customer", "Invoice", "InvoiceLine"):
        cursor = con.execute(f"SELECT * FROM {table} ORDER BY rowid")
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}),
                       data / f"{table}.parquet", row_group_size=100)
    return data, con


def positions(con: sqlite3.Connection, table: str, ids: list[int]) -> set[int]:
    """Row numbers (in export order) of the rows of these customers."""
    rows = con.execute(f"SELECT CustomerId FROM {table} ORDER BY rowid").fetchall()
    return {i for i, (customer,) in enumerate(rows) if customer in ids}


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_a_customer_and_their_invoices_leave_a_parquet_chinook(chinook, tmp_path: Path,
                                                               classifier, engine: str) -> None:
    """On either engine (Spark plans, locates and rewrites the files itself)."""
    config = Config(engine=engine)
    data, con = chinook
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(data)], catalog, classifier=classifier)
    ids = list(SUBJECTS.values())
    truth = {t: positions(con, t, ids) for t in ("Customer", "Invoice")}
    assert len(truth["Customer"]) == 2 and len(truth["Invoice"]) == 14
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={e}") for e in SUBJECTS],
                                           load_policy(POLICY), str(POLICY)), config)
    assert plan.engine == engine
    assert {r.status for r in plan.resolution} == {"resolved"}
    steps = {s.dataset: s for s in plan.steps}
    assert set(steps) == {"Customer", "Invoice"}
    for table, rows in truth.items():
        assert steps[table].action == "delete_rows" and steps[table].rows == len(rows)
        [(path, _, located)] = steps[table].locations
        assert Path(path).name == f"{table}.parquet" and set(located) == rows
    before = {t: pq.read_table(data / f"{t}.parquet").to_pylist() for t in truth}
    lines = (data / "InvoiceLine.parquet").read_bytes()
    apply_plan(catalog, plan, ApplyOptions(config=config))
    for table, rows in truth.items():
        assert pq.read_table(data / f"{table}.parquet").to_pylist() == [
            r for i, r in enumerate(before[table]) if i not in rows]
    assert (data / "InvoiceLine.parquet").read_bytes() == lines


def lines_of(con: sqlite3.Connection, ids: list[int]) -> set[int]:
    """Row numbers (in export order) of the invoice lines of these customers' invoices: the
    schema's foreign key InvoiceLine.InvoiceId → Invoice.InvoiceId."""
    invoices = {i for (i,) in con.execute(
        f"SELECT InvoiceId FROM Invoice WHERE CustomerId IN ({', '.join('?' * len(ids))})",
        ids)}
    rows = con.execute("SELECT InvoiceId FROM InvoiceLine ORDER BY rowid").fetchall()
    return {i for i, (invoice,) in enumerate(rows) if invoice in invoices}


def test_lines_of_erased_invoices_are_named_then_erased_once_the_reference_is_declared(
        chinook, tmp_path: Path, classifier) -> None:
    data, con = chinook
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(data)], catalog, classifier=classifier)
    truth = lines_of(con, list(SUBJECTS.values()))
    assert len(truth) == 76  # 38 lines on the 7 invoices of each
    request = PlanRequest([parse_subject(f"email={e}") for e in SUBJECTS],
                          load_policy(POLICY), str(POLICY))
    plan = build_plan(catalog, request)
    assert {s.dataset for s in plan.steps} == {"Customer", "Invoice"}
    assert len(plan.review) == 1, ([(s.dataset) for s in plan.steps], plan.review)
    [note] = plan.review
    assert note.dataset == "InvoiceLine" and note.reason.startswith(f"{len(truth)} rows hold")
    assert '"InvoiceLine:InvoiceId", "Invoice:InvoiceId"' in note.reason

    (tmp_path / "optout.yaml").write_text(
        'identity:\n  references:\n    - columns: ["InvoiceLine:InvoiceId", "Invoice:InvoiceId"]\n')
    config = load_config(str(tmp_path / "optout.yaml"))
    plan = build_plan(catalog, request, config)
    assert not plan.review
    steps = {s.dataset: s for s in plan.steps}
    assert steps["InvoiceLine"].action == "delete_rows" and steps["InvoiceLine"].rows == len(truth)
    before = pq.read_table(data / "InvoiceLine.parquet").to_pylist()
    # the plan records the declared reference: under a configuration without it (the admin
    # took it back) apply refuses by the section's name and changes nothing
    with pytest.raises(SettingsChanged, match=r"changed since the plan was made and approved "
                                              r"\(identity\)"):
        apply_plan(catalog, plan, ApplyOptions(config=Config()))
    assert pq.read_table(data / "InvoiceLine.parquet").to_pylist() == before
    apply_plan(catalog, plan, ApplyOptions(config=config))
    assert pq.read_table(data / "InvoiceLine.parquet").to_pylist() == [
        r for i, r in enumerate(before) if i not in truth]


def test_an_uncompressed_chinook_holds_no_byte_of_the_erased_customers(chinook, tmp_path: Path,
                                                                       classifier) -> None:
    """Customer exported without compression keeps its text in the clear, as an examiner reads
    it. Truths from the schema: the erased customers' emails are the `Email` of `Customer`
    rows 5 and 54; every other customer's email stays. Before apply the file's raw bytes hold
    both; after, neither, and the others' still; the raw read of the store searched her values
    and read clean (`verified`: with nothing to search it would say `rewritten`)."""
    from optout.engine.physical import physical_steps

    data, con = chinook
    path = data / "Customer.parquet"
    pq.write_table(pq.read_table(path), path, row_group_size=100, compression="none")
    emails = dict(con.execute("SELECT CustomerId, Email FROM Customer").fetchall())
    gone = [emails[i].encode() for i in SUBJECTS.values()]
    kept = [e.encode() for i, e in emails.items() if i not in SUBJECTS.values()]
    assert all(path.read_bytes().count(e) for e in gone + kept)
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(data)], catalog, classifier=classifier)
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={e}") for e in SUBJECTS],
                                           load_policy(POLICY), str(POLICY)))
    rid = apply_plan(catalog, plan, ApplyOptions())
    raw = path.read_bytes()
    assert not any(raw.count(e) for e in gone)
    assert all(raw.count(e) for e in kept)
    store = {s["store"]: s for s in physical_steps(catalog, rid)}[str(path)]
    assert store["status"] == "verified"
    assert store["read"] == [{"file": str(path), "hits": 0}]
