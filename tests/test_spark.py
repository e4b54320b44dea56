"""The spark engine, run for real (pyspark, Java 17, `local[2]`): the same findings, plans and
erasures as DuckDB; partition files untouched unless they hold the subject; a SIGKILL at any
point of apply is finished by `resume`. One Spark session serves the whole module."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from optout.connectors import open_source
from optout.connectors.spark.source import SparkFileSource, SparkJdbcSource
from optout.engine.apply import ApplyOptions, StalePlan, apply_plan, resume
from optout.engine.approvals import approve
from optout.engine.erasure_report import build_report
from optout.engine.journal import Journal
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.model.plan import load_plan
from optout.scanner.access import Principal
from optout.scanner.access.principals import init_catalog
from optout.scanner.catalog import Catalog
from optout.scanner.config import Config
from optout.scanner.deployment import set_deployment_config
from optout.scanner.scan import ScanOptions, scan

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parent.parent
POLICY = str(ROOT / "policies" / "gdpr-erasure.yaml")
#: the JVM's quick compiler only: these tests run many small Spark jobs in short-lived
#: processes, where compiling for speed costs more than it gains
QUICK_JVM = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
SPARK = Config(engine="spark", spark={"conf": QUICK_JVM})
DUCK = Config()
#: the deployment's configuration of the tests that run the command line: plans made on
#: duckdb under it apply on spark
DEPLOYED = Config(spark={"conf": QUICK_JVM})
#: the customers (rows of crm/customers.parquet) erased in these tests
SUBJECTS = (3, 6, 9)
SECRET = "ab" * 32  # both engines' catalogs hash alike, so hashed columns compare too


@pytest.fixture(autouse=True)
def _same_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTOUT_SECRET", SECRET)


def findings(catalog: Catalog, formats: tuple[str, ...]) -> dict[str, dict]:
    """Per dataset of those formats, per column: PII, entity, identifier, free text."""
    return {r.name: {c.name: (c.pii, c.entity, c.identifier, c.free_text) for c in r.columns}
            for r in catalog.datasets() if r.format in formats}


def test_scan_on_spark_finds_what_duckdb_finds(company_dir: Path, company_scan, classifier,
                                               tmp_path: Path) -> None:
    """Every Parquet, CSV and JSON dataset of the fixture company, read by Spark."""
    data = company_dir / "company"
    with open_source(str(data / "crm" / "customers.parquet"), engine=SPARK.engine_of()) as s:
        assert isinstance(s, SparkFileSource)  # Spark reads it, not DuckDB
    catalog = Catalog(str(tmp_path / "spark.duckdb"))
    folders = [str(data / f) for f in ("crm", "sales", "marketing", "partners", "support",
                                       "web", "ci", "catalog")]
    report = scan(folders, catalog, ScanOptions(engine=SPARK.engine_of()),
                  classifier=classifier)
    assert not report.failed, [r.error for r in report.results if r.error]
    formats = ("parquet", "csv", "json")
    on_spark, on_duckdb = findings(catalog, formats), findings(company_scan[1], formats)
    assert set(on_spark) == set(on_duckdb) == {
        "customers", "customer_segments", "orders", "payments", "leads_de", "export_0417",
        "tickets", "events", "builds", "products"}
    assert on_spark == on_duckdb
    assert sum(c[0] for cols in on_spark.values() for c in cols.values()) >= 25
    counts = {r.name: r.row_count for r in catalog.datasets()}
    assert counts == {r.name: r.row_count for r in company_scan[1].datasets()
                      if r.format in formats}


def test_spark_samples_in_spark_and_brings_back_only_the_sample(company_dir: Path) -> None:
    path = company_dir / "company" / "web" / "events.jsonl"
    with open_source(str(path), engine=SPARK.engine_of()) as source:
        ref = next(iter(source.datasets()))
        sample = source.sample(ref, 100, 7)
        again = source.sample(ref, 100, 7)
    assert sample.row_count == 2000 and sample.table.num_rows <= 100
    assert sample.table.num_rows >= 80  # sample(fraction) sized from the count, then limited
    assert sample.table.equals(again.table)  # seeded: the same sample twice


def test_jdbc_scan_of_the_postgres_fixture_tables(company_pg: str, classifier,
                                                  tmp_path: Path) -> None:
    with open_source(company_pg, engine=SPARK.engine_of()) as source:
        assert isinstance(source, SparkJdbcSource)
    spark_cat = Catalog(str(tmp_path / "spark.duckdb"))
    duck_cat = Catalog(str(tmp_path / "duck.duckdb"))
    report = scan([company_pg], spark_cat, ScanOptions(engine=SPARK.engine_of()),
                  classifier=classifier)
    assert not report.failed, [r.error for r in report.results if r.error]
    scan([company_pg], duck_cat, classifier=classifier)
    on_spark = findings(spark_cat, ("postgresql",))
    assert on_spark == findings(duck_cat, ("postgresql",))
    assert on_spark["marketing.newsletter_subscribers"]["email"][:2] == (True, "EMAIL_ADDRESS")
    assert {r.name: r.row_count for r in spark_cat.datasets()} == \
        {r.name: r.row_count for r in duck_cat.datasets()}


# -- erasure ---------------------------------------------------------------------------------


class Copy:
    """crm/ and sales/ of the fixture company (customers, segments, orders partitioned by
    year and month, payments), scanned into a catalog of their own."""

    def __init__(self, root: Path, company_dir: Path, classifier) -> None:
        self.root = root
        self.data = root / "data"
        for folder in ("crm", "sales"):
            shutil.copytree(company_dir / "company" / folder, self.data / folder)
        self.catalog = Catalog(str(root / "catalog.duckdb"))
        report = scan([str(self.data)], self.catalog, classifier=classifier)
        assert not report.failed, [r.error for r in report.results if r.error]
        customers = pq.read_table(self.data / "crm" / "customers.parquet").to_pylist()
        self.emails = [customers[i]["email"] for i in SUBJECTS]
        self.ids = {customers[i]["id"] for i in SUBJECTS}

    def plan(self, config: Config, request_id: str):
        return build_plan(self.catalog, PlanRequest(
            [parse_subject(f"email={e}") for e in self.emails], load_policy(POLICY), POLICY,
            request_id), config)

    def files(self) -> dict[str, str]:
        """Every file below the data (staging leftovers included), by relative path: sha256."""
        return {str(p.relative_to(self.data)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.data.rglob("*")) if p.is_file()}

    def rows(self) -> dict[str, list[tuple]]:
        """The Parquet datasets' rows, read directly with DuckDB (in file order)."""
        con = duckdb.connect()
        out = {}
        for name, glob in (("customers", "crm/customers.parquet"),
                           ("customer_segments", "crm/customer_segments.parquet"),
                           ("orders", "sales/orders/**/*.parquet")):
            out[name] = con.execute(
                f"SELECT * FROM read_parquet('{self.data / glob}')").fetchall()
        con.close()
        return out


def subjects_rows(copy: Copy, rows: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The subjects' rows, decided from the data's documented meaning, not by optout:
    customers by email, segments and orders by the customers' id."""
    return {"customers": [r for r in rows["customers"] if r[3] in copy.emails],
            "customer_segments": [r for r in rows["customer_segments"] if r[0] in copy.ids],
            "orders": [r for r in rows["orders"] if r[1] in copy.ids]}


class Erased:
    """One copy's erasure, on one engine: the plan, the request, and the data before and
    after it; then a second request on the same copy that anonymizes other customers."""

    def __init__(self, copy: Copy, config: Config, engine: str) -> None:
        self.copy = copy
        self.before_files, self.before_rows = copy.files(), copy.rows()
        self.plan = copy.plan(config, f"erase-{engine}")
        self.rid = apply_plan(copy.catalog, self.plan, ApplyOptions(config=config))
        self.files, self.rows = copy.files(), copy.rows()
        customers = pq.read_table(copy.data / "crm" / "customers.parquet").to_pylist()
        self.anonymized = [customers[i]["email"] for i in ANONYMIZED]
        policy = str(ROOT / "policies" / "anonymize-only.yaml")
        plan = build_plan(copy.catalog, PlanRequest(
            [parse_subject(f"email={e}") for e in self.anonymized], load_policy(policy),
            policy, f"anonymize-{engine}"), config)
        self.anon_plan = plan
        self.anon_rid = apply_plan(copy.catalog, plan, ApplyOptions(config=config))
        self.anon_files, self.anon_rows = copy.files(), copy.rows()


#: customers anonymized (not deleted) by a second request, after the erasure
ANONYMIZED = (11, 14)


@pytest.fixture(scope="module")
def erased(tmp_path_factory: pytest.TempPathFactory, company_dir: Path, classifier
           ) -> dict[str, Erased]:
    """The same requests on two copies, planned and applied on DuckDB in one and on Spark in
    the other."""
    with pytest.MonkeyPatch.context() as patch:  # undone after the module
        patch.setenv("OPTOUT_SECRET", SECRET)
        yield {engine: Erased(Copy(tmp_path_factory.mktemp(engine), company_dir, classifier),
                              config, engine)
               for engine, config in (("duckdb", DUCK), ("spark", SPARK))}


def test_spark_erases_exactly_what_duckdb_erases(erased: dict[str, Erased]) -> None:
    duck, spark = erased["duckdb"], erased["spark"]
    copy, plan = spark.copy, spark.plan
    assert plan.engine == "spark" and duck.plan.engine == "duckdb"
    # the same plan: datasets, actions, rows, and where the rows are
    strip = str(copy.data), str(duck.copy.data)
    assert [(s.dataset, s.action, s.rows, [(p.replace(strip[0], ""), r) for p, _, r in
                                           s.locations]) for s in plan.steps] == \
        [(s.dataset, s.action, s.rows, [(p.replace(strip[1], ""), r) for p, _, r in
                                        s.locations]) for s in duck.plan.steps]
    theirs = subjects_rows(copy, spark.before_rows)
    assert {k: len(v) for k, v in theirs.items()} == {"customers": 3, "customer_segments": 3,
                                                     "orders": 8}
    for name, rows in spark.before_rows.items():  # the subjects gone, others kept, in order
        assert spark.rows[name] == [r for r in rows if r not in theirs[name]], name
    assert spark.rows == duck.rows  # the same data as the DuckDB engine left
    # file by file: the same bytes where nothing changed, the same rows where Spark rewrote
    files, before = spark.files, spark.before_files
    assert set(files) == set(before)  # no staging folder or file left
    changed = {f for f in files if files[f] != before[f]}
    assert changed == {f for f in duck.files if duck.files[f] != duck.before_files[f]}
    assert changed == {"crm/customers.parquet", "crm/customer_segments.parquet",
                       "sales/payments.csv"} | {
        f"sales/orders/year=2025/month={m}/part-0.parquet" for m in ("01", "02", "08", "09",
                                                                     "12")}
    assert files["sales/payments.csv"] == duck.files["sales/payments.csv"]  # same secret
    same_layout(spark.copy, duck.copy, changed - {"sales/payments.csv"})
    report, duck_report = build_report(copy.catalog, spark.rid), build_report(
        duck.copy.catalog, duck.rid)
    assert report["status"] == duck_report["status"] == "complete"
    counts = {s["dataset"]: (s["rows_changed"], s["residue"]) for s in report["steps"]}
    assert counts == {s["dataset"]: (s["rows_changed"], s["residue"])
                      for s in duck_report["steps"]}
    assert counts["orders"] == (8, 0) and counts["customers"] == (3, 0)


def same_layout(copy: Copy, other: Copy, files: set[str]) -> None:
    """The files hold the same rows, schema and compression in both copies."""
    for f in files:
        new, old = pq.ParquetFile(copy.data / f), pq.ParquetFile(other.data / f)
        assert new.schema_arrow.remove_metadata() == old.schema_arrow.remove_metadata()
        assert new.read().equals(old.read()), f
        assert new.metadata.row_group(0).column(0).compression == \
            old.metadata.row_group(0).column(0).compression == "ZSTD"


def test_spark_anonymizes_exactly_what_duckdb_anonymizes(erased: dict[str, Erased]) -> None:
    """Column changes (hash, null, generalize) on the matched rows only, as DuckDB makes them."""
    duck, spark = erased["duckdb"], erased["spark"]
    assert {s.action for s in spark.anon_plan.steps} == {"hash"}  # columns, not rows
    changed = {f for f in spark.anon_files if spark.anon_files[f] != spark.files[f]}
    assert "crm/customers.parquet" in changed
    assert changed == {f for f in duck.anon_files if duck.anon_files[f] != duck.files[f]}
    assert spark.anon_rows == duck.anon_rows
    same_layout(spark.copy, duck.copy, changed - {"sales/payments.csv"})
    assert spark.anon_files["sales/payments.csv"] == duck.anon_files["sales/payments.csv"]
    for name, rows in spark.rows.items():  # same row count; only the two customers' rows differ
        after = spark.anon_rows[name]
        assert len(after) == len(rows)
        differ = [a for a, b in zip(rows, after, strict=True) if a != b]
        assert differ, name
        if name == "customers":
            assert len(differ) == 2 and {r[3] for r in differ} == set(spark.anonymized)
            assert not {r[3] for r in after} & set(spark.anonymized)


def test_a_spark_plan_whose_data_changed_is_refused_by_either_engine(
        tmp_path: Path, company_dir: Path, classifier) -> None:
    copy = Copy(tmp_path, company_dir, classifier)
    plan = copy.plan(SPARK, "stale")
    assert plan.engine == "spark"
    month = copy.data / "sales" / "orders" / "year=2025" / "month=03" / "part-0.parquet"
    shutil.copy(month, tmp_path / "tmp.parquet")
    os.replace(tmp_path / "tmp.parquet", month)  # same rows, another file
    before = copy.files()
    for config in (DEPLOYED, SPARK):  # one deployment's configuration, either engine
        with pytest.raises(StalePlan, match="orders changed since the plan was made"):
            apply_plan(copy.catalog, plan, ApplyOptions(config=config))
    assert copy.files() == before


# -- SIGKILL at each fault point, then resume --------------------------------------------------


class Killed:
    """A copy whose Spark apply is started in its own process, to die at a fault point."""

    def __init__(self, root: Path, company_dir: Path, classifier, point: str) -> None:
        self.point = point
        self.copy = copy = Copy(root, company_dir, classifier)
        self.before_files, self.before_rows = copy.files(), copy.rows()
        # applied on Spark: plans are portable
        self.plan = copy.plan(DEPLOYED, f"kill-{point}")
        path = root / "plan.json"
        path.write_text(self.plan.to_json())
        token = init_catalog(copy.catalog)
        approve(copy.catalog, self.plan, Principal("approver", frozenset({"approver"})))
        config = root / "deployment.yaml"
        config.write_text(yaml.safe_dump({"spark": {"conf": QUICK_JVM}}))
        set_deployment_config(copy.catalog, str(config), "admin")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "optout.cli.main", "--catalog", copy.catalog.path,
             "apply", str(path), "--yes", "--engine", "spark"],
            env={**os.environ, "OPTOUT_TOKEN": token, "OPTOUT_FAULT": point},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)


#: every fault point of apply, two at a time (two processes: each mostly starts a JVM)
POINTS = [("mid-spark-rewrite", "after-prepare"), ("after-check", "mid-commit"),
          ("mid-file-commit", "before-verify")]


@pytest.mark.parametrize("points", POINTS, ids=["-".join(p) for p in POINTS])
def test_killed_at_each_point_then_resumed(tmp_path: Path, company_dir: Path, classifier,
                                           erased: dict[str, Erased],
                                           points: tuple[str, str]) -> None:
    runs = [Killed(tmp_path / point, company_dir, classifier, point) for point in points]
    done = erased["duckdb"].rows
    for run in runs:
        out, err = run.process.communicate(timeout=300)
        assert run.process.returncode == -9, out + err
    for run in runs:
        copy, point, before_rows = run.copy, run.point, run.before_rows
        status = Journal(copy.catalog).request(run.plan.request_id)["status"]
        if point in ("mid-spark-rewrite", "after-prepare", "after-check"):
            assert status == "preparing", point
            assert copy.rows() == before_rows, point  # nothing visible before the commit
        if point == "mid-spark-rewrite":
            assert any(p.name.endswith(".optout-spark") for p in copy.data.rglob(".*"))
        for name, rows in copy.rows().items():  # every file whole: each dataset reads
            assert len(done[name]) <= len(rows) <= len(before_rows[name]), (point, name)
        resume(copy.catalog, run.plan.request_id,
               ApplyOptions(config=SPARK, caller=Principal("admin", frozenset({"admin"}))))
        assert Journal(copy.catalog).request(run.plan.request_id)["status"].startswith(
            "complete"), point
        assert copy.rows() == done, point
        files = copy.files()
        assert set(files) == set(run.before_files), point  # staging folders gone
        assert not [p for p in copy.data.rglob(".*")], point
        untouched = [f for f in files if "month=03" in f or "month=04" in f]
        assert untouched and all(files[f] == run.before_files[f] for f in untouched), point


def test_a_file_spark_cannot_write_as_it_was_stops_the_request_unchanged(
        tmp_path: Path, classifier) -> None:
    """Spark writes every column nullable: a file with a NOT NULL column would come back with
    another schema, so the request stops before anything is visible, and says what to do."""
    import pyarrow as pa

    from optout.engine.targets import ApplyError

    data = tmp_path / "data"
    data.mkdir()
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("email", pa.string())])
    people = [{"id": i, "email": f"p{i}@example.com"} for i in range(50)]
    pq.write_table(pa.Table.from_pylist(people, schema), data / "people.parquet")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    assert not scan([str(data)], catalog, classifier=classifier).failed
    plan = build_plan(catalog, PlanRequest([parse_subject("email=p7@example.com")],
                                           load_policy(POLICY), POLICY, "nullable"), SPARK)
    assert [s.rows for s in plan.steps] == [1]
    before = (data / "people.parquet").read_bytes()
    with pytest.raises(ApplyError, match=r"'id' .* as int64, the file has int64 not null: "
                                         r"refused \(apply the plan with --engine duckdb"):
        apply_plan(catalog, plan, ApplyOptions(config=SPARK))
    assert (data / "people.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if "optout" in p.name) == []
    assert Journal(catalog).request("nullable")["status"] == "rolled_back"


def test_hostile_files_fail_alone_with_one_line_errors_on_spark(tmp_path: Path,
                                                                classifier) -> None:
    import pyarrow as pa

    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"email": [f"p{i}@example.com" for i in range(40)]}),
                   data / "good.parquet")
    (data / "torn.parquet").write_bytes(b"PAR1" + os.urandom(200))
    (data / "broken.jsonl").write_text('{"email": "a@b.io"}\n{"email": \n')
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    report = scan([str(data)], catalog, ScanOptions(engine=SPARK.engine_of()),
                  classifier=classifier)
    status = {r.ref.name: (r.status, r.error) for r in report.results}
    assert status["good"] == ("scanned", None)
    for name, says in (("torn", "Could not read footer"), ("broken", "Malformed records")):
        state, error = status[name]
        assert state == "failed" and says in error, error
        assert "\n" not in error and len(error) <= 300, error
        assert "An error occurred while calling" not in error, error
    assert "p1@example.com" not in " ".join(str(e) for _, e in status.values())


@pytest.mark.parametrize("kind", ["code", "email", "name", "phone"])
def test_spark_normalizes_as_python_does(kind: str) -> None:
    """Every whitespace character Python strips and splits on (Spark's trim strips spaces
    only, Java's `\\s` is ASCII); the other engines: test_normalization.py."""
    from pyspark.sql import functions as F
    from test_normalization import TRICKY

    from optout.connectors.spark.matching import normalized
    from optout.connectors.spark.session import session
    from optout.model.identifiers import normalize

    frame = session(SPARK.engine_of()).createDataFrame(
        [(i, v) for i, v in enumerate(TRICKY)], "i long, v string")
    got = [r[0] for r in frame.orderBy("i").select(normalized(kind, F.col("v"))).collect()]
    assert got == [normalize(kind, v) for v in TRICKY]


def test_attack4_no_key_material_in_sparks_event_log(tmp_path: Path, company_dir: Path,
                                                     classifier) -> None:
    """Issue 26, attack 4: the admin's Spark settings turn the event log on (any Spark conf is
    the deployment's to set); a requester plans on spark. The event log holds the hashing
    query, but neither the catalog secret nor the identifier key derived from it, nor their
    HMAC pads, in any form a plan prints bytes in. Control: the plan on spark finds the
    subjects' rows as the duckdb plan does."""
    import base64

    from staff import Staff

    from optout.model.secret import KeyedHash, identifier_key

    copy = Copy(tmp_path / "copy", company_dir, classifier)
    staff = Staff(copy.catalog)
    events = tmp_path / "events"
    events.mkdir()
    conf = {**QUICK_JVM, "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": f"file://{events}", "spark.eventLog.compress": "false"}
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump({"spark": {"conf": conf}}))
    assert staff.cli("admin", "config", "set", str(tmp_path / "deployment.yaml")).returncode == 0
    subjects = [a for e in copy.emails for a in ("--subject", f"email={e}")]
    done = staff.cli("requester", "plan", *subjects, "--policy", "gdpr-erasure", "--engine",
                     "spark", "-o", str(tmp_path / "spark.json"))
    assert done.returncode in (0, 4), done.stderr
    log = b"".join(p.read_bytes() for p in events.rglob("*") if p.is_file())
    assert b"optout_ipad" in log and b"sha2" in log.lower()  # the hashing query was logged
    secret = bytes.fromhex(SECRET)
    derived = identifier_key(secret)
    for material in (secret, *KeyedHash(secret).pads, derived, *KeyedHash(derived).pads):
        for form in (material.hex().encode(), material.hex().upper().encode(),
                     base64.b64encode(material)[:24], material[:24]):
            assert form not in log
    done = staff.cli("requester", "plan", *subjects, "--policy", "gdpr-erasure", "--engine",
                     "duckdb", "-o", str(tmp_path / "duckdb.json"))
    on_spark, on_duckdb = load_plan(tmp_path / "spark.json"), load_plan(tmp_path / "duckdb.json")
    assert {(s.dataset, s.action, s.rows) for s in on_spark.steps} == {
        (s.dataset, s.action, s.rows) for s in on_duckdb.steps}
    assert sum(s.rows or 0 for s in on_spark.steps if s.dataset == "customers") == 3
