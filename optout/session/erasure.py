"""The session's erasure workflow: plan, review, approve, apply (with replanning and
re-erasure), resume, and the signed report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optout.engine.apply import (
    FINAL,
    INCOMPLETE,
    ApplyOptions,
    StalePlan,
    apply_plan,
    check_plan,
    final_status,
    resume,
)
from optout.engine.approvals import approve
from optout.engine.cascade.run import run_cascade
from optout.engine.cascade.spec import Spec
from optout.engine.erasure_report import build_report, outcome, verify_report
from optout.engine.journal import Journal
from optout.engine.ledger import reerasure_plan
from optout.engine.plan_store import recorded_plan
from optout.engine.planner import PlanRequest, build_plan, replan
from optout.engine.policy import Policy
from optout.engine.policy_store import store_ref, stored_policy
from optout.engine.private_files import write_private
from optout.engine.subjects import Subject, parse_subject, read_subjects
from optout.model.errors import EngineError
from optout.model.plan import ErasurePlan, load_plan
from optout.scanner.access import EMBEDDED, AccessDenied
from optout.scanner.config import Config, LinkConfig
from optout.scanner.deployment import deployment_config, store_deployment_config
from optout.session.base import Call
from optout.session.data import DataOperations
from optout.session.operations import Operation, holds

#: how a workflow tells its adapter what it is doing (a line for a person)
Say = Callable[[str], None]


class NothingToPlan(EngineError):
    """A plan was asked for without a subject."""


class BadProposal(EngineError):
    """A review named a proposal the plan does not have, or accepted and rejected one."""


@dataclass
class Applied:
    """How an apply ended: the request it ran (None when nothing ran), or the plan it wrote
    for approval instead (`held`), what replanning said, and whether the subject may remain."""

    plan: ErasurePlan
    request_id: str | None = None
    status: str = ""
    held: str | None = None
    replanned: list[str] = field(default_factory=list)
    aborted: bool = False

    @property
    def incomplete(self) -> bool:
        return self.request_id is not None and final_status(self.plan) == INCOMPLETE


@dataclass
class Reviewed:
    """A review: the plan planned again after accepting or rejecting proposals (the plan
    itself when none were)."""

    plan: ErasurePlan
    path: str
    diff: list[str]


def subjects_of(policy_identifiers: list[str], subjects: list[str],
                subjects_file: str | None) -> list[Subject]:
    """The subjects a request names (KEY=VALUE strings and a file of them)."""
    parsed = [parse_subject(s, policy_identifiers) for s in subjects]
    if subjects_file:
        parsed += read_subjects(subjects_file, policy_identifiers)
    if not parsed:
        raise NothingToPlan("give at least one subject (KEY=VALUE) or a file of them")
    return parsed


def numbered(plan: ErasurePlan) -> dict[int, dict]:
    """Every proposal of a plan's review items, numbered from 1 in the plan's order."""
    return {n: p for n, p in enumerate((p for note in plan.review for p in note.proposals),
                                        start=1)}


class ErasureOperations(DataOperations):
    """Plan, review, approve, apply, resume, report (replanning scans again: a data
    operation)."""

    def plan(self, subjects: list[str], policy: str, *, subjects_file: str | None = None,
             request_id: str | None = None, accept_ambiguous: bool = False,
             engine: str | None = None) -> ErasurePlan:
        """Plan an erasure or opt-out under a stored policy for subjects given as KEY=VALUE
        (and a file of them); changes nothing. `accept_ambiguous` (an admin's) plans
        subjects resolution would stop. The audit log keeps keyed hashes of the subjects."""
        args = {"policy": policy, "request_id": request_id, "subjects": list(subjects),
                "subjects_file": subjects_file, "accept_ambiguous": accept_ambiguous}
        with self.operation(Operation.PLAN, args) as call:
            found = stored_policy(self.catalog, policy)
            parsed = subjects_of(found.identifiers, subjects, subjects_file)
            return self._plan(call, parsed, found, request_id, accept_ambiguous,
                              self.config(engine))

    def plan_subjects(self, subjects: list[Subject], policy: str, *,
                      request_id: str | None = None, accept_ambiguous: bool = False,
                      config: Config | None = None) -> ErasurePlan:
        """Plan for parsed subjects under the stored policy `policy` (a name, or a file
        whose content is a stored policy's)."""
        hasher = self.catalog.hasher()
        args = {"policy": policy, "request_id": request_id, "accept_ambiguous": accept_ambiguous,
                "subject_hashes": [f"{s.key}={s.digest(hasher)[:32]}" for s in subjects]}
        with self.operation(Operation.PLAN, args) as call:
            return self._plan(call, subjects, stored_policy(self.catalog, policy), request_id,
                              accept_ambiguous, config or self.config())

    def _plan(self, call: Call, subjects: list[Subject], policy: Policy,
              request_id: str | None, accept_ambiguous: bool, config: Config) -> ErasurePlan:
        if accept_ambiguous and call.who is not EMBEDDED and not holds(call.who, "admin"):
            raise AccessDenied(
                f"plan --accept-ambiguous: {call.who.name} does not hold the role 'admin' "
                "(widening a subject past the resolution bounds is an admin's decision; "
                "the plan records it)")
        return build_plan(self.catalog, PlanRequest(subjects, policy, store_ref(policy),
                                                    request_id, created_by=call.who.name),
                          config, caller=call.who, accept_ambiguous=accept_ambiguous)

    def reerasure(self, policy: str, *, only: set[str] | None = None,
                  config: Config | None = None) -> ErasurePlan:
        """A plan erasing again every subject of the erasure ledger found in the data (only
        in the datasets `only`, when given)."""
        with self.operation(Operation.PLAN, {"policy": policy, "reapply": True}) as call:
            found = stored_policy(self.catalog, policy)
            return reerasure_plan(self.catalog, found, store_ref(found), config or self.config(),
                                  call.who, only=only)

    def review(self, plan_file: str, accept: list[int], reject: list[int],
               output: str | None = None) -> Reviewed:
        """Accept or reject a plan's numbered proposals (an admin's: it changes the
        deployment's configuration), then plan again; the new plan is written to `output`
        (default: PLAN with .reviewed.json)."""
        with self.operation(Operation.REVIEW, {"plan_file": plan_file, "accepted": accept,
                                               "rejected": reject}):
            plan = load_plan(plan_file)
            if not accept and not reject:
                return Reviewed(plan, plan_file, [])
            proposals = numbered(plan)
            unknown = sorted((set(accept) | set(reject)) - proposals.keys())
            if unknown:
                raise BadProposal(f"no proposal {unknown[0]} in {plan_file} (it has "
                                  f"{len(proposals)}; `optout review {plan_file}` lists them)")
            if set(accept) & set(reject):
                raise BadProposal("a proposal is either accepted or rejected, not both")
            with self.operation(Operation.CONFIG_SET, {"review": plan_file, "accepted": accept,
                                                       "rejected": reject}) as change:
                config, _ = deployment_config(self.catalog)
                for n in accept:
                    p = proposals[n]
                    section = config.identity.references if p["section"] == "references" \
                        else config.identity.links
                    section.append(LinkConfig(columns=tuple(p["columns"])))
                for n in reject:
                    config.identity.reject.append(
                        LinkConfig(columns=tuple(proposals[n]["columns"])))
                store_deployment_config(self.catalog, config, change.who.name)
            policy = stored_policy(self.catalog, plan.policy["name"])
            new, diff = replan(self.catalog, plan, policy, self.config(), caller=self.principal)
            path = output or str(Path(plan_file).with_suffix(".reviewed.json"))
            write_private(path, new.to_json())
            return Reviewed(new, path, diff)

    def approve(self, plan_file: str) -> tuple[ErasurePlan, int, int]:
        """Approve a plan's exact content (never its author): the plan, its approvals now,
        and the approvals its record needs."""
        plan = load_plan(plan_file)
        with self.operation(Operation.APPROVE, {"request_id": plan.request_id,
                                                "plan_hash": plan.content_hash}) as call, \
                self.catalog.held():
            count = approve(self.catalog, plan, call.who)
            return plan, count, recorded_plan(self.catalog, plan).approvals

    def apply(self, plan_file: str | None = None, *, reapply_policy: str | None = None,
              replan_if_stale: bool = False, dry_run: bool = False, lease_wait: float = 30.0,
              engine: str | None = None, confirm: Callable[[ErasurePlan], bool] | None = None,
              say: Say = lambda _: None) -> Applied:
        """Apply a plan file, atomically and verified; or, with `reapply_policy`, erase again
        every subject of the erasure ledger found in the data. With `replan_if_stale`, a plan
        whose data changed (or whose request stopped part-way) is planned again and written
        for approval instead. `confirm` is asked before anything changes."""
        with self.operation(Operation.APPLY, {"plan_file": plan_file, "dry_run": dry_run,
                                              "reapply": reapply_policy}) as call:
            config = self.config(engine)
            if reapply_policy:
                plan = self.reerasure(reapply_policy, config=config)  # planning: a requester's
                if not plan.steps:
                    return Applied(plan, status="no erased subject found in the data")
                if not dry_run and plan.approvals:  # `reerase: auto` needs none
                    return Applied(plan, held=self._hold(plan, f"reapply-{plan.request_id}.json"))
            elif plan_file:
                plan = load_plan(plan_file)
                if replan_if_stale:
                    why, supersedes = self._stale(plan)
                    if why:
                        say(f"{why} (the plan's datasets are scanned again first)")
                        plan, diff = self._replanned(plan, supersedes, config)
                        if not dry_run:
                            path = str(Path(plan_file).with_suffix(".replanned.json"))
                            return Applied(plan, held=self._hold(plan, path), replanned=diff)
            else:
                raise EngineError("give a plan file (or a policy to erase the ledger's "
                                  "subjects again)")
            if confirm is not None and not dry_run and not confirm(plan):
                call.fail("aborted at the confirmation")
                return Applied(plan, aborted=True)
            rid = apply_plan(self.catalog, plan, ApplyOptions(
                dry_run=dry_run, lease_wait=lease_wait, config=config, caller=call.who))
            with self.catalog.held():
                return Applied(plan, rid, outcome(self.catalog, rid, plan))

    def apply_plan(self, plan: ErasurePlan, *, config: Config | None = None,
                   dry_run: bool = False, lease_wait: float = 30.0) -> str:
        """Apply a plan (already approved as its policy requires); returns the request id."""
        with self.operation(Operation.APPLY, {"request_id": plan.request_id,
                                              "plan_hash": plan.content_hash,
                                              "dry_run": dry_run}) as call:
            return apply_plan(self.catalog, plan, ApplyOptions(
                dry_run=dry_run, lease_wait=lease_wait, config=config or self.config(),
                caller=call.who))

    def _stale(self, plan: ErasurePlan) -> tuple[str | None, str]:
        """Why a plan must be made again (None when it need not), and the request its new
        plan supersedes."""
        started = Journal(self.catalog).applied(plan.content_hash)
        if started is not None and started["status"] not in FINAL:
            return (f"request {started['id']} stopped {started['status']} after part of its "
                    "work; planning what remains"), started["id"]
        try:
            check_plan(self.catalog, plan)
        except StalePlan as exc:
            return f"{exc}; planning again", ""
        return None, ""

    def _replanned(self, plan: ErasurePlan, supersedes: str, config: Config
                   ) -> tuple[ErasurePlan, list[str]]:
        """The plan made again after scanning its datasets again (a scanner's and a
        requester's operations, authorized as such), and what changed."""
        self.scan(sorted({s.location for s in plan.steps}), config=config)
        with self.operation(Operation.PLAN, {"replan": plan.request_id,
                                             "supersedes": supersedes}) as call:
            policy = stored_policy(self.catalog, plan.policy["name"])
            return replan(self.catalog, plan, policy, config, caller=call.who,
                          supersedes=supersedes)

    @staticmethod
    def _hold(plan: ErasurePlan, path: str) -> str:
        """Write a plan that needs approving before it is applied; returns where."""
        write_private(path, plan.to_json())
        return path

    def cascade(self, request_id: str, targets: list[Spec],
                identifiers: dict[str, str]) -> list[str]:
        """Erase a request's subject from the cascade targets (caches, search indexes, third
        parties), each verified; returns the failures (empty: all verified). An erasure, so
        an operator's."""
        if not targets:
            return []
        with self.operation(Operation.APPLY, {"request_id": request_id,
                                              "cascade": [t.name for t in targets],
                                              "identifiers": [f"{k}={v}" for k, v
                                                              in identifiers.items()]}
                            ) as call:
            failures = run_cascade(self.catalog, request_id, targets, identifiers)
            if failures:
                call.fail("; ".join(failures)[:300])
            return failures

    def resume(self, request_id: str, *, lease_wait: float = 30.0, engine: str | None = None,
               config: Config | None = None) -> str:
        """Finish a request whose process died or whose commit kept failing; its outcome."""
        with self.operation(Operation.RESUME, {"request_id": request_id}) as call:
            resume(self.catalog, request_id, ApplyOptions(
                lease_wait=lease_wait, caller=call.who, config=config or self.config(engine)))
            return outcome(self.catalog, request_id)

    def report(self, request_id: str) -> dict[str, Any]:
        """The signed report of a request."""
        with self.operation(Operation.REPORT, {"request_id": request_id}) as call:
            return build_report(self.catalog, request_id, call.who)

    def subject_report(self, request_id: str, subject_text: str) -> dict[str, Any]:
        """One subject's part of a request's report (the subject as `KEY=VALUE`; the audit
        log names her by keyed hash only)."""
        from optout.engine.subject_report import subject_report

        subject = parse_subject(subject_text)
        digest = subject.digest(self.catalog.hasher())
        with self.operation(Operation.REPORT, {"request_id": request_id,
                                               "subject": digest[:16]}) as call:
            return subject_report(self.catalog, request_id, subject, call.who)

    def request_status(self, request_id: str | None = None, limit: int = 100) -> Any:
        """Requests as privacy staff work them (overdue first) with their clocks; or, with
        `request_id`, that request's status, clock and timeline (no identifier)."""
        from optout.engine.lifecycle import request_queue, request_status

        with self.operation(Operation.REQUEST_STATUS, {"request_id": request_id}):
            if request_id is None:
                return request_queue(self.catalog, limit)
            return request_status(self.catalog, request_id)

    def extend_request(self, request_id: str, reason: str) -> Any:
        """Extend a request's legal clock as its law allows, once, with the reason (a privacy
        officer's decision: an approver's); returns the clock."""
        from optout.engine.lifecycle import extend_clock

        with self.operation(Operation.REQUEST_EXTEND, {"request_id": request_id,
                                                       "reason": reason[:200]}) as call:
            return extend_clock(self.catalog, request_id, reason, call.who.name)

    def request_metrics(self, year: int) -> dict[str, dict]:
        """The yearly request metrics (per kind: received, complied with, denied, median
        days), read from the catalog's sealed request clocks and timelines."""
        from optout.engine.lifecycle import metrics

        with self.operation(Operation.REQUEST_METRICS, {"year": year}):
            return metrics(self.catalog, year)

    def verify_report(self, path: str) -> dict[str, Any]:
        """A report file whose signature holds; raises ReportError otherwise."""
        with self.operation(Operation.REPORT_VERIFY, {"file": path}) as call:
            return verify_report(self.catalog, path, call.who)
