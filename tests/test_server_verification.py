"""Subject verification of requests submitted to `optout serve`: a one-time code mailed to the
request's email through a real SMTP server (aiosmtpd, in this process), three tries, and the
method in the signed report; a request whose code is never given right erases nothing."""

from __future__ import annotations

import email
import json
import re

import pytest
from aiosmtpd.controller import Controller
from test_server import EMAIL, Server, _free_port, _rows, submit

from optout.scanner.config import Config, VerificationConfig
from optout.scanner.deployment import store_deployment_config


class Inbox:
    """An SMTP handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd names it
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def code_for(self, to: str) -> str:
        [message] = [m for m in self.messages if m["To"] == to]
        return re.search(r"\b([0-9]{6})\b", message.get_payload()).group(1)


@pytest.fixture()
def verifying(tmp_path, classifier):
    inbox = Inbox()
    port = _free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    server = Server(tmp_path, classifier)
    store_deployment_config(server.catalog, Config(verification=VerificationConfig(
        required=True, smtp_port=port, sender="privacy@shop.example")), "admin")
    yield server, inbox
    server.stop()
    smtp.stop()


def test_a_request_goes_on_once_its_subject_gives_the_code(verifying) -> None:
    server, inbox = verifying
    rid = submit(server).json()["id"]
    waiting = server.wait_for(rid, ("awaiting_verification",))
    assert "3 tries" in waiting["detail"]
    code = inbox.code_for(EMAIL)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    refused = server.post("alice", f"/v1/requests/{rid}/verify", json={"code": wrong})
    assert refused.status_code == 422 and "2 tries left" in refused.json()["detail"]
    # nothing is planned while the subject is unverified
    assert server.get("vic", f"/v1/requests/{rid}").json()["status"] == "awaiting_verification"
    assert server.get("bob", "/v1/plans").json()["plans"] == []
    good = server.post("alice", f"/v1/requests/{rid}/verify", json={"code": code})
    assert good.status_code == 200, good.text
    server.wait_for(rid, ("awaiting_approval",))
    assert server.post("bob", f"/v1/plans/{rid}/approve").status_code == 200
    done = server.wait_for(rid, ("applied", "failed"))
    assert done["status"] == "applied"
    assert [e["status"] for e in done["events"]][:4] == [
        "received", "awaiting_verification", "verified", "planned"]
    report = server.get("dora", f"/v1/requests/{rid}/report").json()
    assert report["verification"]["method"] == "email one-time code"
    assert report["verification"]["verified"] is True
    checked = server.post("dora", "/v1/reports/verify", content=json.dumps(report)).json()
    assert checked["valid"] is True
    # control: the verification claim edited out of the signed report no longer verifies
    forged = {**report, "verification": {**report["verification"], "method": "passport"}}
    assert server.post("dora", "/v1/reports/verify",
                       content=json.dumps(forged)).json()["valid"] is False
    # the code is in no row of the catalog, no answer, no log line
    assert code not in server.audit().__repr__() and code not in str(report)


def test_three_wrong_codes_deny_the_request_and_erase_nothing(verifying) -> None:
    server, inbox = verifying
    rid = submit(server).json()["id"]
    server.wait_for(rid, ("awaiting_verification",))
    code = inbox.code_for(EMAIL)
    wrong = [f"{(int(code) + n) % 10**6:06d}" for n in (1, 2, 3)]
    answers = [server.post("alice", f"/v1/requests/{rid}/verify", json={"code": c})
               for c in wrong]
    assert [a.status_code for a in answers] == [422, 422, 422]
    assert "denied" in answers[-1].json()["detail"]
    assert server.wait_for(rid, ("denied",))["status"] == "denied"
    # the right code after that is refused: the request is over
    late = server.post("alice", f"/v1/requests/{rid}/verify", json={"code": code})
    assert late.status_code == 409
    assert _rows(server.data) == server.before


def test_a_request_without_an_email_cannot_be_verified(verifying) -> None:
    server, _ = verifying
    answer = server.post("alice", "/v1/requests", json={
        "identifiers": {"customer_id": "7"}, "policy": "gdpr-erasure"})
    assert answer.status_code == 422 and "email" in answer.json()["detail"]
    assert server.get("vic", "/v1/requests").json()["requests"] == []
