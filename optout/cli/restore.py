"""`optout restore-check SOURCE...` and `optout ledger sweep`: erased subjects that a restored
backup (or anything else) brought back are found by the erasure ledger and erased again."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from optout.cli.base import NEEDS_REVIEW, cli, say, session_command
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.session import Session
    from optout.session.restore import Rechecked


def _said(done: Rechecked) -> None:
    for rid, store, status in done.purged:
        say(f"request {rid}: the history {store} kept by policy has reached the end of its "
            f"retention and was purged: {status}")
    if done.report is not None:
        for _, error in done.report.source_errors:
            say(f"Error: {error}", err=True)
        for r in done.report.results:
            if r.status == "failed":
                say(f"Error: {r.ref.name} ({r.ref.location}): {r.error}", err=True)
        say(f"{len(done.report.results)} restored datasets scanned")
    if done.applied is None:
        say("no erased subject found again")
        return
    plan = done.applied.plan
    for found in done.reappeared:
        say(f"erased subjects found again in {found.dataset} ({found.location}): "
            f"{found.rows} rows")
    origins = ", ".join(plan.reerases) or "unknown (the ledger names none)"
    if done.applied.held:
        say(f"re-erasure plan {plan.request_id} (of requests {origins}) is in "
            f"{done.applied.held}: it needs {plan.approvals} approval(s) (`optout approve "
            f"{done.applied.held}`), then `optout apply {done.applied.held}`")
        return
    say(f"request {done.applied.request_id} (erases again what requests {origins} erased): "
        f"{done.applied.status}")


def _exit(done: Rechecked) -> None:
    if done.report is not None and done.report.failed:
        sys.exit(1)
    if done.applied is not None and done.applied.incomplete:
        sys.exit(NEEDS_REVIEW)


@cli.command("restore-check")
@click.argument("sources", nargs=-1, required=True)
@click.option("--policy", "policy", required=True,
              help="The stored policy to erase again under (`reerase: auto` applies at once).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write a re-erasure plan that needs approval.")
@session_command(Operation.RESTORE_CHECK)
def restore_check_cmd(session: Session, sources: tuple[str, ...], policy: str,
                      output: str | None) -> None:
    """Scan restored data (a backup brought back: files, a database a dump was loaded into)
    against the erasure ledger, and erase again every erased subject found in it (an
    operator's: at once under a policy with `reerase: auto`, else a plan for approval)."""
    done = session.restore_check(list(sources), policy, output=output)
    _said(done)
    _exit(done)


@cli.group("ledger")
def ledger_group() -> None:
    """The erasure ledger: subjects once erased, recognised if they come back."""


@ledger_group.command("sweep")
@click.option("--policy", "policy", required=True,
              help="The stored policy to erase again under (`reerase: auto` applies at once).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write a re-erasure plan that needs approval.")
@session_command(Operation.LEDGER_SWEEP)
def ledger_sweep_cmd(session: Session, policy: str, output: str | None) -> None:
    """Search every dataset of the catalog for the ledger's subjects and erase again those
    found (run it on a schedule: California's Delete Act re-deletes every 45 days)."""
    done = session.restore_check([], policy, output=output)
    _said(done)
    _exit(done)
