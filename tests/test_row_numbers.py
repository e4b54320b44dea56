"""Row numbers a plan located: one sorted array, written compactly in the plan, read back
exactly; plans written before (JSON lists) still read, with their content hash."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from optout.model.plan import ErasurePlan, PlanError, PlanStep, plan_from_json
from optout.model.row_numbers import RowNumbers, RowNumbersError


@pytest.mark.parametrize("rows", [
    [], [0], [7], list(range(0, 3000, 3)), [0, 1, 2, 255, 256, 70_000],
    [5, 1 << 33, (1 << 62) + 9],  # gaps past 32 bits
])
def test_row_numbers_read_back_as_written(rows: list[int]) -> None:
    written = RowNumbers.of(reversed(rows + rows[:2])).encode()  # unsorted, repeated
    assert written.startswith("rows:")
    back = RowNumbers.decode(written)
    assert list(back) == sorted(set(rows)) and len(back) == len(set(rows))
    assert back == RowNumbers.of(rows) and back == tuple(sorted(set(rows)))


def test_dense_rows_are_written_in_a_byte_a_row_or_less() -> None:
    """A million people's orders: ten million rows, a few rows apart. As JSON integers the
    positions took eight bytes a row and more."""
    rows = np.sort(np.random.default_rng(7).choice(100_000_000, 10_000_000, replace=False))
    written = RowNumbers.of(rows).encode()
    assert written.startswith("rows:u1:") or written.startswith("rows:u2:")
    assert len(written) < len(rows)
    assert np.array_equal(RowNumbers.decode(written).array, rows)


@pytest.mark.parametrize("text,why", [
    ("rows:u9:AAAA", "not written row numbers"),
    ("cols:u1:eJxjYAAAAAQAAQ==", "not written row numbers"),
    ("rows:u1:not base64!", "do not decode"),
    ("rows:u1:" + "eJxjZGRkAAAAEAAD", "do not decode"),  # not zlib of a u1 array
    (RowNumbers.of([3]).encode().replace("rows:u1:", "rows:u2:"), "do not decode"),
])
def test_what_is_not_row_numbers_is_named(text: str, why: str) -> None:
    with pytest.raises(RowNumbersError, match=why):
        RowNumbers.decode(text)


def test_repeated_or_negative_rows_are_refused() -> None:
    import base64
    import zlib

    repeated = "rows:u1:" + base64.b64encode(zlib.compress(bytes([4, 0, 1]))).decode()
    with pytest.raises(RowNumbersError, match="not distinct"):
        RowNumbers.decode(repeated)
    with pytest.raises(RowNumbersError, match="negative"):
        RowNumbers.of([-1, 2])


def _plan(rows: RowNumbers | tuple[int, ...]) -> ErasurePlan:
    step = PlanStep("d1", "customers", "/data/c.parquet", "parquet", "file", "delete_rows",
                    "r", 3, keys=(("id", "code", ("ab" * 32,)),),
                    locations=(("/data/c.parquet", "f" * 32, rows),))
    return ErasurePlan("req-1", "2026-12-06T00:00:00", "me", {"name": "p"}, "s",
                       (step,)).sealed()


def test_a_plan_writes_located_rows_compactly_and_reads_them_back() -> None:
    plan = _plan(RowNumbers.of([9, 2, 4]))
    text = plan.to_json()
    [[_, _, written]] = json.loads(text)["steps"][0]["locations"]
    assert written == RowNumbers.of([2, 4, 9]).encode()
    back = plan_from_json(text, "plan.json")
    assert back.content_hash == plan.content_hash
    [(_, _, rows)] = back.steps[0].locations
    assert isinstance(rows, RowNumbers) and list(rows) == [2, 4, 9]


def test_a_plan_written_with_row_lists_still_reads_with_its_hash() -> None:
    """Plans (and journals) made before the compact form hold JSON lists: they read as
    tuples, and their content hash is the one they were made with."""
    old = _plan((2, 4, 9))
    text = old.to_json()
    assert json.loads(text)["steps"][0]["locations"][0][2] == [2, 4, 9]
    back = plan_from_json(text, "old.json")
    assert back.steps[0].locations[0][2] == (2, 4, 9)
    assert back.content_hash == old.content_hash != _plan(RowNumbers.of([2, 4, 9])).content_hash


def test_a_plan_whose_locations_do_not_decode_is_refused() -> None:
    plan = _plan(RowNumbers.of([2, 4, 9]))
    data = json.loads(plan.to_json())
    data["steps"][0]["locations"][0][2] = "rows:u1:@@@"
    with pytest.raises(PlanError, match=re.escape(
            "old.json: not a plan file (locations: row numbers that do not decode")):
        plan_from_json(json.dumps(data), "old.json")
