"""The signed report says exactly what was proven (issue 12): complete, complete with datasets
needing review, blocked after a partial commit (then finished by `resume`, or by `apply
--replan`), failed before commit; and a plan that cannot be carried out says so when it is
made and is never approved or applied. Every report is rendered as JSON, Markdown and HTML
(the HTML in the real headless Chromium), through the CLI as its users run it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import warehouse as wh
from browser import external_references, rendered, text_of

from optout.scanner.catalog import Catalog
from optout.scanner.scan import scan

CHANGED = {"customers": (40, 39, 1), "orders": (102, 97, 5), "tickets": (12, 11, 1),
           "events": (60, 58, 2), "customer_ltv": (40, 39, 1)}


@pytest.fixture()
def shop(tmp_path: Path, classifier) -> dict:
    root = wh.build(tmp_path / "warehouse", "parquet")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(root)], catalog, classifier=classifier)
    return {"root": root, "cli": wh.Cli(catalog.path), "tmp": tmp_path, "catalog": catalog}


def _planned(shop: dict, name: str = "plan", approve: bool = True,
             expect: int = 0) -> tuple[Path, str]:
    out = shop["tmp"] / f"{name}.json"
    made = shop["cli"]("requester", "plan", "--subject", f"email={wh.subject_email()}",
                       "--policy", "gdpr-erasure", "--request-id", name, "-o", str(out))
    assert made.returncode == expect, made.stderr
    if approve:
        approved = shop["cli"]("approver", "approve", str(out))
        assert approved.returncode == 0, approved.stderr
    return out, name


def _reports(shop: dict, rid: str) -> tuple[dict, str, str]:
    """The report as JSON (signature checked), Markdown, and the HTML as Chromium shows it."""
    cli, tmp = shop["cli"], shop["tmp"]
    js = cli("auditor", "report", rid, "--format", "json")
    assert js.returncode == 0, js.stderr
    (tmp / f"report-{rid}.json").write_text(js.stdout)
    assert cli("auditor", "report", "verify", str(tmp / f"report-{rid}.json")).returncode == 0
    md = cli("auditor", "report", rid, "--format", "md")
    html = cli("auditor", "report", rid, "--format", "html")
    assert md.returncode == 0 and html.returncode == 0
    page = tmp / f"report-{rid}.html"
    page.write_text(html.stdout)
    assert external_references(html.stdout) == []
    return json.loads(js.stdout), md.stdout, text_of(rendered(page, tmp / "profile"))


def _counts(report: dict) -> dict[str, tuple]:
    return {s["dataset"]: (s["rows_before"], s["rows_after"], s["rows_changed"])
            for s in report["steps"]}


def test_complete(shop: dict) -> None:
    plan, rid = _planned(shop)
    applied = shop["cli"]("operator", "apply", str(plan), "--yes")
    assert applied.returncode == 0, applied.stderr
    report, md, page = _reports(shop, rid)
    assert f"{report['status']}; {report['summary']}" in " ".join(applied.stdout.split())
    summary = ("erased from 5 datasets, 0 retained under legal basis; 0 residue in the "
               "5 datasets read back; physically: 3 stores rewritten (keys are not text: not "
               "searched), 2 stores read raw: clean")
    assert (report["status"], report["summary"], report["next_action"]) == (
        "complete", summary, None)
    # the physical-erasure section, per store, in every form of the report
    assert {p["status"] for p in report["physical"]} == {"verified", "rewritten"}
    assert "## Physical erasure" in md and "Physical erasure" in page
    assert report["needs_review"] == []
    assert _counts(report) == CHANGED
    assert {s["status"] for s in report["steps"]} == {"verified"}
    assert all(s["residue"] == 0 for s in report["steps"])
    assert all(s["checksum_before"].startswith("sha256:") and s["checksum_after"].startswith(
        "sha256:") and s["checksum_before"] != s["checksum_after"] for s in report["steps"])
    assert f"**complete**: {summary}" in md and "| customers | delete_rows | verified | 40 | " \
        "39 | 1 | 0 | 1 | sha256:" in md
    assert f"Status complete: {summary}" in page
    assert "customer_ltv recompute verified 40 39 1 0 1 sha256:" in page


def test_a_dataset_that_may_hold_the_subject_makes_it_incomplete(shop: dict) -> None:
    """People nothing links to the subject may include her: the request is not complete in
    any form, and `apply` exits 4 (needs review) for a script to see."""
    staff = shop["root"] / "staff.csv"
    staff.write_text("employee_id,full_name\n" + "".join(  # people nothing links to customers
        f"{n},{f} {wh.LAST[(n * 3) % 8]}\n" for n, f in enumerate(wh.FIRST * 3, 1)))
    rescanned = shop["cli"]("admin", "scan", "-q", str(shop["root"]))
    assert rescanned.returncode == 0, rescanned.stderr
    plan, rid = _planned(shop, expect=4)  # exit 4: something needs review
    applied = shop["cli"]("operator", "apply", str(plan), "--yes")
    assert applied.returncode == 4, applied.stderr
    report, md, page = _reports(shop, rid)
    assert report["status"] == "incomplete_needs_review"
    # what apply printed (from the plan it held) is the report's own status and summary
    assert f"{report['status']}; {report['summary']}" in " ".join(applied.stdout.split())
    [review] = report["needs_review"]
    assert review["dataset"] == "staff" and review["reason"].startswith("not reachable")
    assert report["summary"].startswith(
        "1 dataset may still hold the subject and was not changed: staff (not reachable: ")
    assert report["summary"].endswith(
        ". Erased from 5 datasets, 0 retained under legal basis; 0 residue in the 5 datasets "
        "read back; physically: 3 stores rewritten (keys are not text: not searched), 2 stores "
        "read raw: clean")
    assert report["next_action"] == "a person decides on the datasets needing review"
    assert _counts(report) == CHANGED
    # the datasets needing review come first, before the table of what was done
    assert md.index("May still hold the subject") < md.index("## Datasets")
    assert md.index("**staff**") < md.index("| customers |")
    assert page.index("May still hold the subject (not changed) staff") < page.index("Datasets")


@pytest.mark.slow
def test_blocked_after_a_partial_commit_then_resumed(shop: dict) -> None:
    plan, rid = _planned(shop)
    blocked = shop["cli"]("operator", "apply", str(plan), "--yes",
                          OPTOUT_FAIL_COMMIT="customer_ltv=99")
    assert blocked.returncode == 1
    assert "customer_ltv: still failing after 5 attempts" in blocked.stderr
    report, md, page = _reports(shop, rid)
    assert report["status"] == "blocked"
    assert report["summary"] == (
        "blocked: committed in 4 of 5 datasets (customers, events, orders, tickets); not "
        "committed: customer_ltv; erased from 0 datasets, 0 retained under legal basis; "
        "0 residue in the 0 datasets read back; 5 not read back; last error: customer_ltv: "
        "still failing after 5 attempts (customer_ltv: injected commit failure 6); the "
        f"request is blocked — run `optout resume {rid}`")
    assert report["next_action"].startswith(f"fix the cause, then `optout resume {rid}`")
    counts = _counts(report)
    assert {k: v for k, v in counts.items() if k != "customer_ltv"} == {
        k: v for k, v in CHANGED.items() if k != "customer_ltv"}
    [ltv] = [s for s in report["steps"] if s["dataset"] == "customer_ltv"]
    assert (ltv["status"], ltv["rows_after"], ltv["residue"], ltv["attempts"]) == (
        "checked", None, None, 6)
    assert "| customer_ltv | recompute | checked | 40 | not changed | not changed | " \
        "not read back | 6 | — |" in md
    assert "Status blocked: blocked: committed in 4 of 5 datasets" in page
    assert f"Next: fix the cause, then `optout resume {rid}`" in page
    assert wh.subject_email() in str(wh.read(shop["root"], "parquet", "customer_ltv").to_pylist())

    resumed = shop["cli"]("operator", "resume", rid)
    assert resumed.returncode == 0, resumed.stderr
    report, _, _ = _reports(shop, rid)
    assert report["status"] == "complete" and _counts(report) == CHANGED


@pytest.mark.slow
def test_blocked_then_the_remaining_work_planned_again(shop: dict) -> None:
    plan, rid = _planned(shop)
    blocked = shop["cli"]("operator", "apply", str(plan), "--yes",
                          OPTOUT_FAIL_COMMIT="customer_ltv=99")
    assert blocked.returncode == 1
    again = shop["cli"]("admin", "apply", str(plan), "--replan", "--yes")  # scans, plans
    assert again.returncode == 0, again.stderr
    assert f"request {rid} stopped blocked after part of its work" in again.stdout
    assert "- customers: no longer holds the subject" in again.stdout
    new = plan.with_suffix(".replanned.json")
    data = json.loads(new.read_text())
    assert [s["dataset"] for s in data["steps"]] == ["customer_ltv"]
    assert (data["request_id"], data["supersedes"]) == (f"{rid}.2", rid)
    assert shop["cli"]("approver", "approve", str(new)).returncode == 0
    applied = shop["cli"]("operator", "apply", str(new), "--yes")
    assert applied.returncode == 0, applied.stderr
    finished, _, _ = _reports(shop, f"{rid}.2")
    assert finished["status"] == "complete"
    old, _, page = _reports(shop, rid)
    assert old["status"] == "superseded" and old["error"] == f"finished by request {rid}.2"
    assert "Status superseded" in page
    ltv = wh.read(shop["root"], "parquet", "customer_ltv")
    assert wh.subject_email() not in str(ltv.to_pylist()) and ltv.num_rows == 39


def test_failed_before_commit(shop: dict) -> None:
    plan, rid = _planned(shop)
    orders = shop["root"] / "orders.parquet"
    before = {p.name: p.read_bytes() for p in shop["root"].iterdir()}
    subprocess.run(["chattr", "+i", str(orders)], check=True)
    try:
        failed = shop["cli"]("operator", "apply", str(plan), "--yes")
    finally:
        subprocess.run(["chattr", "-i", str(orders)], check=True)
    assert failed.returncode == 1
    assert {p.name: p.read_bytes() for p in shop["root"].iterdir()} == before
    report, md, page = _reports(shop, rid)
    reason = f"orders: {orders} is not writable (Operation not permitted)"
    assert (report["status"], report["summary"], report["next_action"]) == (
        "rolled_back", f"failed before commit, nothing was changed: {reason}",
        "fix the cause, then apply the plan again (`optout apply PLAN`)")
    assert all(s["rows_after"] is None and s["residue"] is None for s in report["steps"])
    assert "| orders | delete_rows | pending | not changed |" in md
    assert "Status rolled_back: failed before commit, nothing was changed" in page
    # fixed: the same approved plan applies (a rolled-back run changed nothing)
    applied = shop["cli"]("operator", "apply", str(plan), "--yes")
    assert applied.returncode == 0, applied.stderr


def test_a_plan_that_cannot_be_carried_out_says_so_and_is_never_applied(shop: dict) -> None:
    """A revenue aggregate (no identifiers of its own) whose SQL reads a table the catalog
    does not know: it cannot be rebuilt and has no rows to delete instead."""
    root = shop["root"]
    (root / "revenue.sql").write_text(
        "CREATE TABLE revenue AS SELECT r.region, sum(o.amount) AS total FROM orders o "
        "JOIN regions r ON r.customer_id = o.customer_id GROUP BY r.region;\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"region": ["north", "south"], "total": [1.0, 2.0]}),
                   root / "revenue.parquet")
    assert shop["cli"]("admin", "scan", "-q", str(root)).returncode == 0
    plan, _ = _planned(shop, approve=False, expect=4)
    made = shop["cli"]("requester", "plan", "--subject", f"email={wh.subject_email()}",
                       "--policy", "gdpr-erasure", "--format", "md")
    assert made.returncode == 4
    why = "revenue: it reads regions, which is not in the catalog"
    assert "CANNOT BE APPLIED: 1 step(s) cannot be carried out (revenue: no SQL to rebuild it " \
        "from" in made.stderr and "it reads regions, which is not in the catalog" in made.stderr
    assert "## Cannot be applied" in made.stdout
    approve = shop["cli"]("approver", "approve", str(plan))
    assert approve.returncode != 0 and "cannot be applied (revenue" in approve.stderr
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    applied = shop["cli"]("admin", "apply", str(plan), "--yes")
    assert applied.returncode == 1 and "the plan cannot be applied" in applied.stderr
    assert why.split(": ", 1)[1] in applied.stderr
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before
