"""The Data Rights Protocol 1.0 endpoints (consumer-reports-innovation-lab/data-rights-protocol):
authorized agents submit signed requests, read their status and revoke them; mapped onto the
same machinery as every other request (plan, approval, apply, clock, report).

Agents are declared by an admin in the deployment's configuration (`drp.agents`: id, Ed25519
verify key, the principal their tokens belong to). Every signed message (`POST /v1/agent/ID`,
`POST /v1/data-rights-request`, `DELETE /v1/data-rights-request/ID`) is base64 of the
libsodium combined-mode signature followed by the JSON, checked in the protocol's order
(§3.07): it decodes; the signature verifies under the agent's key; `agent-id` is that agent;
`business-id` is this business; `issued-at` is not in the future (beyond `drp.skew_seconds`);
`expires-at` has not passed."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from optout.engine.lifecycle import clocks, submitter, timestamp, utcnow
from optout.scanner.access import audit
from optout.scanner.access.principals import create_token
from optout.scanner.config import DrpAgentConfig, DrpConfig
from optout.server.auth import Caller, RequestId
from optout.server.callbacks import allowed
from optout.server.problems import Problem
from optout.server.submission import request_row, submit_request
from optout.session import Session
from optout.session.operations import Operation

router = APIRouter(prefix="/v1")

#: DRP exercise → (kind, jurisdiction when the request names no regime)
EXERCISES = {"deletion": "erasure", "sale:opt_out": "opt-out"}
#: optout's request status → the DRP status and reason
STATUS = {"received": ("open", None), "planned": ("in_progress", None),
          "awaiting_verification": ("in_progress", None), "verified": ("in_progress", None),
          "awaiting_approval": ("in_progress", None), "approved": ("in_progress", None),
          "blocked": ("in_progress", None),
          "needs_review": ("in_progress", None), "applied": ("fulfilled", None),
          "denied": ("denied", "other"), "failed": ("denied", "other"),
          "revoked": ("revoked", None)}


def _drp(request: Request) -> DrpConfig:
    config = request.app.state.session.config().drp
    if not config.business_id:
        raise Problem(404, "this deployment takes no Data Rights Protocol requests "
                           "(drp.business_id is not set)")
    return config


def _time(claims: dict, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(claims[name]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise Problem(400, f"the signed request has no valid `{name}`") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when


def opened(body: bytes, agent: DrpAgentConfig, config: DrpConfig,
           envelope: bool = True) -> dict[str, Any]:
    """The claims of a message `agent` signed, checked in the protocol's order (§3.07);
    `envelope=False` for a message that carries no envelope claims (a revocation's)."""
    try:
        signed = base64.b64decode(body.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Problem(400, "the body is not base64 of a signed message") from None
    try:
        message = VerifyKey(base64.b64decode(agent.verify_key)).verify(signed)
    except (BadSignatureError, ValueError):
        raise Problem(403, f"the signature does not verify under agent {agent.id}'s key") \
            from None
    try:
        claims = json.loads(message)
    except (ValueError, RecursionError):
        raise Problem(400, "the signed message is not JSON") from None
    if not isinstance(claims, dict):
        raise Problem(400, "the signed message is not a JSON object")
    if not envelope:
        return claims
    if claims.get("agent-id") != agent.id:
        raise Problem(403, "the request's agent-id is not the agent of this token")
    if claims.get("business-id") != config.business_id:
        raise Problem(403, "the request is for another business-id")
    now = utcnow()
    if _time(claims, "issued-at") > now + dt.timedelta(seconds=config.skew_seconds):
        raise Problem(400, "the request's issued-at is in the future")
    if _time(claims, "expires-at") <= now:
        raise Problem(400, "the request expired (expires-at has passed)")
    return claims


def _agent_of(config: DrpConfig, session: Session) -> DrpAgentConfig:
    for agent in config.agents:
        if agent.principal == session.principal.name:
            return agent
    raise Problem(403, f"{session.principal.name} is not a Data Rights Protocol agent here")


@router.post("/agent/{agent_id}")
async def pairwise_key(agent_id: RequestId, request: Request) -> dict:
    """Pair-wise key setup: a message the agent signed gets a bearer token of its principal."""
    config = _drp(request)
    agent = next((a for a in config.agents if a.id == agent_id), None)
    catalog = request.app.state.session.catalog
    if agent is None:
        audit.append(catalog, "(unauthenticated)", (), "drp agent token", {"agent": agent_id},
                     "denied", "unknown agent")
        raise Problem(403, "unknown agent")
    try:
        opened(await request.body(), agent, config)
    except Problem as exc:
        audit.append(catalog, agent.principal, (), "drp agent token", {"agent": agent_id},
                     "denied", exc.detail)
        raise
    _, token = create_token(catalog, agent.principal, days=90)
    audit.append(catalog, agent.principal, (), "drp agent token", {"agent": agent_id}, "ok",
                 "token issued")
    return {"agent-id": agent.id, "token": token}


@router.get("/agent/{agent_id}")
def agent_information(agent_id: RequestId, request: Request, session: Caller) -> dict:
    """Whether the bearer token is still good for this agent (403 for another agent)."""
    with session.operation(Operation.REQUEST_STATUS, {"drp_agent": agent_id}):
        if _agent_of(_drp(request), session).id != agent_id:
            raise Problem(403, "the token is not this agent's")
    return {}


def status_of(session: Session, rid: str, agent_request_id: str | None = None) -> dict:
    row = request_row(session, rid)
    clock = clocks(session.catalog, [rid]).get(rid)
    status, reason = STATUS.get(row["status"], ("in_progress", None))
    out = {"request_id": rid, "status": status, "received_at": row["received_at"],
           "expected_by": timestamp(clock.deadline) if clock else None,
           "processing_details": row["detail"][:300] or None}
    if reason:
        out["reason"] = reason
    if agent_request_id:
        out["agent_request_id"] = agent_request_id
    return {k: v for k, v in out.items() if v is not None}


@router.post("/data-rights-request")
async def exercise(request: Request, session: Caller) -> dict:
    """A signed Data Rights Request: deletion or sale:opt_out, for the person its identity
    claims (email, phone_number) name."""
    config = _drp(request)
    agent = _agent_of(config, session)
    body = await request.body()
    claims = opened(body, agent, config)
    action = claims.get("exercise")
    if action not in EXERCISES or action not in config.actions:
        raise Problem(400, f"unsupported exercise {str(action)[:40]!r} (this business takes "
                           f"{', '.join(sorted(config.actions))})")
    identifiers = {k: str(claims[c]) for k, c in (("email", "email"), ("phone", "phone_number"))
                   if isinstance(claims.get(c), str) and claims[c].strip()}
    if not identifiers:
        raise Problem(400, "the request names no identity claim this business matches "
                           "(email, phone_number)")
    regime = claims.get("regime")
    jurisdiction = "ccpa" if regime == "ccpa" else "gdpr"
    agent_request_id = claims.get("agent-request-id")
    key = f"drp:{agent_request_id}" if isinstance(agent_request_id, str) and \
        agent_request_id else "drp:" + hashlib.sha256(body).hexdigest()
    callback = claims.get("status_callback")
    if callback is not None and not (isinstance(callback, str) and
                                     allowed(callback, agent.callback_hosts)):
        raise Problem(400, "status_callback names a host this agent may not be called at "
                           "(drp.agents[].callback_hosts)")
    row, created = submit_request(request, session, identifiers, config.actions[action],
                                  EXERCISES[action], jurisdiction, key, attested_by=agent.id)
    if callback and created:
        request.app.state.callbacks.register(row["id"], callback)
    return status_of(session, row["id"], agent_request_id)


def _own(session: Session, rid: str) -> None:
    if request_row(session, rid) is None:
        raise Problem(404, "no such request")
    if submitter(session.catalog, rid) != session.principal.name:
        raise Problem(403, "this agent did not submit that request")


@router.get("/data-rights-request/{rid}")
def drp_status(rid: RequestId, request: Request, session: Caller) -> dict:
    """A request's status, for the agent that submitted it only."""
    _agent_of(_drp(request), session)
    with session.operation(Operation.REQUEST_STATUS, {"request_id": rid, "drp": True}):
        _own(session, rid)
        return status_of(session, rid)


@router.delete("/data-rights-request/{rid}")
async def revoke(rid: RequestId, request: Request, session: Caller) -> dict:
    """Revoke an open request (signed `{"reason": ...}`): it ends `revoked`, nothing more
    is done for it. One already answered is a 409."""
    config = _drp(request)
    agent = _agent_of(config, session)
    claims = opened(await request.body(), agent, config, envelope=False)
    with session.operation(Operation.REQUEST_SUBMIT, {"request_id": rid, "revoke": True}):
        _own(session, rid)
        status = request_row(session, rid)["status"]
        intake = request.app.state.intake
        if status in ("applied", "denied", "failed", "revoked") or not intake.withdraw(rid):
            raise Problem(409, f"the request cannot be revoked now ({status})")
        worker = request.app.state.worker
        held = worker.plan_file(worker.job_of(rid))
        held.unlink(missing_ok=True)
        reason = str(claims.get("reason", ""))[:200]
        worker.record_status(rid, "revoked", f"revoked by the agent: {reason}".rstrip(": "))
        return status_of(session, rid)
