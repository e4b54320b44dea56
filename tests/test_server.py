"""`optout serve` as a real server process on a free local port, spoken to over HTTP (httpx):
a request submitted, planned under its submitter's name, approved by a second principal,
applied, its report verified; four eyes, 401/403/404/413/422, idempotent resubmission, and
every call in the audit log.

The data: a customers Parquet file and its orders child (DuckDB-written, no declared key).
What is true before optout runs, from the data's own meaning: the subject is the customer
with id 7 (her email is `person7@example.com`); her rows are that customer row and every
order whose `customer_id` is 7; every other row stays as it was."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from fixtures.deletion_list import write_data
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog
from optout.scanner.scan import scan

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "person7@example.com"
ROLES = {"alice": ["requester"], "bob": ["approver"], "carol": ["approver"],
         "dora": ["auditor"], "vic": ["viewer"], "svc": ["operator"],
         "erin": ["requester", "approver"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(data: Path) -> dict[str, set[tuple]]:
    con = duckdb.connect()
    return {name: set(con.execute(f"SELECT * FROM read_parquet('{data}/{name}.parquet')")
                      .fetchall()) for name in ("customers", "orders")}


class Server:
    """A scanned catalog, one principal per role, and `optout serve` running on it."""

    def __init__(self, root: Path, classifier,
                 extra_principals: dict[str, list[str]] | None = None,
                 location: str | None = None) -> None:
        """`location`: data someone else wrote, scanned instead of the generated files."""
        self.root = root
        self.data = root / "data"
        if location is None:
            write_data(self.data, 60, 120)
            self.before = _rows(self.data)
        self.catalog = Catalog(str(root / "catalog.duckdb"))
        scan([location or str(self.data)], self.catalog, classifier=classifier)
        init_catalog(self.catalog)
        self.tokens = {}
        for name, roles in {**ROLES, **(extra_principals or {})}.items():
            add_principal(self.catalog, name, roles, "admin")
            self.tokens[name] = create_token(self.catalog, name)[1]
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(root / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "optout.cli.main", "--catalog", self.catalog.path, "serve",
             "--port", str(self.port), "--poll", "0.3", "--max-body", "65536"],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "OPTOUT_TOKEN": self.tokens["svc"],
                 "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.get("vic", "/v1/requests").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, (root / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.2)

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def get(self, who: str | None, path: str, **kw) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers(who), timeout=60, **kw)

    def post(self, who: str | None, path: str, **kw) -> httpx.Response:
        headers = {**self.headers(who), **kw.pop("headers", {})}
        return httpx.post(self.base + path, headers=headers, timeout=120, **kw)

    def request(self, method: str, who: str | None, path: str, **kw) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.headers(who), timeout=60,
                             **kw)

    def wait_for(self, rid: str, statuses: tuple[str, ...], seconds: float = 120) -> dict:
        deadline = time.monotonic() + seconds
        while True:
            body = self.get("vic", f"/v1/requests/{rid}").json()
            if body["status"] in statuses:
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.2)

    def audit(self) -> list[tuple]:
        con = duckdb.connect(self.catalog.path, read_only=True)
        try:
            return con.execute("SELECT principal, command, outcome, args, detail "
                               "FROM audit_log ORDER BY seq").fetchall()
        finally:
            con.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


@pytest.fixture()
def server(tmp_path: Path, classifier):
    s = Server(tmp_path, classifier)
    yield s
    s.stop()


def submit(server: Server, who: str = "alice", key: str | None = "k-1",
           email: str = EMAIL) -> httpx.Response:
    body = {"identifiers": {"email": email}, "policy": "gdpr-erasure", "kind": "erasure"}
    if key:
        body["idempotency_key"] = key
    return server.post(who, "/v1/requests", json=body)


def test_a_request_goes_from_submission_to_a_verified_report(server: Server) -> None:
    sent = submit(server)
    assert sent.status_code == 202, sent.text
    rid = sent.json()["id"]
    waiting = server.wait_for(rid, ("awaiting_approval", "failed", "needs_review"))
    assert waiting["status"] == "awaiting_approval", waiting
    [plan] = server.get("bob", "/v1/plans").json()["plans"]
    assert plan["request_id"] == rid and plan["created_by"] == "alice"
    assert {s["dataset"]: s["rows"] for s in plan["steps"]} == {"customers": 1, "orders": 2}
    # a requester may not approve
    assert server.post("alice", f"/v1/plans/{rid}/approve").status_code == 403
    approved = server.post("bob", f"/v1/plans/{rid}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["approvals"] == 1
    done = server.wait_for(rid, ("applied", "failed", "blocked"))
    assert done["status"] == "applied", done
    assert [e["status"] for e in done["events"]][:3] == ["received", "planned",
                                                         "awaiting_approval"]
    assert [e["status"] for e in done["events"]][-2:] == ["approved", "applied"]
    assert done["events"][-2]["detail"] == "approved by bob (1 of 1)"
    # the data: her rows gone, every other row as it was
    after = _rows(server.data)
    gone = {t: {r for r in rows if (r[0] if t == "customers" else r[1]) == 7}
            for t, rows in server.before.items()}
    assert len(gone["customers"]) == 1 and len(gone["orders"]) == 2
    assert after == {t: rows - gone[t] for t, rows in server.before.items()}
    # the signed report: an auditor's, and it verifies; an altered one does not
    report = server.get("dora", f"/v1/requests/{rid}/report")
    assert report.status_code == 200, report.text
    body = report.json()
    assert server.post("dora", "/v1/reports/verify", content=json.dumps(body)).json()[
        "valid"] is True
    body["status"] = "complete"
    body["summary"] = "altered"
    assert server.post("dora", "/v1/reports/verify", content=json.dumps(body)).json()[
        "valid"] is False
    html = server.get("dora", f"/v1/requests/{rid}/report", params={"format": "html"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    # every call was audited: each operation the round trip made, by whom, and how it ended
    log = {(r[0], r[1], r[2]) for r in server.audit()}
    assert {("alice", "request submit", "ok"), ("vic", "request status", "ok"),
            ("bob", "request status", "ok"), ("alice", "approve", "denied"),
            ("bob", "approve", "ok"), ("svc", "apply", "ok"), ("dora", "report", "ok"),
            ("dora", "report verify", "ok"), ("dora", "report verify", "failed")} <= log
    # her email is nowhere in what the API said, nor in the audit log
    for text in (report.text, html.text, json.dumps(done), server.get("vic",
                 "/v1/requests").text, json.dumps(server.audit(), default=str)):
        assert EMAIL not in text


def test_every_call_is_authenticated_authorized_and_audited(server: Server) -> None:
    # 401: no token, a wrong one, another scheme
    assert server.get(None, "/v1/requests").status_code == 401
    bad = httpx.get(server.base + "/v1/requests", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.headers["www-authenticate"] == "Bearer"
    basic = httpx.get(server.base + "/v1/requests", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    # 403: a viewer may not submit; a requester may not read reports
    assert submit(server, who="vic").status_code == 403
    assert server.get("alice", "/v1/requests/api-x/report").status_code == 403
    log = server.audit()
    assert ("(unauthenticated)", "http GET /v1/requests", "denied") in [r[:3] for r in log]
    assert ("vic", "request submit", "denied") in [r[:3] for r in log]
    assert ("alice", "report", "denied") in [r[:3] for r in log]
    assert ("vic", "request status", "ok") in [r[:3] for r in log]


def test_bad_requests_get_a_problem_and_change_nothing(server: Server) -> None:
    before = server.audit()
    big = server.post("alice", "/v1/requests", content=b"{" + b" " * 70000 + b"}",
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.headers["content-type"] == "application/problem+json"
    unknown = server.post("alice", "/v1/requests", json={
        "identifiers": {"email": EMAIL}, "policy": "gdpr-erasure", "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    assert EMAIL not in unknown.text  # the value sent is never echoed
    no_policy = server.post("alice", "/v1/requests", json={
        "identifiers": {"email": EMAIL}, "policy": "no-such-policy"})
    assert no_policy.status_code == 422 and "no-such-policy" in no_policy.json()["detail"]
    assert server.get("vic", "/v1/requests/" + "ana@example.org").status_code == 422
    assert server.get("vic", "/v1/requests/api-unknown").status_code == 404
    assert server.get("vic", "/v1/requests").json()["requests"] == []
    # headers a browser obeys, on every answer
    answer = server.get("vic", "/v1/requests")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "traceback" not in (big.text + unknown.text + no_policy.text).lower()
    assert len(server.audit()) > len(before)


def test_resubmission_with_the_same_key_is_the_same_request(server: Server) -> None:
    first = submit(server, key="form-42")
    again = submit(server, key="form-42")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    other = submit(server, key="form-42", email="person8@example.com")
    assert other.status_code == 409
    assert submit(server, key="form-43").json()["id"] != first.json()["id"]
    # the key may come as a header; another caller's same key is another request
    header = server.post("alice", "/v1/requests", json={
        "identifiers": {"email": EMAIL}, "policy": "gdpr-erasure"},
        headers={"Idempotency-Key": "form-42"})
    assert (header.status_code, header.json()["id"]) == (200, first.json()["id"])
    erin = server.post("erin", "/v1/requests", json={
        "identifiers": {"email": EMAIL}, "policy": "gdpr-erasure"},
        headers={"Idempotency-Key": "form-42"})
    assert erin.status_code == 202 and erin.json()["id"] != first.json()["id"]


def test_a_rejected_plan_ends_denied_and_erases_nothing(server: Server) -> None:
    rid = submit(server).json()["id"]
    server.wait_for(rid, ("awaiting_approval",))
    assert server.post("alice", f"/v1/plans/{rid}/reject",
                       json={"reason": "not verified"}).status_code == 403
    rejected = server.post("carol", f"/v1/plans/{rid}/reject",
                           json={"reason": "identity not verified"})
    assert rejected.status_code == 200, rejected.text
    done = server.wait_for(rid, ("denied",))
    assert "identity not verified" in done["detail"]
    assert server.get("bob", "/v1/plans").json()["plans"] == []
    assert _rows(server.data) == server.before


def test_four_eyes_the_author_of_a_plan_cannot_approve_it(server: Server) -> None:
    """Erin holds both roles: she may submit and approve, but never her own request's plan.
    Control: another approver's approval of the same plan is accepted."""
    rid = submit(server, who="erin").json()["id"]
    server.wait_for(rid, ("awaiting_approval",))
    own = server.post("erin", f"/v1/plans/{rid}/approve")
    assert own.status_code == 403 and "four eyes" in own.json()["detail"]
    assert server.get("bob", f"/v1/plans/{rid}").json()["approved_by"] == []
    assert server.post("bob", f"/v1/plans/{rid}/approve").status_code == 200
    assert server.wait_for(rid, ("applied", "failed"))["status"] == "applied"


def test_a_request_runs_on_its_jurisdictions_clock(server: Server) -> None:
    sent = server.post("alice", "/v1/requests", json={
        "identifiers": {"email": EMAIL}, "policy": "gdpr-erasure", "jurisdiction": "ccpa"})
    rid = sent.json()["id"]
    clock = server.get("vic", f"/v1/requests/{rid}").json()["clock"]
    received = dt.datetime.fromisoformat(clock["received"].rstrip("Z"))
    assert clock["jurisdiction"] == "ccpa" and clock["overdue"] is False
    assert dt.datetime.fromisoformat(clock["due"].rstrip("Z")) - received == dt.timedelta(
        days=45)
    assert clock["acknowledge_by"] is not None and clock["extended_due"] is None
    assert server.post("alice", f"/v1/requests/{rid}/extend",
                       json={"reason": "many systems"}).status_code == 403
    longer = server.post("bob", f"/v1/requests/{rid}/extend", json={"reason": "many systems"})
    assert longer.status_code == 200, longer.text
    assert dt.datetime.fromisoformat(longer.json()["clock"]["extended_due"].rstrip("Z")) - \
        received == dt.timedelta(days=90)
    again = server.post("bob", f"/v1/requests/{rid}/extend", json={"reason": "more"})
    assert again.status_code == 422 and "one extension" in again.json()["detail"]
    listed = server.get("vic", "/v1/requests").json()["requests"]
    assert listed[0]["id"] == rid and listed[0]["clock"]["extension_reason"] == "many systems"


def test_a_global_privacy_control_signal_is_an_opt_out(server: Server) -> None:
    from optout.scanner.config import Config, GpcConfig
    from optout.scanner.deployment import store_deployment_config

    body = {"identifiers": {"email": EMAIL}}
    gpc = {"Sec-GPC": "1"}
    # control: a deployment that does not take the signal says so
    assert server.post("alice", "/v1/gpc", json=body, headers=gpc).status_code == 404
    store_deployment_config(server.catalog, Config(gpc=GpcConfig(policy="ccpa-opt-out")),
                            "admin")
    assert server.post("alice", "/v1/gpc", json=body).status_code == 400  # no header
    assert server.post("vic", "/v1/gpc", json=body, headers=gpc).status_code == 403
    sent = server.post("alice", "/v1/gpc", json=body, headers=gpc)
    assert sent.status_code == 202, sent.text
    status = server.get("vic", f"/v1/requests/{sent.json()['id']}").json()
    assert status["policy"] == "ccpa-opt-out"
    assert (status["clock"]["jurisdiction"], status["clock"]["kind"]) == ("ccpa", "opt-out")


def test_the_catalog_lineage_and_identity_graph_with_masked_values(server: Server) -> None:
    found = server.get("vic", "/v1/catalog", params={"pii_only": "true"})
    assert found.status_code == 200, found.text
    names = {d["name"] for d in found.json()["datasets"]}
    assert "customers" in names
    email = [c for d in found.json()["datasets"] if d["name"] == "customers"
             for c in d["columns"] if c["name"] == "email"]
    assert email and email[0]["entity"] == "EMAIL_ADDRESS"
    assert "@example.com" not in found.text  # examples are masked
    graph = server.get("vic", "/v1/graph").json()
    assert any("customers" in c["column"] for cols in graph["domains"].values() for c in cols)
    assert server.get("vic", "/v1/lineage").json() == {"edges": []}
    assert server.get(None, "/v1/catalog").status_code == 401
