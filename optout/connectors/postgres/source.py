"""PostgreSQL by URI: every table, view and materialized view in non-system schemas (psycopg 3)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from optout.connectors.source import Source, rows_to_arrow
from optout.model.dataset import DatasetRef, ForeignKey, Sample
from optout.model.errors import DatasetUnreadable, SourceUnavailable, UnknownSource
from optout.model.identifiers import SIMPLE_LOWER_FROM, SIMPLE_LOWER_TO, pg_lower, sql_normalize
from optout.model.matching import TEXT_EMAIL, TEXT_PHONE, MatchQuery, MatchResult
from optout.model.redaction import one_line
from optout.model.sampling import bernoulli_percent
from optout.model.secret import KeyedHash

if TYPE_CHECKING:  # psycopg is imported where a database is used (a CLI run needs none)
    import psycopg
    from psycopg import sql

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


def pg_hmac(hasher: KeyedHash) -> Callable[[str], str]:
    """A function wrapping a SQL text expression in the keyed hash, computed by the server."""
    inner, outer = hasher.pads

    def hmac(expr: str) -> str:
        return (f"encode(sha256('\\x{outer.hex()}'::bytea || sha256('\\x{inner.hex()}'::bytea "
                f"|| convert_to({expr}, 'UTF8'))), 'hex')")

    return hmac


#: collations tried, in order, for changing case (the database's own first)
_CASE_COLLATIONS = ("default", "C.utf8", "C.UTF-8", "en_US.utf8", "und-x-icu")
#: letters, and their lower case by the simple Unicode mapping (after `SIMPLE_LOWER_FROM`
#: is translated, as `sql_normalize` does)
_CASE_PROBE = ("ÀÖÑΣİД", "àöñσiд")


def case_collation(con: psycopg.Connection) -> str:
    """A collation of the database whose lower() maps every letter as DuckDB and Python do:
    the database's own unless its ctype is C (which changes ASCII letters only: "ÖZ@X.DE"
    would never match "öz@x.de"), else a UTF-8 one of the operating system's or ICU's. Named
    in every normalization, so a column declared `COLLATE "C"` is lower-cased alike."""
    from psycopg import sql
    present = {r[0] for r in con.execute(
        "SELECT collname FROM pg_collation WHERE collname = ANY(%s)",
        (list(_CASE_COLLATIONS),)).fetchall()} | {"default"}
    for name in (c for c in _CASE_COLLATIONS if c in present):
        got = con.execute(sql.SQL("SELECT lower((translate(%s::text, %s, %s)) COLLATE {})")
                          .format(sql.Identifier(name)),
                          (_CASE_PROBE[0], SIMPLE_LOWER_FROM, SIMPLE_LOWER_TO)).fetchone()[0]
        if got == _CASE_PROBE[1]:
            return name
    raise DatasetUnreadable(
        "no collation of this database lower-cases letters beyond ASCII (its ctype is C, and "
        "neither C.utf8 nor ICU is installed): identifiers with such letters could not be "
        "matched, so optout does not match here")


def match_condition(con: psycopg.Connection, query: MatchQuery, hasher: KeyedHash,
                    collation: str | None = None) -> tuple[str, list[object]]:
    """The WHERE condition (and its parameters) of the rows matching `query`; case changes
    in `collation` (`case_collation` when not given)."""
    from psycopg import sql
    hmac = pg_hmac(hasher)
    params: list[object] = []
    conditions = []
    collation = collation or case_collation(con)
    for k in query.keys:
        col = sql.Identifier(k.column).as_string(con)
        norm = sql_normalize(k.kind, col, "postgres", collation)
        # values the planner knows (bound parameters, never logged) by equality; the keyed
        # hash, computed for every row, only for the hashes whose values it does not know
        known = k.known(hasher)
        raw, rest = sorted(known.values()), sorted(k.hashes - known.keys())
        either = []
        if raw:
            either.append(f"{norm} = ANY(%s)")
            params.append(raw)
        if rest:
            either.append(f"{hmac(norm)} = ANY(%s)")
            params.append(rest)
        conditions.append("(" + " OR ".join(either) + ")" if either else "false")
    for column in query.texts:
        col = pg_lower(f"({sql.Identifier(column).as_string(con)})::text", collation)
        phone = hmac("regexp_replace(p[1], '[^0-9]', '', 'g')")
        pair = hmac("a.w[i] || ' ' || a.w[i + 1]")
        conditions.append(
            f"(EXISTS (SELECT 1 FROM regexp_matches({col}, %s, 'g') m "
            f"WHERE {hmac('m[1]')} = ANY(%s)) "
            f"OR EXISTS (SELECT 1 FROM regexp_matches({col}, %s, 'g') p "
            f"WHERE {phone} = ANY(%s)) "
            f"OR EXISTS (SELECT 1 FROM (SELECT regexp_split_to_array({col}, "
            "'[^[:alpha:]]+') w) a, generate_series(1, coalesce(array_length(a.w, 1), 0) - 1) i "
            f"WHERE {pair} = ANY(%s)))")
        hashes = sorted(query.text_hashes)
        params += [f"({TEXT_EMAIL})", hashes, f"({TEXT_PHONE})", hashes, hashes]
    return " OR ".join(conditions) or "false", params


class PostgresSource(Source):
    """A PostgreSQL database, read in a read-only session; sampling happens in the server."""

    kind = "postgresql"

    def __init__(self, uri: str) -> None:
        import psycopg
        parts = urlsplit(uri)
        if parts.scheme not in SCHEMES or (not parts.hostname and not parts.path.strip("/")):
            raise UnknownSource(f"not a PostgreSQL URI: {redact_uri(uri)}")
        super().__init__(redact_uri(uri))
        self.uri = uri  # with its password, in memory only (the Spark engine's JDBC reads)
        try:
            self._con = psycopg.connect(uri, connect_timeout=5, autocommit=True)
        except psycopg.Error as exc:
            raise SourceUnavailable(f"cannot connect to {self.location}: {one_line(exc)}") from exc
        self._con.execute("SET default_transaction_read_only = on")
        self._estimates: dict[str, int] = {}
        self._case: str | None = None

    def _collation(self) -> str:
        """The collation normalizations change case in (`case_collation`), found once."""
        if self._case is None:
            self._case = case_collation(self._con)
        return self._case

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
        from psycopg import sql
        return sql.SQL("{}.{}").format(
            sql.Identifier(ref.option("schema")), sql.Identifier(ref.option("table"))
        )

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        import psycopg
        from psycopg import sql
        rel = self._rel(ref)
        try:
            total, exact = self.count(ref)
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

    def _estimate(self, ref: DatasetRef) -> int:
        """The planner's row estimate of a table: the listing's, or asked for (a source
        opened for one dataset, as apply opens it, lists none; both must fingerprint alike)."""
        if ref.name not in self._estimates:
            row = self._con.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = "
                                    "%s::regclass", (self._rel(ref).as_string(self._con),)
                                    ).fetchone()
            self._estimates[ref.name] = max(0, row[0]) if row else 0
        return self._estimates[ref.name]

    def count(self, ref: DatasetRef) -> tuple[int, bool]:
        """The dataset's row count, and whether it is exact (above EXACT_COUNT_LIMIT rows by
        the planner's estimate, the estimate)."""
        from psycopg import sql
        estimate = self._estimate(ref)
        if estimate > EXACT_COUNT_LIMIT:
            return estimate, False
        rel = self._rel(ref)
        return self._con.execute(sql.SQL("SELECT count(*) FROM {}").format(rel)).fetchone()[0], \
            True

    def relation_sql(self, ref: DatasetRef) -> str:
        """The dataset's quoted name, as SQL."""
        return self._rel(ref).as_string(self._con)

    def _sample(self, cur: psycopg.Cursor, total: int, exact: bool, ref: DatasetRef) -> Sample:
        names = [d.name for d in cur.description]
        table = rows_to_arrow(names, cur.fetchall())
        return Sample(table, int(total), exact, declared_types=self.types(ref))

    def types(self, ref: DatasetRef) -> dict[str, str]:
        """Column → declared type."""
        return dict(
            self._con.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (self._rel(ref).as_string(self._con),),
            ).fetchall()
        )

    def foreign_keys(self, ref: DatasetRef) -> list[ForeignKey]:
        rows = self._con.execute(
            "SELECT (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.conkey) WITH "
            "ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = k.attnum), rn.nspname, rc.relname, "
            "(SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.confkey) WITH "
            "ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.confrelid "
            "AND a.attnum = k.attnum) "
            "FROM pg_constraint c JOIN pg_class rc ON rc.oid = c.confrelid "
            "JOIN pg_namespace rn ON rn.oid = rc.relnamespace "
            "WHERE c.contype = 'f' AND c.conrelid = %s::regclass",
            (self._rel(ref).as_string(self._con),)).fetchall()
        return [ForeignKey(tuple(cols), table if schema == "public" else f"{schema}.{table}",
                           tuple(ref_cols)) for cols, schema, table, ref_cols in rows]

    def definition(self, ref: DatasetRef) -> str | None:
        if ref.kind != "view":
            return None
        row = self._con.execute("SELECT pg_get_viewdef(%s::regclass)",
                                (self._rel(ref).as_string(self._con),)).fetchone()
        view = self._rel(ref).as_string(self._con)
        kind = "MATERIALIZED VIEW" if ref.option("relkind") == "m" else "VIEW"
        return f"CREATE {kind} {view} AS {row[0]}" if row else None

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        import psycopg
        from psycopg import sql
        if not query.keys and not query.texts:
            return MatchResult()
        collation = self._collation()
        where, params = match_condition(self._con, query, hasher, collation)
        hmac = pg_hmac(hasher)
        rel = self._rel(ref).as_string(self._con)
        selects = []
        for column, kind in query.collect:
            col = sql.Identifier(column).as_string(self._con)
            selects.append(hmac(sql_normalize(kind, col, "postgres", collation)))
        if query.raw_collect:
            selects += [sql_normalize(kind, sql.Identifier(column).as_string(self._con),
                                      "postgres", collation) for column, kind in query.collect]
        for group in query.names:
            cols = ", ".join(sql.Identifier(c).as_string(self._con) for c in group)
            selects.append(sql_normalize("name", f"concat_ws(' ', {cols})", "postgres",
                                         collation))
        grouped = (" GROUP BY " + ", ".join(str(i + 1) for i in range(len(selects)))
                   if selects else "")
        try:
            rows = self._con.execute(
                f"SELECT {', '.join([*selects, 'count(*)'])} FROM {rel} WHERE {where}"
                f"{grouped} LIMIT {query.limit + 1}", params).fetchall()
        except psycopg.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return MatchResult.from_groups([r for r in rows if r[-1]], query)

    def fingerprint(self, ref: DatasetRef) -> str | None:
        from psycopg import sql
        if ref.kind != "table":
            return None  # a view's content follows its base tables: always re-read it
        rel = self._rel(ref)
        h = hashlib.sha256(repr(sorted(self.types(ref).items())).encode())
        if self._estimate(ref) <= EXACT_COUNT_LIMIT:
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
