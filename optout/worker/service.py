"""The worker: for each request, plan, apply where the policy allows it (or hold for approval),
cascade, publish status events, and acknowledge only once the request is resolved.

Idempotent by request id (the catalog's `worker_requests` and apply's journal): a redelivered
or duplicate message is acknowledged without a second erasure or a second report. A worker
killed mid-request leaves the message unacknowledged; the next one resumes through the journal.
Every call the worker makes goes through the same role checks and audit log as the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optout.engine import EngineError
from optout.engine.approvals import approvers
from optout.engine.cascade.spec import Spec
from optout.engine.journal import WORKER_PREFIX, Journal
from optout.engine.plan_store import recorded_plan
from optout.engine.policy import Policy, PolicyError
from optout.engine.policy_store import stored_policy
from optout.engine.private_files import write_private
from optout.engine.subjects import SubjectError, parse_subject
from optout.model.errors import ScannerError
from optout.model.plan import ErasurePlan, load_plan
from optout.model.redaction import redact
from optout.scanner.access import Principal
from optout.scanner.catalog.seal import seal
from optout.scanner.classify.column import Classifier
from optout.scanner.config import Config
from optout.session import Session
from optout.worker import bus
from optout.worker.messages import (
    CHANGES,
    DEAD,
    REQUESTS,
    STATUS,
    DatasetChanged,
    ErasureRequest,
    MessageError,
    dead_letter,
    parse,
    status_event,
    subject,
)
from optout.worker.signing import producer_of, producers

#: a request in one of these states is acknowledged; one awaiting approval comes back (after
#: --ack-wait) until its plan is approved, then it is applied
RESOLVED = ("applied", "failed", "needs_review", "denied", "revoked")


@dataclass(frozen=True)
class Message:
    """One message as the handlers see it: body, headers, and how often it was delivered."""

    data: bytes
    headers: dict[str, str]
    deliveries: int = 1


@dataclass
class WorkerSettings:
    """How the worker runs."""

    stream: str = "nats://127.0.0.1:4222"
    namespace: str = "optout"  # subjects `<namespace>.requests`, ... in one stream
    targets: list[Spec] = field(default_factory=list)
    reapply_policy: str = "gdpr-erasure"
    plans_dir: Path = Path(".")
    ack_wait: float = 30.0
    batch: int = 16
    config: Config | None = None
    #: deliveries after which a request that keeps failing (blocked) is dead-lettered; one
    #: waiting for approval comes back until approved
    max_deliver: int = 20
    #: how long the stream keeps any message (requests carry raw identifiers): seconds
    retention: float = 7 * 86400


async def _drained(*subs) -> bool:
    """No message waiting or being worked on, on any of the consumers."""
    for sub in subs:
        info = await sub.consumer_info()
        if info.num_pending or info.num_ack_pending:
            return False
    return True


class Worker:
    """Consumes requests and dataset changes; requests that arrive together are batched."""

    def __init__(self, session: Session, settings: WorkerSettings) -> None:
        self.session = session
        self.catalog = session.catalog
        self.caller = session.principal
        self.settings = settings
        self.publish: Callable[[str, bytes], None] = lambda subject, body: None
        self._classifier: Classifier | None = None
        #: request id → the principal that signed it (the request's author)
        self.authors: dict[str, Principal] = {}
        self._js = None  # the JetStream context while running

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, seconds: float | None = None, idle_exit: bool = False) -> None:
        """Consume until stopped (or for `seconds`; or until no message is left)."""
        ns = self.settings.namespace
        nc, js = await bus.connect(self.settings.stream, ns, self.settings.retention)
        self._js = js
        loop = asyncio.get_running_loop()
        self.publish = lambda kind, body: asyncio.run_coroutine_threadsafe(
            js.publish(subject(ns, kind), body), loop).result(30)
        requests = await bus.consumer(js, ns, REQUESTS, "optout-worker", self.settings.ack_wait)
        changes = await bus.consumer(js, ns, CHANGES, "optout-indexer", self.settings.ack_wait)
        deadline = time.monotonic() + seconds if seconds else None
        try:
            while deadline is None or time.monotonic() < deadline:
                got = 0
                for sub, handle in ((changes, self._on_changes), (requests, self.handle_messages)):
                    try:
                        msgs = await sub.fetch(self.settings.batch, timeout=0.5)
                    except TimeoutError:
                        continue
                    got += len(msgs)
                    await self._handle(msgs, handle)
                if idle_exit and not got and await _drained(requests, changes):
                    break
        finally:
            await nc.close()

    async def _handle(self, msgs: list, handle: Callable[[list[Message]], list[bool]]) -> None:
        """Run a handler over messages that arrived together, in a thread, while telling the
        server they are still being worked on; acknowledge each one the handler resolved."""
        work = asyncio.create_task(asyncio.to_thread(handle, [
            Message(m.data, dict(m.headers or {}), m.metadata.num_delivered) for m in msgs]))
        while not work.done():
            await asyncio.wait({work}, timeout=self.settings.ack_wait / 3)
            if not work.done():
                for msg in msgs:
                    await msg.in_progress()
        try:
            verdicts = work.result()
        except Exception as exc:  # the handlers catch everything; this is the last guard
            for msg in msgs:
                self._dead(msg.data, exc)
            verdicts = [True] * len(msgs)
        for msg, resolved in zip(msgs, verdicts, strict=True):
            if resolved:
                await msg.ack()
                if msg.subject.endswith(f".{REQUESTS}"):
                    # a resolved request's raw identifiers leave the stream with it
                    await bus.forget(self._js, self.settings.namespace,
                                     msg.metadata.sequence.stream)
            else:
                await msg.nak(delay=self.settings.ack_wait)

    # -- requests ----------------------------------------------------------------------------

    def handle_messages(self, messages: list[Message]) -> list[bool]:
        """Requests that arrived together: new ones under one policy from one producer are
        planned and applied as one batch (one pass per dataset); the others one by one. A
        message that does not validate, that no producer signed, whose handling raised, or
        that stays unresolved (not waiting for approval) after `max_deliver` deliveries is
        dead-lettered with the reason. Per message: resolved (acknowledge it)?"""
        results: list[bool | None] = [None] * len(messages)
        fresh: dict[tuple[str, str], list[tuple[int, ErasureRequest]]] = {}
        later: list[tuple[int, ErasureRequest]] = []
        seen: set[str] = set()
        requests: dict[int, ErasureRequest] = {}
        parsed: dict[int, ErasureRequest] = {}
        for i, message in enumerate(messages):
            with contextlib.suppress(Exception):  # a message that does not parse: below
                parsed[i] = parse(ErasureRequest, message.data)
        # one read of the catalog for the whole delivery: who may sign, what is known
        principals = producers(self.catalog)
        statuses = self._known_many([r.request_id for r in parsed.values()])
        for i, message in enumerate(messages):
            try:
                request = requests[i] = parsed.get(i) or parse(ErasureRequest, message.data)
                self.authors[request.request_id] = producer_of(
                    self.catalog, message.headers, message.data, principals)
                known = statuses.get(request.request_id)
            except Exception as exc:  # MessageError, or anything a hostile message raises
                self._dead(message.data, exc)
                results[i] = True
                continue
            producer = self.authors[request.request_id].name
            if request.request_id in seen or known is not None:
                later.append((i, request))  # a duplicate, a redelivery: on its own, after
            else:
                fresh.setdefault((request.policy, producer), []).append((i, request))
            seen.add(request.request_id)
        for items in fresh.values():
            if len(items) == 1:
                later.insert(0, items[0])
                continue
            try:
                verdicts = self.handle_batch([r for _, r in items])
            except Exception as exc:
                verdicts = [self._failed(r, messages[i].data, exc) for i, r in items]
            for (i, _), resolved in zip(items, verdicts, strict=True):
                results[i] = resolved
        for i, request in later:
            try:
                results[i] = self.handle_request(request)
            except Exception as exc:
                results[i] = self._failed(request, messages[i].data, exc)
        for i, message in enumerate(messages):
            rid = requests[i].request_id if results[i] is False else None
            if rid and message.deliveries >= self.settings.max_deliver and \
                    self.known(rid) != "awaiting_approval":
                self._dead(message.data, MessageError(
                    f"still unresolved after {message.deliveries} deliveries "
                    f"({self.known(rid)}): see `optout report {rid}`"))
                results[i] = True
        return [bool(r) for r in results]

    def _failed(self, request: ErasureRequest, data: bytes, exc: Exception) -> bool:
        """A request whose handling raised: failed, dead-lettered with the reason, resolved
        (acknowledged: the same message would raise again)."""
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._dead(data, MessageError(f"handling failed: {reason}"))
        if self.known(request.request_id) is not None:
            self.record_status(request.request_id, "failed", reason)
        return True

    def _dead(self, data: bytes, reason: Exception) -> None:
        """A message that is not valid goes to the dead-letter subject with the reason and
        what identifies it, never its raw identifiers (optout/worker/messages.py)."""
        self.publish(DEAD, dead_letter(data, reason, self.catalog.hasher()))

    def record_status(self, rid: str, status: str, detail: str = "") -> None:
        self.record_statuses([(rid, status, detail)])

    def record_statuses(self, changes: list[tuple[str, str, str]]) -> None:
        """Record (request id, status, detail) for several requests in one transaction, then
        publish each status event."""
        if not changes:
            return
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        hasher = self.catalog.hasher()
        changes = [(rid, status, redact(detail, hasher)) for rid, status, detail in changes]
        with self.catalog.connect() as con:
            con.execute("BEGIN")
            con.executemany("UPDATE worker_requests SET status = ?, detail = ?, updated_at = ? "
                            "WHERE request_id = ?",
                            [[status, detail, now, rid] for rid, status, detail in changes])
            con.executemany("INSERT INTO request_events VALUES (?, ?, ?, ?, NULL)",
                            [[rid, status, detail, now] for rid, status, detail in changes])
            seal(con, self.catalog.secret(), "request_events", "mac IS NULL")
            con.execute("COMMIT")
        for rid, status, detail in changes:
            self.publish(STATUS, status_event(rid, status, detail))

    def known(self, rid: str) -> str | None:
        return self._known_many([rid]).get(rid)

    def _known_many(self, rids: list[str]) -> dict[str, str]:
        """Request id → its recorded status, for those the worker has seen."""
        if not rids:
            return {}
        with self.catalog.connect() as con:
            rows = con.execute("SELECT request_id, status FROM worker_requests "
                               "WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
                               [list(rids)]).fetchall()
        return dict(rows)

    def handle_request(self, request: ErasureRequest) -> bool:
        """Resolve one request; True when it is resolved (the message may be acknowledged)."""
        rid = request.request_id
        known = self.known(rid)
        if known in RESOLVED:
            return True  # a duplicate or a redelivery: nothing is done or reported again
        if known is None:
            self.receive([request], None)
        try:
            return self._resolve(request)
        except (EngineError, ScannerError) as exc:
            self.record_status(rid, "failed", str(exc))
            return True

    def receive(self, requests: list[ErasureRequest], batch_id: str | None) -> None:
        """Record new requests (in one transaction); the journal request each is applied in
        (its own, or its batch's) has an id of the worker's own (`worker:...`), so a message
        can never name a request the CLI made."""
        hasher = self.catalog.hasher()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = []
        for request in requests:
            hashed = {k: hasher(v.strip().lower()) for k, v in request.identifiers.items()}
            rows.append([request.request_id, request.policy, json.dumps(hashed), now, now,
                         batch_id or f"{WORKER_PREFIX}{request.request_id}"])
        with self.catalog.connect() as con:
            con.execute("BEGIN")
            con.executemany("INSERT INTO worker_requests VALUES (?, 'received', ?, ?, '', ?, ?, ?)",
                            rows)
            con.executemany("INSERT INTO request_events VALUES (?, 'received', '', ?, NULL)",
                            [[r[0], now] for r in rows])
            seal(con, self.catalog.secret(), "request_events", "mac IS NULL")
            con.execute("COMMIT")
        for request in requests:
            self.publish(STATUS, status_event(request.request_id, "received", ""))

    def job_of(self, rid: str) -> str:
        with self.catalog.connect() as con:
            rows = con.execute("SELECT batch_id FROM worker_requests WHERE request_id = ?",
                               [rid]).fetchall()
        return rows[0][0] if rows and rows[0][0] else rid

    def handle_batch(self, requests: list[ErasureRequest]) -> list[bool]:
        """New requests under one policy: one plan and one apply for all their subjects (one
        pass per dataset), then each request's cascade and status."""
        batch_id = f"{WORKER_PREFIX}batch-{uuid.uuid4().hex[:12]}"
        self.receive(requests, batch_id)
        try:
            policy = self._policy(requests[0].policy)
            subjects, ok, parsed = [], [], {}
            for r in requests:
                try:
                    parsed[r.request_id] = [parse_subject(s, policy.identifiers)
                                            for s in r.subjects()]
                    subjects += parsed[r.request_id]
                    ok.append(r)
                except SubjectError as exc:
                    self.record_status(r.request_id, "failed", str(exc))
            plan = self._author(requests[0].request_id).plan_subjects(
                subjects, policy.name, request_id=batch_id, config=self.settings.config)
            for r in list(ok):
                if self._stopped(plan, parsed[r.request_id], r.request_id):
                    ok.remove(r)  # resolved as needing a person: no erasure, no cascade
            self.record_statuses([(r.request_id, "planned",
                             f"batch {batch_id}: {len(plan.steps)} datasets") for r in ok])
            if plan.approvals > 0:
                self._hold(plan, [r.request_id for r in ok])
                return [r not in ok for r in requests]  # held ones come back until approved
            self.session.apply_plan(plan, config=self.settings.config)
        except (EngineError, ScannerError) as exc:
            status = Journal(self.catalog).find(batch_id)
            blocked = bool(status and status["status"] == "blocked")
            self.record_statuses([(r.request_id, "blocked" if blocked else "failed", str(exc))
                            for r in requests])
            return [not blocked] * len(requests)
        results, outcomes = [], []
        for r in requests:
            if r not in ok:
                results.append(True)
                continue
            failures = self.session.cascade(r.request_id, self.settings.targets,
                                            r.identifiers)
            outcomes.append((r.request_id, "blocked" if failures else "applied",
                             "; ".join(failures)))
            results.append(not failures)
        self.record_statuses(outcomes)
        return results

    def _author(self, rid: str) -> Session:
        """The session of the principal that signed request `rid` (its plan's author)."""
        producer = self.authors.get(rid)
        return self.session if producer is None else Session(self.catalog, producer)

    def _stopped(self, plan: ErasurePlan, subjects: list, rid: str) -> bool:
        """True (and status `needs_review`) when resolution stopped one of the request's
        subjects: nothing is erased or cascaded for it until a person decides."""
        hasher = self.catalog.hasher()
        digests = {s.digest(hasher) for s in subjects}
        reasons = [r.reason for r in plan.resolution
                   if r.status == "stopped" and r.subject in digests]
        if reasons:
            self.record_status(rid, "needs_review", "; ".join(str(r) for r in reasons))
        return bool(reasons)

    def _policy(self, name: str) -> Policy:
        """A policy by name, from the deployment's policy store only (message schema: no
        paths)."""
        if "/" in name or name.endswith((".yaml", ".yml")):
            raise PolicyError(f"policy {name[:80]!r}: a request names a stored policy, not a file")
        return stored_policy(self.catalog, name)

    def plan_file(self, job: str) -> Path:
        """Where the plan of a request (or batch) waiting for approval is written."""
        return self.settings.plans_dir / f"plan-{job.removeprefix(WORKER_PREFIX)}.json"

    def _held(self, job: str) -> ErasurePlan | None:
        """The plan of a request (or batch) waiting for approval, if there is one."""
        path = self.plan_file(job)
        # The file names the plan; what it needs and who made it come from the catalog.
        return recorded_plan(self.catalog, load_plan(path)) if path.exists() else None

    def _hold(self, plan: ErasurePlan, rids: list[str]) -> None:
        """Write a plan for `optout approve` and say the requests wait for it."""
        out = self.plan_file(plan.request_id)
        write_private(out, plan.to_json())
        for rid in rids:
            self.record_status(rid, "awaiting_approval",
                         f"{plan.approvals} approval(s) needed: optout approve {out}")

    def _resolve(self, request: ErasureRequest) -> bool:
        rid = request.request_id
        journal = Journal(self.catalog)
        job = self.job_of(rid)  # the journal request: the batch it was applied in
        existing = journal.find(job)
        if existing is None:
            plan = self._held(job)
            if plan is None:
                policy = self._policy(request.policy)
                try:
                    subjects = [parse_subject(s, policy.identifiers) for s in request.subjects()]
                except SubjectError as exc:
                    self.record_status(rid, "failed", str(exc))
                    return True
                plan = self._author(rid).plan_subjects(subjects, policy.name, request_id=job,
                                                       config=self.settings.config)
                if self._stopped(plan, subjects, rid):
                    return True
                self.record_status(rid, "planned", f"{len(plan.steps)} datasets")
                if plan.approvals > 0:
                    self._hold(plan, [rid])
                    return False  # not resolved: the message comes back until approved
            elif len(approvers(self.catalog, plan)) < plan.approvals:
                return False  # still waiting for approval
            try:
                self.session.apply_plan(plan, config=self.settings.config)
            except EngineError as exc:
                status = journal.find(job)
                if status and status["status"] == "blocked":
                    self.record_status(rid, "blocked", str(exc))
                    return False
                raise
        elif existing["status"] not in ("complete", "complete_with_review",
                                        "incomplete_needs_review"):
            try:
                self.session.resume(job, config=self.settings.config)
            except EngineError as exc:
                self.record_status(rid, "blocked", str(exc))
                return False
        failures = self.session.cascade(rid, self.settings.targets, request.identifiers)
        if failures:
            self.record_status(rid, "blocked", "; ".join(failures))
            return False
        self.record_status(rid, "applied")
        return True

    # -- dataset changes ---------------------------------------------------------------------

    def _on_changes(self, messages: list[Message]) -> list[bool]:
        locations: dict[str, bytes] = {}  # a location changed twice: scanned once
        for message in messages:
            try:
                location = self._scanned_root(parse(DatasetChanged, message.data).location)
                locations.setdefault(location, message.data)
            except Exception as exc:
                self._dead(message.data, exc)
        for location, data in locations.items():
            try:
                self.handle_change(location)
            except Exception as exc:  # a scan or re-erasure that fails: said, not fatal
                self._dead(data, MessageError(f"re-scan of {location} failed: "
                                              f"{type(exc).__name__}: {exc}"))
        return [True] * len(messages)

    def _scanned_root(self, location: str) -> str:
        """A changed location the worker may scan: a catalog dataset's, or one inside a root
        that was scanned before; anything else is refused (a message cannot widen the scan)."""
        known = {d.location for d in self.catalog.datasets()}
        roots = self.catalog.source_locations()
        if location in known or location in roots:
            return location
        if "://" not in location:
            path = Path(location).resolve()
            for root in roots:
                if "://" not in root and path.is_relative_to(Path(root).resolve()):
                    return location
        raise MessageError(f"location {location!r} is outside every scanned root: scan it "
                           "with `optout scan` first")

    def handle_change(self, location: str) -> str | None:
        """Re-scan one dataset; erase again any erased subject found in it (the ledger).
        Returns the id of the re-erasure request, if one ran."""
        config = self.settings.config or Config()
        if self._classifier is None:  # loaded once: the spaCy model takes seconds
            self._classifier = Classifier(config.classifier_settings())
        done = self.session.scan([location], config=config, classifier=self._classifier)
        if not done.reappeared:
            return None
        scanned = {r.ref.id for r in done.report.results if r.status == "scanned"}
        policy = self._policy(self.settings.reapply_policy)
        # only the changed datasets: every other copy was erased before (and verification
        # after apply reads every identifier dataset of the catalog anyway)
        plan = self.session.reerasure(policy.name, only=scanned, config=self.settings.config)
        if not plan.steps:
            return None
        if plan.approvals > 0:
            self._hold(plan, [plan.request_id])
            return plan.request_id
        self.session.apply_plan(plan, config=self.settings.config)
        self.publish(STATUS, status_event(plan.request_id, "applied", "erased again"))
        return plan.request_id
