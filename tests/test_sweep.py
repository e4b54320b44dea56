"""Issue 13's sweep: after a full run as users run it — scan (files and a PostgreSQL URI with a
password), plan, approve, apply, reports, exports, the worker with a dead letter — nothing
optout keeps or writes holds the fixtures' raw identifiers or the database password: not a
catalog table, not a file it wrote, not the audit export, not a message left in NATS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest
from conftest import throwaway_database
from stream_read import publish_raw, stream_messages

from fixtures.generate import load_postgres
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog
from optout.worker.messages import DEAD, REQUESTS, STATUS

ROOT = Path(__file__).resolve().parent.parent
OPTOUT = [sys.executable, "-m", "optout.cli.main"]
PASSWORD = "Sw33p-pa55word"


def _identifiers(data: Path, pg: str) -> set[str]:
    """Every raw identifier the fixtures hold: customers' emails, phones and names, the
    newsletter's subscriber emails."""
    out: set[str] = set()
    for row in pq.read_table(data / "crm" / "customers.parquet").to_pylist():
        out |= {row["email"], row["phone"], f"{row['first_name']} {row['last_name']}"}
    with psycopg.connect(pg) as con:
        out |= {r[0] for r in con.execute(
            "SELECT email FROM marketing.newsletter_subscribers").fetchall()}
    return {v for v in out if v and len(v) > 5}


@pytest.mark.slow
def test_nothing_optout_keeps_holds_a_raw_identifier_or_a_password(tmp_path: Path,
                                                                     company_dir: Path) -> None:
    for pg in throwaway_database():
        _sweep(pg, tmp_path, company_dir)


def _sweep(pg: str, tmp_path: Path, company_dir: Path) -> None:
    load_postgres(pg)
    secret_uri = pg.replace("postgres@", f"postgres:{PASSWORD}@")  # trust auth ignores it
    data = tmp_path / "company"
    shutil.copytree(company_dir / "company", data)
    work = tmp_path / "work"
    work.mkdir()
    raw = _identifiers(data, pg)
    subject = pq.read_table(data / "crm" / "customers.parquet").to_pylist()[3]

    catalog = Catalog(str(work / "catalog.duckdb"))
    tokens = {"admin": init_catalog(catalog)}
    add_principal(catalog, "approver", ["approver"], "admin")
    add_principal(catalog, "worker", ["requester", "operator", "scanner"], "admin")
    tokens |= {p: create_token(catalog, p)[1] for p in ("approver", "worker")}
    ns = f"t{uuid.uuid4().hex[:10]}"

    def optout(*argv: str, who: str = "admin") -> subprocess.CompletedProcess:
        return subprocess.run([*OPTOUT, "--catalog", catalog.path, *argv],
                              env={**os.environ, "OPTOUT_TOKEN": tokens[who]},
                              capture_output=True, text=True, cwd=ROOT, timeout=600)

    outputs = {"scan": optout("scan", str(data), secret_uri)}
    plan = work / "plan.json"
    outputs["plan"] = optout("plan", "--subject", f"email={subject['email']}",
                             "--subject", f"phone={subject['phone']}", "--policy",
                             "gdpr-erasure", "--request-id", "sweep", "-o", str(plan))
    for fmt in ("md", "html"):
        outputs[f"plan-{fmt}"] = optout("plan", "--subject", f"email={subject['email']}",
                                        "--policy", "gdpr-erasure", "--format", fmt,
                                        "-o", str(work / f"plan.{fmt}"))
    outputs["approve"] = optout("approve", str(plan), who="approver")
    outputs["apply"] = optout("apply", str(plan), "--yes")
    assert outputs["apply"].returncode == 4, outputs["apply"].stderr  # datasets need review
    for fmt in ("json", "md", "html"):
        outputs[f"report-{fmt}"] = optout("report", "sweep", "--format", fmt)
        (work / f"report.{fmt}").write_text(outputs[f"report-{fmt}"].stdout)
    outputs["export-json"] = optout("catalog", "export", "-o", str(work / "catalog.json"))
    outputs["export-csv"] = optout("catalog", "export", "--format", "csv", "-o",
                                   str(work / "catalog.csv"))
    outputs["show"] = optout("catalog", "show", "customers")
    outputs["graph"] = optout("graph")
    # the worker: a request for another customer, and a message that will not validate
    other = pq.read_table(data / "crm" / "customers.parquet").to_pylist()[5]
    (work / "auto.yaml").write_text((ROOT / "policies" / "gdpr-erasure.yaml").read_text()
                                    .replace("name: gdpr-erasure", "name: auto")
                                    + "\napprovals: 0\n")
    outputs["policy"] = optout("policy", "add", str(work / "auto.yaml"))
    outputs["submit"] = optout("request", "submit", "--namespace", ns, "--id", "w-1",
                               "--identifier", f"email={other['email']}", "--policy",
                               "auto", who="worker")
    publish_raw(ns, REQUESTS, json.dumps({"request_id": "bad!", "policy": "auto",
                                          "identifiers": {"email": other["email"]}}).encode())
    outputs["worker"] = optout("worker", "--namespace", ns, "--plans-dir", str(work),
                               "--until-idle", who="worker")
    assert outputs["worker"].returncode == 0, outputs["worker"].stderr
    outputs["audit"] = optout("audit", "export", "-o", str(work / "audit.jsonl"),
                              who="admin")
    assert all(o.returncode in (0, 4) for o in outputs.values()), {
        k: o.stderr for k, o in outputs.items() if o.returncode not in (0, 4)}

    texts = {f"output of {k}": o.stdout + o.stderr for k, o in outputs.items()}
    for path in work.rglob("*"):
        if path.is_file() and not path.name.startswith("catalog.duckdb"):
            texts[str(path)] = path.read_bytes().decode(errors="replace")
    con = duckdb.connect(catalog.path, read_only=True)
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        texts[f"catalog table {table}"] = str(con.execute(
            f'SELECT * FROM "{table}"').fetchall())
    con.close()
    streams = {kind: stream_messages(ns, kind) for kind in (REQUESTS, STATUS, DEAD)}
    texts |= {f"stream {k}": json.dumps(v) for k, v in streams.items()}

    assert len(streams[DEAD]) == 1 and streams[REQUESTS] == []  # resolved: deleted
    assert len(texts) > 30 and len(raw) > 100
    found = {(where, value) for where, text in texts.items() for value in raw | {PASSWORD}
             if value in text}
    assert found == set(), sorted(found)[:10]
