"""`optout review PLAN`: what a plan could not account for, with the link that would resolve
each item (its evidence, best first), accepted or rejected in one step.

Accepting or rejecting changes the deployment's configuration (`identity.links`,
`identity.references`, `identity.reject`), so it is an admin's act, audited like `config set`;
the plan is then made again from the first one's subjects and written beside it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from optout.cli.base import NEEDS_REVIEW, cli, say, session_command
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.model.plan import ErasurePlan
    from optout.session import Session


def _listing(plan: ErasurePlan) -> str:
    from optout.session import numbered

    lines = []
    proposals = numbered(plan)
    n = 0
    for note in plan.review:
        rows = f" ({note.rows} rows of the subject)" if note.rows else ""
        lines.append(f"- {note.dataset}{rows}: {note.reason}")
        for _ in note.proposals:
            n += 1
            p = proposals[n]
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
@session_command(Operation.REVIEW)
def review_cmd(session: Session, plan_file: str, accept: tuple[int, ...],
               reject: tuple[int, ...], output: str | None) -> None:
    """List what a plan needs reviewed, with numbered proposals; accept or reject them (an
    admin's: it changes the deployment's configuration) and plan again. Exits 4 while
    anything still needs review."""
    from optout.engine.plan_render import summary_line
    from optout.session import BadProposal

    try:
        done = session.review(plan_file, list(accept), list(reject), output)
    except BadProposal as exc:
        raise click.UsageError(str(exc)) from None
    if accept or reject:
        say("\n".join(done.diff) or "the new plan has the same steps")
        say(f"{summary_line(done.plan)}\nthe new plan is in {done.path}")
    if not (accept or reject) or done.plan.review:
        say(_listing(done.plan))
    if done.plan.review:
        sys.exit(NEEDS_REVIEW)
