"""Table history kept by policy, purged when its retention ends: a request applied under
`table_history: retain` recorded, per Delta or Iceberg table, the older versions that still
hold the subject and the day the table's own retention ends for each. `optout ledger sweep`
purges those whose day has come and reads them back, so the request ends as if purged then."""

from __future__ import annotations

import datetime as dt
import json

from optout.engine.apply import final_status
from optout.engine.journal import Journal
from optout.engine.physical import Physical
from optout.engine.policy_store import policy_of_plan
from optout.model.plan import plan_from_json
from optout.scanner.catalog import Catalog


def due(catalog: Catalog, today: dt.date) -> dict[str, set[str]]:
    """Request → stores whose every kept version's retention ended by `today`."""
    with catalog.connect() as con:
        rows = con.execute("SELECT request_id, store, detail FROM physical_steps WHERE "
                           "status = 'retained'").fetchall()
    out: dict[str, set[str]] = {}
    for rid, store, detail in rows:
        kept = json.loads(detail or "{}").get("kept") or {}
        if kept and all(u is not None and u <= today.isoformat() for u in kept.values()):
            out.setdefault(rid, set()).add(store)
    return out


def purge_due(catalog: Catalog, today: dt.date | None = None) -> list[tuple[str, str, str]]:
    """Purge every kept history whose retention has ended; (request, store, outcome) each."""
    today = today or dt.datetime.now(dt.UTC).date()
    journal = Journal(catalog)
    done = []
    for rid, names in sorted(due(catalog, today).items()):
        request = journal.request(rid)
        plan = plan_from_json(request["plan"], f"request {rid} in the journal")
        physical = Physical(catalog, plan, policy_of_plan(catalog, plan))
        problems = physical.purge_kept(names)
        recorded = physical.recorded()
        done += [(rid, name, recorded.get(name, {}).get("status", "failed")) for name in names]
        if request["status"] == "complete_with_review" and not problems:
            status = final_status(plan, any(r["status"] in ("off", "retained")
                                            for r in recorded.values()))
            journal.set_request(rid, status, None)
    return done
