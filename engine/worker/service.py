"""The worker: for each request, plan, apply where the policy allows it (or hold for approval),
cascade, publish status events, and acknowledge only once the request is resolved.

Idempotent by request id (the catalog's `worker_requests` and apply's journal): a redelivered
or duplicate message is acknowledged without a second erasure or a second report. A worker
killed mid-request leaves the message unacknowledged; the next one resumes through the journal.
Every call the worker makes goes through the same role checks and audit log as the CLI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine import EngineError
from engine.apply import ApplyOptions, apply_plan, resume
from engine.cascade.run import run_cascade
from engine.cascade.spec import Spec
from engine.graph import build_graph
from engine.journal import Journal, ledger_values
from engine.ledger import ledger_seed, reappearances
from engine.planner import PlanRequest, build_plan
from engine.policy import PolicyError, load_policy
from engine.subjects import SubjectError, parse_subject
from engine.worker import bus
from engine.worker.messages import (
    CHANGES,
    DEAD,
    REQUESTS,
    STATUS,
    DatasetChanged,
    ErasureRequest,
    MessageError,
    parse,
    status_event,
    subject,
)
from scanner.access import Principal
from scanner.catalog import Catalog
from scanner.classify.column import Classifier
from scanner.config import Config
from scanner.errors import ScannerError
from scanner.scan import ScanOptions, scan

RESOLVED = ("applied", "failed", "awaiting_approval")


@dataclass
class WorkerSettings:
    """How the worker runs."""

    stream: str = "nats://127.0.0.1:4222"
    namespace: str = "optout"  # subjects `<namespace>.requests`, ... in one stream
    targets: list[Spec] = field(default_factory=list)
    policies_dir: Path = Path("policies")
    reapply_policy: str = "gdpr-erasure"
    plans_dir: Path = Path(".")
    ack_wait: float = 30.0
    batch: int = 16
    config: Config | None = None


class Worker:
    """Consumes requests and dataset changes; one request at a time, in order of arrival."""

    def __init__(self, catalog: Catalog, caller: Principal, settings: WorkerSettings) -> None:
        self.catalog = catalog
        self.caller = caller
        self.settings = settings
        self.publish: Callable[[str, bytes], None] = lambda subject, body: None
        self._classifier: Classifier | None = None

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, seconds: float | None = None, idle_exit: bool = False) -> None:
        """Consume until stopped (or for `seconds`; or until no message is left)."""
        ns = self.settings.namespace
        nc, js = await bus.connect(self.settings.stream, ns)
        loop = asyncio.get_running_loop()
        self.publish = lambda kind, body: asyncio.run_coroutine_threadsafe(
            js.publish(subject(ns, kind), body), loop).result(30)
        requests = await bus.consumer(js, ns, REQUESTS, "optout-worker", self.settings.ack_wait)
        changes = await bus.consumer(js, ns, CHANGES, "optout-indexer", self.settings.ack_wait)
        deadline = time.monotonic() + seconds if seconds else None
        try:
            while deadline is None or time.monotonic() < deadline:
                got = 0
                for sub, handle in ((changes, self._on_change), (requests, self._on_request)):
                    try:
                        msgs = await sub.fetch(self.settings.batch, timeout=0.5)
                    except TimeoutError:
                        continue
                    got += len(msgs)
                    for msg in msgs:
                        await self._handle(msg, handle)
                if idle_exit and not got:
                    break
        finally:
            await nc.drain()

    async def _handle(self, msg, handle: Callable[[bytes], bool]) -> None:
        """Run a handler in a thread while telling the server the message is still being
        worked on; acknowledge when the handler says the message is resolved."""
        work = asyncio.create_task(asyncio.to_thread(handle, msg.data))
        while not work.done():
            await asyncio.wait({work}, timeout=self.settings.ack_wait / 3)
            if not work.done():
                await msg.in_progress()
        if work.result():
            await msg.ack()
        else:
            await msg.nak(delay=self.settings.ack_wait)

    # -- requests ----------------------------------------------------------------------------

    def _on_request(self, data: bytes) -> bool:
        try:
            request = parse(ErasureRequest, data)
        except MessageError as exc:
            self.publish(DEAD, json.dumps({"reason": str(exc),
                                           "message": data.decode(errors="replace")}).encode())
            return True
        return self.handle_request(request)

    def _status(self, rid: str, status: str, detail: str = "") -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self.catalog.connect() as con:
            con.execute("UPDATE worker_requests SET status = ?, detail = ?, updated_at = ? "
                        "WHERE request_id = ?", [status, detail, now, rid])
        self.publish(STATUS, status_event(rid, status, detail))

    def _known(self, rid: str) -> str | None:
        with self.catalog.connect() as con:
            rows = con.execute("SELECT status FROM worker_requests WHERE request_id = ?",
                               [rid]).fetchall()
        return rows[0][0] if rows else None

    def handle_request(self, request: ErasureRequest) -> bool:
        """Resolve one request; True when it is resolved (the message may be acknowledged)."""
        rid = request.request_id
        known = self._known(rid)
        if known in RESOLVED:
            return True  # a duplicate or a redelivery: nothing is done or reported again
        hasher = self.catalog.hasher()
        if known is None:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            hashed = {k: hasher(v.strip().lower()) for k, v in request.identifiers.items()}
            with self.catalog.connect() as con:
                con.execute("INSERT INTO worker_requests VALUES (?, 'received', ?, ?, '', ?, ?)",
                            [rid, request.policy, json.dumps(hashed), now, now])
            self._status(rid, "received")
        try:
            return self._resolve(request)
        except (EngineError, ScannerError) as exc:
            self._status(rid, "failed", str(exc))
            return True

    def _policy_path(self, name: str) -> Path:
        path = Path(name)
        if path.suffix in (".yaml", ".yml") and path.exists():
            return path
        path = self.settings.policies_dir / f"{name}.yaml"
        if not path.exists():
            raise PolicyError(f"no policy '{name}' in {self.settings.policies_dir}")
        return path

    def _resolve(self, request: ErasureRequest) -> bool:
        rid = request.request_id
        options = ApplyOptions(caller=self.caller, config=self.settings.config)
        journal = Journal(self.catalog)
        existing = journal.find(rid)
        if existing is None:
            path = self._policy_path(request.policy)
            policy = load_policy(path)
            try:
                subjects = [parse_subject(s, policy.identifiers) for s in request.subjects()]
            except SubjectError as exc:
                self._status(rid, "failed", str(exc))
                return True
            plan = build_plan(self.catalog, PlanRequest(subjects, policy, str(path), rid,
                                                        created_by=self.caller.name),
                              self.settings.config, caller=self.caller)
            self._status(rid, "planned", f"{len(plan.steps)} datasets")
            if plan.approvals > 0:
                out = self.settings.plans_dir / f"plan-{rid}.json"
                out.write_text(plan.to_json())
                self._status(rid, "awaiting_approval",
                             f"{plan.approvals} approval(s) needed: optout approve {out}")
                return True
            try:
                apply_plan(self.catalog, plan, options)
            except EngineError as exc:
                status = journal.find(rid)
                if status and status["status"] == "blocked":
                    self._status(rid, "blocked", str(exc))
                    return False
                raise
        elif existing["status"] not in ("complete",):
            try:
                resume(self.catalog, rid, options)
            except EngineError as exc:
                self._status(rid, "blocked", str(exc))
                return False
        failures = run_cascade(self.catalog, rid, self.settings.targets, request.identifiers)
        if failures:
            self._status(rid, "blocked", "; ".join(failures))
            return False
        self._status(rid, "applied")
        return True

    # -- dataset changes ---------------------------------------------------------------------

    def _on_change(self, data: bytes) -> bool:
        try:
            change = parse(DatasetChanged, data)
        except MessageError as exc:
            self.publish(DEAD, json.dumps({"reason": str(exc),
                                           "message": data.decode(errors="replace")}).encode())
            return True
        self.handle_change(change.location)
        return True

    def handle_change(self, location: str) -> str | None:
        """Re-scan one dataset; erase again any erased subject found in it (the ledger).
        Returns the id of the re-erasure request, if one ran."""
        config = self.settings.config or Config()
        options = ScanOptions(sample_rows=config.scan.sample_rows, seed=config.scan.seed,
                              classifier=config.classifier_settings())
        if self._classifier is None:  # loaded once: the spaCy model takes seconds
            self._classifier = Classifier(options.classifier)
        report = scan([location], self.catalog, options, classifier=self._classifier,
                      caller=self.caller)
        scanned = {r.ref.id for r in report.results if r.status == "scanned"}
        if not scanned or not ledger_values(self.catalog):
            return None
        graph = build_graph(self.catalog, self.settings.config)
        if not reappearances(self.catalog, graph, scanned):
            return None
        path = self._policy_path(self.settings.reapply_policy)
        policy = load_policy(path)
        plan = build_plan(self.catalog, PlanRequest(
            [], policy, str(path), created_by=self.caller.name, known=ledger_seed(self.catalog)),
            self.settings.config, caller=self.caller)
        from dataclasses import replace

        # only the changed datasets: every other copy was erased before (and verification
        # after apply reads every identifier dataset of the catalog anyway)
        plan = replace(plan, steps=tuple(s for s in plan.steps
                                         if s.rows and s.dataset_id in scanned)).sealed()
        if not plan.steps:
            return None
        if plan.approvals > 0:
            out = self.settings.plans_dir / f"plan-{plan.request_id}.json"
            out.write_text(plan.to_json())
            self.publish(STATUS, status_event(plan.request_id, "awaiting_approval", str(out)))
            return plan.request_id
        apply_plan(self.catalog, plan, ApplyOptions(caller=self.caller,
                                                    config=self.settings.config))
        self.publish(STATUS, status_event(plan.request_id, "applied", "erased again"))
        return plan.request_id
