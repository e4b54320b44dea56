"""Third-party webhooks: one signed HTTP POST per integration and request, through an outbox in
the catalog so a crash never loses a pending call. Retried with exponential backoff until it
answers 2xx; every attempt and the reply are recorded for the report.

The body carries the request id, the keyed hashes of every identifier, and the raw values of
the identifiers the integration is entitled to. The outbox stores only the hashed body: raw
values are added at send time from the request the worker holds in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request

from engine.cascade.base import CascadeTarget
from engine.cascade.spec import CascadeError
from engine.targets.base import Staged
from scanner.catalog import Catalog

SIGNATURE_HEADER = "X-Optout-Signature"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class WebhookTarget(CascadeTarget):
    """Tells one third-party integration to erase the subject."""

    catalog: Catalog

    def _secret(self) -> bytes:
        secret = os.environ.get(self.spec.secret_env)
        if not secret:
            raise CascadeError(f"{self.spec.name}: no signing key in ${self.spec.secret_env}")
        return secret.encode()

    def _row(self) -> tuple | None:
        with self.catalog.connect() as con:
            rows = con.execute("SELECT status, attempts FROM outbox WHERE request_id = ? AND "
                               "target = ?", [self.request_id, self.spec.name]).fetchall()
        return rows[0] if rows else None

    def prepare(self) -> Staged:
        self._secret()
        if self._row() is None:
            hashed = {k: self.digest(k) for k in sorted(self.identifiers)}
            body = {"request_id": self.request_id, "hashes": hashed,
                    "entitled": sorted(set(self.spec.identifiers) & set(self.identifiers))}
            with self.catalog.connect() as con:
                con.execute("INSERT INTO outbox VALUES (?, ?, ?, ?, 'pending', 0, NULL, NULL, "
                            "NULL, ?, NULL)", [self.request_id, self.spec.name, self.spec.url,
                                               json.dumps(body, sort_keys=True), _now()])
        return Staged(rows_changed=1)

    def _payload(self) -> bytes:
        with self.catalog.connect() as con:
            body = json.loads(con.execute("SELECT body FROM outbox WHERE request_id = ? AND "
                                          "target = ?", [self.request_id, self.spec.name]
                                          ).fetchall()[0][0])
        entitled = body.pop("entitled")
        body["identifiers"] = {k: self.identifiers[k] for k in entitled}
        return json.dumps(body, sort_keys=True).encode()

    def _record(self, status: str, reply_status: int | None, reply: str | None,
                error: str | None) -> None:
        with self.catalog.connect() as con:
            con.execute("UPDATE outbox SET status = ?, attempts = attempts + 1, reply_status = ?, "
                        "reply = ?, error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? "
                        "END WHERE request_id = ? AND target = ?",
                        [status, reply_status, reply, error, status, _now(), self.request_id,
                         self.spec.name])

    def commit(self, staged: Staged) -> str:
        row = self._row()
        if row is not None and row[0] == "delivered":
            return f"delivered already ({row[1]} attempts)"
        payload = self._payload()
        signature = hmac.new(self._secret(), payload, hashlib.sha256).hexdigest()
        delay, last = self.spec.backoff, ""
        for attempt in range(self.spec.retries):
            if attempt:
                time.sleep(delay)
                delay *= 2
            request = urllib.request.Request(
                self.spec.url, data=payload, method="POST",
                headers={"Content-Type": "application/json", "X-Optout-Request": self.request_id,
                         SIGNATURE_HEADER: f"sha256={signature}"})
            try:
                with urllib.request.urlopen(request, timeout=self.spec.timeout) as reply:
                    text = reply.read(2000).decode(errors="replace")
                    self._record("delivered", reply.status, text, None)
                    return f"HTTP {reply.status} after {self._row()[1]} attempts"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                self._record("pending", exc.code, exc.read(2000).decode(errors="replace"), last)
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
                self._record("pending", None, None, last)
        raise CascadeError(f"{self.spec.name}: no 2xx reply after {self.spec.retries} attempts "
                           f"(last: {last})")

    def residue(self) -> int:
        row = self._row()
        return 0 if row is not None and row[0] == "delivered" else 1
