"""Running a request's cascade: every configured target in turn, each retried with backoff,
each outcome (and every attempt) recorded in the catalog for the request's report. A target
already verified for the request is not run again (a redelivered request, a resumed worker)."""

from __future__ import annotations

import datetime as dt
import time

from optout.engine.cascade.base import CascadeTarget
from optout.engine.cascade.jetstream import JetStreamTarget
from optout.engine.cascade.redis_cache import RedisTarget
from optout.engine.cascade.spec import CascadeError, Spec
from optout.engine.cascade.tantivy_index import TantivyTarget
from optout.engine.cascade.webhook import WebhookTarget
from optout.scanner.catalog import Catalog

ATTEMPTS = 3
KINDS: dict[str, type[CascadeTarget]] = {"redis": RedisTarget, "tantivy": TantivyTarget,
                                         "webhook": WebhookTarget,
                                         "jetstream": JetStreamTarget}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def target_for(spec: Spec, identifiers: dict[str, str], catalog: Catalog,
               request_id: str) -> CascadeTarget:
    """The target a spec describes, for one request."""
    target = KINDS[spec.kind](spec, identifiers, catalog.hasher(), request_id)
    target.catalog = catalog
    return target


def steps(catalog: Catalog, request_id: str) -> list[dict]:
    """The recorded cascade outcomes of a request (with each webhook's reply)."""
    with catalog.connect() as con:
        rows = con.execute(
            "SELECT c.target, c.kind, c.status, c.attempts, c.error, c.detail, c.updated_at, "
            "o.attempts, o.reply_status FROM cascade_steps c LEFT JOIN outbox o ON "
            "o.request_id = c.request_id AND o.target = c.target WHERE c.request_id = ? "
            "ORDER BY c.target", [request_id]).fetchall()
    return [{"target": r[0], "kind": r[1], "status": r[2], "attempts": r[7] or r[3],
             "last_error": r[4], "detail": r[5],
             "finished_at": r[6].isoformat() + "Z" if r[6] else None, "reply_status": r[8]}
            for r in rows]


def _record(catalog: Catalog, request_id: str, spec: Spec, status: str, attempts: int,
            error: str | None, detail: str | None) -> None:
    with catalog.connect() as con:
        con.execute("DELETE FROM cascade_steps WHERE request_id = ? AND target = ?",
                    [request_id, spec.name])
        con.execute("INSERT INTO cascade_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [request_id, spec.name, spec.kind, status, attempts, error, detail, _now()])


def run_cascade(catalog: Catalog, request_id: str, specs: list[Spec],
                identifiers: dict[str, str], backoff: float = 0.2) -> list[str]:
    """Erase the subject from every cascade target; returns the failures (empty: all
    verified)."""
    if not specs:
        return []
    done = {s["target"] for s in steps(catalog, request_id) if s["status"] == "verified"}
    failures = []
    for spec in specs:
        if spec.name in done:
            continue
        target = target_for(spec, identifiers, catalog, request_id)
        delay, error = backoff, None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                staged = target.prepare()
                target.check(staged)
                detail = target.commit(staged)
                left = target.residue()
                mode = getattr(spec, "physical", "off")
                raw = 0
                if mode != "off" and left == 0:
                    done, (raw, read) = target.physical(), target.forensic()
                    detail += "".join(f"; {d}" for d in (done, read) if d)
                    if raw and mode == "best-effort":
                        detail += f"; {raw} occurrences left in its files (best effort)"
                        raw = 0
                elif mode == "off":
                    detail += "; physical erasure off: its files may still hold the bytes"
            except CascadeError as exc:
                error = str(exc)
                _record(catalog, request_id, spec, "retrying", attempt, error, None)
                time.sleep(delay)
                delay *= 2
                continue
            if raw and attempt < ATTEMPTS:  # the raw read found it: erase physically again
                _record(catalog, request_id, spec, "retrying", attempt,
                        f"{raw} occurrences in its files", detail)
                continue
            status = "verified" if left == 0 and raw == 0 else "residue"
            _record(catalog, request_id, spec, status, attempt, None,
                    detail + ("" if left == 0 else f"; {left} still found")
                    + ("" if raw == 0 else f"; {raw} occurrences in its files"))
            if left or raw:
                failures.append(f"{spec.name}: {left or raw} copies still found")
            break
        else:
            _record(catalog, request_id, spec, "blocked", ATTEMPTS, error, None)
            failures.append(error or spec.name)
    return failures
