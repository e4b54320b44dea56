"""The worker's commands: `optout worker`, `optout request submit`, `optout producer-key`.

They register on the `optout` group of `optout.cli.main`, which imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from optout.cli.base import cli, session_command
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.session import Session


@cli.command("producer-key")
@click.argument("principal")
@session_command(Operation.PRODUCER_KEY)
def producer_key_cmd(session: Session, principal: str) -> None:
    """Print the key a producer signs worker requests with (HMAC-SHA256 of the body, header
    Optout-Signature: sha256=HEX, its name in Optout-Producer); the principal needs the
    requester role. Shown on request only; keep it like a token."""
    click.echo(session.producer_key(principal).hex())


@cli.command("worker")
@click.option("--stream", default="nats://127.0.0.1:4222", show_default=True,
              help="The NATS server with JetStream.")
@click.option("--namespace", default="optout", show_default=True,
              help="Subjects are NAMESPACE.requests, .datasets.changed, .status, .requests.dead.")
@click.option("--targets", "targets_file", type=click.Path(dir_okay=False), default=None,
              help="Cascade targets file (Redis, Tantivy, webhooks).")
@click.option("--reapply-policy", default="gdpr-erasure", show_default=True,
              help="Stored policy for erasing again a subject a changed dataset holds again.")
@click.option("--plans-dir", type=click.Path(file_okay=False), default=None,
              help="Where plans waiting for approval are written [default: the folder "
                   "`plans` beside the catalog].")
@click.option("--ack-wait", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Seconds before an unacknowledged request is delivered again.")
@click.option("--batch", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Requests taken together: planned and applied as one pass per dataset.")
@click.option("--max-deliver", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="Deliveries after which a request that keeps failing is dead-lettered.")
@click.option("--retention-days", type=click.FloatRange(0.01, 3650), default=7.0,
              show_default=True,
              help="How long the stream keeps a message (requests carry raw identifiers; a "
                   "resolved request is deleted from it at once).")
@click.option("--seconds", type=float, default=None, help="Stop after this long.")
@click.option("--until-idle", is_flag=True, help="Stop when no message is waiting.")
@session_command(Operation.WORKER)
def worker_cmd(session: Session, stream: str, namespace: str, targets_file: str | None,
               reapply_policy: str, plans_dir: str | None, ack_wait: float, batch: int,
               max_deliver: int, retention_days: float, seconds: float | None,
               until_idle: bool) -> None:
    """Consume opt-out and erasure requests (and dataset changes) from NATS JetStream; a
    request's policy is a name in the deployment's policy store."""
    import asyncio

    from optout.engine.cascade.spec import load_targets
    from optout.worker.service import Worker, WorkerSettings

    args = {"stream": stream, "namespace": namespace, "targets": targets_file}
    with session.operation(Operation.WORKER, args):
        plans = Path(plans_dir) if plans_dir else \
            Path(session.catalog.path).resolve().parent / "plans"
        plans.mkdir(mode=0o700, exist_ok=True)
        settings = WorkerSettings(stream, namespace, load_targets(targets_file),
                                  reapply_policy, plans, ack_wait, batch,
                                  config=session.config(), max_deliver=max_deliver,
                                  retention=retention_days * 86400)
        asyncio.run(Worker(session, settings).run(seconds, until_idle))


@cli.group("request")
def request_group() -> None:
    """Requests for the worker."""


@request_group.command("submit")
@click.option("--stream", default="nats://127.0.0.1:4222", show_default=True,
              help="The NATS server with JetStream.")
@click.option("--namespace", default="optout", show_default=True,
              help="The worker's namespace (its subjects are NAMESPACE.requests, ...).")
@click.option("--id", "request_id", default=None, help="Request id (default: a new one).")
@click.option("--identifier", "subjects", multiple=True, required=True, metavar="KEY=VALUE",
              help="One of the subject's identifiers; repeatable.")
@click.option("--policy", required=True,
              help="A policy name (the worker reads it from the deployment's policy store).")
@session_command(Operation.REQUEST_SUBMIT)
def request_submit(session: Session, stream: str, namespace: str, request_id: str | None,
                   subjects: tuple[str, ...], policy: str) -> None:
    """Publish a request on the stream (for scripts and tests)."""
    import asyncio
    import uuid

    from pydantic import ValidationError

    from optout.worker import bus
    from optout.worker.messages import REQUESTS, ErasureRequest, subject
    from optout.worker.signing import signed_headers

    pairs = [s.partition("=") for s in subjects]
    if any(not k.strip() or not sep or not v.strip() for k, sep, v in pairs):
        raise click.UsageError("--identifier takes KEY=VALUE")
    try:
        request = ErasureRequest(request_id=request_id or uuid.uuid4().hex[:16], policy=policy,
                                 identifiers={k.strip(): v.strip() for k, _, v in pairs})
    except ValidationError as exc:
        raise click.UsageError(f"not a valid request: {exc.errors()[0]['loc'][0]}: "
                               f"{exc.errors()[0]['msg']}") from None

    body = request.model_dump_json().encode()

    async def send() -> None:
        nc, js = await bus.connect(stream, namespace)
        try:
            await js.publish(subject(namespace, REQUESTS), body, headers=headers)
        finally:
            await nc.close()

    with session.operation(Operation.REQUEST_SUBMIT, {"request_id": request.request_id,
                                                      "policy": policy}) as call:
        headers = signed_headers(session.catalog, call.who.name, body)  # signed as the caller
        asyncio.run(send())
    click.echo(f"submitted request {request.request_id}")
