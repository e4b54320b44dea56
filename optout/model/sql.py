"""Quoting for SQL text we build: identifiers and literals, for DuckDB, PostgreSQL and SQLite."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A SQL identifier, double-quoted with embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal, single-quoted with embedded quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
