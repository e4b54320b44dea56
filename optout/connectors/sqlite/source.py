"""SQLite files: every table and view, read through Python's sqlite3 in read-only mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from optout.connectors.source import Source, file_fingerprint, rows_to_arrow
from optout.model.dataset import DatasetRef, ForeignKey, Sample
from optout.model.errors import DatasetUnreadable, SourceUnavailable
from optout.model.matching import MatchQuery, MatchResult, PythonMatcher
from optout.model.redaction import one_line
from optout.model.sampling import reservoir, windows
from optout.model.secret import KeyedHash
from optout.model.sql import quote_ident

MAGIC = b"SQLite format 3\x00"


class SQLiteSource(Source):
    """A `.sqlite`, `.sqlite3` or `.db` file. Tables are sampled by rowid; views by a reservoir."""

    kind = "sqlite"
    seekable = True

    def __init__(self, location: str) -> None:
        super().__init__(location)
        try:
            with open(location, "rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise SourceUnavailable(f"{location}: {exc.strerror}") from exc
        if header != MAGIC:
            raise SourceUnavailable(f"{location}: not a SQLite database")
        uri = Path(location).resolve().as_uri() + "?mode=ro"
        self._con = sqlite3.connect(uri, uri=True)

    def datasets(self) -> Iterator[DatasetRef]:
        try:
            rows = self._con.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise SourceUnavailable(f"{self.location}: {one_line(exc)}") from exc
        for name, kind in rows:
            yield DatasetRef(self.kind, self.location, name, kind, "sqlite", (("table", name),))

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        rel = quote_ident(ref.option("table"))
        try:
            info = self._con.execute(f"PRAGMA table_info({rel})").fetchall()
            declared = {r[1]: (r[2] or "ANY") for r in info}
            total = self._con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
            if ref.kind == "table" and self._has_rowid(rel):
                # Windows over the rowid range: each is a b-tree seek, never a full scan.
                lo, hi = self._con.execute(f"SELECT min(rowid), max(rowid) FROM {rel}").fetchone()
                picked: list[tuple] = []
                cur = self._con.execute(f"SELECT * FROM {rel} LIMIT 0")
                for start, end in windows(0 if lo is None else hi - lo + 1, rows, seed):
                    cur = self._con.execute(
                        f"SELECT * FROM {rel} WHERE rowid BETWEEN ? AND ?",
                        (lo + start, lo + end - 1),
                    )
                    picked.extend(cur.fetchall())
            else:
                cur = self._con.execute(f"SELECT * FROM {rel}")
                picked, _ = reservoir(cur, rows, seed)
            names = [d[0] for d in cur.description]
        except sqlite3.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return Sample(rows_to_arrow(names, picked), int(total), declared_types=declared)

    def _has_rowid(self, rel: str) -> bool:
        try:
            self._con.execute(f"SELECT rowid FROM {rel} LIMIT 0")
            return True
        except sqlite3.OperationalError:
            return False

    def foreign_keys(self, ref: DatasetRef) -> list[ForeignKey]:
        if ref.kind != "table":
            return []
        rows = self._con.execute(
            f"PRAGMA foreign_key_list({quote_ident(ref.option('table'))})").fetchall()
        grouped: dict[int, list[tuple]] = {}
        for row in rows:  # id, seq, table, from, to, ...
            grouped.setdefault(row[0], []).append(row)
        return [ForeignKey(tuple(r[3] for r in fk), fk[0][2],
                           tuple(r[4] or r[3] for r in fk)) for fk in grouped.values()]

    def definition(self, ref: DatasetRef) -> str | None:
        if ref.kind != "view":
            return None
        row = self._con.execute("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?",
                                (ref.option("table"),)).fetchone()
        return row[0] if row else None

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        if not query.keys and not query.texts:
            return MatchResult()
        m = PythonMatcher(query, hasher)
        self._con.create_function("optout_member", 2, m.member, deterministic=True)
        self._con.create_function("optout_key", 2, m.key, deterministic=True)
        self._con.create_function("optout_text_hit", 1, m.text_hit, deterministic=True)
        self._con.create_function("optout_name", 1, m.name, deterministic=True)
        conditions = [f"optout_member({i}, {quote_ident(k.column)})"
                      for i, k in enumerate(query.keys)]
        conditions += [f"optout_text_hit({quote_ident(c)})" for c in query.texts]
        where = " OR ".join(conditions)
        rel = quote_ident(ref.option("table"))
        selects = [f"optout_key({i}, {quote_ident(column)})"
                   for i, (column, _) in enumerate(query.collect)]
        if query.raw_collect:
            self._con.create_function("optout_plain", 2, m.plain, deterministic=True)
            selects += [f"optout_plain({i}, {quote_ident(column)})"
                        for i, (column, _) in enumerate(query.collect)]
        selects += ["optout_name(" + " || ' ' || ".join(f"coalesce({quote_ident(c)}, '')"
                                                       for c in group) + ")"
                    for group in query.names]
        grouped = (" GROUP BY " + ", ".join(str(i + 1) for i in range(len(selects)))
                   if selects else "")
        try:
            rows = self._con.execute(
                f"SELECT {', '.join([*selects, 'count(*)'])} FROM {rel} WHERE {where}"
                f"{grouped} LIMIT {query.limit + 1}").fetchall()
        except sqlite3.Error as exc:
            raise DatasetUnreadable(one_line(exc)) from exc
        return MatchResult.from_groups([r for r in rows if r[-1]], query)

    def fingerprint(self, ref: DatasetRef) -> str:
        return file_fingerprint(self.location, salt=ref.name)

    def close(self) -> None:
        self._con.close()
