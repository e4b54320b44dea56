"""A Redis cache: keys named by templates over the subject's identifiers are deleted, found
with SCAN (never KEYS), and verified by scanning again.

A deleted key stays in Redis' persistence files: the append-only file keeps the commands that
wrote it until the file is rewritten, a snapshot (RDB) keeps it until the next save. The
physical step asks the server for both (`BGREWRITEAOF`, `BGSAVE`) where persistence is on and
waits for them; then, when optout runs beside the server, reads the files raw for the deleted
keys' names and the subject's identifiers. A server that refuses CONFIG (a managed service) is
named in the report as holding files optout cannot reach."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import time
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
        self.deleted = list(keys)
        try:
            deleted = self._client().unlink(*keys) if keys else 0
        except redis.RedisError as exc:
            raise CascadeError(f"{self.spec.name}: {one_line(exc)}") from exc
        return f"deleted {deleted} keys"

    def residue(self) -> int:
        return len(self._keys())

    # -- physical erasure ----------------------------------------------------------------------

    def _persistence(self, client: redis.Redis) -> dict[str, str]:
        import redis

        try:
            conf = {}
            for name in ("appendonly", "save", "dir", "dbfilename", "appenddirname"):
                conf.update({k if isinstance(k, str) else k.decode():
                             v if isinstance(v, str) else v.decode()
                             for k, v in client.config_get(name).items()})
            return conf
        except redis.RedisError as exc:
            raise _Unreachable(f"its persistence files: CONFIG refused ({one_line(exc)}); "
                               "they may hold the deleted keys until rewritten") from exc

    def physical(self) -> str:
        import redis

        from optout.model.faults import fault

        client = self._client()
        try:
            conf = self._persistence(client)
        except _Unreachable as exc:
            return f"not reachable: {exc}"
        done = []
        try:
            rdb = os.path.join(conf.get("dir", ""), conf.get("dbfilename", "dump.rdb"))
            if conf.get("appendonly") == "yes":
                fault("physical-redis")  # deleted, the append-only file not yet rewritten
                client.bgrewriteaof()
                self._wait(client, ("aof_rewrite_in_progress", "aof_rewrite_scheduled"))
                done.append("append-only file rewritten (BGREWRITEAOF)")
            if conf.get("save") or os.path.exists(rdb):
                client.bgsave()
                self._wait(client, ("rdb_bgsave_in_progress",))
                done.append("snapshot rewritten (BGSAVE)")
        except redis.RedisError as exc:
            raise CascadeError(f"{self.spec.name}: {one_line(exc)}") from exc
        return "; ".join(done) or "persistence off: no file holds the keys"

    def _wait(self, client: redis.Redis, flags: tuple[str, ...], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        time.sleep(0.05)
        while any(int(client.info("persistence").get(f, 0)) for f in flags):
            if time.monotonic() > deadline:
                raise CascadeError(f"{self.spec.name}: the rewrite did not finish in "
                                   f"{timeout:.0f} s")
            time.sleep(0.05)

    def forensic(self) -> tuple[int, str]:
        from optout.connectors.forensic import Needles

        client = self._client()
        try:
            conf = self._persistence(client)
        except _Unreachable as exc:
            return 0, f"not reachable: {exc}"
        host = client.connection_pool.connection_kwargs.get("host", "localhost")
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        folder = conf.get("dir", "")
        if not local or not os.access(folder, os.R_OK | os.X_OK):
            return 0, (f"not reachable: the server's files ({host}:{folder}) are not on this "
                       "machine or not readable")
        files = [os.path.join(folder, conf.get("dbfilename", "dump.rdb"))]
        aof = os.path.join(folder, conf.get("appenddirname", "appendonlydir"))
        if os.path.isdir(aof):
            files += [os.path.join(aof, f) for f in sorted(os.listdir(aof))]
        needles = Needles(self.hasher)
        for key in getattr(self, "deleted", []):
            needles.literals.add(key)
        for value in self.identifiers.values():
            needles.add_literal(str(value))
        for template in self.spec.keys:  # the keys' names up to their first wildcard
            head = re.split(r"[*?\[]", template)[0]
            if "{" in head:  # only a name that carries the subject's identifier
                with contextlib.suppress(CascadeError):
                    needles.literals.add(self.fill(head).encode())
        files = [f for f in files if os.path.isfile(f)]
        hits = sum(needles.scan(f) for f in files)
        return hits, f"read raw: {len(files)} persistence file(s), {hits} occurrences"


class _Unreachable(Exception):
    """Redis does not say where its files are."""
