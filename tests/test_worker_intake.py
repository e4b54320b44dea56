"""The worker's intake under attack (issue 11, items 5 and 8): a message naming a request the
CLI made, a message whose handling raises, a request that keeps failing. Against the real
NATS JetStream where the attacker publishes; the handler is called directly where a fault is
injected into optout's own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from stream_read import stream_messages

from optout.engine.cascade.spec import load_targets
from optout.engine.journal import Journal
from optout.engine.policy_store import add_policy
from optout.scanner.access import Principal
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog
from optout.session import Session
from optout.worker.messages import DEAD, STATUS
from optout.worker.service import Message, Worker, WorkerSettings
from optout.worker.signing import signed_headers

ROOT = Path(__file__).resolve().parent.parent
OPTOUT = [sys.executable, "-m", "optout.cli.main"]
WORKER = Principal("worker", frozenset({"requester", "operator", "scanner"}))


@pytest.fixture()
def world(tmp_path: Path, classifier) -> dict:
    data = tmp_path / "data"
    data.mkdir()
    people = data / "people.csv"
    people.write_text("id,email\n" + "".join(f"{i},user{i}@example.com\n" for i in range(30)))
    text = (ROOT / "policies" / "gdpr-erasure.yaml").read_text()
    auto = tmp_path / "auto.yaml"
    auto.write_text(text.replace("name: gdpr-erasure", "name: auto") + "\napprovals: 0\n")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    tokens = {"admin": init_catalog(catalog)}
    add_policy(catalog, str(auto), "admin")  # the deployment's policy store
    add_principal(catalog, "worker", sorted(WORKER.roles), "admin")
    for role in ("requester", "approver", "operator", "auditor"):
        add_principal(catalog, role, [role], "admin")
        tokens[role] = create_token(catalog, role)[1]
    tokens["worker"] = create_token(catalog, "worker")[1]
    from optout.scanner.scan import scan

    scan([str(data)], catalog, classifier=classifier, caller=WORKER)
    return {"root": tmp_path, "people": people, "catalog": catalog, "tokens": tokens,
            "ns": f"t{uuid.uuid4().hex[:10]}"}


def optout(world: dict, role: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OPTOUT, "--catalog", world["catalog"].path, *argv],
                          env={**os.environ, "OPTOUT_TOKEN": world["tokens"][role]},
                          capture_output=True, text=True, cwd=world["root"], timeout=240)


def rows(world: dict) -> list[str]:
    return world["people"].read_text().splitlines()


def test_a_message_naming_a_cli_request_is_a_request_of_its_own(world: dict) -> None:
    """Attack 8: a worker message used the id of a request the CLI had applied, and was
    reported `applied` without being handled. Worker requests live in their own id space
    (`worker:ID` in the journal): the message is planned and applied for its own subject,
    the CLI's request is untouched, and `optout report ID` asks which one is meant."""
    plan = world["root"] / "cli.json"
    made = optout(world, "requester", "plan", "--subject", "email=user3@example.com",
                  "--policy", "gdpr-erasure", "--request-id", "shared", "-o", str(plan))
    assert made.returncode == 0, made.stderr
    assert optout(world, "approver", "approve", str(plan)).returncode == 0
    applied = optout(world, "operator", "apply", str(plan), "--yes")
    assert applied.returncode == 0, applied.stderr
    cli_request = Journal(world["catalog"]).request("shared")
    before = rows(world)

    submit = optout(world, "worker", "request", "submit", "--namespace", world["ns"], "--id",
                    "shared", "--identifier", "email=user7@example.com", "--policy", "auto")
    assert submit.returncode == 0, submit.stderr
    run = optout(world, "worker", "worker", "--namespace", world["ns"], "--until-idle")
    assert run.returncode == 0, run.stdout + run.stderr

    assert rows(world) == [r for r in before if r != "7,user7@example.com"]
    assert [e["status"] for e in stream_messages(world["ns"], STATUS)] == [
        "received", "planned", "applied"]
    journal = Journal(world["catalog"])
    assert journal.request("shared") == cli_request
    assert journal.request("worker:shared")["status"] == "complete"
    ambiguous = optout(world, "auditor", "report", "shared")
    assert ambiguous.returncode == 1
    assert "say `worker:shared` for the worker's" in ambiguous.stderr
    report = optout(world, "auditor", "report", "worker:shared", "--format", "json")
    assert report.returncode == 0 and json.loads(report.stdout)["status"] == "complete"
    # and the CLI cannot take an id from the worker's space
    taken = optout(world, "requester", "plan", "--subject", "email=user4@example.com",
                   "--policy", "gdpr-erasure", "--request-id", "worker:shared")
    assert taken.returncode == 2 and "letters, digits and . _ -" in taken.stderr


def _worker(world: dict, targets: str | None = None) -> tuple[Worker, list]:
    settings = WorkerSettings(plans_dir=world["root"],
                              targets=load_targets(targets), max_deliver=5)
    worker = Worker(Session(world["catalog"], WORKER), settings)
    published: list[tuple[str, dict]] = []
    worker.publish = lambda kind, body: published.append((kind, json.loads(body)))
    return worker, published


def _message(world: dict, rid: str, email: str, policy: str = "auto",
             deliveries: int = 1) -> Message:
    body = json.dumps({"request_id": rid, "identifiers": {"email": email},
                       "policy": policy}).encode()
    return Message(body, signed_headers(world["catalog"], "worker", body), deliveries)


def test_a_message_whose_handling_raises_is_dead_lettered(world: dict,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 5's kind: one message made the handler raise something unforeseen, which went
    out of the worker and killed it, for good. Now the message is dead-lettered with the
    reason, its request is `failed`, and the next message is handled."""
    worker, published = _worker(world)
    from optout.session import erasure as planning  # where the worker's plans are made

    real = planning.build_plan

    def fails_once(*args, **kwargs):
        monkeypatch.setattr(planning, "build_plan", real)
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(planning, "build_plan", fails_once)
    assert worker.handle_messages([_message(world, "r-bad", "user5@example.com")]) == [True]
    assert worker.handle_messages([_message(world, "r-good", "user6@example.com")]) == [True]
    dead = [body for kind, body in published if kind == DEAD]
    assert [d["reason"] for d in dead] == [
        "handling failed: RecursionError: maximum recursion depth exceeded"]
    statuses = {(b["request_id"], b["status"]) for k, b in published if k == STATUS}
    assert {("r-bad", "failed"), ("r-good", "applied")} <= statuses
    assert "5,user5@example.com" in rows(world) and "6,user6@example.com" not in rows(world)


def test_a_request_that_keeps_failing_is_dead_lettered_after_max_deliver(world: dict) -> None:
    """A request blocked by a cascade target that is down comes back (not acknowledged) until
    `max_deliver` deliveries, then goes to the dead-letter subject; one waiting for approval
    keeps coming back."""
    targets = world["root"] / "targets.yaml"
    targets.write_text(json.dumps({"cascade": [
        {"name": "cache", "kind": "redis", "url": "redis://127.0.0.1:1/0",
         "keys": ["user:{email}"]}]}))
    worker, published = _worker(world, str(targets))
    down = _message(world, "r-down", "user8@example.com")
    assert worker.handle_messages([down]) == [False]
    assert worker.handle_messages([Message(down.data, down.headers, 5)]) == [True]
    [dead] = [body for kind, body in published if kind == DEAD]
    assert dead["reason"].startswith("still unresolved after 5 deliveries (blocked)")
    held = _message(world, "r-held", "user9@example.com", policy="gdpr-erasure", deliveries=50)
    assert worker.handle_messages([held]) == [False]
    assert len([1 for kind, _ in published if kind == DEAD]) == 1
