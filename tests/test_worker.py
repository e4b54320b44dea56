"""The worker against the real NATS JetStream and Redis on this machine, a Tantivy index and a
local HTTP server: requests flow through to files, databases, Redis, the index and two
webhooks; duplicates, malformed messages, a killed worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import redis
import tantivy
from apply_world import World
from stream_read import publish_raw, stream_messages
from test_apply import assert_erased

from optout.engine.erasure_report import build_report
from optout.engine.journal import Journal
from optout.engine.policy_store import add_policy
from optout.scanner.access import Principal
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.worker.messages import DEAD, REQUESTS, STATUS

ROOT = Path(__file__).resolve().parent.parent
OPTOUT = [sys.executable, "-m", "optout.cli.main"]
SECRET = "webhook-signing-key"
AUDITOR = Principal("auditor", frozenset({"auditor"}))


def signature_holds(header: str, request_id: str, body: bytes, tolerance: float = 300) -> bool:
    """What a receiver checks (the README's example): `t=<unix>,v1=<hex>`, the HMAC of
    `<t>.<request id>.<body>`, and a `t` no older than the tolerance (no replays)."""
    import time

    parts = dict(p.split("=", 1) for p in header.split(","))
    signed = f"{parts['t']}.{request_id}.".encode() + body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and \
        abs(time.time() - int(parts["t"])) <= tolerance


class Hooks(BaseHTTPRequestHandler):
    """/ok answers 200; /flaky answers 503 three times per request id, then 200."""

    calls: ClassVar[list[tuple[str, dict, bool]]] = []
    failures: ClassVar[dict[str, int]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        good = signature_holds(self.headers["X-Optout-Signature"],
                               self.headers["X-Optout-Request"], body)
        data = json.loads(body)
        Hooks.calls.append((self.path, data, good))
        if self.path == "/flaky" and Hooks.failures.get(data["request_id"], 0) < 3:
            Hooks.failures[data["request_id"]] = Hooks.failures.get(data["request_id"], 0) + 1
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"erased": true}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def hooks():
    Hooks.calls, Hooks.failures = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Setup:
    """The world, a worker principal, a namespace of its own, Redis keys, an index, targets."""

    def __init__(self, world: World, base: str) -> None:
        self.world = world
        self.ns = f"t{uuid.uuid4().hex[:10]}"
        self.prefix = f"{self.ns}:"
        root = world.root
        catalog = world.catalog
        admin = init_catalog(catalog)
        add_principal(catalog, "worker", ["requester", "operator", "scanner"], "admin")
        self.token = create_token(catalog, "worker")[1]
        self.admin = admin
        text = (ROOT / "policies" / "gdpr-erasure.yaml").read_text().replace(
            "name: gdpr-erasure", "name: auto-erasure")
        (root / "auto-erasure.yaml").write_text(
            text.replace("approvals: 1", "approvals: 0") if "approvals: 1" in text
            else text + "\napprovals: 0\n")
        add_policy(catalog, str(root / "auto-erasure.yaml"), "admin")  # the policy store
        self.index = root / "search"
        self.index.mkdir()
        schema = tantivy.SchemaBuilder()
        schema.add_text_field("email", stored=True, tokenizer_name="raw")
        schema.add_text_field("body", stored=True)
        index = tantivy.Index(schema.build(), path=str(self.index))
        writer = index.writer()
        self.people = [world.subject, *world.others(5)]
        for p in self.people:
            for n in range(2):
                writer.add_document(tantivy.Document(email=p["email"].lower(),
                                                     body=f"note {n} about {p['first_name']}"))
        writer.commit()
        writer.wait_merging_threads()
        self.redis = redis.Redis()
        for p in self.people:
            self.redis.set(f"{self.prefix}user:{p['id']}:profile", "x")
            self.redis.set(f"{self.prefix}user:{p['id']}:cart", "y")
        (root / "targets.yaml").write_text(json.dumps({"cascade": [
            {"name": "cache", "kind": "redis", "url": "redis://127.0.0.1:6379/0",
             "keys": [f"{self.prefix}user:{{customer_id}}:*"]},
            {"name": "search", "kind": "tantivy", "path": str(self.index), "field": "email",
             "identifier": "email"},
            {"name": "crm", "kind": "webhook", "url": f"{base}/ok", "secret_env": "HOOK_KEY",
             "identifiers": ["email"]},
            {"name": "ads", "kind": "webhook", "url": f"{base}/flaky", "secret_env": "HOOK_KEY",
             "backoff": 0.05},
        ]}))

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "OPTOUT_TOKEN": self.token, "HOOK_KEY": SECRET, **extra}

    def submit(self, request_id: str, person: dict, policy: str = "auto-erasure") -> None:
        run = subprocess.run([*OPTOUT, "--catalog", self.world.catalog.path, "request",
                              "submit", "--namespace", self.ns, "--id", request_id,
                              "--identifier", f"email={person['email']}",
                              "--identifier", f"customer_id={person['id']}",
                              "--policy", policy],
                             env=self.env(), capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr

    def worker(self, *extra: str, env: dict[str, str] | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess:
        root = self.world.root
        return subprocess.run(
            [*OPTOUT, "--catalog", self.world.catalog.path,
             "worker", "--namespace", self.ns, "--targets", str(root / "targets.yaml"),
             "--plans-dir", str(root), *extra],
            env=env or self.env(), capture_output=True, text=True, cwd=root, timeout=timeout)

    def read(self, kind: str) -> list[dict]:
        """Every message the stream holds on one subject."""
        return stream_messages(self.ns, kind)

    def publish_raw(self, kind: str, data: bytes) -> None:
        publish_raw(self.ns, kind, data)

    def search(self, email: str) -> int:
        index = tantivy.Index.open(str(self.index))
        index.reload()
        q = tantivy.Query.term_query(index.schema, "email", email.lower())
        return index.searcher().search(q, 10).count

    def keys(self, person: dict) -> list[bytes]:
        return list(self.redis.scan_iter(match=f"{self.prefix}user:{person['id']}:*"))

    def cleanup(self) -> None:
        for key in self.redis.scan_iter(match=f"{self.prefix}*"):
            self.redis.delete(key)


@pytest.fixture()
def setup(pristine_world, hooks):
    s = Setup(pristine_world.world(), hooks)
    yield s
    s.cleanup()


@pytest.mark.slow
def test_a_request_flows_through_the_worker_to_every_copy(setup: Setup) -> None:
    world = setup.world
    before = world.tables()
    setup.submit("req-1", world.subject)
    setup.publish_raw(REQUESTS, b'{"request_id": "bad id!", "identifiers": {}}')
    setup.publish_raw(REQUESTS, json.dumps({"request_id": "r-2", "identifiers": {"email": "x@y.z"},
                                            "policy": "../../etc/passwd"}).encode())
    run = setup.worker("--until-idle")
    assert run.returncode == 0, run.stdout + run.stderr
    # files, DuckDB, SQLite, PostgreSQL: the subject is gone, everyone else intact
    assert_erased(world, before)
    # Redis and the index: the subject's copies gone, the others' untouched
    assert setup.keys(world.subject) == []
    assert all(len(setup.keys(p)) == 2 for p in setup.people[1:])
    assert setup.search(world.subject["email"]) == 0
    assert all(setup.search(p["email"]) == 2 for p in setup.people[1:])
    # two webhooks: signed; one called once, the other after three failures
    crm = [c for c in Hooks.calls if c[0] == "/ok"]
    ads = [c for c in Hooks.calls if c[0] == "/flaky"]
    assert len(crm) == 1 and len(ads) == 4 and all(c[2] for c in Hooks.calls)
    assert crm[0][1]["identifiers"] == {"email": world.subject["email"]}
    assert ads[0][1]["identifiers"] == {} and set(ads[0][1]["hashes"]) == {"email",
                                                                          "customer_id"}
    statuses = [e["status"] for e in setup.read(STATUS) if e["request_id"] == "req-1"]
    assert statuses == ["received", "planned", "applied"]
    report = build_report(world.catalog, "req-1", AUDITOR)
    assert report["status"] == "incomplete_needs_review"
    outcome = {c["target"]: (c["status"], c["attempts"]) for c in report["cascade"]}
    assert outcome == {"cache": ("verified", 1), "search": ("verified", 1),
                       "crm": ("verified", 1), "ads": ("verified", 4)}
    # the malformed message is in the dead-letter subject with its reason
    dead = setup.read(DEAD)
    assert [d["reason"].split(":")[0] for d in dead] == ["request_id", "policy"]
    # what identifies them, never their raw identifiers or invalid values
    assert "request_id" not in dead[0] and dead[1]["request_id"] == "r-2"
    assert "policy" not in dead[1] and dead[1]["identifiers"]["email"].startswith("hmac:")
    assert "x@y.z" not in json.dumps(dead)
    # a duplicate is acknowledged without a second erasure or report
    calls = len(Hooks.calls)
    setup.submit("req-1", world.subject)
    again = setup.worker("--until-idle")
    assert again.returncode == 0, again.stderr
    assert len(Hooks.calls) == calls
    assert [e["status"] for e in setup.read(STATUS) if e["request_id"] == "req-1"] == statuses
    # nothing of the subject's raw identifiers in the worker's own records
    import duckdb

    con = duckdb.connect(world.catalog.path, read_only=True)
    stored = str(con.execute("SELECT * FROM worker_requests").fetchall()) + str(
        con.execute("SELECT * FROM outbox").fetchall()) + str(
        con.execute("SELECT * FROM audit_log").fetchall())
    con.close()
    assert world.subject["email"] not in stored


@pytest.mark.slow
def test_a_killed_worker_is_finished_exactly_once_by_the_next(setup: Setup) -> None:
    world = setup.world
    before = world.tables()
    setup.submit("req-kill", world.subject)
    killed = setup.worker("--until-idle", "--ack-wait", "3",
                          env=setup.env(OPTOUT_FAULT="after-check"))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert Journal(world.catalog).request("worker:req-kill")["status"] == "preparing"
    assert Hooks.calls == []
    finished = setup.worker("--seconds", "20", "--ack-wait", "3")
    assert finished.returncode == 0, finished.stderr
    assert Journal(world.catalog).request("worker:req-kill")["status"] == "incomplete_needs_review"
    assert_erased(world, before)
    assert len([c for c in Hooks.calls if c[0] == "/ok"]) == 1
    assert [e["status"] for e in setup.read(STATUS)
            if e["request_id"] == "req-kill"].count("applied") == 1


def test_a_new_copy_of_an_erased_subject_is_found_and_erased_within_seconds(
        setup: Setup) -> None:
    """A pipeline lands a file holding an erased subject and says so on the stream: within ten
    seconds the catalog lists it and the ledger's re-erasure has removed the subject."""
    import time

    import pyarrow.parquet as pq

    world = setup.world
    backup = pq.read_table(world.data / "crm" / "customers.parquet")  # before the erasure
    setup.submit("req-rt", world.subject)
    worker = subprocess.Popen(
        [*OPTOUT, "--catalog", world.catalog.path,
         "worker", "--namespace", setup.ns, "--targets", str(world.root / "targets.yaml"),
         "--reapply-policy", "auto-erasure",
         "--seconds", "120"], env=setup.env(), cwd=world.root, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "applied" not in [
                e["status"] for e in setup.read(STATUS) if e["request_id"] == "req-rt"]:
            time.sleep(1)
        landed = world.data / "crm" / "landed" / "customers_copy.parquet"
        landed.parent.mkdir()
        pq.write_table(backup, landed)
        start = time.monotonic()
        setup.publish_raw("datasets.changed", json.dumps({"location": str(landed)}).encode())
        listed = erased = False
        while time.monotonic() - start < 10 and not (listed and erased):
            time.sleep(0.25)
            listed = any(d.location == str(landed) for d in world.catalog.datasets())
            emails = {r["email"] for r in pq.read_table(landed).to_pylist()}
            erased = listed and world.subject["email"] not in emails
        elapsed = time.monotonic() - start
    finally:
        worker.kill()
        output = worker.communicate()[0]
    assert listed and erased, f"after {elapsed:.1f}s: listed={listed} erased={erased}\n{output}"
    print(f"landed copy listed and erased {elapsed:.1f}s after the change event")
    rows = pq.read_table(landed).to_pylist()
    assert len(rows) == backup.num_rows - 1


def test_requests_that_arrive_together_are_applied_as_one_batch(setup: Setup) -> None:
    world = setup.world
    before = world.tables()
    people = setup.people[:3]
    for n, person in enumerate(people):
        setup.submit(f"req-b{n}", person)
    run = setup.worker("--until-idle", "--batch", "16")
    assert run.returncode == 0, run.stderr
    reports = [build_report(world.catalog, f"req-b{n}", AUDITOR) for n in range(3)]
    assert len({r["batch"] for r in reports}) == 1  # one plan, one apply
    assert all(r["status"] == "incomplete_needs_review" for r in reports)
    assert all({c["status"] for c in r["cascade"]} == {"verified"} for r in reports)
    for person in people:
        assert setup.keys(person) == [] and setup.search(person["email"]) == 0
    assert all(len(setup.keys(p)) == 2 for p in setup.people[3:])
    after = world.tables()
    ids = {p["id"] for p in people}
    assert [r for r in before["customers"] if r[0] not in ids] == after["customers"]
    assert len([c for c in Hooks.calls if c[0] == "/ok"]) == 3


@pytest.mark.slow
def test_a_request_needing_approval_waits_then_is_applied(setup: Setup) -> None:
    """Under a policy that needs an approval the worker holds the request (not acknowledged)
    and applies it, cascade included, once someone other than the worker approves the plan."""
    from optout.engine.approvals import approve
    from optout.model.plan import load_plan

    world = setup.world
    before = world.tables()
    setup.submit("req-held", world.subject, policy="gdpr-erasure")
    held = setup.worker("--seconds", "8", "--ack-wait", "2")
    assert held.returncode == 0, held.stderr
    statuses = [e["status"] for e in setup.read(STATUS) if e["request_id"] == "req-held"]
    assert statuses == ["received", "planned", "awaiting_approval"]  # once, not per delivery
    assert world.tables() == before and Hooks.calls == []
    plan = load_plan(world.root / "plan-req-held.json")
    approve(world.catalog, plan, Principal("approver", frozenset({"approver"})))
    done = setup.worker("--seconds", "20", "--ack-wait", "2")
    assert done.returncode == 0, done.stderr
    statuses = [e["status"] for e in setup.read(STATUS) if e["request_id"] == "req-held"]
    assert statuses == ["received", "planned", "awaiting_approval", "applied"]
    assert_erased(world, before)
    assert setup.keys(world.subject) == [] and setup.search(world.subject["email"]) == 0
