"""Restores that cannot bring a subject back: restored data (a backup brought back) is scanned
against the erasure ledger, and every erased subject found in it is erased again, tied back to
the requests that erased them first; the scheduled ledger sweep does the same over every
dataset of the catalog (a data broker's 45-day re-delete)."""

from __future__ import annotations

from dataclasses import dataclass, field

from optout.engine.erasure_report import outcome
from optout.engine.history import purge_due
from optout.engine.ledger import Reappearance
from optout.model.redaction import redact_uri_passwords
from optout.scanner.scan import ScanReport
from optout.session.erasure import Applied, ErasureOperations
from optout.session.operations import Operation


@dataclass
class Rechecked:
    """What a restore check or ledger sweep found and did: the scan of the restored data
    (None for a sweep), where erased subjects came back, and the re-erasure (None: none)."""

    report: ScanReport | None
    reappeared: list[Reappearance] = field(default_factory=list)
    applied: Applied | None = None
    #: (request, store, outcome) of kept table histories purged because their retention ended
    purged: list[tuple[str, str, str]] = field(default_factory=list)


class RestoreOperations(ErasureOperations):
    """`optout restore-check` and `optout ledger sweep`."""

    def restore_check(self, sources: list[str], policy: str, *, output: str | None = None
                      ) -> Rechecked:
        """Scan `sources` (restored data) in full and erase again every subject of the
        erasure ledger found in them: at once when the policy says `reerase: auto`, else a
        plan written to `output` for approval. With no sources, every dataset of the catalog
        is searched in place (the ledger sweep)."""
        op = Operation.RESTORE_CHECK if sources else Operation.LEDGER_SWEEP
        with self.operation(op, {"sources": [redact_uri_passwords(s) for s in sources],
                                 "policy": policy}):
            config = self.config()
            report, only, purged = None, None, []
            if not sources:
                purged = purge_due(self.catalog)
            if sources:
                scanned = self.scan(sources, full=True, config=config)
                report = scanned.report
                only = {r.ref.id for r in report.results if r.status == "scanned"}
                if not scanned.reappeared:
                    return Rechecked(report)
            plan = self.reerasure(policy, only=only, config=config)
            if not plan.steps:
                return Rechecked(report, purged=purged)
            found = [Reappearance(s.dataset_id, s.dataset, s.location, s.rows or 0)
                     for s in plan.steps]
            if plan.approvals:
                held = self._hold(plan, output or f"reerase-{plan.request_id}.json")
                return Rechecked(report, found, Applied(plan, held=held), purged)
            rid = self.apply_plan(plan, config=config)
            return Rechecked(report, found, Applied(plan, rid, outcome(self.catalog, rid)),
                             purged)
