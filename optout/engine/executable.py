"""Nothing unexecutable reaches apply: each step of a plan is checked when the plan is made.

A step must be one its target can carry out here (a target for its format, permission to
change the dataset, for a rebuild: its SQL present, parsed and bound to catalog datasets, and
a format that can be rebuilt). A rebuild must also not read a dataset that keeps the subject
(retained, under a legal hold, not accounted for) while it holds match keys of the subject:
rebuilt, the subject would come back. Such a step falls back to deleting the subject's rows of
the derived dataset when they were found by key (the plan's rule says so and why); otherwise it
is *unexecutable*: the plan names it, and approve and apply refuse the plan.

A view is verified by reading it after its base tables are cleaned; a view that reads a base
table the plan does not clean (or one the catalog does not know) is a finding, not a step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from optout.engine.graph import IdentityGraph
from optout.engine.targets import ApplyError, target_for
from optout.model.plan import DatasetNote, PlanStep
from optout.scanner.catalog import Catalog


@dataclass
class Settled:
    """The steps as they will be applied, and what the checks moved out of them."""

    steps: list[PlanStep]
    review: list[DatasetNote] = field(default_factory=list)
    unexecutable: list[DatasetNote] = field(default_factory=list)


def _problem(catalog: Catalog, step: PlanStep) -> str | None:
    if step.action == "retain" and not step.columns:
        return None
    try:
        return target_for(step, catalog.hasher(), catalog, "plan").executable()
    except ApplyError as exc:
        return str(exc).removeprefix(f"{step.dataset}: ")


def _order(steps: list[PlanStep]) -> list[PlanStep]:
    """Sources first, then derived steps, each after the derived steps it reads."""
    derived = {s.dataset_id: s for s in steps if s.action == "recompute"}
    out = [s for s in steps if s.action != "recompute"]
    remaining = dict(derived)
    while remaining:
        ready = [s for d, s in remaining.items()
                 if not ({t for _, t in s.param("tables", ())} | set(s.param("upstream", ())))
                 & (set(remaining) - {d})] or [next(iter(remaining.values()))]
        for s in ready:
            out.append(s)
            remaining.pop(s.dataset_id)
    return out


def settle(catalog: Catalog, graph: IdentityGraph, steps: list[PlanStep],
           held: dict[str, str]) -> Settled:
    """Check every step; `held` names the datasets that may keep the subject without a step
    (legal holds, datasets needing review) and why."""
    by_id = {s.dataset_id: s for s in steps}
    keeping: dict[str, str] = dict(held)
    for s in steps:
        if s.action == "retain":
            keeping[s.dataset_id] = f"retained: {s.legal_basis or s.rule}"
    out = Settled([])
    for step in _order(steps):
        if step.kind == "view":
            bases = [e["upstream_id"] for e in graph.upstream(step.dataset_id)]
            kept = [b for b in bases if b in keeping]
            why = None
            if not bases:
                why = ("the view's base tables are not in the catalog: it cannot be cleaned "
                       "through them; scan them")
            elif kept:
                why = (f"the view reads {_name(graph, kept[0])}, which still holds the subject "
                       f"({keeping[kept[0]]})")
            if why:
                out.review.append(DatasetNote(step.dataset_id, step.dataset, step.location, why))
                keeping[step.dataset_id] = "a view of data that keeps the subject"
                continue
            out.steps.append(step)
            continue
        problem = _problem(catalog, step)
        if step.action == "recompute" and problem is None and (step.keys or step.texts):
            kept = [d for _, d in step.param("tables", ()) if d in keeping]
            if kept:
                problem = (f"it reads {_name(graph, kept[0])}, which keeps the subject "
                           f"({keeping[kept[0]]}): rebuilt, the subject would come back")
        if problem and step.action == "recompute" and step.keys and step.rows:
            fallback = dataclasses.replace(
                step, action="delete_rows", params=(),
                rule=f"{step.rule} (cannot be rebuilt: {problem}; the subject's rows are "
                     "deleted instead)")
            if _problem(catalog, fallback) is None:
                out.steps.append(fallback)
                by_id[step.dataset_id] = fallback
                continue
        if problem:
            out.unexecutable.append(DatasetNote(step.dataset_id, step.dataset, step.location,
                                                problem))
            keeping[step.dataset_id] = f"cannot be changed: {problem}"
        out.steps.append(step)
    order = {s.dataset_id: n for n, s in enumerate(steps)}
    out.steps.sort(key=lambda s: order[s.dataset_id])
    return out


def _name(graph: IdentityGraph, dataset_id: str) -> str:
    record = graph.datasets.get(dataset_id)
    return record.name if record else dataset_id
