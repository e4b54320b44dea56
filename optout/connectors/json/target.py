"""JSON Lines (record by record; untouched lines keep their exact bytes) and JSON arrays
(parsed and written back; JSON has no byte-stable form for a changed array)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa

from optout.connectors.rows import Flat, RowEditor, set_path
from optout.connectors.target import (
    ApplyError,
    FileTarget,
    Staged,
    ensure_writable,
    files_checksum,
    write_staged_text,
)
from optout.model.redaction import one_line


class JsonTarget(FileTarget):
    """One JSON or JSON Lines file."""

    formats = ("json",)

    @property
    def lines(self) -> bool:
        """True for JSON Lines."""
        return bool(self.options.get("lines"))

    def _load_array(self, path: str) -> list:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ApplyError(f"{self.step.dataset}: cannot read {path}: {one_line(exc)}") from exc
        if not isinstance(data, list):
            raise ApplyError(f"{self.step.dataset}: {path} is not a JSON array")
        return data

    def prepare(self) -> Staged:
        path = self.step.location
        editor = self.editor()
        ensure_writable(path, self.step.dataset)
        before = changed = 0
        if self.lines:
            out = []
            with open(path, encoding="utf-8", newline="") as fh:
                for line in fh:
                    if not line.strip():
                        out.append(line)
                        continue
                    before += 1
                    record = json.loads(line)
                    if not editor.matches(Flat(record)):
                        out.append(line)
                        continue
                    changed += 1
                    if _edited(editor, record):
                        ending = "\n" if line.endswith("\n") else ""
                        out.append(json.dumps(record, ensure_ascii=False) + ending)
            text = "".join(out)
        else:
            kept = []
            for record in self._load_array(path):
                before += 1
                if not isinstance(record, dict) or not editor.matches(Flat(record)):
                    kept.append(record)
                    continue
                changed += 1
                if _edited(editor, record):
                    kept.append(record)
            text = json.dumps(kept, indent=1, ensure_ascii=False)
        new = write_staged_text(path, self.request_id, text)
        after = before - (changed if self.deletes else 0)
        return Staged([(path, new)], before, after, changed, files_checksum([path]),
                      files_checksum([new]))


    def prepare_rebuild(self, table: pa.Table) -> Staged:
        """The file (JSON Lines or an array) holding the rebuilt rows."""
        path = self.step.location
        ensure_writable(path, self.step.dataset)
        before = self._count(path)
        rows = table.to_pylist()
        if self.lines:
            text = "".join(json.dumps(r, ensure_ascii=False, default=_plain) + "\n"
                           for r in rows)
        else:
            text = json.dumps(rows, indent=1, ensure_ascii=False, default=_plain)
        new = write_staged_text(path, self.request_id, text)
        after = self._count(new)
        return Staged([(path, new)], before, after, before - after, files_checksum([path]),
                      files_checksum([new]), rows_expected=table.num_rows)

    def _count(self, path: str) -> int:
        if self.lines:
            with open(path, encoding="utf-8") as fh:
                return sum(1 for line in fh if line.strip())
        return len(self._load_array(path))

    def count_residue(self, path: str, original: str | None = None) -> int:
        editor = self.residue_editor()
        if self.lines:
            with open(path, encoding="utf-8") as fh:
                return sum(1 for line in fh
                           if line.strip() and editor.matches(Flat(json.loads(line))))
        return sum(1 for r in self._load_array(path)
                   if isinstance(r, dict) and editor.matches(Flat(r)))


def _edited(editor: RowEditor, record: dict) -> bool:
    """Apply the step to a matched record in place; False when the record is deleted."""
    edit = editor.edit(Flat(record))
    if edit is None:
        return False
    for column, value in edit.items():
        set_path(record, column, value)
    return True


def _plain(value: object) -> object:
    """A rebuilt value JSON has no type for: dates as ISO text, decimals as numbers."""
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)
