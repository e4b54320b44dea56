"""Plans waiting for approval: list them, read one's dry run, approve or reject it (four eyes:
the engine refuses the plan's author and a second approval by the same approver)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from optout.engine.approvals import approvers
from optout.engine.plan_store import recorded_plan
from optout.model.plan import ErasurePlan, load_plan
from optout.server.auth import Caller, RequestId
from optout.server.problems import Problem
from optout.session import Session
from optout.session.operations import Operation

router = APIRouter(prefix="/v1")


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=500)


def _waiting(session: Session) -> list[str]:
    with session.catalog.connect() as con:
        rows = con.execute("SELECT request_id FROM worker_requests WHERE status = "
                           "'awaiting_approval' ORDER BY received_at").fetchall()
    return [r[0] for r in rows]


def waiting_plan(request: Request, session: Session, rid: str) -> tuple[ErasurePlan, str]:
    """The recorded plan a waiting request holds, and its file."""
    if rid not in _waiting(session):
        raise Problem(404, "no plan of that request is waiting for approval")
    worker = request.app.state.worker
    path = worker.plan_file(worker.job_of(rid))
    if not path.exists():
        raise Problem(404, "no plan of that request is waiting for approval")
    return recorded_plan(session.catalog, load_plan(str(path))), str(path)


def plan_summary(session: Session, rid: str, plan: ErasurePlan) -> dict:
    return {"request_id": rid, "plan": plan.request_id, "created_by": plan.created_by,
            "policy": plan.policy.get("name"), "approvals_needed": plan.approvals,
            "approved_by": sorted(approvers(session.catalog, plan)),
            "steps": [{"dataset": s.dataset, "action": s.action, "rows": s.rows,
                       "rule": s.rule} for s in plan.steps],
            "needs_review": [n.dataset for n in plan.review]}


@router.get("/plans")
def plans(request: Request, session: Caller) -> dict:
    """Plans waiting for approval, oldest first."""
    with session.operation(Operation.REQUEST_STATUS, {"plans": True}):
        out = []
        for rid in _waiting(session):
            try:
                plan, _ = waiting_plan(request, session, rid)
            except Problem:
                continue
            out.append(plan_summary(session, rid, plan))
    return {"plans": out}


@router.get("/plans/{rid}")
def plan(rid: RequestId, request: Request, session: Caller) -> dict:
    """A waiting plan's dry run: what each dataset would lose, and who approved it."""
    with session.operation(Operation.REQUEST_STATUS, {"plan": rid}):
        found, _ = waiting_plan(request, session, rid)
        return plan_summary(session, rid, found)


@router.post("/plans/{rid}/approve")
def approve(rid: RequestId, request: Request, session: Caller) -> dict:
    """Approve a waiting plan's exact content (never its author's; once per approver)."""
    return record_approval(request, session, rid)


def record_approval(request: Request, session: Session, rid: str) -> dict:
    """Approve a waiting plan as `session`'s caller; once it has every approval it needs,
    the request's timeline says `approved` (and by whom) and the intake applies it."""
    _, path = waiting_plan(request, session, rid)
    _, count, needed = session.approve(path)
    if count >= needed:
        request.app.state.worker.record_status(
            rid, "approved", f"approved by {session.principal.name} ({count} of {needed})")
    request.app.state.intake.nudge()
    return {"request_id": rid, "approvals": count, "approvals_needed": needed}


@router.post("/plans/{rid}/reject")
def reject(rid: RequestId, body: Reject, request: Request, session: Caller
           ) -> dict:
    """Reject a waiting plan with the reason: the request ends `denied`; nothing is erased."""
    with session.operation(Operation.APPROVE, {"request_id": rid, "rejected": True}) \
            as call:
        found, path = waiting_plan(request, session, rid)
        if call.who.name == found.created_by:
            raise Problem(403, "the plan's author cannot decide on it (four eyes)")
        request.app.state.worker.record_status(
            rid, "denied", f"rejected by {call.who.name}: {body.reason}")
        import os

        os.remove(path)
    return {"request_id": rid, "status": "denied"}
