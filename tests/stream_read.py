"""Reading back what a worker published on the real NATS JetStream, and publishing to it."""

from __future__ import annotations

import asyncio
import json

from optout.worker import bus
from optout.worker.messages import subject


def stream_messages(ns: str, kind: str) -> list[dict]:
    """Every message the namespace's stream holds on one subject (`status`, `requests.dead`)."""
    async def fetch() -> list[dict]:
        nc, js = await bus.connect("nats://127.0.0.1:4222", ns)
        sub = await js.pull_subscribe(subject(ns, kind), stream=bus.stream_name(ns))
        out = []
        try:
            while True:
                msgs = await sub.fetch(100, timeout=1)
                for m in msgs:
                    await m.ack()  # unacknowledged, the server stops at max_ack_pending
                out += [json.loads(m.data) for m in msgs]
        except TimeoutError:
            pass
        await nc.close()
        return out
    return asyncio.run(fetch())


def publish_raw(ns: str, kind: str, data: bytes, headers: dict[str, str] | None = None) -> None:
    """Publish bytes as they are (a hostile or broken producer) on one subject."""
    async def send() -> None:
        nc, js = await bus.connect("nats://127.0.0.1:4222", ns)
        await js.publish(subject(ns, kind), data, headers=headers)
        await nc.close()
    asyncio.run(send())
