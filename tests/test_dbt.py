"""A real dbt project (fixtures/dbt_shop: seeds with people, staging views with ref(), an
ephemeral model, marts as tables, an incremental model, tests), built with dbt-duckdb, scanned,
and a customer erased from it: gone from every model and seed, nobody else changed, the marts
equal to what `dbt build` makes of the cleaned seeds, and the project's own tests passing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dbt_projects import DBT, copy_project, keep_pristine, run_dbt, seed_rows

from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.journal import Journal
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.model.plan import load_plan
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.scan import scan

PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "dbt_shop"
POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
SUBJECT_ID = 7
MODELS = ("customers", "orders", "order_events", "stg_customers", "stg_orders")


def dbt(project: Path, database: Path, *args: str) -> subprocess.CompletedProcess:
    """Run dbt in a project folder against one DuckDB file."""
    return run_dbt(project, {"SHOP_DUCKDB": str(database)}, *args)


def build(root: Path) -> Path:
    """A copy of the project, built (`dbt build`: seeds, models, tests) into shop.duckdb."""
    dbt(copy_project(PROJECT, root), root / "shop.duckdb", "build")
    return root


def payments_of_subject(root: Path) -> int:
    """The subject's payments, by the project's meaning: raw_payments.order_id is an order's
    id (no dbt relation or foreign key says so)."""
    orders = {r["id"] for r in seed_rows(root, "raw_orders") if r["user_id"] == str(SUBJECT_ID)}
    return sum(1 for r in seed_rows(root, "raw_payments") if r["order_id"] in orders)


def assert_payments_named_for_review(n: int, plan) -> None:
    """Both forms of raw_payments (the seed CSV, the table) hold the erased orders' ids: named
    for review with how many rows (`n`), never erased on a column name's word."""
    assert n and [(r.dataset, r.reason.split(",")[0]) for r in plan.review] == [
        ("raw_payments", f"{n} rows hold")] * 2


def table(database: Path, name: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr)


@pytest.fixture(scope="module")
def erased(tmp_path_factory: pytest.TempPathFactory, classifier: Classifier):
    """The project built, scanned, and the subject erased; with a copy of it as it was."""
    tmp = tmp_path_factory.mktemp("dbt")
    root = build(tmp / "shop")
    before = keep_pristine(root)
    catalog = Catalog(str(tmp / "catalog.duckdb"))
    report = scan([str(root)], catalog, classifier=classifier)
    subject = next(r for r in seed_rows(root, "raw_customers") if r["id"] == str(SUBJECT_ID))
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={subject['email']}")],
                                           load_policy(POLICY), str(POLICY)))
    apply_plan(catalog, plan, ApplyOptions())
    return root, before, catalog, report, plan, subject


def test_the_scan_reads_the_manifest_not_the_artifacts(erased) -> None:
    _, _, catalog, report, _, _ = erased
    assert not report.failed and report.lineage_errors == []
    files = [d.location for d in catalog.datasets() if d.kind == "file"]
    assert files and not [f for f in files if "/target/" in f or "/logs/" in f]
    edges = {(e["upstream"], e["downstream"], e["origin"]) for e in catalog.lineage()
             if e["origin"] == "dbt"}
    # the manifest's relation edges (the ephemeral order_amounts inlined into orders), and
    # each seed's CSV linked to its table
    assert {(u, d) for u, d, _ in edges} == {
        ("raw_customers", "stg_customers"), ("raw_orders", "stg_orders"),
        ("raw_payments", "stg_payments"), ("stg_orders", "orders"), ("stg_payments", "orders"),
        ("stg_customers", "customers"), ("orders", "customers"), ("stg_orders", "order_events"),
        ("raw_customers", "raw_customers"), ("raw_orders", "raw_orders"),
        ("raw_payments", "raw_payments")}
    customers = next(e for e in catalog.lineage() if e["origin"] == "dbt"
                     and (e["upstream"], e["downstream"]) == ("stg_customers", "customers"))
    assert customers["columns"]["email"] == {"from": ["email"], "kind": "copied"}


def test_columns_the_project_declares_personal_are_flagged(erased) -> None:
    _, _, catalog, _, _, _ = erased
    mart = next(d for d in catalog.datasets() if d.name == "customers" and d.format == "duckdb")
    cols = {c.name: c for c in mart.columns}
    assert cols["first_order"].pii and not cols["first_order"].identifier
    assert cols["first_order"].evidence == "declared: dbt meta of model.shop.customers"
    assert cols["email"].evidence != "declared: dbt meta of model.shop.customers"  # found


def test_the_plan_rebuilds_the_mart_and_erases_seeds_and_the_incremental_model(erased) -> None:
    _, _, _, _, plan, _ = erased
    steps = {(s.dataset, s.format): s for s in plan.steps}
    assert steps[("customers", "duckdb")].action == "recompute"
    assert steps[("customers", "duckdb")].param("sql")  # its compiled SQL, bound
    assert steps[("order_events", "duckdb")].action == "delete_rows"
    assert steps[("raw_customers", "csv")].action == "delete_rows"
    assert steps[("raw_orders", "csv")].action == "delete_rows"
    assert not plan.unexecutable


def test_the_subject_is_gone_from_every_model_and_seed(erased) -> None:
    root, before, catalog, _, plan, subject = erased
    db = root / "shop.duckdb"
    assert str(SUBJECT_ID) not in {r["id"] for r in seed_rows(root, "raw_customers")}
    assert str(SUBJECT_ID) not in {r["user_id"] for r in seed_rows(root, "raw_orders")}
    for name in ("raw_customers", "stg_customers", "customers"):
        assert subject["email"] not in {r for row in table(db, name) for r in row}
    for name, key in (("raw_orders", "user_id"), ("stg_orders", "customer_id"),
                      ("orders", "customer_id"), ("order_events", "customer_id")):
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute(f"SELECT count(*) FROM {name} WHERE {key} = ?",
                               [SUBJECT_ID]).fetchone() == (0,)
    assert_payments_named_for_review(payments_of_subject(before), plan)
    assert Journal(catalog).request(plan.request_id)["status"] == "incomplete_needs_review"


def test_nobody_else_changed(erased) -> None:
    root, before, _, _, _, _ = erased
    for name, key in (("raw_customers", "id"), ("raw_orders", "user_id")):
        kept = [r for r in seed_rows(before, name) if r[key] != str(SUBJECT_ID)]
        assert seed_rows(root, name) == kept
    assert (root / "seeds" / "raw_payments.csv").read_bytes() == (
        before / "seeds" / "raw_payments.csv").read_bytes()
    for name, col in (("raw_customers", 0), ("raw_orders", 1), ("order_events", 1)):
        assert table(root / "shop.duckdb", name) == [
            r for r in table(before / "shop.duckdb", name) if r[col] != SUBJECT_ID]


def test_the_marts_equal_a_dbt_build_from_the_cleaned_seeds(erased, tmp_path: Path) -> None:
    root, _, _, _, _, _ = erased
    fresh = tmp_path / "fresh"
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    dbt(fresh, fresh / "shop.duckdb", "build")
    for name in MODELS:
        assert table(root / "shop.duckdb", name) == table(fresh / "shop.duckdb", name), name


def test_the_projects_own_tests_pass_after_the_erasure(erased) -> None:
    root, _, _, _, _, _ = erased
    done = dbt(root, root / "shop.duckdb", "test")
    assert "PASS=" in done.stdout and "ERROR=0" in done.stdout


def test_lineage_add_dbt_through_the_cli(erased, tmp_path: Path, classifier: Classifier) -> None:
    """A manifest registered by hand (the database scanned alone, not the project folder);
    the command needs the scanner role."""
    from optout.scanner.access.principals import add_principal, create_token, init_catalog

    root, _, _, _, _, _ = erased
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(root / "shop.duckdb"), str(root / "seeds")], catalog, classifier=classifier)
    admin = init_catalog(catalog)
    add_principal(catalog, "viewer", ["viewer"], "admin")
    viewer = create_token(catalog, "viewer")[1]

    def cli(token: str, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "optout.cli.main", "--catalog", catalog.path,
                               *argv], capture_output=True, text=True, timeout=120,
                              cwd=PROJECT.parent.parent, env={**os.environ,
                                                              "OPTOUT_TOKEN": token})

    manifest = root / "target" / "manifest.json"
    assert cli(viewer, "lineage", "add-dbt", str(manifest)).returncode == 3
    done = cli(admin, "lineage", "add-dbt", str(manifest))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{manifest}: 11 lineage edges"
    assert cli(admin, "lineage", "add-dbt", str(root)).stdout.strip() == (
        f"{root}: 11 lineage edges")  # the project folder: the same manifest, edges replaced
    assert len([e for e in catalog.lineage() if e["origin"] == "dbt"]) == 11


def planned_with_command(tmp_path: Path, classifier: Classifier,
                         monkeypatch: pytest.MonkeyPatch, command: str):
    """The project built and scanned, the customer planned under `dbt: {rebuild: command}`
    with `command` as the dbt executable: (project root, catalog, plan, config)."""
    from optout.scanner.config import load_config

    root = build(tmp_path / "shop")
    monkeypatch.setenv("SHOP_DUCKDB", str(root / "shop.duckdb"))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    config_file = tmp_path / "optout.yaml"
    config_file.write_text(f"dbt:\n  rebuild: command\n  command: ['{command}']\n")
    config = load_config(str(config_file))
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(root)], catalog, classifier=classifier)
    subject = next(r for r in seed_rows(root, "raw_customers") if r["id"] == str(SUBJECT_ID))
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={subject['email']}")],
                                           load_policy(POLICY), str(POLICY)), config)
    return root, catalog, plan, config


@pytest.mark.slow
def test_a_mart_is_rebuilt_by_dbt_itself_when_the_config_says_so(
        tmp_path: Path, classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dbt: {rebuild: command}`: the mart is rebuilt by `dbt build --select customers` once
    its sources are committed, then read back."""
    root, catalog, plan, config = planned_with_command(tmp_path, classifier, monkeypatch,
                                                       str(DBT))
    mart = next(s for s in plan.steps if (s.dataset, s.format) == ("customers", "duckdb"))
    assert (mart.action, mart.param("rebuild"), mart.param("dbt_model")) == (
        "recompute", "dbt", "customers")
    assert mart.param("dbt_project") == str(root)
    payments = payments_of_subject(root)
    apply_plan(catalog, plan, ApplyOptions(config=config))
    journal = Journal(catalog)
    assert_payments_named_for_review(payments, plan)
    assert journal.request(plan.request_id)["status"] == "incomplete_needs_review"
    [row] = [s for s in journal.steps(plan.request_id) if s["dataset_id"] == mart.dataset_id]
    assert (row["status"], row["residue"]) == ("verified", 0)
    fresh = tmp_path / "fresh"
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    dbt(fresh, fresh / "shop.duckdb", "build")
    for name in MODELS:
        assert table(root / "shop.duckdb", name) == table(fresh / "shop.duckdb", name), name


def test_a_failing_dbt_build_blocks_the_request_by_name(
        tmp_path: Path, classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    from optout.engine.targets import ApplyError

    _, catalog, plan, config = planned_with_command(tmp_path, classifier, monkeypatch, "false")
    with pytest.raises(ApplyError, match="dbt build --select customers failed"):
        apply_plan(catalog, plan, ApplyOptions(config=config))
    assert Journal(catalog).request(plan.request_id)["status"] == "blocked"


@pytest.mark.slow
def test_attack3_a_dbt_project_edited_after_approval_runs_nothing(
        tmp_path: Path, classifier: Classifier) -> None:
    """Issue 26, attack 3: someone who can write the dbt folder (no optout role) adds an
    `on-run-start` hook after the plan was approved; the hook would read the catalog's key
    file and the operator's environment. Apply refuses the build by the file's name and
    changes nothing. Control: the project as approved is built, with a minimal environment
    (the admin's wrapper command records what dbt was given: no OPTOUT_TOKEN)."""
    from staff import Staff, error_line

    root = build(tmp_path / "shop")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(root)], catalog, classifier=classifier)
    staff = Staff(catalog)
    seen = tmp_path / "dbt-env.txt"
    wrapper = ["/bin/sh", "-c", f'env > {seen}; exec {DBT} "$@"', "dbt"]
    (tmp_path / "deployment.yaml").write_text(
        f"dbt:\n  rebuild: command\n  command: {json.dumps(wrapper)}\n")
    assert staff.cli("admin", "config", "set", str(tmp_path / "deployment.yaml")).returncode == 0
    subject = next(r for r in seed_rows(root, "raw_customers") if r["id"] == str(SUBJECT_ID))
    plan_file = tmp_path / "plan.json"
    done = staff.cli("requester", "plan", "--subject", f"email={subject['email']}", "--policy",
                     "gdpr-erasure", "-o", str(plan_file))
    assert done.returncode == 4, done.stderr  # raw_payments named for review
    assert staff.cli("approver", "approve", str(plan_file)).returncode == 0
    before = {name: table(root / "shop.duckdb", name) for name in MODELS}

    project = root / "dbt_project.yml"
    approved = project.read_text()
    loot = tmp_path / "loot.csv"
    project.write_text(approved + "on-run-start:\n  - \"COPY (SELECT * FROM read_text('"
                       f"{catalog.path}.key')) TO '{loot}'\"\n")
    done = staff.cli("operator", "apply", str(plan_file), "--yes",
                     env={"SHOP_DUCKDB": str(root / "shop.duckdb")})
    assert done.returncode == 1
    assert error_line(done) == (
        "Error: nothing was changed: customers: the dbt project changed since the plan was "
        "made and approved (dbt_project.yml): refused; plan again")
    assert not loot.exists() and not seen.exists()
    assert {name: table(root / "shop.duckdb", name) for name in MODELS} == before
    assert [r["id"] for r in seed_rows(root, "raw_customers")].count(str(SUBJECT_ID)) == 1

    # a plan made with the hook in place does not run dbt: hooks need the admin's consent,
    # so the mart's rows are deleted in place instead of rebuilt
    done = staff.cli("requester", "plan", "--subject", f"email={subject['email']}", "--policy",
                     "gdpr-erasure", "-o", str(tmp_path / "hooked.json"))
    assert done.returncode == 4, done.stderr
    [mart] = [s for s in load_plan(tmp_path / "hooked.json").steps
              if (s.dataset, s.format) == ("customers", "duckdb")]
    assert mart.action == "delete_rows" and mart.param("rebuild") is None
    assert "runs hooks of its own (dbt_project.yml: on-run-start)" in mart.rule

    # control: the project as approved builds, and dbt never saw optout's token
    project.write_text(approved)
    done = staff.cli("operator", "apply", str(plan_file), "--yes")
    assert done.returncode == 4, done.stderr  # raw_payments: rows it leaves, named
    assert "incomplete_needs_review" in done.stdout
    assert not loot.exists()
    given = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert "PATH" in given and not [k for k in given if k.startswith("OPTOUT_")]
    assert [r["id"] for r in seed_rows(root, "raw_customers")].count(str(SUBJECT_ID)) == 0
