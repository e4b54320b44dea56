"""Third-party webhooks: one signed HTTP POST per integration and request, through an outbox in
the catalog so a crash never loses a pending call. Retried with exponential backoff until it
answers 2xx; every attempt and the reply are recorded for the report.

The body carries the request id, the keyed hashes of every identifier, and the raw values of
the identifiers the integration is entitled to *when the call is sent* (the targets file as it
is then: an entitlement removed stops the next retry from carrying the value). The outbox
stores only the hashed body: raw values are added at send time from the request the worker
holds in memory. Redirects are not followed (a 3xx is not a delivery; the signed body never
goes elsewhere).

The signature header is `X-Optout-Signature: t=<unix seconds>,v1=<hex>`, where `v1` is
HMAC-SHA256 under the integration's secret of `<t>.<request id>.<body>` (the request id is the
`X-Optout-Request` header): a receiver recomputes it, compares in constant time, and refuses a
`t` older than its tolerance (five minutes, say), so a captured call cannot be replayed. See the
README for a receiver.
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

from optout.connectors.target import Staged
from optout.engine.cascade.base import CascadeTarget
from optout.engine.cascade.spec import CascadeError
from optout.model.redaction import redact
from optout.scanner.catalog import Catalog

SIGNATURE_HEADER = "X-Optout-Signature"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is an error: the signed body (raw values included) never follows it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


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
            body = {"request_id": self.request_id, "hashes": hashed}
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
        body.pop("entitled", None)  # outboxes of an older optout froze it here: not used
        entitled = sorted(set(self.spec.identifiers) & set(self.identifiers))
        body["identifiers"] = {k: self.identifiers[k] for k in entitled}
        return json.dumps(body, sort_keys=True).encode()

    def sign(self, payload: bytes, at: int) -> str:
        """The signature header's value for a body sent at `at` (unix seconds)."""
        signed = f"{at}.{self.request_id}.".encode() + payload
        return f"t={at},v1={hmac.new(self._secret(), signed, hashlib.sha256).hexdigest()}"

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
        delay, last = self.spec.backoff, ""
        for attempt in range(self.spec.retries):
            if attempt:
                time.sleep(delay)
                delay *= 2
            request = urllib.request.Request(
                self.spec.url, data=payload, method="POST",
                headers={"Content-Type": "application/json", "X-Optout-Request": self.request_id,
                         SIGNATURE_HEADER: self.sign(payload, int(time.time()))})
            try:
                with _OPENER.open(request, timeout=self.spec.timeout) as reply:
                    text = redact(reply.read(2000).decode(errors="replace"))
                    self._record("delivered", reply.status, text, None)
                    return f"HTTP {reply.status} after {self._row()[1]} attempts"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}" + (" (redirects are not followed)"
                                             if 300 <= exc.code < 400 else "")
                self._record("pending", exc.code,
                             redact(exc.read(2000).decode(errors="replace")), last)
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
                self._record("pending", None, None, last)
        raise CascadeError(f"{self.spec.name}: no 2xx reply after {self.spec.retries} attempts "
                           f"(last: {last})")

    def residue(self) -> int:
        row = self._row()
        return 0 if row is not None and row[0] == "delivered" else 1
