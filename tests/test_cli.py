"""The `optout` command line, driven through click's CliRunner: messages and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from optout.cli.main import cli
from optout.scanner.access.principals import init_catalog
from optout.scanner.catalog import Catalog

POLICIES = Path(__file__).resolve().parent.parent / "policies"


@pytest.fixture()
def run(tmp_path: Path):
    catalog = str(tmp_path / "cli.duckdb")
    token = init_catalog(Catalog(catalog))

    def invoke(*args: str, config: str | None = None):
        extra = ["--config", config] if config else []
        return CliRunner(env={"OPTOUT_TOKEN": token}).invoke(
            cli, ["--catalog", catalog, *extra, *args])

    return invoke


@pytest.fixture()
def small_source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "people.csv").write_text(
        "id,email,notes\n" + "".join(f"{i},user{i}@example.com,fine\n" for i in range(50))
    )
    return folder


def test_scan_then_list_show_export(run, small_source: Path) -> None:
    result = run("scan", str(small_source))
    assert result.exit_code == 0, result.output
    assert "1 scanned, 0 unchanged (skipped), 0 failed; 2 PII columns" in result.output
    assert "user1@example.com" not in result.output
    listing = run("catalog", "list", "--pii")
    assert listing.exit_code == 0
    assert "id:PERSON_ID" in listing.output and "email:EMAIL_ADDRESS" in listing.output
    shown = run("catalog", "show", "people")
    assert shown.exit_code == 0 and "u***@e***.com" in shown.output
    exported = json.loads(run("catalog", "export", "--format", "json").output)
    email = next(c for c in exported["datasets"][0]["columns"] if c["name"] == "email")
    assert (email["pii"], email["entity"], email["identifier"]) == (True, "EMAIL_ADDRESS", True)
    rows = list(csv.DictReader(io.StringIO(run("catalog", "export", "--format", "csv").output)))
    assert [r["column"] for r in rows] == ["id", "email", "notes"]
    assert run("scan", str(small_source)).output.count("unchanged (skipped)") == 1


def test_scan_failure_is_one_line_and_exit_1(run, tmp_path: Path) -> None:
    result = run("scan", str(tmp_path / "missing.csv"))
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'missing.csv'}: no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_unreachable_database_exit_1(run) -> None:
    result = run("scan", "postgresql://postgres@127.0.0.1:1/nothing")
    assert result.exit_code == 1
    assert "Error: cannot connect to postgresql://postgres@127.0.0.1:1/nothing" in result.output


def test_show_unknown_dataset(run, small_source: Path) -> None:
    run("scan", str(small_source))
    result = run("catalog", "show", "nope")
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        "no dataset 'nope' in " + str(Path(result.output.split(" in ")[-1].strip()))
    )
    assert result.output.startswith("Error: no dataset 'nope'")


def test_list_without_catalog(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.duckdb")
    result = CliRunner(env={"OPTOUT_TOKEN": "x"}).invoke(cli, ["--catalog", missing, "catalog",
                                                              "list"])
    assert result.exit_code == 3 and "not initialized; run `optout init` first" in result.output
    assert not Path(missing).exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scan:\n  sample_rowz: 10\n", "scan.sample_rowz: Extra inputs are not permitted"),
        (
            "scan:\n  sample_rows: -1\n",
            "scan.sample_rows: Input should be greater than or equal to 1",
        ),
        ("scan: [1, 2\n", "not valid YAML"),
        ("scan:\n  recognizers: [nope.yaml]\n", "scan.recognizers: no such file"),
        ("engine: sparkk\n", "engine: Input should be 'duckdb' or 'spark'"),
        ("spark:\n  masterr: local[2]\n", "spark.masterr"),
    ],
)
def test_bad_config_is_a_hard_error(run, tmp_path: Path, text: str, message: str) -> None:
    """The deployment's configuration, as an admin sets it: validated, named by key."""
    config = tmp_path / "deployment.yaml"
    config.write_text(text)
    result = run("config", "set", str(config))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {config}")
    assert message in result.output
    assert "(none set: defaults)" in run("config", "show").output  # nothing was stored


@pytest.mark.parametrize(
    "text,message",
    [
        ("identity:\n  max_keys: 3\n", "line 1: identity: only the deployment's configuration"),
        ("scan:\n  sample_rowz: 10\n", "line 2: scan.sample_rowz: only the deployment's"),
        ("scan:\n  recognizers: [x.yaml]\n", "line 2: scan.recognizers: only the deployment"),
        ("scan:\n  sample_rows: -1\n", "scan.sample_rows: Input should be greater than or "
                                         "equal to 1"),
        ("scan: [1, 2\n", "not valid YAML"),
    ],
)
def test_a_local_config_may_set_only_the_scan_sample(
    run, tmp_path: Path, small_source: Path, text: str, message: str
) -> None:
    config = tmp_path / "optout.yaml"
    config.write_text(text)
    result = run("scan", str(small_source), config=str(config))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {config}")
    assert message in result.output
    config.write_text("scan:\n  sample_rows: 20\n  seed: 7\n")  # control
    assert run("scan", str(small_source), config=str(config)).exit_code == 0


def test_user_recognizers_from_presidio_yaml(run, tmp_path: Path) -> None:
    (tmp_path / "rec.yaml").write_text(
        "recognizers:\n"
        "  - name: MembershipRecognizer\n"
        "    supported_language: en\n"
        "    supported_entity: MEMBERSHIP_NO\n"
        "    patterns:\n"
        "      - name: membership\n"
        '        regex: "\\\\bMBR-\\\\d{6}\\\\b"\n'
        "        score: 0.9\n"
    )
    (tmp_path / "optout.yaml").write_text("scan:\n  recognizers: [rec.yaml]\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "m.csv").write_text("c\n" + "".join(f"MBR-{100000 + i}\n" for i in range(30)))
    assert run("config", "set", str(tmp_path / "optout.yaml")).exit_code == 0
    result = run("scan", str(data))
    assert result.exit_code == 0, result.output
    assert "c (MEMBERSHIP_NO)" in result.output


def test_entities_option_restricts(run, small_source: Path) -> None:
    result = run("scan", str(small_source), "--entities", "PHONE_NUMBER")
    assert result.exit_code == 0
    assert "0 PII columns" in result.output


def test_unknown_entity_is_an_error(run, small_source: Path) -> None:
    result = run("scan", str(small_source), "--entities", "EMAIL_ADRESS")
    assert result.exit_code == 1
    assert result.output == "Error: Unknown entity 'EMAIL_ADRESS'. Did you mean EMAIL_ADDRESS?\n"
    assert Catalog(str(small_source.parent / "cli.duckdb")).datasets() == []  # nothing scanned


def test_plan_graph_and_lineage_commands(tmp_path: Path, company_dir: Path) -> None:
    import pyarrow.parquet as pq

    catalog = str(tmp_path / "c.duckdb")
    runner = CliRunner(env={"OPTOUT_TOKEN": init_catalog(Catalog(catalog))})

    def optout(*args: str):
        return runner.invoke(cli, ["--catalog", catalog, *args])

    company = company_dir / "company"
    assert optout("scan", "-q", str(company / "crm"), str(company / "sales")).exit_code == 0
    graph = optout("graph")
    assert graph.exit_code == 0
    assert "key customers:id" in graph.output and "orders:customer_id" in graph.output
    sql = tmp_path / "top_customers.sql"
    sql.write_text("SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id")
    result = optout("lineage", "add-sql", str(sql))
    assert result.exit_code == 1
    assert "builds a table that is not in the catalog (top_customers)" in result.output
    shown = optout("lineage", "show", "customer_segments")
    assert shown.exit_code == 0
    assert optout("lineage", "add", str(company / "lineage.yaml")).output.endswith(
        "1 lineage edges\n"
    )
    assert "customers" in optout("lineage", "show", "customer_segments").output
    row = pq.read_table(company / "crm" / "customers.parquet").to_pylist()[0]
    out = tmp_path / "plan.json"
    planned = optout(
        "plan",
        "--subject",
        f"email={row['email']}",
        "--policy",
        str(POLICIES / "gdpr-erasure.yaml"),
        "-o",
        str(out),
    )
    assert planned.exit_code == 0, planned.output
    assert "datasets hold the subject" in planned.output
    assert row["email"] not in out.read_text() and row["email"] not in planned.output
    md = optout(
        "plan",
        "--subject",
        f"customer_id={row['id']}",
        "--policy",
        str(POLICIES / "gdpr-erasure.yaml"),
        "--format",
        "md",
    )
    assert md.exit_code == 0 and md.output.startswith("# Erasure plan")
    bad = optout("plan", "--subject", "ssn=1", "--policy", str(POLICIES / "ccpa-opt-out.yaml"))
    assert bad.exit_code == 1
    assert "Error: the policy does not accept 'ssn' identifiers" in bad.output
    none = optout("plan", "--policy", str(POLICIES / "gdpr-erasure.yaml"))
    assert none.exit_code == 2 and "give at least one --subject" in none.output


def test_commands_never_load_pandas() -> None:
    """pyarrow would import pandas (0.2 s) on its first array from Python objects; in an
    optout command that import fails at once, and arrays, polars and the sampling still work
    (polars still sees that pandas is installed)."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.util\n"
        "from optout.engine.no_pandas import without_pandas\n"
        "without_pandas()\n"
        "import pyarrow as pa, polars as pl\n"
        "assert pa.array(['a', None]).null_count == 1\n"
        "assert pl.DataFrame({'a': [1, 2]})['a'].sum() == 3\n"
        "assert 'pandas' not in sys.modules, 'pandas was loaded'\n"
        "assert importlib.util.find_spec('pandas') is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]


def test_commands_that_touch_no_data_load_no_engine() -> None:
    """`optout --help` (and any command's --help) starts without DuckDB, Arrow, Polars,
    Presidio, spaCy, psycopg, sqlglot or rich: start-up stays well under 0.3 s."""
    import subprocess
    import sys

    heavy = ("duckdb", "pyarrow", "polars", "presidio_analyzer", "spacy", "psycopg",
             "sqlglot", "rich", "pydantic")
    code = ("import sys\nfrom click.testing import CliRunner\nfrom optout.cli.main import cli\n"
            "for argv in (['--help'], ['plan', '--help'], ['catalog', 'list', '--help']):\n"
            "    assert CliRunner().invoke(cli, argv).exit_code == 0, argv\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
