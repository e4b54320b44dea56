"""The rebuild sandbox: a DuckDB connection that reads only the relations it is handed.

A derived dataset is rebuilt by running the SELECT its plan carries. That text came from a
file someone can write, so it runs where it can do nothing but read its upstream datasets:
an in-memory DuckDB with external access off (no `read_text('<catalog>.key')`, no
`/proc/self/environ`, no ATTACH, COPY, extension installs or `getenv`), the configuration
locked, and each upstream registered under the placeholder name the plan bound it to — a
file reader over paths DuckDB is told it may open (`allowed_paths`), or an Arrow stream read
by optout from a database's open transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from optout.model.duck import memory_duckdb
from optout.model.errors import EngineError
from optout.model.redaction import one_line
from optout.model.sql import quote_ident, quote_literal


class SandboxError(EngineError):
    """The rebuild SQL failed, or tried to read something it was not given."""


@dataclass(frozen=True)
class Relation:
    """How the sandbox reads one upstream dataset: a DuckDB reader over `paths` (a table
    function call), or Arrow data handed over as it is."""

    reader: str = ""
    paths: tuple[str, ...] = ()
    arrow: pa.Table | pa.RecordBatchReader | None = None


def run_select(select: str, relations: dict[str, Relation]) -> pa.Table:
    """The result of `select` over `relations` (placeholder name → relation), computed where
    nothing else can be read or written."""
    con = memory_duckdb(threads=None)
    try:
        paths = sorted({p for r in relations.values() for p in r.paths})
        if paths:
            con.execute(f"SET allowed_paths = [{', '.join(quote_literal(p) for p in paths)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        for name, relation in relations.items():
            if relation.arrow is not None:
                con.register(f"{name}__arrow", relation.arrow)
                con.execute(f"CREATE TEMP VIEW {quote_ident(name)} AS SELECT * FROM "
                            f"{quote_ident(name + '__arrow')}")
            else:
                con.execute(f"CREATE TEMP VIEW {quote_ident(name)} AS SELECT * FROM "
                            f"{relation.reader}")
        return con.sql(select).to_arrow_table()
    except duckdb.Error as exc:
        raise SandboxError(one_line(exc)) from exc
    finally:
        con.close()
