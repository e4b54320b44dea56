"""A restore cannot bring an erased subject back: after an erasure, a copy taken before it (a
folder of Parquet part files, a `pg_dump` loaded into a fresh database) is restored;
`optout restore-check` finds the subject there by the erasure ledger and erases her again.
What it leaves is the backup minus her rows exactly (residue 0, collateral 0), and the new
request's report names the request whose subject came back. The report of every erasure names
the deployment's backup sets and until when each may hold the subject.

Truths from the data's meaning: a shop's customers (PostgreSQL) and their orders (Parquet,
keyed by the customer's email), one customer erased."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import throwaway_database
from staff import Staff

from optout.scanner.catalog import Catalog

pytestmark = pytest.mark.postgres
POLICIES = Path(__file__).resolve().parent.parent / "policies"
SUBJECT = "grace.okafor@shopmail.net"
EMAILS = [SUBJECT] + [f"customer{i}@shopmail.net" for i in range(1, 25)]


def _load(pg: str) -> None:
    with psycopg.connect(pg, autocommit=True) as con:
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, "
                    "full_name TEXT)")
        with con.cursor() as cur:
            cur.executemany("INSERT INTO customers VALUES (%s, %s, %s)",
                            [(i + 1, e, f"Name{i} Surname{i}") for i, e in enumerate(EMAILS)])


def _orders(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = [{"order_id": n, "customer_email": EMAILS[n % len(EMAILS)], "total": n * 1.5}
            for n in range(100)]
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.slice(0, 50), folder / "part-0.parquet")
    pq.write_table(table.slice(50), folder / "part-1.parquet")


def _customers(pg: str) -> list[tuple]:
    with psycopg.connect(pg) as con:
        return con.execute("SELECT * FROM customers ORDER BY id").fetchall()


def _order_rows(folder: Path) -> list[tuple]:
    return sorted(tuple(r.values()) for r in pq.read_table(folder).to_pylist())


def _erase(staff: Staff, rid: str) -> None:
    plan = Path(staff.catalog.path).parent / f"{rid}.json"
    done = staff.cli("requester", "plan", "--subject", f"email={SUBJECT}", "--policy",
                     "gdpr-erasure", "--request-id", rid, "-o", str(plan))
    assert done.returncode == 0, done.stderr
    assert staff.cli("approver", "approve", str(plan)).returncode == 0
    done = staff.cli("operator", "apply", str(plan), "--yes")
    assert done.returncode == 0, done.stderr


def _report(staff: Staff, rid: str) -> dict:
    out = Path(staff.catalog.path).parent / f"{rid}.report.json"
    done = staff.cli("admin", "report", rid, "--format", "json", "-o", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_a_restored_backup_is_erased_again(tmp_path: Path) -> None:
    for pg in throwaway_database():
        _load(pg)
        lake = tmp_path / "lake" / "orders"
        _orders(lake)
        # the backups a data team keeps: the folder copied, the database dumped
        shutil.copytree(lake, tmp_path / "backup" / "orders")
        dump = tmp_path / "backup" / "shop.sql"
        subprocess.run(["pg_dump", "--no-owner", "-f", str(dump), pg], check=True)
        staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
        config = tmp_path / "deployment.yaml"
        config.write_text("backups:\n"
                          f"  - {{name: nightly-dump, kind: pg_dump, location: '{dump}', "
                          "retention_days: 35}\n"
                          f"  - {{name: lake-snapshots, kind: files, location: "
                          f"'{tmp_path / 'backup'}', retention_days: 90}}\n")
        assert staff.cli("admin", "config", "set", str(config)).returncode == 0
        assert staff.cli("admin", "scan", pg, str(tmp_path / "lake")).returncode == 0

        _erase(staff, "first-erasure")
        assert SUBJECT not in {r[1] for r in _customers(pg)}
        first = _report(staff, "first-erasure")
        until = {b["name"]: b["may_hold_until"] for b in first["backups"]}
        day = dt.date.fromisoformat(first["updated_at"][:10])
        assert until == {"nightly-dump": str(day + dt.timedelta(days=35)),
                         "lake-snapshots": str(day + dt.timedelta(days=90))}
        assert "2 backup sets may hold the subject until" in first["summary"]

        # the restore: the backup folder put back under a new name, the dump into a fresh
        # database
        restored = tmp_path / "restored" / "orders"
        shutil.copytree(tmp_path / "backup" / "orders", restored)
        expected_orders = [r for r in _order_rows(restored) if r[1] != SUBJECT]
        for fresh in throwaway_database():
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), fresh],
                           check=True, capture_output=True)
            expected_customers = [r for r in _customers(fresh) if r[1] != SUBJECT]
            assert len(expected_customers) == len(EMAILS) - 1

            # under the bundled policy the re-erasure waits for approval: nothing changes yet
            held = tmp_path / "reerase.json"
            done = staff.cli("operator", "restore-check", str(restored.parent), fresh,
                             "--policy", "gdpr-erasure", "-o", str(held))
            assert done.returncode == 0, done.stderr
            assert "of requests first-erasure" in done.stdout and held.exists(), done.stdout
            assert SUBJECT in {r[1] for r in _customers(fresh)}

            # a policy that opts into automatic re-erasure erases at once
            auto = tmp_path / "gdpr-reerase.yaml"
            auto.write_text((POLICIES / "gdpr-erasure.yaml").read_text().replace(
                "name: gdpr-erasure", "name: gdpr-reerase") + "reerase: auto\n")
            assert staff.cli("admin", "policy", "add", str(auto)).returncode == 0
            done = staff.cli("operator", "restore-check", str(restored.parent), fresh,
                             "--policy", "gdpr-reerase")
            assert done.returncode == 0, done.stderr
            assert "erases again what requests first-erasure erased" in done.stdout, done.stdout
            assert _customers(fresh) == expected_customers  # residue 0, collateral 0
            assert _order_rows(restored) == expected_orders
            rid = done.stdout.split("\nrequest ", 1)[1].split(" ", 1)[0]
            again = _report(staff, rid)
            assert again["reerases"] == ["first-erasure"]
            assert _report(staff, "first-erasure")["reerased_by"] == [rid]
            assert again["status"] == "complete", again["summary"]
            assert {s["location"] for s in again["steps"]} == {fresh, str(restored)}

            # a ledger sweep afterwards finds nobody left to erase
            done = staff.cli("operator", "ledger", "sweep", "--policy", "gdpr-reerase")
            assert done.returncode == 0, done.stderr
            assert "no erased subject found again" in done.stdout
