"""The server's intake: requests submitted over HTTP, run through the worker's path (plan
under the submitter's name, held for approval, applied, cascaded) on one thread of their own.

A request's raw identifiers stay in this process's memory only, until the request is
resolved (applied, failed, or stopped for a person to decide): the catalog keeps keyed hashes.
A request the server still held when it stopped is marked failed at the next start, with the
reason ("submit it again"). Requests waiting for approval are tried again when an approval is
recorded, and every `poll` seconds."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from optout.model.errors import EngineError, ScannerError
from optout.scanner.access import Principal
from optout.scanner.catalog import Catalog
from optout.worker.messages import ErasureRequest
from optout.worker.service import RESOLVED, Worker

log = logging.getLogger("optout.server")

#: statuses of a request still in the server's hands
PENDING = ("received", "awaiting_verification", "verified", "planned", "awaiting_approval",
           "approved", "blocked")


@dataclass
class Held:
    """A submitted request and who submitted it (the author of its plan)."""

    request: ErasureRequest
    author: Principal


class Intake:
    """Submitted requests, resolved one at a time by the worker's machinery."""

    def __init__(self, worker: Worker, poll: float = 5.0) -> None:
        self.worker = worker
        self.catalog: Catalog = worker.catalog
        self.poll = poll
        self._held: dict[str, Held] = {}
        self._lock = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy: str | None = None  # the request being worked on now
        self._unverified: set[str] = set()  # waiting for their subject's one-time code

    def start(self) -> None:
        self._forget_unheld()
        self._thread = threading.Thread(target=self._run, name="optout-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def submit(self, request: ErasureRequest, author: Principal,
               unverified: bool = False) -> None:
        """Record a new request as received and queue it (held back, when `unverified`,
        until `verified`)."""
        with self._lock:
            self._held[request.request_id] = Held(request, author)
            self.worker.authors[request.request_id] = author
            if unverified:
                self._unverified.add(request.request_id)
        self.worker.receive([request], None)
        self._wake.set()

    def verified(self, rid: str) -> None:
        """The subject of `rid` proved control of its email: work on it."""
        with self._lock:
            self._unverified.discard(rid)
        self._wake.set()

    def withdraw(self, rid: str, wait: float = 30.0) -> bool:
        """Take a request out of the queue before it is worked on again (a revocation),
        waiting up to `wait` seconds for a step on it to end; False when it did not."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._busy != rid, wait):
                return False
            self._held.pop(rid, None)
            self.worker.authors.pop(rid, None)
            self._unverified.discard(rid)
            return True

    def nudge(self) -> None:
        """Something changed (an approval): try the waiting requests now."""
        self._wake.set()

    def _forget_unheld(self) -> None:
        """Requests an earlier server process held when it stopped: their identifiers went
        with it. Marked failed, with the reason."""
        with self.catalog.connect() as con:
            rows = con.execute(
                "SELECT request_id FROM worker_requests WHERE request_id LIKE 'api-%' AND "
                "status IN (SELECT unnest(?::VARCHAR[]))", [list(PENDING)]).fetchall()
        self.worker.record_statuses([(r[0], "failed", "the server stopped before the request was "
                                "resolved (its identifiers are never stored): submit it again")
                               for r in rows])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            with self._lock:
                waiting = [h for rid, h in self._held.items() if rid not in self._unverified]
            for held in waiting:
                if self._stop.is_set():
                    return
                with self._lock:
                    if held.request.request_id not in self._held:
                        continue  # withdrawn
                    self._busy = held.request.request_id
                try:
                    self._step(held)
                finally:
                    with self._lock:
                        self._busy = None
                        self._lock.notify_all()

    def _step(self, held: Held) -> None:
        rid = held.request.request_id
        try:
            self.worker.handle_request(held.request)
        except (EngineError, ScannerError) as exc:
            self.worker.record_status(rid, "failed", str(exc))
        except Exception as exc:  # a bug must not stop the intake: the request says so
            log.exception("request %s failed", rid)
            self.worker.record_status(rid, "failed", f"internal error ({type(exc).__name__})")
        if self.worker.known(rid) in RESOLVED:
            with self._lock:
                self._held.pop(rid, None)
                self.worker.authors.pop(rid, None)
