"""A Redis cache: keys named by templates over the subject's identifiers are deleted, found
with SCAN (never KEYS), and verified by scanning again."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from optout.connectors.target import Staged
from optout.engine.cascade.base import CascadeTarget
from optout.engine.cascade.spec import CascadeError
from optout.model.redaction import one_line

if TYPE_CHECKING:  # imported where a cache is reached (most runs reach none)
    import redis

_GLOB = re.compile(r"([*?\[\]\\])")


class RedisTarget(CascadeTarget):
    """Deletes the subject's keys from one Redis database."""

    def _client(self) -> redis.Redis:
        import redis

        try:
            client = redis.Redis.from_url(self.spec.url, socket_timeout=5,
                                          socket_connect_timeout=5)
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise CascadeError(f"{self.spec.name}: cannot reach Redis: {one_line(exc)}") from exc
        return client

    def _keys(self) -> list[bytes]:
        import redis

        client = self._client()
        found: set[bytes] = set()
        try:
            for template in self.spec.keys:
                # identifier values are literal in a MATCH pattern: glob characters escaped
                pattern = self.fill(template, lambda v: _GLOB.sub(r"\\\1", v))
                found.update(client.scan_iter(match=pattern, count=1000))
        except redis.RedisError as exc:
            raise CascadeError(f"{self.spec.name}: {one_line(exc)}") from exc
        return sorted(found)

    def prepare(self) -> Staged:
        keys = self._keys()
        return Staged(rows_before=len(keys), rows_changed=len(keys), handle=keys)

    def commit(self, staged: Staged) -> str:
        import redis

        keys = staged.handle or []
        try:
            deleted = self._client().unlink(*keys) if keys else 0
        except redis.RedisError as exc:
            raise CascadeError(f"{self.spec.name}: {one_line(exc)}") from exc
        return f"deleted {deleted} keys"

    def residue(self) -> int:
        return len(self._keys())
