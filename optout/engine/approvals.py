"""Approvals: a plan is applied only once enough approvers other than its author approved
exactly that plan (its content hash), so an edited plan has no approval. The author and the
approvals needed come from the catalog's record of the plan, never from a file. An approval
holds for its policy's `approval_ttl` (7 days unless the policy says otherwise); approval rows
carry the catalog's seal, so a row written into the catalog file approves nothing."""

from __future__ import annotations

import datetime as dt

from optout.engine import EngineError
from optout.engine.plan_store import recorded_plan
from optout.engine.policy import Policy, PolicyError
from optout.engine.policy_store import policy_of_plan
from optout.model.plan import ErasurePlan
from optout.scanner.access import Principal
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal


class ApprovalError(EngineError):
    """An approval refused (four eyes, twice), or a plan applied without its approvals."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def window(catalog: Catalog, plan: ErasurePlan) -> dt.timedelta:
    """How long an approval of this plan holds (its policy's `approval_ttl`, from the policy
    store; a file's in embedded use)."""
    try:
        return policy_of_plan(catalog, plan).approval_window
    except PolicyError:  # apply refuses a plan whose policy went; here: the default
        return Policy(name="-", identifiers=["-"]).approval_window


def _rows(catalog: Catalog, plan: ErasurePlan) -> list[dict]:
    with catalog.connect() as con:
        return read(con, catalog.secret(), "approvals", "plan_hash = ?",
                    [plan.content_hash], "ORDER BY approved_at")


def approvers(catalog: Catalog, plan: ErasurePlan) -> list[str]:
    """Who approved this exact plan (never its author) within the approval window."""
    oldest = _now() - window(catalog, plan)
    return sorted({r["approver"] for r in _rows(catalog, plan)
                   if r["approver"] != plan.created_by and r["approved_at"] >= oldest})


def approve(catalog: Catalog, plan: ErasurePlan, approver: Principal) -> int:
    """Record an approval; returns how many the plan has now."""
    plan = recorded_plan(catalog, plan)
    if plan.unexecutable:
        note = plan.unexecutable[0]
        raise ApprovalError(f"plan {plan.request_id} cannot be applied ({note.dataset}: "
                            f"{note.reason}): it cannot be approved; fix it and plan again")
    if approver.name == plan.created_by:
        raise ApprovalError(f"{approver.name} made plan {plan.request_id} and cannot approve it "
                            "(four eyes): another approver must")
    if approver.name in approvers(catalog, plan):
        raise ApprovalError(f"{approver.name} approved plan {plan.request_id} already")
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO approvals VALUES (?, ?, ?, ?, NULL)",
                    [plan.content_hash, plan.request_id, approver.name, _now()])
        seal(con, catalog.secret(), "approvals", "plan_hash = ? AND approver = ? AND "
             "mac IS NULL", [plan.content_hash, approver.name])
        con.execute("COMMIT")
    return len(approvers(catalog, plan))


def require_approved(catalog: Catalog, plan: ErasurePlan) -> None:
    """Refuse a plan without the approvals its policy requires (as the catalog recorded it),
    counting only approvals younger than the policy's approval window."""
    plan = recorded_plan(catalog, plan)
    have = approvers(catalog, plan)
    if len(have) < plan.approvals:
        lapsed = {r["approver"] for r in _rows(catalog, plan)} - set(have) - {plan.created_by}
        why = (f"; the approval of {', '.join(sorted(lapsed))} is older than the policy's "
               f"approval_ttl" if lapsed else "")
        raise ApprovalError(
            f"plan {plan.request_id} has {len(have)} of the {plan.approvals} approvals its "
            f"policy requires{why} (an edited plan loses its approvals): run "
            "`optout approve PLAN`")
