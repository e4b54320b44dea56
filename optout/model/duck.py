"""The in-memory DuckDB every part of optout reads and matches with."""

from __future__ import annotations

import duckdb


def memory_duckdb(threads: int | None = 1) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads files and never fetches extensions; one thread by
    default, so seeded samples repeat exactly (None: every core, for full passes). It never
    spills to disk (no temporary directory): what it holds (samples of PII, the request's
    identifier values while planning) stays in memory."""
    config: dict[str, object] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "temp_directory": "",
    }
    if threads is not None:
        config["threads"] = threads
    return duckdb.connect(":memory:", config=config)
