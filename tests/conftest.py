"""Shared fixtures: the generated fixture company, one scan of it, a real PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fixtures.generate import generate
from scanner.catalog import Catalog
from scanner.classify.column import Classifier
from scanner.scan import ScanReport, scan

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


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A throwaway database on the machine's real PostgreSQL; dropped at the end."""
    name = f"optout_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} (start it: see README): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    uri = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield uri
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
