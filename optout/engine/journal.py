"""The apply journal in the catalog: requests, their steps, dataset leases, the erasure ledger.

Every state change is written as it happens, in its own short transaction, so a process that
dies leaves a journal `optout resume` can finish from.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import pyarrow as pa

from optout.engine import EngineError
from optout.model.plan import ErasurePlan
from optout.model.redaction import redact
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal
from optout.scanner.catalog.store import NOW

LEASE_POLL = 0.2
#: what a request's row holds for its plan: the plan is the catalog's record of it (`plans`,
#: by the row's `plan_hash`, sealed there), not a copy of a body that is tens of MB at
#: 100,000 subjects and sealed again at each of the request's state changes. Rows journaled
#: before hold the plan's JSON itself.
RECORDED = '{"plan":"recorded in plans by plan_hash"}'
#: the worker's journal requests (`worker:<request id>`, `worker:batch-<hex>`): an id space of
#: its own, which no CLI request id can enter
WORKER_PREFIX = "worker:"


class LeaseHeld(EngineError):
    """Another live request holds a dataset this one needs."""


class Journal:
    """Journal operations on one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, plan: ErasurePlan, principal: str, dry_run: bool,
               stages: list[tuple[int, int]]) -> None:
        """Record a new request with its steps (step number, stage). Only the record of a
        dry run, or of a run of the same plan that was rolled back (it changed nothing), is
        replaced: a request id that changed data stays that request's."""
        with self.catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            ran = con.execute("SELECT plan_hash FROM requests WHERE id = ? AND NOT dry_run AND "
                              "NOT (status = 'rolled_back' AND plan_hash = ?)",
                              [plan.request_id, plan.content_hash]).fetchall()
            if ran:
                con.execute("ROLLBACK")
                raise EngineError(f"request id {plan.request_id!r} is taken by a request that "
                                  "was applied (another plan): plan again under another id")
            con.execute("DELETE FROM requests WHERE id = ?", [plan.request_id])
            con.execute("DELETE FROM request_steps WHERE request_id = ?", [plan.request_id])
            con.execute(f"INSERT INTO requests VALUES (?, ?, ?, ?, 'preparing', ?, ?, {NOW}, "
                        f"{NOW}, NULL, NULL)", [plan.request_id, plan.content_hash,
                                               RECORDED, plan.policy["name"], principal,
                                               dry_run])
            if stages:  # a plan may hold no step: the subject is nowhere
                con.executemany(
                    "INSERT INTO request_steps (request_id, step_no, dataset_id, dataset, "
                    "location, action, stage, status, attempts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0)",
                    [[plan.request_id, i, plan.steps[i].dataset_id, plan.steps[i].dataset,
                      plan.steps[i].location, plan.steps[i].action, stage]
                     for i, stage in stages])
            self._seal(con, plan.request_id)
            con.execute("COMMIT")

    def _seal(self, con: Any, request_id: str, step_no: int | None = None) -> None:
        """Seal a request's row and its steps (or one step) as they are now."""
        secret = self.catalog.secret()
        if step_no is None:
            seal(con, secret, "requests", "id = ?", [request_id])
            seal(con, secret, "request_steps", "request_id = ?", [request_id])
        else:
            seal(con, secret, "request_steps", "request_id = ? AND step_no = ?",
                 [request_id, step_no])

    def _update(self, sql: str, params: list[Any], request_id: str,
                step_no: int | None = None) -> None:
        """One state change and its new seal, in one transaction."""
        with self.catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(sql, params)
            if step_no is None:
                seal(con, self.catalog.secret(), "requests", "id = ?", [request_id])
            else:
                self._seal(con, request_id, step_no)
            con.execute("COMMIT")

    def applied(self, plan_hash: str) -> dict[str, Any] | None:
        """The request that applied a plan, if one did (a dry run, or a run rolled back
        before any change, did not)."""
        with self.catalog.connect() as con:
            rows = read(con, self.catalog.secret(), "requests",
                        "plan_hash = ? AND NOT dry_run AND status <> 'rolled_back'",
                        [plan_hash], "ORDER BY created_at")
        return rows[0] if rows else None

    def find(self, request_id: str) -> dict[str, Any] | None:
        """A request's row (without its plan), or None."""
        try:
            return self.request(request_id, plan=False)
        except EngineError:
            return None

    def request(self, request_id: str, plan: bool = True) -> dict[str, Any]:
        """A request's row (its seal checked), with its plan's JSON under `plan` (read from
        the catalog's record of the plan; `plan=False`: not read); raises when unknown."""
        with self.catalog.connect() as con:
            rows = read(con, self.catalog.secret(), "requests", "id = ?", [request_id])
            if not rows:
                raise EngineError(f"no request '{request_id}' in {self.catalog.path}")
            row = rows[0]
            if plan and row["plan"] == RECORDED:
                record = read(con, self.catalog.secret(), "plans", "content_hash = ?",
                              [row["plan_hash"]])
                if not record:
                    raise EngineError(f"request '{request_id}': the catalog holds no record of "
                                      f"its plan {row['plan_hash'][:12]}…")
                row["plan"] = record[0]["body"]
        return row

    def steps(self, request_id: str) -> list[dict[str, Any]]:
        """A request's steps, in order (their seals checked)."""
        with self.catalog.connect() as con:
            return read(con, self.catalog.secret(), "request_steps", "request_id = ?",
                        [request_id], "ORDER BY step_no")

    def set_request(self, request_id: str, status: str, error: str | None = None) -> None:
        """Move a request to a new status."""
        self._update(f"UPDATE requests SET status = ?, error = ?, updated_at = {NOW} "
                     "WHERE id = ?", [status, _safe(error), request_id], request_id)

    def set_step(self, request_id: str, step_no: int, status: str, **fields: Any) -> None:
        """Move a step to a new status, recording any of its other fields."""
        sets = ["status = ?"]
        values: list[Any] = [status]
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            values.append(json.dumps(value) if key == "staged" else
                          _safe(value) if key == "error" else value)
        if status in ("prepared",) and "started_at" not in fields:
            sets.append(f"started_at = coalesce(started_at, {NOW})")
        if status in ("committed", "verified", "failed", "rolled_back", "retained"):
            sets.append(f"finished_at = {NOW}")
        self._update(f"UPDATE request_steps SET {', '.join(sets)} WHERE request_id = ? "
                     "AND step_no = ?", [*values, request_id, step_no], request_id, step_no)

    def attempt(self, request_id: str, step_no: int, error: str | None) -> None:
        """Count one attempt of a step, with its error if it failed."""
        self._update("UPDATE request_steps SET attempts = attempts + 1, error = ? "
                     "WHERE request_id = ? AND step_no = ?", [_safe(error), request_id, step_no],
                     request_id, step_no)

    # -- leases ------------------------------------------------------------------------------

    def acquire(self, request_id: str, datasets: list[str], wait: float) -> None:
        """Lease every dataset for the request, waiting up to `wait` seconds for others; a
        lease whose process is dead (on this host) is taken over."""
        host = socket.gethostname()
        deadline = time.monotonic() + wait
        while True:
            with self.catalog.connect() as con:
                con.execute("BEGIN TRANSACTION")
                held = con.execute(
                    "SELECT dataset_id, request_id, pid, host FROM leases WHERE request_id <> ? "
                    "AND dataset_id IN (SELECT unnest(?::VARCHAR[]))",
                    [request_id, datasets]).fetchall()
                live = [h for h in held if h[3] != host or _alive(h[2])]
                for dead in (h for h in held if h not in live):
                    con.execute("DELETE FROM leases WHERE dataset_id = ? AND request_id = ?",
                                [dead[0], dead[1]])
                if not live:
                    con.execute("DELETE FROM leases WHERE request_id = ?", [request_id])
                    if datasets:
                        con.executemany(f"INSERT INTO leases VALUES (?, ?, ?, ?, {NOW})",
                                        [[d, request_id, os.getpid(), host] for d in datasets])
                    con.execute("COMMIT")
                    return
                con.execute("COMMIT")
            if time.monotonic() >= deadline:
                ds, other, pid, where = live[0]
                raise LeaseHeld(f"dataset {ds} is held by request {other} (pid {pid} on "
                                f"{where}); retry later or raise --lease-wait")
            time.sleep(LEASE_POLL)

    def release(self, request_id: str) -> None:
        """Drop the request's leases."""
        with self.catalog.connect() as con:
            con.execute("DELETE FROM leases WHERE request_id = ?", [request_id])

    # -- ledger ------------------------------------------------------------------------------

    def record_erased(self, plan: ErasurePlan, values: dict[str, set[str]]) -> None:
        """Put the request's subjects (keyed hashes) in the erasure ledger, with the keyed
        hashes of their identifier values per domain (to recognise them if they come back)."""
        with self.catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM ledger WHERE request_id = ?", [plan.request_id])
            rows = plan.detail.subject_hashes().rename_columns(["h", "k"])
            con.register("optout_erased", rows)
            con.execute(f"INSERT INTO ledger SELECT h, k, ?, {NOW} FROM optout_erased",
                        [plan.request_id])
            con.unregister("optout_erased")
            con.execute("DELETE FROM ledger_values WHERE request_id = ?", [plan.request_id])
            pairs = [(d, h) for d, hs in sorted(values.items()) for h in sorted(hs)]
            con.register("optout_values", pa.table({"d": [d for d, _ in pairs],
                                                    "h": [h for _, h in pairs]}))
            con.execute("INSERT INTO ledger_values SELECT ?, d, h FROM optout_values",
                        [plan.request_id])
            con.unregister("optout_values")
            con.execute("COMMIT")

    def forget_fingerprints(self, dataset_ids: list[str]) -> None:
        """Changed datasets are read again by the next scan."""
        with self.catalog.connect() as con:
            con.execute("UPDATE datasets SET fingerprint = NULL WHERE id IN "
                        "(SELECT unnest(?::VARCHAR[]))", [dataset_ids])


def _safe(error: str | None) -> str | None:
    """An error as the journal (and every report) keeps it: no addresses, identifiers or
    passwords (optout/model/redaction.py)."""
    return redact(error)[:2000] if error else error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ledger_values_by_request(catalog: Catalog) -> dict[str, dict[str, set[str]]]:
    """Erasure request → domain → keyed hashes of its subjects' identifier values."""
    with catalog.connect() as con:
        rows = con.execute("SELECT request_id, domain, hash FROM ledger_values").fetchall()
    out: dict[str, dict[str, set[str]]] = {}
    for rid, domain, h in rows:
        out.setdefault(rid, {}).setdefault(domain, set()).add(h)
    return out


def ledger_values(catalog: Catalog) -> dict[str, set[str]]:
    """Domain → keyed hashes of every erased subject's identifier values."""
    with catalog.connect() as con:
        rows = con.execute("SELECT domain, hash FROM ledger_values").fetchall()
    out: dict[str, set[str]] = {}
    for domain, h in rows:
        out.setdefault(domain, set()).add(h)
    return out
