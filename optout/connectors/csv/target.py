"""CSV and TSV files: rewritten record by record in the dialect the scan sniffed (delimiter,
quote, escape); untouched records keep their exact bytes.

Records are split the way DuckDB reads the file (a newline inside quotes, an escaped or doubled
quote, do not end a record), and every count is checked against DuckDB's own reading of the
file: when optout and DuckDB disagree on where records begin, optout cannot tell which bytes
are whose, and the step is refused rather than guessed. The staged version is read back by
DuckDB as well as by optout: both must find none of the subject's rows and the same count.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from optout.connectors.readers import reader_sql
from optout.connectors.target import (
    ApplyError,
    FileTarget,
    Staged,
    ensure_writable,
    files_checksum,
    write_staged_text,
)
from optout.model.duck import memory_duckdb
from optout.model.matching import DuckDBMatcher, MatchQuery
from optout.model.redaction import one_line

_NONE = ("", "(empty)", "\x00", None)


@dataclass(frozen=True)
class Dialect:
    """How a file's records are written: the scan's sniffed dialect."""

    delimiter: str = ","
    quote: str = '"'  # "" when fields are never quoted
    escape: str = '"'  # the quote itself: quotes are doubled inside quoted fields
    header: bool = True

    @classmethod
    def of(cls, options: dict[str, Any]) -> Dialect:
        """The dialect the catalog recorded for a dataset."""
        quote = "" if options.get("quote") in _NONE else str(options["quote"])
        escape = "" if options.get("escape") in _NONE else str(options["escape"])
        return cls(str(options.get("delimiter") or ","), quote, escape or quote,
                   bool(options.get("header", True)))

    def csv_args(self) -> dict[str, Any]:
        """Python's csv module arguments for this dialect."""
        if not self.quote:
            return {"delimiter": self.delimiter, "quoting": csv.QUOTE_NONE,
                    "escapechar": self.escape or None}
        backslash = bool(self.escape) and self.escape != self.quote
        return {"delimiter": self.delimiter, "quotechar": self.quote,
                "escapechar": self.escape if backslash else None, "doublequote": not backslash}

    def problem(self) -> str | None:
        """Why optout cannot write this dialect back, if it cannot."""
        for name, value in (("delimiter", self.delimiter), ("quote", self.quote),
                            ("escape", self.escape)):
            if len(value) > 1:
                return f"its {name} {value!r} is longer than one character"
        return None


def split_records(text: str, dialect: Dialect) -> list[str]:
    """The file's records, each with its line ending, split as a CSV reader reads them."""
    quote, escape = dialect.quote, dialect.escape
    special = re.compile("|".join(re.escape(c) for c in {quote, escape, "\n", "\r"} if c))
    out: list[str] = []
    start = 0
    quoted = False
    skip_to = -1
    for m in special.finditer(text):
        i, c = m.start(), m.group()
        if i < skip_to:
            continue
        if quoted:
            if escape and escape != quote and c == escape:
                skip_to = i + 2  # the next character is taken as it is
            elif c == quote:
                if text.startswith(quote, i + 1):
                    skip_to = i + 2  # a doubled quote
                else:
                    quoted = False
        elif quote and c == quote:
            # a quote opens a quoted field only where a field starts, as CSV readers have it
            quoted = i == start or text[i - 1] == dialect.delimiter
        elif c == "\n" or (c == "\r" and not text.startswith("\n", i + 1)):
            out.append(text[start:i + 1])
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return out


class CsvTarget(FileTarget):
    """One delimited file."""

    formats = ("csv",)

    @property
    def dialect(self) -> Dialect:
        """The file's dialect, as the scan sniffed it."""
        return Dialect.of(self.options)

    def _read(self, path: str) -> tuple[str | None, list[str], list[str] | None]:
        """(header record, data records, column names)."""
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError as exc:
            raise ApplyError(f"{self.step.dataset}: {path} is not UTF-8 text (byte "
                             f"{exc.start}): optout writes CSV back only as UTF-8") from None
        recs = split_records(text, self.dialect)
        if not self.dialect.header or not recs:
            return None, recs, None
        return recs[0], recs[1:], self._fields(recs[0])

    def _fields(self, record: str) -> list[str]:
        try:
            return next(csv.reader([record], **self.dialect.csv_args()), [])
        except csv.Error as exc:
            raise ApplyError(f"{self.step.dataset}: a record cannot be read in the file's "
                             f"dialect ({one_line(exc)})") from None

    def _rows(self, path: str):
        """(header, [(raw record, row dict or None for a blank line)])."""
        head, recs, names = self._read(path)
        rows = []
        for rec in recs:
            if not rec.strip("\r\n"):
                rows.append((rec, None))
                continue
            fields = self._fields(rec)
            keys = names or [f"column{i}" for i in range(len(fields))]
            rows.append((rec, dict(zip(keys, fields, strict=False))))
        return head, rows

    def _duckdb_count(self, path: str) -> int:
        """How many records DuckDB reads in the file (the independent reader)."""
        con = memory_duckdb()
        try:
            return con.execute(f"SELECT count(*) FROM {self._reader(path)}").fetchall()[0][0]
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: DuckDB cannot read {path} in its sniffed "
                             f"dialect: {one_line(exc)}") from None
        finally:
            con.close()

    def _reader(self, path: str) -> str:
        return reader_sql("csv", [path], self.options)

    def _agree(self, path: str, ours: int) -> None:
        theirs = self._duckdb_count(path)
        if theirs != ours:
            raise ApplyError(f"{self.step.dataset}: optout splits {path} into {ours} records, "
                             f"DuckDB reads {theirs}: its dialect cannot be reproduced, so no "
                             "record of it is changed")

    def executable(self) -> str | None:
        problem = super().executable() or self.dialect.problem()
        if problem:
            return problem
        try:
            _, rows = self._rows(self.step.location)
            self._agree(self.step.location, sum(1 for _, r in rows if r is not None))
        except ApplyError as exc:
            return str(exc).removeprefix(f"{self.step.dataset}: ")
        return None

    def prepare(self) -> Staged:
        path = self.step.location
        ensure_writable(path, self.step.dataset)
        head, rows = self._rows(path)
        before = sum(1 for _, r in rows if r is not None)
        self._agree(path, before)
        editor = self.editor()
        out = [head] if head is not None else []
        changed = 0
        for rec, row in rows:
            if row is None or not editor.matches(row):
                out.append(rec)
                continue
            changed += 1
            edit = editor.edit(row)
            if edit is None:
                continue
            if not edit:
                out.append(rec)
                continue
            row.update({k: "" if v is None else str(v) for k, v in edit.items()})
            ending = rec[len(rec.rstrip("\r\n")):]
            buf = io.StringIO()
            csv.writer(buf, lineterminator=ending, **self.dialect.csv_args()).writerow(
                list(row.values()))
            out.append(buf.getvalue())
        new = write_staged_text(path, self.request_id, "".join(out))
        after = before - (changed if self.deletes else 0)
        return Staged([(path, new)], before, after, changed, files_checksum([path]),
                      files_checksum([new]))

    def check(self, staged: Staged) -> None:
        super().check(staged)
        for _, new in staged.files:
            self._agree(new, staged.rows_after)

    def prepare_rebuild(self, table: pa.Table) -> Staged:
        """The file with its header record and dialect, holding the rebuilt rows."""
        path = self.step.location
        ensure_writable(path, self.step.dataset)
        head, rows = self._rows(path)
        before = sum(1 for _, row in rows if row is not None)
        names = self._fields(head) if head else table.column_names
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise ApplyError(f"{self.step.dataset}: the rebuilt rows have no column "
                             f"{missing[0]!r}, which the file has")
        ending = "\r\n" if head and head.endswith("\r\n") else "\n"
        buf = io.StringIO()
        if head is not None:
            buf.write(head if head.endswith(("\n", "\r")) else head + ending)
        writer = csv.writer(buf, lineterminator=ending, **self.dialect.csv_args())
        for row in table.select(names).to_pylist():
            writer.writerow([_text(row[n]) for n in names])
        new = write_staged_text(path, self.request_id, buf.getvalue())
        after = sum(1 for _, row in self._rows(new)[1] if row is not None)
        return Staged([(path, new)], before, after, before - after, files_checksum([path]),
                      files_checksum([new]), rows_expected=table.num_rows)

    def count_residue(self, path: str, original: str | None = None) -> int:
        """Rows still carrying what the step removes, by optout's reading and DuckDB's (their
        sum: either finding one fails the check)."""
        _, rows = self._rows(path)
        editor = self.residue_editor()
        ours = sum(1 for _, row in rows if row is not None and editor.matches(row))
        return ours + self._duckdb_residue(path, self.residue_query())

    def _duckdb_residue(self, path: str, query: MatchQuery) -> int:
        if not query.keys and not query.texts:
            return 0
        con = memory_duckdb()
        try:
            return DuckDBMatcher(con, self.hasher).match(self._reader(path), query).rows
        except duckdb.Error as exc:
            raise ApplyError(f"{self.step.dataset}: DuckDB cannot read {path}: "
                             f"{one_line(exc)}") from None
        finally:
            con.close()


def _text(value: object) -> str:
    """A rebuilt value as CSV text (no value: an empty field)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
