"""Apply end to end on the fixture company, and what must hold when things go wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apply_world import World, digests, recomputed_ltv

from optout.engine.apply import ApplyOptions, StalePlan, apply_plan, resume
from optout.engine.erasure_report import ReportError, build_report, verify_report
from optout.engine.journal import Journal
from optout.engine.plan_store import record_plan
from optout.engine.targets import ApplyError
from optout.model.plan import PlanError, load_plan

OPTOUT = [sys.executable, "-m", "optout.cli.main"]


@pytest.fixture()
def world(pristine_world) -> World:
    return pristine_world.world()


def assert_erased(world: World, before: dict[str, list[tuple]]) -> None:
    """The subject is gone everywhere; every other row is byte-identical; derived tables equal
    a recomputation from the cleaned sources."""
    after = world.tables()
    for name, rows in before.items():
        if name in ("customer_ltv", "daily_revenue"):
            continue
        theirs = [r for r in rows if world.is_subjects(name, r)]
        others = [r for r in rows if not world.is_subjects(name, r)]
        kept_others = [r for r in after[name] if not world.is_subjects(name, r)]
        assert digests(kept_others) == digests(others), f"{name}: other rows changed"
        left = [r for r in after[name] if world.is_subjects(name, r)]
        if name == "payments":  # retained under its legal basis, card and IBAN hashed
            assert len(left) == len(theirs) == 1
            assert left[0][3] != theirs[0][3] and left[0][4] != theirs[0][4]
        else:
            assert not left, f"{name}: {len(left)} rows of the subject remain"
    assert sorted(after["customer_ltv"]) == sorted(recomputed_ltv(world))
    assert world.subject["id"] not in {r[0] for r in after["customer_ltv"]}
    assert not world.staged_files()


def test_apply_end_to_end(world: World, tmp_path: Path) -> None:
    before = world.tables()
    plan = world.plan(request_id="e2e")
    rid = apply_plan(world.catalog, plan, ApplyOptions())
    assert_erased(world, before)
    report = build_report(world.catalog, rid)
    assert report["status"] == "incomplete_needs_review"
    assert report["summary"].startswith(
        "3 datasets may still hold the subject and were not changed: employees (not reachable")
    assert report["summary"].endswith(
        "Erased from 10 datasets, 1 retained under legal basis; 0 residue in the 11 datasets "
        "read back; physically: 5 stores rewritten (keys are not text: not searched), 3 "
        "stores read raw: clean")
    assert {p["status"] for p in report["physical"]} == {"verified", "rewritten"}
    assert [n["dataset"] for n in report["needs_review"]] == ["employees", "it_staff", "payroll"]
    steps = {s["dataset"]: s for s in report["steps"]}
    assert steps["orders"]["rows_changed"] == 2 and steps["orders"]["residue"] == 0
    assert steps["customers"]["checksum_before"] != steps["customers"]["checksum_after"]
    path = tmp_path / "report.json"
    import json

    path.write_text(json.dumps(report))
    assert verify_report(world.catalog, str(path))["request_id"] == "e2e"
    text = path.read_text()
    assert world.subject["email"] not in text
    path.write_text(text.replace('"incomplete_needs_review"', '"blocked"', 1))
    with pytest.raises(ReportError, match="signature does not match"):
        verify_report(world.catalog, str(path))


def test_dry_run_changes_nothing(world: World) -> None:
    before = world.tables()
    rid = apply_plan(world.catalog, world.plan(), ApplyOptions(dry_run=True))
    assert world.tables() == before
    assert Journal(world.catalog).request(rid)["status"] == "dry_run"
    assert not world.staged_files()




def test_a_failing_target_is_retried_until_it_succeeds(world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = world.tables()
    monkeypatch.setenv("OPTOUT_FAIL_COMMIT", "orders=3")
    rid = apply_plan(world.catalog, world.plan(), ApplyOptions(backoff=0.01))
    assert_erased(world, before)
    steps = {s["dataset"]: s for s in Journal(world.catalog).steps(rid)}
    assert steps["orders"]["attempts"] == 4 and steps["orders"]["status"] == "verified"


def test_a_target_that_keeps_failing_blocks_the_request(world: World,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    before = world.tables()
    monkeypatch.setenv("OPTOUT_FAIL_COMMIT", "orders=10")
    plan = world.plan()
    with pytest.raises(ApplyError, match="still failing after 2 attempts"):
        apply_plan(world.catalog, plan, ApplyOptions(backoff=0.01, retries=2))
    assert Journal(world.catalog).request(plan.request_id)["status"] == "blocked"
    monkeypatch.setenv("OPTOUT_FAIL_COMMIT", "")
    resume(world.catalog, plan.request_id, ApplyOptions(backoff=0.01))
    assert Journal(world.catalog).request(plan.request_id)["status"] == "incomplete_needs_review"
    assert_erased(world, before)


@pytest.mark.parametrize("point", ["after-prepare", "after-check", "mid-commit",
                                   "mid-file-commit", "before-rebuild-commit", "before-verify"])
def test_killed_at_each_phase_then_resumed(world: World, point: str) -> None:
    before = world.tables()
    plan = world.plan(request_id=f"kill-{point}")
    if point == "mid-file-commit":  # the subject's orders must span several part files
        orders = next(s for s in plan.steps if s.dataset == "orders")
        assert orders.rows == 2
    path = world.write_plan(plan)
    world.approve(plan)
    run = world.cli("apply", str(path), "--yes", env={"OPTOUT_FAULT": point})
    assert run.returncode == -9, run.stdout + run.stderr
    status = Journal(world.catalog).request(plan.request_id)["status"]
    if point in ("after-prepare", "after-check"):
        assert status == "preparing"
        assert world.tables() == before  # nothing visible before commit
    # every file is whole at every point: each dataset reads back completely
    assert set(world.tables()) == set(before)
    resumed = world.cli("resume", plan.request_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "complete" in resumed.stdout
    assert_erased(world, before)


def test_two_concurrent_applies(world: World) -> None:
    import pyarrow.parquet as pq

    before = world.tables()
    other = pq.read_table(world.data / "crm" / "customers.parquet").to_pylist()[20]
    first = world.write_plan(world.plan(request_id="first"))
    second = world.write_plan(world.plan(request_id="second",
                                         subjects=[f"email={other['email']}"]))
    for p in (first, second):
        world.approve(load_plan(p))
    procs = [subprocess.Popen([*OPTOUT, "--catalog", world.catalog.path, "apply", str(p),
                               "--yes", "--lease-wait", "120"], cwd=world.root, env=world.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p in (first, second)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [4, 4], outputs  # employees etc. need review
    after = world.tables()
    assert not [r for r in after["customers"] if r[0] in (world.subject["id"], other["id"])]
    assert len(after["customers"]) == len(before["customers"]) - 2
    assert not world.staged_files()


def test_tampered_stale_and_foreign_plans_are_refused(world: World) -> None:
    before = world.tables()
    plan = world.plan()
    path = world.write_plan(plan)
    path.write_text(path.read_text().replace('"rows": 2', '"rows": 3', 1))
    run = world.cli("apply", str(path), "--yes")
    assert run.returncode == 1 and "the plan was altered" in run.stderr
    from dataclasses import replace

    foreign = replace(plan.steps[0], dataset_id="000000000000", dataset="elsewhere")
    bad = replace(plan, steps=(foreign, *plan.steps[1:])).sealed()
    with pytest.raises(PlanError, match="MAC does not match this catalog"):
        apply_plan(world.catalog, bad, ApplyOptions(caller=world.admin))
    bad = record_plan(world.catalog, bad)  # past the record (a holder of the key file)
    with pytest.raises(StalePlan, match=r"'elsewhere'.*not in the catalog"):
        apply_plan(world.catalog, bad, ApplyOptions(caller=world.admin))
    (world.data / "web" / "events.jsonl").write_text(
        (world.data / "web" / "events.jsonl").read_text() + "\n")
    with pytest.raises(StalePlan, match="events changed since the plan was made"):
        apply_plan(world.catalog, plan, ApplyOptions(caller=world.admin))
    after = world.tables()
    assert {k: v for k, v in after.items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"}
    with pytest.raises(PlanError):
        from optout.model.plan import load_plan

        load_plan(path)


def test_database_gone_mid_request_changes_nothing(world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    import optout.engine.apply as engine_apply

    before = world.tables()
    plan = world.plan()
    admin = psycopg.connect(world.pg.rsplit("/", 1)[0] + "/postgres", autocommit=True)
    name = world.pg.rsplit("/", 1)[1]
    real_check = engine_apply.check_plan

    def check_then_vanish(catalog, plan) -> None:
        real_check(catalog, plan)  # the database is there when the request starts ...
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')  # ... then goes

    monkeypatch.setattr(engine_apply, "check_plan", check_then_vanish)
    try:
        with pytest.raises(ApplyError, match=r"nothing was changed: .*(cannot connect|connection failed)"):
            apply_plan(world.catalog, plan, ApplyOptions())
    finally:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        admin.close()
    assert world.tables() == before
    assert not world.staged_files()
    assert Journal(world.catalog).request(plan.request_id)["status"] == "rolled_back"
    with pytest.raises(StalePlan, match="cannot read it to check the plan"):
        admin = psycopg.connect(world.pg.rsplit("/", 1)[0] + "/postgres", autocommit=True)
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        monkeypatch.setattr(engine_apply, "check_plan", real_check)
        apply_plan(world.catalog, plan, ApplyOptions())
    admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    admin.close()


def test_a_restored_copy_is_found_and_erased_again(world: World) -> None:
    import shutil

    import pyarrow.parquet as pq

    backup = world.root / "backup-customers.parquet"
    shutil.copy(world.data / "crm" / "customers.parquet", backup)  # taken before the erasure
    apply_plan(world.catalog, world.plan(), ApplyOptions(config=world.config))
    restored = world.data / "crm" / "restored"
    restored.mkdir()
    shutil.copy(backup, restored / "customers_restored.parquet")
    scanned = world.cli("scan", "-q", str(restored))
    assert scanned.returncode == 0, scanned.stderr
    assert "Warning: erased subjects found again in customers_restored" in scanned.stderr
    assert ": 1 rows" in scanned.stderr
    held = world.cli("apply", "--reapply", "--policy",
                     str(Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"),
                     "--yes")
    assert held.returncode == 0 and "needs 1 approval(s)" in held.stdout, held.stdout + held.stderr
    [path] = world.root.glob("reapply-*.json")
    world.approve(load_plan(path))
    again = world.cli("apply", str(path), "--yes")
    assert again.returncode == 4, again.stdout + again.stderr  # employees etc. need review
    assert "incomplete_needs_review" in again.stdout
    rows = pq.read_table(restored / "customers_restored.parquet").to_pylist()
    assert world.subject["email"] not in {r["email"] for r in rows}
    assert len(rows) == 399


def test_a_read_only_file_stops_the_request_before_any_change(world: World) -> None:
    before = world.tables()
    plan = world.plan()
    locked = world.data / "support" / "tickets.jsonl"
    # The tests run as root, whom file modes do not stop: the immutable attribute does.
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        with pytest.raises(ApplyError, match=r"nothing was changed: tickets: .*tickets.jsonl "
                                             r"is not writable \(Operation not permitted\)"):
            apply_plan(world.catalog, plan, ApplyOptions())
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert world.tables() == before
    assert not world.staged_files()


def test_verification_reads_datasets_outside_the_plan(world: World) -> None:
    from dataclasses import replace

    plan = world.plan()
    partial = replace(plan, steps=tuple(s for s in plan.steps if s.dataset != "events")).sealed()
    partial = record_plan(world.catalog, partial)  # as if the planner had missed events
    with pytest.raises(ApplyError, match=r"outside the plan in events \(8 rows\)"):
        apply_plan(world.catalog, partial, ApplyOptions(config=world.config))
    assert Journal(world.catalog).request(partial.request_id)["status"] == "blocked"


@pytest.mark.slow
def test_replan_when_the_data_changed(world: World) -> None:
    import json

    plan = world.plan(request_id="replanned")
    path = world.write_plan(plan)
    events = world.data / "web" / "events.jsonl"
    copy = json.loads(next(line for line in events.read_text().splitlines()
                           if json.loads(line)["user_id"] == world.subject["id"]))
    copy["event_id"] = "00000000-0000-4000-8000-000000000000"
    events.write_text(events.read_text() + json.dumps(copy) + "\n")  # a pipeline wrote more
    refused = world.cli("apply", str(path), "--yes")
    assert refused.returncode == 1 and "events changed since the plan was made" in refused.stderr
    replanned = world.cli("apply", str(path), "--yes", "--replan")
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    assert "~ events: delete_rows 8 rows → delete_rows 9 rows" in replanned.stdout
    new = path.with_suffix(".replanned.json")
    world.approve(load_plan(new))
    again = world.cli("apply", str(new), "--yes")
    assert again.returncode == 4, again.stdout + again.stderr  # employees etc. need review
    assert "incomplete_needs_review" in again.stdout
    assert not [r for r in world.tables()["events"] if r[1] == world.subject["id"]]


def test_a_sql_file_swapped_after_planning_is_not_run(world: World) -> None:
    """Issue 11, attack 3: after the plan was made (and approved), the SQL file a derived table
    is rebuilt from is swapped for one that reads the catalog's key into the table. Apply runs
    the SELECT the plan carries: the derived table equals a recomputation from the original
    SQL, and the key is nowhere in it."""
    before = world.tables()
    plan = world.plan(request_id="swapped-sql")
    sql = world.data / "analytics" / "customer_ltv.sql"
    original = sql.read_text()
    key = Path(world.catalog.path + ".key")
    assert key.exists()
    sql.write_text("CREATE TABLE customer_ltv AS SELECT 1 AS customer_id, content AS email, "
                   f"0.0 AS lifetime_value, 0 AS orders_count FROM read_text('{key}');\n")
    apply_plan(world.catalog, plan, ApplyOptions())
    sql.write_text(original)  # for the recomputation the check compares with
    assert_erased(world, before)
    assert key.read_text().strip() not in repr(world.tables()["customer_ltv"])


@pytest.mark.parametrize("source", ["read_text('{key}')", "read_text('/proc/self/environ')"])
def test_rebuild_sql_that_reads_files_or_the_environment_is_refused(world: World,
                                                                     source: str) -> None:
    """Issue 11, attack 3 at plan time: the SQL file already reads the catalog's key and the
    process environment when the plan is made. The rebuild runs where nothing but the
    datasets it was bound to can be read: the plan says it cannot be rebuilt and falls back to
    deleting the subject's rows of the table, and neither secret reaches the data. (The sandbox
    that would stop the read anyway is tested on its own in test_sandbox.py.)"""
    sql = world.data / "analytics" / "customer_ltv.sql"
    key = Path(world.catalog.path + ".key")
    sql.write_text("CREATE TABLE customer_ltv AS SELECT c.id AS customer_id, k.content AS "
                   "email, 0.0 AS lifetime_value, 0 AS orders_count FROM customers c, "
                   f"{source.format(key=key)} k;\n")
    [warning] = world.rescan_lineage()  # named at scan time already
    assert warning.startswith(f"{sql.resolve()}: it calls READ_TEXT(")
    plan = world.plan(request_id="reads")
    [step] = [s for s in plan.steps if s.dataset == "customer_ltv"]
    assert step.action == "delete_rows"
    assert "(cannot be rebuilt: no SQL to rebuild it from" in step.rule
    assert "a rebuild reads catalog datasets only); the subject's rows are deleted" in step.rule
    before = world.tables()["customer_ltv"]
    apply_plan(world.catalog, plan, ApplyOptions())
    ltv = repr(world.tables()["customer_ltv"])
    assert len(world.tables()["customer_ltv"]) == len(before) - 1
    assert key.read_text().strip() not in ltv and "PATH=" not in ltv
