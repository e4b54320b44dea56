"""The erasure ledger: subjects once erased are recognised when they come back (a restored
backup, a replayed pipeline) and can be erased again."""

from __future__ import annotations

from dataclasses import dataclass, replace

from optout.engine.graph import IdentityGraph, build_graph
from optout.engine.journal import ledger_values, ledger_values_by_request
from optout.engine.plan_store import record_plan
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import Policy
from optout.engine.source_pool import SourcePool
from optout.model.errors import ScannerError
from optout.model.identifiers import kind_of
from optout.model.matching import KeyMatch, MatchQuery
from optout.model.plan import ErasurePlan
from optout.scanner.access import Principal
from optout.scanner.catalog import Catalog
from optout.scanner.config import Config


@dataclass(frozen=True)
class Reappearance:
    """Rows of a dataset that hold a subject the ledger says was erased."""

    dataset_id: str
    dataset: str
    location: str
    rows: int


def reappearances(catalog: Catalog, graph: IdentityGraph, dataset_ids: set[str] | None = None,
                  values: dict[str, set[str]] | None = None) -> list[Reappearance]:
    """Datasets of the graph (all, or those given) holding values of erased subjects (the
    ledger's, or the `values` given: domain → keyed hashes), counted in place."""
    values = ledger_values(catalog) if values is None else values
    if not values:
        return []
    pool = SourcePool(frozenset({catalog.path}))
    found = []
    try:
        for record in sorted(graph.datasets.values(), key=lambda r: (r.name, r.location)):
            if dataset_ids is not None and record.id not in dataset_ids:
                continue
            keys = tuple(
                KeyMatch(c.name, kind_of(graph.columns[(record.id, c.name)].entity),
                         frozenset(values[graph.domains[(record.id, c.name)]]))
                for c in record.columns
                if graph.domains.get((record.id, c.name)) in values)
            if not keys:
                continue
            try:
                rows = pool.match(record, MatchQuery(keys), catalog.hasher()).rows
            except ScannerError:
                continue
            if rows:
                found.append(Reappearance(record.id, record.name, record.location, rows))
    finally:
        pool.close()
    return found


def ledger_seed(catalog: Catalog) -> dict[str, frozenset[str]]:
    """What a re-erasure starts from: every erased subject's values, per domain."""
    return {d: frozenset(h) for d, h in ledger_values(catalog).items()}


def origins(catalog: Catalog, graph: IdentityGraph, dataset_ids: set[str]) -> list[str]:
    """The erasure requests whose subjects' values are in these datasets (what a re-erasure
    ties back to)."""
    if not dataset_ids:
        return []
    return [rid for rid, values in sorted(ledger_values_by_request(catalog).items())
            if reappearances(catalog, graph, dataset_ids, values)]


def reerasure_plan(catalog: Catalog, policy: Policy, policy_path: str, config: Config | None,
                   caller: Principal | None, only: set[str] | None = None) -> ErasurePlan:
    """A plan erasing again every ledger subject found in the data: only the datasets that
    hold one (and among them only `only`, when given). It names the requests whose subjects
    came back; under a policy with `reerase: auto` it needs no approval."""
    request = PlanRequest([], policy, policy_path, known=ledger_seed(catalog),
                          created_by=caller.name if caller else "optout")
    plan = build_plan(catalog, request, config, caller=caller)
    steps = tuple(s for s in plan.steps if s.rows and (only is None or s.dataset_id in only))
    found = origins(catalog, build_graph(catalog, config), {s.dataset_id for s in steps})
    plan = replace(plan, steps=steps, reerases=tuple(found),
                   approvals=0 if policy.reerase == "auto" else plan.approvals).sealed()
    return record_plan(catalog, plan)  # the narrowed plan is the one approved and applied
