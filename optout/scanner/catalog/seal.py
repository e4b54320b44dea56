"""Seals: a MAC under the catalog secret on every row that decides access or an outcome.

Principals, tokens, approvals, recorded plans and the apply journal are plain rows in a DuckDB
file. Whoever can write that file could insert an admin principal with a token of their own, an
approval, or a journal step marked `committed`. Each such row therefore carries `mac`, an
HMAC-SHA256 of the row's other columns (in table order) under a key derived from the catalog
secret for that table alone; readers that decide something check it (`read`), and
`optout audit verify` checks every row (`verify_all`). Without the key file a row cannot be
forged or edited, only deleted (which takes rights away, never grants them) or replaced by an
older sealed version of itself (a limit the README's security model names).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import duckdb

from optout.model.errors import CatalogError

#: sealed tables and the columns that name a row in an error
SEALED = {
    "principals": ("name",),
    "tokens": ("id",),
    "approvals": ("plan_hash", "approver"),
    "plans": ("content_hash",),
    "requests": ("id",),
    "request_steps": ("request_id", "step_no"),
    "deployment_configs": ("digest",),
    "stored_policies": ("name", "digest"),
    "catalog_state": ("schema_version",),
    "request_events": ("request_id", "status"),
    "request_clocks": ("request_id",),
    "request_verifications": ("request_id",),
}


class SealError(CatalogError):
    """A sealed row whose MAC does not match: the catalog file was edited outside optout."""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def mac(secret: bytes, table: str, values: list[Any] | tuple[Any, ...]) -> str:
    """The seal of one row of `table` (its values without `mac`, in table order)."""
    key = hmac.new(secret, f"optout row seal v1 {table}".encode(), hashlib.sha256).digest()
    body = json.dumps(list(values), default=_plain, separators=(",", ":"), sort_keys=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def seal(con: duckdb.DuckDBPyConnection, secret: bytes, table: str, where: str = "true",
         params: list[Any] | None = None) -> int:
    """(Re)seal the rows of `table` matching `where`, as they are now; returns how many.
    Call it in the transaction that wrote them."""
    rows = con.execute(f"SELECT rowid, * EXCLUDE (mac) FROM {table} WHERE {where}",
                       params or []).fetchall()
    if rows:
        con.executemany(f"UPDATE {table} SET mac = ? WHERE rowid = ?",
                        [[mac(secret, table, r[1:]), r[0]] for r in rows])
    return len(rows)


def read(con: duckdb.DuckDBPyConnection, secret: bytes, table: str, where: str = "true",
         params: list[Any] | None = None, order: str = "") -> list[dict[str, Any]]:
    """The rows of `table` matching `where` as dicts (without `mac`), each checked against
    its seal; SealError names the first row that was forged or edited."""
    cur = con.execute(f"SELECT * EXCLUDE (mac), mac FROM {table} WHERE {where} {order}",
                      params or [])
    names = [d[0] for d in cur.description][:-1]
    out = []
    for row in cur.fetchall():
        values, seal_ = row[:-1], row[-1]
        if not seal_ or not hmac.compare_digest(seal_, mac(secret, table, values)):
            record = dict(zip(names, values, strict=True))
            which = ", ".join(f"{k}={record[k]!r}" for k in SEALED[table])
            raise SealError(f"{table} row ({which}) does not carry this catalog's seal: it was "
                            "written or edited outside optout; refused")
        out.append(dict(zip(names, values, strict=True)))
    return out


def verify_all(con: duckdb.DuckDBPyConnection, secret: bytes) -> dict[str, int]:
    """Check every sealed row of the catalog; returns rows checked per table."""
    return {table: len(read(con, secret, table)) for table in SEALED}
