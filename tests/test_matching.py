"""Matching a subject inside DuckDB: plain equality on the values the planner holds gives the
rows the keyed hashes give, and a Parquet source reads its files once per new key value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.connectors.parquet.source import ParquetSource
from optout.model.dataset import DatasetRef
from optout.model.duck import memory_duckdb
from optout.model.identifiers import normalize
from optout.model.matching import (
    DuckDBMatcher,
    KeyMatch,
    MatchQuery,
    MatchResult,
    beyond,
    covers,
    merged,
)
from optout.model.secret import KeyedHash

HASHER = KeyedHash(b"k" * 32)


def key(column: str, kind: str, values: list[str], raw: bool = True) -> KeyMatch:
    """A key for these normalized values; with `raw`, the values are known (planning)."""
    values = [normalize(kind, v) for v in values]
    return KeyMatch(column, kind, frozenset(HASHER(v) for v in values),
                    frozenset(values) if raw else frozenset())


TRICKY = pa.table({
    "n": pa.array([5, -5, 0, 7, 70, None, 2**62, -(2**62)], pa.int64()),
    "small": pa.array([5, -5, 0, 7, 70, None, 1, 2], pa.int8()),
    "code": ["5", " -5", "007", "7-0", "a.b", None, "X 1", "x1"],
    "email": [" Ana@Example.org", "ana@example.org", "ANA@EXAMPLE.ORG ", "b@x.io", None,
              "ana@example.orgg", "", "c@x.io"],
})


@pytest.mark.parametrize("column,kind,values", [
    ("n", "code", ["5", "0", "007", "-5", "70", "x", str(2**62), "99999999999999999999999"]),
    ("small", "code", ["5", "7", "1", "128"]),
    ("code", "code", ["5", "70", "ab", "x1", "007"]),
    ("email", "email", ["ana@example.org", "B@X.IO"]),
])
def test_known_values_match_the_rows_their_keyed_hashes_match(column, kind, values) -> None:
    """Integer columns are compared as numbers (a code normalizes to its digits without the
    sign), text by its normalized form: the rows are exactly those the keyed hash finds."""
    con = memory_duckdb()
    con.register("t", TRICKY.append_column("i", pa.array(range(TRICKY.num_rows))))
    matcher = DuckDBMatcher(con, HASHER)
    plain = matcher.select("t", MatchQuery((key(column, kind, values),)), "i")
    hashed = matcher.select("t", MatchQuery((key(column, kind, values, raw=False),)), "i")
    assert sorted(plain) == sorted(hashed)
    assert plain  # every case matches something


def write(path: Path, ids: list[int], emails: list[str]) -> None:
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "email": emails}), path,
                   row_group_size=3)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Two part files. Ana's email is in a.parquet with id 7; id 7 is also in b.parquet under
    another email (found only once her id is learned); Bob is elsewhere."""
    root = tmp_path / "people"
    root.mkdir()
    write(root / "a.parquet", [1, 7, 2, 3, 4], ["x@x.io", "Ana@Example.org", "y@x.io",
                                               "bob@x.io", "z@x.io"])
    write(root / "b.parquet", [5, 6, 7, 8], ["p@x.io", "q@x.io", "ana.old@x.io", "r@x.io"])
    return root


def rounds(source: ParquetSource, ref: DatasetRef) -> list:
    """The planner's rounds: her email, then her email and the id it taught."""
    first = MatchQuery((key("email", "email", ["ana@example.org"]),),
                       collect=(("id", "code"), ("email", "email")))
    one = source.match(ref, first, HASHER)
    second = MatchQuery((key("email", "email", ["ana@example.org"]),
                         key("id", "code", ["7"])), collect=first.collect)
    two = source.match(ref, second, HASHER)
    located = source.locate(ref, MatchQuery((key("id", "code", ["7"]),)), HASHER)
    return [one.rows, two.rows, sorted(g.hashes for g in two.groups),
            [(Path(f).name, rows) for f, _, rows in located]]


def test_a_later_round_finds_rows_only_its_new_keys_match(folder: Path) -> None:
    source = ParquetSource(str(folder))
    [ref] = source.datasets()
    got = rounds(source, ref)
    assert got[0] == 1 and got[1] == 2  # the id-only row in the other file is found
    assert got[3] == [("a.parquet", (1,)), ("b.parquet", (2,))]
    # the same answers as a source that kept nothing (a pass over the files)
    cold = ParquetSource(str(folder))
    cold_second = MatchQuery((key("email", "email", ["ana@example.org"]),
                              key("id", "code", ["7"])),
                             collect=(("id", "code"), ("email", "email")))
    result = cold.match(ref, cold_second, HASHER)
    assert result.rows == got[1]
    assert sorted(g.hashes for g in result.groups) == got[2]


def test_a_file_rewritten_between_rounds_is_read_again(folder: Path) -> None:
    source = ParquetSource(str(folder))
    [ref] = source.datasets()
    query = MatchQuery((key("email", "email", ["ana@example.org"]),))
    assert source.match(ref, query, HASHER).rows == 1
    write(folder / "b.parquet", [9], ["ana@example.org"])  # a second copy of her row
    assert source.match(ref, query, HASHER).rows == 2
    assert [(Path(f).name, r) for f, _, r in source.locate(ref, query, HASHER)] == [
        ("a.parquet", (1,)), ("b.parquet", (0,))]


def test_what_a_query_covers() -> None:
    email = key("email", "email", ["a@x.io", "b@x.io"])
    a_only = key("email", "email", ["a@x.io"])
    ident = key("id", "code", ["7"])
    wide = MatchQuery((email, ident), ("notes",), frozenset({"h1", "h2"}))
    assert covers(wide, MatchQuery((a_only,)))
    assert covers(wide, MatchQuery((ident,), ("notes",), frozenset({"h1"})))
    assert not covers(wide, MatchQuery((key("email", "email", ["c@x.io"]),)))
    assert not covers(wide, MatchQuery((key("id", "email", ["7"]),)))  # another kind
    assert not covers(wide, MatchQuery((), ("notes",), frozenset({"h3"})))
    assert not covers(wide, MatchQuery((), ("body",), frozenset({"h1"})))
    rest = beyond(MatchQuery((email, key("id", "code", ["7", "8"]))), MatchQuery((a_only,)))
    assert {(k.column, k.hashes) for k in rest.keys} == {
        ("email", frozenset({HASHER("b@x.io")})), ("id", frozenset({HASHER("8"), HASHER("7")}))}
    assert beyond(MatchQuery((a_only,)), wide).keys == ()
    both = merged(MatchQuery((a_only,)), MatchQuery((ident,), ("notes",), frozenset({"h"})))
    assert covers(both, MatchQuery((a_only, ident), ("notes",), frozenset({"h"})))


def test_a_round_reading_a_column_the_kept_rows_lack_reads_the_files(tmp_path: Path) -> None:
    """The kept rows hold only the columns the match read: a later query that reads another
    (here: free text) goes back to the files, and finds what only that column holds."""
    path = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "email": ["ana@x.io", "b@x.io", "c@x.io"],
                             "note": ["", "", "call Ana@X.io back"]}), path)
    source = ParquetSource(str(path))
    [ref] = source.datasets()
    first = MatchQuery((key("email", "email", ["ana@x.io"]),), collect=(("id", "code"),))
    assert source.match(ref, first, HASHER).rows == 1
    texts = MatchQuery(first.keys, ("note",), frozenset({HASHER("ana@x.io")}),
                       collect=(("id", "code"),))
    assert source.match(ref, texts, HASHER).rows == 2
    assert [r for _, _, r in source.locate(ref, texts, HASHER)] == [(0, 2)]


def test_the_engines_holding_raw_values_never_spill_to_disk() -> None:
    """Samples and the request's values live in in-memory DuckDBs; DuckDB's default would
    spill large operations to `./.tmp`."""
    for threads in (1, None):
        con = memory_duckdb(threads)
        assert con.execute("SELECT current_setting('temp_directory')").fetchone() == ("",)


def test_a_batch_query_brings_back_as_many_rows_as_its_limit() -> None:
    """A match says it was cut short past its query's limit, not past a constant: the planner
    raises the limit with the number of subjects (GROUPS_PER_SUBJECT each), so a deletion
    list of 100,000 subjects with three orders each is attributed, not sent to review."""
    from optout.model.matching import MAX_GROUPS, MatchQuery, MatchResult

    rows = [(f"h{i}", 1) for i in range(MAX_GROUPS + 5)]
    small = MatchQuery(collect=(("email", "email"),))
    assert MatchResult.from_groups(rows, small).truncated
    batch = MatchQuery(collect=(("email", "email"),), limit=MAX_GROUPS + 5)
    wide = MatchResult.from_groups(rows, batch)
    assert not wide.truncated and wide.rows == MAX_GROUPS + 5


def test_a_walk_learns_the_values_behind_the_hashes_a_match_brought_back() -> None:
    """What the planner keeps of a match's values (in memory, to match by plain equality
    next round): each hash with its value; nothing for a NULL on either side. Truths written
    by hand from the rows: a hash whose value came back NULL is no value to match by (it
    would match nothing and hide the hash), and without values brought back nothing is kept.
    Mutations that fail it: keeping (hash, None) pairs; learning nothing."""
    from optout.engine.graph import IdentityGraph
    from optout.engine.planner import _Walk

    a, b, c = HASHER("a@x.io"), HASHER("b@x.io"), HASHER("c@x.io")
    rows = [(a, "7", "a@x.io", "ana", 2), (b, None, "b@x.io", None, 1),
            (c, None, None, None, 1), (None, None, None, None, 4)]
    query = MatchQuery((key("email", "email", ["a@x.io"]),), collect=(
        ("email", "email"), ("id", "code")), names=(("name",),), raw_collect=True)
    walk = _Walk(IdentityGraph({}, {}, []), HASHER)
    walk.learn_raw(MatchResult.from_groups(
        [(h, i, v, None, n, r) for h, i, v, n, r in rows], query))
    assert walk.raw == {a: "a@x.io", b: "b@x.io"}
    walk.learn_raw(MatchResult.from_groups([(a, "7", "ana", 2)], dataclasses.replace(
        query, raw_collect=False)))
    assert walk.raw == {a: "a@x.io", b: "b@x.io"}


def test_a_walk_hashes_each_name_once() -> None:
    """A name matched again in a later round is not hashed again (a deletion list's rows
    are matched in two rounds); distinct names each get their own keyed hash."""
    from optout.engine.graph import IdentityGraph
    from optout.engine.planner import _Walk

    calls: list[str] = []

    def counting(value: str) -> str:
        calls.append(value)
        return HASHER(value)

    walk = _Walk(IdentityGraph({}, {}, []), counting)
    assert walk.name_hash("ana lima") == HASHER("ana lima") == walk.name_hash("ana lima")
    assert walk.name_hash("bo diaz") == HASHER("bo diaz")
    assert calls == ["ana lima", "bo diaz"]
