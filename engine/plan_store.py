"""Plans as the catalog recorded them when they were made.

A plan file is a handle: approve and apply look the plan up here by its content hash and take
its author and the approvals it needs from the record, so editing a file (its `approvals`, its
`created_by`) and sealing it again makes a plan the catalog never made, which nothing accepts.
"""

from __future__ import annotations

import datetime as dt

from engine.plan import ErasurePlan, PlanError, plan_from_json
from scanner.catalog import Catalog


def record_plan(catalog: Catalog, plan: ErasurePlan) -> None:
    """Record a plan as made (once per content hash)."""
    with catalog.connect() as con:
        con.execute(
            "INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [plan.content_hash, plan.request_id, plan.created_by, plan.policy.get("name"),
             plan.policy.get("digest"), plan.approvals,
             dt.datetime.now(dt.UTC).replace(tzinfo=None), plan.to_json()])


def recorded_plan(catalog: Catalog, plan: ErasurePlan) -> ErasurePlan:
    """The catalog's record of a plan (by its content hash); PlanError when there is none."""
    with catalog.connect(read_only=True) as con:
        row = con.execute("SELECT body FROM plans WHERE content_hash = ?",
                          [plan.content_hash]).fetchone()
    if row is None:
        raise PlanError(f"plan {plan.request_id}: this catalog never made a plan with content "
                        f"hash {plan.content_hash[:12]}… (edited, or made elsewhere): plan again")
    return plan_from_json(row[0], "the catalog's plan record")
