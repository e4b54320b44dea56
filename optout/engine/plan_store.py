"""Plans as the catalog recorded them when they were made.

A plan file is a handle: approve and apply look the plan up here by its content hash and take
its author and the approvals it needs from the record, so editing a file (its `approvals`, its
`created_by`) and sealing it again makes a plan the catalog never made, which nothing accepts.
The file also carries `mac`, an HMAC of its content hash under a key of its own derived from
the catalog secret, so a file forged or made by another catalog is named as such; the record
carries the catalog's row seal, so a row written into the catalog file is refused too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import weakref
from dataclasses import replace

from optout.model.plan import ErasurePlan, PlanError, plan_from_json, read_from
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal


def plan_mac(catalog: Catalog, content_hash: str) -> str:
    """The plan file's MAC: domain-separated from identifier hashes, the audit and report keys."""
    key = hmac.new(catalog.secret(), b"optout plan file v1", hashlib.sha256).digest()
    return hmac.new(key, content_hash.encode(), hashlib.sha256).hexdigest()


def record_plan(catalog: Catalog, plan: ErasurePlan) -> ErasurePlan:
    """Record a plan as made (once per content hash); returns it with its MAC."""
    plan = replace(plan, mac=plan_mac(catalog, plan.content_hash))
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
            [plan.content_hash, plan.request_id, plan.created_by, plan.policy.get("name"),
             plan.policy.get("digest"), plan.approvals,
             dt.datetime.now(dt.UTC).replace(tzinfo=None), plan.to_json()])
        seal(con, catalog.secret(), "plans", "content_hash = ? AND mac IS NULL",
             [plan.content_hash])
        con.execute("COMMIT")
    return plan


#: plans this process read from a catalog's record: (catalog path, id) → the plan, so one
#: apply parses a large plan's record once, not once per check
_RECORDED: dict[tuple[str, int], weakref.ref[ErasurePlan]] = {}


def recorded_plan(catalog: Catalog, plan: ErasurePlan) -> ErasurePlan:
    """The catalog's record of a plan (by its content hash); PlanError when the file's MAC
    does not hold or there is no record. A plan that is already this catalog's record (read
    by this process) is returned as it is."""
    seen = _RECORDED.get((catalog.path, id(plan)))
    if seen is not None and seen() is plan:
        return plan
    if not hmac.compare_digest(plan.mac, plan_mac(catalog, plan.content_hash)):
        raise PlanError(f"plan {plan.request_id}: the file's MAC does not match this catalog "
                        "(forged, resealed, or made with another catalog): plan again")
    with catalog.connect(read_only=True) as con:
        rows = read(con, catalog.secret(), "plans", "content_hash = ?",
                    [plan.content_hash])
    if not rows:
        raise PlanError(f"plan {plan.request_id}: this catalog never made a plan with content "
                        f"hash {plan.content_hash[:12]}… (edited, or made elsewhere): plan again")
    body = rows[0]["body"]
    # the file as the catalog recorded it, byte for byte (a large plan is not parsed twice)
    record = plan if read_from(plan, body) else plan_from_json(body, "the catalog's plan record")
    for key in [k for k, ref in _RECORDED.items() if ref() is None]:
        del _RECORDED[key]  # plans no longer held (a worker reads many)
    _RECORDED[(catalog.path, id(record))] = weakref.ref(record)
    return record
