"""`optout serve`: the HTTP API (optout/server), run by a principal holding the operator role
(it applies approved plans); it registers on the `optout` group of `optout.cli.main`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from optout.cli.base import cli, say, session_command
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
