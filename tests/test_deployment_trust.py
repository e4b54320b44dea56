"""The deployment's configuration is the admin's: attacks a hostile insider tried through the
command line, each refused with nothing erased or leaked, and each with its control (the
legitimate path still works). Attack 3 (a dbt folder edited after approval) is in
tests/test_dbt.py, attack 4 (Spark's event log) in tests/test_spark.py.

A requester, an approver and an operator are separate principals (tests/staff.py); the
catalog writer without the key edits the catalog file with DuckDB directly."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import duckdb
import pytest
from staff import Staff, error_line

from optout.engine.policy import load_policy
from optout.engine.policy_store import SHIPPED
from optout.model.plan import load_plan
from optout.scanner.access.principals import _scrypt
from optout.scanner.catalog.migrations import LATEST

LOOT = "loot.txt"
#: the requester's own policy: the deployment's name, no approval, no retention rule
LAX_POLICY = """name: {name}
identifiers: [email, phone, customer_id, user_id, subscriber_id]
default_action: delete_rows
approvals: 0
"""


@pytest.fixture()
def world(pristine_world):
    """The scanned company (files, DuckDB, SQLite, PostgreSQL) and its staff."""
    world = pristine_world.world()
    world.staff = Staff(world.catalog)
    return world


def plan_args(world, *extra: str) -> list[str]:
    return ["plan", "--subject", f"email={world.subject['email']}", *extra]


def subjects_rows(world) -> int:
    return sum(1 for name, rows in world.tables().items() for r in rows
               if world.is_subjects(name, r))


def test_attack1_a_requesters_own_policy_store_does_not_decide_approvals(world, tmp_path):
    staff, before = world.staff, world.tables()
    mine = tmp_path / "mine"
    (mine / "policies").mkdir(parents=True)
    (mine / "policies" / "gdpr-erasure.yaml").write_text(LAX_POLICY.format(name="gdpr-erasure"))
    (mine / "optout.yaml").write_text("policies: policies\n")

    # the store named in the requester's optout.yaml, or in OPTOUT_CONFIG: refused by name
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure"), cwd=mine)
    assert done.returncode == 1
    assert error_line(done) == (
        "Error: optout.yaml: line 1: policies: only the deployment's configuration sets this "
        "(an admin runs `optout config set FILE`); a local config may set scan.sample_rows "
        "and scan.seed")
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure"), cwd=tmp_path,
                     env={"OPTOUT_CONFIG": str(mine / "optout.yaml")})
    assert done.returncode == 1 and "policies: only the deployment's configuration" in \
        error_line(done)
    (mine / "optout.yaml").unlink()
    # the requester's own file by path: not a policy of this deployment
    done = staff.cli("requester", *plan_args(world, "--policy", "policies/gdpr-erasure.yaml"),
                     cwd=mine)
    assert done.returncode == 1
    assert "not a policy of this deployment" in error_line(done)

    # ./policies of the working directory is not the store: the plan is the store's policy,
    # with its approval and its retention rule
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure", "-o",
                                             str(tmp_path / "p.json")), cwd=mine)
    assert done.returncode in (0, 4), done.stderr
    plan = load_plan(tmp_path / "p.json")
    shipped = load_policy(SHIPPED / "gdpr-erasure.yaml")
    assert (plan.approvals, plan.policy["digest"]) == (1, shipped.digest)
    assert any(s.action == "retain" for s in plan.steps)  # payments are kept
    done = staff.cli("operator", "apply", str(tmp_path / "p.json"), "--yes", cwd=mine)
    assert done.returncode == 3
    assert "has 0 of the 1 approvals its policy requires" in error_line(done)
    assert world.tables() == before  # nothing erased

    # control: a policy the admin stored may need no approval, and then it applies
    (tmp_path / "quick.yaml").write_text(LAX_POLICY.format(name="quick-erasure"))
    assert staff.cli("requester", "policy", "add", str(tmp_path / "quick.yaml")).returncode == 3
    done = staff.cli("admin", "policy", "add", str(tmp_path / "quick.yaml"))
    assert done.returncode == 0, done.stderr
    done = staff.cli("requester", *plan_args(world, "--policy", "quick-erasure", "-o",
                                             str(tmp_path / "q.json")))
    assert done.returncode in (0, 4), done.stderr
    assert subjects_rows(world) > 0
    done = staff.cli("operator", "apply", str(tmp_path / "q.json"), "--yes")
    assert done.returncode == 4 and "incomplete_needs_review" in done.stdout, done.stderr
    assert subjects_rows(world) == 0


@pytest.mark.slow
def test_attack2_the_planner_cannot_choose_the_command_apply_runs(world, tmp_path):
    staff, before = world.staff, world.tables()
    mine = tmp_path / "mine"
    mine.mkdir()
    loot = tmp_path / LOOT
    hostile = ["/bin/sh", "-c", f'cp {world.catalog.path}.key {loot}; env > {loot}.env; '
               'exec dbt "$@"', "dbt"]
    (mine / "optout.yaml").write_text(
        "dbt:\n  rebuild: command\n  command: " + json.dumps(hostile) + "\n")
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure"), cwd=mine)
    assert done.returncode == 1
    assert error_line(done).startswith(
        "Error: optout.yaml: line 1: dbt: only the deployment's configuration sets this")
    assert not loot.exists() and world.tables() == before

    # control: the admin's command is part of the plan an approver reads, and apply refuses
    # a plan made under another configuration than the one in force
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text((world.root / "deployment.yaml").read_text()
                          + "dbt:\n  rebuild: command\n  command: [dbt]\n")
    assert staff.cli("requester", "config", "set", str(deployment)).returncode == 3
    assert staff.cli("admin", "config", "set", str(deployment)).returncode == 0
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure", "-o",
                                             str(tmp_path / "p.json")))
    assert done.returncode in (0, 4), done.stderr
    shown = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure", "--format",
                                              "md")).stdout
    assert "- dbt rebuild runs: dbt build --select MODEL" in shown
    assert staff.cli("approver", "approve", str(tmp_path / "p.json")).returncode == 0
    deployment.write_text(deployment.read_text().replace("command: [dbt]",
                                                         "command: [dbt]\n  args: [--quiet]"))
    assert staff.cli("admin", "config", "set", str(deployment)).returncode == 0
    done = staff.cli("operator", "apply", str(tmp_path / "p.json"), "--yes")
    assert done.returncode == 1
    assert error_line(done) == (
        "Error: the deployment's configuration changed since the plan was made and approved "
        "(dbt): refused; plan again under the configuration in force")
    assert world.tables() == before
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure", "-o",
                                             str(tmp_path / "p2.json")))
    assert staff.cli("approver", "approve", str(tmp_path / "p2.json")).returncode == 0
    done = staff.cli("operator", "apply", str(tmp_path / "p2.json"), "--yes")
    assert done.returncode == 4 and "incomplete_needs_review" in done.stdout, done.stderr
    assert subjects_rows(world) == len([r for r in before["payments"]
                                        if world.is_subjects("payments", r)])  # retained


def test_attack6_links_bounds_and_widening_are_not_the_requesters(world, tmp_path):
    staff, before = world.staff, world.tables()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "optout.yaml").write_text(
        "identity:\n  max_keys: 3\n  links:\n    - columns: [\"orders:customer_id\", "
        "\"events:user_id\"]\n")
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure"), cwd=mine)
    assert done.returncode == 1
    assert error_line(done).startswith(
        "Error: optout.yaml: line 1: identity: only the deployment's configuration sets this")
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure",
                                             "--accept-ambiguous"))
    assert done.returncode == 3
    assert error_line(done).startswith(
        "Error: plan --accept-ambiguous: requester does not hold the role 'admin'")
    assert world.tables() == before

    # control: the admin may accept, and the plan records and shows it with the links and
    # bounds in force
    done = staff.cli("admin", *plan_args(world, "--policy", "gdpr-erasure", "--accept-ambiguous",
                                         "-o", str(tmp_path / "a.json")))
    assert done.returncode in (0, 4), done.stderr
    plan = load_plan(tmp_path / "a.json")
    assert plan.settings["accept_ambiguous"] is True
    assert plan.settings["identity"]["max_keys"] == 1
    shown = staff.cli("admin", *plan_args(world, "--policy", "gdpr-erasure",
                                          "--accept-ambiguous", "--format", "md")).stdout
    assert "- ACCEPTS AMBIGUOUS SUBJECTS (--accept-ambiguous)" in shown
    assert "- identity link: events:user_id = customers:id" in shown
    assert "- resolution bounds: max_keys 1, max_emails 3, max_phones 3" in shown


def _copy_catalog(src: str, dst: Path) -> str:
    for suffix in ("", ".key", ".audit-head"):
        if Path(src + suffix).exists():
            shutil.copy2(src + suffix, str(dst) + suffix)
    return str(dst)


def _forge(path: str, plan_hash: str) -> str:
    """Rows a catalog writer without the key inserts: an admin principal with a token of its
    own, and an approval; returns the token."""
    token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), b"s" * 16
    with duckdb.connect(path) as con:
        con.execute("INSERT INTO principals VALUES ('mallory', ['admin'], now(), 'admin', NULL)")
        con.execute("INSERT INTO tokens VALUES (?, 'mallory', ?, ?, now(), NULL, NULL, NULL)",
                    [token_id, salt, _scrypt(secret, salt)])
        con.execute("INSERT INTO approvals VALUES (?, 'x', 'approver', now(), NULL)",
                    [plan_hash])
    return f"optout_{token_id}_{secret}"


def _make_older(path: str) -> None:
    """Make the catalog look older than seals: drop every seal and the newest migrations'
    columns and tables, and their schema_version rows."""
    with duckdb.connect(path) as con:
        for table in ("principals", "tokens", "approvals", "plans", "requests",
                      "request_steps"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN mac")
        for column in ("sensitivity", "category", "evidence"):
            con.execute(f"ALTER TABLE findings DROP COLUMN {column}")
        for table in ("deployment_configs", "stored_policies", "catalog_state"):
            con.execute(f"DROP TABLE {table}")
        con.execute("DELETE FROM schema_version WHERE version >= 8")


def test_attack5_a_catalog_writer_without_the_key_cannot_launder_rows(world, tmp_path):
    staff = world.staff
    done = staff.cli("requester", *plan_args(world, "--policy", "gdpr-erasure", "-o",
                                             str(tmp_path / "p.json")))
    assert done.returncode in (0, 4), done.stderr
    plan = load_plan(tmp_path / "p.json")
    pristine = _copy_catalog(world.catalog.path, tmp_path / "pristine.duckdb")
    before = world.tables()

    mallory = _forge(world.catalog.path, plan.content_hash)
    _make_older(world.catalog.path)
    refusal = (f"Error: {world.catalog.path}: principals: rows without seals in a catalog whose "
               "schema says version 7: optout never seals rows it did not write (an old "
               "catalog, or one edited to look older); refused: start a new catalog with "
               "`optout init`")
    for role, argv in ((None, ["catalog", "list"]), ("admin", ["audit", "verify"]),
                       ("operator", ["apply", str(tmp_path / "p.json"), "--yes"])):
        done = staff.cli(role, *argv, env={"OPTOUT_TOKEN": mallory} if role is None else None)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert error_line(done) == refusal
    with duckdb.connect(world.catalog.path, read_only=True) as con:  # nothing laundered
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 7
        assert "mac" not in {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'principals'").fetchall()}
    assert world.tables() == before

    # the sealed schema version: one version back, or the state row gone, is named
    for edit, message in (
            (f"DELETE FROM schema_version WHERE version = {LATEST}",
             f"catalog_state: the schema_version table says {LATEST - 1} but the sealed state "
             f"says {LATEST}"),
            ("DELETE FROM catalog_state", "catalog_state: the sealed schema version is missing"),
            (f"UPDATE catalog_state SET schema_version = {LATEST + 1}",
             f"catalog_state row (schema_version={LATEST + 1}) does not carry this catalog's "
             "seal")):
        copy = _copy_catalog(pristine, tmp_path / f"edited-{len(message)}.duckdb")
        with duckdb.connect(copy) as con:
            con.execute(edit)
        done = Staff.__new__(Staff)
        done.catalog, done.tokens = type(world.catalog)(copy), staff.tokens
        result = done.cli("admin", "audit", "verify")
        assert result.returncode == 1 and message in error_line(result), result.stderr

    # control: forged rows without the downgrade are refused by their seals, and the
    # untouched catalog verifies and serves its real principals
    forged = _copy_catalog(pristine, tmp_path / "forged.duckdb")
    mallory = _forge(forged, plan.content_hash)
    other = Staff.__new__(Staff)
    other.catalog, other.tokens = type(world.catalog)(forged), {**staff.tokens,
                                                                "mallory": mallory}
    done = other.cli("mallory", "catalog", "list")
    assert done.returncode == 1 and "does not carry this catalog's seal" in error_line(done)
    clean = Staff.__new__(Staff)
    clean.catalog, clean.tokens = type(world.catalog)(pristine), staff.tokens
    done = clean.cli("admin", "audit", "verify")
    assert done.returncode == 0 and "chain intact" in done.stdout, done.stderr
    assert clean.cli("admin", "catalog", "list").returncode == 0


def test_a_catalog_made_before_the_sealed_state_upgrades_and_keeps_its_hashes(tmp_path):
    """Control for attack 5: a real catalog of schema version 9 (sealed rows, no state row)
    upgrades; its identifiers stay keyed with the secret itself (the keyed hashes it holds
    keep matching), and only its rows' seals, checked, carry over."""
    from optout.scanner.access.principals import add_principal, list_principals
    from optout.scanner.catalog import Catalog
    from optout.scanner.catalog.migrations import MIGRATIONS
    from optout.scanner.catalog.seal import seal

    path = tmp_path / "old.duckdb"
    secret = secrets.token_bytes(32)
    Path(str(path) + ".key").write_text(secret.hex() + "\n")
    Path(str(path) + ".key").chmod(0o600)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, description "
                    "VARCHAR, applied_at TIMESTAMP NOT NULL)")
        for version, description, ddl in MIGRATIONS[:9]:
            con.execute(ddl)
            con.execute("INSERT INTO schema_version VALUES (?, ?, now())",
                        [version, description])
        con.execute("INSERT INTO principals VALUES ('admin', ['admin'], now(), 'init', NULL)")
        seal(con, secret, "principals")
    catalog = Catalog(str(path))
    assert catalog.hasher().derived is False and catalog.hasher().secret == secret
    assert [p[0] for p in list_principals(catalog)] == ["admin"]  # upgraded on this write
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT schema_version, hash_scheme FROM catalog_state").fetchall() \
            == [(LATEST, 1)]
    add_principal(catalog, "viewer", ["viewer"], "admin")
    assert Catalog(str(path)).hasher().derived is False  # read back from the sealed state
    new = Catalog(str(tmp_path / "new.duckdb"))
    assert new.hasher().derived is True and new.hasher().secret != new.secret()
