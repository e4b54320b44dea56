"""The real third-party worlds of ../shared/worlds, loaded into throwaway databases (never
edited in place), and row-level snapshots of them for checking an erasure."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import psycopg
import yaml

from fixtures.worlds import WorldsMissing, worlds
from fixtures.worlds import load_postgres as load_real

TRUTHS = Path(__file__).resolve().parent / "worlds"


def _worlds() -> Path:
    """The shared worlds folder (beside the repository, as on every machine and in CI)."""
    try:
        return worlds()
    except WorldsMissing as exc:
        import pytest

        pytest.fail(str(exc))


def truths(name: str) -> dict:
    """A world's truth file under tests/worlds/."""
    return yaml.safe_load((TRUTHS / f"{name}.yaml").read_text())


def load_postgres(world: str, uri: str) -> None:
    """Load a world into the (empty) database at `uri`: a real one with psql, as its README
    says, or `traps` / `shop`, the generated worlds below."""
    if world in ("traps", "shop"):
        (load_traps if world == "traps" else load_shop)(uri)
        return
    _worlds()
    load_real(world, uri)


def copy_sqlite(world: str, dest: Path) -> Path:
    """A copy of a world's shipped SQLite file (the original is never opened for writing)."""
    target = dest / f"{world}.sqlite"
    shutil.copy(_worlds() / "chinook" / "Chinook_Sqlite.sqlite", target)
    target.chmod(0o644)
    return target


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Snapshot:
    """Every row of every table of a database, as digests of its full text, per table; and the
    rows a condition selects (a truth's `rows`)."""

    def __init__(self, engine: str, where: str) -> None:
        self.engine, self.where = engine, where

    def tables(self) -> dict[str, Counter]:
        """Table → multiset of row digests (partitioned tables read through their parent)."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.where) as con:
                names = [r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")]
                return {n: Counter(_digest(repr(r)) for r in con.execute(f'SELECT * FROM "{n}"'))
                        for n in names}
        with psycopg.connect(self.where) as con:
            names = [(s, t) for s, t in con.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')").fetchall()]
            return {(t if s == "public" else f"{s}.{t}"): Counter(
                r[0] for r in con.execute(f'SELECT md5(x::text) FROM "{s}"."{t}" x'))
                for s, t in names}

    def selected(self, table: str, condition: str) -> Counter:
        """Digests of the rows of `table` that `condition` (SQL) selects."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.where) as con:
                return Counter(_digest(repr(r)) for r in con.execute(
                    f'SELECT * FROM "{table}" WHERE {condition}'))
        schema, _, name = table.rpartition(".")
        rel = f'"{schema or "public"}"."{name}"'
        with psycopg.connect(self.where) as con:
            return Counter(r[0] for r in con.execute(
                f"SELECT md5(x::text) FROM {rel} x WHERE {condition}"))


def load_traps(uri: str) -> None:
    """A generated world with the shapes that made wave 1 erase the wrong people: an amount
    column named like a card number (amounts shared between customers), service tickets that
    carry the subject's email and the employee who handled them, a login table with no foreign
    key and 3 distinct customer ids, a backup schema whose `customers` reuse the same ids for
    other people, and two customers sharing one email. Seeded: the same rows on every run."""
    import random

    rng = random.Random(7)
    first = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatou", "Gus", "Hana", "Ivo", "Jun"]
    last = ["Silva", "Okafor", "Berg", "Novak", "Haddad", "Kim", "Rossi", "Sato", "Weber", "Diaz"]
    customers = [(i, f"{first[i % 10]} {last[(i * 3) % 10]}") for i in range(1, 51)]
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute(
            "CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL, full_name text);"
            "CREATE TABLE employees (employee_id integer PRIMARY KEY, email text, full_name text);"
            "CREATE TABLE orders (order_id integer PRIMARY KEY, customer_id integer, "
            "  credit_card_amount double precision, placed_at date);"
            "CREATE TABLE tickets (ticket_id integer PRIMARY KEY, email text, employee_id integer,"
            "  topic text);"
            "CREATE TABLE login (customer_id integer, logged_in_at timestamp);"
            "CREATE SCHEMA backup_schema;"
            "CREATE TABLE backup_schema.customers (id integer PRIMARY KEY, email text, "
            "  full_name text);")
        for i, name in customers:
            email = "family.berg@example.org" if i >= 49 else \
                f"{name.lower().replace(' ', '.')}.{i}@example.org"
            con.execute("INSERT INTO customers VALUES (%s, %s, %s)", (i, email, name))
            # The same ids, other people: a backup taken before ids were reassigned.
            con.execute("INSERT INTO backup_schema.customers VALUES (%s, %s, %s)",
                        (i, f"old.customer.{i}@example.net", f"{first[(i + 5) % 10]} Old{i}"))
        for e in range(1, 6):
            con.execute("INSERT INTO employees VALUES (%s, %s, %s)",
                        (e, f"agent{e}@shopworks.com", f"{first[e]} Agent"))
        order = 0
        for i, _ in customers:
            for _ in range(rng.randint(1, 4)):
                order += 1
                con.execute("INSERT INTO orders VALUES (%s, %s, %s, %s)",
                            (order, i, rng.choice([0.0, 6.0, 18.0, 24.5]),
                             f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"))
        ticket = 0
        for i, _ in customers[:30]:
            email = con.execute("SELECT email FROM customers WHERE id = %s", (i,)).fetchone()[0]
            for _ in range(rng.randint(1, 3)):
                ticket += 1
                con.execute("INSERT INTO tickets VALUES (%s, %s, %s, %s)",
                            (ticket, email, 1 + (ticket % 5), rng.choice(["refund", "login"])))
        for n in range(12):
            con.execute("INSERT INTO login VALUES (%s, %s)",
                        (1 + n % 3, f"2026-03-{1 + n:02d} 10:00:00"))


def load_shop(uri: str) -> None:
    """A generated shop whose order lines hang off two kinds of people's records: a customer's
    order and a supplier's product (suppliers have contact emails, so they are people here).
    Declared foreign keys throughout."""
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute(
            "CREATE TABLE customers (customer_id integer PRIMARY KEY, email text NOT NULL);"
            "CREATE TABLE suppliers (supplier_id integer PRIMARY KEY, email text NOT NULL);"
            "CREATE TABLE products (product_id integer PRIMARY KEY, "
            "  supplier_id integer NOT NULL REFERENCES suppliers, title text);"
            "CREATE TABLE orders (order_id integer PRIMARY KEY, "
            "  customer_id integer NOT NULL REFERENCES customers, placed date);"
            "CREATE TABLE order_lines (order_id integer NOT NULL REFERENCES orders, "
            "  product_id integer NOT NULL REFERENCES products, quantity integer);")
        for i in range(1, 21):
            con.execute("INSERT INTO customers VALUES (%s, %s)", (i, f"buyer{i}@mailbox.org"))
        for i in range(1, 6):
            con.execute("INSERT INTO suppliers VALUES (%s, %s)", (i, f"contact{i}@vendor.com"))
        for p in range(1, 16):
            con.execute("INSERT INTO products VALUES (%s, %s, %s)", (p, 1 + p % 5, f"item {p}"))
        for o in range(1, 41):
            con.execute("INSERT INTO orders VALUES (%s, %s, %s)",
                        (o, 1 + o % 20, f"2026-02-{1 + o % 28:02d}"))
            for k in range(3):
                con.execute("INSERT INTO order_lines VALUES (%s, %s, %s)",
                            (o, 1 + (o * 7 + k * 4) % 15, 1 + k))
