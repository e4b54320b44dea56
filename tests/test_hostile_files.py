"""Issue 13, the files: CSV in a backslash-escaped dialect, links planted where optout writes,
datasets behind links, hard links, file modes, and a Parquet file that decodes to gigabytes.
Each attack is run on real files; the refusal or the exact result is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.engine.targets import ApplyError
from optout.scanner.catalog import Catalog
from optout.scanner.scan import scan

POLICY = Path(__file__).resolve().parent.parent / "policies" / "gdpr-erasure.yaml"
NAMES = ["ana", "ben", "cleo", "dara", "eli", "finn", "gia", "hugo", "ines", "jon"]


def _plan(catalog: Catalog, *emails: str):
    return build_plan(catalog, PlanRequest([parse_subject(f"email={e}") for e in emails],
                                           load_policy(POLICY), str(POLICY)))


def _scanned(folder: Path, classifier) -> Catalog:
    catalog = Catalog(str(folder.parent / "catalog.duckdb"))
    report = scan([str(folder)], catalog, classifier=classifier)
    assert not report.failed, [r.error for r in report.results if r.error]
    return catalog


def _escaped_csv(path: Path) -> tuple[list[str], dict[str, str]]:
    """A CSV whose quoted notes escape quotes with a backslash and hold newlines; returns the
    raw records after the header and each person's record."""
    notes = ['said \\"hi\\", then left', 'two\nlines, \\"quoted\\"', "plain, with a comma",
             'ends in \\"quotes\\"', 'x \\"y\\" z\nand more']
    records, by_email = [], {}
    for i in range(40):
        email = f"{NAMES[i % 10]}.{i}@example.org"
        record = f'{i},{email},"{notes[i % len(notes)]}"\n'
        records.append(record)
        by_email[email] = record
    path.write_text("id,email,note\n" + "".join(records))
    return records, by_email


def test_a_backslash_escaped_csv_loses_exactly_its_subjects(tmp_path: Path, classifier) -> None:
    """Issue 13.1: the old target split records by counting quotes and parsed without the
    escape: it deleted innocent rows merged with a subject's and kept the other subject. Now
    both subjects are gone and every other record keeps its exact bytes."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "notes.csv"
    records, by_email = _escaped_csv(path)
    catalog = _scanned(data, classifier)
    [record] = catalog.datasets()
    assert (record.options["escape"], record.options["quote"]) == ("\\", '"')
    subjects = ["ana.0@example.org", "ben.11@example.org"]  # one plain, one with a newline
    plan = _plan(catalog, *subjects)
    [step] = plan.steps
    assert step.rows == 2 and not plan.unexecutable
    apply_plan(catalog, plan, ApplyOptions())
    kept = [r for r in records if r not in (by_email[s] for s in subjects)]
    assert path.read_text() == "id,email,note\n" + "".join(kept)
    rows = duckdb.connect().execute(
        f"SELECT count(*), count(*) FILTER (email IN ('{subjects[0]}', '{subjects[1]}')) "
        f"FROM read_csv('{path}', quote='\"', escape='\\', header=true)").fetchall()
    assert rows == [(38, 0)]


def test_a_csv_optout_cannot_read_as_duckdb_does_is_refused(tmp_path: Path,
                                                            classifier) -> None:
    """A file optout cannot split and parse as DuckDB reads it (here a 200 kB note, beyond
    Python's csv field limit, which raised `_csv.Error` out of apply) is never rewritten: the plan says why, and apply
    refuses it in one line with nothing changed (no stuck request, no lease, no staged file)."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "notes.csv"
    _escaped_csv(path)
    path.write_text(path.read_text().replace("plain, with a comma", "long " * 40_000, 1))
    before = path.read_bytes()
    catalog = _scanned(data, classifier)
    plan = _plan(catalog, "ana.0@example.org")
    [note] = plan.unexecutable
    assert note.dataset == "notes" and "cannot be read in the file's dialect" in note.reason
    with pytest.raises(ApplyError, match="notes: a record cannot be read in the file's dialect"):
        apply_plan(catalog, plan, ApplyOptions())
    assert path.read_bytes() == before
    assert not list(data.glob(".*optout-staged"))
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM leases").fetchall() == [(0,)]


def _people(folder: Path, name: str = "people.csv") -> Path:
    path = folder / name
    path.write_text("id,email\n" + "".join(f"{i},user{i}@example.com\n" for i in range(30)))
    return path


def test_a_link_planted_at_the_staged_name_is_not_written_through(
        tmp_path: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13.3: staged names were predictable; a link planted there received the dataset's
    content. Names are random now and created exclusively without following links: even a
    planted link at the exact name (the random part forced here) is not written through."""
    import optout.connectors.target as base

    data = tmp_path / "data"
    data.mkdir()
    people = _people(data)
    catalog = _scanned(data, classifier)
    plan = _plan(catalog, "user7@example.com")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    monkeypatch.setattr(base.secrets, "token_hex", lambda n: "0" * (2 * n))
    planted = data / f".people.csv.{plan.request_id}.{'0' * 12}.optout-staged"
    planted.symlink_to(victim)
    before = people.read_text()
    with pytest.raises(ApplyError, match="cannot create a staged version beside"):
        apply_plan(catalog, plan, ApplyOptions())
    assert victim.read_text() == "precious\n" and people.read_text() == before
    assert planted.is_symlink()  # not ours: left as it was


def test_a_dataset_behind_a_link_is_the_file_it_points_to(tmp_path: Path, classifier) -> None:
    """A symlinked file is scanned as the file it points to, and erased there; a dataset
    path replaced by a link after the scan is refused."""
    data = tmp_path / "data"
    real = tmp_path / "real"
    data.mkdir()
    real.mkdir()
    people = _people(real)
    (data / "people.csv").symlink_to(people)
    catalog = _scanned(data, classifier)
    [record] = catalog.datasets()
    assert record.location == str(people)
    apply_plan(catalog, _plan(catalog, "user7@example.com"), ApplyOptions())
    assert "user7@example.com" not in people.read_text()
    assert (data / "people.csv").is_symlink()

    moved = tmp_path / "elsewhere.csv"
    people.rename(moved)
    people.symlink_to(moved)  # the scanned path is a link now
    plan = _plan(catalog, "user8@example.com")
    assert [n.reason for n in plan.unexecutable] == [
        f"{people} is a symbolic link (to {moved}): optout changes files, not links; scan "
        "the file it points to"]
    with pytest.raises(ApplyError, match="is a symbolic link"):
        apply_plan(catalog, plan, ApplyOptions())
    assert "user8@example.com" in moved.read_text()


def test_a_file_with_a_second_hard_link_is_refused(tmp_path: Path, classifier) -> None:
    data = tmp_path / "data"
    data.mkdir()
    people = _people(data)
    os.link(people, tmp_path / "backup.csv")
    catalog = _scanned(data, classifier)
    plan = _plan(catalog, "user7@example.com")
    [note] = plan.unexecutable
    assert note.reason.endswith("has 2 hard links: the other names would keep its data after "
                                "the new version replaces this one")
    with pytest.raises(ApplyError, match="has 2 hard links"):
        apply_plan(catalog, plan, ApplyOptions())
    assert "user7@example.com" in (tmp_path / "backup.csv").read_text()


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_an_erasure_keeps_the_files_mode(tmp_path: Path, classifier, mode: int) -> None:
    """Issue 13.4: files at 0600 came back 0644 (new files got the umask)."""
    data = tmp_path / "data"
    data.mkdir()
    people = _people(data)
    pq.write_table(pa.table({"id": list(range(30)),
                             "email": [f"user{i}@example.com" for i in range(30)]}),
                   data / "copy.parquet")
    for path in (people, data / "copy.parquet"):
        path.chmod(mode)
    catalog = _scanned(data, classifier)
    apply_plan(catalog, _plan(catalog, "user7@example.com"), ApplyOptions())
    for path in (people, data / "copy.parquet"):
        assert oct(path.stat().st_mode & 0o777) == oct(mode), path
        assert "user7@example.com" not in str(pq.read_table(path).to_pylist()
                                              if path.suffix == ".parquet" else path.read_text())


def test_files_optout_writes_are_private(tmp_path: Path, classifier) -> None:
    """Plan files, reports and exports are 0600 whatever the umask."""
    from click.testing import CliRunner

    from optout.cli.main import cli
    from optout.scanner.access.principals import init_catalog

    data = tmp_path / "data"
    data.mkdir()
    _people(data)
    catalog = _scanned(data, classifier)
    runner = CliRunner(env={"OPTOUT_TOKEN": init_catalog(catalog)})
    old = os.umask(0o022)
    try:
        base = ["--catalog", catalog.path]
        outputs = {
            "plan.json": ["plan", "--subject", "email=user7@example.com", "--policy",
                          str(POLICY), "-o"],
            "plan.html": ["plan", "--subject", "email=user7@example.com", "--policy",
                          str(POLICY), "--format", "html", "-o"],
            "catalog.json": ["catalog", "export", "-o"],
            "catalog.csv": ["catalog", "export", "--format", "csv", "-o"],
            "audit.jsonl": ["audit", "export", "-o"],
        }
        for name, argv in outputs.items():
            result = runner.invoke(cli, [*base, *argv, str(tmp_path / name)])
            assert result.exit_code == 0, (name, result.output)
            assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o600", name
    finally:
        os.umask(old)


def test_applying_to_a_file_that_decodes_to_a_gigabyte_stays_small(tmp_path: Path,
                                                                   classifier) -> None:
    """Issue 13.10: a 1.5 MB Parquet file (1M rows of one dictionary-encoded 990-byte string)
    needed 2.3 GB to apply, one decoded row group at a time. Batches are bounded by bytes: the
    apply process peaks under 1 GiB (measured in a process of its own)."""
    data = tmp_path / "data"
    data.mkdir()
    n = 1_000_000
    pq.write_table(pa.table({
        "id": pa.array(range(n), pa.int64()),
        "email": pa.array([f"user{i % 997}@example.com" for i in range(n)]),
        "blob": pa.array(["x" * 990] * n).dictionary_encode().cast(pa.string())}),
        data / "big.parquet", row_group_size=n, compression="zstd")
    catalog = _scanned(data, classifier)
    plan = _plan(catalog, "user5@example.com")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    # The peak of the process's own memory after exec (VmHWM): ru_maxrss would count the
    # pytest process it was forked from.
    code = ("import re; from optout.engine.apply import apply_plan, ApplyOptions; "
            "from optout.model.plan import load_plan; from optout.scanner.catalog import Catalog; "
            f"apply_plan(Catalog({catalog.path!r}), load_plan({str(plan_file)!r}), "
            "ApplyOptions()); print(re.search(r'VmHWM:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr
    peak_mb = int(run.stdout.strip()) / 1024
    print(f"apply peak RSS: {peak_mb:.0f} MB")
    assert peak_mb < 1024
    left = pq.read_table(data / "big.parquet", columns=["email"]).column("email")
    assert json.loads(plan_file.read_text())["steps"][0]["rows"] == 1004
    assert len(left) == n - 1004 and "user5@example.com" not in set(left.to_pylist())
