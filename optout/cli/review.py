"""`optout review PLAN`: what a plan could not account for, with the link that would resolve
each item (its evidence, best first), accepted or rejected in one step.

Accepting or rejecting changes the deployment's configuration (`identity.links`,
`identity.references`, `identity.reject`), so it is an admin's act, audited like `config set`;
the plan is then made again from the first one's subjects and written beside it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from optout.cli.base import NEEDS_REVIEW, Context, cli, errors_to_exit, guarded
from optout.engine.plan_render import summary_line
from optout.engine.planner import replan
from optout.engine.policy_store import stored_policy
from optout.engine.private_files import write_private
from optout.model.plan import DatasetNote, ErasurePlan, load_plan
from optout.model.redaction import printable
from optout.scanner.access import audit, authorize
from optout.scanner.config import LinkConfig
from optout.scanner.deployment import deployment_config, store_deployment_config


def numbered(plan: ErasurePlan) -> list[tuple[int, DatasetNote, dict]]:
    """Every proposal of a plan's review items, numbered from 1 in the plan's order."""
    out = []
    for note in plan.review:
        for proposal in note.proposals:
            out.append((len(out) + 1, note, proposal))
    return out


def _listing(plan: ErasurePlan) -> str:
    lines = []
    proposals = numbered(plan)
    for note in plan.review:
        rows = f" ({note.rows} rows of the subject)" if note.rows else ""
        lines.append(f"- {note.dataset}{rows}: {note.reason}")
        for n, owner, p in proposals:
            if owner is note:
                lines.append(f"    [{n}] {p['section']}: {p['columns'][0]} -> "
                             f"{p['columns'][1]} ({p['evidence']})")
    return "\n".join(lines) or "nothing needs review"


@cli.command("review")
@click.argument("plan_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--accept", multiple=True, type=int, metavar="N",
              help="Accept proposal N (repeatable): added to the deployment's identity links "
                   "or references.")
@click.option("--reject", multiple=True, type=int, metavar="N",
              help="Reject proposal N (repeatable): never inferred again.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where the new plan goes (default: PLAN with .reviewed.json).")
@click.pass_obj
@errors_to_exit
@guarded("review")
def review_cmd(obj: Context, plan_file: str, accept: tuple[int, ...], reject: tuple[int, ...],
               output: str | None) -> None:
    """List what a plan needs reviewed, with numbered proposals; accept or reject them (an
    admin's: it changes the deployment's configuration) and plan again. Exits 4 while
    anything still needs review."""
    plan = load_plan(plan_file)
    if not accept and not reject:
        click.echo(printable(_listing(plan)))
        if plan.review:
            sys.exit(NEEDS_REVIEW)
        return
    proposals = {n: p for n, _, p in numbered(plan)}
    unknown = sorted((set(accept) | set(reject)) - proposals.keys())
    if unknown:
        raise click.UsageError(f"no proposal {unknown[0]} in {plan_file} (it has "
                               f"{len(proposals)}; `optout review {plan_file}` lists them)")
    if set(accept) & set(reject):
        raise click.UsageError("a proposal is either accepted or rejected, not both")
    authorize(obj.catalog, obj.caller, "config set", {"review": plan_file})
    config, _ = deployment_config(obj.catalog)
    for n in accept:
        p = proposals[n]
        section = config.identity.references if p["section"] == "references" else \
            config.identity.links
        section.append(LinkConfig(columns=tuple(p["columns"])))
    for n in reject:
        config.identity.reject.append(LinkConfig(columns=tuple(proposals[n]["columns"])))
    digest = store_deployment_config(obj.catalog, config, obj.caller.name)
    audit.append(obj.catalog, obj.caller.name, obj.caller.roles, "config set",
                 {"review": plan_file, "accepted": list(accept), "rejected": list(reject),
                  "digest": digest}, "ok", None)
    policy = stored_policy(obj.catalog, plan.policy["name"])
    new, diff = replan(obj.catalog, plan, policy, obj.config(), caller=obj.caller)
    path = output or str(Path(plan_file).with_suffix(".reviewed.json"))
    write_private(path, new.to_json())
    click.echo(printable("\n".join(diff) or "the new plan has the same steps"))
    click.echo(printable(f"{summary_line(new)}\nthe new plan is in {path}"))
    if new.review:
        click.echo(printable(_listing(new)))
        sys.exit(NEEDS_REVIEW)
