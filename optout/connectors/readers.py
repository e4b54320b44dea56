"""How DuckDB reads a file dataset, from its format, its files and the options the catalog
recorded for it (a CSV's dialect, a folder's hive partitioning): the same reader whether the
files are the dataset's own or the staged versions apply wrote beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optout.model.sql import quote_literal

#: formats whose datasets DuckDB reads by a table function over their files
FILE_FORMATS = ("parquet", "csv", "json", "log")


def literal_list(items: Sequence[str]) -> str:
    """A DuckDB list literal of strings."""
    return "[" + ", ".join(quote_literal(i) for i in items) + "]"


def reader_sql(fmt: str, paths: Sequence[str], options: dict[str, Any]) -> str:
    """The DuckDB table function call reading `paths` as a dataset of format `fmt`."""
    if fmt == "parquet":
        hive = "true" if options.get("hive") else "false"
        return (f"read_parquet({literal_list(paths)}, hive_partitioning={hive}, "
                "union_by_name=true)")
    if fmt == "csv":
        delim = str(options.get("delimiter") or ",")
        quote = options.get("quote")
        escape = options.get("escape")
        extra = "".join(f", {k}={quote_literal(str(v))}" for k, v in (("quote", quote),
                                                                     ("escape", escape))
                        if v not in (None, "", "\x00", "(empty)"))
        return (f"read_csv({literal_list(paths)}, delim={quote_literal(delim)}, "
                f"header={'true' if options.get('header', True) else 'false'}{extra}, "
                "strict_mode=true)")
    if fmt == "json":
        lines = "newline_delimited" if options.get("lines") else "auto"
        return f"read_json({literal_list(paths)}, format={quote_literal(lines)})"
    if fmt == "log":
        # A delimiter that never occurs in text and no quoting: every line is one value as is.
        return (f"read_csv({literal_list(paths)}, columns={{'line': 'VARCHAR'}}, "
                "delim='\x1f', header=false, quote='', escape='', auto_detect=false, "
                "strict_mode=false)")
    raise ValueError(f"no file reader for format {fmt!r}")
