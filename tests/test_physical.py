"""Physical erasure, checked as a forensic examiner would: after `optout apply` (through the
command line, as the deployment's staff), the raw bytes of the DuckDB file, the SQLite file and
its side files, and the PostgreSQL heap, TOAST and index files of the touched tables (read from
the data directory after a CHECKPOINT: the tests run as root beside the server) hold none of
the subject's identifiers. The control applies the same plan under a policy with
`physical: off`: every one of these checks then finds the bytes, so none can pass vacuously.
A process killed inside each physical step is resumed to a verified state.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from conftest import throwaway_database
from staff import Staff

from optout.scanner.catalog import Catalog

pytestmark = pytest.mark.postgres
POLICIES = Path(__file__).resolve().parent.parent / "policies"
SUBJECTS = ["maria.lopez.phys@example.org", "kwame.osei.phys@example.org",
            "ines.duarte.phys@example.org"]
#: person id → email (the subjects are 7, 13 and 21)
PEOPLE = {i: SUBJECTS[[7, 13, 21].index(i)] if i in (7, 13, 21) else f"p{i}.q@example.net"
          for i in range(1, 41)}


def _bio(i: int) -> str:
    """A long text (kept out of line, uncompressed, in the TOAST table) naming the person."""
    rng = random.Random(i)
    return PEOPLE[i] + " " + "".join(rng.choice(string.ascii_letters) for _ in range(3000))


class Estate:
    """A subject's data in PostgreSQL (a table and its child), DuckDB and SQLite."""

    def __init__(self, root: Path, pg: str) -> None:
        self.root, self.pg = root, pg
        self.duck = str(root / "analytics.duckdb")
        self.lite = str(root / "contacts.sqlite")
        with psycopg.connect(pg, autocommit=True) as con:
            con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, "
                        "name TEXT, bio TEXT)")
            con.execute("ALTER TABLE people ALTER COLUMN bio SET STORAGE EXTERNAL")
            con.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, person_id INTEGER "
                        "REFERENCES people(id), email TEXT, note TEXT)")
            with con.cursor() as cur:
                cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s)",
                                [(i, e, f"Person {i}", _bio(i)) for i, e in PEOPLE.items()])
                cur.executemany("INSERT INTO visits VALUES (%s, %s, %s, %s)",
                                [(100 + i, i, e, f"visit of {e}") for i, e in PEOPLE.items()])
        con = duckdb.connect(self.duck)
        con.execute("CREATE SEQUENCE cust_seq START 1")
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY DEFAULT nextval('cust_seq'),"
                    " email TEXT NOT NULL, name TEXT)")
        for i, e in PEOPLE.items():
            con.execute("INSERT INTO customers (email, name) VALUES (?, ?)", [e, f"Person {i}"])
        con.execute("CREATE VIEW customer_domains AS SELECT id, split_part(email, '@', 2) AS "
                    "domain FROM customers")
        con.execute("CREATE MACRO shout(s) AS upper(s)")
        con.close()
        lite = sqlite3.connect(self.lite)
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)")
        lite.executemany("INSERT INTO contacts VALUES (?, ?, ?)",
                         [(i, e, f"+1 555 01{i:02d}") for i, e in PEOPLE.items()])
        lite.commit()
        lite.close()

    # -- what an examiner reads ---------------------------------------------------------------

    def pg_files(self) -> list[str]:
        """Heap, TOAST and index files of both tables, after a CHECKPOINT."""
        with psycopg.connect(self.pg, autocommit=True) as con:
            con.execute("CHECKPOINT")
            data = con.execute("SHOW data_directory").fetchone()[0]
            rels = con.execute(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.oid IN ("
                "SELECT oid FROM pg_class WHERE relname IN ('people', 'visits') UNION "
                "SELECT reltoastrelid FROM pg_class WHERE relname IN ('people', 'visits') UNION "
                "SELECT indexrelid FROM pg_index WHERE indrelid IN "
                "('people'::regclass, 'visits'::regclass))").fetchall()
        files = [os.path.join(data, r[0]) for r in rels if r[0]]
        assert len(files) >= 6, files  # two heaps, a TOAST table and its index, pkeys, unique
        return files

    def raw(self, subject: str) -> dict[str, int]:
        """Occurrences of the subject's email in each store's raw bytes."""
        needle = subject.encode()

        def count(paths: list[str]) -> int:
            return sum(Path(p).read_bytes().count(needle) for p in paths if os.path.exists(p))

        return {"postgresql": count(self.pg_files()),
                "duckdb": count([self.duck, self.duck + ".wal"]),
                "sqlite": count([self.lite, self.lite + "-wal", self.lite + "-journal"])}

    def rows(self) -> dict[str, list[tuple]]:
        with psycopg.connect(self.pg) as con:
            pg = con.execute("SELECT p.id, p.email, p.name, md5(p.bio), v.id, v.note FROM "
                             "people p JOIN visits v ON v.person_id = p.id ORDER BY p.id"
                             ).fetchall()
        con = duckdb.connect(self.duck, read_only=True)
        duck = con.execute("SELECT * FROM customers ORDER BY id").fetchall()
        con.close()
        lite = sqlite3.connect(self.lite)
        contacts = lite.execute("SELECT * FROM contacts ORDER BY id").fetchall()
        lite.close()
        return {"postgresql": pg, "duckdb": duck, "sqlite": contacts}


def _without(rows: dict[str, list[tuple]], subject: str) -> dict[str, list[tuple]]:
    return {k: [r for r in v if subject not in r] for k, v in rows.items()}


@pytest.fixture()
def estate(tmp_path: Path) -> Iterator[tuple[Estate, Staff]]:
    for pg in throwaway_database():
        estate = Estate(tmp_path, pg)
        staff = Staff(Catalog(str(tmp_path / "catalog.duckdb")))
        done = staff.cli("admin", "scan", estate.duck, estate.lite, pg)
        assert done.returncode == 0, done.stderr
        # an application keeps the SQLite database open (so closing optout's connection
        # does not fold the write-ahead log into the file for it)
        holder = sqlite3.connect(estate.lite)
        holder.execute("SELECT count(*) FROM contacts").fetchall()
        yield estate, staff
        holder.close()


def _erase(staff: Staff, subject: str, rid: str, policy: str = "gdpr-erasure",
           fault: str | None = None) -> int:
    plan = Path(staff.catalog.path).parent / f"{rid}.json"
    done = staff.cli("requester", "plan", "--subject", f"email={subject}", "--policy", policy,
                     "--request-id", rid, "-o", str(plan))
    assert done.returncode == 0, done.stderr
    assert staff.cli("approver", "approve", str(plan)).returncode == 0
    done = staff.cli("operator", "apply", str(plan), "--yes",
                     env={"OPTOUT_FAULT": fault} if fault else None)
    return done.returncode


def _add_policy(staff: Staff, folder: Path, name: str, extra: str) -> None:
    """The bundled GDPR policy under another name with one more line, in the policy store."""
    path = folder / f"{name}.yaml"
    path.write_text((POLICIES / "gdpr-erasure.yaml").read_text().replace(
        "name: gdpr-erasure", f"name: {name}") + extra + "\n")
    assert staff.cli("admin", "policy", "add", str(path)).returncode == 0


def _report(staff: Staff, rid: str) -> dict:
    out = Path(staff.catalog.path).parent / f"{rid}.report.json"
    done = staff.cli("admin", "report", rid, "--format", "json", "-o", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_no_byte_of_the_subject_survives(estate: tuple[Estate, Staff]) -> None:
    estate, staff = estate
    subject = SUBJECTS[0]
    before = estate.rows()
    assert all(n > 0 for n in estate.raw(subject).values()), estate.raw(subject)

    assert _erase(staff, subject, "phys-1") == 0
    assert estate.raw(subject) == {"postgresql": 0, "duckdb": 0, "sqlite": 0}
    assert estate.rows() == _without(before, subject)  # everyone else's rows, byte for byte
    report = _report(staff, "phys-1")
    assert report["status"] == "complete"
    statuses = {p["format"]: p["status"] for p in report["physical"]
                if p["store"] != "optout catalog"}
    assert statuses == {"postgresql": "verified", "duckdb": "verified", "sqlite": "verified"}
    pg = next(p for p in report["physical"] if p["format"] == "postgresql")
    assert any("VACUUM FULL" in d for d in pg["rewritten"]) and len(pg["read"]) >= 6
    assert any("write-ahead log" in o and "archive_mode=" in o for o in pg["outside_reach"])
    assert report["summary"].endswith("; physically: 3 stores read raw: clean")

    # the rewritten DuckDB file keeps its view, macro and sequence (at its current value)
    con = duckdb.connect(estate.duck)
    assert con.execute("SELECT count(*) FROM customer_domains").fetchone()[0] == 39
    assert con.execute("SELECT shout('x')").fetchone()[0] == "X"
    assert con.execute("SELECT nextval('cust_seq')").fetchone()[0] == 41
    con.close()
    text = Path(staff.catalog.path).read_bytes()
    assert subject.encode() not in text  # optout's own catalog never held it


def test_control_physical_off_leaves_the_bytes(estate: tuple[Estate, Staff],
                                               tmp_path: Path) -> None:
    """The same erasure with physical erasure off: logically gone, and every raw check finds
    the bytes (so the checks above can fail)."""
    estate, staff = estate
    subject = SUBJECTS[0]
    _add_policy(staff, tmp_path, "gdpr-logical", "physical: \"off\"")
    before = estate.rows()

    assert _erase(staff, subject, "phys-off", policy="gdpr-logical") == 0
    assert estate.rows() == _without(before, subject)
    left = estate.raw(subject)
    assert all(n > 0 for n in left.values()), left
    report = _report(staff, "phys-off")
    assert report["status"] == "complete_with_review"
    assert "physical erasure off by policy" in report["summary"]


def test_a_killed_physical_step_is_resumed(estate: tuple[Estate, Staff]) -> None:
    """Killed before the physical step, then (resumed) inside each store's: every resume
    picks up where the last one died, and the last ends verified."""
    estate, staff = estate
    subject = SUBJECTS[1]
    before = estate.rows()
    assert _erase(staff, subject, "phys-kill", fault="before-physical") != 0
    assert estate.rows() == _without(before, subject)  # committed: logically gone already
    for point in ("physical-sqlite", "physical-duckdb", "physical-postgres"):  # run order
        done = staff.cli("operator", "resume", "phys-kill", env={"OPTOUT_FAULT": point})
        assert done.returncode != 0, (point, done.stdout, done.stderr)
        assert estate.rows() == _without(before, subject)
    done = staff.cli("operator", "resume", "phys-kill")
    assert done.returncode == 0, done.stderr
    assert estate.raw(subject) == {"postgresql": 0, "duckdb": 0, "sqlite": 0}
    report = _report(staff, "phys-kill")
    assert report["status"] == "complete"
    assert {p["status"] for p in report["physical"]} == {"verified"}
    # nothing the killed rewrite staged is left beside the DuckDB file
    assert sorted(os.listdir(estate.root)).count("analytics.duckdb") == 1
    assert not [f for f in os.listdir(estate.root) if "optout-staged" in f]


@pytest.mark.parametrize("scrubbed", [True, False])
def test_sqlite_scrub_on_a_build_without_secure_delete(tmp_path: Path, scrubbed: bool) -> None:
    """apsw bundles its own SQLite, built (like most) with secure_delete off by default: a
    deleted row stays in the file's free space. `scrub` (what optout runs after the erasure
    commits) removes it there too; the control without it finds the bytes."""
    import apsw

    from optout.connectors.sqlite.physical import scrub

    path = str(tmp_path / "apsw.sqlite")
    con = apsw.Connection(path)
    assert con.execute("PRAGMA secure_delete").fetchall() == [(0,)]
    con.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT)")
    with con:
        for i, e in PEOPLE.items():
            con.execute("INSERT INTO contacts VALUES (?, ?)", (i, e))
    con.execute("DELETE FROM contacts WHERE id = 7")
    if scrubbed:
        scrub(con)
    con.close()
    left = Path(path).read_bytes().count(SUBJECTS[0].encode())
    assert (left == 0) if scrubbed else (left > 0)
    rows = sqlite3.connect(path).execute("SELECT count(*) FROM contacts").fetchone()[0]
    assert rows == 39


def test_lock_friendly_tables_are_vacuumed_in_place_and_said_so(
        estate: tuple[Estate, Staff], tmp_path: Path) -> None:
    """A policy that lists a table as lock-friendly gets a plain VACUUM (no exclusive lock):
    the report says its freed space may hold the bytes and does not claim it was read clean;
    the other table is still rewritten and read."""
    estate, staff = estate
    subject = SUBJECTS[2]
    _add_policy(staff, tmp_path, "gdpr-online", "lock_friendly: [visits]")
    assert _erase(staff, subject, "phys-online", policy="gdpr-online") == 0
    report = _report(staff, "phys-online")
    assert report["status"] == "complete"
    pg = next(p for p in report["physical"] if p["format"] == "postgresql")
    assert pg["status"] == "verified"
    assert any(d.startswith("public.visits: VACUUM (lock-friendly") for d in pg["rewritten"])
    assert any(d.startswith("public.people: rewritten by VACUUM FULL") for d in pg["rewritten"])
    assert [u.split(":")[0] for u in pg["not_reachable"]] == ["public.visits"]
    with psycopg.connect(estate.pg) as con:
        visits = con.execute("SELECT pg_relation_filepath('visits')").fetchone()[0]
        people = con.execute("SELECT pg_relation_filepath('people')").fetchone()[0]
    read = [r["file"] for r in pg["read"]]
    assert any(f.endswith(people) for f in read) and not any(f.endswith(visits) for f in read)
    assert all(r["hits"] == 0 for r in pg["read"])


def test_an_older_snapshot_elsewhere_is_waited_for_and_named(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """Another session whose snapshot predates the erasure still sees the deleted rows, so
    VACUUM FULL copies them into the new heap. The store waits for such sessions (bounded) and
    names them when they outlast the wait; once they are gone, the rewrite is clean."""
    from optout.connectors.physical import PhysicalSettings
    from optout.connectors.postgres import physical
    from optout.model.plan import PlanStep

    monkeypatch.setattr(physical, "SNAPSHOT_WAIT_S", 1.0)
    for pg in throwaway_database():
        with psycopg.connect(pg, autocommit=True) as con:
            con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)")
            con.cursor().executemany("INSERT INTO people VALUES (%s, %s)", list(PEOPLE.items()))
        holder = psycopg.connect(pg, application_name="report-job")
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pg_class").fetchone()  # a snapshot, no lock
        with psycopg.connect(pg, autocommit=True) as con:
            con.execute("DELETE FROM people WHERE id = 7")
        step = PlanStep(dataset_id="d", dataset="people", location=pg, format="postgresql",
                        kind="table", action="delete_rows", rule="r", rows=1,
                        options=(("schema", "public"), ("table", "people")))
        store = physical.PostgresStore(pg, [step], "rid", PhysicalSettings())

        def left(store: physical.PostgresStore) -> int:
            return sum(Path(f).read_bytes().count(SUBJECTS[0].encode())
                       for f in store.reach().files)

        done = store.erase()
        assert done[0].startswith("waited 1 s for 1 session(s)") and "'report-job'" in done[0]
        assert left(store) > 0  # the control: the old snapshot kept the row through VACUUM FULL
        assert "report-job" in store.residue_hint()
        holder.rollback()
        holder.close()
        done = store.erase()
        assert not done[0].startswith("waited") and left(store) == 0
        assert store.residue_hint() == ""


def test_numeric_keys_are_not_searched_in_raw_bytes() -> None:
    """A million subjects' ids in a compressed file: random bytes that read `12.345678`
    normalize to one of the ids, a false residue that blocked the request. Keys of numeric
    columns are binary numbers in the store, never text: not searched. The control: the same
    key in a text column is found."""
    from optout.engine.physical import needles_for
    from optout.model.identifiers import normalize
    from optout.model.plan import PlanStep
    from optout.model.secret import KeyedHash

    hasher = KeyedHash(b"k" * 32)
    noise = b"\x00\x17zq\x9912.345678\x03\xff"
    step = PlanStep("d1", "orders", "/x/orders.parquet", "parquet", "file", "delete_rows", "r",
                    1, keys=(("customer_id", "code", (hasher(normalize("code", "12345678")),)),))
    assert needles_for(hasher, [step]).count(noise) == 1  # text: searched, found
    numeric = needles_for(hasher, [step], frozenset({("d1", "customer_id")}))
    assert not numeric and numeric.count(noise) == 0


def test_a_batch_of_erased_values_is_searched_in_one_pass() -> None:
    """A deletion list's raw read: 100,000 erased values (400,000 byte strings with their
    lower-case and UTF-16 forms) looked for in one pass over the bytes, not one pass each
    (which took 12 ms a value per 16 MB: hours for a database file). Truths by hand: where
    values were planted, and the chunk bounds a read counts within; the values of other
    people planted beside them are not counted."""
    from optout.connectors.forensic import Needles
    from optout.model.secret import KeyedHash

    rng = random.Random(7)
    data = bytearray(rng.randbytes(4 << 20))
    planted = {1_000: "Person7@Example.com", 70_000: "person99999@example.com",
               2_000_000: "person7@example.com"}
    for at, value in planted.items():
        data[at:at + len(value)] = value.encode()
    for at, value in planted.items():  # the same value in UTF-16, further on
        data[at + 4096:at + 4096 + 2 * len(value)] = value.encode("utf-16-le")
    data[3_000_000:3_000_023] = b"person100000@example.com"[:23]  # another person's
    needles = Needles(KeyedHash(b"k" * 32))
    for n in range(100_000):
        needles.add_literal(f"person{n}@example.com")
    assert len(needles.literals) == 200_000  # lower case already: UTF-8 and UTF-16 each
    needles.add_literal("Person7@Example.com")  # as a store kept it
    assert needles.count(bytes(data)) == 6
    assert needles.count(bytes(data), skip=1_001, stop=2_000_000) == 3  # 70,000 and UTF-16s
    assert needles.count(bytes(data[:1_010])) == 0  # a value cut at the end is not there


def test_stores_searching_the_same_values_share_one_automaton(tmp_path: Path) -> None:
    """A deletion list's values are searched in every store that held them and in optout's
    own catalog: one automaton for the same values (building one over 200,000 forms takes
    most of a second), another for other values."""
    from optout.engine.physical import Physical
    from optout.engine.policy import load_policy
    from optout.model.plan import ErasurePlan, PlanStep
    from optout.model.secret import KeyedHash

    hasher = KeyedHash(b"k" * 32)

    def step(n: int, dataset: str) -> PlanStep:
        return PlanStep(f"d{n}", dataset, f"/x/{dataset}.parquet", "parquet", "file",
                        "delete_rows", "r", 1, keys=(("email", "email", ("h",)),))

    steps = (step(0, "customers"), step(1, "contacts"), step(2, "leads"))
    plan = ErasurePlan("r1", "", "", {}, "", steps)
    emails = {f"person{n}@example.com" for n in range(3)}
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    with catalog.connect():  # a new, empty catalog
        pass
    physical = Physical(catalog, plan,
                        load_policy(POLICIES / "gdpr-erasure.yaml"),
                        {0: emails, 1: set(emails), 2: {"someone.else@example.com"}})
    customers = physical._needles(hasher, [steps[0]])
    assert customers.literals and customers.count(b"..person1@example.com..") == 1
    assert physical._needles(hasher, [steps[1]]) is customers
    assert physical._needles(hasher, list(steps[:2])) is customers
    leads = physical._needles(hasher, [steps[2]])
    assert leads is not customers and leads.count(b"..person1@example.com..") == 0


def test_a_long_list_of_erased_values_is_searched_by_keyed_hash(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """Past MAX_LITERALS values (an automaton over a million values takes 6.7 s and 2 GB to
    build) the store is read by keyed hash, token by token, as a resumed request reads it:
    the same occurrence is found either way."""
    from optout.engine import physical as module
    from optout.engine.physical import Physical
    from optout.engine.policy import load_policy
    from optout.model.identifiers import normalize
    from optout.model.plan import ErasurePlan, PlanStep
    from optout.model.secret import KeyedHash

    hasher = KeyedHash(b"k" * 32)
    emails = [f"person{n}@example.com" for n in range(3)]
    step = PlanStep("d0", "customers", "/x/customers.parquet", "parquet", "file",
                    "delete_rows", "r", 3, keys=(("email", "email", tuple(
                        hasher(normalize("email", e)) for e in emails)),))
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    with catalog.connect():  # a new, empty catalog
        pass
    physical = Physical(catalog, ErasurePlan("r1", "", "", {}, "", (step,)),
                        load_policy(POLICIES / "gdpr-erasure.yaml"), {0: set(emails)})
    data = b"..\x00person1@example.com\x00.."
    literal = physical._needles(hasher, [step])
    assert literal.literals and not literal.hashes and literal.count(data) == 1
    monkeypatch.setattr(module, "MAX_LITERALS", 2)
    hashed = Physical(catalog, physical.plan, load_policy(POLICIES / "gdpr-erasure.yaml"),
                      {0: set(emails)})._needles(hasher, [step])
    assert not hashed.literals and hashed.hashes["email"] and hashed.count(data) == 1


def test_a_database_step_that_keeps_a_text_key_does_not_search_for_it(tmp_path: Path) -> None:
    """A step that hashes a member's email and keeps her member code (a text key the plan
    matched her by) leaves the code in the database on purpose: the raw read must not look
    for it, or it finds it and blocks the request (a false residue). Truths by hand: her
    email is what the step takes out; her code and the other members' values are not."""
    from optout.connectors.duckdb.target import DuckDBTableTarget
    from optout.model.identifiers import normalize
    from optout.model.plan import PlanStep
    from optout.model.secret import KeyedHash

    path = str(tmp_path / "members.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE members (code TEXT, email TEXT)")
    con.execute("INSERT INTO members VALUES ('M-0007-XY', 'ana.member@example.org'), "
                "('M-0008-ZZ', 'other.member@example.org')")
    con.close()
    hasher = KeyedHash(b"k" * 32)
    step = PlanStep("d1", "members", path, "duckdb", "table", "hash", "r", 1,
                    keys=(("email", "email", (hasher(normalize("email",
                                                               "ana.member@example.org")),)),
                          ("code", "code", (hasher(normalize("code", "M-0007-XY")),))),
                    columns=(("email", "hash"),),
                    options=(("schema", "main"), ("table", "members")))
    target = DuckDBTableTarget(step, hasher)
    staged = target.prepare()
    assert staged.rows_changed == 1
    target.rollback(staged)
    assert target.erased_values == {"ana.member@example.org"}
