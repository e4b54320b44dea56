"""`optout catalog export --format csv`: one row per column of every dataset, safe to open in a
spreadsheet (a cell from the data that starts like a formula is prefixed with `'`, as OWASP's
CSV injection guidance has it: `=HYPERLINK(...)` in a column name stays text)."""

from __future__ import annotations

import csv
import json
from typing import IO, Any

HEADER = ["dataset_id", "dataset", "kind", "location", "row_count", "column", "type", "pii",
          "entity", "score", "identifier", "free_text", "entities", "sensitivity", "category",
          "evidence"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(value: Any) -> Any:
    """A value a spreadsheet will not run."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def write_columns(data: dict[str, Any], out: IO[str]) -> None:
    """The catalog export (its JSON form) as CSV rows, one per column."""
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for d in data["datasets"]:
        for c in d["columns"]:
            writer.writerow([cell(v) for v in (
                d["id"], d["name"], d["kind"], d["location"], d["row_count"], c["name"],
                c["type"], c["pii"], c["entity"], c["score"], c["identifier"], c["free_text"],
                json.dumps(c["entities"]), c.get("sensitivity"), c.get("category"),
                c.get("evidence"))])
