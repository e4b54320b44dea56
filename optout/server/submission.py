"""Submitting a request (the API's and the Data Rights Protocol's), and reading its row."""

from __future__ import annotations

import json
import secrets
import uuid

from fastapi import Request

from optout.engine import verification
from optout.engine.lifecycle import start_clock, timestamp, utcnow
from optout.engine.policy_store import stored_policy
from optout.server.problems import Problem
from optout.session import Session
from optout.session.operations import Operation
from optout.worker.messages import ErasureRequest


def hashed(session: Session, identifiers: dict[str, str]) -> dict[str, str]:
    """The identifiers as the catalog keeps them: keyed hashes."""
    hasher = session.catalog.hasher()
    return {k: hasher(v.strip().lower()) for k, v in identifiers.items()}


def request_row(session: Session, rid: str) -> dict | None:
    """A request's row (its identifiers as keyed hashes), or None."""
    with session.catalog.connect() as con:
        rows = con.execute(
            "SELECT request_id, status, policy, identifiers, detail, received_at, updated_at "
            "FROM worker_requests WHERE request_id = ?", [rid]).fetchall()
    if not rows:
        return None
    r = rows[0]
    return {"id": r[0], "status": r[1], "policy": r[2], "identifiers": json.loads(r[3]),
            "detail": r[4] or "", "received_at": timestamp(r[5]),
            "updated_at": timestamp(r[6])}


def request_id(session: Session, key: str | None) -> str:
    """A request's id: the same for the same caller and idempotency key, else a new one."""
    if not key:
        return f"api-{uuid.uuid4().hex[:24]}"
    return "api-" + session.catalog.hasher()(f"{session.principal.name}\x00{key}")[:24]


def submit_request(request: Request, session: Session, identifiers: dict[str, str],
                   policy: str, kind: str, jurisdiction: str, key: str | None,
                   attested_by: str | None = None) -> tuple[dict, bool]:
    """Submit (or find again, by idempotency key) a request: its row, and whether it is new.
    The same key with other identifiers or another policy is a 409. When the deployment
    requires subject verification, a one-time code is mailed to the request's email and the
    request waits for it, unless an authorized agent attests the person (`attested_by`)."""
    keyed = hashed(session, identifiers)
    rid = request_id(session, key)
    args = {"request_id": rid, "policy": policy, "kind": kind, "jurisdiction": jurisdiction,
            "identifiers": {k: v[:16] for k, v in keyed.items()}}
    with session.operation(Operation.REQUEST_SUBMIT, args) as call:
        known = request_row(session, rid)
        if known is not None:
            if known["identifiers"] != keyed or known["policy"] != policy:
                call.fail("idempotency key reused for another request")
                raise Problem(409, "this idempotency key was used for another request")
            return known, False
        stored_policy(session.catalog, policy)  # an unknown policy: 422 now, not later
        verify = request.app.state.session.config().verification
        asks = verify.required and attested_by is None
        if asks and not identifiers.get("email", "").strip():
            raise Problem(422, "this deployment verifies the subject by a code mailed to the "
                               "request's email: give an `email` identifier")
        token = secrets.token_urlsafe(24)  # the person's status page: shown once, here
        start_clock(session.catalog, rid, jurisdiction, kind, utcnow(), call.who.name, token)
        intake = request.app.state.intake
        intake.submit(ErasureRequest(request_id=rid, identifiers=identifiers, policy=policy),
                      session.principal, unverified=asks)
        if attested_by is not None:
            verification.attest(session.catalog, rid, attested_by)
        elif asks:
            try:
                verification.start(session.catalog, rid, identifiers["email"].strip(), verify)
            except verification.VerificationError as exc:
                intake.withdraw(rid)
                request.app.state.worker.record_status(rid, "failed", str(exc))
                raise
            request.app.state.worker.record_status(
                rid, "awaiting_verification", "a one-time code was mailed to the request's "
                f"email: valid {verify.ttl_seconds // 60} minutes, {verify.tries} tries")
        return {**request_row(session, rid), "status_page": f"/status/{token}"}, True
