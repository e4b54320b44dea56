"""The conformance suite: every registered connector passes the same checks, through the
library's front door (a Session on an embedded catalog). A dataset of 20 people is written in
the connector's format; the scan must flag its email column, the plan must locate the
subject's row, a dry run and a killed apply must leave every row as it was, and the apply
(resumed after the kill) must remove the subject's email and nothing else of anyone.

A connector added to the registry without a writer here fails `test_every_connector_is_tested`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import throwaway_database

from optout.connectors import capabilities, connectors
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.session import Session

SUBJECT = "ana.silva7@example.org"
PEOPLE = [(i, f"Person {i}", SUBJECT if i == 7 else f"p{i}.x@example.net") for i in range(20)]
Rows = list[tuple]


def _parquet(root: Path) -> str:
    path = root / "people.parquet"
    pq.write_table(pa.table({"id": [p[0] for p in PEOPLE], "name": [p[1] for p in PEOPLE],
                             "email": [p[2] for p in PEOPLE]}), path)
    return str(path)


def _csv(root: Path) -> str:
    path = root / "people.csv"
    path.write_text("id,name,email\n" + "".join(f"{i},{n},{e}\n" for i, n, e in PEOPLE))
    return str(path)


def _json(root: Path) -> str:
    path = root / "people.jsonl"
    path.write_text("".join(json.dumps({"id": i, "name": n, "email": e}) + "\n"
                            for i, n, e in PEOPLE))
    return str(path)


def _log(root: Path) -> str:
    path = root / "app.log"
    path.write_text("".join(f"2026-12-01T10:00:{i:02d} INFO login ok for {e} (user {i})\n"
                            for i, _, e in PEOPLE))
    return str(path)


def _duckdb(root: Path) -> str:
    path = root / "people.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", PEOPLE)
    con.close()
    return str(path)


def _sqlite(root: Path) -> str:
    path = root / "people.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", PEOPLE)
    con.commit()
    con.close()
    return str(path)


def _postgres(root: Path, uri: str) -> str:
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        with con.cursor() as cur:
            cur.executemany("INSERT INTO people VALUES (%s, %s, %s)", PEOPLE)
    return uri


def _people() -> pa.Table:
    return pa.table({"id": [p[0] for p in PEOPLE], "name": [p[1] for p in PEOPLE],
                     "email": [p[2] for p in PEOPLE]})


def _delta(root: Path) -> str:
    from deltalake import write_deltalake

    path = root / "people"
    write_deltalake(path, _people())
    return str(path)


def _iceberg(root: Path) -> str:
    from pyiceberg.catalog import load_catalog

    props = {"type": "sql", "uri": f"sqlite:///{root}/iceberg.db",
             "warehouse": f"file://{root}/warehouse"}
    (root / "warehouse").mkdir()
    catalog = load_catalog("crm", **props)
    catalog.create_namespace("crm")
    catalog.create_table("crm.people", schema=_people().schema).append(_people())
    return "iceberg://crm/crm.people?" + "&".join(f"{k}={v}" for k, v in props.items())


def _read_lakehouse(location: str) -> Rows:
    if location.startswith("iceberg://"):
        from optout.connectors.iceberg.tables import open_table

        table = open_table(location).scan().to_arrow()
    else:
        from deltalake import DeltaTable

        table = DeltaTable(location).to_pyarrow_table()
    return sorted((str(r["id"]), r["name"], r["email"]) for r in table.to_pylist())


def _read_files(sql: str) -> Callable[[str], Rows]:
    def read(location: str) -> Rows:
        return [tuple(map(str, r)) for r in
                duckdb.connect().execute(sql.format(path=location)).fetchall()]
    return read


def _read_table(location: str) -> Rows:
    if location.startswith("postgres"):
        with psycopg.connect(location) as con:
            rows = con.execute("SELECT id, name, email FROM people ORDER BY id").fetchall()
    elif location.endswith(".sqlite"):
        con = sqlite3.connect(location)
        rows = con.execute("SELECT id, name, email FROM people ORDER BY id").fetchall()
        con.close()
    else:
        con = duckdb.connect(location, read_only=True)
        rows = con.execute("SELECT id, name, email FROM people ORDER BY id").fetchall()
        con.close()
    return [tuple(map(str, r)) for r in rows]


def _read_log(location: str) -> Rows:
    return [(line,) for line in Path(location).read_text().splitlines()]


#: connector key → (write the people dataset, read its rows back)
FORMATS: dict[str, tuple[Callable[..., str], Callable[[str], Rows]]] = {
    "parquet": (_parquet, _read_files("SELECT id, name, email FROM '{path}' ORDER BY id")),
    "csv": (_csv, _read_files("SELECT id, name, email FROM read_csv('{path}') ORDER BY id")),
    "json": (_json, _read_files("SELECT id, name, email FROM read_json('{path}') ORDER BY id")),
    "log": (_log, _read_log),
    "duckdb": (_duckdb, _read_table),
    "sqlite": (_sqlite, _read_table),
    "postgresql": (_postgres, _read_table),
    "delta": (_delta, _read_lakehouse),
    "iceberg": (_iceberg, _read_lakehouse),
}


def test_every_connector_is_tested() -> None:
    assert set(FORMATS) == {c.key for c in connectors()}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


@pytest.fixture(params=sorted(FORMATS))
def dataset(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(connector key, location) of the people dataset written in that format."""
    key = request.param
    write = FORMATS[key][0]
    if key == "postgresql":
        for uri in throwaway_database():
            yield key, write(tmp_path, uri)
    else:
        yield key, write(tmp_path)


def _apply_in_another_process(catalog: str, plan: Path, fault: str | None) -> int:
    code = ("import sys; from optout.session import Session; from optout.model.plan import "
            "load_plan; Session(sys.argv[1]).apply_plan(load_plan(sys.argv[2]))")
    env = {**os.environ, **({"OPTOUT_FAULT": fault} if fault else {})}
    return subprocess.run([sys.executable, "-c", code, catalog, str(plan)], env=env,
                          capture_output=True, text=True, timeout=600).returncode


def test_connector_conformance(dataset: tuple[str, str], tmp_path: Path,
                               classifier: Classifier) -> None:
    key, location = dataset
    read = FORMATS[key][1]
    before = read(location)
    others = [row for row in before if SUBJECT not in " ".join(row)]
    assert len(before) == 20 and len(others) == 19
    session = Session(Catalog(str(tmp_path / "catalog.duckdb")))

    # scan: the email column (or the log's text) is found to hold email addresses
    done = session.scan([location], classifier=classifier)
    assert done.report.failed == 0
    [record] = [d for d in session.datasets(pii_only=True) if d.format == key]
    assert any((c.pii and c.entity == "EMAIL_ADDRESS") or "EMAIL_ADDRESS" in c.entities
               for c in record.columns), record.columns

    # plan: exactly the subject's one row, located in this dataset
    plan = session.plan([f"email={SUBJECT}"], "gdpr-erasure")
    [step] = [s for s in plan.steps if s.dataset_id == record.id]
    assert step.rows == 1
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())

    # a dry run stages and checks, then rolls back: every row as it was
    session.apply_plan(plan, dry_run=True)
    assert read(location) == before

    # an apply killed after its checks leaves every row as it was ...
    if capabilities(key).stage:
        assert _apply_in_another_process(session.catalog.path, path, "after-check") != 0
        assert read(location) == before
        # ... and the request it left is finished by resume
        session.resume(plan.request_id)
    else:
        session.apply_plan(plan)

    after = read(location)
    assert SUBJECT not in json.dumps(after)
    if key == "log":  # a mention is redacted in place: the line stays, the address goes
        assert len(after) == 20 and [r for r in after if "user 7)" not in r[0]] == others
    else:
        assert after == others
    assert session.report(plan.request_id)["status"] in ("complete", "complete_with_review")


def _pipe_source_class():
    """A format nobody registered: `.people` files, `|`-separated with a header (defined
    here, as a new connector's folder would define it)."""
    from optout.connectors.source import StreamedFileSource
    from optout.model.sql import quote_literal

    class Pipe(StreamedFileSource):
        kind = "pipe"
        format = "pipe"

        def reader(self) -> str:
            return f"read_csv({quote_literal(self.location)}, delim='|', header=true)"

    return Pipe


def test_a_new_format_is_one_folder_and_one_registry_line(tmp_path: Path, classifier,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding a format takes: a package under optout.connectors declaring its
    Connector, and its name in REGISTERED. Scan and plan find and search it with no other
    change (here the package is made in memory; nothing else of optout is touched)."""
    import types

    import optout.connectors as registry
    from optout.connectors.connector import Capabilities, Connector

    package = types.ModuleType("optout.connectors.pipe")
    package.Pipe = _pipe_source_class()
    package.CONNECTOR = Connector(key="pipe", source="optout.connectors.pipe:Pipe",
                                  suffixes=(".people",), capabilities=Capabilities(files=True))
    monkeypatch.setitem(sys.modules, "optout.connectors.pipe", package)
    monkeypatch.setattr(registry, "REGISTERED", (*registry.REGISTERED, "pipe"))
    registry.connectors.cache_clear()
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "members.people").write_text(
            "id|name|email\n" + "".join(f"{i}|{n}|{e}\n" for i, n, e in PEOPLE))
        session = Session(Catalog(str(tmp_path / "catalog.duckdb")))
        assert session.scan([str(data)], classifier=classifier).report.failed == 0
        [record] = session.datasets(pii_only=True)
        assert (record.format, record.name) == ("pipe", "members")
        assert {c.name: c.entity for c in record.columns if c.pii}["email"] == "EMAIL_ADDRESS"
        plan = session.plan([f"email={SUBJECT}"], "gdpr-erasure")
        # found and counted in place; with no target declared, the plan says it cannot apply
        [step] = plan.steps
        assert (step.dataset, step.rows) == ("members", 1)
        assert plan.unexecutable and "no target" in plan.unexecutable[0].reason
    finally:
        registry.connectors.cache_clear()
