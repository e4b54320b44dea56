"""PostgreSQL after an erasure: a DELETE or UPDATE leaves the old tuples in the heap (and its
TOAST table and indexes) until the space is reused. The touched tables are rewritten
(`VACUUM FULL`: new heap, TOAST and index files; the old ones are truncated at commit and
unlinked at the next checkpoint), or, for tables a policy names lock-friendly, vacuumed in place
(dead tuples freed, their bytes left until reused). Then `CHECKPOINT` and `pg_switch_wal()`, so
the erasure's write-ahead log is closed and recycled in due course. The files are read raw
only when optout runs beside the server and may read its data directory."""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any

import psycopg
from psycopg import sql

from optout.connectors.physical import Reach, Store
from optout.connectors.postgres.source import redact_uri
from optout.connectors.target import ApplyError
from optout.model.faults import fault
from optout.model.redaction import one_line

SNAPSHOT_WAIT_S = 30.0
LOCK_WAIT_S = 30


def _connect(uri: str) -> psycopg.Connection:
    try:
        return psycopg.connect(uri, connect_timeout=5, autocommit=True)
    except psycopg.Error as exc:
        raise ApplyError(f"cannot connect to {redact_uri(uri)}: {one_line(exc)}") from exc


class PostgresStore(Store):
    """The tables a plan changed in one PostgreSQL database."""

    @property
    def name(self) -> str:
        return redact_uri(self.location)

    def tables(self) -> list[tuple[str, str, str]]:
        """(schema, table, dataset) of the touched tables."""
        seen = {}
        for s in self.steps:
            o = dict(s.options)
            seen[(o["schema"], o["table"])] = s.dataset
        return [(schema, table, d) for (schema, table), d in sorted(seen.items())]

    def _holders(self, con: Any, horizon: str) -> list[str]:
        """Other sessions of this database whose snapshot or transaction is older than the
        erasure's commit: VACUUM FULL must copy the rows they may still see."""
        rows = con.execute(
            "SELECT pid, coalesce(nullif(application_name, ''), usename::text, '?'), state, "
            "now() - xact_start FROM pg_stat_activity WHERE datname = current_database() AND "
            "pid <> pg_backend_pid() AND greatest(age(backend_xmin), age(backend_xid)) >= "
            "age(%s::xid)", [horizon]).fetchall()
        return [f"pid {pid} ({app!r}, {state}, transaction open for {str(age).split('.')[0]})"
                for pid, app, state, age in rows]

    def _await_snapshots(self, con: Any) -> str | None:
        """Waits (bounded) until no other session could still see the erased rows."""
        horizon = con.execute(
            "SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint % 4294967296)::text"
        ).fetchone()[0]
        deadline = time.monotonic() + SNAPSHOT_WAIT_S
        while holders := self._holders(con, horizon):
            if time.monotonic() >= deadline:
                self.holders = holders
                return (f"waited {SNAPSHOT_WAIT_S:.0f} s for {len(holders)} session(s) whose "
                        "snapshot may still see the erased rows (VACUUM FULL keeps those): "
                        + ", ".join(holders))
            time.sleep(0.5)
        self.holders = []
        return None

    def residue_hint(self) -> str:
        if not getattr(self, "holders", None):
            return ""
        return ("; sessions with an older snapshot keep the rows: " + ", ".join(self.holders)
                + ". End them (pg_terminate_backend) or let them finish, then `optout resume`")

    def erase(self) -> list[str]:
        done = []
        with _connect(self.location) as con:
            # a session holding a lock on a table would block the rewrite for good: wait a
            # bounded time, then fail (retried, and blocked with the reason)
            con.execute(f"SET lock_timeout = '{LOCK_WAIT_S}s'")
            waited = self._await_snapshots(con)
            if waited:
                done.append(waited)
            for schema, table, dataset in self.tables():
                rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                full = not self.settings.is_lock_friendly(dataset)
                try:
                    con.execute(sql.SQL("VACUUM FULL {}" if full else "VACUUM {}").format(rel))
                except psycopg.Error as exc:
                    raise ApplyError(f"{dataset}: VACUUM{' FULL' if full else ''} failed: "
                                     f"{one_line(exc)}") from exc
                done.append(f"{schema}.{table}: " + (
                    "rewritten by VACUUM FULL (heap, TOAST and indexes into new files)" if full
                    else "VACUUM (lock-friendly by policy): dead tuples freed in place; their "
                    "bytes stay in the files until the space is reused"))
            fault("physical-postgres")  # tables rewritten, no checkpoint yet
            for statement, what in (("CHECKPOINT", "checkpoint"),
                                    ("SELECT pg_switch_wal()", "WAL segment switched")):
                try:
                    con.execute(statement)
                    done.append(what)
                except psycopg.Error as exc:
                    done.append(f"{what} not done: {one_line(exc)}")
        return done

    def _relations(self, con: Any) -> list[tuple[str, str]]:
        """(what, file path relative to the data directory) of every file the touched tables
        keep rows in: partitions, TOAST tables, indexes."""
        out = []
        for schema, table, dataset in self.tables():
            if self.settings.is_lock_friendly(dataset):
                continue  # vacuumed in place: its freed space keeps the bytes (not read)
            rows = con.execute(
                "WITH t AS (SELECT relid FROM pg_partition_tree(%s::regclass) UNION "
                "SELECT %s::regclass), r AS (SELECT relid AS oid FROM t UNION "
                "SELECT c.reltoastrelid FROM pg_class c JOIN t ON c.oid = t.relid WHERE "
                "c.reltoastrelid <> 0 UNION SELECT i.indexrelid FROM pg_index i JOIN t ON "
                "i.indrelid = t.relid UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class c "
                "ON i.indrelid = c.reltoastrelid JOIN t ON c.oid = t.relid) "
                "SELECT r.oid::regclass::text, pg_relation_filepath(r.oid) FROM r",
                [f'"{schema}"."{table}"'] * 2).fetchall()
            out += [(what, path) for what, path in rows if path]
        return out

    def reach(self) -> Reach:
        with _connect(self.location) as con:
            address = con.execute("SELECT inet_server_addr()::text").fetchone()[0]
            local = address is None or ipaddress.ip_interface(address).ip.is_loopback
            if not local:
                return Reach(unreachable=[
                    f"the server's files (on {address}): optout reads raw bytes only when it "
                    "runs beside the server"])
            try:
                data_dir = con.execute("SHOW data_directory").fetchone()[0]
                relations = self._relations(con)
            except psycopg.Error as exc:
                return Reach(unreachable=[f"the server's data directory: {one_line(exc)}"])
        files = []
        for _, rel in relations:
            base = os.path.join(data_dir, rel)
            n = 0
            while os.path.exists(f"{base}.{n}" if n else base):
                files.append(f"{base}.{n}" if n else base)
                n += 1
        if not os.access(data_dir, os.R_OK | os.X_OK):
            return Reach(unreachable=[f"the data directory {data_dir}: not readable by this "
                                      "user"])
        friendly = [f"{schema}.{table}: vacuumed in place (lock-friendly by policy), so its "
                    "freed space keeps the erased bytes until reused; not read"
                    for schema, table, d in self.tables() if self.settings.is_lock_friendly(d)]
        return Reach(files=files, unreachable=friendly)

    def outside(self) -> list[str]:
        notes = []
        with _connect(self.location) as con:
            def setting(name: str) -> str:
                try:
                    return str(con.execute(f"SHOW {name}").fetchone()[0])
                except psycopg.Error:
                    return "unknown (not permitted to read it)"
            archive, keep = setting("archive_mode"), setting("wal_keep_size")
            try:
                slots = con.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
                standbys = con.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0]
            except psycopg.Error:
                slots = standbys = "unknown"
        notes.append(
            "write-ahead log: the segments written during the erasure hold its changed pages "
            f"until they are recycled and overwritten (archive_mode={archive}, "
            f"wal_keep_size={keep}, replication slots: {slots})")
        if archive not in ("off", "unknown (not permitted to read it)"):
            notes.append("archived WAL: kept for as long as the archive's own retention keeps it")
        if standbys not in (0, "unknown"):
            notes.append(f"{standbys} streaming replica(s): they apply the erasure as they "
                         "replay the log, and keep their own files")
        notes.append("base backups and dumps taken before the erasure hold the rows until they "
                     "expire")
        if any(self.settings.is_lock_friendly(d) for *_, d in self.tables()):
            notes.append("lock-friendly tables: freed space holds the old bytes until reused")
        return notes
