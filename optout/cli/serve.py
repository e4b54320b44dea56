"""`optout serve`: the HTTP API (optout/server), run by a principal holding the operator role
(it applies approved plans); it registers on the `optout` group of `optout.cli.main`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from optout.cli.base import cli, format_option, say, session_command
from optout.cli.worker import request_group
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.session import Session


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (another than loopback exposes the API: put TLS in "
                   "front of it).")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True,
              help="Port to listen on.")
@click.option("--plans-dir", type=click.Path(file_okay=False), default=None,
              help="Where plans waiting for approval are written [default: the folder "
                   "`plans` beside the catalog].")
@click.option("--targets", "targets_file", type=click.Path(dir_okay=False), default=None,
              help="Cascade targets file (Redis, Tantivy, webhooks).")
@click.option("--max-body", type=click.IntRange(1024, 64 << 20), default=1 << 20,
              show_default=True, help="Largest request body read, in bytes (413 beyond).")
@click.option("--poll", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True,
              help="Seconds between tries of the requests waiting for approval.")
@click.option("--seconds", type=click.FloatRange(0.1), default=None,
              help="Stop after this long (scripts and tests).")
@session_command(Operation.SERVE)
def serve_cmd(session: Session, host: str, port: int, plans_dir: str | None,
              targets_file: str | None, max_body: int, poll: float,
              seconds: float | None) -> None:
    """Serve the HTTP API: requests submitted, their status and timeline, plans approved or
    rejected, signed reports. Every call needs `Authorization: Bearer TOKEN` of a principal
    of this catalog and the role its operation needs (OpenAPI at /openapi.json)."""
    import threading

    import uvicorn

    from optout.engine.cascade.spec import load_targets
    from optout.server.app import ServerSettings, create_app
    from optout.worker.service import WorkerSettings

    with session.operation(Operation.SERVE, {"host": host, "port": port}):
        plans = Path(plans_dir) if plans_dir else \
            Path(session.catalog.path).resolve().parent / "plans"
        plans.mkdir(mode=0o700, exist_ok=True)
        worker = WorkerSettings(targets=load_targets(targets_file), plans_dir=plans,
                                config=session.config())
        app = create_app(session, ServerSettings(worker, max_body, poll))
        say(f"serving the optout API on http://{host}:{port} (Ctrl-C stops)", err=True)
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", server_header=False,
            date_header=False, access_log=False))
        if seconds is not None:
            stop = threading.Timer(seconds, lambda: setattr(server, "should_exit", True))
            stop.daemon = True
            stop.start()
        server.run()


@cli.group("requests")
def requests_group() -> None:
    """The requests' lifecycle: yearly metrics."""


@requests_group.command("metrics")
@click.option("--year", type=click.IntRange(2000, 2200), required=True,
              help="Calendar year of receipt.")
@format_option
@session_command(Operation.REQUEST_METRICS)
def requests_metrics(session: Session, year: int, fmt: str) -> None:
    """Requests received in YEAR, per kind: how many were complied with, denied, ended
    otherwise or are open, and the median days to answer (CCPA regulations §7102), read from
    the catalog's sealed request clocks and timelines."""
    import json

    found = session.request_metrics(year)
    if fmt == "json":
        click.echo(json.dumps({"year": year, "kinds": found}, indent=2))
        return
    say(f"requests received in {year}")
    say(f"{'kind':<10} {'received':>8} {'complied':>8} {'denied':>6} {'other/open':>10} "
        f"{'median days':>11}")
    for kind, m in found.items():
        days = "-" if m["median_days"] is None else f"{m['median_days']:.1f}"
        say(f"{kind:<10} {m['received']:>8} {m['complied']:>8} {m['denied']:>6} "
            f"{m['other_or_open']:>10} {days:>11}")
    if not found:
        say("(none)")


@request_group.command("status")
@click.argument("request_id", required=False)
@format_option
@session_command(Operation.REQUEST_STATUS)
def request_status(session: Session, request_id: str | None, fmt: str) -> None:
    """Requests submitted over HTTP or the stream, overdue ones first, with their legal
    clocks; with REQUEST_ID, that request's status, clock and timeline (no identifier)."""
    import json

    found = session.request_status(request_id)
    if fmt == "json":
        click.echo(json.dumps(found, indent=2))
        return
    if request_id is None:
        for r in found:
            clock = r["clock"] or {}
            late = " OVERDUE" if clock.get("overdue") else ""
            say(f"{r['id']}  {r['status']:<22} due {clock.get('deadline') or '-'}{late}")
        if not found:
            say("(no requests)")
        return
    clock = found["clock"] or {}
    say(f"{found['id']}: {found['status']} (policy {found['policy']}); due "
        f"{clock.get('deadline') or '-'}{' OVERDUE' if clock.get('overdue') else ''}")
    for e in found["events"]:
        say(f"  {e['at']}  {e['status']}{': ' + e['detail'] if e['detail'] else ''}")


@request_group.command("extend")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why (the person is told it).")
@session_command(Operation.REQUEST_EXTEND)
def request_extend(session: Session, request_id: str, reason: str) -> None:
    """Extend a request's legal clock once, as its law allows (GDPR: +2 months, told within
    the first; CCPA: +45 days; a CCPA opt-out: never)."""
    clock = session.extend_request(request_id, reason)
    say(f"{request_id}: due {clock.deadline.isoformat(timespec='seconds')}Z (extended: "
        f"{clock.extension_reason})")
