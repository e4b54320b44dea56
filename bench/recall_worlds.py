"""Recall on projects nobody here wrote the code of: for each world, one subject erased by the
id (or email) a real request carries, then the rows of the subject the truth names are counted
in the data: found (erased) and left. Truths are the worlds' documented meaning, the same as
the tests' (tests/test_recall_*.py, tests/worlds/adventureworks.yaml).

    python bench/recall_worlds.py                 # this checkout
    PYTHONPATH=/path/to/old/checkout python bench/recall_worlds.py   # another version

Prints one line per subject: world, subject, rows of the subject before, left after, the
request's status (or the error that stopped the plan)."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import psycopg
import yaml

HERE = Path(__file__).resolve().parent.parent
DBT = Path(sys.executable).with_name("dbt")
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _fixture(name: str):
    """A module of this checkout's fixtures/ (optout itself is whatever version is on
    sys.path: another checkout's fixtures must not shadow these)."""
    package = sys.modules.get("fixtures")
    if package is None or Path(package.__file__).parent != HERE / "fixtures":
        spec = importlib.util.spec_from_file_location(
            "fixtures", HERE / "fixtures" / "__init__.py",
            submodule_search_locations=[str(HERE / "fixtures")])
        package = importlib.util.module_from_spec(spec)
        sys.modules["fixtures"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"fixtures.{name}")


def _dbt(project: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run([str(DBT), *args, "--profiles-dir", str(project)], cwd=project, check=True,
                   env={**os.environ, **env, "DO_NOT_TRACK": "1"}, capture_output=True)


def _database(name: str) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def _erase(locations: list[str], catalog_path: Path, subject: str) -> str:
    """Scan, plan, apply with optout as installed; the request's status, or the error."""
    from optout.engine.apply import ApplyOptions, apply_plan
    from optout.engine.journal import Journal
    from optout.engine.planner import PlanRequest, build_plan
    from optout.engine.policy import load_policy
    from optout.engine.subjects import parse_subject
    from optout.scanner.catalog import Catalog
    from optout.scanner.scan import scan

    catalog = Catalog(str(catalog_path))
    scan(locations, catalog)
    policy = load_policy(HERE / "policies" / "gdpr-erasure.yaml")
    try:
        plan = build_plan(catalog, PlanRequest([parse_subject(subject)], policy,
                                               str(HERE / "policies" / "gdpr-erasure.yaml")))
        apply_plan(catalog, plan, ApplyOptions())
    except Exception as exc:  # the figure is what a user gets, error included
        return f"error: {str(exc).splitlines()[0][:90]}"
    return Journal(catalog).request(plan.request_id)["status"]


def _csv_rows(path: Path, column: str, values: set[str]) -> int:
    with open(path, newline="") as fh:
        return sum(1 for r in csv.DictReader(fh) if r[column] in values)


def health(tmp: Path) -> tuple[str, str, int, int, str]:
    SUBJECT = _fixture("health_seeds").SUBJECT
    root = tmp / "health"
    shutil.copytree(HERE / "fixtures" / "dbt_health", root,
                    ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    db = root / "health.duckdb"
    _dbt(root, {"HEALTH_DUCKDB": str(db)}, "build")
    with open(root / "seeds" / "patients.csv", newline="") as fh:
        patient = list(csv.DictReader(fh))[SUBJECT]["Id"]
    seeds = {"patients": "Id", "encounters": "PATIENT", "conditions": "PATIENT",
             "medications": "PATIENT", "observations": "PATIENT", "claims": "PATIENTID"}

    def count() -> int:
        n = sum(_csv_rows(root / "seeds" / f"{s}.csv", c, {patient}) for s, c in seeds.items())
        with duckdb.connect(str(db), read_only=True) as con:
            n += sum(con.execute(f'SELECT count(*) FROM "{s}" WHERE "{c}" = ?',
                                 [patient]).fetchone()[0] for s, c in seeds.items())
            person = con.execute("SELECT person_id FROM main_cdm.person WHERE "
                                 "person_source_value = ?", [patient]).fetchone()
            for t in ("person", "visit_occurrence", "condition_occurrence", "drug_exposure",
                      "measurement", "cost"):
                n += con.execute(f"SELECT count(*) FROM main_cdm.{t} WHERE person_id = ?",
                                 [person[0] if person else -1]).fetchone()[0]
        return n

    before = count()
    status = _erase([str(root)], tmp / "health.catalog", f"patient_id={patient}")
    return "healthcare dbt/DuckDB", "patient_id=<uuid>", before, count(), status


def desk(tmp: Path) -> tuple[str, str, int, int, str]:
    SUBJECT = _fixture("desk_seeds").SUBJECT
    root = tmp / "desk"
    shutil.copytree(HERE / "fixtures" / "dbt_desk", root,
                    ignore=shutil.ignore_patterns("target", "logs"))
    uri = _database("optout_bench_desk")
    _dbt(root, {"DESK_DB": "optout_bench_desk"}, "build")
    user = str(SUBJECT)
    with open(root / "seeds" / "tickets.csv", newline="") as fh:
        tickets = {r["id"] for r in csv.DictReader(fh) if r["requester_id"] == user}
    where = {"users": ("id = %(u)s", "id", {user}),
             "tickets": ("requester_id = %(u)s", "id", tickets),
             "ticket_comments": ("ticket_id = ANY(%(t)s) OR author_id = %(u)s", None, None),
             "ticket_field_history": ("ticket_id = ANY(%(t)s) OR user_id = %(u)s", None, None),
             "audit_events": ("actor_id = %(u)s", "actor_id", {user})}

    def count() -> int:
        n = 0
        for name in where:
            with open(root / "seeds" / f"{name}.csv", newline="") as fh:
                rows = list(csv.DictReader(fh))
            n += sum(1 for r in rows if r.get("requester_id") == user or (r.get("id") == user
                     and name == "users") or r.get("author_id") == user or r.get("actor_id")
                     == user or r.get("user_id") == user or (name != "tickets" and
                                                             r.get("ticket_id") in tickets))
        with psycopg.connect(uri) as con:
            args = {"u": int(user), "t": [int(t) for t in tickets]}
            for name, (cond, _, _) in where.items():
                n += con.execute(f"SELECT count(*) FROM desk.{name} WHERE {cond}",
                                 args).fetchone()[0]
            for name in ("ticket_enriched", "requester_stats"):
                n += con.execute(f"SELECT count(*) FROM desk_dev.{name} WHERE requester_id = "
                                 "%(u)s", args).fetchone()[0]
        return n

    before = count()
    status = _erase([uri, str(root)], tmp / "desk.catalog", f"user_id={user}")
    return "support desk dbt/PostgreSQL", "user_id=<id>", before, count(), status


def adventureworks(tmp: Path) -> list[tuple[str, str, int, int, str]]:
    load_postgres = _fixture("worlds").load_postgres
    truth = yaml.safe_load((HERE / "tests" / "worlds" / "adventureworks.yaml").read_text())
    out = []
    for n, case in enumerate(s for s in truth["subjects"] if "rows" in s):
        uri = _database(f"optout_bench_aw{n}")
        load_postgres("adventureworks", uri)

        def count(rows: dict[str, str] = case["rows"], uri: str = uri) -> int:
            with psycopg.connect(uri) as con:
                return sum(con.execute(f"SELECT count(*) FROM {t} WHERE {c}").fetchone()[0]
                           for t, c in rows.items())

        before = count()
        status = _erase([uri], tmp / f"aw{n}.catalog", case["subject"])
        out.append(("AdventureWorks/PostgreSQL", case["name"], before, count(), status))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [health(Path(tmp)), desk(Path(tmp)), *adventureworks(Path(tmp))]
    print(f"{'world':30} {'subject':62} {'rows':>5} {'left':>5}  status")
    for world, subject, before, left, status in rows:
        print(f"{world:30} {subject[:62]:62} {before:5} {left:5}  {status}")


if __name__ == "__main__":
    main()
