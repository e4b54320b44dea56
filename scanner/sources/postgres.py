"""PostgreSQL by URI: every table, view and materialized view in non-system schemas (psycopg 3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from scanner.errors import DatasetUnreadable, SourceUnavailable, UnknownSource
from scanner.model import DatasetRef, Sample
from scanner.sampling import bernoulli_percent
from scanner.sources.base import Source, one_line, rows_to_arrow

SCHEMES = ("postgresql", "postgres")
#: above this many rows (by the planner's estimate) the count is the estimate, not count(*)
EXACT_COUNT_LIMIT = 5_000_000

_LIST = """
SELECT n.nspname, c.relname, c.relkind, greatest(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""
_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view"}


def redact_uri(uri: str) -> str:
    """The URI without its password, safe to print and to store."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class PostgresSource(Source):
    """A PostgreSQL database, read in a read-only session; sampling happens in the server."""

    kind = "postgresql"

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in SCHEMES or (not parts.hostname and not parts.path.strip("/")):
            raise UnknownSource(f"not a PostgreSQL URI: {redact_uri(uri)}")
        super().__init__(redact_uri(uri))
        try:
            self._con = psycopg.connect(uri, connect_timeout=5, autocommit=True)
        except psycopg.Error as exc:
            raise SourceUnavailable(f"cannot connect to {self.location}: {one_line(exc)}") from exc
        self._con.execute("SET default_transaction_read_only = on")
        self._estimates: dict[str, int] = {}

    def datasets(self) -> Iterator[DatasetRef]:
        for schema, table, relkind, estimate in self._con.execute(_LIST).fetchall():
            name = table if schema == "public" else f"{schema}.{table}"
            self._estimates[name] = estimate
            yield DatasetRef(
                self.kind,
                self.location,
                name,
                _KINDS[relkind],
                "postgresql",
                (("schema", schema), ("table", table), ("relkind", relkind)),
            )

    def _rel(self, ref: DatasetRef) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(ref.option("schema")), sql.Identifier(ref.option("table"))
        )

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        rel = self._rel(ref)
        try:
            estimate = self._estimates.get(ref.name, 0)
            exact = estimate <= EXACT_COUNT_LIMIT
            total = (
                self._con.execute(sql.SQL("SELECT count(*) FROM {}").format(rel)).fetchone()[0]
                if exact
                else estimate
            )
            pct = bernoulli_percent(total, rows)
            if total <= rows:
                query = sql.SQL("SELECT * FROM {}").format(rel)
            elif ref.option("relkind") in ("r", "p", "m"):
                query = sql.SQL(
                    "SELECT * FROM {} TABLESAMPLE BERNOULLI ({}) REPEATABLE ({}) LIMIT {}"
                ).format(rel, sql.Literal(pct), sql.Literal(seed), sql.Literal(rows))
            else:
                # Views cannot TABLESAMPLE; a seeded random() filter is repeatable for one plan.
                with self._con.transaction():
                    self._con.execute("SELECT setseed(%s)", ((seed % 1000) / 1000.0,))
                    cur = self._con.execute(
                        sql.SQL("SELECT * FROM {} WHERE random() < {} LIMIT {}").format(
                            rel, sql.Literal(pct / 100), sql.Literal(rows)
                        )
                    )
                    return self._sample(cur, total, exact, ref)
            cur = self._con.execute(query)
            return self._sample(cur, total, exact, ref)
        except psycopg.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc

    def _sample(self, cur: psycopg.Cursor, total: int, exact: bool, ref: DatasetRef) -> Sample:
        names = [d.name for d in cur.description]
        table = rows_to_arrow(names, cur.fetchall())
        return Sample(table, int(total), exact, declared_types=self._types(ref))

    def _types(self, ref: DatasetRef) -> dict[str, str]:
        return dict(
            self._con.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (self._rel(ref).as_string(self._con),),
            ).fetchall()
        )

    def fingerprint(self, ref: DatasetRef) -> str | None:
        if ref.kind != "table":
            return None  # a view's content follows its base tables: always re-read it
        rel = self._rel(ref)
        h = hashlib.sha256(repr(sorted(self._types(ref).items())).encode())
        if self._estimates.get(ref.name, 0) <= EXACT_COUNT_LIMIT:
            # xmin changes on every insert and update; with the count it catches deletes too.
            state = self._con.execute(
                sql.SQL("SELECT count(*), sum(xmin::text::bigint) FROM {}").format(rel)
            ).fetchone()
        else:
            state = self._con.execute(
                "SELECT c.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del FROM pg_class c "
                "LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = %s::regclass",
                (rel.as_string(self._con),),
            ).fetchone()
        h.update(repr(state).encode())
        return h.hexdigest()[:32]

    def close(self) -> None:
        self._con.close()
