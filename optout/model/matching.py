"""Finding a subject's rows inside the engine that holds them, by keyed hash.

A `MatchQuery` says which columns to compare (each with its normalization kind and the keyed
hashes to look for), which free-text columns to search, and what to bring back from matching
rows. Sources answer it with one query per dataset, however many subjects the hash sets hold;
raw identifiers never enter the query, only their keyed hashes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from optout.model.identifiers import KINDS, normalize, sql_normalize
from optout.model.identifiers import lower as lowered
from optout.model.secret import KeyedHash
from optout.model.sql import quote_ident, quote_literal

#: what free text is searched for: emails, phone-number-like runs, and word pairs (names)
TEXT_EMAIL = r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+"
TEXT_PHONE = r"\+?[0-9][0-9 ().-]{5,}[0-9]"
TEXT_WORD = r"\p{L}+"


@dataclass(frozen=True)
class KeyMatch:
    """One column compared by keyed hash; while planning, also by the normalized values
    behind some of the hashes (`raw`: in memory only, never in a plan or a log), so the engine
    compares plain values and computes keyed hashes only of the rows that matched."""

    column: str
    kind: str  # normalization kind: email, phone, name, code
    hashes: frozenset[str]
    #: the values behind some hashes: hash → value (the planner, which hashed them), or the
    #: values alone (hashed again to tell which hashes they stand for)
    raw: Mapping[str, str] | frozenset[str] = field(default=frozenset(), repr=False,
                                                    compare=False)

    def split(self, hasher: KeyedHash) -> tuple[list[str], frozenset[str]]:
        """(the normalized values behind the hashes whose values are known, the hashes whose
        values are not)."""
        known = self.known(hasher)  # distinct hashes stand for distinct values
        return list(known.values()), self.hashes - known.keys()

    def known(self, hasher: KeyedHash) -> dict[str, str]:
        """Hash → normalized value, for the hashes whose values are known."""
        if isinstance(self.raw, Mapping):
            if self.raw.keys() <= self.hashes:  # as the planner builds it
                return dict(self.raw)
            return {h: v for h, v in self.raw.items() if h in self.hashes}
        return {h: v for v in self.raw if (h := hasher(v)) in self.hashes}


#: most distinct matched rows one match brings back for attribution, at least; past a query's
#: `limit` the match says so
MAX_GROUPS = 200_000
#: a query for many subjects may bring back this many distinct rows per subject
GROUPS_PER_SUBJECT = 50


@dataclass(frozen=True)
class MatchQuery:
    """Which rows of a dataset belong to the subjects, and what to learn from them."""

    keys: tuple[KeyMatch, ...] = ()
    #: free-text columns, searched for emails, phone numbers and names among these hashes
    texts: tuple[str, ...] = ()
    text_hashes: frozenset[str] = frozenset()
    #: columns whose keyed hashes are returned from matching rows (column, kind)
    collect: tuple[tuple[str, str], ...] = ()
    #: person-name column groups (first + last name, or a full name) whose values, joined by a
    #: space, are returned from matching rows (held in memory, never stored)
    names: tuple[tuple[str, ...], ...] = ()
    #: also return the normalized values of the collected columns (in memory, never stored)
    raw_collect: bool = False
    #: most distinct matched rows brought back (a batch of subjects may bring back more)
    limit: int = field(default=MAX_GROUPS, compare=False)

    def columns(self) -> set[str]:
        """Every column the query reads (catalog names; `a.b` is a field of a struct)."""
        return ({k.column for k in self.keys} | set(self.texts)
                | {c for c, _ in self.collect} | {c for group in self.names for c in group})


@dataclass
class Prefilter:
    """Cheap hashes (DuckDB's `hash`) of the raw key values of the rows a first pass matched,
    kept in memory only, so that re-reading the same rows for the same subjects hashes only
    the candidate rows with the keyed hash. Only valid for data whose rows are rows of what
    the first pass read, unchanged (a staged version after deleting rows, the committed
    file): a row of the subject there has a raw value the first pass saw."""

    seen: dict[str, set[int]] = field(default_factory=dict)
    ready: bool = False


#: DuckDB integer types whose values all fit in a BIGINT
_INTEGERS = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                       "UINTEGER"})
_DIGITS = re.compile(r"0|[1-9][0-9]*")
#: most matching rows a match keeps in memory for the narrower matches after it
MAX_KEPT = 200_000


@dataclass(slots=True)
class MatchGroup:
    """Matching rows that share their collected values: one keyed hash per collected column
    (None for NULL), one normalized name per name group (in memory only), and how many."""

    hashes: tuple[str | None, ...]
    names: tuple[str | None, ...]
    rows: int
    #: the normalized values behind `hashes` when the query asked (in memory only)
    raw: tuple[str | None, ...] = field(default=(), repr=False)


@dataclass
class MatchResult:
    """How many rows matched, grouped by the keyed hashes (and names) found in them, so the
    planner can tell whose rows they are."""

    rows: int = 0
    groups: list[MatchGroup] = field(default_factory=list)
    truncated: bool = False  # more than the query's limit of distinct groups: not all here

    @classmethod
    def from_groups(cls, rows: list[tuple], query: MatchQuery) -> MatchResult:
        """From grouped result rows: the collected hashes, the names, then the row count."""
        n = len(query.collect)
        if query.raw_collect and rows and len(rows[0]) == 2 * n + len(query.names) + 1:
            groups = [MatchGroup(tuple(r[:n]), tuple(r[2 * n:-1]), int(r[-1]),
                                 tuple(r[n:2 * n])) for r in rows[:query.limit]]
        else:
            groups = [MatchGroup(tuple(r[:n]), tuple(r[n:-1]), int(r[-1]))
                      for r in rows[:query.limit]]
        return cls(sum(g.rows for g in groups), groups, len(rows) > query.limit)


class DuckDBMatcher:
    """Runs a `MatchQuery` over a relation DuckDB can read (a file reader or a table)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, hasher: KeyedHash) -> None:
        self.con = con
        self.hasher = hasher
        inner, outer = hasher.pads
        con.execute(
            "CREATE OR REPLACE TEMP MACRO optout_hmac(x) AS "
            f"sha256(unhex('{outer.hex()}') || unhex(sha256(unhex('{inner.hex()}') || encode(x))))")

    def describe(self, relation: str) -> dict[str, str]:
        """Column → DuckDB type of a relation's top-level columns."""
        return {d[0]: d[1] for d in
                self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}

    def select(self, relation: str, query: MatchQuery, column: str | tuple[str, ...],
               prefilter: Prefilter | None = None) -> list:
        """Values of `column` (a row number, a rowid) of the rows that match `query`; tuples of
        the values when `column` is a tuple of columns.

        With a `prefilter` that has learned, only rows whose cheap hash in one key column was
        seen are hashed with the keyed hash; one that has not learns from this query's matches
        (the cheap hash of every key column of every matching row).
        """
        columns = column if isinstance(column, tuple) else (column,)
        found = self.select_arrays(relation, query, columns, prefilter)
        if isinstance(column, tuple):
            return list(zip(*(found[c].tolist() for c in columns), strict=True))
        return found[column].tolist()

    def select_arrays(self, relation: str, query: MatchQuery, columns: tuple[str, ...],
                      prefilter: Prefilter | None = None) -> dict[str, np.ndarray]:
        """`select` as one NumPy array per column (no Python object per row: a deletion list
        locates millions of rows)."""
        types = self.describe(relation)
        top = set(types)
        where = self._register(query, top, types=types)
        learn = prefilter is not None and not prefilter.ready and query.keys
        extra = "".join(f", hash({column_sql(k.column, top)}) AS optout_seen_{i}"
                        for i, k in enumerate(query.keys)) if learn else ""
        listed = f"{', '.join(quote_ident(c) for c in columns)}{extra}"
        sql = f"SELECT {listed} FROM {relation} WHERE {where}"
        if prefilter is not None and prefilter.ready and query.keys:
            gate = self._gate(query, top, prefilter)
            # Materialized: DuckDB would otherwise join the keyed hashes of every row first
            # (1.2 s instead of 0.15 s over 2M rows), the cheap gate after.
            sql = (f"WITH optout_gated AS MATERIALIZED (SELECT * FROM {relation} WHERE {gate}) "
                   f"SELECT {listed} FROM optout_gated WHERE {where}")
        try:
            found = self.con.execute(sql).fetchnumpy()
        finally:
            self._unregister()
        if learn:
            for i, k in enumerate(query.keys):
                seen = found.pop(f"optout_seen_{i}")
                prefilter.seen.setdefault(k.column, set()).update(
                    np.ma.compressed(seen).tolist())
            prefilter.ready = True
        return {c: found[c] for c in columns}  # masked where NULL (`tolist` gives None)

    def _gate(self, query: MatchQuery, top: set[str], prefilter: Prefilter) -> str:
        """The condition a row's cheap hash must meet to be a candidate (see Prefilter).
        Every row the first pass matched taught the prefilter its value in every key column,
        so one column's cheap hash gates them all (ids before text: cheaper)."""
        gate = min(query.keys, key=lambda k: k.kind != "code")
        seen = prefilter.seen.get(gate.column, set())
        if not seen:
            return "false"  # the first pass matched no row: none can match now
        # a table, not a literal list: DuckDB parses and plans a list of 100,000 values for
        # seconds; a semi-join on a registered column is one hash table
        self.con.register("optout_subject_seen", pa.table({
            "x": pa.array(list(seen), pa.uint64())}))
        return f"hash({column_sql(gate.column, top)}) IN (SELECT x FROM optout_subject_seen)"

    def _register(self, query: MatchQuery, top: set[str],
                  types: dict[str, str] | None = None) -> str:
        """Register the subject hashes; return the WHERE condition matching the query.
        `types` (column → DuckDB type) lets integer key columns be compared as integers.
        The tables are built as Arrow columns, a slot's values at once (100,000 subjects
        register in milliseconds, not a Python tuple per value)."""
        hashes, values, numbers = _parts("h", pa.string()), _parts("v", pa.string()), \
            _parts("n", pa.int64())
        conditions = []
        for i, k in enumerate(query.keys):
            norm = sql_normalize(k.kind, column_sql(k.column, top), "duckdb")
            # plain equality on the values behind the hashes the planner knows them for; the
            # keyed hash only for the hashes it does not (computed for every row)
            raw, rest = k.split(self.hasher)
            slot = f"k{i}"
            either = []
            if raw and k.kind == "code" and (types or {}).get(k.column) in _INTEGERS:
                # an integer normalizes to its digits without the sign: compare numbers, not
                # the text of every row
                _add(numbers, "n", slot, _integers(raw))
                either.append(f"{column_sql(k.column, top)} IN (SELECT n FROM "
                              f"optout_subject_numbers WHERE slot = '{slot}')")
            elif raw:
                _add(values, "v", slot, pa.array(raw, pa.string()))
                either.append(f"{norm} IN (SELECT v FROM optout_subject_values "
                              f"WHERE slot = '{slot}')")
            if rest:
                _add(hashes, "h", slot, pa.array(list(rest), pa.string()))
                either.append(f"optout_hmac({norm}) IN "
                              f"(SELECT h FROM optout_subject_hashes WHERE slot = '{slot}')")
            conditions.append("(" + " OR ".join(either) + ")" if either else "false")
        if query.text_hashes:
            _add(hashes, "h", "text", pa.array(list(query.text_hashes), pa.string()))
        for name, parts in (("optout_subject_hashes", hashes),
                            ("optout_subject_values", values),
                            ("optout_subject_numbers", numbers)):
            self.con.register(name, pa.table({c: pa.concat_arrays(a) for c, a in parts.items()}))
        conditions += [_text_condition(column_sql(c, top)) for c in query.texts]
        return " OR ".join(conditions) or "false"

    def reads(self, relation: str, query: MatchQuery, by: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The top-level columns of `relation` a kept copy of matching rows needs: `by`, and
        those holding what the query reads."""
        top = set(self.describe(relation))
        heads = {c if c in top or "." not in c else c.split(".")[0] for c in query.columns()}
        return tuple(dict.fromkeys([*by, *sorted(heads)]))

    def keep_more(self, relation: str, query: MatchQuery, keep: str,
                  by: tuple[str, ...], columns: tuple[str, ...]) -> bool:
        """Add to the kept rows of an earlier `match` (its `columns`) the rows of `relation`
        that `query` matches and `keep` lacks (rows told apart by the `by` columns). False,
        with the table dropped, when that makes more than MAX_KEPT rows."""
        if not query.keys and not query.texts:
            return True
        types = self.describe(relation)
        where = self._register(query, set(types), types=types)
        same = " AND ".join(f"k.{quote_ident(c)} = r.{quote_ident(c)}" for c in by)
        listed = ", ".join(quote_ident(c) for c in columns)
        try:
            self.con.execute(
                f"INSERT INTO {quote_ident(keep)} SELECT * FROM (SELECT {listed} FROM "
                f"{relation} WHERE {where} LIMIT {MAX_KEPT + 1}) AS r WHERE NOT EXISTS "
                f"(SELECT 1 FROM {quote_ident(keep)} AS k WHERE {same})")
        finally:
            self._unregister()
        return self.bounded(keep)

    def bounded(self, keep: str) -> bool:
        """True when the kept table holds at most MAX_KEPT rows; else it is dropped."""
        if self.con.execute(f"SELECT count(*) FROM {quote_ident(keep)}").fetchone()[0] > MAX_KEPT:
            self.con.execute(f"DROP TABLE {quote_ident(keep)}")
            return False
        return True

    def holds(self, keep: str) -> bool:
        """True when a kept table of that name exists (a match kept its rows)."""
        return bool(self.con.execute("SELECT count(*) FROM duckdb_tables() WHERE "
                                     "table_name = ? AND temporary", [keep]).fetchone()[0])

    def _unregister(self) -> None:
        for name in ("optout_subject_hashes", "optout_subject_values", "optout_subject_numbers",
                     "optout_subject_seen"):
            self.con.unregister(name)

    def match(self, relation: str, query: MatchQuery, keep: str | None = None,
              columns: tuple[str, ...] = ()) -> MatchResult:
        """Run `query` against `relation` (SQL: a table name or a table function call).

        `keep`: also keep the matching rows (their `columns`: see `reads`) in a temporary
        table of that name (in memory, dropped with the connection), when at most MAX_KEPT
        rows match; a later match whose query `covers` says it can only match among them
        reads that table instead of the dataset. The table is absent when more rows
        matched."""
        if not query.keys and not query.texts:
            return MatchResult()
        types = self.describe(relation)
        top = set(types)
        where = self._register(query, top, types=types)
        try:
            if keep is not None:
                listed = ", ".join(quote_ident(c) for c in columns) or "*"
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(keep)} AS SELECT "
                                 f"{listed} FROM {relation} WHERE {where} LIMIT {MAX_KEPT + 1}")
                if self.bounded(keep):
                    relation, where = quote_ident(keep), "true"
            selects = [f"optout_hmac({sql_normalize(kind, column_sql(c, top), 'duckdb')})"
                       for c, kind in query.collect]
            if query.raw_collect:
                selects += [sql_normalize(kind, column_sql(c, top), "duckdb")
                            for c, kind in query.collect]
            selects += [sql_normalize("name", _joined(group, top), "duckdb")
                        for group in query.names]
            group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(selects)))}" \
                if selects else ""
            rows = self.con.execute(
                f"SELECT {', '.join([*selects, 'count(*)'])} FROM {relation} WHERE {where}"
                f"{group} LIMIT {query.limit + 1}").fetchall()
        finally:
            self._unregister()
        return MatchResult.from_groups([r for r in rows if r[-1]], query)


def _parts(column: str, kind: pa.DataType) -> dict[str, list[pa.Array]]:
    """A registered table's columns (`slot` and `column`), each an empty typed array so far."""
    return {"slot": [pa.array([], pa.string())], column: [pa.array([], kind)]}


def _add(table: dict[str, list[pa.Array]], column: str, slot: str, array: pa.Array) -> None:
    """Append one slot's values to a registered table's columns."""
    table["slot"].append(pa.array([slot] * len(array), pa.string()))
    table[column].append(array)


def _integers(raw: list[str]) -> pa.Array:
    """The integers a key column's stored value may be for normalized codes: `42` is 42 or
    -42 (normalizing drops the sign); codes that are not digits, or out of BIGINT's range,
    are none."""
    values = pa.array(raw, pa.string())
    digits = pc.match_substring_regex(values, f"^(?:{_DIGITS.pattern})$")
    short = pc.less_equal(pc.utf8_length(values), 18)  # fits a BIGINT whatever its digits
    numbers = pc.cast(values.filter(pc.and_(digits, short)), pa.int64())
    longer = [n for v in values.filter(pc.and_(digits, pc.invert(short))).to_pylist()
              for n in (int(v), -int(v)) if -(1 << 63) <= n < (1 << 63)]
    return pa.concat_arrays([numbers, pc.negate(numbers), pa.array(longer, pa.int64())])


def merged(a: MatchQuery, b: MatchQuery) -> MatchQuery:
    """A query matching every row either matches (what a kept table holds after both)."""
    keys: dict[tuple[str, str], frozenset[str]] = {}
    for k in (*a.keys, *b.keys):
        keys[(k.column, k.kind)] = keys.get((k.column, k.kind), frozenset()) | k.hashes
    texts = tuple(dict.fromkeys((*a.texts, *b.texts)))
    return MatchQuery(tuple(KeyMatch(c, kind, h) for (c, kind), h in keys.items()), texts,
                      a.text_hashes | b.text_hashes if texts else frozenset())


def beyond(query: MatchQuery, known: MatchQuery) -> MatchQuery:
    """The part of `query` that `known` does not cover: a row `query` matches matches `known`
    or this (the hashes `known` lacks, per key; new free-text hashes or columns)."""
    have = {(k.column, k.kind): k.hashes for k in known.keys}
    keys = tuple(KeyMatch(k.column, k.kind, rest, k.raw) for k in query.keys
                 if (rest := k.hashes - have.get((k.column, k.kind), frozenset())))
    texts, text_hashes = query.texts, query.text_hashes
    if set(texts) <= set(known.texts):
        text_hashes = text_hashes - known.text_hashes
        texts = texts if text_hashes else ()
    return MatchQuery(keys, texts, text_hashes if texts else frozenset())


def covers(wide: MatchQuery, narrow: MatchQuery) -> bool:
    """True when every row `narrow` matches also matches `wide`: each of its keys is a key of
    `wide` (same column and kind) with a subset of its hashes, and its free-text search is part
    of `wide`'s. What `narrow` collects does not matter."""
    keys = {(k.column, k.kind): k.hashes for k in wide.keys}
    return (all(k.hashes <= keys.get((k.column, k.kind), frozenset()) for k in narrow.keys)
            and set(narrow.texts) <= set(wide.texts)
            and (not narrow.texts or narrow.text_hashes <= wide.text_hashes))


def column_sql(name: str, top_level: set[str]) -> str:
    """A column by its catalog name: `customer.id` is the field `id` of the struct `customer`
    when the relation has no top-level column of that name (sources flatten nested fields)."""
    if name in top_level or "." not in name:
        return quote_ident(name)
    head, *fields = name.split(".")
    return quote_ident(head) + "".join(f"[{quote_literal(f)}]" for f in fields)


def _joined(columns: tuple[str, ...], top_level: set[str]) -> str:
    """SQL joining a row's name columns with spaces."""
    return "concat_ws(' ', " + ", ".join(column_sql(c, top_level) for c in columns) + ")"


def _text_condition(col: str) -> str:
    """True when a free-text value mentions a hashed email, phone number or name."""
    text = f"lower(CAST({col} AS VARCHAR))"
    words = f"regexp_extract_all({text}, '{TEXT_WORD}')"
    return (
        "len(list_intersect(list_concat("
        f"list_transform(regexp_extract_all({text}, '{TEXT_EMAIL}'), lambda e: optout_hmac(e)), "
        f"list_transform(regexp_extract_all({text}, '{TEXT_PHONE}'), "
        "lambda p: optout_hmac(regexp_replace(p, '[^0-9]', '', 'g'))), "
        f"list_transform(range(1, len({words})), "
        f"lambda i: optout_hmac({words}[i] || ' ' || {words}[i + 1]))), "
        "(SELECT list(h) FROM optout_subject_hashes WHERE slot = 'text'))) > 0")


class PythonMatcher:
    """The same matching as SQL functions an engine calls back into (SQLite): normalization,
    keyed hash and set membership run in the engine's process, row by row as it scans."""

    _EMAIL = re.compile(TEXT_EMAIL)
    _PHONE = re.compile(r"\+?[0-9][0-9 ().-]{5,}[0-9]")
    _WORD = re.compile(r"[^\W\d_]+")

    def __init__(self, query: MatchQuery, hasher: KeyedHash) -> None:
        self.query = query
        self.hasher = hasher
        # The engine is told slot numbers only: kinds and hashes stay in Python, so nothing
        # from a plan is ever pasted into SQL.
        for kind in [k.kind for k in query.keys] + [kind for _, kind in query.collect]:
            if kind not in KINDS:
                raise ValueError(f"unknown normalization kind {kind!r}")
        self._raw = [frozenset(k.known(hasher).values()) for k in query.keys]
        # a key all of whose hashes have known values needs no hash of a non-matching row
        self._hashed = [len(r) < len(k.hashes) for r, k in zip(self._raw, query.keys,
                                                               strict=True)]

    def key(self, slot: int, value: object) -> str | None:
        """Keyed hash of a stored value of the `slot`-th collected column, or None for NULL."""
        kind = self.query.collect[slot][1]
        return None if value is None else self.hasher(normalize(kind, value))

    def plain(self, slot: int, value: object) -> str | None:
        """The normalized value of the `slot`-th collected column (in memory only)."""
        kind = self.query.collect[slot][1]
        return None if value is None else normalize(kind, value)

    def name(self, value: object) -> str | None:
        """A normalized person name (kept in memory only), or None when blank."""
        return normalize("name", value) if value is not None and str(value).strip() else None

    def member(self, slot: int, value: object) -> int:
        """1 when the value's keyed hash is among the hashes of the `slot`-th key (its
        normalized value among the values the planner knows: no hash computed then)."""
        if value is None:
            return 0
        k = self.query.keys[slot]
        plain = normalize(k.kind, value)
        if plain in self._raw[slot]:
            return 1
        return int(self._hashed[slot] and self.hasher(plain) in k.hashes)

    def text_hit(self, value: object) -> int:
        """1 when free text mentions a hashed email, phone number or name."""
        if value is None:
            return 0
        return int(any(self.hasher(c) in self.query.text_hashes
                       for _, _, c in mentions(str(value))))


REDACTED = "[REDACTED]"


def mentions(text: str) -> list[tuple[int, int, str]]:
    """Spans of possible mentions of a person in free text, with the normalized form that is
    hashed: emails, phone-number-like runs (digits only) and pairs of adjacent words."""
    lower = lowered(text)  # one character each: the spans are the text's
    spans = [(m.start(), m.end(), m.group()) for m in PythonMatcher._EMAIL.finditer(lower)]
    spans += [(m.start(), m.end(), re.sub(r"\D", "", m.group()))
              for m in PythonMatcher._PHONE.finditer(lower)]
    words = list(PythonMatcher._WORD.finditer(lower))
    spans += [(a.start(), b.end(), f"{a.group()} {b.group()}")
              for a, b in itertools.pairwise(words)]
    return spans


def redact(text: str, hashes: frozenset[str], hasher: KeyedHash) -> tuple[str, int]:
    """The text with every mention whose keyed hash is in `hashes` replaced; and how many."""
    hits = sorted((a, b) for a, b, c in mentions(text) if hasher(c) in hashes)
    merged: list[list[int]] = []
    for a, b in hits:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in reversed(merged):
        text = text[:a] + REDACTED + text[b:]
    return text, len(merged)
