"""CSV and TSV files: rewritten record by record; untouched records keep their exact bytes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pyarrow as pa

from engine.targets.base import (
    ApplyError,
    FileTarget,
    Staged,
    ensure_writable,
    files_checksum,
    fsync_file,
    staged_path,
)


def records(text: str, quote: str) -> list[str]:
    """The file split into records (each with its line ending); a newline inside quotes does
    not end a record (quotes are escaped by doubling, as the CSV standard has it)."""
    out, current, quotes = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        quotes += line.count(quote) if quote else 0
        if quotes % 2 == 0:
            out.append("".join(current))
            current, quotes = [], 0
    if current:
        out.append("".join(current))
    return out


class CsvTarget(FileTarget):
    """One delimited file."""

    formats = ("csv",)

    def _dialect(self) -> tuple[str, str, bool]:
        delim = str(self.options.get("delimiter", ","))
        quote = str(self.options.get("quote") or '"')
        quote = '"' if quote in ("(empty)", "") else quote
        return delim, quote, bool(self.options.get("header", True))

    def _records(self, path: str) -> tuple[str | None, Iterator]:
        """(header record, iterator of (raw record, row dict or None for a blank line))."""
        delim, quote, header = self._dialect()
        with open(path, newline="", encoding="utf-8") as fh:
            recs = records(fh.read(), quote)
        names = (next(csv.reader([recs[0]], delimiter=delim, quotechar=quote))
                 if header and recs else None)

        def rows() -> Iterator:
            for rec in recs[1:] if header else recs:
                if not rec.strip():
                    yield rec, None
                    continue
                fields = next(csv.reader([rec], delimiter=delim, quotechar=quote))
                keys = names or [f"column{i}" for i in range(len(fields))]
                yield rec, dict(zip(keys, fields, strict=False))

        return (recs[0] if header and recs else None), rows()

    def prepare(self) -> Staged:
        path = self.step.location
        delim, quote, _ = self._dialect()
        ensure_writable(path, self.step.dataset)
        head, rows = self._records(path)
        editor = self.editor()
        out = [head] if head is not None else []
        before = changed = 0
        for rec, row in rows:
            if row is None:
                out.append(rec)
                continue
            before += 1
            if not editor.matches(row):
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
            ending = "\r\n" if rec.endswith("\r\n") else "\n" if rec.endswith("\n") else ""
            buf = io.StringIO()
            csv.writer(buf, delimiter=delim, quotechar=quote, lineterminator=ending).writerow(
                list(row.values()))
            out.append(buf.getvalue())
        new = staged_path(path, self.request_id)
        with open(new, "w", newline="", encoding="utf-8") as fh:
            fh.write("".join(out))
        fsync_file(new)
        after = before - (changed if self.deletes else 0)
        return Staged([(path, new)], before, after, changed, files_checksum([path]),
                      files_checksum([new]))

    rebuildable = True

    def prepare_rebuild(self, table: pa.Table) -> Staged:
        """The file with its header record and dialect, holding the rebuilt rows."""
        path = self.step.location
        delim, quote, _ = self._dialect()
        ensure_writable(path, self.step.dataset)
        head, rows = self._records(path)
        before = sum(1 for _, row in rows if row is not None)
        names = (next(csv.reader([head], delimiter=delim, quotechar=quote)) if head
                 else table.column_names)
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise ApplyError(f"{self.step.dataset}: the rebuilt rows have no column "
                             f"{missing[0]!r}, which the file has")
        ending = "\r\n" if head and head.endswith("\r\n") else "\n"
        buf = io.StringIO()
        if head is not None:
            buf.write(head if head.endswith(("\n", "\r")) else head + ending)
        writer = csv.writer(buf, delimiter=delim, quotechar=quote, lineterminator=ending)
        for row in table.select(names).to_pylist():
            writer.writerow([_text(row[n]) for n in names])
        new = staged_path(path, self.request_id)
        with open(new, "w", newline="", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
        fsync_file(new)
        after = sum(1 for _, row in self._records(new)[1] if row is not None)
        return Staged([(path, new)], before, after, before - after, files_checksum([path]),
                      files_checksum([new]), rows_expected=table.num_rows)

    def count_residue(self, path: str, original: str | None = None) -> int:
        _, rows = self._records(path)
        editor = self.residue_editor()
        return sum(1 for _, row in rows if row is not None and editor.matches(row))


def _text(value: object) -> str:
    """A rebuilt value as CSV text (no value: an empty field)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
