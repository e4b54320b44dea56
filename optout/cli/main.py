"""The `optout` command line: thin adapters over the scanner and engine libraries."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from optout.cli import tables as render
from optout.cli.base import (
    NEEDS_REVIEW,
    TOKEN_ENV,
    Context,
    cli,
    console,
    engine_option,
    errors_to_exit,
    guarded,
)
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
from optout.engine.erasure_report import (
    build_report,
    outcome,
    verify_report,
)
from optout.engine.export_csv import write_columns
from optout.engine.graph import build_graph
from optout.engine.journal import Journal, ledger_values
from optout.engine.ledger import reappearances, reerasure_plan
from optout.engine.no_pandas import without_pandas
from optout.engine.plan_render import special_line, summary_line, to_html, to_markdown
from optout.engine.plan_store import recorded_plan
from optout.engine.planner import PlanRequest, build_plan, replan
from optout.engine.policy_store import store_ref, stored_policy
from optout.engine.private_files import open_private, write_private
from optout.engine.report_render import report_html, report_markdown
from optout.engine.subjects import parse_subject, read_subjects
from optout.model.plan import REQUEST_ID, ErasurePlan, load_plan
from optout.model.redaction import printable
from optout.scanner.access import (
    audit,
    principals,
)
from optout.scanner.config import Config
from optout.scanner.dbt import register_dbt
from optout.scanner.lineage import register_lineage_file
from optout.scanner.openlineage import register_openlineage
from optout.scanner.scan import ScanOptions, scan


@cli.command("scan")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--sample-rows",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Rows sampled per dataset (default 1000, or scan.sample_rows).",
)
@click.option("--seed", type=int, default=None, help="Sampling seed: same seed, same sample.")
@click.option(
    "--entities", default=None, help="Comma-separated Presidio entities to look for (default: all)."
)
@click.option("--full", is_flag=True, help="Re-scan datasets that have not changed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@engine_option
@click.pass_obj
@errors_to_exit
@guarded('scan', by_api=True)
def scan_cmd(
    obj: Context,
    sources: tuple[str, ...],
    sample_rows: int | None,
    seed: int | None,
    entities: str | None,
    full: bool,
    quiet: bool,
    engine: str | None,
) -> None:
    """Scan files, folders and databases (paths or postgresql:// URIs) into the catalog."""
    config = _with_engine(obj.config(), engine)
    wanted = [e.strip() for e in entities.split(",") if e.strip()] if entities else None
    options = ScanOptions(
        sample_rows=sample_rows or config.scan.sample_rows,
        seed=config.scan.seed if seed is None else seed,
        full=full,
        classifier=config.classifier_settings(wanted, seed),
        engine=config.engine_of(),
    )
    show = not quiet and sys.stderr.isatty()
    out, err_console = console(), console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
    ) as bar:
        task = bar.add_task("scanning", total=None)

        def progress(event: str, ref: Any, detail: Any) -> None:
            if event == "listed":
                bar.update(task, total=detail)
            else:
                bar.update(task, advance=1, description=f"scanning {ref.name}")

        report = scan(list(sources), obj.catalog, options, progress, caller=obj.caller)
    for _, error in report.source_errors:
        err_console.print(f"Error: {error}", highlight=False, soft_wrap=True)
    for r in report.results:
        if r.status == "failed":
            err_console.print(
                f"Error: {r.ref.name} ({r.ref.location}): {r.error}",
                highlight=False,
                soft_wrap=True,
            )
    render.scan_summary(out, report)
    scanned = {r.ref.id for r in report.results if r.status == "scanned"}
    graph = build_graph(obj.catalog, config) if scanned and ledger_values(obj.catalog) else None
    for found in reappearances(obj.catalog, graph, scanned) if graph else []:
        err_console.print(f"Warning: erased subjects found again in {found.dataset} "
                          f"({found.location}): {found.rows} rows; run `optout apply --reapply "
                          "--policy POLICY` to erase them again", highlight=False, soft_wrap=True)
    if report.failed:
        sys.exit(1)


@cli.group("catalog")
def catalog_group() -> None:
    """Read the catalog: datasets, columns, findings."""


@catalog_group.command("list")
@click.option("--pii", is_flag=True, help="Only datasets with PII columns.")
@click.pass_obj
@errors_to_exit
@guarded('catalog list')
def catalog_list(obj: Context, pii: bool) -> None:
    """List datasets with their PII columns."""
    render.dataset_list(console(), obj.catalog.datasets(pii_only=pii))


@catalog_group.command("show")
@click.argument("dataset")
@click.pass_obj
@errors_to_exit
@guarded('catalog show')
def catalog_show(obj: Context, dataset: str) -> None:
    """Show one dataset (id, name or LOCATION#NAME): columns, findings, evidence."""
    render.dataset_detail(console(), obj.catalog.find(dataset))


@catalog_group.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to a file instead of standard output.",
)
@click.pass_obj
@errors_to_exit
@guarded('catalog export')
def catalog_export(obj: Context, fmt: str, output: str | None) -> None:
    """Export the catalog as JSON (the stable interface) or CSV (one row per column)."""
    data = obj.catalog.export()
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


@cli.command("plan")
@click.option("--subject", "subjects", multiple=True, metavar="KEY=VALUE",
              help="A subject identifier (email=..., phone=..., customer_id=...); repeatable.")
@click.option("--subjects-file", type=click.Path(dir_okay=False), default=None,
              help="A file with one KEY=VALUE per line (many subjects, one pass per dataset).")
@click.option("--policy", "policy_path", required=True,
              help="A policy of the deployment's policy store, by name (gdpr-erasure) or by a "
                   "file whose content is that stored policy's.")
@click.option("--format", "fmt", type=click.Choice(["json", "md", "html"]), default="json",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the plan here instead of standard output.")
@click.option("--request-id", default=None, callback=lambda _c, _p, v: _cli_request_id(v),
              help="Request id: letters, digits and . _ - (default: a new random one).")
@click.option("--accept-ambiguous", is_flag=True,
              help="Plan subjects that resolution would stop as ambiguous (the plan says so).")
@engine_option
@click.pass_obj
@errors_to_exit
@guarded('plan', by_api=True)
def plan_cmd(obj: Context, subjects: tuple[str, ...], subjects_file: str | None,
             policy_path: str, fmt: str, output: str | None, request_id: str | None,
             accept_ambiguous: bool, engine: str | None) -> None:
    """Plan an erasure or opt-out: what would change where, and why. Changes nothing.

    The policy comes from the deployment's policy store in the catalog (`optout policy
    list`); `--accept-ambiguous` is an admin's. Exits 4 when anything needs review (a dataset
    the plan could not account for, or a subject it stopped); the plan is written all the
    same."""
    config = _with_engine(obj.config(), engine)
    policy = stored_policy(obj.catalog, policy_path)
    policy_path = store_ref(policy)
    parsed = [parse_subject(s, policy.identifiers) for s in subjects]
    if subjects_file:
        parsed += read_subjects(subjects_file, policy.identifiers)
    if not parsed:
        raise click.UsageError("give at least one --subject or a --subjects-file")
    plan = build_plan(obj.catalog, PlanRequest(parsed, policy, policy_path, request_id,
                                               created_by=obj.caller.name), config,
                      caller=obj.caller, accept_ambiguous=accept_ambiguous)
    text = render_plan(plan, fmt)
    if output:
        write_private(output, text)
    else:
        click.echo(printable(text), nl=False)
    click.echo(printable(summary_line(plan)), err=True)
    if special_line(plan):
        click.echo(printable(special_line(plan)), err=True)
    if plan.review or plan.unexecutable:
        sys.exit(NEEDS_REVIEW)


def _with_engine(config: Config, engine: str | None) -> Config:
    """The config with the engine chosen on the command line, if one was."""
    if engine is not None:
        config.engine = engine
    return config


def _cli_request_id(value: str | None) -> str | None:
    """A request id given on the command line (the worker's `worker:` ids are not for it)."""
    if value is not None and (":" in value or not REQUEST_ID.match(value)):
        raise click.BadParameter("use letters, digits and . _ - (at most 80)")
    return value


def render_plan(plan: ErasurePlan, fmt: str) -> str:
    """The plan in one of the formats `plan` writes."""
    return {"json": plan.to_json, "md": lambda: to_markdown(plan),
            "html": lambda: to_html(plan)}[fmt]()


@cli.command("graph")
@click.option("--all", "show_all", is_flag=True, help="Also show rejected links.")
@click.pass_obj
@errors_to_exit
@guarded('graph')
def graph_cmd(obj: Context, show_all: bool) -> None:
    """Show the identity graph: identifier columns by domain, and the links with evidence."""
    graph = build_graph(obj.catalog, obj.config())
    render.identity_graph(console(), graph, show_all)


@cli.group("lineage")
def lineage_group() -> None:
    """Register and show the lineage of derived datasets."""


@lineage_group.command("add-sql")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.pass_obj
@errors_to_exit
@guarded('lineage add-sql')
def lineage_add_sql(obj: Context, files: tuple[str, ...]) -> None:
    """Register SQL files that build datasets (CREATE ... AS SELECT, INSERT ... SELECT, views,
    dbt-style SELECT files named after their table)."""
    _register(obj, files)


@lineage_group.command("add-dbt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.pass_obj
@errors_to_exit
@guarded('lineage add-dbt')
def lineage_add_dbt(obj: Context, paths: tuple[str, ...]) -> None:
    """Register the lineage of dbt projects (a project folder, or its target/manifest.json):
    models, seeds and snapshots with the relations they build, from the manifest."""
    _report_lineage([(p, *register_dbt(obj.catalog, Path(p))) for p in paths])


@lineage_group.command("add-openlineage")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.pass_obj
@errors_to_exit
@guarded('lineage add-openlineage')
def lineage_add_openlineage(obj: Context, paths: tuple[str, ...]) -> None:
    """Register OpenLineage RunEvents (JSON or JSON Lines files, or folders of them): the
    columnLineage facet, else dataset-level inputs and outputs."""
    _report_lineage([(p, *register_openlineage(obj.catalog, Path(p))) for p in paths])


@lineage_group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.pass_obj
@errors_to_exit
@guarded('lineage add')
def lineage_add(obj: Context, files: tuple[str, ...]) -> None:
    """Register declared lineage files (YAML) or SQL files."""
    _register(obj, files)


def _register(obj: Context, files: tuple[str, ...]) -> None:
    """Register lineage files."""
    _report_lineage([(f, *register_lineage_file(obj.catalog, Path(f))) for f in files])


def _report_lineage(done: list[tuple[str, int, list[str]]]) -> None:
    """Edges stored per file; every statement, table or edge that was not followed is a
    warning naming it, and the command then exits 1."""
    for path, n, problems in done:
        click.echo(f"{printable(path)}: {n} lineage edges")
        for p in problems:
            click.echo(f"warning: {printable(p)}", err=True)
    if any(problems for _, _, problems in done):
        sys.exit(1)


@lineage_group.command("show")
@click.argument("dataset")
@click.pass_obj
@errors_to_exit
@guarded('lineage show')
def lineage_show(obj: Context, dataset: str) -> None:
    """Show what a dataset is derived from (upstream) and what derives from it (downstream)."""
    record = obj.catalog.find(dataset)
    render.lineage(console(), record, obj.catalog.lineage())


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
@click.pass_obj
@errors_to_exit
@guarded('apply')
def apply_cmd(obj: Context, plan_file: str | None, reapply: bool, policy_path: str | None,
              yes: bool, replan_: bool, dry_run: bool, lease_wait: float,
              engine: str | None) -> None:
    """Apply an erasure plan: atomic across datasets, verified, journaled. The plan may have
    been made on another engine: what it located is used while the data's fingerprints hold,
    and a plan whose data changed is refused as on one engine."""
    config = _with_engine(obj.config(), engine)
    if reapply:
        if plan_file or not policy_path:
            raise click.UsageError("--reapply takes --policy and no plan file")
        policy = stored_policy(obj.catalog, policy_path)  # from the store, as for `plan`
        plan = reerasure_plan(obj.catalog, policy, store_ref(policy), config, obj.caller)
        if not plan.steps:
            click.echo("no erased subject found in the data")
            return
        if not dry_run:
            _hold_for_approval(plan, f"reapply-{plan.request_id}.json")
            return
    elif plan_file:
        plan = load_plan(plan_file)
        if replan_:
            started = Journal(obj.catalog).applied(plan.content_hash)
            why, supersedes = None, ""
            if started is not None and started["status"] not in FINAL:
                why = (f"request {started['id']} stopped {started['status']} after part of its "
                       "work; planning what remains")
                supersedes = started["id"]
            else:
                try:
                    check_plan(obj.catalog, plan)
                except StalePlan as exc:
                    why = f"{exc}; planning again"
            if why:
                click.echo(f"{why} (the plan's datasets are scanned again first)")
                locations = sorted({s.location for s in plan.steps})
                scan(locations, obj.catalog, ScanOptions(
                    sample_rows=config.scan.sample_rows, seed=config.scan.seed,
                    classifier=config.classifier_settings()), caller=obj.caller)
                policy = stored_policy(obj.catalog, policy_path or plan.policy["name"])
                plan, diff = replan(obj.catalog, plan, policy, config, caller=obj.caller,
                                    supersedes=supersedes)
                click.echo(printable("\n".join(diff) or "the new plan has the same steps"))
                if not dry_run:
                    _hold_for_approval(plan, str(Path(plan_file).with_suffix(".replanned.json")))
                    return
    else:
        raise click.UsageError("give a plan file (or --reapply --policy POLICY)")
    click.echo(printable(summary_line(plan)))
    if not (yes or dry_run):
        click.confirm(f"Apply request {plan.request_id} to {len(plan.steps)} datasets?",
                      abort=True)
    rid = apply_plan(obj.catalog, plan, ApplyOptions(dry_run=dry_run, lease_wait=lease_wait,
                                                     config=config, caller=obj.caller))
    click.echo(printable(f"request {rid}: {outcome(obj.catalog, rid)}"))
    if not dry_run and final_status(plan) == INCOMPLETE:
        sys.exit(NEEDS_REVIEW)  # the subject's data may remain: not a success to a script


def _hold_for_approval(plan: ErasurePlan, path: str) -> None:
    """Write a plan that needs approving before it is applied, and say so."""
    write_private(path, plan.to_json())
    click.echo(f"{printable(summary_line(plan))}\nthe new plan is in {path}: it needs "
               f"{plan.approvals} approval(s) (`optout approve {path}`), then "
               f"`optout apply {path}`")


@cli.command("approve")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.pass_obj
@errors_to_exit
@guarded("approve", by_api=True)
def approve_cmd(obj: Context, plan_file: str) -> None:
    """Approve a plan (its exact content): someone other than its author must; a policy may
    require two approvals."""
    plan = load_plan(plan_file)
    count = approve(obj.catalog, plan, obj.caller)
    needed = recorded_plan(obj.catalog, plan).approvals  # the record's, not the file's
    click.echo(f"plan {plan.request_id} approved by {obj.caller.name} ({count} of "
               f"{needed} approvals)")


@cli.command("resume")
@click.argument("request_id")
@click.option("--lease-wait", type=float, default=30.0, show_default=True)
@engine_option
@click.pass_obj
@errors_to_exit
@guarded('resume', by_api=True)
def resume_cmd(obj: Context, request_id: str, lease_wait: float, engine: str | None) -> None:
    """Finish a request whose process died or whose commit kept failing."""
    config = _with_engine(obj.config(), engine)
    resume(obj.catalog, request_id, ApplyOptions(lease_wait=lease_wait, caller=obj.caller,
                                                 config=config))
    click.echo(printable(f"request {request_id}: {outcome(obj.catalog, request_id)}"))


@cli.command("report")
@click.argument("request_id")
@click.argument("file", required=False)
@click.option("--format", "fmt", type=click.Choice(["json", "md", "html"]), default="json",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None)
@click.pass_obj
@errors_to_exit
@guarded("report", by_api=True,
         name_of=lambda p: "report verify" if p["request_id"] == "verify" else "report")
def report_cmd(obj: Context, request_id: str, file: str | None, fmt: str,
               output: str | None) -> None:
    """The signed report of a request; `optout report verify FILE` checks a report file."""
    if request_id == "verify":
        if not file:
            raise click.UsageError("optout report verify FILE")
        data = verify_report(obj.catalog, file, obj.caller)
        click.echo(f"{file}: signature valid (request {data['request_id']}, {data['status']})")
        return
    report = build_report(obj.catalog, request_id, obj.caller)
    text = {"json": lambda: json.dumps(report, indent=2, sort_keys=True) + "\n",
            "md": lambda: report_markdown(report), "html": lambda: report_html(report)}[fmt]()
    if output:
        write_private(output, text)
    else:
        click.echo(printable(text), nl=False)


@cli.command("init")
@click.option("-q", "--quiet", is_flag=True, help="Print only the token (for scripts).")
@click.pass_obj
@errors_to_exit
def init_cmd(obj: Context, quiet: bool) -> None:
    """Create the catalog, its key file (mode 0600) and a first admin token, shown once."""
    token = principals.init_catalog(obj.catalog)
    audit.append(obj.catalog, "admin", ("admin",), "init", {}, "ok", "catalog initialized")
    if quiet:
        click.echo(token)
        return
    click.echo(f"initialized {obj.catalog.path} (key file {obj.catalog.path}.key, or "
               f"OPTOUT_SECRET)\nadmin token, shown once — keep it secret:\n\n  {token}\n\n"
               f"export {TOKEN_ENV}=... to use it; `optout user add` and `optout token create` "
               "make principals for others")


@cli.group("user")
def user_group() -> None:
    """Manage principals (admin)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(list(principals.ROLES)), help="A role; repeatable.")
@click.pass_obj
@errors_to_exit
@guarded("user add")
def user_add(obj: Context, name: str, roles: tuple[str, ...]) -> None:
    """Add a principal with roles."""
    principals.add_principal(obj.catalog, name, list(roles), obj.caller.name)
    click.echo(f"principal {name}: {', '.join(principals.check_roles(list(roles)))}")


@user_group.command("list")
@click.pass_obj
@errors_to_exit
@guarded("user list")
def user_list(obj: Context) -> None:
    """List principals and their roles."""
    for name, roles, created, by in principals.list_principals(obj.catalog):
        click.echo(f"{name}\t{','.join(roles)}\tcreated {created:%Y-%m-%d %H:%M} by {by}")


@cli.group("token")
def token_group() -> None:
    """Manage tokens (admin): shown once at creation, stored only as scrypt hashes."""


@token_group.command("create")
@click.argument("principal")
@click.option("--days", type=click.FloatRange(0, 3650), default=principals.DEFAULT_EXPIRY_DAYS,
              show_default=True, help="Days until it expires (0: never).")
@click.pass_obj
@errors_to_exit
@guarded("token create")
def token_create(obj: Context, principal: str, days: float) -> None:
    """Create a token for a principal; it is printed once."""
    token_id, token = principals.create_token(obj.catalog, principal, days or None)
    click.echo(f"token {token_id} for {principal}, shown once:\n{token}")


@token_group.command("revoke")
@click.argument("token_id")
@click.pass_obj
@errors_to_exit
@guarded("token revoke")
def token_revoke(obj: Context, token_id: str) -> None:
    """Revoke a token by its id."""
    principals.revoke_token(obj.catalog, token_id)
    click.echo(f"token {token_id} revoked")


@token_group.command("list")
@click.pass_obj
@errors_to_exit
@guarded("token list")
def token_list(obj: Context) -> None:
    """List tokens: id, principal, created, expires, revoked (never the token)."""
    for token_id, principal, created, expires, revoked in principals.list_tokens(obj.catalog):
        state = f"revoked {revoked:%Y-%m-%d}" if revoked else (
            f"expires {expires:%Y-%m-%d}" if expires else "never expires")
        click.echo(f"{token_id}\t{principal}\tcreated {created:%Y-%m-%d}\t{state}")


@cli.group("audit")
def audit_group() -> None:
    """The hash-chained audit log (auditor)."""


@audit_group.command("verify")
@click.pass_obj
@errors_to_exit
@guarded("audit verify")
def audit_verify(obj: Context) -> None:
    """Check the whole chain (names the first edited, missing, inserted or moved entry) and
    the seals of principals, tokens, approvals, plans and the journal."""
    count = audit.verify(obj.catalog)
    rows = audit.verify_records(obj.catalog)
    click.echo(f"audit log verified: {count} entries, chain intact; sealed records intact: "
               + ", ".join(f"{n} {table}" for table, n in rows.items()))


@audit_group.command("export")
@click.option("--since", type=click.DateTime(), default=None, help="UTC date or time.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None)
@click.pass_obj
@errors_to_exit
@guarded("audit export")
def audit_export(obj: Context, since: Any, output: str | None) -> None:
    """Write the log as JSON Lines (for a SIEM)."""
    lines = [json.dumps(e.as_json(), sort_keys=True) + "\n"
             for e in audit.entries(obj.catalog, since)]
    if output:
        write_private(output, "".join(lines))
    else:
        click.echo("".join(lines), nl=False)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    without_pandas()
    cli(prog_name="optout")


# The worker's and the deployment's commands live in their own modules and register
# themselves on `cli`.
from optout.cli import deployment, review, worker  # noqa: E402, F401

if __name__ == "__main__":
    main()
