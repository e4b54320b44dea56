"""Delta Lake and Apache Iceberg tables, through the command line as the deployment's staff:
scan finds their PII columns; an erasure goes through the table's own transaction and then
purges the table's past, so the subjects are in no version still readable (time travel, read
back through the library) and in no raw file of the table's folder (data, change data feed,
transaction log with its per-column statistics, manifests). Everyone else's rows are unchanged
and the table stays readable by its library and by DuckDB. A process killed before the table
commit leaves the old version current; one killed after it is finished by `optout resume`.

The truths come from the table's meaning, written before looking at optout's output: a
clinic's patients (an id code, an email, a full name, a site partition, a visit count) of
whom two ask to be erased."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from staff import Staff

from optout.scanner.catalog import Catalog

NAMES = ["Maria Lopez", "Kwame Osei", "Ines Duarte", "John Smith", "Aiko Tanaka", "Lars Berg"]
#: other patients share names among themselves, never the subjects'
OTHERS = ["Ana Silva", "Tom Reed", "Mei Chen", "Omar Haddad"]
SUBJECTS = ["maria.lopez@clinic-mail.org", "kwame.osei@clinic-mail.org"]


def _patients() -> pa.Table:
    """30 patients; the first two are the subjects (one row each), everyone else distinct."""
    rows = []
    for i in range(30):
        name = NAMES[i] if i < len(NAMES) else OTHERS[i % len(OTHERS)]
        email = name.lower().replace(" ", ".") + ("" if i < 6 else str(i)) + "@clinic-mail.org"
        rows.append({"patient_id": f"P{1000 + i}", "email": email, "full_name": name,
                     "site": ("north", "south")[i % 2], "visits": i})
    return pa.Table.from_pylist(rows)


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.select(
        ["patient_id", "email", "full_name", "site", "visits"]).to_pylist())


EXPECTED = _rows(_patients().filter(pa.array(
    [e not in SUBJECTS for e in _patients().column("email").to_pylist()])))


def _raw_hits(folder: Path) -> dict[str, int]:
    """Files of the table's folder whose raw bytes hold a subject's email or name."""
    needles = [s.encode() for s in SUBJECTS] + [b"Maria Lopez", b"Kwame Osei"]
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            data = (Path(root) / name).read_bytes()
            n = sum(data.count(x) for x in needles)
            if n:
                out[os.path.relpath(Path(root) / name, folder)] = n
    return out


def _delta(folder: Path) -> None:
    """Written like a data team's pipeline would: partitioned by site, change data feed on,
    four commits (a load, two appends, an update of the first subject's row); uncompressed
    pages, so a raw read sees every value."""
    from deltalake import DeltaTable, WriterProperties, write_deltalake

    props = WriterProperties(compression="UNCOMPRESSED")
    table = _patients()
    write_deltalake(folder, table.slice(1, 19), partition_by=["site"], writer_properties=props,
                    configuration={"delta.enableChangeDataFeed": "true"})
    write_deltalake(folder, table.slice(20), mode="append", writer_properties=props)
    # a late registration: one patient alone in a file, so the log's per-file statistics
    # (minimum and maximum) hold her email and name
    write_deltalake(folder, table.slice(0, 1), mode="append", writer_properties=props)
    DeltaTable(folder).update(updates={"visits": "visits + 100"},
                              predicate="patient_id = 'P1000'", writer_properties=props)


@pytest.fixture()
def lake(tmp_path: Path) -> Iterator[tuple[Path, Staff]]:
    folder = tmp_path / "lake" / "patients"
    _delta(folder)
    staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
    done = staff.cli("admin", "scan", str(tmp_path / "lake"))
    assert done.returncode == 0, done.stderr
    yield folder, staff


def _erase(staff: Staff, rid: str, fault: str | None = None) -> int:
    plan = Path(staff.catalog.path).parent / f"{rid}.json"
    done = staff.cli("requester", "plan", *[a for s in SUBJECTS for a in ("--subject",
                                                                          f"email={s}")],
                     "--policy", "gdpr-erasure", "--request-id", rid, "-o", str(plan))
    assert done.returncode == 0, done.stderr
    assert staff.cli("approver", "approve", str(plan)).returncode == 0
    done = staff.cli("operator", "apply", str(plan), "--yes",
                     env={"OPTOUT_FAULT": fault} if fault else None)
    return done.returncode


def _report(staff: Staff, rid: str) -> dict:
    out = Path(staff.catalog.path).parent / f"{rid}.report.json"
    done = staff.cli("admin", "report", rid, "--format", "json", "-o", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def _delta_versions(folder: Path) -> dict[int, list[tuple] | None]:
    """Every version time travel reaches: its rows, or None when it cannot be read."""
    from deltalake import DeltaTable

    out: dict[int, list[tuple] | None] = {}
    for version in range(DeltaTable(folder).version() + 1):
        try:
            out[version] = _rows(DeltaTable(folder, version=version).to_pyarrow_table())
        except Exception:  # the log or a file of the version is gone
            out[version] = None
    return out


def _subjects_in(rows: list[tuple]) -> int:
    return sum(1 for r in rows if r[1] in SUBJECTS)


def test_delta_erasure_leaves_no_version_and_no_byte(lake: tuple[Path, Staff]) -> None:
    from deltalake import DeltaTable

    folder, staff = lake
    listed = json.loads(staff.cli("admin", "catalog", "list", "--format", "json").stdout)
    tables = [d for d in listed if d["format"] == "delta"]
    assert [d["name"] for d in tables] == ["patients"], listed  # one table, no loose Parquet
    assert not [d for d in listed if d["format"] == "parquet"]
    pii = {c["name"]: c["entity"] for c in tables[0]["columns"] if c["pii"]}
    assert pii.get("email") == "EMAIL_ADDRESS" and pii.get("full_name") == "PERSON", pii
    assert "visits" not in pii and "site" not in pii
    before = _delta_versions(folder)
    assert all(_subjects_in(rows) for rows in before.values() if rows is not None)
    assert _raw_hits(folder)  # the control: the raw check finds them before

    assert _erase(staff, "delta-1") == 0
    assert _rows(DeltaTable(folder).to_pyarrow_table()) == EXPECTED  # everyone else intact
    versions = _delta_versions(folder)
    readable = {v: rows for v, rows in versions.items() if rows is not None}
    assert readable and all(_subjects_in(rows) == 0 for rows in readable.values()), versions
    assert all(versions[v] is None for v in before)  # time travel to the past is gone
    assert _raw_hits(folder) == {}
    files = [f.removeprefix("file://") for f in DeltaTable(folder).file_uris()]
    con = duckdb.connect()
    got = con.execute("SELECT patient_id, email, full_name, site, visits FROM read_parquet(?, "
                      "hive_partitioning=true)", [files]).fetchall()
    assert sorted(got) == EXPECTED
    report = _report(staff, "delta-1")
    assert report["status"] == "complete", report["summary"]
    store = next(p for p in report["physical"] if p["format"] == "delta")
    assert store["status"] == "verified"
    assert any(r["file"].startswith(str(folder) + " @ version") for r in store["read"])
    assert any("vacuumed" in d for d in store["rewritten"])


def test_a_delta_erasure_killed_at_each_point_is_resumed(lake: tuple[Path, Staff]) -> None:
    """Killed before the table commit, then (resumed) right after it, then (resumed) inside
    the purge: each time the table is where the kill left it, and the last resume ends
    clean, with one tagged commit."""
    from deltalake import DeltaTable

    folder, staff = lake
    version = DeltaTable(folder).version()
    first = folder / "_delta_log" / f"{0:020d}.json"

    assert _erase(staff, "delta-kill", fault="after-check") != 0
    assert DeltaTable(folder).version() == version  # the old version is current
    assert _subjects_in(_rows(DeltaTable(folder).to_pyarrow_table())) == 2

    done = staff.cli("operator", "resume", "delta-kill",
                     env={"OPTOUT_FAULT": "after-table-commit"})
    assert done.returncode != 0
    assert _rows(DeltaTable(folder).to_pyarrow_table()) == EXPECTED  # committed
    assert _raw_hits(folder)  # the past not purged yet

    done = staff.cli("operator", "resume", "delta-kill", env={"OPTOUT_FAULT": "physical-delta"})
    assert done.returncode != 0
    assert first.exists()  # files vacuumed, the log not purged yet
    tagged = [h for h in DeltaTable(folder).history() if h.get("optout.request") == "delta-kill"]
    assert len(tagged) == 1  # the resumed commit found the first one, made none of its own

    done = staff.cli("operator", "resume", "delta-kill")
    assert done.returncode == 0, done.stderr
    assert _rows(DeltaTable(folder).to_pyarrow_table()) == EXPECTED
    assert _raw_hits(folder) == {} and not first.exists()
    assert not [f for f in os.listdir(folder.parent) if "optout-staged" in f]
    report = _report(staff, "delta-kill")
    assert report["status"] == "complete"
    # the resumed process never saw the values: its raw read matched keyed hashes, of what
    store = next(p for p in report["physical"] if p["format"] == "delta")
    assert store["status"] == "verified" and "email" in store["searched_for"], store


# -- Apache Iceberg, through pyiceberg's SQL catalog on SQLite ---------------------------------

def _iceberg(root: Path) -> str:
    """The same patients as an Iceberg table, in three snapshots (a load, an append, a row
    overwritten by the application), uncompressed; returns the catalog's optout URI."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.expressions import EqualTo

    props = {"type": "sql", "uri": f"sqlite:///{root}/iceberg.db",
             "warehouse": f"file://{root}/warehouse"}
    (root / "warehouse").mkdir()
    catalog = load_catalog("clinic", **props)
    catalog.create_namespace("care")
    table = _patients()
    created = catalog.create_table("care.patients", schema=table.schema, properties={
        "write.parquet.compression-codec": "uncompressed"})
    created.append(table.slice(0, 20))
    created.append(table.slice(20))
    first = table.slice(0, 1).set_column(4, "visits", pa.array([100], pa.int64()))
    created.overwrite(first, overwrite_filter=EqualTo("patient_id", "P1000"))
    return "iceberg://clinic?" + "&".join(f"{k}={v}" for k, v in props.items())


def _iceberg_table(uri: str) -> Any:  # pyiceberg's Table
    from optout.connectors.iceberg.tables import open_table

    return open_table(uri.replace("iceberg://clinic?", "iceberg://clinic/care.patients?"))


def _iceberg_snapshots(uri: str) -> dict[int, list[tuple] | None]:
    table = _iceberg_table(uri)
    out: dict[int, list[tuple] | None] = {}
    for snapshot in table.snapshots():
        try:
            out[snapshot.snapshot_id] = _rows(table.scan(snapshot_id=snapshot.snapshot_id)
                                              .to_arrow())
        except Exception:  # a file it needs is gone
            out[snapshot.snapshot_id] = None
    return out


@pytest.fixture()
def warehouse(tmp_path: Path) -> Iterator[tuple[str, Path, Staff]]:
    uri = _iceberg(tmp_path)
    staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
    done = staff.cli("admin", "scan", uri)
    assert done.returncode == 0, done.stderr
    yield uri, tmp_path / "warehouse" / "care" / "patients", staff


def test_iceberg_scan_and_erasure_leave_no_snapshot_and_no_byte(
        warehouse: tuple[str, Path, Staff]) -> None:
    uri, folder, staff = warehouse
    listed = json.loads(staff.cli("admin", "catalog", "list", "--format", "json").stdout)
    tables = [d for d in listed if d["format"] == "iceberg"]
    assert [d["name"] for d in tables] == ["care.patients"]
    pii = {c["name"]: c["entity"] for c in tables[0]["columns"] if c["pii"]}
    assert pii.get("email") == "EMAIL_ADDRESS" and pii.get("full_name") == "PERSON", pii
    before = _iceberg_snapshots(uri)
    assert len(before) >= 3 and _raw_hits(folder)  # the control: the past holds them

    assert _erase(staff, "iceberg-1") == 0
    table = _iceberg_table(uri)
    assert _rows(table.scan().to_arrow()) == EXPECTED
    snapshots = _iceberg_snapshots(uri)
    assert all(rows is not None and _subjects_in(rows) == 0 for rows in snapshots.values())
    assert not set(before) & set(snapshots)  # every snapshot of the past expired
    assert _raw_hits(folder) == {}
    files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    got = duckdb.connect().execute("SELECT patient_id, email, full_name, site, visits FROM "
                                   "read_parquet(?)", [files]).fetchall()
    assert sorted(got) == EXPECTED
    report = _report(staff, "iceberg-1")
    assert report["status"] == "complete", report["summary"]
    assert next(p for p in report["physical"] if p["format"] == "iceberg")["status"] == \
        "verified"


def test_a_killed_iceberg_erasure_is_resumed(warehouse: tuple[str, Path, Staff]) -> None:
    """The same chain of kills on Iceberg: before the table commit, after it, inside the
    purge (snapshots expired, their files not deleted yet)."""
    uri, folder, staff = warehouse
    current = _iceberg_table(uri).current_snapshot().snapshot_id
    assert _erase(staff, "iceberg-kill", fault="after-check") != 0
    table = _iceberg_table(uri)
    assert table.current_snapshot().snapshot_id == current  # the old snapshot is current
    assert _subjects_in(_rows(table.scan().to_arrow())) == 2

    for point in ("after-table-commit", "physical-iceberg"):
        done = staff.cli("operator", "resume", "iceberg-kill", env={"OPTOUT_FAULT": point})
        assert done.returncode != 0
        assert _rows(_iceberg_table(uri).scan().to_arrow()) == EXPECTED
        assert _raw_hits(folder)  # old data files still there

    done = staff.cli("operator", "resume", "iceberg-kill")
    assert done.returncode == 0, done.stderr
    table = _iceberg_table(uri)
    assert _rows(table.scan().to_arrow()) == EXPECTED
    assert _raw_hits(folder) == {}
    assert not [f for f in os.listdir(folder.parent) if "optout-staged" in f]
    tagged = {s.summary.get("optout.request") for s in table.snapshots()}
    assert tagged == {"iceberg-kill"}  # one overwrite, its snapshots the only ones left
    assert _report(staff, "iceberg-kill")["status"] == "complete"


def test_history_kept_by_policy_is_named_and_purged_when_its_retention_ends(
        tmp_path: Path) -> None:
    """Under `table_history: retain` the versions before the erasure stay readable: the report
    names each with the day the table's own retention ends. Two tables hold the subject: one
    with Delta's default retention (30 days of log), one whose retention is 0 days. The ledger
    sweep purges the second (its day has come) and leaves the first."""
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    _delta(lake / "patients")
    _delta(lake / "referrals")
    DeltaTable(lake / "referrals").alter.set_table_properties({
        "delta.logRetentionDuration": "interval 0 days",
        "delta.deletedFileRetentionDuration": "interval 0 days"})
    staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
    assert staff.cli("admin", "scan", str(lake)).returncode == 0
    policy = tmp_path / "gdpr-history.yaml"
    policy.write_text((Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
                       ).read_text().replace("name: gdpr-erasure", "name: gdpr-history")
                      + "table_history: retain\n")
    assert staff.cli("admin", "policy", "add", str(policy)).returncode == 0
    plan = tmp_path / "history.json"
    done = staff.cli("requester", "plan", *[a for s in SUBJECTS for a in ("--subject",
                                                                          f"email={s}")],
                     "--policy", "gdpr-history", "--request-id", "history-1", "-o", str(plan))
    assert done.returncode == 0, done.stderr
    assert staff.cli("approver", "approve", str(plan)).returncode == 0
    done = staff.cli("operator", "apply", str(plan), "--yes")
    assert done.returncode == 0, done.stderr

    def past(name: str) -> int:
        """The subjects' rows in the latest version before the erasure that still reads."""
        return max(_subjects_in(rows) for rows in _delta_versions(lake / name).values()
                   if rows is not None)

    for name in ("patients", "referrals"):
        assert _rows(DeltaTable(lake / name).to_pyarrow_table()) == EXPECTED
        assert past(name) == 2  # the past is kept
    report = _report(staff, "history-1")
    assert report["status"] == "complete_with_review", report["summary"]
    stores = {Path(p["store"]).name: p for p in report["physical"] if p["format"] == "delta"}
    assert {n: p["status"] for n, p in stores.items()} == {"patients": "retained",
                                                          "referrals": "retained"}
    today = dt.datetime.now(dt.UTC).date()
    month = str(today + dt.timedelta(days=30))
    kept = [o for o in stores["patients"]["outside_reach"] if "still holds the subject" in o]
    assert kept and all(f"until {month} (delta.deletedFileRetentionDuration" in o for o in kept)
    assert any(f"until {today}" in o for o in stores["referrals"]["outside_reach"])

    done = staff.cli("admin", "ledger", "sweep", "--policy", "gdpr-erasure")
    assert done.returncode == 0, done.stderr
    assert "referrals kept by policy has reached the end of its retention and was purged: " \
           "verified" in done.stdout, done.stdout
    assert "patients" not in done.stdout
    assert all(rows is None or _subjects_in(rows) == 0
               for rows in _delta_versions(lake / "referrals").values())
    assert _raw_hits(lake / "referrals") == {}
    assert past("patients") == 2
    stores = {Path(p["store"]).name: p["status"] for p in _report(staff, "history-1")["physical"]
              if p["format"] == "delta"}
    assert stores == {"patients": "retained", "referrals": "verified"}


@pytest.mark.world
def test_a_chinook_customer_leaves_a_delta_table_of_the_real_world(tmp_path: Path) -> None:
    """Data nobody here wrote: Chinook's `Customer` table (59 customers, as shipped) kept as a
    Delta table. The truth is the schema's meaning: a row is a customer, `Email` their
    address; erasing customer 5 by email leaves the other 58 rows as they were, and neither a
    readable version nor a raw byte of the folder holds her email."""
    import sqlite3

    from deltalake import DeltaTable, WriterProperties, write_deltalake
    from world_db import copy_sqlite

    db = copy_sqlite("chinook_sqlite", tmp_path)
    with sqlite3.connect(db) as con:
        cur = con.execute("SELECT * FROM Customer ORDER BY CustomerId")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])
    folder = tmp_path / "lake" / "customer"
    write_deltalake(folder, table, writer_properties=WriterProperties(compression="UNCOMPRESSED"))
    email = next(r[names.index("Email")] for r in rows if r[0] == 5)
    assert (folder.rglob("*.parquet").__next__()).read_bytes().count(email.encode())  # control
    staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
    assert staff.cli("admin", "scan", str(tmp_path / "lake")).returncode == 0
    plan = tmp_path / "chinook.json"
    done = staff.cli("requester", "plan", "--subject", f"email={email}", "--policy",
                     "gdpr-erasure", "--request-id", "chinook-5", "-o", str(plan))
    assert done.returncode == 0, done.stderr
    assert staff.cli("approver", "approve", str(plan)).returncode == 0
    done = staff.cli("operator", "apply", str(plan), "--yes")
    assert done.returncode == 0, done.stderr

    after = sorted(tuple(r.values()) for r in DeltaTable(folder).to_pyarrow_table().to_pylist())
    assert after == sorted(r for r in rows if r[0] != 5)
    for version in range(DeltaTable(folder).version() + 1):
        try:
            old = DeltaTable(folder, version=version).to_pyarrow_table()
        except Exception:  # purged: not readable
            continue
        assert email not in old.column("Email").to_pylist()
    assert not [p for p in folder.rglob("*") if p.is_file()
                and email.encode() in p.read_bytes()]
