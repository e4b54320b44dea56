"""Derived data inside the atomic unit (issue 12): an aggregate built by a SQL file beside it
is rebuilt from the *staged* versions of its sources and committed with them, in every format
apply writes; a failure inside the rebuild leaves every file as it was; a process killed
between the sources' commit and the aggregate's is resumed to a consistent state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import warehouse as wh
from conftest import throwaway_database

from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.journal import Journal
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.engine.targets import ApplyError
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog
from optout.scanner.lineage import register_lineage_file
from optout.scanner.scan import scan

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
OPTOUT = [sys.executable, "-m", "optout.cli.main"]


def _plan(catalog: Catalog, request_id: str | None = None):
    return build_plan(catalog, PlanRequest([parse_subject(f"email={wh.subject_email()}")],
                                           load_policy(POLICY), str(POLICY), request_id))


def _scanned(tmp_path: Path, fmt: str, classifier, pg: str | None = None) -> tuple[Path, Catalog]:
    root = wh.build(tmp_path / "warehouse", fmt, pg)
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    report = scan([pg if fmt == "postgresql" else str(root)], catalog, classifier=classifier)
    assert not report.failed, [r.error for r in report.results if r.error]
    if fmt == "postgresql":
        register_lineage_file(catalog, root / "customer_ltv.sql")
    return root, catalog


def _check_rebuilt(root: Path, fmt: str, pg: str | None, customers_before) -> None:
    """customer_ltv equals a recomputation from the cleaned sources; the sources lost exactly
    the subject's rows."""
    customers = wh.read(root, fmt if fmt in ("duckdb", "sqlite", "postgresql") else "parquet",
                        "customers", pg)
    orders = wh.read(root, fmt if fmt in ("duckdb", "sqlite", "postgresql") else "parquet",
                     "orders", pg)
    after = wh.read(root, fmt, "customer_ltv", pg)
    sql = wh.LTV_SQL_HIVE if fmt == "parquet-hive" else wh.LTV_SQL
    assert wh.rows(after) == wh.rows(wh.ltv({"customers": customers, "orders": orders}, sql))
    assert wh.subject_email() not in str(after.to_pylist())
    kept = [r for r in customers_before.to_pylist() if r["id"] != wh.SUBJECT]
    assert wh.rows(customers) == wh.rows(type(customers_before).from_pylist(kept))
    assert wh.SUBJECT not in orders.column("customer_id").to_pylist()


@pytest.mark.parametrize("fmt", wh.FORMATS)
def test_a_derived_dataset_is_rebuilt_in_its_own_format(tmp_path: Path, fmt: str,
                                                        classifier) -> None:
    for pg in throwaway_database() if fmt == "postgresql" else [None]:
        root, catalog = _scanned(tmp_path, fmt, classifier, pg)
        plan = _plan(catalog)
        [step] = [s for s in plan.steps if s.dataset == "customer_ltv"]
        assert step.action == "recompute" and not plan.unexecutable, plan.unexecutable
        assert {s.dataset for s in plan.steps} >= {"customers", "orders", "customer_ltv"}
        source = fmt if fmt in ("duckdb", "sqlite", "postgresql") else "parquet"
        customers = wh.read(root, source, "customers", pg)
        ltv_before = wh.read(root, fmt, "customer_ltv", pg)
        parts = sorted(p.relative_to(root) for p in root.rglob("*.parquet"))
        apply_plan(catalog, plan, ApplyOptions())
        # a folder keeps its layout: the same part files in the same partition folders (a
        # Delta table writes a new version's files through its own log)
        if fmt != "delta":
            assert sorted(p.relative_to(root) for p in root.rglob("*.parquet")) == parts
        _check_rebuilt(root, fmt, pg, customers)
        assert wh.read(root, fmt, "customer_ltv", pg).num_rows == ltv_before.num_rows - 1
        status = Journal(catalog).request(plan.request_id)["status"]
        assert status == "complete", status


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def test_a_fault_inside_the_rebuild_leaves_every_file_byte_identical(
        tmp_path: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up while the aggregate's new version is written, after every source was
    staged: everything is rolled back, every file keeps its bytes, nothing staged is left."""
    import optout.connectors.parquet.target as parquet_target

    root, catalog = _scanned(tmp_path, "parquet", classifier)
    before = _files(root)
    plan = _plan(catalog)
    real = parquet_target._write_like

    def disk_full(source, table, path, request_id, dataset):
        if dataset == "customer_ltv":
            _, fh = parquet_target.open_staged(path, request_id)
            with fh:
                fh.write(b"PAR1 half a file")
            raise OSError(28, "No space left on device")
        return real(source, table, path, request_id, dataset)

    monkeypatch.setattr(parquet_target, "_write_like", disk_full)
    with pytest.raises(ApplyError, match=r"nothing was changed: .*No space left on device"):
        apply_plan(catalog, plan, ApplyOptions())
    assert _files(root) == before
    assert not list(root.glob(".*optout-staged"))
    assert Journal(catalog).request(plan.request_id)["status"] == "rolled_back"


def test_killed_between_the_sources_and_the_aggregate_is_resumed(tmp_path: Path,
                                                                  classifier) -> None:
    """SIGKILL after the sources were committed, before the aggregate was: the aggregate's
    staged version survives; `optout resume` commits it and verifies everything."""
    root, catalog = _scanned(tmp_path, "parquet", classifier)
    customers = wh.read(root, "parquet", "customers")
    token = init_catalog(catalog)
    for role in ("requester", "approver", "operator"):
        add_principal(catalog, role, [role], "admin")
    env = {**os.environ, "OPTOUT_TOKEN": token}

    def optout(*argv: str, role_env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*OPTOUT, "--catalog", catalog.path, *argv],
                              env={**env, **(role_env or {})}, capture_output=True, text=True,
                              cwd=POLICY.parent.parent, timeout=300)  # ./policies

    plan_file = tmp_path / "plan.json"
    made = optout("plan", "--subject", f"email={wh.subject_email()}", "--policy",
                  "gdpr-erasure", "--request-id", "killed", "-o", str(plan_file),
                  role_env={"OPTOUT_TOKEN": create_token(catalog, "requester")[1]})
    assert made.returncode == 0, made.stderr
    approved = optout("approve", str(plan_file),
                      role_env={"OPTOUT_TOKEN": create_token(catalog, "approver")[1]})
    assert approved.returncode == 0, approved.stderr
    killed = optout("apply", str(plan_file), "--yes",
                    role_env={"OPTOUT_FAULT": "before-rebuild-commit"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert wh.SUBJECT not in wh.read(root, "parquet", "customers").column("id").to_pylist()
    assert wh.subject_email() in str(wh.read(root, "parquet", "customer_ltv").to_pylist())
    assert list(root.glob(".customer_ltv.parquet.killed.*.optout-staged"))
    resumed = optout("resume", "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert "request killed: complete;" in resumed.stdout
    _check_rebuilt(root, "parquet", None, customers)
    assert not list(root.glob(".*optout-staged"))


def test_views_are_read_back_or_named(tmp_path: Path, classifier) -> None:
    """A view over base tables the plan cleans is verified by reading it (residue through the
    view); a view over a table that keeps the subject (here retained under a legal basis) is a
    finding of the plan, never `verified`."""
    root = wh.build(tmp_path / "warehouse", "duckdb")
    import duckdb

    db = duckdb.connect(str(root / "warehouse.duckdb"))
    db.execute("CREATE TABLE raw_contacts AS SELECT id AS customer_id, email FROM customers")
    db.execute("CREATE VIEW big_spenders AS SELECT c.email, sum(o.amount) AS spent FROM "
               "customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.email")
    db.execute("CREATE VIEW contacts AS SELECT email FROM raw_contacts")
    db.close()
    policy = tmp_path / "keep-contacts.yaml"
    policy.write_text(POLICY.read_text().replace("match: {datasets: [payments]}",
                                                 "match: {datasets: [raw_contacts]}"))
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(root)], catalog, classifier=classifier)
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={wh.subject_email()}")],
                                           load_policy(policy), str(policy)))
    steps = {s.dataset: s for s in plan.steps}
    assert steps["raw_contacts"].action == "retain"
    assert steps["big_spenders"].kind == "view" and "contacts" not in steps
    [note] = [n for n in plan.review if n.dataset == "contacts"]
    assert note.reason.startswith("the view reads raw_contacts, which still holds the subject "
                                  "(retained: Accounting records")
    apply_plan(catalog, plan, ApplyOptions())
    journal = Journal(catalog)
    rows = {s["dataset"]: s for s in journal.steps(plan.request_id)}
    assert (rows["big_spenders"]["status"], rows["big_spenders"]["residue"]) == ("verified", 0)
    assert journal.request(plan.request_id)["status"] == "incomplete_needs_review"
