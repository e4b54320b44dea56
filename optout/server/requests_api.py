"""Requests: submit one (idempotent), list them, read one's status and timeline."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from optout.engine import verification
from optout.engine.lifecycle import UnknownRequest, clock_json
from optout.server.auth import Caller, RequestId
from optout.server.problems import Problem
from optout.server.submission import request_row as _row
from optout.server.submission import submit_request
from optout.session.operations import Operation

router = APIRouter(prefix="/v1")

_KEY = r"^[A-Za-z0-9._-]{1,64}$"
_POLICY = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class Submit(BaseModel):
    """A data subject's request."""

    model_config = ConfigDict(extra="forbid")
    identifiers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")],
                      Annotated[str, Field(min_length=1, max_length=320)]] = Field(
        min_length=1, max_length=10)
    policy: str = Field(pattern=_POLICY)
    kind: Literal["erasure", "opt-out"] = "erasure"
    #: whose clock the request runs on (due dates, extension)
    jurisdiction: Literal["gdpr", "ccpa"] = "gdpr"
    idempotency_key: str | None = Field(None, pattern=_KEY)


class Signal(BaseModel):
    """Who sent a Global Privacy Control signal (the site's backend knows them)."""

    model_config = ConfigDict(extra="forbid")
    identifiers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")],
                      Annotated[str, Field(min_length=1, max_length=320)]] = Field(
        min_length=1, max_length=10)
    idempotency_key: str | None = Field(None, pattern=_KEY)


class Code(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^\s*[0-9]{6}\s*$")


class Extend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=500)


@router.post("/requests", status_code=202)
def submit(body: Submit, request: Request, session: Caller,
           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
           ) -> JSONResponse:
    """Submit a request: 202 with its id and where to read its status. The same idempotency
    key (body or `Idempotency-Key` header) from the same caller names the same request: sent
    again with the same body it answers 200 with that request; with another body, 409."""
    key = body.idempotency_key or idempotency_key
    row, created = submit_request(request, session, body.identifiers, body.policy, body.kind,
                                  body.jurisdiction, key)
    return JSONResponse(_submitted(row), status_code=202 if created else 200)


@router.post("/gpc", status_code=202)
def gpc(body: Signal, request: Request, session: Caller,
        sec_gpc: Annotated[str | None, Header(alias="Sec-GPC")] = None) -> JSONResponse:
    """A Global Privacy Control signal a site forwards with the browser's `Sec-GPC: 1`
    header and the visitor's identifiers: an opt-out of sale and sharing under the
    deployment's `gpc.policy` (404 when none is set; 400 without the header)."""
    config = request.app.state.session.config().gpc
    if config.policy is None:
        raise Problem(404, "this deployment takes no Global Privacy Control signal "
                           "(gpc.policy is not set)")
    if (sec_gpc or "").strip() != "1":
        raise Problem(400, "a Global Privacy Control signal carries `Sec-GPC: 1`")
    row, created = submit_request(request, session, body.identifiers, config.policy,
                                  "opt-out", config.jurisdiction,
                                  f"gpc:{body.idempotency_key}" if body.idempotency_key
                                  else None)
    return JSONResponse(_submitted(row), status_code=202 if created else 200)


@router.post("/requests/{rid}/verify")
def verify(rid: RequestId, body: Code, request: Request, session: Caller) -> dict:
    """The one-time code the person received (relayed by the form or portal they used): the
    request goes on once it is right; a wrong one uses a try; when none is left, or the code
    expired, the request ends `denied`."""
    with session.operation(Operation.REQUEST_SUBMIT, {"request_id": rid, "verify": True}) \
            as call:
        row = _row(session, rid)
        if row is None:
            raise Problem(404, "no such request")
        if row["status"] != "awaiting_verification":
            raise Problem(409, f"the request is not waiting for a code ({row['status']})")
        worker, intake = request.app.state.worker, request.app.state.intake
        try:
            good = verification.check(session.catalog, rid, body.code)
        except verification.VerificationError as exc:
            intake.withdraw(rid)
            worker.record_status(rid, "denied", f"subject verification failed: {exc}")
            call.fail(str(exc))
            raise Problem(422, f"subject verification failed: {exc}; the request is denied") \
                from None
        if not good:
            left = verification.state(session.catalog, rid)["tries_left"]
            call.fail("wrong code")
            if left <= 0:
                intake.withdraw(rid)
                worker.record_status(rid, "denied", "subject verification failed: no tries "
                                     "left")
                raise Problem(422, "wrong code, and no tries are left: the request is denied")
            raise Problem(422, f"wrong code ({left} tries left)")
        worker.record_status(rid, "verified", verification.METHOD)
        intake.verified(rid)
        return {"id": rid, "status": "verified"}


@router.post("/requests/{rid}/extend")
def extend(rid: RequestId, body: Extend, session: Caller) -> dict:
    """Extend a request's legal clock, once, with the reason the person is told."""
    if _row(session, rid) is None:
        raise Problem(404, "no such request")
    clock = session.extend_request(rid, body.reason)
    return {"id": rid, "clock": clock_json(clock, False)}


def _submitted(row: dict) -> dict:
    """What a submission answers (the person's status page only when it was made: its
    token is kept as a keyed hash, never shown again)."""
    out = {"id": row["id"], "status": row["status"], "status_url": f"/v1/requests/{row['id']}"}
    if "status_page" in row:
        out["status_page"] = row["status_page"]
    return out


@router.get("/requests")
def requests(session: Caller, limit: int = 100) -> dict:
    """Requests as privacy staff work them: overdue ones first, then open ones by deadline,
    then the answered ones (no identifier: keyed hashes are not shown either)."""
    return {"requests": session.request_status(limit=limit)}


@router.get("/requests/{rid}")
def status(rid: RequestId, session: Caller) -> dict:
    """A request's status and its timeline (every status it passed through, when)."""
    try:
        row = session.request_status(rid)
    except UnknownRequest:
        raise Problem(404, "no such request") from None
    if row["status"] == "applied":
        row["report_url"] = f"/v1/requests/{rid}/report"
    return row
