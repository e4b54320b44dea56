"""Shared fixtures: the generated fixture company, one scan of it, a real PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fixtures.generate import generate
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.scan import ScanReport, scan

PG_ADMIN = os.environ.get("OPTOUT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def company_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly generated fixture company (deterministic) and its truth file."""
    out = tmp_path_factory.mktemp("fixtures")
    generate(out)
    return out


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """One classifier (spaCy and Presidio load once per test session)."""
    return Classifier()


@pytest.fixture(scope="session")
def company_scan(
    company_dir: Path, classifier: Classifier, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ScanReport, Catalog]:
    """The fixture company scanned once into a catalog of its own."""
    catalog = Catalog(str(tmp_path_factory.mktemp("catalog") / "company.duckdb"))
    report = scan([str(company_dir / "company")], catalog, classifier=classifier)
    return report, catalog


def throwaway_database(locale: str | None = None) -> Iterator[str]:
    """Create a database on the real PostgreSQL (in `locale`, e.g. C, if given), yield its
    URI, drop it."""
    name = f"optout_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} (start it: see README): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"' + (
        f" TEMPLATE template0 LC_COLLATE '{locale}' LC_CTYPE '{locale}'" if locale else ""))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


COMPANY_CONFIG = """
identity:
  links:
    - columns: ["events:user_id", "customers:id"]
datasets:
  leads_de: {tags: [marketing]}
  marketing.newsletter_subscribers: {tags: [marketing]}
  marketing.newsletter_sends: {tags: [marketing]}
  events: {tags: [analytics]}
"""


@pytest.fixture(scope="session")
def company_pg() -> Iterator[str]:
    """The fixture company's PostgreSQL part, loaded into a throwaway database."""
    from fixtures.generate import load_postgres

    for uri in throwaway_database():
        load_postgres(uri)
        yield uri


@pytest.fixture(scope="session")
def company_everywhere(
    company_dir: Path,
    company_pg: str,
    classifier: Classifier,
    tmp_path_factory: pytest.TempPathFactory,
):
    """Files, DuckDB, SQLite and PostgreSQL of the fixture company in one catalog, with the
    project config that declares the link no data shows (events.user_id → customers.id)."""
    from optout.scanner.config import load_config

    root = tmp_path_factory.mktemp("everywhere")
    (root / "optout.yaml").write_text(COMPANY_CONFIG)
    catalog = Catalog(str(root / "catalog.duckdb"))
    report = scan([str(company_dir / "company"), company_pg], catalog, classifier=classifier)
    assert not report.failed, [r.error for r in report.results if r.error]
    return catalog, load_config(str(root / "optout.yaml"))


@pytest.fixture()
def pg_uri() -> Iterator[str]:
    """A throwaway database on the machine's real PostgreSQL, one per test; dropped after it."""
    yield from throwaway_database()


@pytest.fixture(scope="session")
def pristine_world(company_dir: Path, classifier: Classifier,
                   tmp_path_factory: pytest.TempPathFactory):
    """The company scanned once, with its PostgreSQL part; `.world()` gives it back as scanned
    to each test that changes it (tests/apply_world.py)."""
    from apply_world import Pristine

    pristine = Pristine(tmp_path_factory.mktemp("pristine"), company_dir, classifier)
    yield pristine
    pristine.close()


#: test files that take the longest (tens of seconds per test): collected first, so that the
#: two workers of `make test` start on them and the short files fill in around them (the
#: suite ends when the slower worker does)
LONGEST_FIRST = ("test_worlds.py", "test_spark.py", "test_worker.py", "test_erasure_report.py",
                 "test_dbt.py", "test_sweep.py", "test_recall_desk.py", "test_apply.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (a stable sort: each file's tests keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
