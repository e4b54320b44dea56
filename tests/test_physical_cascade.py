"""Physical erasure of the cascade, through `optout worker` on the real services: a request
for a subject who is in a DuckDB table, a Redis cache persisted with AOF (a server of the
test's own, `appendonly yes`), a Tantivy index and an application's JetStream stream. After the
worker resolved it: Redis' append-only files hold neither her keys nor her email, no segment of
the index keeps a deleted document and no file of a dropped segment is left, and neither the
application's stream nor the worker's own stream holds her email in their files (read from the
NATS server's storage folder). The control runs the same with `physical: off` on the targets:
each check finds her. A worker killed inside each physical step is finished by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import redis
import tantivy
from staff import OPTOUT

from optout.engine.policy_store import add_policy
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
NATS_STORE = "/var/lib/nats-server"  # the storage folder CI starts NATS with (-sd)
SUBJECT = {"id": 7, "email": "amara.nwosu.cascade@example.org"}
PEOPLE = [{"id": i, "email": SUBJECT["email"] if i == 7 else f"c{i}.z@example.net"}
          for i in range(1, 13)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def aof_redis(tmp_path: Path) -> Iterator[tuple[redis.Redis, Path]]:
    """A Redis server of the test's own, persisted with an append-only file."""
    folder = tmp_path / "redis"
    folder.mkdir()
    port = _free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--dir", str(folder), "--appendonly", "yes", "--save", "",
                               "--appendfsync", "always"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield client, folder
    server.terminate()
    server.wait(10)


def _publish(stream: str, messages: list[bytes]) -> None:
    import nats
    from nats.js.api import StreamConfig

    async def main() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"]))
        for m in messages:
            await js.publish(f"{stream.lower()}.signup", m)
        await nc.close()
    asyncio.run(main())


def _drop_streams(*names: str) -> None:
    import nats

    async def main() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
        await nc.close()
    asyncio.run(main())


def _stream_bytes(stream: str) -> bytes:
    folder = Path(NATS_STORE, "jetstream", "$G", "streams", stream)
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


class Cascade:
    def __init__(self, root: Path, client: redis.Redis, redis_dir: Path,
                 physical: str) -> None:
        self.root, self.client, self.redis_dir = root, client, redis_dir
        self.ns = f"p{uuid.uuid4().hex[:10]}"
        self.app = f"APP{uuid.uuid4().hex[:8].upper()}"
        duck = root / "shop.duckdb"
        con = duckdb.connect(str(duck))
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
        con.executemany("INSERT INTO customers VALUES (?, ?)",
                        [(p["id"], p["email"]) for p in PEOPLE])
        con.close()
        self.catalog = Catalog(str(root / "catalog.duckdb"))
        admin = init_catalog(self.catalog)
        add_principal(self.catalog, "worker", ["requester", "operator", "scanner"], "admin")
        self.token = create_token(self.catalog, "worker")[1]
        text = (ROOT / "policies" / "gdpr-erasure.yaml").read_text().replace(
            "name: gdpr-erasure", "name: auto-erasure")
        (root / "auto.yaml").write_text(text.replace("approvals: 1", "approvals: 0")
                                        if "approvals: 1" in text else text + "\napprovals: 0\n")
        add_policy(self.catalog, str(root / "auto.yaml"), "admin")
        done = subprocess.run([*OPTOUT, "--catalog", self.catalog.path, "scan", str(duck)],
                              env={**os.environ, "OPTOUT_TOKEN": admin}, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        for p in PEOPLE:
            client.set(f"{self.ns}:user:{p['id']}:profile", json.dumps({"email": p["email"]}))
        self.index = root / "search"
        self.index.mkdir()
        schema = tantivy.SchemaBuilder()
        schema.add_text_field("email", stored=True, tokenizer_name="raw")
        schema.add_text_field("body", stored=True)
        index = tantivy.Index(schema.build(), path=str(self.index))
        writer = index.writer()
        for p in PEOPLE:
            writer.add_document(tantivy.Document(email=p["email"], body=f"ticket {p['id']}"))
        writer.commit()
        writer.wait_merging_threads()
        _publish(self.app, [json.dumps({"email": p["email"], "plan": "pro"}).encode()
                            for p in PEOPLE])
        port = client.connection_pool.connection_kwargs["port"]
        (root / "targets.yaml").write_text(json.dumps({"cascade": [
            {"name": "cache", "kind": "redis", "url": f"redis://127.0.0.1:{port}/0",
             "keys": [f"{self.ns}:user:{{customer_id}}:*"], "physical": physical},
            {"name": "search", "kind": "tantivy", "path": str(self.index), "field": "email",
             "identifier": "email", "physical": physical},
            {"name": "events", "kind": "jetstream", "stream": self.app,
             "identifiers": ["email"], "store_dir": NATS_STORE, "physical": physical},
        ]}))

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "OPTOUT_TOKEN": self.token, **extra}

    def submit(self) -> None:
        done = subprocess.run([*OPTOUT, "--catalog", self.catalog.path, "request", "submit",
                               "--namespace", self.ns, "--id", "req-phys",
                               "--identifier", f"email={SUBJECT['email']}",
                               "--identifier", f"customer_id={SUBJECT['id']}",
                               "--policy", "auto-erasure"],
                              env=self.env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    def worker(self, *extra: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([*OPTOUT, "--catalog", self.catalog.path, "worker",
                               "--namespace", self.ns, "--targets",
                               str(self.root / "targets.yaml"), "--plans-dir", str(self.root),
                               *extra], env=self.env(**env), capture_output=True, text=True,
                              cwd=self.root, timeout=240)

    # -- what an examiner reads ---------------------------------------------------------------

    def aof(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.redis_dir.rglob("*") if p.is_file())

    def redis_hits(self) -> int:
        data = self.aof()
        return data.count(SUBJECT["email"].encode()) + data.count(
            f"{self.ns}:user:7:".encode())

    def index_state(self) -> tuple[int, int]:
        """(deleted documents the segments keep, files of segments that are gone)."""
        meta = json.loads((self.index / "meta.json").read_text())
        live = {s["segment_id"].replace("-", "") for s in meta["segments"]}
        deleted = sum((s.get("deletes") or {}).get("num_deleted_docs", 0)
                      for s in meta["segments"])
        stale = [f for f in os.listdir(self.index) if len(f.split(".")[0]) == 32
                 and f.split(".")[0] not in live]
        return deleted, len(stale)

    def stream_hits(self) -> dict[str, int]:
        needle = SUBJECT["email"].encode()
        return {"app": _stream_bytes(self.app).count(needle),
                "worker": _stream_bytes(self.ns.upper()).count(needle)}

    def others_intact(self) -> None:
        assert all(self.client.get(f"{self.ns}:user:{p['id']}:profile") for p in PEOPLE
                   if p["id"] != 7)
        assert self.client.get(f"{self.ns}:user:7:profile") is None
        index = tantivy.Index.open(str(self.index))
        index.reload()
        assert index.searcher().num_docs == len(PEOPLE) - 1

    def close(self) -> None:
        _drop_streams(self.app, self.ns.upper())


@pytest.fixture()
def cascade(tmp_path: Path, aof_redis: tuple[redis.Redis, Path], request: pytest.FixtureRequest
            ) -> Iterator[Cascade]:
    if not os.access(NATS_STORE, os.R_OK):
        pytest.fail(f"NATS' storage folder {NATS_STORE} is not readable (run as root)")
    client, folder = aof_redis
    c = Cascade(tmp_path, client, folder, getattr(request, "param", "required"))
    yield c
    c.close()
    shutil.rmtree(tmp_path / "search", ignore_errors=True)


def _report(c: Cascade) -> dict:
    from optout.engine.erasure_report import build_report

    return build_report(c.catalog, "req-phys", _auditor(c))


def _auditor(c: Cascade):
    from optout.scanner.access.principals import authenticate

    add_principal(c.catalog, "audit", ["auditor"], "admin")
    return authenticate(c.catalog, create_token(c.catalog, "audit")[1])


def test_the_cascade_leaves_no_byte_of_the_subject(cascade: Cascade) -> None:
    c = cascade
    c.submit()
    assert c.redis_hits() > 0 and c.stream_hits()["app"] > 0  # before: the bytes are there
    done = c.worker("--until-idle")
    assert done.returncode == 0, done.stdout + done.stderr
    c.others_intact()
    assert c.redis_hits() == 0
    assert c.index_state() == (0, 0)
    assert c.stream_hits() == {"app": 0, "worker": 0}
    outcome = {s["target"]: s for s in _report(c)["cascade"]}
    assert {t: s["status"] for t, s in outcome.items()} == {
        "cache": "verified", "search": "verified", "events": "verified"}
    assert "BGREWRITEAOF" in outcome["cache"]["detail"]
    assert "erasing delete" in outcome["events"]["detail"]


@pytest.mark.parametrize("cascade", ["off"], indirect=True)
def test_control_without_the_physical_step_every_check_finds_her(cascade: Cascade) -> None:
    c = cascade
    c.submit()
    done = c.worker("--until-idle")
    assert done.returncode == 0, done.stdout + done.stderr
    c.others_intact()  # logically erased everywhere ...
    assert c.redis_hits() > 0  # ... but the append-only file still has her keys and email
    deleted, _ = c.index_state()
    assert deleted > 0  # a segment keeps her document, marked deleted
    assert c.stream_hits()["app"] > 0  # the message is marked deleted, not overwritten


@pytest.mark.parametrize("point", ["physical-redis", "physical-tantivy", "physical-jetstream"])
def test_a_worker_killed_in_a_physical_step_is_finished_by_the_next(
        cascade: Cascade, point: str) -> None:
    c = cascade
    c.submit()
    killed = c.worker("--until-idle", "--ack-wait", "3", OPTOUT_FAULT=point)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    done = c.worker("--seconds", "15", "--ack-wait", "3")
    assert done.returncode == 0, done.stderr
    c.others_intact()
    assert c.redis_hits() == 0 and c.index_state() == (0, 0)
    assert c.stream_hits() == {"app": 0, "worker": 0}
    assert {s["status"] for s in _report(c)["cascade"]} == {"verified"}
