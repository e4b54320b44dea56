"""A request's lifecycle in the catalog: its legal clock (sealed: an edited deadline is
refused), its timeline of statuses (sealed), and the yearly metrics a large business publishes
(CCPA regulations §7102: requests received, complied with, denied, and the median days to
answer, per kind), read from those sealed rows."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from optout.model.legal_clock import Clock, ClockError, clock_for, extended
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal

#: final statuses: the request was answered (complied with, or denied), or ended otherwise
COMPLIED, DENIED = ("applied",), ("denied",)
CLOSED = ("applied", "denied", "failed", "needs_review", "revoked")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def start_clock(catalog: Catalog, rid: str, jurisdiction: str, kind: str,
                received: dt.datetime, by: str, status_token: str | None = None) -> Clock:
    """Record the clock of a request received at `received`, submitted by principal `by`
    (with the keyed hash of the token of its status page, when it has one)."""
    clock = clock_for(jurisdiction, kind, received)
    token_hash = _token_hash(catalog, status_token) if status_token else None
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO request_clocks VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, "
                    "?, ?, NULL)", [rid, clock.jurisdiction, clock.kind, clock.received,
                                    clock.acknowledge_by, clock.due, by, token_hash])
        seal(con, catalog.secret(), "request_clocks", "request_id = ?", [rid])
        con.execute("COMMIT")
    return clock


def _clock(row: dict) -> Clock:
    return Clock(row["jurisdiction"], row["kind"], row["received_at"], row["acknowledge_by"],
                 row["due_at"], row["extended_due"], row["extension_reason"])


def _token_hash(catalog: Catalog, token: str) -> str:
    return catalog.hasher()(f"status page\x00{token}")


def request_of_status_token(catalog: Catalog, token: str) -> str | None:
    """The request whose status page `token` opens (seal checked), or None."""
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "request_clocks", "status_token_hash = ?",
                    [_token_hash(catalog, token)])
    return rows[0]["request_id"] if rows else None


def submitter(catalog: Catalog, rid: str) -> str | None:
    """The principal that submitted a request over the API (seal checked)."""
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "request_clocks", "request_id = ?", [rid])
    return rows[0]["submitted_by"] if rows else None


def _only(rids: list[str] | None) -> tuple[str, list]:
    """The WHERE clause reading the rows of `rids` only (all rows when None)."""
    if rids is None:
        return "true", []
    return "request_id IN (SELECT unnest(?::VARCHAR[]))", [list(rids)]


def clocks(catalog: Catalog, rids: list[str] | None = None) -> dict[str, Clock]:
    """The clocks of `rids` (every request's when None), seals checked."""
    where, params = _only(rids)
    with catalog.connect() as con:
        return {r["request_id"]: _clock(r) for r in read(con, catalog.secret(),
                                                         "request_clocks", where, params)}


def extend_clock(catalog: Catalog, rid: str, reason: str, by: str,
                 now: dt.datetime | None = None) -> Clock:
    """Extend a request's clock as its law allows, with the reason."""
    found = clocks(catalog, [rid]).get(rid)
    if found is None:
        raise ClockError(f"request {rid}: no legal clock (it was not submitted over the API)")
    if closed(catalog, [rid]).get(rid):
        raise ClockError(f"request {rid} is answered already: nothing to extend")
    clock = extended(found, reason, now or utcnow())
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("UPDATE request_clocks SET extended_due = ?, extension_reason = ?, "
                    "extended_by = ? WHERE request_id = ?",
                    [clock.extended_due, clock.extension_reason, by, rid])
        seal(con, catalog.secret(), "request_clocks", "request_id = ?", [rid])
        con.execute("COMMIT")
    return clock


def record_event(catalog: Catalog, rid: str, status: str, detail: str = "",
                 at: dt.datetime | None = None) -> None:
    """One status of a request's timeline (`detail` already redacted)."""
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO request_events VALUES (?, ?, ?, ?, NULL)",
                    [rid, status, detail, at or utcnow()])
        seal(con, catalog.secret(), "request_events", "mac IS NULL")
        con.execute("COMMIT")


def queue(catalog: Catalog, rids: list[str], now: dt.datetime | None = None
          ) -> list[tuple[str, Clock | None, bool]]:
    """Requests in the order privacy staff work them: open overdue ones first, then open ones
    by deadline, then the answered ones (newest last as given); each with its clock and
    whether it is overdue."""
    now = now or utcnow()
    known, ended = clocks(catalog, rids), closed(catalog, rids)
    rows = []
    for n, rid in enumerate(rids):
        clock = known.get(rid)
        late = clock is not None and clock.overdue(now, rid in ended)
        is_open = rid not in ended
        rank = (0 if late else 1 if is_open and clock else 2,
                clock.deadline if clock and is_open else dt.datetime.max, n)
        rows.append((rank, rid, clock, late))
    return [(rid, clock, late) for _, rid, clock, late in sorted(rows)]


def events(catalog: Catalog, rid: str | None = None,
           rids: list[str] | None = None) -> list[dict]:
    """Timeline events (seals checked), oldest first; one request's when `rid` is given,
    those of `rids` when they are."""
    where, params = _only([rid] if rid else rids)
    with catalog.connect() as con:
        return read(con, catalog.secret(), "request_events", where, params,
                    "ORDER BY happened_at, rowid")


def closed(catalog: Catalog, rids: list[str] | None = None
           ) -> dict[str, tuple[str, dt.datetime]]:
    """Request → (its final status, when), for the requests that ended (of `rids` only,
    when given)."""
    out: dict[str, tuple[str, dt.datetime]] = {}
    for e in events(catalog, rids=rids):
        if e["status"] in CLOSED:
            out[e["request_id"]] = (e["status"], e["happened_at"])
        else:
            out.pop(e["request_id"], None)  # taken up again (a retry): not closed
    return out


@dataclass
class KindMetrics:
    received: int = 0
    complied: int = 0
    denied: int = 0
    other: int = 0  # ended otherwise (failed, stopped for review) or still open
    days: list[float] | None = None

    def as_dict(self) -> dict:
        days = self.days or []
        return {"received": self.received, "complied": self.complied, "denied": self.denied,
                "other_or_open": self.other,
                "median_days": round(statistics.median(days), 1) if days else None}


def metrics(catalog: Catalog, year: int) -> dict[str, dict]:
    """Per kind, the requests received in `year`: how many were complied with, denied, or
    not (yet) answered, and the median days from receipt to answer (of those answered)."""
    ended = closed(catalog)
    out: dict[str, KindMetrics] = {}
    for rid, clock in clocks(catalog).items():
        if clock.received.year != year:
            continue
        m = out.setdefault(clock.kind, KindMetrics(days=[]))
        m.received += 1
        status, when = ended.get(rid, ("open", None))
        if status in COMPLIED:
            m.complied += 1
        elif status in DENIED:
            m.denied += 1
        else:
            m.other += 1
        if status in COMPLIED + DENIED and when is not None:
            m.days.append((when - clock.received).total_seconds() / 86400)
    return {kind: m.as_dict() for kind, m in sorted(out.items())}


def timestamp(value: dt.datetime | None) -> str | None:
    """A naive UTC time as the API and the command line show it."""
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def clock_json(clock: Clock | None, late: bool) -> dict | None:
    """A clock as the API and the command line show it."""
    if clock is None:
        return None
    return {"jurisdiction": clock.jurisdiction, "kind": clock.kind,
            "received": timestamp(clock.received), "acknowledge_by": timestamp(clock.acknowledge_by),
            "due": timestamp(clock.due), "extended_due": timestamp(clock.extended_due),
            "extension_reason": clock.extension_reason, "deadline": timestamp(clock.deadline),
            "overdue": late}


def request_queue(catalog: Catalog, limit: int = 100) -> list[dict]:
    """The newest `limit` requests, in the order of `queue`, with their clocks."""
    with catalog.connect() as con:
        rows = con.execute("SELECT request_id, status, policy, received_at, updated_at FROM "
                           "worker_requests ORDER BY received_at DESC LIMIT ?",
                           [max(1, min(limit, 1000))]).fetchall()
    by_id = {r[0]: r for r in rows}
    return [{"id": rid, "status": by_id[rid][1], "policy": by_id[rid][2],
             "received_at": timestamp(by_id[rid][3]), "updated_at": timestamp(by_id[rid][4]),
             "clock": clock_json(clock, late)}
            for rid, clock, late in queue(catalog, [r[0] for r in rows])]


class UnknownRequest(ClockError):
    """No request of that id."""


def request_status(catalog: Catalog, rid: str) -> dict:
    """One request's status, detail, clock and timeline (no identifier)."""
    with catalog.connect() as con:
        rows = con.execute("SELECT request_id, status, policy, detail, received_at, "
                           "updated_at FROM worker_requests WHERE request_id = ?",
                           [rid]).fetchall()
    if not rows:
        raise UnknownRequest(f"no request {rid[:64]!r}")
    r = rows[0]
    [(_, clock, late)] = queue(catalog, [rid])
    return {"id": r[0], "status": r[1], "policy": r[2], "detail": r[3] or "",
            "received_at": timestamp(r[4]), "updated_at": timestamp(r[5]),
            "clock": clock_json(clock, late),
            "events": [{"status": e["status"], "detail": e["detail"] or "",
                        "at": timestamp(e["happened_at"])} for e in events(catalog, rid)]}
