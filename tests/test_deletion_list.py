"""A deletion list in one request (issue 32), through the CLI as a user runs it: the rows
optout leaves are exactly the rows the bare floor leaves (two DuckDB `COPY ... WHERE id NOT IN
(SELECT id FROM gone)`), the plan's per-subject detail is one sealed columnar table, and the
report stays readable (its first subjects, then one subject's part on demand)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import warehouse as wh

from fixtures.deletion_list import (
    fingerprint,
    floor_code,
    subject_ids,
    subject_lines,
    write_data,
    write_ids,
)
from optout.model.plan import PlanError, load_plan
from optout.scanner.catalog import Catalog
from optout.scanner.scan import scan

CUSTOMERS, ORDERS, SUBJECTS = 20_000, 40_000, 400


@pytest.fixture(scope="module")
def erased(tmp_path_factory: pytest.TempPathFactory, classifier) -> dict:
    """The data erased by optout (plan, approve, apply through the CLI) and by the floor."""
    tmp = tmp_path_factory.mktemp("deletion-list")
    write_data(tmp / "original", CUSTOMERS, ORDERS)
    ids = subject_ids(CUSTOMERS, SUBJECTS)
    floor = tmp / "floor"
    floor.mkdir()
    subprocess.run([sys.executable, "-c", floor_code(tmp / "original", write_ids(
        ids, tmp / "gone.csv"), floor)], check=True)
    shutil.copytree(tmp / "original", tmp / "data")
    catalog = Catalog(str(tmp / "catalog.duckdb"))
    scan([str(tmp / "data")], catalog, classifier=classifier)
    cli = wh.Cli(catalog.path)
    listed = tmp / "subjects.txt"
    listed.write_text("# a month of requests\n" + "\n".join(subject_lines(ids)) + "\n")
    plan = tmp / "plan.json"
    made = cli("requester", "plan", "--subjects-file", str(listed), "--policy", "gdpr-erasure",
               "--request-id", "deletion-list", "-o", str(plan))
    assert made.returncode == 0, made.stderr
    assert cli("approver", "approve", str(plan)).returncode == 0
    applied = cli("operator", "apply", str(plan), "--yes")
    assert applied.returncode == 0, applied.stderr
    return {"tmp": tmp, "cli": cli, "plan": plan, "floor": floor, "ids": ids,
            "applied": applied.stdout}


def test_the_rows_left_are_the_floors_rows(erased: dict) -> None:
    tmp = erased["tmp"]
    left, floor = fingerprint(tmp / "data"), fingerprint(erased["floor"])
    assert left == floor
    # the control: the floor did remove rows (a run that erased nothing would fail above)
    before = fingerprint(tmp / "original")
    assert before["customers.parquet"][0] - floor["customers.parquet"][0] == SUBJECTS
    assert before["orders.parquet"][0] > floor["orders.parquet"][0]
    assert "complete" in erased["applied"]


def test_the_per_subject_detail_is_one_sealed_table(erased: dict, tmp_path: Path) -> None:
    plan = load_plan(erased["plan"])
    assert len(plan.subjects) == SUBJECTS
    assert [r.status for r in plan.resolution] == ["resolved"] * SUBJECTS
    assert plan.summary["stopped"] == 0
    text = erased["plan"].read_text()
    # one line per step and note, none per subject: the subjects are in the sealed table
    assert len(text.splitlines()) < 40
    data = json.loads(text)
    assert data["detail"]["subjects"] == SUBJECTS and "resolution" not in data
    # an altered detail is refused (its sha256 is in the digest): one byte of the Parquet
    raw = bytearray(base64.b64decode(data["detail_data"]))
    raw[len(raw) // 2] ^= 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**data, "detail_data": base64.b64encode(raw).decode()}))
    with pytest.raises(PlanError, match="per-subject detail does not match"):
        load_plan(forged)


def test_the_report_lists_a_few_subjects_and_one_on_demand(erased: dict) -> None:
    cli = erased["cli"]
    md = cli("auditor", "report", "deletion-list", "--format", "md")
    assert md.returncode == 0, md.stderr
    line = next(x for x in md.stdout.splitlines() if x.startswith("- subjects:"))
    assert line.startswith(f"- subjects: {SUBJECTS} (") and line.count("email `") == 5
    assert "--subject KEY=VALUE" in line
    one = subject_lines(erased["ids"][7:8])[0]
    part = cli("auditor", "report", "deletion-list", "--subject", one, "--format", "json")
    assert part.returncode == 0, part.stderr
    got = json.loads(part.stdout)
    assert got["resolution"]["status"] == "resolved"
    assert got["resolution"]["keys"] == {"EMAIL_ADDRESS": 1, "key customers:id": 1}
    assert {s["dataset"] for s in got["steps"]} == {"customers", "orders"}
    assert got["subjects_in_request"] == SUBJECTS and got["signature"]
    shown = cli("auditor", "report", "deletion-list", "--subject", one)
    assert shown.returncode == 0 and "resolution: **resolved**" in shown.stdout
    # never the identifier itself, in what is printed
    value = one.split("=", 1)[1]
    assert value not in part.stdout + shown.stdout + shown.stderr
    # a subject the request did not name: one line, no identifier
    other = cli("auditor", "report", "deletion-list", "--subject", "email=someone@example.org")
    assert other.returncode != 0
    assert "names no subject email" in other.stderr and "someone@" not in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


class Recorder:
    """A progress listener that keeps what it was told."""

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    def start(self, description: str, total: int | None) -> int:
        self.tasks.append({"description": description, "total": total, "done": 0, "items": []})
        return len(self.tasks) - 1

    def advance(self, task: int, description: str | None, done: int) -> None:
        self.tasks[task]["done"] += done
        self.tasks[task]["items"].append(description)

    def end(self, task: int) -> None:
        self.tasks[task]["ended"] = True


def test_every_pass_of_a_plan_reports_its_progress(erased: dict) -> None:
    """A plan's rounds and its final pass say what they start, dataset by dataset (a
    terminal shows them as bars: optout/cli/progress_bars.py)."""
    from optout.engine.planner import PlanRequest, build_plan
    from optout.engine.policy import load_policy
    from optout.engine.subjects import parse_subject
    from optout.model.progress import listening
    from optout.scanner.access import Principal

    heard = Recorder()
    catalog = Catalog(str(erased["tmp"] / "catalog.duckdb"))
    subjects = [parse_subject(line) for line in subject_lines(erased["ids"][:3])]
    policy = wh.Cli.ROOT / "policies" / "gdpr-erasure.yaml"
    with listening(heard):
        build_plan(catalog, PlanRequest(subjects, load_policy(policy), str(policy), "again"),
                   caller=Principal("requester", frozenset({"requester"})))
    rounds = [t for t in heard.tasks if t["description"].startswith("planning, round")]
    assert rounds and all(t["total"] == 2 and t.get("ended") for t in heard.tasks)
    assert rounds[0]["items"] == ["planning: customers", "planning: orders"]
    assert rounds[0]["done"] == 1  # the first item done when the second starts
    assert any(t["description"] == "planning: the rows apply changes" for t in heard.tasks)


def test_the_detail_words_each_resolution_as_written_by_hand() -> None:
    """The planner builds the per-subject detail a column at a time from its subjects'
    states; read back, each subject's resolution is what these truths, written by hand from
    the wording rules, say: one key shown by its first ten digits, up to three, `…` past
    three; the values a subject dropped after what it learned; seeds counted once."""
    from optout.engine.resolution import SubjectState, resolution_columns
    from optout.model.plan_detail import SubjectDetail, SubjectResolution

    a, b, c, d = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    one = SubjectState("s1")
    one.add("EMAIL_ADDRESS", {a, b}, "the request")  # a phone's two forms: one seed
    one.seeds["EMAIL_ADDRESS"] = {a, b}
    one.add("customers.id", {c}, "the customers row matched by email (id)")
    two = SubjectState("s2")
    two.add("orders.order_id", {a, b, c, d}, "its orders rows (order_id, a record key)")
    two.drop("EMAIL_ADDRESS", d, "2 rows of customers hold it in email (other people share it)")
    two.stop("ambiguous subject: resolved to 4 keys in orders.order_id (bound 1)", True)
    three = SubjectState("s3")
    three.add("customers.id", {b, c}, "the request")
    three.stop("referenced by other people's rows", False)
    detail = SubjectDetail.from_columns([{"key": "email", "hash": "s1"}],
                                        resolution_columns([one, two, three]))
    read = SubjectDetail(detail.data)  # as a plan file carries it
    assert read.resolutions == (
        SubjectResolution("s1", "resolved", (("EMAIL_ADDRESS", 1), ("customers.id", 1)), (
            "2 in EMAIL_ADDRESS [aaaaaaaaaa, bbbbbbbbbb] from the request",
            "1 in customers.id [cccccccccc] from the customers row matched by email (id)")),
        SubjectResolution("s2", "accepted", (("orders.order_id", 4),), (
            "4 in orders.order_id [aaaaaaaaaa, bbbbbbbbbb, cccccccccc, …] from its orders rows "
            "(order_id, a record key)",
            f"dropped 1 value of EMAIL_ADDRESS [{d[:10]}]: 2 rows of customers hold it in "
            "email (other people share it); not a key of the subject"),
            "ambiguous subject: resolved to 4 keys in orders.order_id (bound 1)"),
        SubjectResolution("s3", "stopped", (("customers.id", 2),),
                          ("2 in customers.id [bbbbbbbbbb, cccccccccc] from the request",),
                          "referenced by other people's rows"))
    assert read.subjects == ({"key": "email", "hash": "s1"},)
    assert read.summary["statuses"] == {"accepted": 1, "resolved": 1, "stopped": 1}
