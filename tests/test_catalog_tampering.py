"""Issue 11, attack 7 and 8: whoever can write the catalog file (but not read its key file)
inserts principals, tokens and approvals, cuts the audit log and rewrites its head, edits the
journal; approvals that lapse; a plan applied twice. Each attack is run as the attacker would,
against the real CLI: refused in one line, the data unchanged, the legitimate path working."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from optout.cli.main import cli
from optout.scanner.access import audit
from optout.scanner.access.principals import ROLES, add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
SUBJECT = "user7@example.com"


@pytest.fixture()
def world(tmp_path: Path, classifier) -> dict:
    data = tmp_path / "data"
    data.mkdir()
    people = data / "people.csv"
    people.write_text("id,email\n" + "".join(f"{i},user{i}@example.com\n" for i in range(30)))
    brief = tmp_path / "brief.yaml"
    brief.write_text(POLICY.read_text().replace("name: gdpr-erasure", "name: brief")
                     + "\napproval_ttl: 0.02m\n")
    catalog = Catalog(str(tmp_path / "c.duckdb"))
    tokens = {"admin": init_catalog(catalog)}
    for role in ROLES[:-1]:
        add_principal(catalog, role, [role], "admin")
        tokens[role] = create_token(catalog, role)[1]
    world = {"root": tmp_path, "people": people, "catalog": catalog, "tokens": tokens}
    assert run(world, "admin", "policy", "add", str(brief)).exit_code == 0
    assert run(world, "scanner", "scan", "-q", str(data)).exit_code == 0
    return world


def run(world: dict, role: str, *argv: str, token: str | None = None):
    """One CLI call as a role (or with a token of the caller's choosing)."""
    runner = CliRunner(env={"OPTOUT_TOKEN": token or world["tokens"][role]})
    return runner.invoke(cli, ["--catalog", world["catalog"].path, *argv])


def one_error(result, text: str) -> None:
    """The call failed with exactly one `Error:` line, which says `text`."""
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0, result.output
    assert len(errors) == 1 and text in errors[0], result.output


def planned(world: dict, name: str, policy: str = "gdpr-erasure") -> Path:
    out = world["root"] / f"{name}.json"
    result = run(world, "requester", "plan", "--subject", f"email={SUBJECT}", "--policy",
                 policy, "-o", str(out))
    assert result.exit_code == 0, result.output
    return out


def write(catalog: Catalog, sql: str, params: list | None = None) -> None:
    """The attacker writes the catalog file directly (no key file)."""
    con = duckdb.connect(catalog.path)
    con.execute(sql, params or [])
    con.close()


def test_an_inserted_admin_with_a_token_of_its_own_is_refused(world: dict) -> None:
    salt, secret, token_id = secrets.token_bytes(16), secrets.token_urlsafe(32), "a1b2c3d4e5f6"
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32,
                            maxmem=64 * 2**20)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    write(world["catalog"], "INSERT INTO principals VALUES ('mallory', ['admin'], ?, 'admin', "
          "'0' || repeat('f', 63))", [now])
    write(world["catalog"], "INSERT INTO tokens VALUES (?, 'mallory', ?, ?, ?, NULL, NULL, "
          "NULL)", [token_id, salt, digest, now])
    forged = f"optout_{token_id}_{secret}"
    result = run(world, "admin", "user", "add", "eve", "--role", "admin", token=forged)
    one_error(result, "does not carry this catalog's seal")
    assert "eve" not in run(world, "viewer", "catalog", "list").output
    # the real admin still works, and `audit verify` names the forged rows
    result = run(world, "admin", "token", "create", "viewer")
    assert result.exit_code == 0, result.output
    one_error(run(world, "auditor", "audit", "verify"), "principals row (name='mallory')")


def test_an_inserted_approval_approves_nothing(world: dict) -> None:
    plan = planned(world, "forged-approval")
    before = world["people"].read_text()
    content_hash = __import__("json").loads(plan.read_text())["content_hash"]
    write(world["catalog"], "INSERT INTO approvals VALUES (?, 'x', 'approver', now()::TIMESTAMP, "
          "NULL)", [content_hash])
    one_error(run(world, "operator", "apply", str(plan), "--yes"),
              "approvals row (plan_hash=")
    assert world["people"].read_text() == before
    write(world["catalog"], "DELETE FROM approvals WHERE mac IS NULL")
    assert run(world, "approver", "approve", str(plan)).exit_code == 0
    result = run(world, "operator", "apply", str(plan), "--yes")
    assert result.exit_code == 0, result.output
    assert SUBJECT not in world["people"].read_text()


def test_a_cut_audit_log_with_a_rewritten_head_does_not_verify(world: dict) -> None:
    catalog = world["catalog"]
    assert run(world, "auditor", "audit", "verify").exit_code == 0
    count = len(list(audit.entries(catalog)))
    keep = count - 3
    last_mac = duckdb.connect(catalog.path, read_only=True).execute(
        "SELECT mac FROM audit_log WHERE seq = ?", [keep]).fetchall()[0][0]
    write(catalog, "DELETE FROM audit_log WHERE seq > ?", [keep])
    head = Path(audit.head_path(catalog))
    head.write_text(f"{keep} {last_mac}\n")  # the head as it was before heads were sealed
    one_error(run(world, "auditor", "audit", "verify"), "does not carry this catalog's seal")
    head.write_text(f"{keep} {last_mac} {'0' * 64}\n")  # a made-up seal
    one_error(run(world, "auditor", "audit", "verify"), "does not carry this catalog's seal")
    head.unlink()
    one_error(run(world, "auditor", "audit", "verify"), "head file")


def test_a_journal_edited_to_complete_is_not_reported(world: dict) -> None:
    plan = planned(world, "journal")
    assert run(world, "approver", "approve", str(plan)).exit_code == 0
    # the apply fails before any change (root is not stopped by modes; the immutable flag
    # stops it): the request is rolled back
    subprocess.run(["chattr", "+i", str(world["people"])], check=True)
    try:
        failed = run(world, "operator", "apply", str(plan), "--yes")
    finally:
        subprocess.run(["chattr", "-i", str(world["people"])], check=True)
    assert failed.exit_code == 1, failed.output
    rid = __import__("json").loads(plan.read_text())["request_id"]
    report = run(world, "auditor", "report", rid, "--format", "json")
    assert report.exit_code == 0 and '"status": "rolled_back"' in report.output
    write(world["catalog"], "UPDATE requests SET status = 'complete' WHERE id = ?", [rid])
    write(world["catalog"], "UPDATE request_steps SET status = 'verified', residue = 0 "
          "WHERE request_id = ?", [rid])
    one_error(run(world, "auditor", "report", rid), f"requests row (id='{rid}')")
    one_error(run(world, "operator", "resume", rid), f"requests row (id='{rid}')")
    assert SUBJECT in world["people"].read_text()


def test_an_approval_lapses_after_the_policys_ttl(world: dict) -> None:
    plan = planned(world, "lapsing", policy="brief")
    assert run(world, "approver", "approve", str(plan)).exit_code == 0
    before = world["people"].read_text()
    time.sleep(1.5)  # approval_ttl: 0.02m
    one_error(run(world, "operator", "apply", str(plan), "--yes"),
              "older than the policy's approval_ttl")
    assert world["people"].read_text() == before
    assert run(world, "approver", "approve", str(plan)).exit_code == 0  # approved again
    result = run(world, "operator", "apply", str(plan), "--yes")
    assert result.exit_code == 0, result.output
    assert SUBJECT not in world["people"].read_text()


def test_a_plan_applies_once(world: dict) -> None:
    plan = planned(world, "once")
    assert run(world, "approver", "approve", str(plan)).exit_code == 0
    assert run(world, "operator", "apply", str(plan), "--yes").exit_code == 0
    # the subject's row is put back; the approved plan does not erase it a second time
    world["people"].write_text(world["people"].read_text() + f"7,{SUBJECT}\n")
    after = world["people"].read_text()
    one_error(run(world, "operator", "apply", str(plan), "--yes"), "a plan applies once")
    assert world["people"].read_text() == after


def test_the_journal_reads_its_plan_from_the_sealed_plan_record(world: dict) -> None:
    """A request's journal row refers to the catalog's record of its plan (no copy of a plan
    that is tens of MB at 100,000 subjects): the report reads the plan there, so editing that
    record is refused; a row journaled before this layout, holding the plan itself, still
    reads."""
    from optout.engine.journal import RECORDED, Journal
    from optout.scanner.catalog.seal import seal

    plan = planned(world, "referred")
    assert run(world, "approver", "approve", str(plan)).exit_code == 0
    assert run(world, "operator", "apply", str(plan), "--yes").exit_code == 0
    rid = __import__("json").loads(plan.read_text())["request_id"]
    con = duckdb.connect(world["catalog"].path)
    held, body = con.execute("SELECT r.plan::VARCHAR, p.body FROM requests r JOIN plans p ON "
                             "p.content_hash = r.plan_hash WHERE r.id = ?", [rid]).fetchone()
    con.close()
    assert held == RECORDED
    assert Journal(world["catalog"]).request(rid)["plan"] == body
    assert Journal(world["catalog"]).find(rid)["plan"] == RECORDED  # find reads no plan
    report = run(world, "auditor", "report", rid, "--format", "json")
    assert report.exit_code == 0 and '"status": "complete"' in report.output
    # an older row holds the plan's JSON itself (sealed as such): read as it is
    with world["catalog"].connect() as con:
        con.execute("UPDATE requests SET plan = ? WHERE id = ?", [body, rid])
        seal(con, world["catalog"].secret(), "requests", "id = ?", [rid])
    assert Journal(world["catalog"]).request(rid)["plan"] == body
    again = run(world, "auditor", "report", rid, "--format", "json")
    assert again.exit_code == 0 and again.output == report.output
    # back to the reference, then the record edited outside optout: refused, naming it
    with world["catalog"].connect() as con:
        con.execute("UPDATE requests SET plan = ? WHERE id = ?", [RECORDED, rid])
        seal(con, world["catalog"].secret(), "requests", "id = ?", [rid])
    write(world["catalog"], "UPDATE plans SET body = body || ' ' WHERE body LIKE '%' || ? || "
          "'%'", [rid])
    one_error(run(world, "auditor", "report", rid), "plans row")


def test_a_plan_file_as_recorded_is_not_read_twice(world: dict) -> None:
    """A plan file byte for byte as the catalog recorded it is the record (apply does not
    parse a large plan a second time); the same plan written otherwise (its JSON indented
    anew: the same content hash and MAC) is read from the record instead, and an edited one
    is still refused."""
    import json

    from optout.engine.plan_store import recorded_plan
    from optout.model.plan import PlanError, load_plan

    path = planned(world, "once")
    plan = load_plan(path)
    assert recorded_plan(world["catalog"], plan) is plan
    again = world["root"] / "indented.json"
    again.write_text(json.dumps(json.loads(path.read_text()), indent=1))
    other = load_plan(again)
    record = recorded_plan(world["catalog"], other)
    assert record is not other and record == other  # the control: read from the record
    edited = json.loads(path.read_text())
    edited["approvals"] = 0
    again.write_text(json.dumps(edited))
    with pytest.raises(PlanError, match="content hash does not match"):
        load_plan(again)
