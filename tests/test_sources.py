"""Every source kind against real files and the real PostgreSQL: listing, sampling, errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.connectors import open_source
from optout.model.errors import DatasetUnreadable, SourceUnavailable, UnknownSource


def sample_of(spec: str, rows: int = 1000, seed: int = 42, name: str | None = None):
    with open_source(spec) as source:
        refs = list(source.datasets())
        ref = refs[0] if name is None else next(r for r in refs if r.name == name)
        return ref, source.sample(ref, rows, seed)


def test_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    pq.write_table(
        pa.table({"id": list(range(5000)), "email": [f"u{i}@example.com" for i in range(5000)]}),
        path,
        row_group_size=1000,
    )
    ref, sample = sample_of(str(path), rows=200)
    assert (ref.name, ref.kind, ref.format) == ("people", "file", "parquet")
    assert sample.row_count == 5000
    assert 150 <= sample.table.num_rows <= 200
    assert sample.table.column_names == ["id", "email"]


def test_parquet_hive_folder_is_one_dataset(company_dir: Path) -> None:
    with open_source(str(company_dir / "company" / "sales" / "orders")) as source:
        refs = list(source.datasets())
        assert [(r.name, r.kind) for r in refs] == [("orders", "folder")]
        sample = source.sample(refs[0], 1000, 1)
    assert sample.row_count == 1500
    assert {"year", "month", "customer_id"} <= set(sample.table.column_names)


def test_parquet_folder_of_parts_with_one_schema(tmp_path: Path) -> None:
    root = tmp_path / "root"
    parts = root / "events"
    parts.mkdir(parents=True)
    for i in range(3):
        pq.write_table(pa.table({"ip": [f"203.0.113.{i}"] * 10}), parts / f"part-{i}.parquet")
    with open_source(str(root)) as source:
        refs = list(source.datasets())
        assert [(r.name, r.kind) for r in refs] == [("events", "folder")]
        assert source.sample(refs[0], 100, 1).row_count == 30


def test_csv_sniffs_delimiter_and_header(company_dir: Path) -> None:
    ref, sample = sample_of(str(company_dir / "company" / "marketing" / "leads_de.csv"))
    assert ref.option("delimiter") == ";"
    assert ref.option("header") is True
    assert sample.table.column_names[:3] == ["Vorname", "Nachname", "E-Mail"]
    assert sample.row_count == 300


def test_tsv(company_dir: Path) -> None:
    ref, sample = sample_of(str(company_dir / "company" / "catalog" / "products.tsv"))
    assert ref.option("delimiter") == "\t"
    assert "product_name" in sample.table.column_names


def test_json_lines_nested_fields_are_dotted(company_dir: Path) -> None:
    _, sample = sample_of(str(company_dir / "company" / "support" / "tickets.jsonl"))
    assert {"customer.id", "customer.email", "body"} <= set(sample.table.column_names)


def test_json_array(company_dir: Path) -> None:
    _, sample = sample_of(str(company_dir / "company" / "ci" / "builds.json"))
    assert sample.row_count == 200
    assert {"runner.os", "runner.cores", "version"} <= set(sample.table.column_names)


def test_log_file_is_one_free_text_column(company_dir: Path) -> None:
    _, sample = sample_of(str(company_dir / "company" / "logs" / "app.log"), rows=100)
    assert sample.table.column_names == ["line"]
    assert sample.row_count == 1500
    assert sample.table.num_rows == 100
    assert sample.free_text == {"line"}


def test_duckdb_file_lists_tables_and_views_in_every_schema(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA mart")
    con.execute(
        "CREATE TABLE mart.users AS SELECT range AS id, 'u' || range || '@x.org' AS email FROM range(3000)"
    )
    con.execute("CREATE TABLE facts AS SELECT range AS n FROM range(10)")
    con.execute("CREATE VIEW mart.emails AS SELECT email FROM mart.users")
    con.close()
    with open_source(str(path)) as source:
        refs = {r.name: r for r in source.datasets()}
        assert set(refs) == {"facts", "mart.users", "mart.emails"}
        assert refs["mart.emails"].kind == "view"
        users = source.sample(refs["mart.users"], 500, 7)
        view = source.sample(refs["mart.emails"], 500, 7)
    assert users.row_count == 3000 and users.table.num_rows <= 500
    assert view.row_count == 3000 and view.table.num_rows == 500


def test_sqlite_tables_and_views(company_dir: Path) -> None:
    path = str(company_dir / "company" / "hr" / "hr.sqlite")
    with open_source(path) as source:
        refs = {r.name: r for r in source.datasets()}
        assert set(refs) == {"employees", "payroll", "it_staff"}
        assert refs["it_staff"].kind == "view"
        emp = source.sample(refs["employees"], 50, 3)
    assert emp.row_count == 120
    assert 40 <= emp.table.num_rows <= 50
    assert emp.declared_types["ssn"] == "TEXT"


def test_postgres_tables_and_views_in_non_system_schemas(pg_uri: str) -> None:
    with psycopg.connect(pg_uri, autocommit=True) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute(
            "CREATE TABLE crm.customers (id int PRIMARY KEY, email text, phone text, created timestamptz DEFAULT now())"
        )
        con.execute(
            "INSERT INTO crm.customers (id, email, phone) SELECT i, 'user' || i || '@example.com', '+1 415-555-' || lpad(i::text, 4, '0') FROM generate_series(1, 5000) i"
        )
        con.execute("CREATE TABLE public.notes (body text)")
        con.execute("CREATE VIEW crm.recent AS SELECT id, email FROM crm.customers WHERE id > 4000")
        con.execute(
            "CREATE MATERIALIZED VIEW crm.counts AS SELECT count(*) AS n FROM crm.customers"
        )
    with open_source(pg_uri) as source:
        refs = {r.name: r for r in source.datasets()}
        assert set(refs) == {"crm.customers", "crm.recent", "crm.counts", "notes"}
        first = source.sample(refs["crm.customers"], 300, 11)
        again = source.sample(refs["crm.customers"], 300, 11)
        view = source.sample(refs["crm.recent"], 300, 11)
        empty = source.sample(refs["notes"], 300, 11)
    assert first.row_count == 5000
    assert 0 < first.table.num_rows <= 300
    assert first.table.to_pylist() == again.table.to_pylist()
    assert first.declared_types["created"] == "timestamp with time zone"
    assert view.row_count == 1000 and 0 < view.table.num_rows <= 300
    assert empty.row_count == 0 and empty.table.num_rows == 0


def test_a_large_postgres_table_fingerprints_alike_listed_or_not(
        pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above EXACT_COUNT_LIMIT rows (here lowered to 10) a table is fingerprinted by its file
    and statistics. The scan's source lists the tables; apply's check opens a source for one
    dataset, which lists none: both must give the same fingerprint, or every plan of a large
    table is refused as stale. (Control: an insert changes it.)"""
    from optout.connectors.postgres import source as pg

    monkeypatch.setattr(pg, "EXACT_COUNT_LIMIT", 10)
    with psycopg.connect(pg_uri, autocommit=True) as con:
        con.execute("CREATE TABLE big AS SELECT i AS id FROM generate_series(1, 100) i")
        con.execute("ANALYZE big")
    with open_source(pg_uri) as source:
        ref = next(r for r in source.datasets() if r.name == "big")
        listed = source.fingerprint(ref)
    with open_source(pg_uri) as source:
        assert source.fingerprint(ref) == listed
    with psycopg.connect(pg_uri, autocommit=True) as con:
        con.execute("VACUUM FULL big")  # a new relfilenode: a rewritten table
    with open_source(pg_uri) as source:
        assert source.fingerprint(ref) != listed


@pytest.mark.parametrize(
    "spec",
    ["postgresql://postgres@127.0.0.1:1/test", "postgresql://nobody@127.0.0.1:5432/no_such_db"],
)
def test_unreachable_database_is_one_line(spec: str) -> None:
    with pytest.raises(SourceUnavailable) as err:
        open_source(spec)
    message = str(err.value)
    assert message.startswith("cannot connect to postgresql://")
    assert "\n" not in message


def test_uri_password_never_shown() -> None:
    with pytest.raises(SourceUnavailable) as err:
        open_source("postgresql://postgres:s3cret@127.0.0.1:1/test")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


def test_unknown_scheme_suggests() -> None:
    with pytest.raises(UnknownSource, match=r"Did you mean postgresql://\?"):
        open_source("postgresq://x@127.0.0.1/db")


def test_missing_path_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no such file or directory"):
        open_source(str(tmp_path / "nope.parquet"))
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(UnknownSource, match=r"no reader for '\.xlsx' files"):
        open_source(str(tmp_path / "sheet.xlsx"))


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("broken.parquet", b"PAR1 this is not parquet", DatasetUnreadable),
        ("broken.jsonl", b'{"a": 1}\n{"a": \n', DatasetUnreadable),
        ("broken.json", b'[{"a": 1}, {"a": ', DatasetUnreadable),
        ("binary.csv", bytes(range(256)) * 40, DatasetUnreadable),
        ("broken.sqlite", b"definitely not sqlite", SourceUnavailable),
        ("broken.duckdb", b"definitely not duckdb" * 100, SourceUnavailable),
    ],
)
def test_corrupt_files_raise_one_line_errors(
    tmp_path: Path, name: str, content: bytes, error: type[Exception]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as err, open_source(str(path)) as source:
        for ref in source.datasets():
            source.sample(ref, 100, 1)
    assert "\n" not in str(err.value) and str(err.value)


def test_sampling_is_seeded_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"n": list(range(200_000))}), path, row_group_size=20_000)
    _, a = sample_of(str(path), rows=500, seed=1)
    _, b = sample_of(str(path), rows=500, seed=1)
    _, c = sample_of(str(path), rows=500, seed=2)
    assert a.table.equals(b.table)
    assert not a.table.equals(c.table)
    assert a.table.num_rows <= 500
    values = a.table.column("n").to_pylist()
    assert max(values) - min(values) > 100_000  # spread over the file, not its head


@pytest.mark.parametrize("kind", ["csv", "jsonl", "log", "sqlite"])
def test_streamed_and_sqlite_sampling_repeat(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite":
        path = tmp_path / "t.sqlite"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t (n INTEGER)")
        con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20_000)])
        con.commit()
        con.close()
    else:
        path = tmp_path / f"t.{kind}"
        lines = {
            "csv": ["n"] + [str(i) for i in range(20_000)],
            "jsonl": [json.dumps({"n": i}) for i in range(20_000)],
            "log": [f"line {i}" for i in range(20_000)],
        }[kind]
        path.write_text("\n".join(lines) + "\n")
    _, a = sample_of(str(path), rows=300, seed=5)
    _, b = sample_of(str(path), rows=300, seed=5)
    assert a.row_count == 20_000
    assert a.table.num_rows == 300 if kind != "sqlite" else 250 <= a.table.num_rows <= 300
    assert a.table.to_pylist() == b.table.to_pylist()


def test_directory_reports_a_corrupt_file_and_reads_the_rest(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text("email\na@example.com\n")
    (tmp_path / "bad.sqlite").write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("ignored: not a data file")
    with open_source(str(tmp_path)) as source:
        refs = {r.name: r for r in source.datasets()}
        assert set(refs) == {"good", "bad.sqlite"}
        assert source.sample(refs["good"], 10, 1).row_count == 1
        with pytest.raises(SourceUnavailable, match="not a SQLite database"):
            source.sample(refs["bad.sqlite"], 10, 1)
