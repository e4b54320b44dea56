"""Apply: carry out a plan so that, across every dataset it touches, the erasure happens
completely or not at all, is retried until resolved, and is proven by re-reading the data.

0. check — the plan is executable (the planner said so) and every target can be changed now;
1. prepare — every row-changing target stages its change (new file versions beside the old
   ones, fsynced; database changes inside open transactions); then every derived dataset is
   rebuilt from its SQL over the *staged* versions of what it reads, and staged the same way;
2. check — every staged version is re-read: none of the subject's rows, the expected count;
3. commit — renames and commits, sources then derived data, each recorded in the journal as
   it happens; a failure here is rolled forward (retried, re-preparing if its transaction was
   lost);
4. verify — every step's dataset is read again for the subject: the residue must be zero.
A failure before commit rolls everything back. `resume` finishes a request whose process died.
A request ends `complete` when every dataset holding the subject was changed (or retained) and
read back clean; `incomplete_needs_review` when the plan named datasets that may still hold the
subject, rows it found and leaves, or a subject it stopped (the report says how many rows and
where, first); `complete_with_review` when its only findings are about data retained on
purpose.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import dataclass, field

from optout.connectors import open_source
from optout.engine import EngineError
from optout.engine.approvals import ApprovalError, require_approved
from optout.engine.graph import IdentityGraph, build_graph
from optout.engine.journal import Journal
from optout.engine.ledger import reappearances
from optout.engine.physical import Physical, PhysicalError
from optout.engine.plan_settings import check_settings
from optout.engine.plan_store import recorded_plan
from optout.engine.planner import values_by_domain
from optout.engine.policy import COLUMN_ACTIONS, ROW_ACTIONS, PolicyError
from optout.engine.policy_store import policy_of_plan
from optout.engine.recompute import RecomputeTarget, Upstream
from optout.engine.source_pool import ref_of
from optout.engine.staging import stage
from optout.engine.targets import ApplyError, Staged, Target, reader_for, target_for
from optout.model.errors import ScannerError
from optout.model.faults import fault
from optout.model.plan import ErasurePlan, PlanError, PlanStep, plan_from_json
from optout.model.progress import task
from optout.model.redaction import one_line
from optout.model.runtime import DUCKDB, Runtime
from optout.model.sandbox import Relation
from optout.scanner.access import EMBEDDED, Principal, acting
from optout.scanner.catalog import Catalog, DatasetRecord
from optout.scanner.config import Config
from optout.scanner.deployment import deployment_config

#: an applied plan that left data of the subject (known rows, or datasets not searched)
INCOMPLETE = "incomplete_needs_review"
FINAL = ("complete", "complete_with_review", "incomplete_needs_review", "rolled_back", "dry_run",
         "superseded")
ACTIONS = (*ROW_ACTIONS, *COLUMN_ACTIONS)
#: fault points (see optout/model/faults.py): after-prepare, after-check, mid-commit (after the
#: first target committed), mid-file-commit (inside a multi-file commit), before-rebuild-commit
#: (sources committed, derived datasets not), before-verify
#: test hook: `dataset=N` makes that dataset's commit fail N times before it succeeds
FAIL_COMMIT_ENV = "OPTOUT_FAIL_COMMIT"
_failed_commits: dict[str, int] = {}


class StalePlan(EngineError):
    """The plan no longer matches the data or the catalog it was made from."""


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply."""

    dry_run: bool = False
    lease_wait: float = 30.0
    retries: int = 5
    backoff: float = 0.2
    principal: str = field(default_factory=getpass.getuser)  # who, in embedded use
    config: Config | None = None  # the project config (declared identity links)
    caller: Principal | None = None  # the authenticated caller (needs the operator role)


def _engine(options: ApplyOptions) -> Runtime:
    """The engine apply reads and rewrites the data with (the config's, or DuckDB)."""
    return options.config.engine_of() if options.config is not None else DUCKDB


def _config(catalog: Catalog, options: ApplyOptions) -> Config:
    """The configuration apply runs under: the caller's (the deployment's, read by the CLI
    and the worker), else the deployment's from the catalog."""
    return options.config if options.config is not None else deployment_config(catalog)[0]


def _maybe_fail_commit(dataset: str) -> None:
    spec = os.environ.get(FAIL_COMMIT_ENV, "")
    name, _, times = spec.partition("=")
    if name == dataset and _failed_commits.get(dataset, 0) < int(times or 0):
        _failed_commits[dataset] = _failed_commits.get(dataset, 0) + 1
        raise ApplyError(f"{dataset}: injected commit failure {_failed_commits[dataset]}")


def check_plan(catalog: Catalog, plan: ErasurePlan) -> None:
    """Refuse a plan naming datasets the catalog does not know, or whose data changed since."""
    known = {d.id: d for d in catalog.datasets()}
    for step in plan.steps:
        record = known.get(step.dataset_id)
        if record is None:
            raise StalePlan(f"the plan names dataset '{step.dataset}' ({step.dataset_id}), "
                            "which is not in the catalog")
        if (step.location, step.dataset, step.format) != (record.location, record.name,
                                                           record.format):
            raise StalePlan(f"the plan's step for '{step.dataset}' names {step.location!r}, "
                            f"but the catalog has that dataset at {record.location!r}: refused")
        check_step(step, record)
        if step.fingerprint is None or step.kind == "view":
            continue
        try:
            with open_source(record.location) as source:
                now = source.fingerprint(ref_of(record))
        except ScannerError as exc:
            raise StalePlan(f"{step.dataset}: cannot read it to check the plan: {exc}") from exc
        if now is not None and now != step.fingerprint:
            raise StalePlan(f"{step.dataset} changed since the plan was made (file replaced, "
                            "rows or schema changed); plan again (or apply --replan)")


def check_step(step: PlanStep, record: DatasetRecord) -> None:
    """Refuse a step whose values do not come from the catalog: how the dataset is read, the
    columns it matches and changes, its actions (every name here reaches SQL, quoted)."""
    problem = None
    columns = {c.name for c in record.columns}
    named = [c for c, _, _ in step.keys] + [c for c, _ in step.columns] + list(step.texts)
    if step.kind != record.kind or _canonical(dict(step.options)) != _canonical(
            record.options):
        problem = "reads it another way than the catalog does"
    elif step.action not in ACTIONS:
        problem = f"has an unknown action {step.action!r}"
    elif unknown := [c for c in named if c not in columns]:
        problem = f"names a column the catalog does not know ({unknown[0]!r})"
    elif bad := [a for _, a in step.columns if a not in COLUMN_ACTIONS]:
        problem = f"has an unknown column action {bad[0]!r}"
    if problem:
        raise StalePlan(f"the plan's step for '{step.dataset}' {problem}: refused")


def _canonical(options: dict) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def check_policy(catalog: Catalog, plan: ErasurePlan) -> None:
    """Refuse a plan whose policy changed (or went) since the plan was made under it."""
    try:
        policy_of_plan(catalog, plan)
    except PolicyError as exc:
        raise StalePlan(str(exc)) from exc


def apply_plan(catalog: Catalog, plan: ErasurePlan, options: ApplyOptions | None = None) -> str:
    """Apply a plan; returns the request id. Raises on a failure before commit (everything
    rolled back) and leaves the request `blocked` when commit keeps failing. (The catalog is
    held only around bookkeeping: not while the data is read or a lease waited for.)"""
    options = options or ApplyOptions()
    with catalog.held():
        who = acting(catalog, options.caller)
        if plan.digest() != plan.content_hash:
            raise PlanError("the plan's content hash does not match: it was altered")
        plan = recorded_plan(catalog, plan)
        journal = Journal(catalog)
        done = None if options.dry_run else journal.applied(plan.content_hash)
        if done is not None:  # a plan applies once: an approval is for one run
            raise ApprovalError(
                f"plan {plan.request_id} was applied already (request {done['id']}, "
                f"{done['status']}): a plan applies once; `optout resume {done['id']}` "
                "finishes one that did not complete, or plan again")
        if plan.unexecutable:
            _check_executable(plan, catalog)  # says which step cannot be carried out, and why
        check_policy(catalog, plan)
        if who is not EMBEDDED or options.config is not None:
            check_settings(plan.settings, _config(catalog, options))
    check_plan(catalog, plan)
    with catalog.held():
        if who is not EMBEDDED and not options.dry_run:
            require_approved(catalog, plan)
        journal.create(plan, options.principal if who is EMBEDDED else who.name,
                       options.dry_run, [(i, 1) for i in range(len(plan.steps))])
    journal.acquire(plan.request_id, sorted({s.dataset_id for s in plan.steps}),
                    options.lease_wait)
    return _run(catalog, plan, journal, options, committed=set())


def resume(catalog: Catalog, request_id: str, options: ApplyOptions | None = None) -> str:
    """Finish a request whose process died or whose commit kept failing."""
    options = options or ApplyOptions()
    acting(catalog, options.caller)
    journal = Journal(catalog)
    request = journal.request(request_id)
    if request["status"] in FINAL:
        return request_id
    plan = plan_from_json(request["plan"], f"request {request_id} in the journal")
    steps = journal.steps(request_id)
    journal.acquire(request_id, sorted({s.dataset_id for s in plan.steps}), options.lease_wait)
    if request["status"] in ("preparing", "failed"):
        # Nothing was visible yet: drop what was staged (recorded or half-written) and start
        # over.
        hasher = catalog.hasher()
        for s in steps:
            for _, new in json.loads(s["staged"] or "{}").get("files", []):
                if os.path.lexists(new):
                    os.remove(new)
            target_for(plan.steps[s["step_no"]], hasher, catalog, request_id,
                       engine=_engine(options)).discard()
        return _run(catalog, plan, journal, options, committed=set())
    committed = {s["step_no"] for s in steps if s["status"] in ("committed", "retained")}
    hasher = catalog.hasher()
    by_step = {s["step_no"]: s for s in steps}
    # Sources first, then rebuilds in dependency order: a rebuild prepared again reads its
    # upstream datasets as they are now, committed.
    sources = [i for i in _referencing_first(catalog, plan)
               if plan.steps[i].action != "recompute"]
    for i in [*sources, *_rebuild_order(plan)]:
        s = by_step.get(i)
        if s is None or i in committed:
            continue
        target = target_for(plan.steps[i], hasher, catalog, request_id,
                            engine=_engine(options))
        saved = json.loads(s["staged"] or "{}")
        files = saved.get("files", [])
        if target.durable_staging and files and any(os.path.exists(n) for _, n in files):
            # checked staged versions: rename what was not renamed yet (a multi-file commit
            # the process died in the middle of is finished, not redone)
            _commit(journal, plan, i, target, _staged_from(saved), options)
        else:
            _roll_forward(journal, plan, i, target, options)
        committed.add(i)
    return _run(catalog, plan, journal, options, committed=committed, committing=True)


def _staged_from(saved: dict) -> Staged:
    """A staged change as the journal kept it (files, counts and checksums)."""
    fields = {k: v for k, v in saved.items() if k in Staged.__dataclass_fields__}
    return Staged(**{**fields, "files": [tuple(f) for f in saved.get("files", [])]})


def _run(catalog: Catalog, plan: ErasurePlan, journal: Journal, options: ApplyOptions,
         committed: set[int], committing: bool = False) -> str:
    rid = plan.request_id
    hasher = catalog.hasher()
    targets: dict[int, Target] = {}
    try:
        if not committing:
            staged: dict[int, Staged] = {}
            try:
                _check_executable(plan, catalog)
                order = _referencing_first(catalog, plan)
                for i in order:
                    step = plan.steps[i]
                    if step.action == "recompute":
                        continue
                    if step.action == "retain" and not step.columns:
                        journal.set_step(rid, i, "retained")
                        committed.add(i)
                        continue
                    targets[i] = target_for(step, hasher, catalog, rid,
                                            engine=_engine(options))

                def prepared(i: int) -> None:
                    journal.set_step(rid, i, "prepared", staged=staged[i].as_journal(),
                                     rows_before=staged[i].rows_before,
                                     checksum_before=staged[i].checksum_before)

                with task("apply: staging the changed versions", len(targets)) as advance:
                    stage(order, targets, staged, prepared, advance)
                # Derived datasets next, each from the staged versions of what it reads.
                upstream = _staged_upstream(catalog, plan, targets, staged, hasher)
                for i in _rebuild_order(plan):
                    targets[i] = target_for(plan.steps[i], hasher, catalog, rid, upstream)
                    staged[i] = targets[i].prepare()
                    journal.set_step(rid, i, "prepared", staged=staged[i].as_journal(),
                                     rows_before=staged[i].rows_before,
                                     checksum_before=staged[i].checksum_before)
                fault("after-prepare")
                with task("apply: reading the staged versions back", len(targets)) as advance:
                    for i, target in targets.items():
                        advance(f"apply: reading back {plan.steps[i].dataset}")
                        target.check(staged[i])
                        journal.set_step(rid, i, "checked")
                fault("after-check")
            except Exception as exc:  # anything before the commit point: nothing changes
                reason = str(exc) if isinstance(exc, ApplyError | ScannerError) else (
                    f"{type(exc).__name__}: {one_line(exc)}")
                for i, target in targets.items():
                    if i in staged:
                        target.rollback(staged[i])
                    else:
                        target.discard()  # its prepare failed half-way
                    journal.set_step(rid, i, "rolled_back", error=reason)
                journal.set_request(rid, "rolled_back", reason)
                journal.release(rid)
                raise ApplyError(f"nothing was changed: {reason}") from exc
            if options.dry_run:
                for i, target in targets.items():
                    target.rollback(staged[i])
                    journal.set_step(rid, i, "rolled_back", error="dry run")
                journal.set_request(rid, "dry_run")
                journal.release(rid)
                return rid
            journal.set_request(rid, "committing")
            # From here a rebuild prepared again (a commit failure rolled forward) reads its
            # upstream datasets as committed: their staged versions are renamed into place.
            current = _staged_upstream(catalog, plan, {}, {}, hasher)
            for target in targets.values():
                if isinstance(target, RecomputeTarget):
                    target.upstream = current
            rebuilds = set(_rebuild_order(plan))
            for n, (i, target) in enumerate(targets.items()):
                if i in rebuilds and not rebuilds & committed:
                    fault("before-rebuild-commit")  # sources committed, derived data not yet
                _commit(journal, plan, i, target, staged[i], options)
                committed.add(i)
                if n == 0:
                    fault("mid-commit")
        fault("before-verify")
        with task("apply: verifying the committed data", 1) as advance:
            _verify(catalog, plan, journal, targets, _engine(options))
            advance()
        graph = build_graph(catalog, options.config)
        erased = values_by_domain(graph, plan)
        _verify_elsewhere(catalog, plan, graph, erased)
        policy = policy_of_plan(catalog, plan)
        fault("before-physical")
        with task("apply: reading the stores' raw bytes", 1) as advance:
            physical = Physical(catalog, plan, policy,
                                {i: t.erased_values for i, t in targets.items()}).run()
            advance()
    except (ApplyError, PhysicalError) as exc:
        if journal.request(rid)["status"] != "rolled_back":
            journal.set_request(rid, "blocked", str(exc))
        if isinstance(exc, PhysicalError):
            raise ApplyError(f"{exc}; the request is blocked — run `optout resume {rid}`"
                             ) from exc
        raise
    with catalog.held():
        journal.record_erased(plan, erased)
        journal.forget_fingerprints([s.dataset_id for s in plan.steps])
        journal.set_request(rid, final_status(plan, any(
            r["status"] in ("off", "retained")
            for r in Physical(catalog, plan, policy).recorded().values()), physical))
        journal.release(rid)
        if plan.supersedes and journal.find(plan.supersedes) is not None:
            journal.set_request(plan.supersedes, "superseded", f"finished by request {rid}")
            journal.release(plan.supersedes)
    return rid


def final_status(plan: ErasurePlan, physical_off: bool = False,
                 problems: list[str] | None = None) -> str:
    """The status of an applied plan: `complete` only when nothing may still hold the subject
    and every reachable byte of what it changed read clean; `incomplete_needs_review` when
    datasets it found (or could not search) may, a subject was stopped, or a store's bytes
    still hold the subject (best-effort physical erasure); `complete_with_review` when its
    findings are about data kept on purpose, or physical erasure was off by policy."""
    if plan.remaining() or problems:
        return INCOMPLETE
    return "complete_with_review" if plan.review or physical_off else "complete"


def _rebuild_order(plan: ErasurePlan) -> list[int]:
    """The plan's derived steps (rebuilds and views), each after the derived steps it reads."""
    derived = {s.dataset_id: i for i, s in enumerate(plan.steps) if s.action == "recompute"}
    reads = {i: {derived[d] for _, d in plan.steps[i].param("tables", ()) if d in derived}
             | {derived[d] for d in plan.steps[i].param("upstream", ()) if d in derived}
             for i in derived.values()}
    order: list[int] = []
    remaining = set(reads)
    while remaining:
        ready = sorted(i for i in remaining if not (reads[i] - {i}) & remaining)
        ready = ready or sorted(remaining)[:1]  # a cycle: keep plan order
        order += ready
        remaining -= set(ready)
    return order


def _staged_upstream(catalog: Catalog, plan: ErasurePlan, targets: dict[int, Target],
                     staged: dict[int, Staged], hasher) -> Upstream:
    """How a rebuild reads a dataset: the staged version when the plan changes it, else the
    data as it is (through its database's open transaction when there is one)."""
    index = {s.dataset_id: i for i, s in enumerate(plan.steps)}

    def read(dataset_id: str) -> Relation:
        i = index.get(dataset_id)
        if i is not None and i in staged:
            return targets[i].sandbox_relation(staged[i])
        return reader_for(catalog, hasher, dataset_id)
    return read


def _check_executable(plan: ErasurePlan, catalog: Catalog) -> None:
    """Refuse, before anything is staged, a plan the planner found unexecutable, or a step
    whose target cannot be changed here now (apply checks again what planning checked)."""
    if plan.unexecutable:
        note = plan.unexecutable[0]
        raise ApplyError(f"{note.dataset}: {note.reason} (the plan cannot be applied: "
                         "fix it, then plan again)")
    hasher = catalog.hasher()
    for step in plan.steps:
        if step.action == "retain" and not step.columns:
            continue
        problem = target_for(step, hasher, catalog, plan.request_id).executable()
        if problem:
            raise ApplyError(f"{step.dataset}: {problem}")


def _referencing_first(catalog: Catalog, plan: ErasurePlan) -> list[int]:
    """Step order in which rows that reference others (foreign keys) change before the rows
    they reference, so a shared transaction never trips a foreign key."""
    index = {(s.location, s.dataset): i for i, s in enumerate(plan.steps)}
    by_id = {s.dataset_id: s for s in plan.steps}
    parents: dict[int, set[int]] = {i: set() for i in range(len(plan.steps))}
    for dataset_id, _, ref_table, _ in catalog.foreign_keys():
        step = by_id.get(dataset_id)
        parent = index.get((step.location, ref_table)) if step else None
        if step is not None and parent is not None:
            parents[parent].add(index[(step.location, step.dataset)])
    order: list[int] = []
    remaining = set(parents)
    while remaining:
        ready = sorted(i for i in remaining if not (parents[i] & remaining))
        ready = ready or sorted(remaining)[:1]  # a cycle: keep plan order
        order += ready
        remaining -= set(ready)
    return order


def _commit(journal: Journal, plan: ErasurePlan, i: int, target: Target, staged: Staged,
            options: ApplyOptions) -> None:
    rid = plan.request_id
    try:
        _maybe_fail_commit(plan.steps[i].dataset)
        target.commit(staged)
    except (ApplyError, ScannerError, OSError) as exc:
        journal.attempt(rid, i, str(exc))
        target.rollback(staged)
        _roll_forward(journal, plan, i, target, options, first_attempt=False)
        return
    with journal.catalog.held():
        journal.attempt(rid, i, None)
        journal.set_step(rid, i, "committed", rows_after=staged.rows_after,
                         rows_changed=staged.rows_changed, checksum_after=staged.checksum_after)


def _roll_forward(journal: Journal, plan: ErasurePlan, i: int, target: Target,
                  options: ApplyOptions, first_attempt: bool = True) -> None:
    """Prepare, check and commit one step until it succeeds or the retries run out."""
    rid = plan.request_id
    delay = options.backoff
    last: Exception | None = None
    for attempt in range(options.retries):
        if attempt or not first_attempt:
            time.sleep(delay)
            delay *= 2
        staged = None
        try:
            staged = target.prepare()
            target.check(staged)
            _maybe_fail_commit(plan.steps[i].dataset)
            target.commit(staged)
        except (ApplyError, ScannerError, OSError) as exc:
            last = exc
            if staged is not None:
                target.rollback(staged)
            journal.attempt(rid, i, str(exc))
            continue
        journal.attempt(rid, i, None)
        journal.set_step(rid, i, "committed", rows_before=staged.rows_before,
                         rows_after=staged.rows_after, rows_changed=staged.rows_changed,
                         checksum_before=staged.checksum_before,
                         checksum_after=staged.checksum_after)
        return
    raise ApplyError(f"{plan.steps[i].dataset}: still failing after {options.retries} attempts "
                     f"({last}); the request is blocked — run `optout resume {rid}`")


def _verify_elsewhere(catalog: Catalog, plan: ErasurePlan, graph: IdentityGraph,
                      erased: dict[str, set[str]]) -> None:
    """Every other dataset with identifier columns is read for the subject's keyed hashes."""
    others = set(graph.datasets) - {s.dataset_id for s in plan.steps}
    found = reappearances(catalog, graph, others, erased)
    if found:
        where = ", ".join(f"{f.dataset} ({f.rows} rows)" for f in found)
        raise ApplyError(f"verification found the subject outside the plan in {where}: plan "
                         "again to include them")


def _verify(catalog: Catalog, plan: ErasurePlan, journal: Journal,
            targets: dict[int, Target], engine: Runtime = DUCKDB) -> None:
    hasher = catalog.hasher()
    left = []
    for i, step in enumerate(plan.steps):
        if step.action == "retain" and not step.columns:
            continue
        target = targets.get(i) or target_for(step, hasher, catalog, plan.request_id,
                                              engine=engine)
        residue = target.residue()
        journal.set_step(plan.request_id, i, "verified" if residue == 0 else "residue",
                         residue=residue)
        if residue:
            left.append(f"{step.dataset} ({residue} rows)")
    if left:
        raise ApplyError(f"verification found the subject still in {', '.join(left)}")
