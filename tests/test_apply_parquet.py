"""Parquet erasure by the row positions a plan carries, and the full pass it falls back to."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optout.connectors.parquet.target import ParquetTarget
from optout.engine.apply import ApplyOptions, apply_plan
from optout.engine.plan_store import record_plan
from optout.engine.planner import PlanRequest, build_plan
from optout.engine.policy import load_policy
from optout.engine.subjects import parse_subject
from optout.engine.targets import ApplyError
from optout.scanner.catalog import Catalog
from optout.scanner.scan import scan

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "ana.ruiz@example.org"
# The subject in three row groups, under two spellings of her email.
SUBJECT_ROWS = {3, 250, 401}


def people(n: int = 600) -> pa.Table:
    emails = [f"person{i}@example.com" for i in range(n)]
    emails[3], emails[250], emails[401] = SUBJECT, "Ana.Ruiz@Example.org", SUBJECT
    return pa.table({
        "id": pa.array(range(n), pa.int32()),
        "email": emails,
        "full_name": [f"Given{i} Family{i}" for i in range(n)],
        "amount": pa.array([i / 4 for i in range(n)], pa.float32()),
    })


@pytest.fixture()
def dataset(tmp_path: Path, classifier) -> tuple[Catalog, Path, pa.Table]:
    data = tmp_path / "data"
    data.mkdir()
    table = people()
    path = data / "people.parquet"
    pq.write_table(table, path, row_group_size=200, compression="gzip")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(data)], catalog, classifier=classifier)
    return catalog, path, table


def plan_for(catalog: Catalog):
    """The subject's plan. Her email is in three rows of a table of people (duplicates under
    two spellings): resolution would stop her as ambiguous; the caller accepts it."""
    policy = ROOT / "policies" / "gdpr-erasure.yaml"
    plan = build_plan(catalog, PlanRequest([parse_subject(f"email={SUBJECT}")],
                                           load_policy(policy), str(policy)),
                      accept_ambiguous=True)
    assert [r.status for r in plan.resolution] == ["accepted"]
    return plan


def with_locations(catalog: Catalog, plan, locations):
    """The plan with other row positions, sealed and recorded again (as if the planner had
    said so)."""
    step = dataclasses.replace(plan.steps[0], locations=locations)
    plan = dataclasses.replace(plan, steps=(step,)).sealed()
    return record_plan(catalog, plan)


def others(table: pa.Table) -> list[dict]:
    return [r for i, r in enumerate(table.to_pylist()) if i not in SUBJECT_ROWS]


def assert_erased(path: Path, table: pa.Table) -> None:
    after = pq.ParquetFile(path)
    assert after.read().to_pylist() == others(table)  # others intact, in order
    assert after.schema_arrow == table.schema
    assert after.metadata.row_group(0).column(0).compression == "GZIP"
    assert not list(path.parent.glob("*.optout-staged"))


def test_plan_locates_the_rows_and_apply_deletes_exactly_them(dataset) -> None:
    catalog, path, table = dataset
    plan = plan_for(catalog)
    [step] = plan.steps
    assert step.action == "delete_rows" and step.rows == 3
    [(located, _, rows)] = step.locations
    assert located == str(path) and set(rows) == SUBJECT_ROWS
    apply_plan(catalog, plan, ApplyOptions())
    assert_erased(path, table)


def test_wrong_positions_fall_back_to_a_full_pass(dataset) -> None:
    catalog, path, table = dataset
    plan = plan_for(catalog)
    [(_, fingerprint, _)] = plan.steps[0].locations
    wrong = with_locations(catalog, plan, ((str(path), fingerprint, (0, 1, 3)),))
    apply_plan(catalog, wrong, ApplyOptions())
    assert_erased(path, table)


def test_positions_of_another_file_version_are_not_used(dataset) -> None:
    catalog, path, table = dataset
    plan = plan_for(catalog)
    stale = with_locations(catalog, plan, ((str(path), "0" * 32, (0,)),))
    apply_plan(catalog, stale, ApplyOptions())
    assert_erased(path, table)


def test_the_check_catches_a_row_the_rewrite_left(dataset, monkeypatch) -> None:
    """The check re-reads the staged file through the prefilter the positions taught: a
    subject row that survives the rewrite (here: every row does) is found, nothing changes."""
    catalog, path, _table = dataset
    before = path.read_bytes()
    monkeypatch.setattr(ParquetTarget, "_edit", lambda self, group, *a: group)
    with pytest.raises(ApplyError, match=r"nothing was changed: .*people.*(still holds|rows)"):
        apply_plan(catalog, plan_for(catalog), ApplyOptions())
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.optout-staged"))


def test_the_check_catches_a_respelled_survivor(dataset, monkeypatch) -> None:
    """Only one spelling of the subject's email survives the rewrite: still found."""
    catalog, path, _table = dataset
    before = path.read_bytes()
    original = ParquetTarget._edit

    def keep_row_250(self, group, hits, *args):
        return original(self, group, [h for h in hits if h != 250 - 200], *args)

    monkeypatch.setattr(ParquetTarget, "_edit", keep_row_250)
    with pytest.raises(ApplyError, match="nothing was changed"):
        apply_plan(catalog, plan_for(catalog), ApplyOptions())
    assert path.read_bytes() == before


def test_a_plan_for_someone_the_data_does_not_hold_applies_as_a_no_op(dataset) -> None:
    catalog, path, _table = dataset
    before = path.read_bytes()
    plan = build_plan(catalog, PlanRequest([parse_subject("email=nobody@example.net")],
                                           load_policy(ROOT / "policies" / "gdpr-erasure.yaml"),
                                           str(ROOT / "policies" / "gdpr-erasure.yaml")))
    assert plan.steps == ()
    rid = apply_plan(catalog, plan, ApplyOptions())
    from optout.engine.journal import Journal

    assert Journal(catalog).request(rid)["status"] == "complete"
    assert path.read_bytes() == before


def test_the_rewrite_encodes_each_column_as_the_file_did(tmp_path: Path, classifier) -> None:
    """Dictionary pages where the file had them, plain pages where it had none."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "people.parquet"
    table = people()
    pq.write_table(table, path, row_group_size=200, compression="gzip",
                   use_dictionary=["full_name"])
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(data)], catalog, classifier=classifier)

    def dictionary(column: int) -> bool:
        meta = pq.ParquetFile(path).metadata
        return all(meta.row_group(g).column(column).has_dictionary_page
                   for g in range(meta.num_row_groups))

    assert (dictionary(1), dictionary(2)) == (False, True)
    apply_plan(catalog, plan_for(catalog), ApplyOptions())
    assert_erased(path, table)
    assert (dictionary(1), dictionary(2)) == (False, True)


def test_a_failure_while_reading_ahead_changes_nothing(dataset, monkeypatch) -> None:
    """The batches are read and edited in a thread ahead of the writer: its failure is the
    step's failure, and nothing is left behind."""
    catalog, path, _table = dataset
    before = path.read_bytes()

    def broken(self, group, hits, *args):
        raise OSError("disk went away while reading")

    monkeypatch.setattr(ParquetTarget, "_edit", broken)
    with pytest.raises(ApplyError, match=r"nothing was changed: .*disk went away"):
        apply_plan(catalog, plan_for(catalog), ApplyOptions())
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*optout-staged"))


def test_the_rewrite_keeps_the_text_values_it_took_out_for_the_raw_read(dataset) -> None:
    """The rows a rewrite takes out give the raw read its literal needles: both spellings of
    the subject's email, no number (ids are binary in the file); a file whose rows were found
    by a hash pass instead (stale positions) leaves them unknown, for the hash search."""
    catalog, path, _table = dataset
    plan = plan_for(catalog)
    target = ParquetTarget(plan.steps[0], catalog.hasher())
    target.rollback(target.prepare())
    assert target.erased_values == {SUBJECT, "Ana.Ruiz@Example.org"}
    stale = with_locations(catalog, plan, ((str(path), "0" * 32, (0,)),))
    target = ParquetTarget(stale.steps[0], catalog.hasher())
    target.rollback(target.prepare())
    assert target.erased_values is None
    # a step that hashes her email and keeps another key column (a text one): only what it
    # takes out is searched for; the kept key is no residue
    [step] = plan.steps
    hashing = dataclasses.replace(step, action="hash", columns=(("email", "hash"),),
                                  keys=(*step.keys, ("full_name", "code", ())))
    target = ParquetTarget(hashing, catalog.hasher())
    target.rollback(target.prepare())
    assert target.erased_values == {SUBJECT, "Ana.Ruiz@Example.org"}


def test_the_raw_read_finds_the_values_the_rewrite_took_out(tmp_path: Path, classifier,
                                                            monkeypatch) -> None:
    """Uncompressed, the file keeps its text in the clear: after apply none of the subject's
    spellings is in its bytes. The control: the raw read is also pointed at a copy of the file
    as it was, where the same search finds her, and the request is blocked."""
    from optout.connectors.physical import FileStore, Reach
    from optout.engine import physical

    data = tmp_path / "data"
    data.mkdir()
    path = data / "people.parquet"
    pq.write_table(people(), path, row_group_size=200, compression="none")
    spellings = (SUBJECT.encode(), b"Ana.Ruiz@Example.org")
    before = path.read_bytes()
    assert all(before.count(s) for s in spellings)
    evidence = tmp_path / "copy-of-the-file-as-it-was.parquet"
    evidence.write_bytes(before)
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    scan([str(data)], catalog, classifier=classifier)
    apply_plan(catalog, plan_for(catalog), ApplyOptions())
    assert not any(path.read_bytes().count(s) for s in spellings)

    path.write_bytes(before)  # the same erasure again, the copy in the raw read's reach
    scan([str(data)], catalog, classifier=classifier)
    monkeypatch.setattr(FileStore, "reach", lambda self: Reach(files=[*self.paths(),
                                                                     str(evidence)]))
    monkeypatch.setattr(physical.time, "sleep", lambda s: None)
    with pytest.raises(ApplyError, match=r"occurrences of the subject still in the raw bytes"):
        apply_plan(catalog, plan_for(catalog), ApplyOptions())
    assert not any(path.read_bytes().count(s) for s in spellings)
