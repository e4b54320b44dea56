"""`optout serve`: the HTTP API (optout/server), run by a principal holding the operator role
(it applies approved plans); it registers on the `optout` group of `optout.cli.main`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from optout.cli.base import cli, format_option, say, session_command
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
@session_command(Operation.SERVE)
def serve_cmd(session: Session, host: str, port: int, plans_dir: str | None,
              targets_file: str | None, max_body: int, poll: float) -> None:
    """Serve the HTTP API: requests submitted, their status and timeline, plans approved or
    rejected, signed reports. Every call needs `Authorization: Bearer TOKEN` of a principal
    of this catalog and the role its operation needs (OpenAPI at /openapi.json)."""
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
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                    date_header=False, access_log=False)


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
