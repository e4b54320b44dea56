"""Special categories (GDPR Art. 9) from scan to plan: flagged with their category in the
catalog, matched by policy rules (`match: {sensitivity: [special_category]}`), and highlighted
in the dry-run report, with a finding when a rule would keep them in clear."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.engine.plan_render import to_html, to_markdown
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.config import load_config
from optout.scanner.scan import scan

N = 120
RETAIN = """
name: members-retention
identifiers: [email]
default_action: delete_rows
rules:
  - name: keep-members
    match: {datasets: [members]}
    action: retain
    legal_basis: membership records kept for 10 years (statutes art. 12)
    anonymize: {action: hash, entities: [EMAIL_ADDRESS]}
"""
SPECIAL_FIRST = """
name: members-special
identifiers: [email]
default_action: hash
rules:
  - name: special-categories-go
    match: {sensitivity: [special_category]}
    action: delete_rows
  - name: hash-the-rest
    action: hash
"""


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory, classifier: Classifier):
    root = tmp_path_factory.mktemp("members")
    r = random.Random(11)
    pq.write_table(pa.table({
        "member_no": list(range(1, N + 1)),
        "email": [f"member{i}@example.org" for i in range(1, N + 1)],
        "full_name": [r.choice(["Ana Souza", "Li Wei", "Omar Haddad", "Eva Novak"])
                      for _ in range(N)],
        "konfession": [r.choice(["katholisch", "evangelisch", "muslimisch", "jüdisch"])
                       for _ in range(N)],
        "blood_group": [r.choice(["A+", "O-", "B+", "AB+"]) for _ in range(N)],
    }), root / "members.parquet")
    pq.write_table(pa.table({
        "email": [f"member{i}@example.org" for i in range(1, N + 1)],
        "newsletter": [r.choice(["weekly", "monthly"]) for _ in range(N)],
    }), root / "newsletter.parquet")
    catalog = Catalog(str(root / "catalog.duckdb"))
    scan([str(root)], catalog, classifier=classifier)
    return root, catalog


def plan_with(root: Path, catalog: Catalog, policy_text: str, name: str):
    path = root / f"{name}.yaml"
    path.write_text(policy_text)
    policy = load_policy(path)
    subject = parse_subject("email=member7@example.org", policy.identifiers)
    return build_plan(catalog, PlanRequest([subject], policy, str(path)), load_config(None))


def test_the_catalog_flags_them_with_their_category(members) -> None:
    _, catalog = members
    cols = {c.name: c for c in catalog.find("members").columns}
    assert (cols["konfession"].sensitivity, cols["konfession"].category) == (
        "special_category", "religion")
    assert (cols["blood_group"].sensitivity, cols["blood_group"].category) == (
        "special_category", "health")
    assert cols["email"].sensitivity == "contact" and cols["email"].category is None
    exported = {c["name"]: c for d in catalog.export()["datasets"] if d["name"] == "members"
                for c in d["columns"]}
    assert exported["konfession"]["category"] == "religion"
    assert exported["konfession"]["sensitivity"] == "special_category"


def test_a_rule_keeping_them_in_clear_is_a_finding_and_highlighted(members) -> None:
    root, catalog = members
    plan = plan_with(root, catalog, RETAIN, "retain")
    step = next(s for s in plan.steps if s.dataset == "members")
    assert step.action == "retain"
    assert set(step.special) == {("konfession", "religion", "kept"),
                                 ("blood_group", "health", "kept")}
    finding = next(n for n in plan.review if n.dataset == "members")
    assert "kept in clear" in finding.reason and "konfession (religion)" in finding.reason
    markdown = to_markdown(plan)
    assert "KEPT IN CLEAR" in markdown and "## Special categories (GDPR Art. 9)" in markdown
    page = to_html(plan)
    assert "id=special" in page and "members.konfession (religion)" in page
    newsletter = next(s for s in plan.steps if s.dataset == "newsletter")
    assert newsletter.special == ()


def test_a_policy_matches_them_by_sensitivity(members) -> None:
    root, catalog = members
    plan = plan_with(root, catalog, SPECIAL_FIRST, "special")
    actions = {s.dataset: (s.action, s.rule) for s in plan.steps}
    assert actions["members"] == ("delete_rows", "special-categories-go")
    assert actions["newsletter"] == ("hash", "hash-the-rest")
    members_step = next(s for s in plan.steps if s.dataset == "members")
    assert {fate for _, _, fate in members_step.special} == {"deleted with the row"}
    assert not [n for n in plan.review if "kept in clear" in n.reason]
    assert "none kept in clear" in to_markdown(plan)


def test_a_policy_naming_an_unknown_sensitivity_is_refused(tmp_path: Path) -> None:
    from optout.engine.policy import PolicyError

    path = tmp_path / "bad.yaml"
    path.write_text("name: p\nidentifiers: [email]\nrules:\n  - name: x\n    action: hash\n"
                    "    match: {sensitivity: [secret]}\n")
    with pytest.raises(PolicyError, match=r"line 6: rules\.0\.match\.sensitivity\.0"):
        load_policy(path)
