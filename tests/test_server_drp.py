"""The Data Rights Protocol 1.0 endpoints of `optout serve`, spoken to as an authorized agent
does (PyNaCl signing, as the protocol's reference implementation): pair-wise key setup, a
signed deletion request taken through approval to `fulfilled`, status for its agent only,
revocation; and every check of §3.07 shown to refuse (another key, an edited message, another
business, an expired request, a request from the future)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from nacl.signing import SigningKey
from test_server import EMAIL, Server, _rows

from optout.scanner.config import Config, DrpAgentConfig, DrpConfig
from optout.scanner.deployment import store_deployment_config

BUSINESS = "OPTOUT_TEST"
AGENT = "CR_AGENT"


def signed(key: SigningKey, claims: dict) -> bytes:
    return base64.b64encode(key.sign(json.dumps(claims).encode()))


def envelope(**extra) -> dict:
    now = dt.datetime.now(dt.UTC)
    return {"agent-id": AGENT, "business-id": BUSINESS, "drp.version": "1.0",
            "issued-at": now.isoformat(), "expires-at": (now + dt.timedelta(minutes=10))
            .isoformat(), **extra}


class Agent(BaseHTTPRequestHandler):
    """The agent's status callback endpoint: keeps what it is sent."""

    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        Agent.calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def drp(tmp_path, classifier):
    Agent.calls = []
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    server = Server(tmp_path, classifier, extra_principals={"agent": ["requester"]})
    server.callback = f"http://127.0.0.1:{hooks.server_address[1]}/drp/status"
    key = SigningKey.generate()
    config = Config(drp=DrpConfig(business_id=BUSINESS, agents=[DrpAgentConfig(
        id=AGENT, verify_key=base64.b64encode(bytes(key.verify_key)).decode(),
        principal="agent", callback_hosts=[f"127.0.0.1:{hooks.server_address[1]}"])]))
    store_deployment_config(server.catalog, config, "admin")
    # pair-wise key setup: the agent's signed message gets it a bearer token
    setup = server.post(None, f"/v1/agent/{AGENT}", content=signed(key, envelope()))
    assert setup.status_code == 200, setup.text
    assert setup.json()["agent-id"] == AGENT
    server.tokens["agent"] = setup.json()["token"]
    yield server, key
    server.stop()
    hooks.shutdown()


def test_a_signed_deletion_request_round_trip(drp) -> None:
    server, key = drp
    assert server.get("agent", f"/v1/agent/{AGENT}").json() == {}
    claims = envelope(exercise="deletion", regime="ccpa", email=EMAIL, email_verified=True,
                      status_callback=server.callback, **{"agent-request-id": "cr-1"})
    # a callback to a host the agent's configuration does not list is refused
    elsewhere = envelope(exercise="deletion", email=EMAIL,
                         status_callback="http://169.254.169.254/latest/meta-data")
    assert server.post("agent", "/v1/data-rights-request",
                       content=signed(key, elsewhere)).status_code == 400
    sent = server.post("agent", "/v1/data-rights-request", content=signed(key, claims))
    assert sent.status_code == 200, sent.text
    status = sent.json()
    rid = status["request_id"]
    assert status["agent_request_id"] == "cr-1" and status["status"] in ("open", "in_progress")
    received = dt.datetime.fromisoformat(status["received_at"].rstrip("Z"))
    expected = dt.datetime.fromisoformat(status["expected_by"].rstrip("Z"))
    assert dt.timedelta(days=44) < expected - received <= dt.timedelta(days=45)  # CCPA
    # the same request sent again is the same request
    again = server.post("agent", "/v1/data-rights-request", content=signed(key, claims))
    assert again.json()["request_id"] == rid
    server.wait_for(rid, ("awaiting_approval",))
    assert server.post("bob", f"/v1/plans/{rid}/approve").status_code == 200
    server.wait_for(rid, ("applied",))
    final = server.get("agent", f"/v1/data-rights-request/{rid}").json()
    assert final["status"] == "fulfilled"
    # the agent was called back with each status change, the last one `fulfilled`
    deadline = time.monotonic() + 30
    while not any(c["status"] == "fulfilled" for c in Agent.calls):
        assert time.monotonic() < deadline, Agent.calls
        time.sleep(0.2)
    assert {c["request_id"] for c in Agent.calls} == {rid}
    assert "in_progress" in [c["status"] for c in Agent.calls]
    report = server.get("dora", f"/v1/requests/{rid}/report").json()
    assert report["verification"] == {"method": f"attested by authorized agent {AGENT}",
                                      "verified": True,
                                      "verified_at": report["verification"]["verified_at"]}
    # her rows are gone, everyone else's stay
    after = _rows(server.data)
    assert not [r for r in after["customers"] if r[0] == 7]
    assert after["orders"] == {r for r in server.before["orders"] if r[1] != 7}
    # status is for the agent that submitted it only; an answered request cannot be revoked
    assert server.get("alice", f"/v1/data-rights-request/{rid}").status_code == 403
    revoke = server.request("DELETE", "agent", f"/v1/data-rights-request/{rid}",
                            content=signed(key, {"reason": "changed my mind"}))
    assert revoke.status_code == 409
    assert any(r[1] == "drp agent token" and r[2] == "ok" for r in server.audit())


def test_a_revoked_request_erases_nothing(drp) -> None:
    server, key = drp
    claims = envelope(exercise="deletion", email="person8@example.com",
                      **{"agent-request-id": "cr-2"})
    rid = server.post("agent", "/v1/data-rights-request", content=signed(key, claims)).json()[
        "request_id"]
    server.wait_for(rid, ("awaiting_approval",))
    revoked = server.request("DELETE", "agent", f"/v1/data-rights-request/{rid}",
                             content=signed(key, {"reason": "changed my mind"}))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert server.get("bob", "/v1/plans").json()["plans"] == []
    assert server.post("bob", f"/v1/plans/{rid}/approve").status_code == 404
    assert _rows(server.data) == server.before


#: each refusal, and the status it gets (403: not this agent's or not for us; 400: malformed)
CASES = {"other key": 403, "edited": 403, "other business": 403, "expired": 400,
         "from the future": 400, "not base64": 400, "unsupported": 400}


def _bad(key: SigningKey, case: str) -> bytes:
    claims = envelope(exercise="deletion", email=EMAIL)
    if case == "other key":
        return signed(SigningKey.generate(), claims)
    if case == "edited":
        raw = bytearray(base64.b64decode(signed(key, claims)))
        raw[raw.index(b"person7")] = ord("q")
        return base64.b64encode(bytes(raw))
    if case == "other business":
        return signed(key, {**claims, "business-id": "SOMEONE_ELSE"})
    if case == "expired":
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        return signed(key, {**claims, "expires-at": past.isoformat()})
    if case == "from the future":
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return signed(key, {**claims, "issued-at": later.isoformat(),
                            "expires-at": (later + dt.timedelta(minutes=5)).isoformat()})
    if case == "not base64":
        return b"{not signed}"
    return signed(key, {**claims, "exercise": "access"})


def test_every_check_of_the_signed_request_refuses(drp) -> None:
    """Control: the same envelope, signed by the agent's key and left alone, is accepted
    (last, so that nothing before it left a request behind)."""
    server, key = drp
    for case, code in CASES.items():
        answer = server.post("agent", "/v1/data-rights-request", content=_bad(key, case))
        assert answer.status_code == code, (case, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert server.get("vic", "/v1/requests").json()["requests"] == []
    good = server.post("agent", "/v1/data-rights-request",
                       content=signed(key, envelope(exercise="deletion", email=EMAIL)))
    assert good.status_code == 200, good.text


def test_a_pairwise_key_setup_with_another_key_is_refused(drp) -> None:
    server, _ = drp
    answer = server.post(None, f"/v1/agent/{AGENT}",
                         content=signed(SigningKey.generate(), envelope()))
    assert answer.status_code == 403
    assert server.post(None, "/v1/agent/NOBODY", content=b"x").status_code == 403
