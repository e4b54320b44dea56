"""Planning on the fixture company (files, DuckDB, SQLite, PostgreSQL) against a golden plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from optout.engine.plan_render import to_html, to_markdown
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import SubjectError, parse_subject
from optout.model.plan import PlanError, load_plan

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
POLICIES = Path(__file__).resolve().parent.parent / "policies"
SUBJECT_INDEX = 6  # the seventh customer of the fixture company (customer_id 7)


def subject_row(company_dir: Path) -> dict:
    return pq.read_table(company_dir / "company" / "crm" / "customers.parquet").to_pylist()[
        SUBJECT_INDEX
    ]


def outline(plan) -> dict:
    """What the golden file pins: steps as (dataset, rows, action), and the notes."""
    return {
        "steps": sorted([s.dataset, s.rows, s.action] for s in plan.steps),
        "review": sorted(n.dataset for n in plan.review),
        "searched": sorted(n.dataset for n in plan.searched),
    }


@pytest.fixture(scope="module")
def gdpr_plan(company_everywhere, company_dir: Path):
    catalog, config = company_everywhere
    row = subject_row(company_dir)
    policy = load_policy(POLICIES / "gdpr-erasure.yaml")
    request = PlanRequest(
        [parse_subject(f"email={row['email'].upper()} ", policy.identifiers)],
        policy,
        "policies/gdpr-erasure.yaml",
        request_id="golden",
    )
    return build_plan(catalog, request, config)


def test_plan_matches_the_golden_plan(gdpr_plan) -> None:
    golden = json.loads((GOLDEN / "gdpr-erasure-customer-7.json").read_text())
    assert outline(gdpr_plan) == golden


def test_derived_datasets_come_through_lineage(gdpr_plan) -> None:
    steps = {s.dataset: s for s in gdpr_plan.steps}
    assert any("derived from orders" in v for v in steps["daily_revenue"].via)
    assert steps["daily_revenue"].rows is None and steps["daily_revenue"].action == "recompute"
    assert any("declared lineage" in v for v in steps["customer_segments"].via)
    assert any("sql lineage" in v for v in steps["customer_ltv"].via)
    assert steps["vip_customers"].action == "recompute"


def test_unreachable_pii_needs_review(gdpr_plan) -> None:
    review = {n.dataset: n.reason for n in gdpr_plan.review}
    assert "employees" in review and review["employees"].startswith("not reachable")


def test_retained_rows_carry_their_legal_basis(gdpr_plan) -> None:
    payments = next(s for s in gdpr_plan.steps if s.dataset == "payments")
    assert payments.action == "retain" and "HGB" in payments.legal_basis
    assert dict(payments.columns) == {"card_number": "hash", "iban": "hash"}


def test_postgres_rows_are_found_through_a_foreign_key(gdpr_plan) -> None:
    steps = {s.dataset: s for s in gdpr_plan.steps}
    assert steps["marketing.newsletter_subscribers"].rows == 1
    sends = steps["marketing.newsletter_sends"]
    assert sends.rows >= 1
    assert any("newsletter_subscribers" in v for v in sends.via)


def test_other_identifiers_reach_the_same_rows(
    company_everywhere, company_dir: Path, gdpr_plan
) -> None:
    catalog, config = company_everywhere
    row = subject_row(company_dir)
    policy = load_policy(POLICIES / "gdpr-erasure.yaml")
    by_id = build_plan(
        catalog, PlanRequest([parse_subject(f"customer_id={row['id']}")], policy, "p"), config
    )
    by_phone = build_plan(
        catalog, PlanRequest([parse_subject(f"phone={row['phone']}")], policy, "p"), config
    )
    assert outline(by_id)["steps"] == outline(gdpr_plan)["steps"]
    assert outline(by_phone)["steps"] == outline(gdpr_plan)["steps"]


def test_no_raw_identifier_in_plan_or_reports(gdpr_plan, company_dir: Path, tmp_path: Path) -> None:
    row = subject_row(company_dir)
    texts = {
        "plan.json": gdpr_plan.to_json(),
        "plan.md": to_markdown(gdpr_plan),
        "plan.html": to_html(gdpr_plan),
    }
    digits = re.sub(r"\D", "", row["phone"])
    secrets = [
        row["email"],
        row["email"].upper(),
        row["phone"],
        digits,
        digits[1:],
        f"{row['first_name']} {row['last_name']}",
        row["street_address"],
    ]
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        blob = (tmp_path / name).read_text().lower()
        assert not [s for s in secrets if s.lower() in blob], name


def test_plan_file_round_trips_and_detects_edits(gdpr_plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(gdpr_plan.to_json())
    assert load_plan(path) == gdpr_plan
    data = json.loads(path.read_text())
    data["steps"][0]["rows"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match="content hash does not match"):
        load_plan(path)


def test_many_subjects_in_one_plan(company_everywhere, company_dir: Path) -> None:
    catalog, config = company_everywhere
    rows = pq.read_table(company_dir / "company" / "crm" / "customers.parquet").to_pylist()
    policy = load_policy(POLICIES / "gdpr-erasure.yaml")
    subjects = [parse_subject(f"email={r['email']}") for r in rows[:50]]
    plan = build_plan(catalog, PlanRequest(subjects, policy, "p"), config)
    steps = {s.dataset: s for s in plan.steps}
    assert steps["customers"].rows == 50
    assert len(plan.subjects) == 50


def test_subject_legal_hold(company_everywhere, company_dir: Path, tmp_path: Path) -> None:
    catalog, config = company_everywhere
    row = subject_row(company_dir)
    subject = parse_subject(f"email={row['email']}")
    held = tmp_path / "held.yaml"
    held.write_text(
        (POLICIES / "gdpr-erasure.yaml")
        .read_text()
        .replace(
            "exemptions: []",
            f"exemptions:\n  - subject_hash: {subject.digest(catalog.hasher())}\n"
            "    reason: litigation hold 2026-14",
        )
    )
    plan = build_plan(catalog, PlanRequest([subject], load_policy(held), str(held)), config)
    assert not plan.steps
    assert plan.exempt[0].reason == "legal hold: litigation hold 2026-14"


def test_dataset_legal_hold(company_everywhere, company_dir: Path, tmp_path: Path) -> None:
    catalog, config = company_everywhere
    held = tmp_path / "held.yaml"
    held.write_text(
        (POLICIES / "gdpr-erasure.yaml")
        .read_text()
        .replace("exemptions: []", "exemptions:\n  - dataset: orders\n    reason: audit 2026")
    )
    row = subject_row(company_dir)
    plan = build_plan(
        catalog,
        PlanRequest([parse_subject(f"email={row['email']}")], load_policy(held), str(held)),
        config,
    )
    assert "orders" not in {s.dataset for s in plan.steps}
    assert [(n.dataset, n.reason) for n in plan.exempt] == [("orders", "legal hold: audit 2026")]


@pytest.mark.parametrize(
    ("text", "accepted", "message"),
    [
        ("email", None, "expected KEY=VALUE"),
        ("email=not-an-email", None, "bad email 'n***-a***-e***'"),
        ("phone=12", None, "bad phone number"),
        ("ssn=123-45-6789", ["email"], "the policy does not accept 'ssn' identifiers"),
        ("Bad Key=1", None, "bad subject key"),
    ],
)
def test_bad_subjects(text: str, accepted, message: str) -> None:
    with pytest.raises(SubjectError) as err:
        parse_subject(text, accepted)
    assert message in str(err.value)
    assert "not-an-email" not in str(err.value)


def test_unknown_person_key(company_everywhere) -> None:
    catalog, config = company_everywhere
    policy = load_policy(POLICIES / "gdpr-erasure.yaml")
    with pytest.raises(SubjectError, match="no person-key column named 'member_no'"):
        build_plan(catalog, PlanRequest([parse_subject("member_no=5")], policy, "p"), config)


def test_html_report_renders_in_headless_chromium(gdpr_plan, tmp_path: Path) -> None:
    from browser import external_references, rendered, text_of

    page = tmp_path / "plan.html"
    page.write_text(to_html(gdpr_plan))
    assert external_references(page.read_text()) == []
    dom = rendered(page, tmp_path / "profile")
    text = text_of(dom)
    assert "11 datasets hold the subject" in text
    assert "Dry run: nothing has been changed" in text
    steps = dom.split('id="steps"', 1)[1].split("</table>", 1)[0]
    for dataset in ("customers", "orders", "marketing.newsletter_subscribers", "daily_revenue"):
        assert f"<strong>{dataset}</strong>" in steps
    assert "delete rows" in steps and "legal basis" in steps


def test_postgres_part_is_classified_as_labelled(company_everywhere) -> None:
    from fixtures.generate import POSTGRES_TRUTH

    catalog, _ = company_everywhere
    for dataset, columns in POSTGRES_TRUTH.items():
        found = {c.name: (c.pii, c.entity) for c in catalog.find(dataset).columns}
        assert found == columns, dataset


def test_the_content_hash_is_that_of_the_plan_as_plain_data(gdpr_plan, tmp_path: Path) -> None:
    """The digest serializes the plan's objects as they are written, without copying them
    first: the same canonical JSON as `dataclasses.asdict`, so plans made before keep their
    hashes; the file reads back to the same plan."""
    import dataclasses
    import hashlib

    data = dataclasses.asdict(gdpr_plan)
    for name in ("content_hash", "mac"):
        data.pop(name)
    # the per-subject detail is hashed as its summary: the sha256 of its Parquet bytes
    data["detail"] = gdpr_plan.detail.summary
    assert data["detail"]["sha256"] == hashlib.sha256(gdpr_plan.detail.data).hexdigest()
    for name in ("unexecutable", "supersedes", "reerases"):
        if not data[name]:
            data.pop(name)
    assert data.pop("engine") == "duckdb"  # absent from the hash on DuckDB: older plans
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    assert gdpr_plan.digest() == hashlib.sha256(text.encode()).hexdigest()
    assert gdpr_plan.content_hash == gdpr_plan.digest()
    path = tmp_path / "plan.json"
    path.write_text(gdpr_plan.to_json())
    assert load_plan(path) == gdpr_plan


def test_the_engine_is_part_of_a_spark_plan_and_cannot_be_rewritten(gdpr_plan,
                                                                    tmp_path: Path) -> None:
    import dataclasses

    spark = dataclasses.replace(gdpr_plan, engine="spark", content_hash="").sealed()
    assert spark.content_hash != gdpr_plan.content_hash
    path = tmp_path / "plan.json"
    path.write_text(spark.to_json())
    assert load_plan(path).engine == "spark"
    path.write_text(spark.to_json().replace('"engine": "spark"', '"engine": "duckdb"'))
    with pytest.raises(PlanError, match="content hash does not match"):
        load_plan(path)
    path.write_text(spark.to_json().replace('"engine": "spark"', '"engine": "flink"'))
    with pytest.raises(PlanError, match="not a plan this optout made \\(engine 'flink'\\)"):
        load_plan(path)
