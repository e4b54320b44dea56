"""A NATS JetStream stream that carries the subject (application events, a CDC feed): every
message whose subject, headers or data hold one of the request's listed identifiers is deleted
by sequence with the erasing delete (the server overwrites the message in its block file),
never by a purge, which only marks messages removed. Found by reading the stream from its
first sequence to its last; verified by reading it again; and, when optout runs beside the
server (`store_dir`), the stream's files are read raw."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from optout.connectors.forensic import Needles
from optout.connectors.target import Staged
from optout.engine.cascade.base import CascadeTarget
from optout.engine.cascade.spec import CascadeError
from optout.model.faults import fault
from optout.model.redaction import one_line


class JetStreamTarget(CascadeTarget):
    """Deletes the subject's messages from one stream."""

    def _values(self) -> list[bytes]:
        values = []
        for key in self.spec.identifiers:
            value = self.value(key)
            values += [value.encode(), value.lower().encode()]
        return sorted(set(values))

    def _run(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        import nats

        async def main() -> Any:
            try:
                nc = await nats.connect(self.spec.url, connect_timeout=5,
                                        max_reconnect_attempts=1)
            except Exception as exc:  # nats raises several unrelated types when unreachable
                raise CascadeError(f"{self.spec.name}: cannot reach NATS at {self.spec.url}: "
                                   f"{exc or type(exc).__name__}") from exc
            try:
                return await work(nc)
            finally:
                await nc.close()
        return asyncio.run(main())

    def _find(self) -> list[int]:
        from nats.js.errors import NotFoundError

        values = self._values()

        async def find(nc: Any) -> list[int]:
            js = nc.jetstream()
            try:
                state = (await js.stream_info(self.spec.stream)).state
            except NotFoundError as exc:
                raise CascadeError(f"{self.spec.name}: no stream {self.spec.stream}") from exc
            found = []
            for seq in range(state.first_seq, state.last_seq + 1):
                try:
                    msg = await js.get_msg(self.spec.stream, seq)
                except NotFoundError:
                    continue  # deleted already
                text = b"".join([(msg.subject or "").encode(), msg.data or b"",
                                 json.dumps(msg.headers or {}).encode()])
                if any(v in text or v in text.lower() for v in values):
                    found.append(seq)
            return found
        return self._run(find)

    def prepare(self) -> Staged:
        found = self._find()
        return Staged(rows_before=len(found), rows_changed=len(found), handle=found)

    def commit(self, staged: Staged) -> str:
        from nats.js.errors import NotFoundError

        erase = self.spec.physical != "off"

        async def delete(nc: Any) -> int:
            done = 0
            for seq in staged.handle or []:
                # the erasing delete (no_erase false) overwrites the message on disk; the
                # logical one (physical off) only marks it deleted
                reply = await nc.request(f"$JS.API.STREAM.MSG.DELETE.{self.spec.stream}",
                                         json.dumps({"seq": seq, "no_erase": not erase}
                                                    ).encode(), timeout=5)
                answer = json.loads(reply.data)
                if answer.get("success"):
                    done += 1
                    if done == 1:
                        fault("physical-jetstream")  # one message erased, the others not
                elif answer.get("error", {}).get("err_code") not in (10037,):  # no message
                    raise CascadeError(f"{self.spec.name}: delete of message {seq} refused: "
                                       f"{one_line(answer.get('error'))}")
            return done
        try:
            deleted = self._run(delete)
        except NotFoundError as exc:
            raise CascadeError(f"{self.spec.name}: {one_line(exc)}") from exc
        return (f"deleted {deleted} messages" + (" with the erasing delete (overwritten)"
                                                 if erase else " (marked deleted, not erased)"))

    def residue(self) -> int:
        return len(self._find())

    def forensic(self) -> tuple[int, str]:
        if not self.spec.store_dir:
            return 0, ("not reachable: no store_dir given, the stream's files are read only "
                       "beside the server")
        root = os.path.join(self.spec.store_dir, "jetstream")
        files = [os.path.join(d, f) for d, _, names in os.walk(root)
                 if os.path.basename(os.path.dirname(d)) == self.spec.stream
                 or os.path.basename(d) == self.spec.stream for f in names]
        if not files:
            return 0, f"not reachable: no files of stream {self.spec.stream} under {root}"
        needles = Needles(self.hasher)
        for value in self._values():
            needles.literals.add(value)
        hits = sum(needles.scan(f) for f in files if os.path.isfile(f))
        return hits, f"read raw: {len(files)} stream file(s), {hits} occurrences"
