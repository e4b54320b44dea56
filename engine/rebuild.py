"""The SQL a derived dataset is rebuilt from, taken into the plan when the plan is made.

Apply runs the text the plan carries (covered by its content hash, approved with it), never a
file read again at apply time: a file swapped after approval changes nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError


def select_of(sql_text: str) -> str | None:
    """The SELECT of a CREATE ... AS SELECT, an INSERT ... SELECT, or a bare SELECT file."""
    try:
        statements = sqlglot.parse(sql_text, dialect="duckdb")
    except ParseError:
        return None
    for statement in statements:
        if isinstance(statement, exp.Create | exp.Insert) and isinstance(
                statement.expression, exp.Query):
            return statement.expression.sql(dialect="duckdb")
        if isinstance(statement, exp.Query):
            return statement.sql(dialect="duckdb")
    return None


def rebuild_params(sql_file: str) -> tuple[tuple[str, object], ...]:
    """The plan's params for a rebuild from `sql_file`: its path, its SELECT and the SELECT's
    sha256 (no SELECT when the file is unreadable or holds none: apply then refuses)."""
    try:
        select = select_of(Path(sql_file).read_text())
    except OSError:
        select = None
    if select is None:
        return (("sql_file", sql_file),)
    return (("sql_file", sql_file), ("sql", select),
            ("sql_sha256", hashlib.sha256(select.encode()).hexdigest()))
