"""The catalog: what a scan records, re-scans, failures, the export shape, and no raw PII."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from optout.model.errors import CatalogError, DatasetNotFound
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.migrations import LATEST
from optout.scanner.classify.column import Classifier
from optout.scanner.scan import ScanOptions, scan


def raw_pii_values(company_dir: Path) -> set[str]:
    """Every raw email, phone number and name in the fixture company."""
    company = company_dir / "company"
    values: set[str] = set()
    customers = pq.read_table(company / "crm" / "customers.parquet").to_pylist()
    for row in customers:
        values |= {
            row["email"],
            row["phone"],
            row["first_name"] + " " + row["last_name"],
            row["street_address"],
        }
    con = duckdb.connect()
    leads = con.execute(
        f"SELECT \"E-Mail\", Telefon, Vorname || ' ' || Nachname "
        f"FROM read_csv('{company}/marketing/leads_de.csv')"
    ).fetchall()
    values |= {v for row in leads for v in row}
    export = pq.read_table(company / "partners" / "export_0417.parquet").to_pylist()
    values |= {v for row in export for v in (row["c1"], row["c2"], row["c3"], row["attr_7"])}
    return values


def test_catalog_holds_no_raw_pii(company_scan, company_dir: Path) -> None:
    _, catalog = company_scan
    raw = raw_pii_values(company_dir)
    assert len(raw) > 1000
    blob = Path(catalog.path).read_bytes()
    assert not [v for v in raw if v.encode() in blob]
    # and through SQL, in case the storage compressed a string out of a byte-level grep
    con = duckdb.connect(catalog.path, read_only=True)
    text = []
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        cols = [
            c
            for c, t in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                [table],
            ).fetchall()
            if t in ("VARCHAR", "JSON")
        ]
        for row in (
            con.execute(f'SELECT {", ".join(cols)} FROM "{table}"').fetchall() if cols else []
        ):
            text.extend(str(v) for v in row if v is not None)
    con.close()
    everything = "\n".join(text)
    assert len(everything) > 10_000
    assert not [v for v in raw if v in everything]


def test_catalog_records_every_fixture_dataset(company_scan) -> None:
    report, catalog = company_scan
    assert not report.failed
    names = {d.name for d in catalog.datasets()}
    assert {
        "customers",
        "orders",
        "payments",
        "tickets",
        "events",
        "leads_de",
        "employees",
        "payroll",
        "it_staff",
        "customer_ltv",
        "daily_revenue",
        "vip_customers",
        "export_0417",
        "app",
        "products",
        "builds",
        "customer_segments",
    } == names
    customers = catalog.find("customers")
    assert customers.row_count == 400 and customers.format == "parquet"
    email = next(c for c in customers.columns if c.name == "email")
    assert (email.pii, email.entity, email.identifier) == (True, "EMAIL_ADDRESS", True)
    assert email.sample_size == 400 and email.signals["name"] == "email"


def test_catalog_file_is_private_and_versioned(company_scan) -> None:
    _, catalog = company_scan
    assert stat.S_IMODE(os.stat(catalog.path).st_mode) == 0o600
    con = duckdb.connect(catalog.path, read_only=True)
    assert con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == LATEST
    runs = con.execute("SELECT status, datasets_scanned, pii_columns FROM scan_runs").fetchall()
    con.close()
    assert runs[0][0] == "ok" and runs[0][1] == 17 and runs[0][2] >= 40


def test_export_shape(company_scan) -> None:
    _, catalog = company_scan
    data = json.loads(json.dumps(catalog.export(), default=str))
    assert set(data) == {"datasets", "lineage"}
    edges = {(e["upstream"], e["downstream"], e["kind"], e["origin"]) for e in data["lineage"]}
    assert edges == {
        ("customers", "customer_ltv", "aggregated", "sql"),
        ("orders", "customer_ltv", "aggregated", "sql"),
        ("orders", "daily_revenue", "aggregated", "sql"),
        ("customers", "customer_segments", "copied", "declared"),
        ("employees", "it_staff", "copied", "view"),
        ("customer_ltv", "vip_customers", "copied", "view"),
    }
    for d in data["datasets"]:
        assert {"id", "name", "kind", "location", "row_count", "columns"} <= set(d)
        assert isinstance(d["row_count"], int)
        for c in d["columns"]:
            assert {
                "name",
                "type",
                "pii",
                "entity",
                "score",
                "identifier",
                "free_text",
                "entities",
            } <= set(c)
            assert 0.0 <= c["score"] <= 1.0
            assert c["entity"] is None or c["pii"]


def test_rescan_skips_unchanged_and_reads_changed(
    tmp_path: Path, company_dir: Path, classifier: Classifier
) -> None:
    data = tmp_path / "data"
    shutil.copytree(company_dir / "company" / "marketing", data)
    shutil.copy(company_dir / "company" / "crm" / "customers.parquet", data)
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    first = scan([str(data)], catalog, classifier=classifier)
    assert first.count("scanned") == 2
    again = scan([str(data)], catalog, classifier=classifier)
    assert again.count("skipped") == 2 and again.count("scanned") == 0
    (data / "leads_de.csv").write_text("email\nsomeone@example.com\n")
    changed = scan([str(data)], catalog, classifier=classifier)
    assert {r.ref.name: r.status for r in changed.results} == {
        "leads_de": "scanned",
        "customers": "skipped",
    }
    assert catalog.find("leads_de").row_count == 1
    forced = scan([str(data)], catalog, ScanOptions(full=True), classifier=classifier)
    assert forced.count("scanned") == 2
    reseeded = scan([str(data)], catalog, ScanOptions(seed=7), classifier=classifier)
    assert reseeded.count("scanned") == 2  # other settings, other findings: not skipped


def test_failures_are_recorded_and_others_complete(tmp_path: Path, classifier: Classifier) -> None:
    (tmp_path / "good.csv").write_text("email\na@example.com\nb@example.org\n")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    report = scan(
        [str(tmp_path), "postgresql://postgres@127.0.0.1:1/x", str(tmp_path / "gone")],
        catalog,
        classifier=classifier,
    )
    assert report.failed
    assert {r.ref.name: r.status for r in report.results} == {"good": "scanned", "bad": "failed"}
    assert len(report.source_errors) == 2
    errors = catalog.errors(report.run_id)
    assert len(errors) == 3 and all("\n" not in e["error"] for e in errors)
    assert catalog.find("bad").status == "failed"
    assert catalog.runs()[0]["status"] == "failed"


def test_find_errors(company_scan, tmp_path: Path) -> None:
    _, catalog = company_scan
    with pytest.raises(DatasetNotFound, match="no dataset 'nope'"):
        catalog.find("nope")
    assert catalog.find(catalog.find("orders").id).name == "orders"
    with pytest.raises(CatalogError, match="no catalog here yet"):
        Catalog(str(tmp_path / "missing.duckdb")).datasets()
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(CatalogError, match=r"junk\.duckdb"):
        Catalog(str(junk)).datasets()


def test_a_held_catalog_opens_once_and_lets_go(tmp_path: Path, monkeypatch) -> None:
    """Inside `held()` every connection is a cursor of one open database (DuckDB starts an
    instance for each new connection: 15-20 ms); what one writes the next reads; what one
    leaves uncommitted is rolled back as a closed connection's is; and when the block ends
    another process can open the catalog. The control: outside a hold each connection
    opens the database again."""
    import subprocess
    import sys

    from optout.scanner.catalog import store

    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    with catalog.connect() as con:
        con.execute("CREATE TABLE t (n INTEGER)")
    opened = []
    real = duckdb.connect
    monkeypatch.setattr(store.duckdb, "connect", lambda *a, **k: opened.append(a) or real(*a, **k))
    with catalog.held():
        for n in range(5):
            with catalog.connect() as con:
                con.execute("INSERT INTO t VALUES (?)", [n])
        with catalog.connect(read_only=True) as con:
            assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 5
        with pytest.raises(RuntimeError), catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO t VALUES (99)")
            raise RuntimeError("the caller failed mid-transaction")
        assert len(opened) == 1
        # another thread of the process opens its own connection (the holder's may close
        # while the thread's is still open)
        def elsewhere() -> None:
            with catalog.connect() as con:
                con.execute("SELECT 1")

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert len(opened) == 2
    other = subprocess.run([sys.executable, "-c", "import duckdb, sys; print(duckdb.connect("
                            "sys.argv[1]).execute('SELECT sum(n), count(*) FROM t').fetchone())",
                            catalog.path], capture_output=True, text=True, timeout=60)
    assert other.stdout.strip() == "(10, 5)", other.stderr
    for _ in range(3):
        with catalog.connect() as con:
            con.execute("SELECT 1")
    assert len(opened) == 5


def test_a_catalog_that_cannot_be_held_opens_as_it_would(tmp_path: Path, monkeypatch) -> None:
    """Where the catalog cannot be opened for writing (a caller who may only read it), a hold
    holds nothing and each connection opens as it would without one."""
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    with catalog.connect() as con:
        con.execute("CREATE TABLE t AS SELECT 42 AS n")
    real = Catalog._open

    def read_only_here(self, read_only: bool):
        if not read_only:
            raise CatalogError(f"{self.path}: cannot open the catalog: read-only file system")
        return real(self, read_only)

    monkeypatch.setattr(Catalog, "_open", read_only_here)
    with catalog.held():
        assert catalog._held is None  # nothing held
        with catalog.connect(read_only=True) as con:
            assert con.execute("SELECT n FROM t").fetchone() == (42,)
        with pytest.raises(CatalogError, match="read-only file system"), catalog.connect():
            pass
