"""A support-desk dbt project (fixtures/dbt_desk) built with dbt-postgres into the real
PostgreSQL: people's keys named for their role (`requester_id`, `submitter_id`, `assignee_id`,
`author_id`, `actor_id`, `user_id`) with no foreign key anywhere, seeds in one schema and
staging/report models in a second, a seed variant for another warehouse that the target never
loads, and test users sharing one placeholder email. One end user, one of those test users, is
erased by the id a real request carries.

The truth is the desk's own meaning: her user row; the tickets she requested (whoever submitted
them) with every comment and field change on them; comments and field changes she made; audit
events she was the actor of. Everything else is what `dbt build` makes of the seeds without
those rows. Agents named in her tickets are somebody else: untouched."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from conftest import throwaway_database
from dbt_projects import copy_project, keep_pristine, run_dbt, write_seed
from dbt_projects import seed_rows as seed

from fixtures.desk_seeds import PLACEHOLDER, SHARING, SUBJECT
from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.graph import build_graph
from optout.engine.journal import Journal
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.scan import scan

pytestmark = pytest.mark.postgres
PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "dbt_desk"
POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
LOADED = ("organizations", "users", "tickets", "ticket_comments", "ticket_field_history",
          "audit_events")


def dbt(project: Path, uri: str, *args: str) -> subprocess.CompletedProcess:
    return run_dbt(project, {"DESK_DB": urlparse(uri).path.lstrip("/")}, *args)


def hers(root: Path, user: str) -> dict[str, list[dict[str, str]]]:
    """Seed → the rows that are the user's, by the desk's documented meaning."""
    tickets = [r for r in seed(root, "tickets") if r["requester_id"] == user]
    ids = {r["id"] for r in tickets}
    return {
        "users": [r for r in seed(root, "users") if r["id"] == user],
        "tickets": tickets,
        "ticket_comments": [r for r in seed(root, "ticket_comments")
                            if r["ticket_id"] in ids or r["author_id"] == user],
        "ticket_field_history": [r for r in seed(root, "ticket_field_history")
                                 if r["ticket_id"] in ids or r["user_id"] == user],
        "audit_events": [r for r in seed(root, "audit_events") if r["actor_id"] == user],
        "organizations": []}


def relations(uri: str) -> dict[str, list[tuple]]:
    """Every table and view of the project's two schemas, sorted rows."""
    with psycopg.connect(uri) as con:
        names = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE "
            "table_schema IN ('desk', 'desk_dev') ORDER BY 1").fetchall()
        return {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=repr)
                for (n,) in names}


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, classifier: Classifier):
    """The project built into a throwaway database and scanned with its folder; a pristine
    copy of the folder beside it."""
    tmp = tmp_path_factory.mktemp("desk")
    root = copy_project(PROJECT, tmp / "desk")
    databases = throwaway_database()
    uri = next(databases)
    dbt(root, uri, "build")
    before = keep_pristine(root)
    catalog = Catalog(str(tmp / "catalog.duckdb"))
    report = scan([uri, str(root)], catalog, classifier=classifier)
    assert not report.failed and report.lineage_errors == []
    yield root, before, uri, catalog
    databases.close()


def test_a_seed_the_target_never_loads_is_not_the_projects_data(desk) -> None:
    root, _, _, catalog = desk
    files = {Path(d.location).name for d in catalog.datasets() if d.kind == "file"}
    assert "users_snowflake.csv" not in files and "users.csv" in files
    assert (root / "seeds" / "users_snowflake.csv").is_file()


def test_role_columns_are_person_keys_with_their_role(desk) -> None:
    _, _, _, catalog = desk
    graph = build_graph(catalog)
    roles = {graph.name(c): r for c, r in graph.roles.items()
             if graph.datasets[c[0]].name.startswith("desk.")}
    assert {c: roles[f"desk.{c}"] for c in (
        "tickets:requester_id", "tickets:submitter_id", "tickets:assignee_id",
        "ticket_comments:author_id", "audit_events:actor_id")} == {
        "tickets:requester_id": "owner", "tickets:submitter_id": "agent",
        "tickets:assignee_id": "agent", "ticket_comments:author_id": "owner",
        "audit_events:actor_id": "owner"}
    users = {d for c, d in graph.domains.items() if graph.name(c) == "desk.users:id"}
    for c in ("desk.tickets:assignee_id", "desk.ticket_field_history:user_id",
              "desk_dev.stg_tickets:requester_id"):
        assert {d for x, d in graph.domains.items() if graph.name(x) == c} == users, c


@pytest.fixture(scope="module")
def erased(desk):
    root, before, uri, catalog = desk
    policy = load_policy(POLICY)
    plan = build_plan(catalog, PlanRequest([parse_subject(f"user_id={SUBJECT}",
                                                          policy.identifiers)],
                                           policy, str(POLICY)))
    apply_plan(catalog, plan, ApplyOptions())
    return root, before, uri, catalog, plan


def test_the_plan_says_which_role_brought_each_row_in(erased) -> None:
    plan = erased[4]
    tickets = next(s for s in plan.steps if s.dataset == "desk.tickets")
    assert any(v.startswith("requester_id (owner: requester) in key desk.users:id")
               for v in tickets.via), tickets.via
    comments = next(s for s in plan.steps if s.dataset == "desk.ticket_comments")
    assert any(v.startswith("author_id (owner: author)") for v in comments.via), comments.via


def test_a_shared_placeholder_email_is_dropped_not_a_reason_to_stop(erased) -> None:
    _, before, _, _, plan = erased
    assert SUBJECT in SHARING
    assert sum(r["email"] == PLACEHOLDER for r in seed(before, "users")) == len(SHARING)
    [resolution] = plan.resolution
    assert resolution.status == "resolved"
    assert [w for w in resolution.learned if w.startswith("dropped")] and \
        "other people share it" in next(w for w in resolution.learned if w.startswith("dropped"))
    assert not plan.review


def test_the_user_is_gone_and_the_desk_equals_a_rebuild_from_cleaned_seeds(
        erased, tmp_path: Path) -> None:
    root, before, uri, catalog, plan = erased
    truth_root = tmp_path / "truth"
    copy_project(before, truth_root)
    mine = hers(before, str(SUBJECT))
    assert len(mine["tickets"]) >= 6 and any(r["submitter_id"] != str(SUBJECT)
                                             for r in mine["tickets"])
    for name in LOADED:
        kept = [r for r in seed(before, name) if r not in mine[name]]
        write_seed(truth_root, name, list(seed(before, name)[0]), kept)
        assert seed(root, name) == kept, name
    assert (root / "seeds" / "users_snowflake.csv").read_bytes() == (
        before / "seeds" / "users_snowflake.csv").read_bytes()
    databases = throwaway_database()
    truth_uri = next(databases)
    try:
        dbt(truth_root, truth_uri, "build")
        got, want = relations(uri), relations(truth_uri)
    finally:
        databases.close()
    assert got.keys() == want.keys() and len(want) == 14
    for name in want:
        assert got[name] == want[name], name
    assert Journal(catalog).request(plan.request_id)["status"] == "complete"


def test_the_projects_own_tests_pass_after_the_erasure(erased) -> None:
    root, _, uri, _, _ = erased
    done = dbt(root, uri, "test")
    assert "ERROR=0" in done.stdout and "PASS=" in done.stdout
