"""Helpers for the apply tests: a fresh copy of the fixture company (files, DuckDB, SQLite and
PostgreSQL), and direct reads of every dataset — not through optout — to compare before/after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import psycopg
import pyarrow.parquet as pq

from fixtures.generate import load_postgres
from optout.connectors import open_source
from optout.engine.approvals import approve
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.source_pool import ref_of
from optout.engine.subjects import parse_subject
from optout.scanner.access import Principal
from optout.scanner.access.principals import init_catalog
from optout.scanner.catalog import Catalog
from optout.scanner.config import load_config
from optout.scanner.deployment import set_deployment_config
from optout.scanner.scan import scan

ROOT = Path(__file__).resolve().parent.parent
CONFIG = 'identity:\n  links:\n    - columns: ["events:user_id", "customers:id"]\n'
SUBJECT_INDEX = 6
OPTOUT = [sys.executable, "-m", "optout.cli.main"]


class World:
    """A scanned copy of the company, its PostgreSQL part, and the subject's raw values."""

    def __init__(self, root: Path, pg_uri: str) -> None:
        """The world already scanned at `root` (see `scanned` and `Pristine`)."""
        self.root = root
        self.data = root / "company"
        self.pg = pg_uri
        self.config = load_config(str(root / "deployment.yaml"))
        self.catalog = Catalog(str(root / "catalog.duckdb"))
        self.subject = pq.read_table(self.data / "crm" / "customers.parquet").to_pylist()[
            SUBJECT_INDEX]
        with psycopg.connect(pg_uri) as pg:  # read before anything is erased
            self.subscriber_ids = {r[0] for r in pg.execute(
                "SELECT subscriber_id FROM marketing.newsletter_subscribers WHERE email = %s",
                (self.subject["email"],)).fetchall()}

    @classmethod
    def scanned(cls, root: Path, company_dir: Path, pg_uri: str, classifier) -> World:
        """Copy the company to `root`, load its PostgreSQL part into the empty database at
        `pg_uri`, and scan both into a catalog of their own."""
        shutil.copytree(company_dir / "company", root / "company")
        load_postgres(pg_uri)
        (root / "deployment.yaml").write_text(CONFIG)
        catalog = Catalog(str(root / "catalog.duckdb"))
        report = scan([str(root / "company"), pg_uri], catalog, classifier=classifier)
        assert not report.failed, [r.error for r in report.results if r.error]
        # the deployment's configuration, as an admin sets it (`optout config set`)
        set_deployment_config(catalog, str(root / "deployment.yaml"), "admin")
        return cls(root, pg_uri)

    def rescan_lineage(self) -> list[str]:
        """Register the lineage files beside the data again (as the next scan would); what
        could not be followed."""
        from optout.scanner.scan import register_found_lineage

        return register_found_lineage(self.catalog, str(self.data))

    def others(self, n: int) -> list[dict]:
        """Other customers than the subject (for copies elsewhere)."""
        rows = pq.read_table(self.data / "crm" / "customers.parquet").to_pylist()
        return [r for r in rows if r["id"] != self.subject["id"]][:n]

    def plan(self, policy: str = "gdpr-erasure.yaml", request_id: str | None = None,
             subjects: list[str] | None = None):
        """A plan for the subject (or other subjects)."""
        path = ROOT / "policies" / policy
        subjects = subjects or [f"email={self.subject['email']}"]
        return build_plan(self.catalog, PlanRequest([parse_subject(s) for s in subjects],
                                                    load_policy(path), str(path), request_id),
                          self.config)

    # -- the command line, as an initialized catalog's principals use it -----------------------

    token: str | None = None
    admin = Principal("admin", frozenset({"admin"}))

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
        """Run `optout` on the world's catalog as its admin (initializing it on first use)."""
        return subprocess.run([*OPTOUT, "--catalog", self.catalog.path, *args],
                              env={**self.env(), **(env or {})},
                              capture_output=True, text=True, cwd=self.root, timeout=timeout)

    def env(self) -> dict[str, str]:
        """The environment of an `optout` process run as the admin."""
        if self.token is None:
            self.token = init_catalog(self.catalog)
        return {**os.environ, "OPTOUT_TOKEN": self.token}

    def approve(self, plan) -> None:
        """Approve a plan as a second principal (four eyes)."""
        approve(self.catalog, plan, Principal("approver", frozenset({"approver"})))

    def write_plan(self, plan) -> Path:
        """The plan as a file, as `optout plan -o` writes it."""
        path = self.root / f"plan-{plan.request_id}.json"
        path.write_text(plan.to_json())
        return path

    # -- direct reads ------------------------------------------------------------------------

    def tables(self) -> dict[str, list[tuple]]:
        """Every row of every dataset, read directly with DuckDB, sqlite3 and psycopg."""
        d = self.data
        con = duckdb.connect()
        out: dict[str, list[tuple]] = {}
        reads = {
            "customers": f"read_parquet('{d}/crm/customers.parquet')",
            "customer_segments": f"read_parquet('{d}/crm/customer_segments.parquet')",
            "orders": f"read_parquet('{d}/sales/orders/**/*.parquet', hive_partitioning=true)",
            "payments": f"read_csv('{d}/sales/payments.csv', all_varchar=true)",
            "tickets": f"read_json('{d}/support/tickets.jsonl', format='newline_delimited')",
            "events": f"read_json('{d}/web/events.jsonl', format='newline_delimited')",
            "leads_de": f"read_csv('{d}/marketing/leads_de.csv', delim=';', all_varchar=true)",
        }
        for name, rel in reads.items():
            if (d / _path_of(name)).exists():
                out[name] = con.execute(f"SELECT * FROM {rel}").fetchall()
        con.close()
        if (d / "logs" / "app.log").exists():
            out["app"] = [(line,) for line in (d / "logs" / "app.log").read_text().splitlines()]
        if (d / "hr" / "hr.sqlite").exists():
            lite = sqlite3.connect(d / "hr" / "hr.sqlite")
            for t in ("employees", "payroll"):
                out[t] = lite.execute(f"SELECT * FROM {t}").fetchall()
            lite.close()
        if (d / "analytics" / "analytics.duckdb").exists():
            wh = duckdb.connect(str(d / "analytics" / "analytics.duckdb"), read_only=True)
            for t in ("customer_ltv", "daily_revenue"):
                out[t] = wh.execute(f"SELECT * FROM {t}").fetchall()
            wh.close()
        with psycopg.connect(self.pg) as pg:
            for t in ("newsletter_subscribers", "newsletter_sends"):
                out[f"marketing.{t}"] = pg.execute(f"SELECT * FROM marketing.{t}").fetchall()
        return out

    def is_subjects(self, name: str, row: tuple) -> bool:
        """Does a row (read directly) belong to the subject? Decided without optout."""
        s = self.subject
        text = " ".join(str(v) for v in row).lower()
        mentions = (s["email"] in text or f"{s['first_name']} {s['last_name']}".lower() in text
                    or s["phone"] in " ".join(str(v) for v in row))
        key = {"customers": 0, "customer_segments": 0, "orders": 1, "events": 1}.get(name)
        if key is not None and row[key] == s["id"]:
            return True
        if name == "tickets":
            return row[1]["id"] == s["id"] or mentions
        if name == "payments":
            return row[2] == str(s["id"])
        if name.startswith("marketing.newsletter_subscribers"):
            return row[1] == s["email"]
        if name == "marketing.newsletter_sends":
            return row[0] in self.subscriber_ids
        return mentions


    def staged_files(self) -> list[Path]:
        """Leftover staged file versions (there must be none once a request is resolved)."""
        return sorted(self.data.rglob("*.optout-staged"))


class Pristine:
    """One scanned world for a test session, given back to each test as it was scanned: the
    files copied back with their times, the catalog and its key file, and the PostgreSQL
    database cloned from a template — at the same paths and database name, so the catalog's
    locations hold. (A scan of the company takes most of a test's time otherwise.)

    Copies are new inodes, which file fingerprints include: the catalog's fingerprints are
    then those of the restored files, as a scan that found the same content records them.
    The data and everything derived from it are the scan's own."""

    def __init__(self, base: Path, company_dir: Path, classifier) -> None:
        from conftest import PG_ADMIN

        self.live, self.saved = base / "world", base / "pristine"
        self.live.mkdir()
        self.name = f"optout_world_{uuid.uuid4().hex[:8]}"
        self._admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
        self._admin.execute(f'CREATE DATABASE "{self.name}"')
        self.pg = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"
        World.scanned(self.live, company_dir, self.pg, classifier)
        shutil.copytree(self.live, self.saved, symlinks=True)
        self._admin.execute(f'CREATE DATABASE "{self.name}_pristine" TEMPLATE "{self.name}"')

    def world(self) -> World:
        """The world as scanned (whatever the last test did to it)."""
        shutil.rmtree(self.live)
        shutil.copytree(self.saved, self.live, symlinks=True)
        self._admin.execute(f'DROP DATABASE "{self.name}" WITH (FORCE)')
        self._admin.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.name}_pristine"')
        world = World(self.live, self.pg)
        records = world.catalog.datasets()
        with world.catalog.connect() as con:
            for location in sorted({r.location for r in records}):
                with open_source(location) as source:
                    for r in (r for r in records if r.location == location and r.fingerprint):
                        con.execute("UPDATE datasets SET fingerprint = ? WHERE id = ?",
                                    [source.fingerprint(ref_of(r)), r.id])
        return world

    def close(self) -> None:
        for name in (self.name, f"{self.name}_pristine"):
            self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.close()


def _path_of(name: str) -> str:
    return {"customers": "crm/customers.parquet", "customer_segments":
            "crm/customer_segments.parquet", "orders": "sales/orders", "payments":
            "sales/payments.csv", "tickets": "support/tickets.jsonl", "events":
            "web/events.jsonl", "leads_de": "marketing/leads_de.csv"}[name]


def digests(rows: list[tuple]) -> Counter:
    """Per-row checksums, as a multiset."""
    return Counter(hashlib.sha256(json.dumps(r, default=str).encode()).hexdigest() for r in rows)


def recomputed_ltv(world: World) -> list[tuple]:
    """customer_ltv recomputed from the cleaned sources, directly with DuckDB."""
    d = world.data
    con = duckdb.connect()
    con.execute(f"CREATE VIEW customers AS SELECT * FROM read_parquet('{d}/crm/customers.parquet')")
    con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{d}/sales/orders/**/*.parquet'"
                ", hive_partitioning=true)")
    sql = (d / "analytics" / "customer_ltv.sql").read_text().split(" AS\n", 1)[1]
    return con.execute(sql).fetchall()
