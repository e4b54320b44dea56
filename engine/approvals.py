"""Approvals: a plan is applied only once enough approvers other than its author approved
exactly that plan (its content hash), so an edited plan has no approval. The author and the
approvals needed come from the catalog's record of the plan, never from a file."""

from __future__ import annotations

import datetime as dt

from engine import EngineError
from engine.plan import ErasurePlan
from engine.plan_store import recorded_plan
from scanner.access import Principal, authorize
from scanner.catalog import Catalog


class ApprovalError(EngineError):
    """An approval refused (four eyes, twice), or a plan applied without its approvals."""


def approvers(catalog: Catalog, plan: ErasurePlan) -> list[str]:
    """Who approved this exact plan (never its author)."""
    with catalog.connect() as con:
        rows = con.execute("SELECT DISTINCT approver FROM approvals WHERE plan_hash = ? AND "
                           "approver <> ? ORDER BY approver",
                           [plan.content_hash, plan.created_by]).fetchall()
    return [r[0] for r in rows]


def approve(catalog: Catalog, plan: ErasurePlan, approver: Principal) -> int:
    """Record an approval; returns how many the plan has now."""
    authorize(catalog, approver, "approve", {"request_id": plan.request_id,
                                             "plan_hash": plan.content_hash})
    plan = recorded_plan(catalog, plan)
    if approver.name == plan.created_by:
        raise ApprovalError(f"{approver.name} made plan {plan.request_id} and cannot approve it "
                            "(four eyes): another approver must")
    if approver.name in approvers(catalog, plan):
        raise ApprovalError(f"{approver.name} approved plan {plan.request_id} already")
    with catalog.connect() as con:
        con.execute("INSERT INTO approvals VALUES (?, ?, ?, ?)",
                    [plan.content_hash, plan.request_id, approver.name,
                     dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    return len(approvers(catalog, plan))


def require_approved(catalog: Catalog, plan: ErasurePlan) -> None:
    """Refuse a plan without the approvals its policy requires (as the catalog recorded it)."""
    plan = recorded_plan(catalog, plan)
    have = approvers(catalog, plan)
    if len(have) < plan.approvals:
        raise ApprovalError(
            f"plan {plan.request_id} has {len(have)} of the {plan.approvals} approvals its "
            "policy requires (an edited plan loses its approvals): run `optout approve PLAN`")
