"""Access control through the real CLI: every command × every role, four eyes, the audit log's
tamper evidence, hostile names, and no raw identifier in the audit log."""

from __future__ import annotations

import json
import socket
import sqlite3
import uuid
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from optout.cli.main import cli
from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.approvals import ApprovalError, approve
from optout.engine.erasure_report import build_report
from optout.engine.lifecycle import start_clock, utcnow
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.policy_store import add_policy
from optout.engine.subjects import parse_subject
from optout.scanner.access import AccessDenied, Principal, audit
from optout.scanner.access.principals import ROLES, add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog
from optout.session import ROLE_OF, Operation, Session, holds

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
SUBJECT = "user7@example.com"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, classifier) -> dict:
    root = tmp_path_factory.mktemp("access")
    data = root / "data"
    data.mkdir()
    (data / "people.csv").write_text(
        "id,email,name\n" + "".join(f"{i},user{i}@example.com,Given{i} Family{i}\n"
                                    for i in range(40)))
    catalog = Catalog(str(root / "c.duckdb"))
    admin = init_catalog(catalog)
    tokens = {"admin": admin}
    for role in ROLES:
        if role != "admin":
            add_principal(catalog, role, [role], "admin")
            tokens[role] = create_token(catalog, role)[1]
    boss = Principal("admin", frozenset({"admin"}))
    from optout.scanner.scan import scan

    scan([str(data)], catalog, classifier=classifier, caller=boss)
    return {"root": root, "data": data, "catalog": catalog, "tokens": tokens, "boss": boss,
            "ns": f"t{uuid.uuid4().hex[:10]}"}


def fresh_plan(world: dict, name: str) -> Path:
    """A plan made by a requester other than the approvers, written to a file."""
    plan = build_plan(world["catalog"], PlanRequest(
        [parse_subject(f"email={SUBJECT}")], load_policy(POLICY), str(POLICY), f"p-{name}"),
        caller=Principal("requester", frozenset({"requester"})))
    path = world["root"] / f"plan-{name}.json"
    path.write_text(plan.to_json())
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(world: dict, role: str) -> dict[str, list[str]]:
    """Valid arguments for every command, fresh per role where a call consumes something."""
    root, catalog = world["root"], world["catalog"]
    plan = fresh_plan(world, role)
    rid = apply_plan(catalog, __import__("optout.model.plan", fromlist=["load_plan"]).load_plan(plan),
                     ApplyOptions(dry_run=True, caller=world["boss"]))
    report = root / f"report-{role}.json"
    report.write_text(json.dumps(build_report(catalog, rid, world["boss"])))
    (root / f"lineage-{role}.yaml").write_text("lineage: []\n")
    (root / f"manifest-{role}.json").write_text(json.dumps({"metadata": {
        "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}, "nodes": {}}))
    (root / f"events-{role}.json").write_text(json.dumps({
        "eventType": "COMPLETE", "run": {"runId": "0193f1c4-5a4e-7b1a-9c1e-3f0d2b9a7c11"},
        "job": {"namespace": "airflow", "name": "nightly"}, "inputs": [], "outputs": []}))
    token_id = create_token(catalog, "viewer")[0]
    # a request submitted over HTTP on this day, whose clock an approver may extend
    start_clock(catalog, f"api-extend-{role}", "gdpr", "erasure", utcnow(), "boss")
    deployment = root / "deployment.yaml"
    deployment.write_text("scan: {sample_rows: 1000}\n")
    return {
        "scan": ["scan", "-q", str(world["data"])],
        "catalog list": ["catalog", "list"], "catalog show": ["catalog", "show", "people"],
        "catalog export": ["catalog", "export", "-o", str(root / f"cat-{role}.json")],
        "graph": ["graph"], "lineage show": ["lineage", "show", "people"],
        "lineage add": ["lineage", "add", str(root / f"lineage-{role}.yaml")],
        "lineage add-sql": ["lineage", "add-sql", str(root / f"lineage-{role}.yaml")],
        "lineage add-dbt": ["lineage", "add-dbt", str(root / f"manifest-{role}.json")],
        "lineage add-openlineage": ["lineage", "add-openlineage",
                                    str(root / f"events-{role}.json")],
        "plan": ["plan", "--subject", f"email={SUBJECT}", "--policy", str(POLICY), "-o",
                 str(root / f"made-{role}.json")],
        "approve": ["approve", str(plan)],
        "review": ["review", str(plan)],
        "apply": ["apply", str(plan), "--dry-run"],
        "resume": ["resume", rid],
        "report": ["report", rid, "--format", "md"],
        "report verify": ["report", "verify", str(report)],
        "audit verify": ["audit", "verify"],
        "audit export": ["audit", "export", "-o", str(root / f"audit-{role}.jsonl")],
        "user add": ["user", "add", f"new-{role}", "--role", "viewer"],
        "user list": ["user", "list"],
        "token create": ["token", "create", "viewer"],
        "token revoke": ["token", "revoke", token_id],
        "token list": ["token", "list"],
        "producer-key": ["producer-key", "requester"],
        "worker": ["worker", "--namespace", world["ns"], "--until-idle"],
        # A policy the worker does not have: the request is refused (failed, acknowledged), so
        # `worker --until-idle` in the next role's turn ends (a request held for approval
        # would stay pending).
        "request submit": ["request", "submit", "--namespace", world["ns"], "--identifier",
                           f"email={SUBJECT}", "--policy", "no-such-policy"],
        "config set": ["config", "set", str(deployment)],
        "config show": ["config", "show"],
        "policy add": ["policy", "add", str(POLICY)],
        "policy list": ["policy", "list"],
        "policy show": ["policy", "show", "gdpr-erasure"],
        # nobody was erased in this world: both find no one and change nothing
        "restore-check": ["restore-check", str(world["data"]), "--policy", "gdpr-erasure"],
        "ledger sweep": ["ledger", "sweep", "--policy", "gdpr-erasure"],
        "request status": ["request", "status"],
        "request extend": ["request", "extend", f"api-extend-{role}", "--reason", "volume"],
        "requests metrics": ["requests", "metrics", "--year", "2026"],
        "serve": ["serve", "--port", str(_free_port()), "--seconds", "1"],
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_command_for_every_role(world: dict, role: str) -> None:
    catalog = world["catalog"]
    runner = CliRunner(env={"OPTOUT_TOKEN": world["tokens"][role]})
    calls = commands(world, role)
    assert set(calls) == {op.value for op in Operation}
    for command, argv in calls.items():
        before = max((e.seq for e in audit.entries(catalog)), default=0)
        result = runner.invoke(cli, ["--catalog", catalog.path, *argv])
        new = [e for e in audit.entries(catalog) if e.seq > before]
        # roles nest: every role includes viewer, admin holds every role
        allowed = holds(Principal(role, frozenset({role})), ROLE_OF[Operation(command)])
        assert allowed == (role in (ROLE_OF[Operation(command)], "admin")
                           or ROLE_OF[Operation(command)] == "viewer")
        if allowed:
            assert result.exit_code == 0, (command, role, result.output)
            assert any(e.outcome == "ok" and e.principal == role for e in new), command
        else:
            assert result.exit_code == 3, (command, role, result.output)
            assert "does not hold the role" in result.output
            assert [(e.principal, e.command, e.outcome) for e in new] == [
                (role, command, "denied")], (command, role)


def test_no_token_bad_token_revoked_token(world: dict) -> None:
    catalog = world["catalog"]
    for token, message in ((None, "no token"), ("optout_nope", "not an optout token"),
                           ("optout_000000000000_" + "a" * 43, "not valid for this catalog")):
        env = {"OPTOUT_TOKEN": token} if token else {"OPTOUT_TOKEN": ""}
        result = CliRunner(env=env).invoke(cli, ["--catalog", catalog.path, "catalog", "list"])
        assert result.exit_code == 3 and message in result.output
        last = list(audit.entries(catalog))[-1]
        assert (last.principal, last.outcome) == ("(unauthenticated)", "denied")
    token_id, token = create_token(catalog, "viewer")
    CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["admin"]}).invoke(
        cli, ["--catalog", catalog.path, "token", "revoke", token_id])
    result = CliRunner(env={"OPTOUT_TOKEN": token}).invoke(
        cli, ["--catalog", catalog.path, "catalog", "list"])
    assert result.exit_code == 3 and "revoked" in result.output


def test_the_api_checks_roles_too(world: dict) -> None:
    """The library's front door is the Session: it checks the same roles as the CLI (every
    denial audited); the engine underneath refuses to act for nobody on a governed catalog."""
    viewer = Session(world["catalog"], Principal("viewer", frozenset({"viewer"})))
    with pytest.raises(AccessDenied, match="does not hold the role 'requester'"):
        viewer.plan([f"email={SUBJECT}"], str(POLICY))
    with pytest.raises(AccessDenied, match="does not hold the role 'auditor'"):
        viewer.report("anything")
    last = list(audit.entries(world["catalog"]))[-1]
    assert (last.principal, last.command, last.outcome) == ("viewer", "report", "denied")
    with pytest.raises(AccessDenied, match="an authenticated caller is needed"):
        Session(world["catalog"]).report("anything")
    with pytest.raises(AccessDenied, match="an authenticated caller is needed"):
        build_report(world["catalog"], "anything")


def fresh_plan_as(world: dict, caller: Principal):
    return build_plan(world["catalog"], PlanRequest(
        [parse_subject(f"email={SUBJECT}")], load_policy(POLICY), str(POLICY)), caller=caller)


def test_four_eyes_and_edited_plans(world: dict, tmp_path: Path) -> None:
    catalog = world["catalog"]
    both = Principal("both", frozenset({"requester", "approver"}))
    add_principal(catalog, "both", ["requester", "approver"], "admin")
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(POLICY), str(POLICY),
                                           created_by="someone-else"), caller=both)
    assert plan.created_by == "both"  # the caller, whatever the request said
    with pytest.raises(ApprovalError, match="cannot approve it \\(four eyes\\)"):
        approve(catalog, plan, both)
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    token = create_token(catalog, "both")[1]
    result = CliRunner(env={"OPTOUT_TOKEN": token}).invoke(
        cli, ["--catalog", catalog.path, "approve", str(path)])
    assert result.exit_code == 3 and "four eyes" in result.output
    approver = Principal("approver", frozenset({"approver"}))
    assert approve(catalog, plan, approver) == 1
    # Edited and sealed again (a valid content hash): the catalog never made that plan.
    import dataclasses

    from optout.model.plan import PlanError

    edited = dataclasses.replace(plan, steps=plan.steps[:0]).sealed()
    with pytest.raises(PlanError, match="MAC does not match this catalog"):
        apply_plan(catalog, edited, ApplyOptions(caller=world["boss"]))


def test_a_policy_can_require_two_approvals(tmp_path: Path, classifier) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text(
        "id,email\n" + "".join(f"{i},user{i}@example.com\n" for i in range(30)))
    policy = tmp_path / "two.yaml"
    policy.write_text(POLICY.read_text() + "\napprovals: 2\n")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    init_catalog(catalog)
    from optout.scanner.scan import scan

    scan([str(data)], catalog, classifier=classifier,
         caller=Principal("s", frozenset({"scanner"})))
    add_policy(catalog, str(policy), "admin")  # the deployment's policy, as an admin stores it
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(policy), str(policy)),
                      caller=Principal("r", frozenset({"requester"})))
    assert plan.approvals == 2
    operator = ApplyOptions(caller=Principal("o", frozenset({"operator"})))
    assert approve(catalog, plan, Principal("a1", frozenset({"approver"}))) == 1
    with pytest.raises(ApprovalError, match="has 1 of the 2 approvals"):
        apply_plan(catalog, plan, operator)
    assert SUBJECT in (data / "people.csv").read_text()
    assert approve(catalog, plan, Principal("a2", frozenset({"approver"}))) == 2
    apply_plan(catalog, plan, operator)
    assert SUBJECT not in (data / "people.csv").read_text()


def tamper(catalog: Catalog, sql: str) -> None:
    con = duckdb.connect(catalog.path)
    con.execute(sql)
    con.close()


@pytest.mark.parametrize(("attack", "bad"), [
    ("UPDATE audit_log SET outcome = 'denied' WHERE seq = 4", 4),
    ("DELETE FROM audit_log WHERE seq = 5", 5),
    ("INSERT INTO audit_log SELECT 3, logged_at, 'mallory', roles, command, args, outcome, "
     "detail, mac FROM audit_log WHERE seq = 3", 3),
    ("UPDATE audit_log SET seq = CASE seq WHEN 6 THEN 7 ELSE 6 END WHERE seq IN (6, 7)", 6),
    ("UPDATE audit_log SET principal = 'mallory' WHERE seq = 8", 8),
    ("DELETE FROM audit_log WHERE seq >= 9", 9),
])
def test_audit_tampering_names_the_first_bad_entry(tmp_path: Path, attack: str, bad: int) -> None:
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    init_catalog(catalog)
    for i in range(10):
        audit.append(catalog, f"p{i}", ("viewer",), "catalog list", {"n": i}, "ok")
    assert audit.verify(catalog) == 10
    tamper(catalog, attack)
    with pytest.raises(audit.AuditError, match=f"broken at entry {bad}:"):
        audit.verify(catalog)
    token = create_token(catalog, "admin")[1]
    result = CliRunner(env={"OPTOUT_TOKEN": token}).invoke(
        cli, ["--catalog", catalog.path, "audit", "verify"])
    assert result.exit_code == 1 and f"broken at entry {bad}:" in result.output


@pytest.mark.parametrize("role", ROLES)
def test_exit_status_of_the_installed_command(world: dict, role: str) -> None:
    """The same allow/deny as a separate process (what a shell sees): every role includes
    viewer (each lists the catalog); only requesters and admins plan."""
    import os
    import subprocess
    import sys

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "optout.cli.main", "--catalog",
                               world["catalog"].path, *argv],
                              env={**os.environ, "OPTOUT_TOKEN": world["tokens"][role]},
                              capture_output=True, text=True, timeout=120)

    listed = run("catalog", "list")
    assert listed.returncode == 0 and "people" in listed.stdout, listed.stderr
    planned = run("plan", "--subject", f"email={SUBJECT}", "--policy", str(POLICY))
    if role in ("requester", "admin"):
        assert planned.returncode in (0, 4), planned.stderr
    else:
        assert planned.returncode == 3, planned.stderr
        assert "does not hold the role 'requester'" in planned.stderr


def test_no_raw_identifier_in_the_audit_log(world: dict) -> None:
    catalog = world["catalog"]
    runner = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["requester"]})
    result = runner.invoke(cli, ["--catalog", catalog.path, "plan", "--subject",
                                 "email=user9@example.com", "--subject", "phone=+14155550123",
                                 "--policy", str(POLICY), "-o",
                                 str(world["root"] / "grep.json")])
    assert result.exit_code == 0, result.output
    denied = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["viewer"]}).invoke(
        cli, ["--catalog", catalog.path, "plan", "--subject", "email=user9@example.com",
              "--policy", str(POLICY)])
    assert denied.exit_code == 3
    exported = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["auditor"]}).invoke(
        cli, ["--catalog", catalog.path, "audit", "export"]).output
    con = duckdb.connect(catalog.path, read_only=True)
    stored = "\n".join(str(r) for r in con.execute("SELECT * FROM audit_log").fetchall())
    con.close()
    for text in (exported, stored):
        assert "user9@example.com" not in text and "4155550123" not in text
        assert "email=hmac:" in text


# -- hostile input ----------------------------------------------------------------------------

def test_hostile_table_and_column_names_are_quoted(tmp_path: Path, classifier) -> None:
    """A SQLite table and column whose names carry quotes and a statement: scanned, planned
    and erased as data; the statement never runs; other rows intact."""
    db = tmp_path / "data" / "hostile.sqlite"
    db.parent.mkdir()
    table, column = 'people"; DROP TABLE keep; --', "e'mail; DELETE FROM keep"
    lite = sqlite3.connect(db)
    lite.execute("CREATE TABLE keep (x INTEGER)")
    lite.execute("INSERT INTO keep VALUES (1)")
    lite.execute(f'CREATE TABLE "{table.replace(chr(34), chr(34) * 2)}" '
                 f'(id INTEGER, "{column}" TEXT)')
    lite.executemany(f'INSERT INTO "{table.replace(chr(34), chr(34) * 2)}" VALUES (?, ?)',
                     [(i, f"user{i}@example.com") for i in range(30)])
    lite.commit()
    lite.close()
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    from optout.scanner.scan import scan

    scan([str(db.parent)], catalog, classifier=classifier)
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(POLICY), str(POLICY)))
    assert [s.dataset for s in plan.steps] == [table]
    apply_plan(catalog, plan)
    lite = sqlite3.connect(db)
    assert lite.execute("SELECT x FROM keep").fetchall() == [(1,)]
    rows = lite.execute(f'SELECT * FROM "{table.replace(chr(34), chr(34) * 2)}"').fetchall()
    lite.close()
    assert len(rows) == 29 and SUBJECT not in {r[1] for r in rows}


def test_hostile_subject_identifiers_are_hashed_not_executed(world: dict) -> None:
    catalog = world["catalog"]
    for value in ("x' OR '1'='1", "a@b.com'); DROP TABLE audit_log; --", "../../etc/passwd"):
        runner = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["requester"]})
        result = runner.invoke(cli, ["--catalog", catalog.path, "plan", "--subject",
                                     f"customer_id={value}", "--policy", str(POLICY)])
        assert result.exit_code in (0, 1), result.output
        assert value not in "\n".join(e.args for e in audit.entries(catalog))
    assert audit.verify(catalog) > 0


def test_a_plan_pointing_outside_the_catalog_is_refused(world: dict, tmp_path: Path) -> None:
    """A resealed plan whose step names another file (path traversal) changes nothing."""
    import dataclasses

    from optout.engine.apply import StalePlan
    from optout.engine.plan_store import record_plan

    catalog = world["catalog"]
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(POLICY), str(POLICY)),
                      caller=world["boss"])
    victim = tmp_path / "victim.csv"
    victim.write_text("id,email\n7,user7@example.com\n")
    moved = dataclasses.replace(plan.steps[0], location=str(world["data"] / ".." / ".." /
                                                           tmp_path.name / "victim.csv"))
    evil = dataclasses.replace(plan, steps=(moved,)).sealed()
    evil = record_plan(catalog, evil)  # past the plan record (a holder of the key)
    with pytest.raises(StalePlan, match="refused"):
        apply_plan(catalog, evil, ApplyOptions(caller=world["boss"]))
    assert victim.read_text() == "id,email\n7,user7@example.com\n"


def test_hostile_file_names_are_quoted(tmp_path: Path, classifier) -> None:
    """A CSV whose name carries quotes, a statement and `..`: read and erased as a file."""
    folder = tmp_path / "data"
    folder.mkdir()
    hostile = folder / "o'neil; DROP TABLE datasets; --..csv"
    hostile.write_text("id,email\n" + "".join(f"{i},user{i}@example.com\n" for i in range(30)))
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    from optout.scanner.scan import scan

    report = scan([str(folder)], catalog, classifier=classifier)
    assert not report.failed
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(POLICY), str(POLICY)))
    assert [s.location for s in plan.steps] == [str(hostile)]
    apply_plan(catalog, plan)
    lines = hostile.read_text().splitlines()
    assert len(lines) == 30 and not [x for x in lines if SUBJECT in x]
    assert catalog.datasets()  # the catalog's tables are all there


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    import os

    catalog = Catalog(str(tmp_path / "c.duckdb"))
    token = init_catalog(catalog)
    assert oct(os.stat(catalog.path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(catalog.path + ".key").st_mode & 0o777) == "0o600"
    os.chmod(catalog.path + ".key", 0o644)
    result = CliRunner(env={"OPTOUT_TOKEN": token}).invoke(
        cli, ["--catalog", catalog.path, "catalog", "list"])
    assert result.exit_code != 0 and "readable by others" in result.output


def _resealed(path: Path, out: Path, **edits: object) -> Path:
    """A plan file edited and sealed again, as anyone can: its content hash is plain SHA-256."""
    import hashlib

    data = {**json.loads(path.read_text()), **edits}
    data.pop("content_hash")
    mac = data.pop("mac")  # kept as it was: without the key file no other can be made
    detail = data.pop("detail_data")  # sealed by its sha256 in `detail`, which is hashed
    data["content_hash"] = hashlib.sha256(json.dumps(
        data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
    out.write_text(json.dumps({**data, "mac": mac, "detail_data": detail}))
    return out


def test_resealed_plan_files_are_refused(world: dict, tmp_path: Path) -> None:
    """The attacks of issue 11 (1, 2): an operator sets `approvals` to 0, a requester who is
    also an approver sets `created_by` to someone else; each reseals the file. The catalog
    never made those plans: apply and approve refuse them in one line and nothing changes; the
    plan as made still takes its approval and applies."""
    catalog, data = world["catalog"], world["data"] / "people.csv"
    before = data.read_text()
    made = fresh_plan(world, "resealed")
    operator = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["operator"]})
    no_approval = _resealed(made, tmp_path / "zero.json", approvals=0)
    result = operator.invoke(cli, ["--catalog", catalog.path, "apply", str(no_approval), "--yes"])
    assert result.exit_code == 1
    assert "MAC does not match this catalog" in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and data.read_text() == before

    add_principal(catalog, "both2", ["requester", "approver"], "admin")
    both = CliRunner(env={"OPTOUT_TOKEN": create_token(catalog, "both2")[1]})
    own = tmp_path / "own.json"
    own.write_text(fresh_plan_as(world, Principal("both2", frozenset({"requester"}))).to_json())
    other = _resealed(own, tmp_path / "other.json", created_by="someone-else")
    result = both.invoke(cli, ["--catalog", catalog.path, "approve", str(other)])
    assert result.exit_code == 1 and "MAC does not match this catalog" in result.output
    result = both.invoke(cli, ["--catalog", catalog.path, "approve", str(own)])
    assert result.exit_code == 3 and "four eyes" in result.output

    approver = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["approver"]})
    result = approver.invoke(cli, ["--catalog", catalog.path, "approve", str(made)])
    assert result.exit_code == 0 and "(1 of 1 approvals)" in result.output
    result = operator.invoke(cli, ["--catalog", catalog.path, "apply", str(made), "--yes"])
    assert result.exit_code == 0, result.output
    assert SUBJECT not in data.read_text() and data.read_text() != before


def test_policies_come_from_the_policy_store(world: dict, tmp_path: Path) -> None:
    """Issue 11, attack 1 without editing anything: a requester plans under a YAML of their
    own (`approvals: 0`, no retention). Refused: only the store's policies (by name, or a file
    whose content is a stored policy's), and an admin stores a policy before anyone plans under
    it; a plan whose stored policy changed since is not applied."""
    catalog = world["catalog"]
    own = tmp_path / "mine.yaml"
    own.write_text(POLICY.read_text().replace("name: gdpr-erasure", "name: mine")
                   + "\napprovals: 0\n")
    requester = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["requester"]})
    args = ["--catalog", catalog.path, "plan", "--subject", f"email={SUBJECT}", "-o"]
    result = requester.invoke(cli, [*args, str(tmp_path / "p.json"), "--policy", str(own)])
    assert result.exit_code == 1 and "not a policy of this deployment" in result.output
    assert not (tmp_path / "p.json").exists()
    result = requester.invoke(cli, [*args, str(tmp_path / "p.json"), "--policy", "nope"])
    assert result.exit_code == 1 and "not in this deployment's policy store" in result.output
    result = requester.invoke(cli, [*args, str(tmp_path / "p.json"), "--policy", "gdpr-erasure"])
    assert result.exit_code == 0, result.output
    admin = CliRunner(env={"OPTOUT_TOKEN": world["tokens"]["admin"]})
    result = admin.invoke(cli, [*args, str(tmp_path / "a.json"), "--policy", str(own)])
    assert result.exit_code == 1 and "not a policy of this deployment" in result.output
    result = admin.invoke(cli, ["--catalog", catalog.path, "policy", "add", str(own)])
    assert result.exit_code == 0, result.output
    result = requester.invoke(cli, [*args, str(tmp_path / "a.json"), "--policy", "mine"])
    assert result.exit_code == 0, result.output

    # The stored policy changes after the plan was made under it: apply refuses.
    erase = tmp_path / "erase.yaml"
    erase.write_text(POLICY.read_text().replace("name: gdpr-erasure", "name: erase-test"))
    add_policy(catalog, str(erase), "admin")
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(erase), str(erase)),
                      caller=Principal("requester", frozenset({"requester"})))
    approve(catalog, plan, Principal("approver", frozenset({"approver"})))
    erase.write_text(erase.read_text() + "\napprovals: 0\n")
    add_policy(catalog, str(erase), "admin")
    from optout.engine.apply import StalePlan

    before = (world["data"] / "people.csv").read_text()
    with pytest.raises(StalePlan, match="changed in the policy store since the plan was made"):
        apply_plan(catalog, plan, ApplyOptions(caller=world["boss"]))
    assert (world["data"] / "people.csv").read_text() == before


def test_a_deleted_key_file_is_an_error_not_a_new_key(tmp_path: Path, classifier) -> None:
    """Issue 11, attack 7 (part): with the key file gone, optout used to make a new key, and the
    erasure ledger then matched nothing. Now every command says the key is missing, in one line,
    and creates none; with the key back everything works."""
    from optout.scanner.scan import scan

    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text("id,email\n1,ana@example.org\n2,ben@example.org\n")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    token = init_catalog(catalog)
    scan([str(data)], catalog, classifier=classifier,
         caller=Principal("admin", frozenset({"admin"})))
    key = Path(catalog.path + ".key")
    saved = key.read_bytes()
    key.unlink()
    runner = CliRunner(env={"OPTOUT_TOKEN": token})
    result = runner.invoke(cli, ["--catalog", catalog.path, "plan", "--policy", str(POLICY),
                                 "--subject", "email=ana@example.org"])
    assert result.exit_code == 1 and "key file is missing" in result.output, result.output
    assert not key.exists()
    key.write_bytes(saved)
    key.chmod(0o600)
    result = runner.invoke(cli, ["--catalog", catalog.path, "plan", "--policy", str(POLICY),
                                 "--subject", "email=ana@example.org", "-o",
                                 str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
