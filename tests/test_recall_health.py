"""A healthcare dbt project (fixtures/dbt_health: Synthea-shaped seeds keyed by UUIDs and
referenced as `PATIENT` / `PATIENTID`, staging views renaming them `patient_id`, OMOP tables in a
schema of their own keyed by a surrogate integer `person_id` built by a join), built with
dbt-duckdb, and one patient erased by the ids a real request carries.

The truth is the project's own meaning: a patient's rows are `patients.Id`, and every seed row
whose `PATIENT` or `PATIENTID` is that id; everything else is what `dbt build` makes of the
seeds without them. Written from the seeds' documented columns, never from optout's output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from dbt_projects import copy_project, keep_pristine, run_dbt, write_seed
from dbt_projects import seed_rows as seed

from fixtures.health_seeds import SUBJECT
from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.graph import build_graph
from optout.engine.journal import Journal
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import SubjectError, parse_subject
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.scan import scan

PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "dbt_health"
POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
#: seed → the column naming the patient a row belongs to (the export's documented meaning)
PATIENT_OF = {"patients": "Id", "encounters": "PATIENT", "conditions": "PATIENT",
              "medications": "PATIENT", "observations": "PATIENT", "claims": "PATIENTID"}
SEEDS = (*PATIENT_OF, "providers")


def dbt(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run_dbt(project, {"HEALTH_DUCKDB": str(project / "health.duckdb")}, *args)


def build(root: Path) -> Path:
    dbt(copy_project(PROJECT, root), "build")
    return root


def relations(root: Path) -> dict[str, list[tuple]]:
    """Every table and view dbt built, sorted rows."""
    with duckdb.connect(str(root / "health.duckdb"), read_only=True) as con:
        names = con.execute("SELECT table_schema || '.' || table_name FROM "
                            "information_schema.tables ORDER BY 1").fetchall()
        return {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=repr)
                for (n,) in names}


def subject_rows(root: Path, patient: str) -> dict[str, int]:
    """Seed → rows of the patient, by the columns' documented meaning."""
    return {name: sum(1 for r in seed(root, name) if r[col] == patient)
            for name, col in PATIENT_OF.items()}


@pytest.fixture(scope="module")
def health(tmp_path_factory: pytest.TempPathFactory, classifier: Classifier):
    """The project built and scanned; a pristine copy beside it."""
    tmp = tmp_path_factory.mktemp("health")
    root = build(tmp / "health")
    before = keep_pristine(root)
    catalog = Catalog(str(tmp / "catalog.duckdb"))
    report = scan([str(root)], catalog, classifier=classifier)
    assert not report.failed and report.lineage_errors == []
    patient = seed(root, "patients")[SUBJECT]["Id"]
    return root, before, catalog, patient


def plan_for(catalog: Catalog, subject: str):
    policy = load_policy(POLICY)
    return build_plan(catalog, PlanRequest([parse_subject(subject, policy.identifiers)], policy,
                                           str(POLICY)))


@pytest.mark.parametrize("key", ["patient_id", "patient", "person_source_value",
                                 "stg_encounters.patient_id"])
def test_the_patient_is_found_by_every_id_a_request_carries(health, key: str) -> None:
    """The shipped policy accepts a health system's patient id (a person key, by the column's
    name, the row kind or DATASET.COLUMN) and every form reaches every dataset that holds the
    patient: the six seeds (CSV and table), their six staging views and the six OMOP tables."""
    root, _, catalog, patient = health
    plan = plan_for(catalog, f"{key}={patient}")
    truth = subject_rows(root, patient)
    rows = {(s.dataset, s.format): s.rows for s in plan.steps}
    for name, n in truth.items():
        assert rows[(name, "csv")] == rows[(name, "duckdb")] == n, name
    assert ("providers", "duckdb") not in rows and ("stg_providers", "duckdb") not in rows
    omop = {d for d, _ in rows if d.startswith("main_cdm.")}
    assert omop == {f"main_cdm.{t}" for t in ("person", "visit_occurrence", "condition_occurrence",
                                              "drug_exposure", "measurement", "cost")}
    assert rows[("main_cdm.measurement", "duckdb")] == truth["observations"]
    assert not plan.review and [r.status for r in plan.resolution] == ["resolved"]
    # the clinicians' table (its names are PII) is nobody the request names: the patient's
    # encounters name its people as agents, so it is searched-by-kind, not left for review
    others = [n for n in plan.searched if n.reason.startswith("other people")]
    assert {(n.dataset, n.location.endswith(".csv")) for n in others} == {
        ("providers", True), ("providers", False), ("stg_providers", False)}, others
    assert all("encounters:PROVIDER" in n.reason for n in others)


def test_a_key_nobody_holds_is_a_one_line_error(health) -> None:
    _, _, catalog, patient = health
    with pytest.raises(SubjectError, match="no person-key column named 'clinician_id'"):
        plan_for(catalog, f"clinician_id={patient}")


def test_the_graph_reads_the_keys_the_project_declares(health) -> None:
    """The links come from what the team declared (dbt relationships tests across the staging
    and the OMOP schema, lineage through renames) and from the seeds' upper-case references."""
    _, _, catalog, _ = health
    graph = build_graph(catalog)
    kinds = {(graph.name(x.a), graph.name(x.b)): x.kind for x in graph.links
             if x.status == "accepted"}
    assert kinds[("main_cdm.cost:person_id", "main_cdm.person:person_id")] == "foreign_key"
    assert kinds[("stg_encounters:patient_id", "stg_patients:patient_id")] == "foreign_key"
    domain = {graph.name(c): d for c, d in graph.domains.items()}
    for column in ("encounters:PATIENT", "claims:PATIENTID", "stg_observations:patient_id",
                   "main_cdm.person:person_source_value"):
        assert domain[column] == domain["patients:Id"], column
    assert domain["encounters:PROVIDER"] != domain["patients:Id"]
    roles = {graph.name(c): r for c, r in graph.roles.items()}
    assert roles["stg_encounters:provider_id"] == "agent"  # a clinician: somebody else
    assert roles["main_cdm.person:person_source_value"] == "attribute"


@pytest.fixture(scope="module")
def erased(health):
    root, before, catalog, patient = health
    plan = plan_for(catalog, f"patient_id={patient}")
    apply_plan(catalog, plan, ApplyOptions())
    return root, before, catalog, patient, plan


def test_the_patient_is_gone_and_the_project_equals_a_rebuild_from_cleaned_seeds(
        erased, tmp_path: Path) -> None:
    """Residue 0 and collateral 0: every seed is its cleaned self, and every table and view
    equals what `dbt build` makes of the cleaned seeds."""
    root, before, catalog, patient, plan = erased
    truth = tmp_path / "truth"
    copy_project(before, truth)
    for name in SEEDS:
        rows = seed(before, name)
        kept = [r for r in rows if r.get(PATIENT_OF.get(name, ""), None) != patient]
        assert name == "providers" or len(kept) < len(rows), name
        write_seed(truth, name, list(rows[0]), kept)
        assert seed(root, name) == kept, name
    dbt(truth, "build")
    got, want = relations(root), relations(truth)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    assert Journal(catalog).request(plan.request_id)["status"] == "complete"


def test_the_projects_own_tests_pass_after_the_erasure(erased) -> None:
    root = erased[0]
    done = dbt(root, "test")
    assert "ERROR=0" in done.stdout and "PASS=" in done.stdout
