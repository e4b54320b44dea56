"""Normalization is the same on every engine, so a stored value is the subject's copy wherever
it is. Whitespace: a stored "\\tana@x.io\\n" — Python's `strip()` strips every Unicode
whitespace character; DuckDB's `trim` keeps tabs and newlines, PostgreSQL's strips spaces only
and RE2's `\\s` is ASCII: before each engine was given the characters, planning missed such
copies and apply's read-back could not see them. Case: Python's (and Java's) `lower()` maps
"İ" to two characters and a final capital sigma to "ς", DuckDB's and PostgreSQL's do not, so
"İLKNUR@X.TR" or "ΝΙΚΟΛΑΟΣ" normalized differently in SQL. (Spark: test_spark.py.)"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PG_ADMIN

from optout.connectors.postgres import source as postgres
from optout.connectors.postgres.source import PostgresSource, case_collation
from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.model.errors import DatasetUnreadable
from optout.model.identifiers import KINDS, WHITESPACE, normalize, sql_normalize
from optout.model.matching import MatchQuery, mentions
from optout.model.secret import KeyedHash
from optout.scanner.catalog import Catalog
from optout.scanner.scan import scan

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"

#: every whitespace character before, after and inside a value, and values that need no trim
#: (the fast path of DuckDB's guard), non-ASCII edges and the empty string
TRICKY = ([f"{c}Ana.B@X.io{c}" for c in WHITESPACE] + [f"Ana{c}{c}Maria-Lee{c}" for c in WHITESPACE]
          + [f"{c}ana@x.io" for c in WHITESPACE] + [f"ana@x.io{c}" for c in WHITESPACE]
          + ["ana@x.io", " \t\n ana@x.io \r\n", "Ünal Öz", "\u3000石田\u3000", "x", "", "\t", "!a~",
             "+1 (555) 010-2000\n", "AB-12.3/4\x1c"]
          # lower-casing: the characters whose mapping differs between Python and SQL, and
          # others that do not
          + ["İLKNUR@X.TR", "ΝΙΚΟΛΑΟΣ ΠΑΠΑΣ", "σας ς Σ", "ÖZTÜRK", "STRAẞE", "Ǆemal", "ⅫI"])


def test_the_whitespace_set_is_pythons() -> None:
    import sys

    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


@pytest.fixture(scope="module")
def c_locale() -> Iterator[str]:
    """A database whose ctype is C: its lower() and upper() change ASCII letters only."""
    name = f"optout_c_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C' "
                      "LC_CTYPE 'C'")
        try:
            yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_duckdb_normalizes_as_python_does(kind: str) -> None:
    con = duckdb.connect()
    con.register("t", pa.table({"i": range(len(TRICKY)), "v": TRICKY}))
    got = [r[0] for r in con.execute(
        f"SELECT {sql_normalize(kind, 'v', 'duckdb')} FROM t ORDER BY i").fetchall()]
    assert got == [normalize(kind, v) for v in TRICKY]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_postgres_normalizes_as_python_does_in_any_locale(kind: str, c_locale: str) -> None:
    """In a UTF-8 database, in a column declared `COLLATE "C"`, and in a C-locale database."""
    want = [normalize(kind, v) for v in TRICKY]
    for uri, collate in ((PG_ADMIN, ""), (PG_ADMIN, ' COLLATE "C"'), (c_locale, "")):
        with psycopg.connect(uri, connect_timeout=5) as pg:
            pg.execute(f"CREATE TEMP TABLE t (i int, v text{collate})")
            with pg.cursor() as cur:
                cur.executemany("INSERT INTO t VALUES (%s, %s)", list(enumerate(TRICKY)))
            norm = sql_normalize(kind, "v", "postgres", case_collation(pg))
            got = [r[0] for r in pg.execute(f"SELECT {norm} FROM t ORDER BY i").fetchall()]
        assert got == want, (uri, collate)


def test_a_c_locale_database_finds_a_collation_or_refuses(c_locale: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(c_locale, connect_timeout=5) as pg:
        assert case_collation(pg) != "default"
        monkeypatch.setattr(postgres, "_CASE_COLLATIONS", ("default",))
        with pytest.raises(DatasetUnreadable, match="lower-cases letters beyond ASCII"):
            case_collation(pg)


def test_free_text_in_a_c_locale_database_is_read_as_python_reads_it(c_locale: str) -> None:
    """Words with letters beyond ASCII: `[[:alpha:]]` follows the collation too."""
    with psycopg.connect(c_locale, autocommit=True, connect_timeout=5) as pg:
        pg.execute("CREATE TABLE notes (note text)")
        pg.execute("INSERT INTO notes VALUES ('Met JÜRGEN ÖZTÜRK today'), ('met jurgen oz')")
    hasher = KeyedHash(b"k" * 32)
    [pair] = [c for _, _, c in mentions("JÜRGEN ÖZTÜRK") if " " in c]
    query = MatchQuery(texts=("note",), text_hashes=frozenset({hasher(pair)}))
    with PostgresSource(c_locale) as source:
        [ref] = [r for r in source.datasets() if r.name.endswith("notes")]
        assert source.match(ref, query, hasher).rows == 1


PEOPLE = [f"p{i}@example.org" for i in range(40)]


def rows(padded: str) -> list[tuple]:
    """40 other people and one copy of the subject's email, padded."""
    return [(e, f"n{i}") for i, e in enumerate(PEOPLE)] + [(padded, "hers")]


def test_padded_copies_are_planned_and_erased_everywhere(tmp_path: Path, classifier,
                                                          pg_uri: str) -> None:
    """Her email, padded and cased differently in each dataset (one copy per table of people;
    three in a table of sign-ups; in PostgreSQL a column declared `COLLATE "C"`), is found by
    the plan and erased; every other row stays."""
    data = tmp_path / "data"
    data.mkdir()
    schema = ["email", "note"]
    pq.write_table(pa.Table.from_pylist([dict(zip(schema, r, strict=True))
                                         for r in rows("\tANA.ÖZ@x.io")]), data / "people.parquet")
    signups = ["ana.öz@x.io\n", " \r\nANA.ÖZ@X.IO\x0b", "\u2003Ana.Öz@x.io\u2029",
               "p3@example.org"]
    pq.write_table(pa.table({"email": signups, "day": [1, 2, 3, 4]}), data / "signups.parquet")
    lite = sqlite3.connect(data / "people.sqlite")
    lite.execute("CREATE TABLE people (email TEXT, note TEXT)")
    lite.executemany("INSERT INTO people VALUES (?, ?)", rows("ana.Öz@x.io\x1c"))
    lite.commit()
    lite.close()
    with psycopg.connect(pg_uri) as pg:
        pg.execute('CREATE TABLE people (email text COLLATE "C", note text)')
        with pg.cursor() as cur:
            cur.executemany("INSERT INTO people VALUES (%s, %s)",
                            rows("\u3000ANA.ÖZ@X.IO\u00a0"))
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    report = scan([str(data), pg_uri], catalog, classifier=classifier)
    assert not report.failed, [r.error for r in report.results if r.error]

    plan = build_plan(catalog, PlanRequest([parse_subject("email=ana.öz@x.io")],
                                           load_policy(POLICY), str(POLICY)))
    assert not plan.review, plan.review
    assert sorted((s.location.rsplit("/", 1)[-1], s.rows) for s in plan.steps) == sorted([
        ("people.parquet", 1), ("signups.parquet", 3), ("people.sqlite", 1),
        (pg_uri.rsplit("/", 1)[-1], 1)]), [(s.location, s.rows) for s in plan.steps]
    apply_plan(catalog, plan, ApplyOptions())

    others = rows("")[:len(PEOPLE)]
    assert [tuple(r.values()) for r in pq.read_table(data / "people.parquet").to_pylist()] \
        == others
    assert pq.read_table(data / "signups.parquet").to_pylist() == [
        {"email": "p3@example.org", "day": 4}]
    lite = sqlite3.connect(data / "people.sqlite")
    assert lite.execute("SELECT * FROM people").fetchall() == others
    lite.close()
    with psycopg.connect(pg_uri) as pg:
        assert pg.execute("SELECT * FROM people").fetchall() == others


def test_only_two_characters_lower_differently_in_python() -> None:
    """The translation `lower` applies is complete: every other character's Python lower-case
    is one character (so the engines' simple mapping), and a final sigma needs the capital."""
    import sys

    from optout.model.identifiers import lower

    assert [c for c in range(sys.maxunicode + 1) if len(chr(c).lower()) != 1] == [0x130]
    assert lower("ΟΔΟΣ İ") == "οδοσ i" and "ΟΔΟΣ İ".lower() == "οδος i̇"


def test_a_mention_after_a_dotted_capital_i_is_redacted_in_place() -> None:
    """Spans of mentions are positions in the text: lower-casing must keep one character per
    character (Python's "İ".lower() is two, which shifted every later span by one)."""
    from optout.model.matching import redact
    from optout.model.secret import KeyedHash

    hasher = KeyedHash(b"k" * 32)
    text = "İİ wrote from ana@x.io today"
    assert redact(text, frozenset({hasher("ana@x.io")}), hasher) == (
        "İİ wrote from [REDACTED] today", 1)
