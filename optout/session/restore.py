"""Restores that cannot bring a subject back: restored data (a backup brought back) is scanned
against the erasure ledger, and every erased subject found in it is erased again, tied back to
the requests that erased them first; the scheduled ledger sweep does the same over every
dataset of the catalog (a data broker's 45-day re-delete).

Both are one operator's operation, audited as one call: the scan reads only the sources named,
the plan erases only the ledger's subjects, and it is applied at once only under a policy that
opts into `reerase: auto` (an admin's decision); otherwise it is written for approval."""

from __future__ import annotations

from dataclasses import dataclass, field

from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.erasure_report import outcome
from optout.engine.history import purge_due
from optout.engine.ledger import Reappearance, reerasure_plan
from optout.engine.policy_store import store_ref, stored_policy
from optout.model.redaction import redact_uri_passwords
from optout.scanner.scan import ScanOptions, ScanReport, scan
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
        is searched in place (the ledger sweep), and kept table histories whose retention
        ended are purged."""
        op = Operation.RESTORE_CHECK if sources else Operation.LEDGER_SWEEP
        with self.operation(op, {"sources": [redact_uri_passwords(s) for s in sources],
                                 "policy": policy}) as call:
            config = self.config()
            found_policy = stored_policy(self.catalog, policy)
            report, only, purged = None, None, []
            if sources:
                report = scan(list(sources), self.catalog, ScanOptions(
                    sample_rows=config.scan.sample_rows, seed=config.scan.seed, full=True,
                    classifier=config.classifier_settings(), engine=config.engine_of()),
                    caller=call.who)
                only = {r.ref.id for r in report.results if r.status == "scanned"}
                if report.failed:
                    call.fail(f"{report.failed} datasets or sources could not be scanned")
                if not only:
                    return Rechecked(report)
            else:
                purged = purge_due(self.catalog)
            plan = reerasure_plan(self.catalog, found_policy, store_ref(found_policy), config,
                                  call.who, only=only)
            if not plan.steps:
                return Rechecked(report, purged=purged)
            found = [Reappearance(s.dataset_id, s.dataset, s.location, s.rows or 0)
                     for s in plan.steps]
            if plan.approvals:
                held = self._hold(plan, output or f"reerase-{plan.request_id}.json")
                return Rechecked(report, found, Applied(plan, held=held), purged)
            rid = apply_plan(self.catalog, plan, ApplyOptions(config=config, caller=call.who))
            return Rechecked(report, found, Applied(plan, rid, outcome(self.catalog, rid)),
                             purged)
