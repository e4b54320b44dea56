"""A DuckDB file rewritten whole after an erasure: DuckDB writes changed blocks elsewhere in
the file and keeps the old ones until it happens to reuse them (no VACUUM zeroes them), so the
committed database is copied into a fresh file (`COPY FROM DATABASE`: tables, views, macros,
sequences at their current values, constraints), synced, and renamed over the old one."""

from __future__ import annotations

import contextlib
import os
import secrets

import duckdb

from optout.connectors.physical import FREED_BLOCKS, Reach, Store, database_files
from optout.connectors.target import STAGED_SUFFIX, ApplyError, fsync_file
from optout.model.faults import fault
from optout.model.redaction import one_line
from optout.model.sql import quote_ident

_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def _leftovers(path: str, request_id: str) -> list[str]:
    head, tail = os.path.split(path)
    prefix = f".{tail}.{request_id}.physical."
    return [os.path.join(head, f) for f in os.listdir(head or ".")
            if f.startswith(prefix) and (f.endswith(STAGED_SUFFIX)
                                         or f.endswith(STAGED_SUFFIX + ".wal"))]


def rewrite(path: str, request_id: str) -> int:
    """Rewrite a DuckDB file into a fresh one in its place; returns the new size in bytes."""
    st = os.stat(path)
    if st.st_nlink > 1:
        raise ApplyError(f"{path} has {st.st_nlink} hard links: the other names would keep "
                         "the old blocks after the rewrite")
    for old in _leftovers(path, request_id):  # a rewrite that died half-way
        os.unlink(old)
    head, tail = os.path.split(path)
    new = os.path.join(head, f".{tail}.{request_id}.physical.{secrets.token_hex(6)}"
                       f"{STAGED_SUFFIX}")
    try:
        con = duckdb.connect(path, config=_CONFIG)  # folds a write-ahead log into the file
        con.execute("CHECKPOINT")
        con.close()
        con = duckdb.connect(new, config=_CONFIG)
        try:
            fresh = con.execute("SELECT current_database()").fetchone()[0]
            con.execute(f"ATTACH {_literal(path)} AS optout_old (READ_ONLY)")
            con.execute(f"COPY FROM DATABASE optout_old TO {quote_ident(fresh)}")
            con.execute("DETACH optout_old")
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except duckdb.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(new)
        raise ApplyError(f"{path}: the rewrite into a fresh file failed: {one_line(exc)}"
                         ) from exc
    os.chmod(new, st.st_mode & 0o7777)
    if os.geteuid() in (0, st.st_uid):
        with contextlib.suppress(PermissionError):
            os.chown(new, st.st_uid, st.st_gid)
    fsync_file(new)
    fault("physical-duckdb")  # the fresh file written, the old one still in place
    os.replace(new, path)
    fsync_file(path)
    return os.path.getsize(path)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBStore(Store):
    """A DuckDB database file."""

    def erase(self) -> list[str]:
        before = os.path.getsize(self.location)
        after = rewrite(self.location, self.request_id)
        return [f"rewritten into a fresh file ({before:,} → {after:,} bytes); the old file "
                "unlinked"]

    def reach(self) -> Reach:
        return Reach(files=database_files(self.location, (".wal",)))

    def outside(self) -> list[str]:
        return [FREED_BLOCKS, "DuckDB may compress strings in storage (dictionary, FSST): "
                "a raw read sees only values stored plain; the rewrite is what leaves no old "
                "block"]
