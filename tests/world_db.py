"""The real third-party worlds of ../shared/worlds, loaded into throwaway databases (never
edited in place), and row-level snapshots of them for checking an erasure."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import psycopg
import yaml

WORLDS = Path(__file__).resolve().parent.parent.parent / "shared" / "worlds"
TRUTHS = Path(__file__).resolve().parent / "worlds"

#: the load commands of each world's README (Chinook's drops/creates its own database: those
#: three lines are left out on the way in, the file stays untouched)
_CHINOOK_SKIP = re.compile(r"^(DROP DATABASE IF EXISTS chinook;|CREATE DATABASE chinook;|\\c chinook;)$")
_SCRIPTS = {"chinook": ["chinook/Chinook_PostgreSql.sql"], "northwind": ["northwind/northwind.sql"],
            "pagila": ["pagila/pagila-schema.sql", "pagila/pagila-data.sql"]}


def truths(name: str) -> dict:
    """A world's truth file under tests/worlds/."""
    return yaml.safe_load((TRUTHS / f"{name}.yaml").read_text())


def load_postgres(world: str, uri: str) -> None:
    """Load a world's scripts into the (empty) database at `uri` with psql, as its README says."""
    for script in _SCRIPTS[world]:
        text = (WORLDS / script).read_text(encoding="utf-8")
        if world == "chinook":
            text = "\n".join(line for line in text.splitlines() if not _CHINOOK_SKIP.match(line))
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", uri, "-f", "-"],
                       input=text, text=True, check=True, capture_output=True)


def copy_sqlite(world: str, dest: Path) -> Path:
    """A copy of a world's shipped SQLite file (the original is never opened for writing)."""
    target = dest / f"{world}.sqlite"
    shutil.copy(WORLDS / "chinook" / "Chinook_Sqlite.sqlite", target)
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
