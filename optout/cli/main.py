"""The `optout` command line: each command logs its caller in to a `Session`, calls it, and
shows what came back (human text by default, JSON with `--format json`). Heavy libraries are
imported by the commands that use them, so `optout --help` starts at once."""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from optout.cli.base import (
    NEEDS_REVIEW,
    TOKEN_ENV,
    Context,
    cli,
    console,
    engine_option,
    errors_to_exit,
    format_option,
    say,
    session_command,
)
from optout.model.roles import ROLES
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.model.plan import ErasurePlan
    from optout.session import Session

#: how many review items the terminal summary of a plan names (the rest: `optout review`)
SHOWN_ITEMS = 10


def _written(path: str, what: str) -> None:
    """Say that a file was written (files for people are mode 0600)."""
    say(f"wrote {what} to {path} (mode 0600)", err=True)


@cli.command("scan")
@click.argument("sources", nargs=-1, required=True)
@click.option("--sample-rows", type=click.IntRange(1, 1_000_000), default=None,
              help="Rows sampled per dataset (default 1000, or scan.sample_rows).")
@click.option("--seed", type=int, default=None, help="Sampling seed: same seed, same sample.")
@click.option("--entities", default=None,
              help="Comma-separated Presidio entities to look for (default: all).")
@click.option("--full", is_flag=True, help="Re-scan datasets that have not changed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@engine_option
@session_command(Operation.SCAN)
def scan_cmd(session: Session, sources: tuple[str, ...], sample_rows: int | None,
             seed: int | None, entities: str | None, full: bool, quiet: bool,
             engine: str | None) -> None:
    """Scan files, folders and databases (paths or postgresql:// URIs) into the catalog."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from optout.cli import tables

    wanted = [e.strip() for e in entities.split(",") if e.strip()] if entities else None
    out, err = console(), console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err,
                  disable=quiet or not sys.stderr.isatty()) as bar:
        task = bar.add_task("scanning", total=None)

        def progress(event: str, ref: Any, detail: Any) -> None:
            if event == "listed":
                bar.update(task, total=detail)
            else:
                bar.update(task, advance=1, description=f"scanning {ref.name}")

        done = session.scan(list(sources), sample_rows=sample_rows, seed=seed, entities=wanted,
                            full=full, engine=engine, progress=progress)
    report = done.report
    for _, error in report.source_errors:
        err.print(f"Error: {error}", highlight=False, soft_wrap=True)
    for r in report.results:
        if r.status == "failed":
            err.print(f"Error: {r.ref.name} ({r.ref.location}): {r.error}", highlight=False,
                      soft_wrap=True)
    tables.scan_summary(out, report)
    if not report.results and not report.source_errors:
        say("hint: no datasets found there (an empty database or folder, or files of no kind "
            "optout reads); `optout scan --help` lists what it reads", err=True)
    for found in done.reappeared:
        say(f"Warning: erased subjects found again in {found.dataset} ({found.location}): "
            f"{found.rows} rows; run `optout apply --reapply --policy POLICY` to erase them "
            "again", err=True)
    if report.failed:
        sys.exit(1)


@cli.group("catalog")
def catalog_group() -> None:
    """Read the catalog: datasets, columns, findings."""


@catalog_group.command("list")
@click.option("--pii", is_flag=True, help="Only datasets with PII columns.")
@format_option
@session_command(Operation.CATALOG_LIST)
def catalog_list(session: Session, pii: bool, fmt: str) -> None:
    """List datasets with their PII columns."""
    records = session.datasets(pii_only=pii)
    if fmt == "json":
        click.echo(json.dumps([r.as_export() for r in records], indent=2, default=str))
        return
    from optout.cli import tables

    tables.dataset_list(console(), records)


@catalog_group.command("show")
@click.argument("dataset")
@format_option
@session_command(Operation.CATALOG_SHOW)
def catalog_show(session: Session, dataset: str, fmt: str) -> None:
    """Show one dataset (id, name or LOCATION#NAME): columns, findings, evidence."""
    record = session.dataset(dataset)
    if fmt == "json":
        click.echo(json.dumps(record.as_export(), indent=2, default=str))
        return
    from optout.cli import tables

    tables.dataset_detail(console(), record)


@catalog_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json",
              show_default=True, help="json (the stable interface) or csv (one row per column).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to a file instead of standard output.")
@session_command(Operation.CATALOG_EXPORT)
def catalog_export(session: Session, fmt: str, output: str | None) -> None:
    """Export the catalog as JSON (the stable interface) or CSV (one row per column)."""
    from optout.engine.export_csv import write_columns
    from optout.engine.private_files import open_private

    data = session.export_catalog(fmt)
    out = open_private(output, newline="") if output else sys.stdout
    try:
        if fmt == "json":
            json.dump(data, out, indent=2, default=str)
            out.write("\n")
        else:
            write_columns(data, out)
    finally:
        if output:
            out.close()
    if output:
        _written(output, f"the catalog ({len(data['datasets'])} datasets, {fmt})")


@cli.command("plan")
@click.option("--subject", "subjects", multiple=True, metavar="KEY=VALUE",
              help="A subject identifier (email=..., phone=..., customer_id=...); repeatable.")
@click.option("--subjects-file", type=click.Path(dir_okay=False), default=None,
              help="A file with one KEY=VALUE per line (many subjects, one pass per dataset).")
@click.option("--policy", "policy_path", required=True,
              help="A policy of the deployment's policy store, by name (gdpr-erasure) or by a "
                   "file whose content is that stored policy's.")
@click.option("--format", "fmt", type=click.Choice(["json", "md", "html"]), default=None,
              help="The plan's form: md on the terminal, json in a file (what approve and "
                   "apply read), html for auditors.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the plan here instead of standard output.")
@click.option("--request-id", default=None, callback=lambda _c, _p, v: _cli_request_id(v),
              help="Request id: letters, digits and . _ - (default: a new random one).")
@click.option("--accept-ambiguous", is_flag=True,
              help="Plan subjects that resolution would stop as ambiguous (the plan says so; "
                   "an admin's).")
@engine_option
@session_command(Operation.PLAN)
def plan_cmd(session: Session, subjects: tuple[str, ...], subjects_file: str | None,
             policy_path: str, fmt: str | None, output: str | None, request_id: str | None,
             accept_ambiguous: bool, engine: str | None) -> None:
    """Plan an erasure or opt-out: what would change where, and why. Changes nothing.

    The policy comes from the deployment's policy store in the catalog (`optout policy
    list`). Exits 4 when anything needs review (a dataset the plan could not account for,
    or a subject it stopped): the terminal names each with its reason, and the plan is
    written all the same."""
    from optout.cli.progress_bars import bars
    from optout.session import NothingToPlan

    try:
        with bars():
            plan = session.plan(list(subjects), policy_path, subjects_file=subjects_file,
                                request_id=request_id, accept_ambiguous=accept_ambiguous,
                                engine=engine)
    except NothingToPlan:
        raise click.UsageError("give at least one --subject or a --subjects-file") from None
    fmt = fmt or ("json" if output else "md")
    text = render_plan(plan, fmt)
    if output:
        from optout.engine.private_files import write_private

        write_private(output, text)
        _written(output, f"plan {plan.request_id} ({fmt})")
    else:
        say(text.rstrip("\n"))
    _plan_summary(plan, output if fmt == "json" else None)
    if plan.review or plan.unexecutable:
        sys.exit(NEEDS_REVIEW)


def _plan_summary(plan: ErasurePlan, path: str | None) -> None:
    """The plan in a few lines on stderr: what it does, what needs review and why, what
    comes next."""
    from optout.engine.plan_render import special_line, summary_line

    say(summary_line(plan), err=True)
    if special_line(plan):
        say(special_line(plan), err=True)
    items = [*plan.unexecutable, *plan.review]
    for note in items[:SHOWN_ITEMS]:
        rows = f" ({note.rows} rows of the subject)" if getattr(note, "rows", None) else ""
        say(f"  needs review: {note.dataset}{rows}: {note.reason}", err=True)
    if len(items) > SHOWN_ITEMS:
        say(f"  ... and {len(items) - SHOWN_ITEMS} more", err=True)
    if path and items:
        say(f"next: `optout review {path}` lists them with proposals (exit status 4: needs "
            "review)", err=True)
    elif path:
        say(f"next: `optout approve {path}` (someone else: {plan.approvals} approval(s) "
            f"needed), then `optout apply {path}`", err=True)


def _cli_request_id(value: str | None) -> str | None:
    """A request id given on the command line (the worker's `worker:` ids are not for it)."""
    from optout.model.plan import REQUEST_ID

    if value is not None and (":" in value or not REQUEST_ID.match(value)):
        raise click.BadParameter("use letters, digits and . _ - (at most 80)")
    return value


def render_plan(plan: ErasurePlan, fmt: str) -> str:
    """The plan in one of the formats `plan` writes."""
    from optout.engine.plan_render import to_html, to_markdown

    return {"json": plan.to_json, "md": lambda: to_markdown(plan),
            "html": lambda: to_html(plan)}[fmt]()


@cli.command("graph")
@click.option("--all", "show_all", is_flag=True,
              help="Also show candidate links across namespaces and rejected links.")
@format_option
@session_command(Operation.GRAPH)
def graph_cmd(session: Session, show_all: bool, fmt: str) -> None:
    """Show the identity graph: identifier columns by domain, and the links with evidence."""
    from optout.cli import tables

    graph = session.graph()
    if fmt == "json":
        from optout.engine.graph_json import graph_json

        click.echo(json.dumps(graph_json(graph), indent=2, default=str))
        return
    tables.identity_graph(console(), graph, show_all)


@cli.group("lineage")
def lineage_group() -> None:
    """Register and show the lineage of derived datasets."""


def _lineage_command(name: str, operation: Operation, doc: str, exists: bool) -> None:
    """One `lineage add*` command: register files of one kind and report per file."""

    @lineage_group.command(name, help=doc)
    @click.argument("paths", nargs=-1, required=True,
                    type=click.Path(exists=True) if exists else click.Path(dir_okay=False))
    @session_command(operation)
    def command(session: Session, paths: tuple[str, ...]) -> None:
        done = session.add_lineage(list(paths), operation)
        for path, n, problems in done:
            say(f"{path}: {n} lineage edges")
            for p in problems:
                say(f"warning: {p}", err=True)
        if any(problems for _, _, problems in done):
            sys.exit(1)


_lineage_command("add", Operation.LINEAGE_ADD,
                 "Register declared lineage files (YAML) or SQL files.", False)
_lineage_command("add-sql", Operation.LINEAGE_ADD_SQL,
                 "Register SQL files that build datasets (CREATE ... AS SELECT, INSERT ... "
                 "SELECT, views, dbt-style SELECT files named after their table).", False)
_lineage_command("add-dbt", Operation.LINEAGE_ADD_DBT,
                 "Register the lineage of dbt projects (a project folder, or its "
                 "target/manifest.json): models, seeds and snapshots with the relations they "
                 "build, from the manifest.", True)
_lineage_command("add-openlineage", Operation.LINEAGE_ADD_OPENLINEAGE,
                 "Register OpenLineage RunEvents (JSON or JSON Lines files, or folders of "
                 "them): the columnLineage facet, else dataset-level inputs and outputs.", True)


@lineage_group.command("show")
@click.argument("dataset")
@session_command(Operation.LINEAGE_SHOW)
def lineage_show(session: Session, dataset: str) -> None:
    """Show what a dataset is derived from (upstream) and what derives from it (downstream)."""
    from optout.cli import tables

    record, edges = session.lineage(dataset)
    tables.lineage(console(), record, edges)


@cli.command("apply")
@click.argument("plan_file", type=click.Path(dir_okay=False), required=False)
@click.option("--reapply", is_flag=True,
              help="Erase again every subject of the erasure ledger found in the data.")
@click.option("--policy", "policy_path", default=None,
              help="With --reapply: the stored policy to apply.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--replan", "replan_", is_flag=True,
              help="If the data changed since the plan was made, or its request stopped "
                   "(blocked) after part of its work, plan again from it (the remaining work), "
                   "show the difference, and write the new plan for approval.")
@click.option("--dry-run", is_flag=True,
              help="Prepare and check every change, then roll back; nothing is changed.")
@click.option("--lease-wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for datasets another request holds.")
@engine_option
@session_command(Operation.APPLY)
def apply_cmd(session: Session, plan_file: str | None, reapply: bool, policy_path: str | None,
              yes: bool, replan_: bool, dry_run: bool, lease_wait: float,
              engine: str | None) -> None:
    """Apply an erasure plan: atomic across datasets, verified, journaled. The plan may have
    been made on another engine: what it located is used while the data's fingerprints hold,
    and a plan whose data changed is refused as on one engine. Exits 4 when the applied
    request may leave data of the subject (incomplete_needs_review)."""
    from optout.engine.plan_render import summary_line

    if reapply and (plan_file or not policy_path):
        raise click.UsageError("--reapply takes --policy and no plan file")
    if not reapply and not plan_file:
        raise click.UsageError("give a plan file (or --reapply --policy POLICY)")

    def confirm(plan: ErasurePlan) -> bool:
        say(summary_line(plan))
        return yes or click.confirm(f"Apply request {plan.request_id} to {len(plan.steps)} "
                                    "datasets?")

    from optout.cli.progress_bars import bars

    with bars():
        done = session.apply(plan_file, reapply_policy=policy_path if reapply else None,
                             replan_if_stale=replan_, dry_run=dry_run, lease_wait=lease_wait,
                             engine=engine, confirm=confirm, say=say)
    if done.replanned or (replan_ and done.held):
        say("\n".join(done.replanned) or "the new plan has the same steps")
    if done.held:
        say(f"{summary_line(done.plan)}\nthe new plan is in {done.held}: it needs "
            f"{done.plan.approvals} approval(s) (`optout approve {done.held}`), then "
            f"`optout apply {done.held}`")
        return
    if done.aborted:
        raise click.exceptions.Abort()
    if done.request_id is None:
        say(done.status)
        return
    if dry_run:
        say(summary_line(done.plan))
    say(f"request {done.request_id}: {done.status}")
    if dry_run:
        for step in done.plan.steps:
            say(f"  {step.dataset}: {step.action}, {step.rows} rows (staged, checked, rolled "
                "back)")
    if not dry_run and done.incomplete:
        sys.exit(NEEDS_REVIEW)  # the subject's data may remain: not a success to a script


@cli.command("approve")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@session_command(Operation.APPROVE)
def approve_cmd(session: Session, plan_file: str) -> None:
    """Approve a plan (its exact content): someone other than its author must; a policy may
    require two approvals."""
    plan, count, needed = session.approve(plan_file)
    say(f"plan {plan.request_id} approved by {session.principal.name} ({count} of {needed} "
        "approvals)")
    if count >= needed:
        say(f"next: an operator runs `optout apply {plan_file}`", err=True)


@cli.command("resume")
@click.argument("request_id")
@click.option("--lease-wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for datasets another request holds.")
@engine_option
@session_command(Operation.RESUME)
def resume_cmd(session: Session, request_id: str, lease_wait: float, engine: str | None) -> None:
    """Finish a request whose process died or whose commit kept failing."""
    from optout.cli.progress_bars import bars

    with bars():
        done = session.resume(request_id, lease_wait=lease_wait, engine=engine)
    say(f"request {request_id}: {done}")


def _report_operation(params: dict[str, Any]) -> Operation:
    return Operation.REPORT_VERIFY if params.get("request_id") == "verify" else Operation.REPORT


@cli.command("report")
@click.argument("request_id")
@click.argument("file", required=False)
@click.option("--format", "fmt", type=click.Choice(["json", "md", "html"]), default=None,
              help="md on the terminal, json in a file (what `report verify` checks), html "
                   "for people.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the report here instead of standard output.")
@click.option("--subject", "subject", default=None, metavar="KEY=VALUE",
              help="Only this subject's part: whether the request named her, what she "
                   "resolved to, what was done where (json or md).")
@click.pass_obj
@errors_to_exit
def report_cmd(obj: Context, request_id: str, file: str | None, fmt: str | None,
               output: str | None, subject: str | None) -> None:
    """The signed report of a request; `optout report verify FILE` checks a report file."""
    params = dict(click.get_current_context().params)
    params.pop("subject", None)  # never logged as given: the audit names its keyed hash
    session = obj.login(_report_operation(params), params)
    if request_id == "verify":
        if not file:
            raise click.UsageError("optout report verify FILE")
        data = session.verify_report(file)
        say(f"{file}: signature valid (request {data['request_id']}, {data['status']})")
        return
    from optout.engine.report_render import report_html, report_markdown
    from optout.engine.subject_report import subject_markdown

    fmt = fmt or ("json" if output else "md")
    if subject is not None:
        if fmt == "html":
            raise click.UsageError("--subject: json or md")
        report = session.subject_report(request_id, subject)
        render = subject_markdown
    else:
        report = session.report(request_id)
        render = report_markdown
    text = {"json": lambda: json.dumps(report, indent=2, sort_keys=True) + "\n",
            "md": lambda: render(report), "html": lambda: report_html(report)}[fmt]()
    if output:
        from optout.engine.private_files import write_private

        write_private(output, text)
        _written(output, f"the report of {request_id} ({fmt})")
    else:
        say(text.rstrip("\n"))


@cli.command("init")
@click.option("-q", "--quiet", is_flag=True, help="Print only the token (for scripts).")
@click.pass_obj
@errors_to_exit
def init_cmd(obj: Context, quiet: bool) -> None:
    """Create the catalog, its key file (mode 0600) and a first admin token, shown once."""
    from optout.session import Session

    token = Session.init(obj.catalog_path)
    if quiet:
        click.echo(token)
        return
    click.echo(f"initialized {obj.catalog_path} (key file {obj.catalog_path}.key, or "
               f"OPTOUT_SECRET)\nadmin token, shown once — keep it secret:\n\n  {token}\n\n"
               f"next: export {TOKEN_ENV}=... to use it; `optout scan PATH` fills the "
               "catalog; `optout user add` and `optout token create` make principals for "
               "others")


@cli.group("user")
def user_group() -> None:
    """Manage principals (admin)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES),
              help="A role; repeatable (every role includes viewer; admin holds them all).")
@session_command(Operation.USER_ADD)
def user_add(session: Session, name: str, roles: tuple[str, ...]) -> None:
    """Add a principal with roles."""
    say(f"principal {name}: {', '.join(session.add_user(name, list(roles)))}")
    say(f"next: `optout token create {name}` makes their token", err=True)


@user_group.command("list")
@format_option
@session_command(Operation.USER_LIST)
def user_list(session: Session, fmt: str) -> None:
    """List principals and their roles."""
    users = session.users()
    if fmt == "json":
        click.echo(json.dumps([{"name": n, "roles": r, "created": str(c), "created_by": b}
                               for n, r, c, b in users], indent=2))
        return
    for name, roles, created, by in users:
        say(f"{name}\t{','.join(roles)}\tcreated {created:%Y-%m-%d %H:%M} by {by}")


@cli.group("token")
def token_group() -> None:
    """Manage tokens (admin): shown once at creation, stored only as scrypt hashes."""


@token_group.command("create")
@click.argument("principal")
@click.option("--days", type=click.FloatRange(0, 3650), default=None,
              help="Days until it expires (0: never; default 90).")
@session_command(Operation.TOKEN_CREATE)
def token_create(session: Session, principal: str, days: float) -> None:
    """Create a token for a principal; it is printed once."""
    token_id, token = session.create_token(principal, days)
    click.echo(f"token {token_id} for {principal}, shown once:\n{token}")


@token_group.command("revoke")
@click.argument("token_id")
@session_command(Operation.TOKEN_REVOKE)
def token_revoke(session: Session, token_id: str) -> None:
    """Revoke a token by its id."""
    session.revoke_token(token_id)
    say(f"token {token_id} revoked")


@token_group.command("list")
@format_option
@session_command(Operation.TOKEN_LIST)
def token_list(session: Session, fmt: str) -> None:
    """List tokens: id, principal, created, expires, revoked (never the token)."""
    tokens = session.tokens()
    if fmt == "json":
        click.echo(json.dumps([{"id": t, "principal": p, "created": str(c),
                                "expires": str(e) if e else None,
                                "revoked": str(r) if r else None}
                               for t, p, c, e, r in tokens], indent=2))
        return
    for token_id, principal, created, expires, revoked in tokens:
        state = f"revoked {revoked:%Y-%m-%d}" if revoked else (
            f"expires {expires:%Y-%m-%d}" if expires else "never expires")
        say(f"{token_id}\t{principal}\tcreated {created:%Y-%m-%d}\t{state}")


@cli.group("audit")
def audit_group() -> None:
    """The hash-chained audit log (auditor)."""


@audit_group.command("verify")
@session_command(Operation.AUDIT_VERIFY)
def audit_verify(session: Session) -> None:
    """Check the whole chain (names the first edited, missing, inserted or moved entry) and
    the seals of principals, tokens, approvals, plans and the journal."""
    check = session.verify_audit()
    say(f"audit log verified: {check.entries} entries, chain intact; sealed records intact: "
        + ", ".join(f"{n} {table}" for table, n in check.records.items()))


@audit_group.command("export")
@click.option("--since", type=click.DateTime(), default=None, help="UTC date or time.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to a file instead of standard output.")
@session_command(Operation.AUDIT_EXPORT)
def audit_export(session: Session, since: Any, output: str | None) -> None:
    """Write the log as JSON Lines (for a SIEM)."""
    lines = [json.dumps(e.as_json(), sort_keys=True) + "\n" for e in session.audit_entries(since)]
    if output:
        from optout.engine.private_files import write_private

        write_private(output, "".join(lines))
        _written(output, f"{len(lines)} audit entries")
    else:
        click.echo("".join(lines), nl=False)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # A plan of 100,000 subjects holds millions of small objects (keys, matched rows); at
    # Python's default thresholds the collector scans them all again and again (a third of a
    # batch plan's time). Young objects are still collected, only less often.
    gc.set_threshold(100_000, 50, 100)
    from optout.engine.no_pandas import without_pandas

    without_pandas()
    cli(prog_name="optout")


# The worker's, the review's and the deployment's commands live in their own modules and
# register themselves on `cli`.
from optout.cli import deployment, restore, review, serve, worker  # noqa: E402, F401

if __name__ == "__main__":
    main()
