"""A small warehouse as a new user has one (issue 12): customers and orders, tickets, events,
and `customer_ltv`, an aggregate built by a `CREATE TABLE customer_ltv AS SELECT ... JOIN ...
GROUP BY` file that sits beside it, in any format apply writes. Its rows are read back directly
(DuckDB, sqlite3, psycopg) and recomputed from the cleaned sources to compare."""

from __future__ import annotations

import decimal
import json
import sqlite3
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

FIRST = ["Ana", "Ben", "Cleo", "Dara", "Eli", "Finn", "Gia", "Hugo", "Ines", "Jon"]
LAST = ["Berg", "Diaz", "Moreau", "Okafor", "Silva", "Tanaka", "Varga", "Wong"]
SUBJECT = 7  # the customer erased: two orders, a ticket, events
LTV_SQL = """-- built nightly by the analytics job
CREATE TABLE customer_ltv AS
SELECT c.id AS customer_id, c.email, c.name, round(sum(o.amount), 2) AS lifetime_value,
       count(*) AS orders_count
FROM customers c JOIN orders o ON o.customer_id = c.id
GROUP BY ALL
ORDER BY customer_id;
"""
#: customer_ltv as a hive-partitioned folder (`segment=high/`, `segment=low/`)
LTV_SQL_HIVE = LTV_SQL.replace(
    "count(*) AS orders_count",
    "count(*) AS orders_count,\n       CASE WHEN sum(o.amount) > 600 THEN 'high' ELSE 'low' END "
    "AS segment")
FORMATS = ("parquet", "parquet-hive", "csv", "jsonl", "duckdb", "sqlite", "postgresql", "delta")


def customers() -> pa.Table:
    ids = list(range(1, 41))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "email": [f"{FIRST[i % 10].lower()}.{LAST[i % 8].lower()}.{i}@shopmail.org"
                  for i in ids],
        "name": [f"{FIRST[i % 10]} {LAST[i % 8]}" for i in ids]})


def orders() -> pa.Table:
    rows = [(n, 1 + (n * 7) % 40, round(10 + (n * 37) % 500 + n / 100, 2)) for n in range(1, 101)]
    rows += [(101, SUBJECT, 55.5), (102, SUBJECT, 20.25)]
    return pa.table({"order_id": pa.array([r[0] for r in rows], pa.int64()),
                     "customer_id": pa.array([r[1] for r in rows], pa.int64()),
                     "amount": pa.array([r[2] for r in rows], pa.float64())})


def subject_email() -> str:
    return customers().to_pylist()[SUBJECT - 1]["email"]


def ltv(tables: dict[str, pa.Table], sql: str = LTV_SQL) -> pa.Table:
    """customer_ltv computed from the given customers and orders, with DuckDB directly."""
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con.sql(sql.split(" AS\n", 1)[1]).to_arrow_table()


def build(root: Path, fmt: str, pg_uri: str | None = None) -> Path:
    """The warehouse with `customer_ltv` in format `fmt`; returns the folder to scan (or the
    database file), the SQL file beside the data."""
    root.mkdir(parents=True, exist_ok=True)
    tables = {"customers": customers(), "orders": orders()}
    sql = LTV_SQL_HIVE if fmt == "parquet-hive" else LTV_SQL
    derived = ltv(tables, sql)
    (root / "customer_ltv.sql").write_text(sql)
    if fmt in ("parquet", "parquet-hive", "csv", "jsonl", "delta"):
        pq.write_table(tables["customers"], root / "customers.parquet")
        pq.write_table(tables["orders"], root / "orders.parquet")
        (root / "tickets.csv").write_text("ticket_id,customer_email,subject\n" + "".join(
            f"{n},{c['email']},order question {n}\n"
            for n, c in enumerate(tables["customers"].to_pylist()[:12], 1)))
        (root / "events.jsonl").write_text("".join(
            json.dumps({"event": "view", "customer_id": 1 + n % 40, "page": f"/p/{n}"}) + "\n"
            for n in range(60)))
        if fmt == "parquet":
            pq.write_table(derived, root / "customer_ltv.parquet")
        elif fmt == "parquet-hive":
            con = duckdb.connect()
            con.register("d", derived)
            con.execute(f"COPY d TO '{root / 'customer_ltv'}' (FORMAT parquet, "
                        "PARTITION_BY (segment))")
        elif fmt == "csv":
            con = duckdb.connect()
            con.register("d", derived)
            con.execute(f"COPY d TO '{root / 'customer_ltv.csv'}' (HEADER)")
        elif fmt == "delta":
            from deltalake import write_deltalake

            write_deltalake(root / "customer_ltv", derived)
        else:
            (root / "customer_ltv.jsonl").write_text("".join(
                json.dumps(r) + "\n" for r in derived.to_pylist()))
        return root
    if fmt == "duckdb":
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        for name, table in tables.items():
            con.register(f"{name}_src", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_src")
        con.execute(LTV_SQL)
        con.close()
        return root
    if fmt == "sqlite":
        lite = sqlite3.connect(root / "shop.sqlite")
        lite.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        lite.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER "
                     "REFERENCES customers(id), amount REAL)")
        lite.execute("CREATE TABLE customer_ltv (customer_id INTEGER, email TEXT, name TEXT, "
                     "lifetime_value REAL, orders_count INTEGER)")
        for name in ("customers", "orders", "customer_ltv"):
            table = tables.get(name, derived)
            lite.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * table.num_columns)})",
                             [tuple(r.values()) for r in table.to_pylist()])
        lite.commit()
        lite.close()
        return root
    assert fmt == "postgresql" and pg_uri
    with psycopg.connect(pg_uri) as pg:
        pg.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text, name text)")
        pg.execute("CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id bigint "
                   "REFERENCES customers(id), amount double precision)")
        pg.execute("CREATE TABLE customer_ltv (customer_id bigint, email text, name text, "
                    "lifetime_value double precision, orders_count bigint)")
        for name in ("customers", "orders", "customer_ltv"):
            table = tables.get(name, derived)
            with pg.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN") as copy:
                for r in table.to_pylist():
                    copy.write_row(list(r.values()))
    return root


def read(root: Path, fmt: str, name: str, pg_uri: str | None = None) -> pa.Table:
    """A dataset of the warehouse as it is now, read directly (not through optout)."""
    con = duckdb.connect()
    if fmt == "delta" and name == "customer_ltv":
        from deltalake import DeltaTable

        return DeltaTable(root / "customer_ltv").to_pyarrow_table()
    if fmt == "parquet-hive" and name == "customer_ltv":
        return con.sql(f"SELECT * FROM read_parquet('{root}/customer_ltv/**/*.parquet', "
                       "hive_partitioning=true)").to_arrow_table()
    if fmt in ("parquet", "parquet-hive", "csv", "jsonl", "delta"):
        suffix = fmt if fmt in ("csv", "jsonl") else "parquet"
        path = root / (f"customer_ltv.{suffix}" if name == "customer_ltv" else f"{name}.parquet")
        return con.sql(f"SELECT * FROM '{path}'").to_arrow_table()
    if fmt == "duckdb":
        db = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        try:
            return db.sql(f"SELECT * FROM {name}").to_arrow_table()
        finally:
            db.close()
    if fmt == "sqlite":
        lite = sqlite3.connect(root / "shop.sqlite")
        cur = lite.execute(f"SELECT * FROM {name}")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        lite.close()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
    with psycopg.connect(pg_uri) as pg, pg.cursor() as cur:
        cur.execute(f"SELECT * FROM {name}")
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def rows(table: pa.Table) -> list[tuple]:
    """Rows comparable across formats: numbers as text with two decimals, sorted."""
    def norm(v: object) -> str:
        if isinstance(v, float | decimal.Decimal):
            return f"{float(v):.2f}"
        return str(v)
    names = sorted(table.column_names)
    return sorted(tuple(norm(r[n]) for n in names) for r in table.to_pylist())


class Cli:
    """`optout` as separate processes on a catalog initialized with one principal per role
    (run from the repository, whose ./policies is the policy store)."""

    ROOT = Path(__file__).resolve().parent.parent

    def __init__(self, catalog_path: str) -> None:
        from optout.scanner.access.principals import add_principal, create_token, init_catalog
        from optout.scanner.catalog import Catalog

        catalog = Catalog(catalog_path)
        self.catalog = catalog
        self.tokens = {"admin": init_catalog(catalog)}
        for role in ("requester", "approver", "operator", "auditor"):
            add_principal(catalog, role, [role], "admin")
            self.tokens[role] = create_token(catalog, role)[1]

    def __call__(self, role: str, *argv: str, **env: str):
        import os
        import subprocess
        import sys

        return subprocess.run([sys.executable, "-m", "optout.cli.main", "--catalog",
                               self.catalog.path, *argv],
                              env={**os.environ, "OPTOUT_TOKEN": self.tokens[role], **env},
                              capture_output=True, text=True, cwd=self.ROOT, timeout=300)
