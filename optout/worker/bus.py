"""The NATS JetStream side: one stream `OPTOUT` holds requests, dataset changes, status events
and dead letters (so nothing is lost); durable pull consumers read requests and changes."""

from __future__ import annotations

import contextlib
import dataclasses

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from optout.engine.cascade.spec import CascadeError
from optout.worker.messages import CHANGES, DEAD, REQUESTS, STATUS, subject

NAMESPACE = "optout"


def stream_name(namespace: str) -> str:
    """The stream that holds a namespace's subjects."""
    return namespace.upper().replace(".", "_").replace("-", "_")


async def connect(url: str, namespace: str = NAMESPACE, retention: float | None = None
                  ) -> tuple[nats.NATS, JetStreamContext]:
    """A connection and its JetStream context, the namespace's stream created if missing;
    `retention` (seconds): the stream's maximum message age, set on it if it differs."""
    try:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3,
                                allow_reconnect=True)
    except Exception as exc:  # nats raises several unrelated types for an unreachable server
        raise CascadeError(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream_name(namespace))
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream_name(namespace), subjects=[
            subject(namespace, k) for k in (REQUESTS, CHANGES, STATUS, DEAD)],
            max_age=retention))
    else:
        if retention and info.config.max_age != retention:
            await js.update_stream(dataclasses.replace(info.config, max_age=retention))
    return nc, js


async def forget(js: JetStreamContext, namespace: str, sequence: int) -> None:
    """Delete one message from the namespace's stream (a resolved request: its raw
    identifiers go with it)."""
    with contextlib.suppress(NotFoundError):
        await js.delete_msg(stream_name(namespace), sequence)


async def consumer(js: JetStreamContext, namespace: str, kind: str, durable: str,
                   ack_wait: float) -> JetStreamContext.PullSubscription:
    """A durable pull consumer: unacknowledged messages come back after `ack_wait` seconds."""
    return await js.pull_subscribe(
        subject(namespace, kind), durable=durable, stream=stream_name(namespace),
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_deliver=-1))
